// posternd's life: read the config, bind, split privileges, serve, stop.
//
// Started as root, posternd binds its sockets, prepares the spool for the
// _postern user, then forks. The child drops to _postern at once and runs
// everything that faces the network (SMTP sessions, rules, tables, queue,
// scheduler) on one event loop. The parent keeps root for one job: starting
// delivery agents as the recipient (delivery/privileged.hpp). Started as
// another user, posternd runs as one process with that user's rights.
#include "daemon/daemon.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "control/server.hpp"
#include "daemon/control_handler.hpp"
#include "daemon/forward_channel.hpp"
#include "daemon/preflight.hpp"
#include "daemon/spool_lock.hpp"
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
// How long a process replaced by a reload lets its sessions go on.
constexpr uint64_t kSessionDrainMs = 5 * 60 * 1000;

// Stop accepting on the listening sockets handed to the SMTP server, and
// only that: the sessions go on. A reloaded process accepts on the same
// sockets (shared with it), so they must not be shut down, only closed
// here. The server's handles are found by their descriptors; its own stop()
// later skips handles already closing.
void stop_accepting(uv_loop_t* loop, std::vector<int>& fds) {
    uv_walk(
        loop,
        [](uv_handle_t* h, void* arg) {
            const auto& fds = *static_cast<std::vector<int>*>(arg);
            if ((h->type != UV_TCP && h->type != UV_NAMED_PIPE) || uv_is_closing(h)) return;
            uv_os_fd_t fd;
            if (uv_fileno(h, &fd) != 0 || std::find(fds.begin(), fds.end(), fd) == fds.end()) return;
            uv_close(h, nullptr);
        },
        &fds);
}

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
    bool after_reload = false;  // started by a reload while the old process drains
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
    // Destroyed last: the lock is given up once everything this process
    // wrote to the spool is written (spool_lock.hpp).
    SpoolLock spool_lock(&loop);
    // The listeners' descriptors, to stop accepting on them when draining.
    std::vector<int> listener_fds;
    for (const auto& ls : prep.sockets) listener_fds.push_back(ls.fd);

    queue::Store store(prep.store_dir);
    std::string err;
    // Store::open() also clears incoming/ of messages a crash left half
    // written. A process started by a reload must not: the process it
    // replaces may be writing there (its sessions finish), and the folders
    // exist already.
    if (!prep.after_reload && !store.open(&err)) {
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
    // Until this process holds the spool lock, the queue is not loaded and
    // nothing is delivered: what sessions queue meanwhile waits here, and
    // is handed over with the loaded queue (enqueue() skips envelopes it
    // knows, so one found both ways is queued once).
    struct QueueState {
        bool loaded = false, closed = false;
        std::vector<queue::Envelope> early;
    } qstate;
    ctx.queued = [&scheduler, &qstate](const std::vector<queue::Envelope>& e) {
        if (qstate.closed) return;  // stopping or draining: in the spool for the next process
        if (!qstate.loaded) qstate.early.insert(qstate.early.end(), e.begin(), e.end());
        else scheduler.enqueue(e);
    };
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
    if (priv)
        control_handler.set_reload([priv](ControlHandler::ReloadDone done) { priv->request_reload(std::move(done)); });
    control::Server control(&loop, control_handler);
    // The socket file is the starter's (run()): a reload hands the same
    // socket to the next process, which must find the file still there.
    if (!control.listen_on(std::move(prep.control), paths.control, &err, true)) {
        log::error(log::Line("cannot open the control socket").kv("path", paths.control).kv("error", err));
        return 1;
    }

    auto load_queue = [&] {
        std::vector<std::string> corrupt;
        auto queued = store.load_all(&corrupt);
        for (const auto& c : corrupt) log::warn(log::Line("queue corrupt-envelope").kv("error", c));
        if (!queued.empty())
            log::info(log::Line("queue loaded").kv("envelopes", static_cast<long long>(queued.size())));
        qstate.loaded = true;
        scheduler.enqueue(queued);
        scheduler.enqueue(qstate.early);
        qstate.early.clear();
    };
    struct Signals {
        uv_signal_t term{}, intr{}, hup{};
        uv_timer_t drain{}, sessions{};
        std::function<void(bool unavailable)> stop;
        std::function<void()> reload, drain_check, begin_drain, sessions_check;
    } sig;
    int status = 0;
    bool stopping = false, draining = false;
    uint64_t stop_started = 0, drain_started = 0;
    // Deliveries under way report before the end (for up to kDrainMs), and
    // the spool forgets what they delivered, so that mail already delivered
    // is not tried again by the next process.
    sig.drain_check = [&] {
        bool can_report = !priv || !priv->broken();
        bool busy = scheduler.running() > 0 || scheduler.removals_pending();
        if (can_report && busy && uv_now(&loop) - stop_started < kDrainMs) return;
        uv_close(reinterpret_cast<uv_handle_t*>(&sig.drain), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&sig.sessions), nullptr);
        post.close();
        if (priv) priv->close();
    };
    sig.stop = [&](bool unavailable) {
        if (stopping) return;
        stopping = true;
        if (!unavailable) log::info("posternd stopping");
        qstate.closed = true;
        spool_lock.cancel();
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
    // A split daemon's parent reloads (it alone can open what a config
    // needs); a HUP that reaches this process too (sent to the group) is
    // the parent's to act on.
    sig.reload = [&] {
        if (!priv) reload_tables(&loop, tables, cfg);
    };
    // Replaced by a reloaded process: stop accepting (that process accepts
    // on the same sockets), let the sessions under way end under this
    // configuration (for up to kSessionDrainMs), start no more deliveries,
    // then stop as on SIGTERM, which waits for those under way.
    sig.sessions_check = [&] {
        if (stopping) return;
        if (server.session_count() > 0 && uv_now(&loop) - drain_started < kSessionDrainMs) return;
        if (server.session_count() > 0)
            log::warn(log::Line("posternd drain: sessions still open are closed")
                          .kv("sessions", static_cast<long long>(server.session_count())));
        sig.stop(false);
    };
    sig.begin_drain = [&] {
        if (stopping || draining) return;
        draining = true;
        log::info(log::Line("posternd draining: a reloaded process takes new connections")
                      .kv("sessions", static_cast<long long>(server.session_count())));
        stop_accepting(&loop, listener_fds);
        control.stop_listening();
        qstate.closed = true;
        spool_lock.cancel();
        scheduler.close();
        drain_started = uv_now(&loop);
        uv_timer_start(
            &sig.sessions, [](uv_timer_t* t) { static_cast<Signals*>(t->data)->sessions_check(); }, 0, 100);
    };
    if (priv) priv->on_drain([&] { sig.begin_drain(); });
    // Started by a reload: the processes replaced may still commit mail to
    // the spool (their sessions finish) or deliver from it; the parent says
    // when they have all ended. The lock then guards against anything else.
    bool lock_failed = false;
    auto take_queue = [&] {
        if (spool_lock.acquire(prep.store_dir, load_queue, &err)) return;
        log::error(log::Line("cannot lock the queue").kv("path", paths.spool).kv("error", err));
        lock_failed = true;
    };
    if (priv && prep.after_reload) {
        log::info("queue waits until the replaced process has ended");
        priv->on_queue_free([&] {
            if (stopping || draining) return;
            take_queue();
            if (lock_failed) {
                status = 1;
                sig.stop(true);
            }
        });
    } else {
        take_queue();
        if (lock_failed) return 1;
    }

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
    uv_timer_init(&loop, &sig.sessions);
    sig.sessions.data = &sig;
    auto on_stop = [](uv_signal_t* s, int) { static_cast<Signals*>(s->data)->stop(false); };
    uv_signal_start(&sig.term, on_stop, SIGTERM);
    uv_signal_start(&sig.intr, on_stop, SIGINT);
    uv_signal_start(
        &sig.hup, [](uv_signal_t* s, int) { static_cast<Signals*>(s->data)->reload(); }, SIGHUP);
    hold_stop_signals(false);

    // The listeners open once every filter they use is ready (or has failed
    // its first start: its sessions are then refused until it is back).
    filters.start([&] {
        if (stopping || draining) return;
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

// ---- the root parent ----

// What one configuration needs opened as root before a process can serve
// with it. On the heap and never moved: the TLS contexts are keyed by the
// addresses of the config's listeners.
struct Loaded {
    config::ParseResult pr;
    Paths paths;
    table::Registry tables;
    TlsContexts tls;
    scheduler::RelayPkis relay_pkis;
    std::vector<filterhost::ProcSpec> filter_specs;
    std::vector<smtpd::ListenSocket> sockets;  // the network listeners and the local socket
    const config::Config& cfg() const { return *pr.config; }
    ~Loaded() { smtpd::close_listeners(sockets); }
};

// The host checks of start-up and -n (preflight, filters, pki files).
// `tls_problems` are warnings at start-up when the contexts load anyway.
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
    l.filter_specs = filterhost::proc_specs(cfg, kUnprivilegedUser, root, host_problems);
}

// Bind a TCP listener (as smtpd/listen.cpp does at start-up).
bool bind_tcp(const std::string& ip, int port, int* out, std::string* error) {
    bool v6 = ip.find(':') != std::string::npos;
    util::Fd fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_storage ss{};
    socklen_t len = 0;
    int on = 1;
    if (fd) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (v6) {
        if (fd) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr);
        len = sizeof *sin6;
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(static_cast<uint16_t>(port));
        inet_pton(AF_INET, ip.c_str(), &sin->sin_addr);
        len = sizeof *sin;
    }
    if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd.get(), 511) != 0) {
        *error = strerror(errno);
        return false;
    }
    *out = fd.release();
    return true;
}

