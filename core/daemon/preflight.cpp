// Start-up checks that need this host; see preflight.hpp.
#include "daemon/preflight.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>

#include "delivery/kind.hpp"
#include "delivery/launcher.hpp"
#include "smtpd/interfaces.hpp"
#include "smtpd/listen.hpp"
#include "util/fd.hpp"
#include "util/plugin.hpp"

namespace postern::daemon {
namespace {

namespace fs = std::filesystem;

// OpenSMTPD's table programs (opensmtpd-extras): `NAME:/conf` runs
// /usr/libexec/opensmtpd/table-NAME through table-proc.so when no plugin of
// that name exists (table/registry.cpp).
constexpr std::string_view kTablePrograms[] = {"ldap", "mysql", "passwd", "postgres", "redis", "socketmap"};

bool listed(const auto& list, std::string_view s) {
    return std::find(std::begin(list), std::end(list), s) != std::end(list);
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out.empty() ? "none" : out;
}

std::string q(std::string_view s) { return "'" + std::string(s) + "'"; }

class Problems {
public:
    explicit Problems(std::string config) : config_(std::move(config)) {}
    void at(const config::Location& where, std::string message) {
        out_.push_back(config::format({where, std::move(message)}));
    }
    // For a path that may be a default, with no line of the file to point at.
    void in_file(const std::string& message) { out_.push_back(config_ + ": " + message); }
    // Already "FILE:LINE:COL: message".
    void formatted(std::string line) { out_.push_back(std::move(line)); }
    std::vector<std::string> take() { return std::move(out_); }

private:
    std::string config_;
    std::vector<std::string> out_;
};

// ---- plugins ----

std::string plugin_file(const std::string& dir, std::string_view kind, std::string_view name) {
    return dir + (!dir.empty() && dir.back() == '/' ? "" : "/") + std::string(kind) + "-" + std::string(name) + ".so";
}

bool absent(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

// The NAMEs of the KIND-NAME.so files in `dir`, sorted.
std::vector<std::string> installed(const std::string& dir, std::string_view kind) {
    std::vector<std::string> names;
    const std::string prefix = std::string(kind) + "-";
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::string f = it->path().filename().string();
        if (f.size() > prefix.size() + 3 && f.starts_with(prefix) && f.ends_with(".so"))
            names.push_back(f.substr(prefix.size(), f.size() - prefix.size() - 3));
    }
    std::sort(names.begin(), names.end());
    return names;
}

const char* kReinstall = "reinstall postern's plugins, or set 'plugin path' to the folder of this postern's plugins";

// Why table-BACKEND.so is missing, and what to use instead.
std::string missing_backend(const config::TableDecl& t, const std::string& dir) {
    const std::string file = plugin_file(dir, "table", t.backend);
    if (listed(kTablePrograms, t.backend))
        return "no table backend " + q(t.backend) + " (no plugin " + fs::path(file).filename().string() + " in " + dir +
               ", and no program " + table::kOpensmtpdTableDir + "table-" + t.backend +
               "); install opensmtpd-extras, which has it, or name a table program with proc:";
    return "no table backend " + q(t.backend) + " (no plugin " + fs::path(file).filename().string() + " in " + dir +
           "; installed: " + join(installed(dir, "table")) +
           "); use an installed backend, or set 'plugin path' "
           "to the folder that has " +
           fs::path(file).filename().string();
}

// What to do about a table the plugin could not open.
std::string table_hint(const std::string& source) {
    struct stat st {};
    const bool found = stat(source.c_str(), &st) == 0;
    if (!found && (errno == ENOENT || errno == ENOTDIR)) return "create the file or correct the path";
    if ((!found && errno == EACCES) || (found && access(source.c_str(), R_OK) != 0)) {
        if (geteuid() == 0) return "make it readable by root";
        struct passwd* pw = getpwuid(geteuid());
        return "make it readable by " + std::string(pw ? pw->pw_name : std::to_string(geteuid())) +
               ", or run posternd as root, which reads it before dropping privileges";
    }
    if (found && S_ISDIR(st.st_mode)) return "name a file, not a folder";
    return "correct the table's source";
}

// Every table opened into `tables`, the daemon's own when it starts (each
// file is read once), with what to do about each that cannot be opened.
// Opening is the only check that is certain (the file's syntax, the
// backend's own settings).
void check_tables(const config::Config& cfg, const std::string& dir, table::Registry& tables, Problems& out) {
    std::vector<std::string> errors;
    tables.open(cfg, dir, &errors, [&](const config::TableDecl& t, table::Registry::Failure f, const std::string& err) {
        if (f == table::Registry::Failure::Plugin)
            return absent(plugin_file(dir, "table", t.backend)) ? missing_backend(t, dir) : err + "; " + kReinstall;
        // A proc table's source is the program and its words: the program is the file.
        const std::string file = t.backend == "proc" ? t.source.substr(0, t.source.find(' ')) : t.source;
        return (err.empty() ? "cannot open " + t.source : err) + "; " + table_hint(file);
    });
    for (auto& e : errors) out.formatted(std::move(e));
}

// A table whose backend asks one query per service (sqlite, a table
// program) must have one for each use the configuration makes of it.
void check_table_uses(const config::Config& cfg, const table::Registry& tables, Problems& out) {
    auto need = [&](const std::string& name, table::Service service, const config::Location& where,
                    const std::string& use) {
        const table::Table* t = name.empty() ? nullptr : tables.find(name);
        if (t && !t->supports(service))
            out.at(where, "table " + name + " cannot answer " + table::service_name(service) + " lookups (its " +
                              "backend has no query for them), which " + use + " needs; add one to its " +
                              "configuration or use another table");
    };
    for (const auto& l : cfg.listeners) {
        need(l.auth_table, table::Service::Credentials, l.where, "auth <" + l.auth_table + ">");
        need(l.senders_table, table::Service::Mailaddrmap, l.where, "senders <" + l.senders_table + ">");
        need(l.hostnames_table, table::Service::Addrname, l.where, "hostnames <" + l.hostnames_table + ">");
    }
    for (const auto& a : cfg.actions) {
        need(a.alias_table, table::Service::Alias, a.where, "alias <" + a.alias_table + ">");
        need(a.virtual_table, table::Service::Alias, a.where, "virtual <" + a.virtual_table + ">");
        need(a.userbase_table, table::Service::Userinfo, a.where, "userbase <" + a.userbase_table + ">");
        const config::Relay& r = a.relay;
        need(r.domain_table, table::Service::Relayhost, a.where, "domain <" + r.domain_table + ">");
        need(r.helo_src_table, table::Service::Addrname, a.where, "helo-src <" + r.helo_src_table + ">");
        need(r.src_table, table::Service::Source, a.where, "src <" + r.src_table + ">");
        need(r.auth_table, table::Service::Credentials, a.where, "auth <" + r.auth_table + ">");
    }
    using Kind = config::Criterion::Kind;
    for (const auto& rule : cfg.rules)
        for (const auto& c : rule.criteria) {
            if (c.table.empty() || c.regex) continue;
            switch (c.kind) {
            case Kind::FromSrc: need(c.table, table::Service::Netaddr, c.where, "from src"); break;
            case Kind::FromRdns:
            case Kind::Helo:
            case Kind::ForDomain: need(c.table, table::Service::Domain, c.where, "this match"); break;
            case Kind::ForRcptTo:
            case Kind::RcptTo:
            case Kind::MailFrom: need(c.table, table::Service::Mailaddr, c.where, "this match"); break;
            default: break;
            }
        }
}

// ---- listeners ----

using smtpd::Interface;
using smtpd::interfaces;  // every interface of this host, in the kernel's order

// The names of the interfaces a listener could use ("lo, eth0").
std::string usable_interfaces(const std::vector<Interface>& all) {
    std::vector<std::string> names;
    for (const auto& i : all)
        if (!i.addresses.empty()) names.push_back(i.name);
    return join(names);
}

std::string usable_addresses(const std::vector<Interface>& all) {
    std::vector<std::string> addrs;
    for (const auto& i : all) addrs.insert(addrs.end(), i.addresses.begin(), i.addresses.end());
    return join(addrs);
}

// Why `listen on NAME` stands for no address here, and what to write instead.
std::string unknown_target(const config::Listener& l) {
    const auto all = interfaces();
    auto it = std::find_if(all.begin(), all.end(), [&](const Interface& i) { return i.name == l.on; });
    if (it != all.end()) {
        const char* family = l.family == config::Listener::Family::Inet4   ? "IPv4 "
                             : l.family == config::Listener::Family::Inet6 ? "IPv6 "
                                                                           : "";
        return "interface " + q(l.on) + " has no " + family +
               "address; give it one before posternd starts, or "
               "name an interface that has one (here: " +
               usable_interfaces(all) + ")";
    }
    // Interface groups and the BSDs' names: what a reader copying a seed must write on Linux.
    if (std::string hint = smtpd::interface_name_hint(l); !hint.empty()) return hint;
    return "no interface, address or host name " + q(l.on) +
           " on this host; name an interface (here: " + usable_interfaces(all) +
           "), an address of this host or a host name that resolves to one";
}

// Can a socket be bound to `ip` on this host? Port 0 leaves the choice of
// port to the kernel, so this needs no root and cannot clash with a daemon
// that already listens on the configured port; the socket is closed unused.
bool bindable(const std::string& ip, int* error) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        len = sizeof *sin6;
    } else {
        *error = EINVAL;
        return false;
    }
    util::Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        *error = errno;
        return false;
    }
    return true;
}

