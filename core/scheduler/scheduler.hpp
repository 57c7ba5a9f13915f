// The scheduler: when each queued envelope is tried, and what its result does.
//
// First attempt at once; after the k-th temporary failure the next attempt is
// at creation + 10 s x k^2 for local delivery (10 s, 40 s, 1m30, 2m40 ...), as
// OpenSMTPD does; after the envelope's expiry it fails for good. An envelope
// leaves the spool only once its delivery is final, so a crash at any point
// means a retry, never a loss.
//
// Threads: everything here runs on the event loop, except two kinds of
// task, whose results are posted back to it (LoopPost): spool changes and
// reports, on one worker thread in order (worker_); and relay routing, whose
// table lookups may take seconds, on the scheduler's own routing threads
// (routing_): which batch a relay envelope joins, and where a batch goes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "delivery/kind.hpp"
#include "delivery/launcher.hpp"
#include "event/loop_work.hpp"
#include "queue/envelope.hpp"
#include "queue/store.hpp"
#include "scheduler/bouncer.hpp"
#include "scheduler/relay_route.hpp"

namespace postern::scheduler {

// When to try again after `retry` temporary failures (exposed for tests).
std::int64_t next_attempt(std::int64_t ctime, std::uint32_t retry, std::int64_t now, std::int64_t base = 10);

// How far the wall clock jumped between two looks (seconds; negative: set
// back), judged against the monotonic clock's progress; 0 within a few
// seconds' tolerance. Retry times are wall-clock seconds, timers monotonic.
std::int64_t clock_jump(std::int64_t wall_before, std::uint64_t mono_before_ms, std::int64_t wall_now,
                        std::uint64_t mono_now_ms);

class Scheduler {
public:
    // An envelope id's 16 hex digits as a number: the message id is its
    // high 32 bits, so a message's envelopes sit together in id order.
    using Id = std::uint64_t;
    // Routing: a relay envelope whose batch key a routing thread works out.
    enum class State { Ready, Waiting, Running, Routing };
    struct Stats {
        std::uint64_t delivered = 0, tempfail = 0, permfail = 0, expired = 0, removed = 0, quarantined = 0;
    };

    Scheduler(uv_loop_t* loop, const config::Config& config, queue::Store& store, delivery::Launcher& launcher,
              event::SerialWorker& worker, event::LoopPost& post, Bouncer& bouncer, RelayRouter& router);
    ~Scheduler();

    void enqueue(const std::vector<queue::Envelope>& envelopes);
    void enqueue(std::vector<queue::Packed> loaded);  // as the spool loads them
    void close();                                     // stop the timer; deliveries under way finish on their own

    // Administration (posternctl). `which` is "all", a message id or an envelope id.
    size_t size() const { return entries_.size(); }  // envelopes queued
    size_t message_count() const;
    std::optional<std::int64_t> oldest_ctime() const;
    // Every queued envelope in id order, each unpacked in turn.
    void for_each(const std::function<void(const queue::Envelope&, State)>& visit) const;
    std::optional<std::pair<queue::Envelope, State>> find(std::string_view id) const;
    size_t schedule(std::string_view which);  // try now; returns how many envelopes
    size_t remove(std::string_view which);    // delete without delivery or bounce
    // Local delivery and relaying pause apart (posternctl's "mda" and "mta").
    void pause(delivery::Pool pool);
    void resume(delivery::Pool pool);
    bool paused(delivery::Pool pool) const { return pool == delivery::Pool::Local ? paused_local_ : paused_relay_; }
    const Stats& stats() const { return stats_; }
    size_t running() const { return running_; }
    // Spool deletions of finished envelopes not written yet: a process that
    // ends before they are would leave delivered mail for the next one to
    // deliver again.
    bool removals_pending() const { return removing_ || !removals_.empty(); }

private:
    // What is held per queued envelope: with a million queued, this is
    // the scheduler's memory (issue 15: at most 1 KiB an envelope). The
    // envelope itself is kept packed and unpacked when it is worked on.
    struct Entry {
        std::string packed;          // queue::pack()
        std::string route;           // route_key(), while it is ready or under way
        std::int64_t next_try = 0;   // the attempt its waiting_ item is for
        std::uint64_t ready_at = 0;  // loop time (ms) it last became ready
        State state = State::Ready;
        bool removed = false;                         // removed by the admin while it was routed or delivered
        delivery::Kind kind = delivery::Kind::Local;  // of its method, set when it became ready
    };
    using Ids = std::vector<Id>;