// The listeners of a reloaded configuration. An address the running one
// also listens on keeps its socket (a copy of it): connections that arrive
// during the switch wait in its queue for whichever process accepts, and
// none is refused. Others are bound anew; those only the old one had close
// with it.
bool reopen_listeners(const config::Config& cfg, const std::string& local_path,
                      const std::vector<smtpd::ListenSocket>& old, std::vector<smtpd::ListenSocket>* out,
                      std::vector<std::string>* errors) {
    size_t before = errors->size();
    auto reuse = [&](const std::string& address, bool local) {
        for (const auto& s : old)
            if (s.address == address && s.local == local) return fcntl(s.fd, F_DUPFD_CLOEXEC, 3);
        return -1;
    };
    for (const auto& l : cfg.listeners) {
        smtpd::ListenSocket s;
        s.listener = &l;
        if (l.socket) {
            s.address = "unix:" + local_path;
            s.local = true;
            s.fd = reuse(s.address, true);
            if (s.fd >= 0) {
                out->push_back(s);
                continue;
            }
            std::string err;
            if (!smtpd::open_local_socket(cfg, local_path, out, &err))
                errors->push_back(config::format({l.where, "listen on socket: " + err}));
            continue;
        }
        std::string err;
        auto addrs = smtpd::resolve_listen_target(l, &err);
        if (addrs.empty()) errors->push_back(config::format({l.where, "listen on " + l.on + ": " + err}));
        for (const auto& ip : addrs) {
            s.address = (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(l.port);
            s.fd = reuse(s.address, false);
            if (s.fd < 0 && !bind_tcp(ip, l.port, &s.fd, &err)) {
                errors->push_back(config::format({l.where, "listen on " + s.address + ": " + err}));
                continue;
            }
            out->push_back(s);
        }
    }
    return errors->size() == before;
}

// The descriptors open now, each with the file it stands for.
std::map<int, std::pair<dev_t, ino_t>> open_descriptors() {
    std::map<int, std::pair<dev_t, ino_t>> out;
    std::error_code ec;
    std::vector<int> fds;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        int fd = std::atoi(e.path().filename().c_str());
        if (fd > 2) fds.push_back(fd);
    }
    for (int fd : fds) {
        struct stat st {};
        if (fstat(fd, &st) == 0) out[fd] = {st.st_dev, st.st_ino};
    }
    return out;
}

