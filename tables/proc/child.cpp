// tables/proc/child.cpp — see child.hpp.
//
// posix_spawn rather than fork: lookups run on worker threads of a
// multi-threaded daemon, where only async-signal-safe calls may follow a
// fork; glibc's posix_spawn (clone + exec) also reports a failed exec to us.
#include "child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace postern::proctable {
namespace {

// posix_spawn's file actions and attributes, destroyed however we leave.
struct SpawnSetup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    SpawnSetup() {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
    }
    ~SpawnSetup() {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::string describe(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const char* name = sigabbrev_np(WTERMSIG(status));
        return "killed by signal " + std::to_string(WTERMSIG(status)) + (name ? std::string(" (SIG") + name + ")" : "");
    }
    return "ended (status " + std::to_string(status) + ")";
}

// waitpid that survives EINTR; returns the pid, 0 (still running) or -1.
pid_t wait_for(pid_t pid, int* status, int flags) {
    for (;;) {
        pid_t r = ::waitpid(pid, status, flags);
        if (r >= 0 || errno != EINTR) return r;
    }
}

}  // namespace

std::variant<Child, std::string> Child::spawn(const Config& config) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
        return std::string("socketpair: ") + std::strerror(errno);
    util::Fd ours(sp[0]), theirs(sp[1]);
    // dup2 onto 0 must clear close-on-exec: a source that already is 0-2
    // would be dup2'ed onto itself, which keeps the flag. Move it out of the way.
    if (theirs.get() <= 2) {
        theirs.reset(::fcntl(theirs.get(), F_DUPFD_CLOEXEC, 3));
        if (!theirs) return std::string("fcntl: ") + std::strerror(errno);
    }

    SpawnSetup s;
    posix_spawn_file_actions_adddup2(&s.actions, theirs.get(), STDIN_FILENO);
    // The line protocol answers on stdout; an imsg program writes to its
    // stdin socket and keeps the daemon's stdout, as OpenSMTPD 6.8 left it.
    if (config.protocol == Protocol::Line) posix_spawn_file_actions_adddup2(&s.actions, theirs.get(), STDOUT_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
#endif
    // The daemon blocks its stop signals and ignores SIGPIPE; the program
    // starts with the defaults, in its own session (no terminal's ^C).
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&s.attr, &none);
    posix_spawnattr_setsigdefault(&s.attr, &all);
    posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);

    std::vector<char*> argv;
    std::string argv0 = config.name, argv1 = config.argument;
    argv.push_back(argv0.data());
    if (!argv1.empty()) argv.push_back(argv1.data());
    argv.push_back(nullptr);

    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, config.program.c_str(), &s.actions, &s.attr, argv.data(), environ);
    if (rc != 0) return config.program + ": " + std::strerror(rc);
    return Child(pid, std::move(ours));
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), fd_(std::move(other.fd_)), ended_(std::move(other.ended_)) {}

Child::~Child() { stop(std::chrono::milliseconds(0)); }

std::string Child::stop(std::chrono::milliseconds grace) {
    fd_.reset();
    if (pid_ <= 0) return ended_;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + grace;
    for (;;) {
        pid_t r = wait_for(pid_, &status, WNOHANG);
        if (r == pid_) {
            ended_ = describe(status);
            break;
        }
        if (r < 0) {  // not our child any more (reaped elsewhere)
            ended_ = "ended";
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            ended_ = wait_for(pid_, &status, 0) == pid_ ? describe(status) : "ended";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    return ended_;
}

}  // namespace postern::proctable