    queue::Envelope envelope(Id id) const { return queue::unpack(id, entries_.at(id).packed); }
    void add(Id id, std::string packed, const queue::Envelope& e, std::int64_t now);
    void pump();
    Ids take_batch();
    void start(const Ids& ids);
    // Where an envelope's delivery goes: batches share a key; a route's
    // running agents are counted against its limit.
    std::string route_key(const queue::Envelope& e) const;
    bool eligible(delivery::Kind kind, const std::string& key) const;
    unsigned relay_limit(const std::string& key) const;  // connections at once for a relay route
    bool lingers(const Entry& e, const std::string& key, size_t ready_for_key);
    void make_ready(Id id, Entry& entry, const queue::Envelope& e);
    void set_ready(Id id, Entry& entry);
    void keyed(const std::string& lookup, const std::string& key);
    void routed(const Ids& ids, const config::Action& action, const std::string& key, const RelayRoute* route,
                const std::string& why);

    void use_route(const Ids& ids, const config::Action& action, const std::string& key, const RelayRoute* route,
                   const std::string& why);
    delivery::Job make_job(const Ids& ids, const config::Action& action, const RelayRoute* route) const;
    void fail_all(const Ids& ids, const std::string& why);
    void release_relay(const std::string& key);
    void release_route(const std::string& key);
    void launch(const Ids& ids, delivery::Job job, delivery::Kind kind, const std::string& key);
    void finish(Id id, const delivery::Result& r);
    void set_aside(Id id, const delivery::Result& r);
    void flush_removals();
    void wait_until(Id id, Entry& entry, std::int64_t when);
    void erase(Id id, const char* why);
    void hold_for_report(queue::Envelope e, bounce::Kind kind, const delivery::Result& r, std::string status,
                         bool relayed = false);
    void warn_if_due(queue::Envelope& e, const delivery::Result& r);
    void flush_reports(std::uint32_t msgid);
    bool settled(std::uint32_t msgid) const;  // no envelope of it ready or running
    Ids select(std::string_view which) const;
    void arm_timer();
    void on_timer();
    void notice_clock_jump();
    // The queue's size and oldest message for the metrics, after each change.
    void queued(std::int64_t ctime);
    void unqueued(std::int64_t ctime);

    uv_loop_t* loop_;
    const config::Config& config_;
    queue::Store& store_;
    delivery::Launcher& launcher_;
    event::SerialWorker& worker_;
    event::LoopPost& post_;
    Bouncer& bouncer_;
    RelayRouter& router_;
    unsigned running_ = 0;        // agent runs, local and relay (a stop waits for these)
    unsigned running_local_ = 0;  // of which local
    // Relay batches being routed or delivered.
    unsigned running_relay_ = 0;
    // Runs per route (local ones too), for their limits (eligible()).
    std::map<std::string, unsigned> running_per_route_;
    bool closed_ = false;
    bool paused_local_ = false, paused_relay_ = false;
    uv_timer_t timer_{};
    uv_timer_t linger_timer_{};  // pumps again when a held relay batch's wait ends
    // The wall clock (s) and the loop's clock (ms) at the last look, to notice a jump.
    std::int64_t seen_wall_ = 0;
    std::uint64_t seen_mono_ = 0;
    Stats stats_;
    std::map<Id, Entry> entries_;                   // every queued envelope, by id
    std::map<std::int64_t, std::uint32_t> ctimes_;  // how many were created each second: the oldest first
    std::deque<Id> ready_;                          // stale ids are skipped
    // (next attempt, id), the soonest on top; stale items are skipped.
    using Wait = std::pair<std::int64_t, Id>;
    std::priority_queue<Wait, std::vector<Wait>, std::greater<>> waiting_;
    // Final outcomes of a message waiting for its other envelopes, so that
    // one report covers them all; by message id.
    struct PendingReports {
        std::vector<Outcome> failed, delivered;
    };
    std::map<std::uint32_t, PendingReports> reports_;
    // Envelopes delivered or given up, to delete from the spool together.
    std::vector<queue::Envelope> removals_;
    bool removing_ = false;  // a removal batch is with the worker
    // Relay envelopes in State::Routing, by the table lookup their batch key
    // waits for (RelayRouter::key_lookup): one lookup serves them all.
    std::map<std::string, Ids> keying_;
    // Last: destroyed first, so that no routing task outlives what it uses.
    event::WorkerPool routing_;
};

}  // namespace postern::scheduler