// One serving child and what the parent runs for it.
struct Child {
    std::unique_ptr<Loaded> loaded;
    pid_t pid = -1;
    std::unique_ptr<delivery::SpawnLauncher> launcher;
    std::unique_ptr<filterhost::Processes> filter_procs;
    std::unique_ptr<filterhost::StarterServer> filter_server;
    std::unique_ptr<ForwardServer> forward_server;
    std::unique_ptr<delivery::PrivServer> priv;
    bool drain_sent = false;
    bool queue_free_sent = false;  // told that the children before it have ended
    bool lost = false;             // its channel closed: it has ended or is ending
    uint64_t lost_at = 0;
    bool reaped = false;
    int status = 0;
};

// How often the parent looks for replaced children that have ended.
constexpr uint64_t kTidyMs = 100;

class Supervisor {
public:
    Supervisor(const Options& o, const passwd& unpriv, util::Fd control)
        : options_(o), unpriv_(unpriv), control_(std::move(control)) {
        uv_loop_init(&loop_);
    }
    // The loop is not closed: handles of agents still running stay open
    // until the process ends, as they did in a single-child daemon.
    ~Supervisor() = default;
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Start the first child with `first`, serve until it ends; the exit status.
    int run(std::unique_ptr<Loaded> first);

private:
    struct Outcome {
        bool ok = false;
        std::vector<std::string> errors;
    };
    bool start_child(Child& c, const std::map<int, std::pair<dev_t, ino_t>>* inherited, std::string* error);
    [[noreturn]] void child_main(Child& c, int channel, util::Fd filter_end, util::Fd forward_end,
                                 const std::map<int, std::pair<dev_t, ino_t>>* inherited);
    Outcome reload(const char* why);
    void drain_old();
    void lost(Child* c);
    void tidy();
    void signal(int signo);

