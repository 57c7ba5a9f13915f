// The signals that stop (TERM, INT) and reload (HUP) posternd.
#pragma once

#include <signal.h>

namespace postern::daemon {

// Held from start-up until the process that gets them has its handlers:
// one that came earlier (a log rotation's HUP) would otherwise end the
// daemon half started.
inline void hold_stop_signals(bool hold) {
    sigset_t set;
    sigemptyset(&set);
    for (int n : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, n);
    sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

}  // namespace postern::daemon
