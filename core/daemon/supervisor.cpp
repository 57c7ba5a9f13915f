// posternd's parent process; see supervisor.hpp.
#include "daemon/supervisor.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>

#include "daemon/forward_channel.hpp"
#include "daemon/preflight.hpp"
#include "daemon/sandbox.hpp"
#include "daemon/serve.hpp"
#include "daemon/signals.hpp"
#include "delivery/launcher.hpp"
#include "delivery/privileged.hpp"
#include "event/poll_channel.hpp"
#include "filterhost/processes.hpp"
#include "filterhost/starter.hpp"
#include "smtpd/listen.hpp"
#include "smtpd/local_socket.hpp"
#include "util/log.hpp"
#include "util/privileges.hpp"

namespace postern::daemon {
namespace {

// How often the parent looks for replaced children that have ended.
constexpr uint64_t kTidyMs = 100;

// Each descriptor open now, with the file it stands for.
using Descriptors = std::map<int, std::pair<dev_t, ino_t>>;

Descriptors open_descriptors() {
    Descriptors out;
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
            if (s.fd < 0 && !smtpd::bind_tcp(ip, l.port, &s.fd, &err)) {
                // Linux refuses a wildcard and a specific address on one
                // port at once: the running listener holds it until the
                // old process has drained.
                if (err == std::strerror(EADDRINUSE))
                    err += " (a listener of the running configuration may hold this port: moving a port between "
                           "a wildcard and a specific address needs a restart)";
                errors->push_back(config::format({l.where, "listen on " + s.address + ": " + err}));
                continue;
            }
            out->push_back(s);
        }
    }
    return errors->size() == before;
}

// The parent's loop (one Supervisor a process).
uv_loop_t& process_loop() {
    static uv_loop_t loop{};
    return loop;
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
    std::vector<std::string> paused;  // as the child last said (posternctl pause)
    bool drain_sent = false;
    bool queue_free_sent = false;  // told that the children before it have ended
    bool lost = false;             // its channel closed: it has ended or is ending
    uint64_t lost_at = 0;
    bool reaped = false;
    int status = 0;
};

class Supervisor {
public:
    Supervisor(const Options& o, const passwd& unpriv, bool root, util::Fd control)
        : options_(o), unpriv_(unpriv), root_(root), control_(std::move(control)) {
        uv_loop_init(&loop_);
    }
    // The loop is not closed: handles of agents still running stay open
    // until the process ends.
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
    bool start_child(Child& c, const Descriptors* inherited, std::string* error);
    [[noreturn]] void child_main(Child& c, int channel, util::Fd filter_end, util::Fd forward_end,
                                 const Descriptors* inherited);
    Outcome reload(const char* why);
    void drain_old();
    void lost(Child* c);
    void tidy();
    void signal(int signo);

    const Options& options_;
    passwd unpriv_;
    bool root_;
    util::Fd control_;
    std::time_t started_ = std::time(nullptr);
    // Not in this object but in static storage: the loop is never closed,
    // and what it still holds when the process ends (agents' handles) stays
    // reachable to the end, for LeakSanitizer as for a reader.
    uv_loop_t& loop_ = process_loop();
    uv_signal_t term_{}, intr_{}, hup_{};
    uv_timer_t tidy_timer_{};
    std::unique_ptr<Child> current_;
    std::vector<std::unique_ptr<Child>> old_;  // replaced by a reload, draining or gone
    bool stop_asked_ = false;
};

// The serving process gains no privilege again and reaches only its own
// folders (daemon/sandbox.hpp): the spool and its tables' folders to write;
// its configuration's, plugins' and the system's folders to read.
void confine_serving(const config::Config& cfg, const Paths& paths, const std::string& config_file) {
    std::vector<std::string> extra = {config_file, paths.plugins, delivery::default_agent_path()};
    // The process works from its spool (child_main entered it): "." is the spool.
    Confinement c = serving_confinement(".", extra, table_files(cfg));
    for (const auto& t : cfg.tables)
        if (t.backend == "proc") c.no_landlock = "table " + t.name + " is a program this process starts";
    Confined done = confine(c);
    log::Line line("serving process confined");
    line.kv("no-new-privs", done.no_new_privs ? "yes" : "no");
    if (done.landlock_abi) line.kv("landlock-abi", static_cast<long long>(done.landlock_abi));
    else line.kv("landlock", done.why);
    log::info(line);
}