    const Options& options_;
    passwd unpriv_;
    util::Fd control_;
    uv_loop_t loop_{};
    uv_signal_t term_{}, intr_{}, hup_{};
    uv_timer_t tidy_timer_{};
    std::unique_ptr<Child> current_;
    std::vector<std::unique_ptr<Child>> old_;  // replaced by a reload, draining or gone
    bool stop_asked_ = false;
};

// In the new child, right after fork(). A child forked by a reload comes
// from a parent whose loop runs: libuv's signal handlers would pass this
// process's signals to that loop (the parent's signal pipe), so they are
// undone here; and what the parent held before the reload (the old
// process's channels and listeners, tables and files of the old
// configuration) is closed, so that a listener the new configuration drops
// really closes. A descriptor whose file changed since (reused by what the
// reload opened, or by libuv after the fork) is kept.
[[noreturn]] void Supervisor::child_main(Child& c, int channel, util::Fd filter_end, util::Fd forward_end,
                                         const std::map<int, std::pair<dev_t, ino_t>>* inherited) {
    // Its own copy of the control socket, taken before the parent's goes.
    util::Fd control(fcntl(control_.get(), F_DUPFD_CLOEXEC, 3));
    if (inherited) {
        uv_walk(
            &loop_,
            [](uv_handle_t* h, void*) {
                if (h->type == UV_SIGNAL) uv_signal_stop(reinterpret_cast<uv_signal_t*>(h));
            },
            nullptr);
        uv_signal_stop(&loop_.child_watcher);  // internal: uv_walk skips it
        closelog();
        for (const auto& [fd, id] : *inherited) {
            struct stat st {};
            if (fstat(fd, &st) == 0 && st.st_dev == id.first && st.st_ino == id.second) close(fd);
        }
    }
    const Paths& paths = c.loaded->paths;
    // The spool may lie below folders _postern cannot pass (a checkout
    // under a 0700 home): enter it as root and work from there. The
    // channel's end, not PR_SET_PDEATHSIG (cleared by the uid change),
    // tells the child that the parent is gone.
    if (chdir(paths.spool.c_str()) != 0) {
        log::error(log::Line("cannot enter the spool").kv("path", paths.spool).kv("error", strerror(errno)));
        std::_Exit(1);
    }
    if (!drop_privileges(unpriv_)) std::_Exit(1);
    Prepared prep;
    prep.store_dir = ".";
    prep.priv_fd = channel;
    prep.filter_channel = std::move(filter_end);
    prep.forward_channel = std::move(forward_end);
    prep.sockets = c.loaded->sockets;
    c.loaded->sockets.clear();  // the serving process owns them now
    prep.control = std::move(control);
    prep.tables = &c.loaded->tables;
    prep.tls_contexts = &c.loaded->tls;
    prep.relay_pkis = &c.loaded->relay_pkis;
    prep.after_reload = inherited != nullptr;
    std::_Exit(serve(c.loaded->cfg(), paths, std::move(prep)));
}

