// util/plugin.cpp — the plugin loader (see plugin.hpp).
//
// Every check a plugin can fail produces a message that names the file: the
// admin who sees it must know which .so to replace and why, without reading
// our source.
#include "util/plugin.hpp"

#include <dlfcn.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#ifndef POSTERN_PLUGIN_DIR
#define POSTERN_PLUGIN_DIR "/usr/lib/postern"
#endif

namespace postern::util {

void DlCloser::operator()(void* handle) const noexcept {
    if (handle) ::dlclose(handle);
}

bool valid_plugin_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) return false;
    }
    return true;
}

namespace {

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// Folder of the running executable, "" if the kernel will not tell.
std::string exe_dir() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return {};
    std::string_view path(buf, static_cast<size_t>(n));
    size_t slash = path.rfind('/');
    if (slash == std::string_view::npos) return {};
    return std::string(path.substr(0, slash == 0 ? 1 : slash));
}

// dlerror() usually starts with the path we gave it; do not say it twice.
std::string dl_reason(const std::string& path) {
    const char* e = ::dlerror();
    std::string_view reason = e ? e : "unknown dlopen error";
    std::string prefix = path + ": ";
    if (reason.substr(0, prefix.size()) == prefix) reason.remove_prefix(prefix.size());
    return std::string(reason);
}

struct Loaded {
    DlHandle lib;
    const void* api = nullptr;
};

// Open DIR/KIND-NAME.so and call its entry symbol, whose type is
// `const Api* ENTRY(void)`. The entry struct is returned unchecked; the
// caller checks the members.
template <typename Api>
std::optional<Loaded> open_plugin(std::string_view dir, std::string_view kind, std::string_view name, const char* entry,
                                  std::string* path, std::string* error) {
    if (!valid_plugin_name(name)) {
        *error = std::string("invalid ") + std::string(kind) + " plugin name \"" + std::string(name) +
                 "\" (allowed: a-z, 0-9 and -)";
        return std::nullopt;
    }
    std::string d(dir.empty() ? "." : dir);
    *path = d + (d.back() == '/' ? "" : "/") + std::string(kind) + "-" + std::string(name) + ".so";

    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) *error = *path + ": no such plugin (looked in " + d + ")";
        else *error = *path + ": " + std::strerror(errno);
        return std::nullopt;
    }

    ::dlerror();  // clear any stale message
    DlHandle lib(::dlopen(path->c_str(), RTLD_NOW | RTLD_LOCAL));
    if (!lib) {
        *error = *path + ": " + dl_reason(*path);
        return std::nullopt;
    }
    ::dlerror();
    void* sym = ::dlsym(lib.get(), entry);
    if (!sym) {
        *error = *path + ": not a postern plugin (no symbol " + entry + ")";
        return std::nullopt;
    }
    // POSIX guarantees that a dlsym() result converts to a function pointer.
    // It is called through its own type: through any other, the call is
    // undefined (UBSan's -fsanitize=function stops it).
    using Entry = const Api* (*)();
    const void* api = reinterpret_cast<Entry>(sym)();
    if (!api) {
        *error = *path + ": " + entry + "() returned NULL";
        return std::nullopt;
    }
    return Loaded{std::move(lib), api};
}

// Checks shared by both kinds: the three members every entry struct starts
// with. `min_size`: the struct as ABI 1 first had it (the header's
// POSTERN_*_PLUGIN_MIN_SIZE); a shorter struct of the same ABI version is
// accepted down to it, its missing members counting as NULL (abi.h).
template <typename Api>
bool check_header(const Api& api, std::string_view name, const std::string& path, std::string* error, size_t min_size) {
    if (api.abi_version != POSTERN_ABI_VERSION) {
        *error = path + ": ABI version " + std::to_string(api.abi_version) + ", this postern speaks " +
                 std::to_string(POSTERN_ABI_VERSION);
        return false;
    }
    if (api.struct_size < min_size) {
        *error = path + ": plugin struct is " + std::to_string(api.struct_size) +
                 " bytes, this postern needs at least " + std::to_string(min_size);
        return false;
    }
    if (!api.name || name != api.name) {
        *error = path + ": plugin calls itself \"" + std::string(api.name ? api.name : "") + "\", expected \"" +
                 std::string(name) + "\"";
        return false;
    }
    return true;
}

bool check_fn(bool present, const char* fn, const std::string& path, std::string* error) {
    if (!present) *error = path + ": plugin function " + fn + " is missing (NULL)";
    return present;
}

}  // namespace

std::string plugin_dir(std::string_view configured) {
    if (!configured.empty()) return std::string(configured);
    // A build tree is recognised by its CMakeCache.txt; merely having a
    // plugins/ folder beside the binary is not enough to trust it.
    std::string dir = exe_dir();
    if (!dir.empty() && exists(dir + "/CMakeCache.txt") && is_dir(dir + "/plugins")) return dir + "/plugins";
    return POSTERN_PLUGIN_DIR;
}

std::optional<TablePlugin> load_table_plugin(std::string_view dir, std::string_view name, std::string* error) {
    std::string path;
    auto loaded = open_plugin<postern_table_plugin>(dir, "table", name, POSTERN_TABLE_ENTRY, &path, error);
    if (!loaded) return std::nullopt;
    const auto* api = static_cast<const postern_table_plugin*>(loaded->api);
    // reload and iterate may be NULL (table.h): the registry checks them.
    if (!check_header(*api, name, path, error, POSTERN_TABLE_PLUGIN_MIN_SIZE) ||
        !check_fn(api->open, "open", path, error) || !check_fn(api->lookup, "lookup", path, error) ||
        !check_fn(api->close, "close", path, error))
        return std::nullopt;
    return TablePlugin(std::move(loaded->lib), api, std::move(path));
}

std::optional<DeliveryPlugin> load_delivery_plugin(std::string_view dir, std::string_view name, std::string* error) {
    std::string path;
    auto loaded = open_plugin<postern_delivery_plugin>(dir, "delivery", name, POSTERN_DELIVERY_ENTRY, &path, error);
    if (!loaded) return std::nullopt;
    const auto* api = static_cast<const postern_delivery_plugin*>(loaded->api);
    // deliver_many is optional: deliver_many_of() says whether it is there.
    if (!check_header(*api, name, path, error, POSTERN_DELIVERY_PLUGIN_MIN_SIZE) ||
        !check_fn(api->deliver, "deliver", path, error))
        return std::nullopt;
    return DeliveryPlugin(std::move(loaded->lib), api, std::move(path));
}

}  // namespace postern::util