// In the new child, right after fork(). A child forked by a reload comes
// from a parent whose loop runs: libuv's signal handlers would pass this
// process's signals to that loop (the parent's signal pipe), so they are
// undone here; and what the parent held before the reload (the old
// process's channels and listeners, tables and files of the old
// configuration) is closed, so that a listener the new configuration drops
// really closes. A descriptor whose file changed since (reused by what the
// reload opened, or by libuv after the fork) is kept.
[[noreturn]] void Supervisor::child_main(Child& c, int channel, util::Fd filter_end, util::Fd forward_end,
                                         const Descriptors* inherited) {
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
    std::string err;
    if (root_ &&
        !util::become(unpriv_.pw_uid, unpriv_.pw_gid, util::groups_of(unpriv_.pw_name, unpriv_.pw_gid), &err)) {
        log::error(log::Line("cannot drop privileges").kv("user", unpriv_.pw_name).kv("error", err));
        std::_Exit(1);
    }
    confine_serving(c.loaded->cfg(), paths, options_.config_file);
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
    prep.at_rest = c.loaded->at_rest;
    prep.after_reload = inherited != nullptr;
    prep.paused = c.paused;
    prep.started = started_;
    std::_Exit(serve(c.loaded->cfg(), paths, std::move(prep)));
}

bool Supervisor::start_child(Child& c, const Descriptors* inherited, std::string* error) {
    util::Fd filter_parent, filter_child, forward_parent, forward_child;
    if (!event::seqpacket_pair(&filter_parent, &filter_child, error) ||
        !event::seqpacket_pair(&forward_parent, &forward_child, error))
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
    const config::Config& cfg = l.cfg();
    // As root, each agent becomes its recipient and opens its message only
    // beneath the spool, which belongs to the unprivileged user.
    delivery::SpawnOptions spawn{
        delivery::default_agent_path(),       l.paths.plugins, l.paths.mbox, root_, cfg.sub_addr_delim,
        root_ ? l.paths.spool : std::string()};
    spawn.at_rest = l.at_rest;
    c.launcher = std::make_unique<delivery::SpawnLauncher>(&loop_, std::move(spawn));
    // Filters run as their configured user: the parent starts them for the child.
    c.filter_procs = std::make_unique<filterhost::Processes>(&loop_, l.filter_specs);
    c.filter_server = std::make_unique<filterhost::StarterServer>(&loop_, std::move(filter_parent), *c.filter_procs);
    c.forward_server = std::make_unique<ForwardServer>(&loop_, std::move(forward_parent));
    Child* cp = &c;
    c.priv = std::make_unique<delivery::PrivServer>(&loop_, sp[0], cfg, l.paths.spool, *c.launcher,
                                                    [this, cp] { lost(cp); });
    c.priv->on_reload([this](delivery::PrivServer::ReloadReply answer) {
        Outcome r = reload("posternctl");
        answer(r.ok, r.errors);
        drain_old();  // after the answer: the asking process gets it before it drains
    });
    c.priv->on_paused([cp](std::vector<std::string> names) { cp->paused = std::move(names); });
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
        check_host(options_, root_, l, &out.errors, &tls_problems);
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
    next->paused = current_->paused;
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

int supervise(const Options& o, const passwd& unpriv, bool root, util::Fd control, std::unique_ptr<Loaded> first) {
    Supervisor supervisor(o, unpriv, root, std::move(control));
    return supervisor.run(std::move(first));
}

}  // namespace postern::daemon