bool Supervisor::start_child(Child& c, const std::map<int, std::pair<dev_t, ino_t>>* inherited, std::string* error) {
    util::Fd filter_parent, filter_child, forward_parent, forward_child;
    if (!filterhost::starter_channel(&filter_parent, &filter_child, error) ||
        !forward_channel(&forward_parent, &forward_child, error))
        return false;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        *error = std::string("socketpair: ") + strerror(errno);
        return false;
    }
    // Stop and reload signals wait until the child has its own handlers
    // (serve() lets them through); the parent's mask is restored.
    sigset_t held, before;
    sigemptyset(&held);
    for (int n : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&held, n);
    sigprocmask(SIG_BLOCK, &held, &before);
    c.pid = fork();
    if (c.pid == 0) {
        close(sp[0]);
        filter_parent.reset();
        forward_parent.reset();
        child_main(c, sp[1], std::move(filter_child), std::move(forward_child), inherited);
    }
    sigprocmask(SIG_SETMASK, &before, nullptr);
    close(sp[1]);
    if (c.pid < 0) {
        *error = std::string("fork: ") + strerror(errno);
        close(sp[0]);
        return false;
    }
    const Loaded& l = *c.loaded;
    c.launcher = std::make_unique<delivery::SpawnLauncher>(&loop_, spawn_options(l.cfg(), l.paths, true));
    // Filters run as their configured user: root starts them for the child.
    c.filter_procs = std::make_unique<filterhost::Processes>(&loop_, l.filter_specs);
    c.filter_server = std::make_unique<filterhost::StarterServer>(&loop_, std::move(filter_parent), *c.filter_procs);
    c.forward_server = std::make_unique<ForwardServer>(&loop_, std::move(forward_parent));
    Child* cp = &c;
    c.priv = std::make_unique<delivery::PrivServer>(&loop_, sp[0], l.paths.spool, *c.launcher,
                                                    [this, cp] { lost(cp); });
    c.priv->on_reload([this](delivery::PrivServer::ReloadReply answer) {
        Outcome r = reload("posternctl");
        answer(r.ok, r.errors);
        drain_old();  // after the answer: the asking process gets it before it drains
    });
    return true;
}

