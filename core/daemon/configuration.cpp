// Reading and checking one configuration; see configuration.hpp.
#include "daemon/configuration.hpp"

#include <pwd.h>
#include <unistd.h>

#include <climits>
#include <filesystem>

#include "daemon/at_rest.hpp"
#include "daemon/preflight.hpp"
#include "smtpd/listen.hpp"
#include "smtpd/local_socket.hpp"
#include "tls/check.hpp"
#include "util/plugin.hpp"

namespace postern::daemon {
namespace {

constexpr const char* kDefaultSpool = "/var/spool/postern";
constexpr const char* kDefaultMbox = "/var/mail";
constexpr const char* kDefaultControl = "/run/postern/control.sock";

std::string current_user() {
    struct passwd* pw = getpwuid(geteuid());
    return pw ? pw->pw_name : std::to_string(geteuid());
}

std::string system_hostname() {
    char buf[HOST_NAME_MAX + 1] = "";
    gethostname(buf, sizeof buf);
    return buf[0] ? buf : "localhost";
}

Paths resolve_paths(const config::Config& cfg) {
    Paths p;
    p.spool = cfg.queue_path.empty() ? kDefaultSpool : cfg.queue_path;
    p.plugins = util::plugin_dir(cfg.plugin_path);
    p.mbox = cfg.mbox_path.empty() ? kDefaultMbox : cfg.mbox_path;
    p.pid_file = cfg.pid_file;
    p.control = cfg.control_socket.empty() ? kDefaultControl : cfg.control_socket;
    p.local_socket = smtpd::local_socket_path(p.control);
    p.hostname = cfg.hostname.empty() ? system_hostname() : cfg.hostname;
    return p;
}

// Problems with the pki and ca files, each as "file:line:col: pki NAME: ...".
std::vector<std::string> check_tls_files(const config::Config& cfg) {
    std::vector<std::string> out;
    for (const auto& p : cfg.pkis)
        for (const auto& problem : tls::check_pki({p.name, p.cert, p.key}))
            out.push_back(config::format({p.where, "pki " + p.name + ": " + problem}));
    for (const auto& c : cfg.cas)
        for (const auto& problem : tls::check_ca(c.cert))
            out.push_back(config::format({c.where, "ca " + c.name + ": " + problem}));
    return out;
}

}  // namespace

Loaded::~Loaded() { smtpd::close_listeners(sockets); }

config::ParseResult load_config(const Options& o) {
    if (!o.config_file.empty()) return config::parse_file(o.config_file, o.macros);
    std::error_code ec;
    std::string state = (std::filesystem::current_path(ec) / "state").string();
    return config::parse_text(default_config_text(state, current_user()), "<embedded default>", o.macros);
}

std::vector<std::string> server_names(const config::Config& cfg, const Paths& p) {
    std::vector<std::string> names = {p.hostname, system_hostname()};
    for (const auto& l : cfg.listeners)
        if (!l.hostname.empty()) names.push_back(l.hostname);
    return names;
}

std::vector<std::string> localnames(const config::Config& cfg, const Paths& p) {
    std::vector<std::string> names = server_names(cfg, p);
    names.push_back("localhost");
    for (const auto& ip : smtpd::local_addresses())
        names.push_back(ip.find(':') != std::string::npos ? "[ipv6:" + ip + "]" : "[" + ip + "]");
    return names;
}

bool load_tls(const config::Config& cfg, TlsContexts* out, std::vector<std::string>* errors) {
    for (const auto& l : cfg.listeners) {
        if (!l.tls && !l.smtps) continue;
        tls::ServerOptions o;
        for (const auto& name : l.pkis)
            if (const config::Pki* p = cfg.find_pki(name)) o.pkis.push_back({p->name, p->cert, p->key});
        if (const config::Ca* ca = l.ca.empty() ? nullptr : cfg.find_ca(l.ca)) o.ca_file = ca->cert;
        o.verify_client = l.verify;
        o.ciphers = l.ciphers.empty() ? cfg.ciphers : l.ciphers;
        o.protocols = l.protocols;
        std::string err;
        auto ctx = tls::ServerContext::create(o, &err);
        if (!ctx) errors->push_back(config::format({l.where, "listen on " + l.on + ": " + err}));
        (*out)[&l] = std::move(ctx);
    }
    return errors->empty();
}

void check_host(const Options& o, bool root, Loaded& l, std::vector<std::string>* host_problems,
                std::vector<std::string>* tls_problems) {
    const config::Config& cfg = l.cfg();
    *tls_problems = check_tls_files(cfg);
    l.paths = resolve_paths(cfg);
    // -n and start-up run the same host checks, so -n passes only what starts.
    // The tables they open are the ones the daemon serves with: read once,
    // as root, before privileges are dropped (a credentials file may be
    // root's alone).
    l.tables.set_local_identity(server_names(cfg, l.paths), smtpd::local_addresses());
    *host_problems = preflight(
        cfg,
        {o.config_file.empty() ? "<embedded default>" : o.config_file, l.paths.plugins, l.paths.spool, l.paths.control},
        l.tables);
    l.filter_specs = filterhost::proc_specs(cfg, kUnprivilegedUser, root, host_problems, l.paths.spool);
    if (std::string why = load_at_rest(cfg, o.config_file, l.paths.spool, &l.at_rest); !why.empty())
        host_problems->push_back(why);
}

}  // namespace postern::daemon