void check_listener(const config::Listener& l, Problems& out) {
    if (l.socket) return;  // local enqueue: no network address
    std::string unused;
    const std::vector<std::string> addrs = smtpd::resolve_listen_target(l, &unused);
    if (addrs.empty()) {
        out.at(l.where, "listen on " + l.on + ": " + unknown_target(l));
        return;
    }
    for (const auto& ip : addrs) {
        int err = 0;
        if (bindable(ip, &err)) continue;
        const std::string which = ip == l.on ? "" : " (" + l.on + ")";
        if (err == EADDRNOTAVAIL)
            out.at(l.where, "listen on " + l.on + ": " + ip + which +
                                " is not an address of this host; name one "
                                "of its addresses (" +
                                usable_addresses(interfaces()) + ") or interfaces");
        else
            out.at(l.where, "listen on " + l.on + ": cannot use " + ip + which + ": " + strerror(err) +
                                "; name another address or interface");
    }
}

// ---- actions ----

// Why delivery-METHOD.so does not serve, or "" when it loads.
std::string delivery_problem(const std::string& method, const std::string& dir) {
    std::string err;
    if (util::load_delivery_plugin(dir, method, &err)) return {};
    const std::string file = plugin_file(dir, "delivery", method);
    if (!absent(file)) return err + "; " + kReinstall;
    const std::string name = fs::path(file).filename().string();
    return "no plugin " + name + " in " + dir + " for delivery method " + q(method) +
           "; install postern's plugins there, or set 'plugin path' to the folder that has them";
}