// Read and check the configuration again, as start-up does, and start a
// child that serves with it; the running child stays when anything fails.
Supervisor::Outcome Supervisor::reload(const char* why) {
    log::info(log::Line("posternd reloading the configuration").kv("by", why));
    Outcome out;
    auto inherited = open_descriptors();
    auto next = std::make_unique<Child>();
    next->loaded = std::make_unique<Loaded>();
    Loaded& l = *next->loaded;
    l.pr = load_config(options_);
    for (const auto& w : l.pr.warnings) log::warn(config::format({w.where, "warning: " + w.message}));
    for (const auto& e : l.pr.errors) out.errors.push_back(config::format(e));
    const Loaded& now = *current_->loaded;
    if (out.errors.empty()) {
        std::vector<std::string> tls_problems;
        check_host(options_, true, l, &out.errors, &tls_problems);
        // What the daemon's processes share from start to end.
        std::string name = options_.config_file.empty() ? "<embedded default>" : options_.config_file;
        auto fixed = [&](const char* what, const std::string& was, const std::string& is) {
            if (was != is)
                out.errors.push_back(name + ": " + what + " changed from " + was + " to " + is +
                                     "; it cannot change on reload: restart posternd");
        };
        fixed("queue path", now.paths.spool, l.paths.spool);
        fixed("control socket", now.paths.control, l.paths.control);
        fixed("pidfile", now.paths.pid_file, l.paths.pid_file);
        for (const auto& p : tls_problems) log::warn(p);
        if (out.errors.empty() && load_tls(l.cfg(), &l.tls, &out.errors))
            scheduler::load_relay_pkis(l.cfg(), &l.relay_pkis, &out.errors);
        if (out.errors.empty()) reopen_listeners(l.cfg(), l.paths.local_socket, now.sockets, &l.sockets, &out.errors);
    }
    std::string err;
    if (out.errors.empty() && !start_child(*next, &inherited, &err))
        out.errors.push_back("cannot start the serving process: " + err);
    if (!out.errors.empty()) {
        log::error(log::Line("reload refused; the running configuration stays")
                       .kv("problems", static_cast<long long>(out.errors.size())));
        for (const auto& e : out.errors) log::error("reload refused: " + e);
        return out;
    }
    log::info(log::Line("configuration reloaded").kv("pid", static_cast<long long>(next->pid)));
    // The old child's listeners close with it; the parent keeps only the
    // new ones, for the next reload.
    smtpd::close_listeners(current_->loaded->sockets);
    old_.push_back(std::move(current_));
    current_ = std::move(next);
    out.ok = true;
    return out;
}

void Supervisor::drain_old() {
    for (auto& c : old_)
        if (!c->drain_sent && !c->lost) {
            c->drain_sent = true;
            c->priv->drain();
        }
}

// A child's channel closed. The current child ending ends the daemon (a
// supervisor starts a whole one again); a replaced one has drained.
void Supervisor::lost(Child* c) {
    c->lost = true;
    c->lost_at = uv_now(&loop_);
    c->filter_server.reset();
    c->forward_server.reset();
    if (c == current_.get()) uv_stop(&loop_);
}

// Reap replaced children and, once the filters they had have had their time
// to end, stop those that did not (filterhost::kKillGraceMs). Once every
// replaced child has ended, the current one may load the queue.
void Supervisor::tidy() {
    bool all_ended = true;
    for (auto& c : old_) {
        if (!c->reaped && waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
            c->reaped = true;
            log::info(log::Line("replaced process ended").kv("pid", static_cast<long long>(c->pid)));
        }
        if (c->lost && c->loaded && uv_now(&loop_) - c->lost_at > filterhost::kKillGraceMs + 1000) {
            c->filter_procs->stop_all();
            c->loaded.reset();  // its tables; the launcher and channel stay for agents still running
        }
        all_ended = all_ended && c->reaped;
    }
    if (all_ended && !current_->queue_free_sent) {
        current_->queue_free_sent = true;
        current_->priv->queue_free();
    }
}

void Supervisor::signal(int signo) {
    if (signo == SIGHUP) {
        reload("SIGHUP");
        drain_old();
        return;
    }
    stop_asked_ = true;
    for (auto& c : old_)
        if (!c->reaped) kill(c->pid, signo);
    kill(current_->pid, signo);
}

