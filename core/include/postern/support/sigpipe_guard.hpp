// postern/support/sigpipe_guard.hpp — SigpipeGuard: no SIGPIPE from our own
// writes. Part of the plugin SDK: header-only, C++17, POSIX threads.
//
// A delivery plugin writes to pipes (mda) and sockets through libraries that
// use write(2) (OpenSSL): when the other end goes away, the kernel raises
// SIGPIPE, which would kill the agent instead of giving the plugin EPIPE.
// postern-local ignores SIGPIPE, but a plugin must not depend on its host for
// that. While a guard lives, SIGPIPE is blocked in this thread; on leaving, a
// SIGPIPE that our writes raised is taken off the pending set (one that was
// pending before is left alone) and the old mask comes back. A guard is
// per thread: create and destroy it on the same one.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <ctime>

namespace postern::util {

class SigpipeGuard {
public:
    SigpipeGuard() {
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, &old_);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    ~SigpipeGuard() {
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            sigset_t pipe_only;
            sigemptyset(&pipe_only);
            sigaddset(&pipe_only, SIGPIPE);
            const struct timespec zero {};
            while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t old_{};
    bool was_pending_ = false;
};

}  // namespace postern::util
