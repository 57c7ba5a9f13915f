// plugins/mda/mda.cpp — delivery-mda.so, the `mda "COMMAND"` action (and the
// `|command` lines of alias tables, which the daemon turns into this method).
//
// Runs inside postern-local as the recipient. request.path is the command
// template chosen by the daemon from the admin's config or alias table
// (wrapped in its `mda wrapper` already, delivery/launcher.cpp), never from
// the envelope. The plugin fills it here, for this request's values
// (delivery/format.hpp, compiled in), and runs
//     /bin/sh -c SCRIPT sh VALUE1 VALUE2 ...
// where SCRIPT is the admin's text with each %{...} replaced by a quoted
// "${N}" and VALUEn are the (sanitised) values: shell syntax written by the
// admin (pipes, redirections, ;) works, and no envelope value is ever parsed
// by the shell (the CVE-2020-7247 class). The command also finds the values
// unchanged in its environment, the complete environment being
//     PATH=/usr/bin:/bin  SHELL=/bin/sh  HOME  USER  LOGNAME
//     SENDER  RECIPIENT (dest)  ORIGINAL_RECIPIENT (rcpt)
//     LOCAL  DOMAIN (parts of dest)  EXTENSION (the +tag of rcpt, "" if none)
// Its standard input is
//     Return-Path: <sender>
//     Delivered-To: dest
//     <message as spooled>
// its standard output is discarded, and the first line of its standard error
// (at most 512 bytes; blank lines skipped) becomes the failure text. It runs
// in HOME when that is a folder the user can enter, else in "/".
//
// Result, with the enhanced status code of Postfix's sysexits table (the
// bounce quotes it): exit 0 delivered; 71 EX_OSERR and 75 EX_TEMPFAIL
// temporary (4.3.0); any other exit permanent, "mda: command exited N:
// <stderr line>", 64 EX_USAGE 5.3.0, 65 EX_DATAERR 5.6.0, 66 EX_NOINPUT 5.3.0,
// 67 EX_NOUSER 5.1.1, 68 EX_NOHOST 5.1.2, 69 EX_UNAVAILABLE 5.3.0, 70
// EX_SOFTWARE 5.3.0, 72 EX_OSFILE 5.3.0, 73 EX_CANTCREAT 5.2.0, 74 EX_IOERR
// 5.3.0, 76 EX_PROTOCOL 5.5.0, 77 EX_NOPERM 5.7.0, 78 EX_CONFIG 5.3.5, others
// 5.3.0; killed by a signal temporary (4.3.0). A command that exits without
// reading all of its input is judged by its exit status alone (EPIPE is
// expected, not an error). A template that cannot be filled: wrong (a site
// configuration mistake) temporary 4.3.5, not for these values permanent
// 5.3.0.
//
// Time limit: 540 s (9 minutes), under the daemon's 10-minute limit for the
// whole agent, so that it is this plugin that ends the command and reports it.
// The option "timeout=N" (1 <= N <= 540, seconds) shortens it. The command
// runs in a session of its own; at the limit its whole process group is killed
// with SIGKILL and the result is temporary. Every child is reaped on every
// path: no zombie is left behind.
//
// Options: "timeout=N" as above; "subaddr-delim=C" (the launcher's, from
// `smtp sub-addr-delim`; '+' without it) for %{...:strip}; any other word is
// a temporary failure (a site configuration mistake, fixable without
// bouncing mail).
#include <postern/delivery.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/format.hpp"
#include "postern/support/address.hpp"
#include "postern/support/fd.hpp"
#include "postern/support/sigpipe_guard.hpp"

