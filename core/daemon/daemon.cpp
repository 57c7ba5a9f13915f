// posternd's start-up: read and check the configuration, open what needs
// the starting user's rights (listeners, control socket, spool, TLS keys),
// then hand over to the parent process (supervisor.hpp), which runs the
// serving process (serve.hpp) as the unprivileged user.
#include "daemon/daemon.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "control/server.hpp"
#include "daemon/configuration.hpp"
#include "daemon/preflight.hpp"
#include "daemon/signals.hpp"
#include "daemon/supervisor.hpp"
#include "scheduler/relay_route.hpp"
#include "smtpd/listen.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace postern::daemon {
namespace {

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

// The spool belongs to the unprivileged user: create it and, as root, hand
// it over (the serving process enters it before it drops root).
bool prepare_spool(const std::string& dir, bool root, uid_t uid, gid_t gid) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        log::error(log::Line("cannot create spool").kv("path", dir).kv("error", ec.message()));
        return false;
    }
    chmod(dir.c_str(), 0700);
    if (!root) return true;
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

}  // namespace

// Each relay agent holds two pipes in the parent and each session a socket
// in the child: 1000 of each do not fit the usual soft limit of 1024
// descriptors. Want 65536, or max-sessions and 1024 more for the rest
// (the serving process keeps about that much aside: smtpd/server.cpp).
// The soft limit goes up to the hard one; a daemon started as root (with
// CAP_SYS_RESOURCE) raises the hard limit too when it is below that, up to
// the kernel's fs.nr_open, rather than leave max-sessions out of reach. The
// children inherit the limits. Where the limit stays short, the serving
// process logs how many sessions it holds.
void raise_descriptor_limit(unsigned max_sessions) {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
    rlim_t want = std::max<rlim_t>(65536, rlim_t{max_sessions} + 1024);
    if (std::ifstream nr_open("/proc/sys/fs/nr_open"); nr_open) {
        rlim_t kernel_max = 0;
        if (nr_open >> kernel_max && kernel_max > 0) want = std::min(want, kernel_max);
    }
    if (r.rlim_max != RLIM_INFINITY && r.rlim_max < want && rlim_t{max_sessions} + 1024 > r.rlim_max) {
        rlimit raised{want, want};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
        log::warn(log::Line("cannot raise the descriptor hard limit")
                      .kv("limit", static_cast<long long>(r.rlim_max))
                      .kv("wanted", static_cast<long long>(want))
                      .kv("error", strerror(errno)));
    }
    if (r.rlim_max != RLIM_INFINITY) want = std::min(want, r.rlim_max);
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
    raise_descriptor_limit(cfg.max_sessions);

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
    } else {
        unpriv.pw_uid = geteuid();
        unpriv.pw_gid = getegid();
    }
    if (!prepare_spool(paths.spool, root, unpriv.pw_uid, unpriv.pw_gid)) return 1;
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

    PidFile pid_file(paths.pid_file);
    return supervise(o, unpriv, root, std::move(control), std::move(loaded));
}

}  // namespace postern::daemon
