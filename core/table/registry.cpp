// Opening tables, and the adapter from the table plugin C ABI; see registry.hpp.
#include "table/registry.hpp"

#include "metrics/registry.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <shared_mutex>

namespace postern::table {
namespace {

uint32_t c_service(Service service) {
    switch (service) {
    case Service::String: return POSTERN_SERVICE_STRING;
    case Service::Domain: return POSTERN_SERVICE_DOMAIN;
    case Service::Netaddr: return POSTERN_SERVICE_NETADDR;
    case Service::Mailaddr: return POSTERN_SERVICE_MAILADDR;
    case Service::Alias: return POSTERN_SERVICE_ALIAS;
    case Service::Credentials: return POSTERN_SERVICE_CREDENTIALS;
    case Service::Userinfo: return POSTERN_SERVICE_USERINFO;
    case Service::Source: return POSTERN_SERVICE_SOURCE;
    case Service::Addrname: return POSTERN_SERVICE_ADDRNAME;
    case Service::Mailaddrmap: return POSTERN_SERVICE_MAILADDRMAP;
    case Service::Relayhost: return POSTERN_SERVICE_RELAYHOST;
    }
    return 0;
}

// "" when the flags a table reported fit its plugin, else why not: a table
// that says it can be listed must have an iterate (table.h).
std::string check_flags(const util::TablePlugin& plugin, uint32_t flags) {
    if ((flags & POSTERN_TABLE_ITERABLE) && !plugin->iterate)
        return plugin.path() + ": the table says it can be listed (POSTERN_TABLE_ITERABLE) but has no iterate";
    return {};
}

// A table served by a plugin. The plugin promises thread-safe lookup and
// iterate; reload must not overlap them, which the shared_mutex ensures.
class PluginTable final : public Table {
public:
    PluginTable(std::string name, std::shared_ptr<util::TablePlugin> plugin, void* handle, uint32_t flags)
        : Table(std::move(name)), plugin_(std::move(plugin)), handle_(handle), flags_(flags),
          lookups_(metrics::process().counter("postern_table_lookups_total",
                                              "Lookups asked of a table backend (plugin tables)",
                                              {{"table", this->name()}})),
          errors_(metrics::process().counter("postern_table_lookup_errors_total",
                                             "Lookups a table backend could not answer (temporary failures)",
                                             {{"table", this->name()}})) {}
    ~PluginTable() override { (*plugin_)->close(handle_); }

    Result lookup(Service service, std::string_view key, std::string* value, std::string* error) override {
        std::shared_lock lock(mutex_);
        char err[256] = "";
        std::string k = lowercase(key);
        auto keep = [](void* ctx, const char* v) { *static_cast<std::string*>(ctx) = v; };
        auto by_service = util::lookup_service_of(*plugin_);
        int rc = by_service ? by_service(handle_, c_service(service), k.c_str(), keep, value, err, sizeof err)
                            : (*plugin_)->lookup(handle_, k.c_str(), keep, value, err, sizeof err);
        return counted(convert(rc, err, error));
    }

    Result fetch(Service service, std::string* value, std::string* error) override {
        std::shared_lock lock(mutex_);
        auto fetch = util::fetch_of(*plugin_);
        if (!fetch) return Result::NotFound;
        char err[256] = "";
        int rc = fetch(
            handle_, c_service(service), [](void* ctx, const char* v) { *static_cast<std::string*>(ctx) = v; }, value,
            err, sizeof err);
        return convert(rc, err, error);
    }

    bool supports(Service service) const override {
        auto services = util::services_of(*plugin_);
        return !services || (services(handle_) & c_service(service));
    }

    Result for_each(const std::function<bool(std::string_view, std::string_view)>& fn, std::string* error) override {
        std::shared_lock lock(mutex_);
        // Only an iterable table may be listed; its iterate is then set (open checks).
        if (!iterable()) {
            if (error) *error = "table " + name() + ": its backend cannot list entries (not an iterable table)";
            return Result::TempFail;
        }
        // The C ABI cannot stop an iteration early; skip the rest once fn says so.
        struct Ctx {
            const std::function<bool(std::string_view, std::string_view)>* fn;
            bool more = true;
        } ctx{&fn};
        char err[256] = "";
        int rc = (*plugin_)->iterate(
            handle_,
            [](void* c, const char* k, const char* v) {
                auto* x = static_cast<Ctx*>(c);
                if (x->more) x->more = (*x->fn)(k, v ? v : "");
            },
            &ctx, err, sizeof err);
        Result r = convert(rc, err, error);
        return r == Result::NotFound ? Result::Found : r;
    }

    bool iterable() const override { return flags_ & POSTERN_TABLE_ITERABLE; }

    bool reload(std::string* error) override {
        std::unique_lock lock(mutex_);
        char err[256] = "";
        uint32_t flags = flags_;
        if (!(*plugin_)->reload) return true;  // nothing to re-read (table.h)
        if ((*plugin_)->reload(handle_, &flags, err, sizeof err) != POSTERN_OK) {
            *error = err;
            return false;
        }
        if (std::string why = check_flags(*plugin_, flags); !why.empty()) {
            *error = why;
            return false;
        }
        flags_ = flags;
        return true;
    }

private:
    Result counted(Result r) {
        lookups_.inc();
        if (r == Result::TempFail) errors_.inc();
        return r;
    }

    Result convert(int rc, const char* err, std::string* error) const {
        switch (rc) {
        case POSTERN_OK: return Result::Found;
        case POSTERN_NOTFOUND: return Result::NotFound;
        default:
            if (error) *error = "table " + name() + ": " + (err[0] ? err : "backend failure");
            return Result::TempFail;
        }
    }