// An action whose plugin is missing would accept mail and keep it queued
// until its ttl runs out: refuse the config instead, before any is accepted.
void check_actions(const config::Config& cfg, const std::string& dir, Problems& out) {
    std::map<std::string, std::string, std::less<>> problem;  // method -> message ("" = loads)
    for (const auto& a : cfg.actions) {
        if (a.method == "forward-only" || a.method == "expand-only") continue;  // only expansion: no plugin
        auto it = problem.find(a.method);
        if (it == problem.end()) it = problem.emplace(a.method, delivery_problem(a.method, dir)).first;
        if (!it->second.empty()) out.at(a.where, "action " + q(a.name) + ": " + it->second);
    }
    if (cfg.actions.empty()) return;
    // Every method runs in the delivery agent; without it nothing is delivered.
    const std::string agent = delivery::default_agent_path();
    if (access(agent.c_str(), X_OK) != 0)
        out.at(cfg.actions.front().where, "action " + q(cfg.actions.front().name) + ": the delivery agent " + agent +
                                              " cannot be run (" + strerror(errno) +
                                              "); reinstall postern, which installs it with posternd");
}

// ---- paths ----

// Start-up creates `folder` and its parents as needed: that fails only where
// something in the way is not a folder (a file left where the spool goes).
void check_folder(const std::string& directive, const std::string& value, const fs::path& folder, Problems& out) {
    for (fs::path p = folder; !p.empty(); p = p.parent_path()) {
        struct stat st {};
        if (stat(p.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                out.in_file(directive + " " + value + ": " + p.string() + " is not a folder; remove it, or set " +
                            q(directive) + " to a path where a folder can be made");
            return;
        }
        if (errno != ENOENT && errno != ENOTDIR) return;  // start-up will say why
        if (p == p.parent_path()) return;
    }
}

// What a root daemon needs of the host beyond its files.
void check_host(const PreflightPaths& paths, Problems& out) {
    if (paths.control.size() >= sizeof(sockaddr_un::sun_path))
        out.in_file("control socket " + paths.control + ": longer than " +
                    std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                    " bytes, the limit of a UNIX socket's path; choose a shorter path");
    if (geteuid() == 0 && !getpwnam(kUnprivilegedUser))
        out.in_file(std::string("user ") + kUnprivilegedUser + " does not exist; create it with: useradd --system " +
                    "--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " + kUnprivilegedUser);
}

}  // namespace

std::vector<std::string> preflight(const config::Config& cfg, const PreflightPaths& paths, table::Registry& tables) {
    Problems out(paths.config);
    check_host(paths, out);
    check_folder("queue path", paths.spool, paths.spool, out);
    check_folder("control socket", paths.control, fs::path(paths.control).parent_path(), out);
    check_tables(cfg, paths.plugins, tables, out);
    check_table_uses(cfg, tables, out);
    for (const auto& l : cfg.listeners) check_listener(l, out);
    check_actions(cfg, paths.plugins, out);
    return out.take();
}

}  // namespace postern::daemon