int Supervisor::run(std::unique_ptr<Loaded> first) {
    current_ = std::make_unique<Child>();
    current_->loaded = std::move(first);
    current_->queue_free_sent = true;  // nobody before it: it loads the queue at once
    std::string err;
    if (!start_child(*current_, nullptr, &err)) {
        log::error(log::Line("cannot start the serving process").kv("error", err));
        return 1;
    }
    for (auto [s, signo] : {std::pair{&term_, SIGTERM}, {&intr_, SIGINT}, {&hup_, SIGHUP}}) {
        uv_signal_init(&loop_, s);
        s->data = this;
        uv_signal_start(
            s, [](uv_signal_t* h, int n) { static_cast<Supervisor*>(h->data)->signal(n); }, signo);
        uv_unref(reinterpret_cast<uv_handle_t*>(s));
    }
    uv_timer_init(&loop_, &tidy_timer_);
    tidy_timer_.data = this;
    uv_timer_start(
        &tidy_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->tidy(); }, kTidyMs, kTidyMs);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tidy_timer_));
    hold_stop_signals(false);
    uv_run(&loop_, UV_RUN_DEFAULT);

    // The current child's channel is closed: it has ended or is ending (it
    // garbled the channel: make sure). Replaced children still draining end
    // with the daemon.
    int status = 0;
    pid_t child = current_->pid;
    current_->filter_procs->stop_all();
    if (waitpid(child, &status, WNOHANG) == 0) {
        kill(child, SIGTERM);
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    }
    for (auto& c : old_) {
        if (c->loaded) c->filter_procs->stop_all();
        if (c->reaped) continue;
        if (!stop_asked_) kill(c->pid, SIGTERM);
        while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR) {
        }
    }
    for (auto* s : {&term_, &intr_, &hup_}) uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&tidy_timer_), nullptr);
    // A child that ends on its own, even cleanly, is a daemon that stopped
    // serving: exit non-zero so that a supervisor starts it again.
    if (stop_asked_ && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
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
    auto loaded = std::make_unique<Loaded>();
    Loaded& l = *loaded;
    l.pr = load_config(o);
    for (const auto& w : l.pr.warnings) std::cerr << config::format({w.where, "warning: " + w.message}) << "\n";
    if (!l.pr.errors.empty()) {
        for (const auto& e : l.pr.errors) std::cerr << config::format(e) << "\n";
        return 1;
    }
    const config::Config& cfg = l.cfg();
    const bool root = geteuid() == 0;
    std::vector<std::string> host_problems, tls_problems;
    check_host(o, root, l, &host_problems, &tls_problems);
    const Paths& paths = l.paths;
    for (const auto& p : host_problems) std::cerr << p << "\n";
    if (o.check_only) {
        for (const auto& p : tls_problems) std::cerr << p << "\n";
        if (!tls_problems.empty() || !host_problems.empty()) return 1;
        std::cout << "configuration OK\n";
        return 0;
    }
    if (!host_problems.empty()) return 1;
    for (const auto& p : tls_problems) log::warn(p);
    std::vector<std::string> tls_errors;
    // Read as root, like the listeners' keys.
    if (!load_tls(cfg, &l.tls, &tls_errors) || !scheduler::load_relay_pkis(cfg, &l.relay_pkis, &tls_errors)) {
        for (const auto& e : tls_errors) std::cerr << e << "\n";
        return 1;
    }
    if (!make_state_dirs(o, paths)) return 1;
    raise_descriptor_limit();

    // Everything else that may need root is opened here, before the split:
    // the listeners and the control socket (its folder may be root's).
    std::vector<std::string> errors;
    if (!smtpd::open_listeners(cfg, &l.sockets, &errors)) {
        for (const auto& e : errors) std::cerr << e << "\n";
        return 1;
    }

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
    util::Fd control;
    if (!prepare_control_dir(paths.control, unpriv.pw_gid) ||
        !bind_control(paths.control, unpriv.pw_uid, unpriv.pw_gid, &control))
        return 1;
    SocketFile control_file(paths.control);
    // The local enqueue socket, in the control socket's folder made above.
    std::string local_error;
    if (!smtpd::open_local_socket(cfg, paths.local_socket, &l.sockets, &local_error)) {
        log::error(log::Line("cannot open the local socket").kv("path", paths.local_socket).kv("error", local_error));
        return 1;
    }
    SocketFile local_file(paths.local_socket);
    if (!o.foreground) daemonize();

    if (!root) {
        PidFile pid_file(paths.pid_file);
        Prepared prep;
        prep.store_dir = paths.spool;
        prep.filter_specs = std::move(l.filter_specs);
        prep.sockets = std::move(l.sockets);
        l.sockets.clear();
        prep.control = std::move(control);
        prep.tables = &l.tables;
        prep.tls_contexts = &l.tls;
        prep.relay_pkis = &l.relay_pkis;
        return serve(cfg, paths, std::move(prep));
    }
    PidFile pid_file(paths.pid_file);
    Supervisor supervisor(o, unpriv, std::move(control));
    return supervisor.run(std::move(loaded));
}

}  // namespace postern::daemon