namespace {

using postern::delivery::FormatError;
using postern::delivery::ShellCommand;
using postern::util::Fd;
using postern::util::SigpipeGuard;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = 65536;
constexpr int kMaxTimeoutSeconds = 540;
constexpr size_t kErrLineMax = 512;  // bytes of the stderr line kept for the reason
constexpr size_t kErrKeep = 8192;    // stderr head held while the command runs
constexpr int kTickMs = 50;          // exit polling when pidfd_open is unavailable
constexpr int kDrainReads = 64;      // bounded reads of stderr after the exit

// What became of one delivery: a POSTERN_* status, the reason, and the
// RFC 3463 code the daemon puts in a report ("" = the class's default).
struct Failure {
    int status = POSTERN_TEMPFAIL;
    std::string reason;
    std::string enhanced;
};

constexpr const char* kSiteError = "4.3.5";  // the site's configuration is wrong: fixable, so the mail waits

Failure sys_failure(const std::string& what, int err) {
    return {POSTERN_TEMPFAIL, "mda: " + what + ": " + std::strerror(err), "4.3.0"};
}

// A command's exit status as Postfix reads sendmail's sysexits (its
// sys_exits table): temporary or not, and the enhanced status code.
struct ExitMeaning {
    int code;
    bool temporary;
    const char* enhanced;
};
constexpr ExitMeaning kSysExits[] = {
    {64, false, "5.3.0"},  // EX_USAGE
    {65, false, "5.6.0"},  // EX_DATAERR
    {66, false, "5.3.0"},  // EX_NOINPUT
    {67, false, "5.1.1"},  // EX_NOUSER
    {68, false, "5.1.2"},  // EX_NOHOST
    {69, false, "5.3.0"},  // EX_UNAVAILABLE
    {70, false, "5.3.0"},  // EX_SOFTWARE
    {71, true, "4.3.0"},   // EX_OSERR
    {72, false, "5.3.0"},  // EX_OSFILE
    {73, false, "5.2.0"},  // EX_CANTCREAT
    {74, false, "5.3.0"},  // EX_IOERR
    {75, true, "4.3.0"},   // EX_TEMPFAIL
    {76, false, "5.5.0"},  // EX_PROTOCOL
    {77, false, "5.7.0"},  // EX_NOPERM
    {78, false, "5.3.5"},  // EX_CONFIG
};

ExitMeaning exit_meaning(int code) {
    for (const ExitMeaning& m : kSysExits)
        if (m.code == code) return m;
    return {code, false, "5.3.0"};  // any other failure: permanent, as OpenSMTPD and Postfix have it
}

struct Options {
    int timeout = kMaxTimeoutSeconds;
    char subaddr_delim = '+';
};

// "subaddr-delim=C": one printable character, not a space nor '@', as the
// config allows for `smtp sub-addr-delim`.
bool parse_delim(std::string_view value, char* out) {
    if (value.size() != 1 || value[0] <= ' ' || value[0] > '~' || value[0] == '@') return false;
    *out = value[0];
    return true;
}

bool parse_options(std::string_view options, Options* o, Failure* f) {
    int* timeout = &o->timeout;
    while (!options.empty()) {
        size_t sp = options.find(' ');
        std::string_view word = options.substr(0, sp);
        options = sp == std::string_view::npos ? std::string_view{} : options.substr(sp + 1);
        if (word.empty()) continue;
        if (word.starts_with("timeout=")) {
            std::string_view num = word.substr(8);
            int n = 0;
            auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
            if (ec == std::errc() && end == num.data() + num.size() && n >= 1 && n <= kMaxTimeoutSeconds) {
                *timeout = n;
                continue;
            }
            *f = {POSTERN_TEMPFAIL,
                  "mda: option \"" + std::string(word) + "\": expected timeout=N with N from 1 to " +
                      std::to_string(kMaxTimeoutSeconds),
                  kSiteError};
            return false;
        }
        if (word.starts_with("subaddr-delim=")) {
            if (parse_delim(word.substr(14), &o->subaddr_delim)) continue;
            *f = {POSTERN_TEMPFAIL,
                  "mda: option \"" + std::string(word) + "\": expected subaddr-delim=C with one printable character",
                  kSiteError};
            return false;
        }
        *f = {POSTERN_TEMPFAIL, "mda: unknown option \"" + std::string(word) + "\"", kSiteError};
        return false;
    }
    return true;
}

// The whole environment of the command, and nothing inherited.
std::vector<std::string> command_env(const postern_delivery_request& req) {
    auto s = [](const char* p) { return std::string(p ? p : ""); };
    std::string dest = s(req.dest), rcpt = s(req.rcpt);
    std::string_view rcpt_local = postern::util::local_part(rcpt);
    size_t plus = rcpt_local.find('+');
    std::string extension(plus == std::string_view::npos ? std::string_view{} : rcpt_local.substr(plus + 1));
    return {
        "PATH=/usr/bin:/bin",
        "SHELL=/bin/sh",
        "HOME=" + s(req.home),
        "USER=" + s(req.user),
        "LOGNAME=" + s(req.user),
        "SENDER=" + s(req.sender),
        "RECIPIENT=" + dest,
        "ORIGINAL_RECIPIENT=" + rcpt,
        "LOCAL=" + std::string(postern::util::local_part(dest)),
        "DOMAIN=" + std::string(postern::util::domain_part(dest)),
        "EXTENSION=" + extension,
    };
}

// HOME when the user can enter it; "/" otherwise, so a missing home folder
// does not stop delivery to a command that does not need it.
std::string working_dir(const postern_delivery_request& req) {
    struct stat st {};
    if (req.home && *req.home == '/' && ::stat(req.home, &st) == 0 && S_ISDIR(st.st_mode) &&
        ::access(req.home, X_OK) == 0)
        return req.home;
    return "/";
}

// The running command: /bin/sh, leader of its own session and process group.
// Destroying an unreaped Child kills the group and reaps the leader.
class Child {
public:
    Child() = default;
    ~Child() {
        if (pid_ > 0) {
            kill_group();
            wait_blocking();
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // Start `sh -c script sh params...` with the given fds as stdin and stderr.
    int spawn(const ShellCommand& command, std::vector<std::string>& env, const std::string& cwd, int in, int err);

    // SIGKILL to every process of the command's group (the leader is not yet
    // reaped, so its pid still names this group and cannot have been reused).
    void kill_group() const {
        if (pid_ > 0) ::kill(-pid_, SIGKILL);
    }
    // True once the leader has exited; *wstatus is then its wait status.
    bool try_reap(int* wstatus) {
        if (pid_ <= 0) return true;
        pid_t r = ::waitpid(pid_, &status_, WNOHANG);
        if (r == pid_ || (r < 0 && errno == ECHILD)) pid_ = -1;
        *wstatus = status_;
        return pid_ <= 0;
    }
    int wait_blocking() {
        while (pid_ > 0) {
            pid_t r = ::waitpid(pid_, &status_, 0);
            if (r == pid_ || (r < 0 && errno != EINTR)) pid_ = -1;
        }
        return status_;
    }
    // Readable when the leader exits; invalid when the kernel has no pidfd.
    int pidfd() const { return pidfd_.get(); }

private:
    pid_t pid_ = -1;
    int status_ = 0;
    Fd pidfd_;
};

int Child::spawn(const ShellCommand& command, std::vector<std::string>& env, const std::string& cwd, int in, int err) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (int rc = posix_spawn_file_actions_init(&fa); rc != 0) return rc;
    if (int rc = posix_spawnattr_init(&attr); rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    posix_spawn_file_actions_adddup2(&fa, in, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);  // nothing of the agent's leaks in
#endif

    // A session of its own, so the time limit can kill the whole group; signals
    // that the agent ignores or blocks (SIGPIPE) back to normal for the command.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2, SIGXFSZ})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    // The values are sh's positional parameters ($0 is "sh"): never parsed.
    std::vector<std::string> args = {"sh", "-c", command.script, "sh"};
    args.insert(args.end(), command.params.begin(), command.params.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return rc;
    pid_ = pid;
#ifdef SYS_pidfd_open
    pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#endif
    return 0;
}

// The first line the command wrote to stderr, from a bounded head: the
// first thing a failing program says is its reason (Postfix's pipe(8) and
// local(8) quote it too); what follows is often usage text or a trace.
class StderrHead {
public:
    void append(std::string_view data) {
        if (head_.size() < kErrKeep) head_.append(data.substr(0, kErrKeep - head_.size()));
    }
    std::string first_line() const {
        std::string_view t = head_;
        while (!t.empty() && (t.front() == '\n' || t.front() == '\r')) t.remove_prefix(1);
        t = t.substr(0, t.find('\n'));
        while (!t.empty() && t.back() == '\r') t.remove_suffix(1);
        std::string line(t.substr(0, kErrLineMax));
        for (char& c : line)  // the reason must stay one printable line
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
        return line;
    }

private:
    std::string head_;
};

// The parent's side of the command's stdin and stderr.
struct Streams {
    int message_fd = -1;
    Fd in;                // write end of the command's stdin, non-blocking
    Fd err;               // read end of the command's stderr, non-blocking
    std::string pending;  // bytes read but not yet written
    size_t off = 0;
    bool message_eof = false;
    StderrHead head;
};

bool set_nonblocking(int fd) {
    int fl = ::fcntl(fd, F_GETFL);
    return fl >= 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

// Next chunk of the message into s.pending; closes stdin at the end.
bool refill(Streams& s, Failure* f) {
    s.pending.resize(kChunk);
    s.off = 0;
    for (;;) {
        ssize_t n = ::read(s.message_fd, s.pending.data(), kChunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *f = sys_failure("read message", errno);
            s.pending.clear();
            return false;
        }
        s.pending.resize(static_cast<size_t>(n));
        if (n == 0) {
            s.message_eof = true;
            s.in.reset();  // end of input for the command
        }
        return true;
    }
}

void write_some(Streams& s) {
    ssize_t n = ::write(s.in.get(), s.pending.data() + s.off, s.pending.size() - s.off);
    if (n > 0) {
        s.off += static_cast<size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        s.in.reset();  // EPIPE: the command stopped reading; its exit status decides
    }
}

// One read of stderr; false at its end.
bool read_err(Streams& s) {
    char buf[4096];
    ssize_t n = ::read(s.err.get(), buf, sizeof buf);
    if (n > 0) {
        s.head.append(std::string_view(buf, static_cast<size_t>(n)));
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    s.err.reset();
    return false;
}

enum class End { Exited, TimedOut, Failed };

// Feed stdin and collect stderr until the command exits, time runs out or the
// message cannot be read. Bounded by `deadline`.
End pump(Child& child, Streams& s, Clock::time_point deadline, int* wstatus, Failure* f) {
    for (;;) {
        if (child.try_reap(wstatus)) return End::Exited;
        auto now = Clock::now();
        if (now >= deadline) return End::TimedOut;
        if (s.in && s.off == s.pending.size() && !refill(s, f)) return End::Failed;

        pollfd fds[3];
        nfds_t n = 0;
        int in_at = -1, err_at = -1;
        if (s.in) fds[in_at = static_cast<int>(n++)] = {s.in.get(), POLLOUT, 0};
        if (s.err) fds[err_at = static_cast<int>(n++)] = {s.err.get(), POLLIN, 0};
        if (child.pidfd() >= 0) fds[n++] = {child.pidfd(), POLLIN, 0};
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        int wait_ms = static_cast<int>(std::min<long long>(left, child.pidfd() >= 0 ? 60'000 : kTickMs));
        int r = ::poll(fds, n, wait_ms);
        if (r < 0 && errno != EINTR) {
            *f = sys_failure("poll", errno);
            return End::Failed;
        }
        if (r <= 0) continue;
        if (err_at >= 0 && fds[err_at].revents) read_err(s);
        if (in_at >= 0 && fds[in_at].revents) write_some(s);
    }
}

Failure exit_result(int wstatus, const std::string& line) {
    if (WIFSIGNALED(wstatus))
        return {POSTERN_TEMPFAIL, "mda: command killed by signal " + std::to_string(WTERMSIG(wstatus)), "4.3.0"};
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    if (code == 0) return {POSTERN_OK, "", ""};
    std::string reason = "mda: command exited " + std::to_string(code) + (line.empty() ? "" : ": " + line);
    ExitMeaning m = exit_meaning(code);
    return {m.temporary ? POSTERN_TEMPFAIL : POSTERN_PERMFAIL, reason, m.enhanced};
}

// The command for this request: the template filled with its values. A
// wrong template waits for the config's fix; values it cannot take bounce.
bool prepare(const postern_delivery_request& req, char delim, ShellCommand* out, Failure* f) {
    auto s = [](const char* p) { return std::string_view(p ? p : ""); };
    postern::delivery::FormatValues v;
    v.sender = s(req.sender);
    v.rcpt = s(req.rcpt);
    v.dest = s(req.dest);
    v.user = s(req.user);
    v.home = s(req.home);
    v.subaddr_delim = delim;
    auto r = postern::delivery::expand_command(s(req.path), v);
    if (r) {
        *out = std::move(*r.command);
        return true;
    }
    bool value = r.error.kind == FormatError::Kind::Value;
    *f = {value ? POSTERN_PERMFAIL : POSTERN_TEMPFAIL,
          "mda: cannot expand the command \"" + std::string(s(req.path)) + "\" at byte " +
              std::to_string(r.error.offset) + ": " + r.error.text,
          value ? "5.3.0" : kSiteError};
    return false;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\n") == std::string_view::npos; }

bool run(const postern_delivery_request& req, Failure* f) {
    if (blank(req.path ? req.path : "")) {
        *f = {POSTERN_PERMFAIL, "mda: no command given", "5.3.5"};
        return false;
    }
    Options options;
    if (!parse_options(req.options ? req.options : "", &options, f)) return false;
    const int timeout = options.timeout;
    ShellCommand command;
    if (!prepare(req, options.subaddr_delim, &command, f)) return false;

    int in_fds[2], err_fds[2];
    if (::pipe2(in_fds, O_CLOEXEC) != 0) {
        *f = sys_failure("pipe", errno);
        return false;
    }
    Fd in_r(in_fds[0]), in_w(in_fds[1]);
    if (::pipe2(err_fds, O_CLOEXEC) != 0) {
        *f = sys_failure("pipe", errno);
        return false;
    }
    Fd err_r(err_fds[0]), err_w(err_fds[1]);
    if (!set_nonblocking(in_w.get()) || !set_nonblocking(err_r.get())) {
        *f = sys_failure("fcntl", errno);
        return false;
    }

    SigpipeGuard guard;
    auto env = command_env(req);
    Child child;
    if (int rc = child.spawn(command, env, working_dir(req), in_r.get(), err_w.get()); rc != 0) {
        *f = sys_failure("cannot run /bin/sh", rc);
        return false;
    }
    in_r.reset();  // only the command holds these ends now, so EOF and EPIPE work
    err_w.reset();

    Streams s;
    s.message_fd = req.message_fd;
    s.in = std::move(in_w);
    s.err = std::move(err_r);
    std::string sender = req.sender ? req.sender : "";
    s.pending = "Return-Path: <" + sender + ">\nDelivered-To: " + std::string(req.dest ? req.dest : "") + "\n";

    int wstatus = 0;
    End end = pump(child, s, Clock::now() + std::chrono::seconds(timeout), &wstatus, f);
    if (end != End::Exited) {
        // Kill before closing stdin: a command must never see EOF after a
        // truncated message and deliver it.
        child.kill_group();
        child.wait_blocking();
        if (end == End::TimedOut)
            *f = {POSTERN_TEMPFAIL, "mda: command timed out after " + std::to_string(timeout) + " s and was killed",
                  "4.3.0"};
        return false;
    }
    s.in.reset();
    // What the command wrote before exiting is in the pipe already; a
    // background child still holding stderr is not waited for.
    for (int i = 0; i < kDrainReads && s.err && read_err(s); ++i) {
    }
    *f = exit_result(wstatus, s.head.first_line());
    return f->status == POSTERN_OK;
}

// One delivery, at the C ABI's edge: a bad request or an exception (none may
// cross it) is a temporary failure.
Failure deliver_one(const postern_delivery_request* req) noexcept {
    Failure f{POSTERN_TEMPFAIL, "mda: unexpected error", "4.3.0"};
    try {
        if (!req || req->struct_size < POSTERN_DELIVERY_REQUEST_MIN_SIZE) f.reason = "mda: request struct too small";
        else if (run(*req, &f)) f = {POSTERN_OK, "", ""};
    } catch (const std::exception& e) {  // bad_alloc
        f = {POSTERN_TEMPFAIL, std::string("mda: ") + e.what(), "4.3.0"};
    } catch (...) {
    }
    return f;
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    Failure f = deliver_one(req);
    if (err && errlen) std::snprintf(err, errlen, "%s", f.reason.c_str());
    return f.status;
}

// One by one (the daemon gives an mda job one delivery anyway); through
// here, the agent passes on the enhanced status code, which `deliver` has no
// room for.
void deliver_many(const postern_delivery_request* const* reqs, size_t n,
                  postern_delivery_result* const* results) noexcept {
    for (size_t i = 0; i < n; ++i) {
        postern_delivery_result* res = results[i];
        if (!POSTERN_HAS_MEMBER(res, struct postern_delivery_result, text)) continue;
        Failure f = deliver_one(reqs[i]);
        res->status = f.status;
        std::snprintf(res->text, sizeof res->text, "%s", f.reason.c_str());
        if (POSTERN_HAS_MEMBER(res, struct postern_delivery_result, enhanced))
            std::snprintf(res->enhanced, sizeof res->enhanced, "%s", f.enhanced.c_str());
    }
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "mda", deliver, deliver_many,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
