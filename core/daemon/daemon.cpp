// posternd's life: read the config, bind, split privileges, serve, stop.
//
// Started as root, posternd binds its sockets, prepares the spool for the
// _postern user, then forks. The child drops to _postern at once and runs
// everything that faces the network (SMTP sessions, rules, tables, queue,
// scheduler) on one event loop. The parent keeps root for one job: starting
// delivery agents as the recipient (delivery/privileged.hpp). Started as
// another user, posternd runs as one process with that user's rights.
#include "daemon/daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "control/server.hpp"
#include "daemon/control_handler.hpp"
#include "daemon/forward_channel.hpp"
#include "daemon/preflight.hpp"
#include "delivery/launcher.hpp"
#include "delivery/privileged.hpp"
#include "event/loop_work.hpp"
#include "filterhost/host.hpp"
#include "filterhost/processes.hpp"
#include "filterhost/starter.hpp"
#include "metrics/http_server.hpp"
#include "queue/store.hpp"
#include "rules/ruleset.hpp"
#include "scheduler/bouncer.hpp"
#include "scheduler/relay_route.hpp"
#include "scheduler/scheduler.hpp"
#include "smtpd/listen.hpp"
#include "smtpd/local_socket.hpp"
#include "smtpd/server.hpp"
#include "table/registry.hpp"
#include "tls/check.hpp"
#include "tls/context.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "util/plugin.hpp"
#include "util/privileges.hpp"

namespace postern::daemon {
namespace {

constexpr const char* kDefaultSpool = "/var/spool/postern";
constexpr const char* kDefaultMbox = "/var/mail";
constexpr const char* kDefaultControl = "/run/postern/control.sock";

struct Paths {
    std::string spool, plugins, mbox, pid_file, control, hostname;
    std::string local_socket;  // `listen on socket`: next to the control socket
};

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

config::ParseResult load_config(const Options& o) {
    if (!o.config_file.empty()) return config::parse_file(o.config_file, o.macros);
    std::error_code ec;
    std::string state = (std::filesystem::current_path(ec) / "state").string();
    return config::parse_text(default_config_text(state, current_user()), "<embedded default>", o.macros);
}

// The embedded default keeps everything in ./state: make it exist.
bool make_state_dirs(const Options& o, const Paths& p) {
    if (!o.config_file.empty()) return true;
    std::error_code ec;
    std::filesystem::path state = std::filesystem::path(p.spool).parent_path();
    for (auto d : {state, state / "mail", state / "mbox"}) {
        std::filesystem::create_directories(d, ec);
        if (ec) {
            log::error(log::Line("cannot create state folder").kv("path", d.string()).kv("error", ec.message()));
            return false;
        }
    }
    return true;
}

// The spool belongs to the unprivileged user: create it and hand it over.
bool prepare_spool(const std::string& dir, uid_t uid, gid_t gid) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        log::error(log::Line("cannot create spool").kv("path", dir).kv("error", ec.message()));
        return false;
    }
    chmod(dir.c_str(), 0700);
    if (lchown(dir.c_str(), uid, gid) != 0) {
        log::error(log::Line("cannot hand the spool over").kv("path", dir).kv("error", strerror(errno)));
        return false;
    }
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
        if (lchown(it->path().c_str(), uid, gid) != 0) {
            log::error(
                log::Line("cannot hand the spool over").kv("path", it->path().string()).kv("error", strerror(errno)));
            return false;
        }
    return true;
}

// The control socket's folder (/run/postern by default): made if missing,
// closed to everyone but root and the daemon's group. A folder that exists
// is left as it is: the socket is bound by root, so a root-owned folder such
// as /var/run/mta works, and a shared one (/run, /tmp) is never changed.
bool prepare_control_dir(const std::string& socket_path, gid_t gid) {
    std::filesystem::path dir = std::filesystem::path(socket_path).parent_path();
    std::error_code ec;
    bool made = std::filesystem::create_directories(dir, ec);
    if (ec) {
        log::error(
            log::Line("cannot create the control socket folder").kv("path", dir.string()).kv("error", ec.message()));
        return false;
    }
    if (made && ((geteuid() == 0 && lchown(dir.c_str(), 0, gid) != 0) || chmod(dir.c_str(), 0750) != 0)) {
        log::error(
            log::Line("cannot set up the control socket folder").kv("path", dir.string()).kv("error", strerror(errno)));
        return false;
    }
    return true;
}

