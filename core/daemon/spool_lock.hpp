// daemon/spool_lock.hpp — one scheduler at a time on a spool.
//
// A reload starts a new serving process while the old one still finishes
// its deliveries. Both read the same spool, and a message the old one is
// delivering is still in it: the new one must not load the queue (and
// deliver that message again) before the old one has ended. Whoever
// schedules deliveries holds an exclusive flock(2) on SPOOL/scheduler.lock
// for its whole life; the kernel drops it when the process ends, however it
// ends. The newcomer accepts mail at once but waits for the lock (polled on
// the loop) before it loads the queue.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "util/fd.hpp"

namespace postern::daemon {

class SpoolLock {
public:
    explicit SpoolLock(uv_loop_t* loop);
    ~SpoolLock();
    SpoolLock(const SpoolLock&) = delete;
    SpoolLock& operator=(const SpoolLock&) = delete;

    // Take the lock on `dir`/scheduler.lock, now or as soon as it is free,
    // then call `locked` on the loop (once). False with `error` when the
    // file cannot be opened at all.
    bool acquire(const std::string& dir, std::function<void()> locked, std::string* error);
    bool held() const { return held_; }
    // Stop waiting (the process stops before it got the lock).
    void cancel();

private:
    bool try_lock();
    void poll();

    uv_loop_t* loop_;
    uv_timer_t* timer_ = nullptr;  // freed in its close callback
    util::Fd fd_;
    bool held_ = false;
    uint64_t waiting_since_ = 0;  // loop time of the last log line about the wait
    std::function<void()> locked_;
};

}  // namespace postern::daemon