    std::shared_ptr<util::TablePlugin> plugin_;
    void* handle_;
    uint32_t flags_;
    std::shared_mutex mutex_;
    metrics::Counter& lookups_;
    metrics::Counter& errors_;
};

// The plugin and config string that serve `decl`: its own, or the proc
// backend running OpenSMTPD's table-NAME program when postern has no plugin
// NAME and the program is installed (its argv[0] is the table's name).
std::pair<std::string, std::string> backend_of(const config::TableDecl& decl, const std::string& plugin_dir) {
    const std::string program = std::string(kOpensmtpdTableDir) + "table-" + decl.backend;
    if (!util::valid_plugin_name(decl.backend) || decl.backend == "proc" ||
        ::access((plugin_dir + "/table-" + decl.backend + ".so").c_str(), F_OK) == 0 ||
        ::access(program.c_str(), X_OK) != 0)
        return {decl.backend, decl.source};
    return {"proc", program + " name=" + decl.name + (decl.source.empty() ? "" : " " + decl.source)};
}

}  // namespace

// Until the daemon says otherwise this host is known only by its loopback
// addresses, which are local on any host: never wider than the truth.
Registry::Registry() {
    set_local_identity({}, {"127.0.0.1", "::1"});
    // The socket's source key is "local" (as in OpenSMTPD), so `from src <anyhost>` takes it too.
    builtins_["anyhost"] = {"local", "0.0.0.0/0", "::/0"};
    builtins_["anydestination"] = {"*"};
}

Registry::~Registry() { tables_.clear(); }

bool Registry::set_builtin(std::string_view name, std::vector<std::string> entries) {
    if (!config::is_builtin_table(name)) return false;
    builtins_[std::string(name)] = std::move(entries);
    return true;
}

void Registry::set_local_identity(const std::vector<std::string>& server_names,
                                  const std::vector<std::string>& local_ips) {
    std::vector<std::string> names = {"localhost"};
    std::vector<std::string> hosts = {"local"};
    for (const auto& n : server_names)
        if (!n.empty()) names.push_back(n);
    for (const auto& ip : local_ips) {
        // Recipients at an address literal use the bracketed forms of RFC 5321.
        names.push_back(ip);
        names.push_back(ip.find(':') != std::string::npos ? "[IPv6:" + ip + "]" : "[" + ip + "]");
        hosts.push_back(ip);
    }
    builtins_["localnames"] = std::move(names);
    builtins_["localhost"] = std::move(hosts);
}

std::vector<std::string> Registry::builtin(std::string_view name) const {
    auto it = builtins_.find(name);
    return it == builtins_.end() ? std::vector<std::string>{} : it->second;
}

bool Registry::open(const config::Config& config, const std::string& plugin_dir, std::vector<std::string>* errors,
                    const Explain& explain) {
    bool ok = true;
    auto words = [&](const config::TableDecl& decl, Failure f, const std::string& err) {
        return explain ? explain(decl, f, err) : err;
    };
    for (const auto& decl : config.tables) {
        if (decl.backend == "inline") {
            tables_[decl.name] = make_inline_table(decl.name, decl.entries, decl.is_map);
            continue;
        }
        if (decl.backend == config::kBuiltinBackend) {
            auto it = builtins_.find(decl.name);
            if (it == builtins_.end()) {  // the parser declares only names it knows are built in
                errors->push_back(config::format({decl.where, "table " + decl.name + ": no such built-in table"}));
                ok = false;
                continue;
            }
            std::vector<std::pair<std::string, std::string>> entries;
            for (const auto& e : it->second) entries.emplace_back(e, std::string());
            tables_[decl.name] = make_inline_table(decl.name, std::move(entries), false);
            continue;
        }
        auto [backend, source] = backend_of(decl, plugin_dir);
        auto& plugin = plugins_[backend];
        if (!plugin) {
            std::string err;
            auto loaded = util::load_table_plugin(plugin_dir, backend, &err);
            if (!loaded) {
                errors->push_back(
                    config::format({decl.where, "table " + decl.name + ": " + words(decl, Failure::Plugin, err)}));
                plugins_.erase(backend);
                ok = false;
                continue;
            }
            plugin = std::make_shared<util::TablePlugin>(std::move(*loaded));
        }
        void* handle = nullptr;
        uint32_t flags = 0;
        char err[512] = "";
        if ((*plugin)->open(source.c_str(), &handle, &flags, err, sizeof err) != POSTERN_OK) {
            errors->push_back(
                config::format({decl.where, "table " + decl.name + ": " + words(decl, Failure::Open, err)}));
            ok = false;
            continue;
        }
        if (std::string why = check_flags(*plugin, flags); !why.empty()) {
            (*plugin)->close(handle);
            errors->push_back(config::format({decl.where, "table " + decl.name + ": " + why}));
            ok = false;
            continue;
        }
        tables_[decl.name] = std::make_unique<PluginTable>(decl.name, plugin, handle, flags);
        if (decl.backend == "file") files_[decl.name] = decl.source;
    }
    return ok;
}

Table* Registry::find(std::string_view name) const {
    auto it = tables_.find(name);
    return it == tables_.end() ? nullptr : it->second.get();
}

bool Registry::reload(std::string_view name, std::string* error) {
    Table* t = find(name);
    if (!t) {
        *error = "no table named " + std::string(name);
        return false;
    }
    // A root daemon read its files as root at start-up; a reload runs in the
    // unprivileged process and may not be able to: say what to do.
    if (auto f = files_.find(name); f != files_.end() && ::access(f->second.c_str(), R_OK) != 0 && errno == EACCES) {
        *error = f->second + ": " + std::strerror(errno) +
                 " (a reload reads the file without root: make it readable by group _postern, e.g. "
                 "root:_postern 0640, or restart posternd)";
        return false;
    }
    return t->reload(error);
}

}  // namespace postern::table