// The socket itself, bound by whoever starts the daemon and handed to the
// user that serves it (root and that user may connect: mode 0660).
bool bind_control(const std::string& path, uid_t uid, gid_t gid, util::Fd* fd) {
    std::string err;
    if (!control::bind_socket(path, fd, &err) || (geteuid() == 0 && lchown(path.c_str(), uid, gid) != 0)) {
        if (err.empty()) err = std::string("chown: ") + strerror(errno);
        log::error(log::Line("cannot open the control socket").kv("path", path).kv("error", err));
        return false;
    }
    return true;
}

bool drop_privileges(const passwd& pw) {
    std::string err;
    if (!util::become(pw.pw_uid, pw.pw_gid, util::groups_of(pw.pw_name, pw.pw_gid), &err)) {
        log::error(log::Line("cannot drop privileges").kv("user", pw.pw_name).kv("error", err));
        return false;
    }
    return true;
}

// The pid file, removed again when the daemon ends (a stale one would
// point a supervisor or an admin's kill at some other process).
class PidFile {
public:
    explicit PidFile(std::string path) : path_(std::move(path)) {
        if (path_.empty()) return;
        std::ofstream f(path_, std::ios::trunc);
        f << getpid() << "\n";
        if (!f) log::warn(log::Line("cannot write pid file").kv("path", path_));
    }
    ~PidFile() {
        if (!path_.empty()) unlink(path_.c_str());
    }
    PidFile(const PidFile&) = delete;
    PidFile& operator=(const PidFile&) = delete;

private:
    std::string path_;
};

