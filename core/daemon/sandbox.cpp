// The serving process confined; see sandbox.hpp.
#include "daemon/sandbox.hpp"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/fd.hpp"

// Defined only in the sanitizer build (tests/sanitize/defaults.c): the
// folder its reports go to, which the confined process must be able to
// write for a leak or an error in it to be seen. Null in every other build.
extern "C" const char* postern_sanitize_report_dir() __attribute__((weak));

namespace postern::daemon {
namespace {

// Debian 12's headers know Landlock ABI 1 and 2; the kernel may know more,
// which this process simply does not ask for.
constexpr std::uint64_t kRead = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
constexpr std::uint64_t kRun = LANDLOCK_ACCESS_FS_EXECUTE;
constexpr std::uint64_t kWriteV1 = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                                   LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                                   LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                                   LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                                   LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;

int landlock_abi() {
    long v = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return v < 0 ? 0 : static_cast<int>(v);
}

// Rights that only make sense on a folder are refused on a file.
std::uint64_t for_file(std::uint64_t rights) {
    return rights & (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_EXECUTE);
}

// false only when the rule exists and cannot be added; a missing path is skipped.
bool allow(int ruleset, const std::string& path, std::uint64_t rights, std::string* why) {
    util::Fd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) return true;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return true;
    landlock_path_beneath_attr attr{};
    attr.allowed_access = S_ISDIR(st.st_mode) ? rights : for_file(rights);
    attr.parent_fd = fd.get();
    if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) != 0) {
        *why = "landlock_add_rule " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

std::string folder_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path;
    auto slash = path.rfind('/');
    return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Confinement serving_confinement(const std::string& spool, const std::vector<std::string>& extra,
                                const std::vector<std::string>& tables) {
    Confinement c;
    c.writable = {spool, "/dev/null"};
    c.readable = {"/etc", "/usr",  "/lib", "/lib64", "/lib32", "/libx32",  "/bin",     "/sbin",
                  "/opt", "/proc", "/sys", "/run",   "/dev",   "/var/lib", "/var/run", "/var/cache"};
    for (const auto& e : extra)
        if (!e.empty() && e[0] == '/') c.readable.push_back(folder_of(e));
    for (const auto& t : tables)
        if (!t.empty() && t[0] == '/') c.writable.push_back(folder_of(t));
    return c;
}

std::vector<std::string> table_files(const config::Config& cfg) {
    std::vector<std::string> out;
    for (const auto& t : cfg.tables) {
        std::string source = t.source.substr(0, t.source.find(' '));
        if (source.empty() || source[0] != '/') continue;
        out.push_back(source);
        if (t.backend != "sqlite") continue;
        std::ifstream in(source);
        for (std::string line; std::getline(in, line);) {
            std::istringstream words(line);
            std::string key, value;
            if (words >> key >> value && key == "dbpath" && !value.empty() && value[0] == '/') out.push_back(value);
        }
    }
    return out;
}

Confined confine(const Confinement& c) {
    Confined out;
    out.no_new_privs = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
    if (!c.no_landlock.empty()) {
        out.why = c.no_landlock;
        return out;
    }
    int abi = landlock_abi();
    if (abi <= 0) {
        out.why = "the kernel has no Landlock";
        return out;
    }
    // REFER (ABI 2): a file may move only within the rules that allow it,
    // so it is handled too and granted beneath the writable folders.
    std::uint64_t write = kWriteV1 | (abi >= 2 ? LANDLOCK_ACCESS_FS_REFER : 0);
    landlock_ruleset_attr attr{};
    attr.handled_access_fs = kRead | kRun | write;
    util::Fd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0)));
    if (!ruleset) {
        out.why = std::string("landlock_create_ruleset: ") + std::strerror(errno);
        return out;
    }
    for (const auto& p : c.readable)
        if (!allow(ruleset.get(), p, kRead | kRun, &out.why)) return out;
    for (const auto& p : c.writable)
        if (!allow(ruleset.get(), p, kRead | write, &out.why)) return out;
    if (postern_sanitize_report_dir && ::access(postern_sanitize_report_dir(), W_OK) == 0 &&
        !allow(ruleset.get(), postern_sanitize_report_dir(), write, &out.why))
        return out;
    if (!out.no_new_privs) {
        out.why = "PR_SET_NO_NEW_PRIVS failed, which Landlock needs";
        return out;
    }
    if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
        out.why = std::string("landlock_restrict_self: ") + std::strerror(errno);
        return out;
    }
    out.landlock_abi = abi;
    return out;
}

}  // namespace postern::daemon
