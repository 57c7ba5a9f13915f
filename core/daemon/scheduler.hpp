// The scheduler: when each queued envelope is tried, and what its result does.
//
// First attempt at once; after the k-th temporary failure the next attempt is
// at creation + 10 s x k^2 for local delivery (10 s, 40 s, 1m30, 2m40 ...), as
// OpenSMTPD does; after the envelope's expiry it fails for good. An envelope
// leaves the spool only once its delivery is final, so a crash at any point
// means a retry, never a loss. Spool changes run on one worker thread, in order.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "config/config.hpp"
#include "daemon/loop_work.hpp"
#include "delivery/launcher.hpp"
#include "queue/envelope.hpp"
#include "queue/store.hpp"

namespace postern::daemon {

// When to try again after `retry` temporary failures (exposed for tests).
std::int64_t next_attempt(std::int64_t ctime, std::uint32_t retry, std::int64_t now, std::int64_t base = 10);

class Scheduler {
public:
    Scheduler(uv_loop_t* loop, const config::Config& config, queue::Store& store, delivery::Launcher& launcher,
              SerialWorker& worker, unsigned max_running = 32);
    ~Scheduler();

    void enqueue(const std::vector<queue::Envelope>& envelopes);
    void close();  // stop the timer; deliveries under way finish on their own

    size_t queued() const { return ready_.size() + waiting_.size() + running_; }

private:
    void pump();
    void start(queue::Envelope e);
    void finish(queue::Envelope e, const delivery::Result& r);
    void arm_timer();
    void on_timer();

    uv_loop_t* loop_;
    const config::Config& config_;
    queue::Store& store_;
    delivery::Launcher& launcher_;
    SerialWorker& worker_;
    unsigned max_running_;
    unsigned running_ = 0;
    bool closed_ = false;
    uv_timer_t timer_{};
    std::deque<queue::Envelope> ready_;
    std::multimap<std::int64_t, queue::Envelope> waiting_;  // by next attempt
};

}  // namespace postern::daemon