// A socket file (the control socket, the local enqueue socket), removed
// when the daemon ends if it is still the one we bound (a newer daemon may
// have replaced it). The serving process may not be allowed to remove it (a
// root folder), so the starter does.
class SocketFile {
public:
    explicit SocketFile(std::string path) : path_(std::move(path)) {
        struct stat st {};
        if (lstat(path_.c_str(), &st) == 0) {
            dev_ = st.st_dev;
            ino_ = st.st_ino;
        } else {
            path_.clear();
        }
    }
    ~SocketFile() {
        struct stat st {};
        if (!path_.empty() && lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
            unlink(path_.c_str());
    }
    SocketFile(const SocketFile&) = delete;
    SocketFile& operator=(const SocketFile&) = delete;

private:
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

void daemonize() {
    pid_t pid = fork();
    if (pid < 0) {
        log::error(log::Line("fork failed").kv("error", strerror(errno)));
        std::exit(1);
    }
    if (pid > 0) std::_Exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
    }
}

// The names this host answers to (`for local`, <localnames>).
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

using TlsContexts = std::map<const config::Listener*, std::unique_ptr<tls::ServerContext>>;

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

// One TLS context per tls/smtps listener. Loaded as root, before privileges
// are dropped: private keys are usually readable by root only.
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

// Stop and reload signals are held from start-up until the process that
// gets them has its handlers: one that came earlier (a log rotation's HUP)
// would otherwise end the daemon half started.
void hold_stop_signals(bool hold) {
    sigset_t set;
    sigemptyset(&set);
    for (int n : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, n);
    sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

// How agents are started: by this process itself (`switch_user`: as root,
// telling each agent whom to become).
delivery::SpawnOptions spawn_options(const config::Config& cfg, const Paths& paths, bool switch_user) {
    return {delivery::default_agent_path(),           paths.plugins, paths.mbox, switch_user, cfg.sub_addr_delim,
            switch_user ? paths.spool : std::string()};
}

// How long a stopping daemon waits for the agents under way to report.
constexpr uint64_t kDrainMs = 30 * 1000;

// What serve() gets ready-made from run(): things that need root (or the
// start-up user's view of the file system) are opened before privileges go.
struct Prepared {
    std::string store_dir;  // the spool, relative to the working folder in a split daemon
    std::vector<smtpd::ListenSocket> sockets;
    util::Fd control;
    int priv_fd = -1;  // the channel to the privileged parent, -1 when running as one process
    table::Registry* tables = nullptr;
    const TlsContexts* tls_contexts = nullptr;
    const scheduler::RelayPkis* relay_pkis = nullptr;
    // Filters: how to start them (one process), or the channel to the
    // parent that starts them (split daemon).
    std::vector<filterhost::ProcSpec> filter_specs;
    util::Fd filter_channel;
    // Users' ~/.forward: read through the parent (split daemon), else here.
    util::Fd forward_channel;
};

// SIGHUP: read every table again, as `posternctl update table` does for one.
// A table that cannot be read keeps its old contents; the log says why.
void reload_tables(uv_loop_t* loop, table::Registry& tables, const config::Config& cfg) {
    log::info("posternd reloading tables (SIGHUP)");
    for (const auto& decl : cfg.tables) {
        if (!tables.find(decl.name) || decl.backend == "inline" || decl.backend == config::kBuiltinBackend) continue;
        auto err = std::make_shared<std::string>();
        auto ok = std::make_shared<bool>(false);
        event::run_blocking(
            loop, [&tables, name = decl.name, err, ok] { *ok = tables.reload(name, err.get()); },
            [name = decl.name, err, ok] {
                if (*ok) log::info(log::Line("table reloaded").kv("table", name));
                else
                    log::error(log::Line("table reload failed, old contents kept").kv("table", name).kv("error", *err));
            });
    }
}

// The unprivileged side: every network-facing part on one loop.
int serve(const config::Config& cfg, const Paths& paths, Prepared prep) {
    uv_loop_t loop;
    uv_loop_init(&loop);

    queue::Store store(prep.store_dir);
    std::string err;
    if (!store.open(&err)) {
        log::error(log::Line("cannot open the queue").kv("path", paths.spool).kv("error", err));
        return 1;
    }
    table::Registry& tables = *prep.tables;
    rules::Ruleset rules(cfg, tables, localnames(cfg, paths));

    // Its thread starts here, after the fork, in the unprivileged process.
    metrics::HttpServer metrics_server(metrics::process());
    if (!cfg.metrics_address.empty()) {
        if (!metrics_server.start(cfg.metrics_address, static_cast<unsigned>(cfg.metrics_port), &err)) {
            log::error(log::Line("cannot serve metrics").kv("error", err));
            return 1;
        }
        log::info(log::Line("metrics listening")
                      .kv("address", cfg.metrics_address)
                      .kv("port", static_cast<long long>(cfg.metrics_port)));
    }

    event::LoopPost post(&loop);
    event::SerialWorker worker;
    std::unique_ptr<delivery::Launcher> launcher;
    delivery::PrivClient* priv = nullptr;
    if (prep.priv_fd >= 0) {
        auto client = std::make_unique<delivery::PrivClient>(&loop, prep.priv_fd);
        priv = client.get();
        launcher = std::move(client);
    } else {
        launcher = std::make_unique<delivery::SpawnLauncher>(&loop, spawn_options(cfg, paths, false));
    }
    scheduler::Bouncer bouncer(cfg, rules, tables, store, paths.hostname);
    scheduler::RelayRouter router(cfg, tables, *prep.relay_pkis);
    scheduler::Scheduler scheduler(&loop, cfg, store, *launcher, worker, post, bouncer, router);
    queue::Committer committer(store);

    smtpd::SmtpContext ctx{&cfg,    &rules, &tables,        &store,  &committer,
                           nullptr, &post,  paths.hostname, nullptr, prep.tls_contexts};
    ctx.local_socket = paths.local_socket;
    std::unique_ptr<ForwardClient> forward_client;
    expand::ForwardReader read_forward = [](const expand::UserInfo& u) { return expand::read_forward(u.uid, u.home); };
    if (prep.forward_channel) {
        forward_client = std::make_unique<ForwardClient>(std::move(prep.forward_channel));
        read_forward = [c = forward_client.get()](const expand::UserInfo& u) { return c->read(u); };
    }
    ctx.forward = &read_forward;
    ctx.queued = [&scheduler](const std::vector<queue::Envelope>& e) { scheduler.enqueue(e); };
    if (priv) {
        ctx.system_auth = [priv](const std::string& user, const std::string& password, auto done) {
            priv->check_system_account(user, password, std::move(done));
        };
    } else {
        ctx.system_auth = [&loop](const std::string& user, const std::string& password, auto done) {
            auto result = std::make_shared<std::pair<auth::Check, std::string>>();
            event::run_blocking(
                &loop, [=] { result->first = auth::check_system_account(user, password, &result->second); },
                [=] { done(result->first, result->second); });
        };
    }
    // Filters are started by this process, or by the root parent on request.
    std::unique_ptr<filterhost::Processes> filter_procs;
    std::unique_ptr<filterhost::Starter> starter;
    if (prep.filter_channel) {
        starter = std::make_unique<filterhost::StarterClient>(&loop, std::move(prep.filter_channel));
    } else {
        filter_procs = std::make_unique<filterhost::Processes>(&loop, std::move(prep.filter_specs));
        starter = std::make_unique<filterhost::LocalStarter>(*filter_procs);
    }
    filterhost::Host filters(&loop, cfg, *starter, paths.hostname);
    ctx.filters = &filters;
    smtpd::SmtpServer server(&loop, ctx);
    ControlHandler control_handler(&loop, server, scheduler, store, tables);
    control::Server control(&loop, control_handler);
    if (!control.listen_on(std::move(prep.control), paths.control, &err)) {
        log::error(log::Line("cannot open the control socket").kv("path", paths.control).kv("error", err));
        return 1;
    }

    std::vector<std::string> corrupt;
    auto queued = store.load_all(&corrupt);
    for (const auto& c : corrupt) log::warn(log::Line("queue corrupt-envelope").kv("error", c));
    if (!queued.empty()) log::info(log::Line("queue loaded").kv("envelopes", static_cast<long long>(queued.size())));
    scheduler.enqueue(queued);

    struct Signals {
        uv_signal_t term{}, intr{}, hup{};
        uv_timer_t drain{};
        std::function<void(bool unavailable)> stop;
        std::function<void()> reload, drain_check;
    } sig;
    int status = 0;
    bool stopping = false;
    uint64_t stop_started = 0;
    // Deliveries under way report before the end (for up to kDrainMs), so
    // that mail already delivered is not tried again after a restart.
    sig.drain_check = [&] {
        bool can_report = !priv || !priv->broken();
        if (can_report && scheduler.running() > 0 && uv_now(&loop) - stop_started < kDrainMs) return;
        uv_close(reinterpret_cast<uv_handle_t*>(&sig.drain), nullptr);
        post.close();
        if (priv) priv->close();
    };
    sig.stop = [&](bool unavailable) {
        if (stopping) return;
        stopping = true;
        if (!unavailable) log::info("posternd stopping");
        server.stop(unavailable);
        filters.stop();
        if (filter_procs) filter_procs->stop_all();
        starter->close();
        control.close();
        scheduler.close();
        for (auto* h : {&sig.term, &sig.intr, &sig.hup}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
        // A second signal (the parent passes one on that a process group
        // also got) must not cut the orderly stop short.
        for (int n : {SIGTERM, SIGINT, SIGHUP}) signal(n, SIG_IGN);
        stop_started = uv_now(&loop);
        uv_timer_start(
            &sig.drain, [](uv_timer_t* t) { static_cast<Signals*>(t->data)->drain_check(); }, 0, 100);
    };
    sig.reload = [&] { reload_tables(&loop, tables, cfg); };
    // Without the parent nothing can be delivered: stop saying 250 at once
    // and end, so that a supervisor starts a whole daemon again.
    if (priv)
        priv->on_parent_lost([&](const std::string& why) {
            log::error(log::Line("posternd stopping: the privileged process is gone; no more mail is accepted")
                           .kv("error", why));
            status = 1;
            sig.stop(true);
        });
    for (auto* s : {&sig.term, &sig.intr, &sig.hup}) {
        uv_signal_init(&loop, s);
        s->data = &sig;
    }
    uv_timer_init(&loop, &sig.drain);
    sig.drain.data = &sig;
    auto on_stop = [](uv_signal_t* s, int) { static_cast<Signals*>(s->data)->stop(false); };
    uv_signal_start(&sig.term, on_stop, SIGTERM);
    uv_signal_start(&sig.intr, on_stop, SIGINT);
    uv_signal_start(
        &sig.hup, [](uv_signal_t* s, int) { static_cast<Signals*>(s->data)->reload(); }, SIGHUP);
    hold_stop_signals(false);

    // The listeners open once every filter they use is ready (or has failed
    // its first start: its sessions are then refused until it is back).
    filters.start([&] {
        if (stopping) return;
        if (!server.start(prep.sockets, &err)) {
            log::error(err);
            status = 1;
            sig.stop(true);
            return;
        }
        log::info(log::Line("posternd ready").kv("hostname", paths.hostname).kv("spool", paths.spool));
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return status;
}

// The privileged side: start delivery agents on request until the child
// ends. Its results can only go to the child, so once the child is gone
// there is nothing left to wait for: the parent ends at once (agents still
// running finish on their own; their mail is still queued and is retried).
int supervise(pid_t child, int fd, const config::Config& cfg, const Paths& paths,
              std::vector<filterhost::ProcSpec> filter_specs, util::Fd filter_channel, util::Fd forward_channel) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    delivery::SpawnLauncher launcher(&loop, spawn_options(cfg, paths, true));
    // Filters run as their configured user: root starts them for the child.
    filterhost::Processes filter_procs(&loop, std::move(filter_specs));
    filterhost::StarterServer filter_server(&loop, std::move(filter_channel), filter_procs);
    ForwardServer forward_server(&loop, std::move(forward_channel));
    delivery::PrivServer server(&loop, fd, paths.spool, launcher, [&loop] { uv_stop(&loop); });

    // Pass stop and reload requests on to the child.
    struct Relay {
        pid_t child;
        bool stop_asked = false;
    } relay{child};
    uv_signal_t term, intr, hup;
    for (auto [s, signo] : {std::pair{&term, SIGTERM}, {&intr, SIGINT}, {&hup, SIGHUP}}) {
        uv_signal_init(&loop, s);
        s->data = &relay;
        uv_signal_start(
            s,
            [](uv_signal_t* h, int n) {
                auto* r = static_cast<Relay*>(h->data);
                if (n != SIGHUP) r->stop_asked = true;
                kill(r->child, n);
            },
            signo);
        uv_unref(reinterpret_cast<uv_handle_t*>(s));
    }
    hold_stop_signals(false);
    uv_run(&loop, UV_RUN_DEFAULT);
    filter_procs.stop_all();

    // The channel is closed: the child has ended or is ending (it garbled
    // the channel: make sure).
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == 0) {
        kill(child, SIGTERM);
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    }
    // A child that ends on its own, even cleanly, is a daemon that stopped
    // serving: exit non-zero so that a supervisor starts it again.
    if (relay.stop_asked && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    log::error(log::Line("posternd stopping: the unprivileged process is gone")
                   .kv("exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1)
                   .kv("signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    return 1;
}

}  // namespace

// Each relay agent holds two pipes in the parent and each session a socket
// in the child: 1000 of each do not fit the usual soft limit of 1024
// descriptors, so take what the hard limit allows (at most 65536).
void raise_descriptor_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    rlim_t want = r.rlim_max == RLIM_INFINITY ? 65536 : std::min<rlim_t>(r.rlim_max, 65536);
    if (r.rlim_cur >= want) return;
    r.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0)
        log::warn(log::Line("cannot raise the descriptor limit").kv("error", strerror(errno)));
}

int run(const Options& o) {
    if (!o.check_only) hold_stop_signals(true);
    log::init(o.log_stderr || o.check_only, o.verbose);
    config::ParseResult pr = load_config(o);
    for (const auto& w : pr.warnings) std::cerr << config::format({w.where, "warning: " + w.message}) << "\n";
    if (!pr.errors.empty()) {
        for (const auto& e : pr.errors) std::cerr << config::format(e) << "\n";
        return 1;
    }
    const config::Config& cfg = *pr.config;
    std::vector<std::string> tls_problems = check_tls_files(cfg);
    Paths paths = resolve_paths(cfg);
    // -n and start-up run the same host checks, so -n passes only what starts.
    // The tables they open are the ones the daemon serves with: read once,
    // as root, before privileges are dropped (a credentials file may be
    // root's alone).
    table::Registry tables;
    tables.set_local_identity(server_names(cfg, paths), smtpd::local_addresses());
    std::vector<std::string> host_problems = preflight(
        cfg, {o.config_file.empty() ? "<embedded default>" : o.config_file, paths.plugins, paths.spool, paths.control},
        tables);
    const bool root = geteuid() == 0;
    std::vector<filterhost::ProcSpec> filter_specs = filterhost::proc_specs(cfg, kUnprivilegedUser, root,
                                                                            &host_problems);
    for (const auto& p : host_problems) std::cerr << p << "\n";
    if (o.check_only) {
        for (const auto& p : tls_problems) std::cerr << p << "\n";
        if (!tls_problems.empty() || !host_problems.empty()) return 1;
        std::cout << "configuration OK\n";
        return 0;
    }
    if (!host_problems.empty()) return 1;
    for (const auto& p : tls_problems) log::warn(p);
    TlsContexts tls_contexts;
    std::vector<std::string> tls_errors;
    scheduler::RelayPkis relay_pkis;  // read as root, like the listeners' keys
    if (!load_tls(cfg, &tls_contexts, &tls_errors) || !scheduler::load_relay_pkis(cfg, &relay_pkis, &tls_errors)) {
        for (const auto& e : tls_errors) std::cerr << e << "\n";
        return 1;
    }
    if (!make_state_dirs(o, paths)) return 1;
    raise_descriptor_limit();

    // Everything else that may need root is opened here, before the split:
    // the listeners and the control socket (its folder may be root's).
    Prepared prep;
    std::vector<std::string> errors;
    if (!smtpd::open_listeners(cfg, &prep.sockets, &errors)) {
        for (const auto& e : errors) std::cerr << e << "\n";
        return 1;
    }
    prep.tables = &tables;
    prep.tls_contexts = &tls_contexts;
    prep.relay_pkis = &relay_pkis;

    struct passwd unpriv {};
    std::string unpriv_name;
    if (root) {
        struct passwd* pw = getpwnam(kUnprivilegedUser);
        if (!pw) {
            log::error(std::string("user ") + kUnprivilegedUser +
                       " does not exist; create it with: useradd --system "
                       "--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " +
                       kUnprivilegedUser);
            return 1;
        }
        unpriv = *pw;
        unpriv_name = pw->pw_name;
        unpriv.pw_name = unpriv_name.data();
        if (!prepare_spool(paths.spool, unpriv.pw_uid, unpriv.pw_gid)) return 1;
    } else {
        unpriv.pw_uid = geteuid();
        unpriv.pw_gid = getegid();
    }
    if (!prepare_control_dir(paths.control, unpriv.pw_gid) ||
        !bind_control(paths.control, unpriv.pw_uid, unpriv.pw_gid, &prep.control))
        return 1;
    SocketFile control_file(paths.control);
    // The local enqueue socket, in the control socket's folder made above.
    std::string local_error;
    if (!smtpd::open_local_socket(cfg, paths.local_socket, &prep.sockets, &local_error)) {
        log::error(log::Line("cannot open the local socket").kv("path", paths.local_socket).kv("error", local_error));
        smtpd::close_listeners(prep.sockets);
        return 1;
    }
    SocketFile local_file(paths.local_socket);
    if (!o.foreground) daemonize();

    if (!root) {
        PidFile pid_file(paths.pid_file);
        prep.store_dir = paths.spool;
        prep.filter_specs = std::move(filter_specs);
        return serve(cfg, paths, std::move(prep));
    }
    util::Fd filter_parent, filter_child, forward_parent, forward_child;
    std::string channel_error;
    if (!filterhost::starter_channel(&filter_parent, &filter_child, &channel_error) ||
        !forward_channel(&forward_parent, &forward_child, &channel_error)) {
        log::error(log::Line("cannot make the filter or .forward channel").kv("error", channel_error));
        return 1;
    }

    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        log::error(log::Line("socketpair failed").kv("error", strerror(errno)));
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        log::error(log::Line("fork failed").kv("error", strerror(errno)));
        return 1;
    }
    if (child == 0) {
        close(sp[0]);
        filter_parent.reset();
        forward_parent.reset();
        // The spool may lie below folders _postern cannot pass (a checkout
        // under a 0700 home): enter it as root and work from there. The
        // channel's end, not PR_SET_PDEATHSIG (cleared by the uid change),
        // tells the child that the parent is gone.
        if (chdir(paths.spool.c_str()) != 0) {
            log::error(log::Line("cannot enter the spool").kv("path", paths.spool).kv("error", strerror(errno)));
            std::_Exit(1);
        }
        if (!drop_privileges(unpriv)) std::_Exit(1);
        prep.store_dir = ".";
        prep.priv_fd = sp[1];
        prep.filter_channel = std::move(filter_child);
        prep.forward_channel = std::move(forward_child);
        std::_Exit(serve(cfg, paths, std::move(prep)));
    }
    close(sp[1]);
    filter_child.reset();
    forward_child.reset();
    smtpd::close_listeners(prep.sockets);
    prep.control.reset();
    PidFile pid_file(paths.pid_file);
    return supervise(child, sp[0], cfg, paths, std::move(filter_specs), std::move(filter_parent),
                     std::move(forward_parent));
}

}  // namespace postern::daemon
