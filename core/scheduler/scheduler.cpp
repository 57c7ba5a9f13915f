// The scheduler; see scheduler.hpp.
#include "scheduler/scheduler.hpp"

#include "metrics/registry.hpp"

#include <algorithm>
#include <ctime>
#include <memory>

#include "queue/store_files.hpp"
#include "util/log.hpp"

namespace postern::scheduler {
namespace {

std::string delay_text(std::int64_t s) {
    if (s <= 0) return "0s";
    std::string out;
    const std::pair<std::int64_t, char> units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (auto [n, u] : units)
        if (s >= n) {
            out += std::to_string(s / n) + u;
            s %= n;
        }
    return out;
}

std::string delivery_method(const config::Config& config, const queue::Envelope& e) {
    if (!e.method.empty()) return e.method;
    const config::Action* a = config.find_action(e.action);
    return a ? a->method : "";
}

delivery::Kind kind_of(const config::Config& config, const queue::Envelope& e) {
    return delivery::kind_of(delivery_method(config, e));
}

using queue::files::hex_value;
using queue::files::is_lower_hex;

// The ids of a message's envelopes: [first, last].
std::pair<Scheduler::Id, Scheduler::Id> message_range(std::uint32_t msgid) {
    Scheduler::Id first = Scheduler::Id{msgid} << 32;
    return {first, first | 0xffffffffu};
}

std::uint32_t msgid_of(Scheduler::Id id) { return static_cast<std::uint32_t>(id >> 32); }

}  // namespace

std::int64_t next_attempt(std::int64_t ctime, std::uint32_t retry, std::int64_t now, std::int64_t base) {
    std::int64_t k = retry;
    std::int64_t t = ctime + base * k * k;
    while (t <= now) {
        ++k;
        t = ctime + base * k * k;
    }
    // Never more than one step of the schedule ahead: after the wall clock
    // was set back, ctime and every slot after it lie in the future, and a
    // clock set back a day would hold the envelope a day.
    return std::min(t, now + base * std::max<std::int64_t>(2 * k - 1, 1));
}

// The tolerance covers time()'s whole seconds and a loop time (uv_now())
// that lags behind while a callback runs.
std::int64_t clock_jump(std::int64_t wall_before, std::uint64_t mono_before_ms, std::int64_t wall_now,
                        std::uint64_t mono_now_ms) {
    constexpr std::int64_t kTolerance = 5;
    std::int64_t expected = wall_before + static_cast<std::int64_t>((mono_now_ms - mono_before_ms) / 1000);
    std::int64_t jump = wall_now - expected;
    return jump > kTolerance || jump < -kTolerance ? jump : 0;
}

// Threads that work out relay routes, each of which may wait on a slow
// table; apart from libuv's pool, so that they never hold up the SMTP
// sessions' own lookups.
constexpr unsigned kRoutingThreads = 4;

Scheduler::Scheduler(uv_loop_t* loop, const config::Config& config, queue::Store& store, delivery::Launcher& launcher,
                     event::SerialWorker& worker, event::LoopPost& post, Bouncer& bouncer, RelayRouter& router)
    : loop_(loop), config_(config), store_(store), launcher_(launcher), worker_(worker), post_(post), bouncer_(bouncer),
      router_(router), routing_(kRoutingThreads) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    uv_timer_init(loop_, &linger_timer_);
    linger_timer_.data = this;
    seen_wall_ = std::time(nullptr);
    seen_mono_ = uv_now(loop_);
}

Scheduler::~Scheduler() = default;

void Scheduler::close() {
    if (closed_) return;  // a draining process closes it early, then stops
    closed_ = true;
    // Routings not started are dropped: their envelopes stay in the spool
    // and are tried at the next start. Those under way post to a closed loop.
    routing_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&linger_timer_), nullptr);
}

// The route key is worked out once, not at every scan. A relay's may need a
// table: that lookup goes to a routing thread, and envelopes waiting for the
// same lookup (the recipients of one domain) share it, then become ready
// together, so that they still go out in one batch.
void Scheduler::make_ready(Id id, Entry& entry, const queue::Envelope& e) {
    entry.kind = kind_of(config_, e);
    const config::Action* action = config_.find_action(e.action);
    std::string lookup = entry.kind == delivery::Kind::Relay && action ? RelayRouter::key_lookup(*action, e)
                                                                       : std::string();
    if (lookup.empty()) {
        entry.route = route_key(e);
        return set_ready(id, entry);
    }
    entry.state = State::Routing;
    auto [waiting, first] = keying_.try_emplace(lookup);
    waiting->second.push_back(id);
    if (!first) return;
    routing_.submit([this, action, e, lookup] {
        std::string key = "relay\n" + router_.batch_key(*action, e);
        post_.post([this, lookup, key = std::move(key)] { keyed(lookup, key); });
    });
}

void Scheduler::set_ready(Id id, Entry& entry) {
    entry.state = State::Ready;
    entry.ready_at = uv_now(loop_);
    ready_.push_back(id);
}

// On the loop: the batch key a routing thread found for the envelopes that
// waited for `lookup`.
void Scheduler::keyed(const std::string& lookup, const std::string& key) {
    auto waiting = keying_.extract(lookup);
    if (closed_ || waiting.empty()) return;
    for (Id id : waiting.mapped()) {
        auto it = entries_.find(id);
        if (it == entries_.end() || it->second.state != State::Routing) continue;
        if (it->second.removed) {
            erase(id, "Removed by administrator");
            continue;
        }
        it->second.route = key;
        set_ready(id, it->second);
    }
    pump();
}

void Scheduler::enqueue(const std::vector<queue::Envelope>& envelopes) {
    std::int64_t now = std::time(nullptr);
    for (const auto& e : envelopes) {
        // The spool checked the ids: one that is not its 16 hex digits never gets here.
        if (!is_lower_hex(e.id, 16)) log::error(log::Line("queue bad-envelope-id").kv("evpid", e.id));
        else add(hex_value(e.id), queue::pack(e), e, now);
    }
    pump();
    arm_timer();
}

void Scheduler::enqueue(std::vector<queue::Packed> loaded) {
    std::int64_t now = std::time(nullptr);
    for (auto& p : loaded) {
        queue::Envelope e = queue::unpack(p.id, p.bytes);
        add(p.id, std::move(p.bytes), e, now);
    }
    pump();
    arm_timer();
}

void Scheduler::add(Id id, std::string packed, const queue::Envelope& e, std::int64_t now) {
    auto [it, fresh] = entries_.try_emplace(id);
    if (!fresh) return;  // already known: never deliver one envelope twice
    it->second.packed = std::move(packed);
    queued(e.ctime);
    // A retry time written before the wall clock was set back is held to
    // one step of the schedule from now (next_attempt()).
    std::int64_t when = std::min(e.next_try, next_attempt(e.ctime, e.retry, now));
    if (when < e.next_try) {
        queue::Envelope moved = e;
        moved.next_try = when;
        it->second.packed = queue::pack(moved);
    }
    if (when > now) wait_until(id, it->second, when);
    else make_ready(id, it->second, e);
}

// Deliveries that share a plugin and an account (and, relayed, a
// destination) go to one agent run, up to their kind's batch limit
// (delivery/kind.hpp).
constexpr size_t kLookahead = 512;    // envelopes that could start, looked at per batch
constexpr size_t kScanLimit = 20000;  // envelopes looked at per batch, held back ones included
// Agent runs at once: local ones (each may write a user's mailbox) and relay
// ones (each holds one outbound connection), and relay runs per destination
// (`mta limit max-conn-per-relay` for a smarthost, `max-conn-per-domain` for a
// recipient domain routed by MX), so that one slow destination cannot take
// every slot.
constexpr unsigned kMaxLocalRuns = 32;
constexpr unsigned kMaxRelayRuns = 1000;
// Local runs at once for one route (action and account): their agents write
// into one mailbox, where more of them only contend for its folder's lock
// (a profile at 20 sessions to one maildir: a fifth of the agents' time
// spinning on it), while what waits meanwhile goes in the next batch, which
// a living agent takes at once. Postfix's local(8) allows 2 per recipient.
constexpr unsigned kMaxLocalRunsPerRoute = 4;

std::string Scheduler::route_key(const queue::Envelope& e) const {
    std::string method = delivery_method(config_, e);
    const config::Action* a = config_.find_action(e.action);
    if (delivery::kind_of(method) == delivery::Kind::Relay && a) return "relay\n" + router_.batch_key(*a, e);
    return method + "\n" + e.action + "\n" + e.user + "\n" + e.account;
}

bool Scheduler::eligible(delivery::Kind kind, const std::string& key) const {
    delivery::Pool pool = delivery::info(kind).pool;
    if (paused(pool)) return false;
    auto it = running_per_route_.find(key);
    unsigned on_route = it == running_per_route_.end() ? 0 : it->second;
    if (pool == delivery::Pool::Local) return running_local_ < kMaxLocalRuns && on_route < kMaxLocalRunsPerRoute;
    return running_relay_ < kMaxRelayRuns && on_route < relay_limit(key);
}

// `mta limit max-conn-per-relay` for a smarthost; for a domain routed by MX,
// its own `mta limit for domain D max-conn-per-domain`, else the global one.
unsigned Scheduler::relay_limit(const std::string& key) const {
    if (!RelayRouter::is_mx_key(key)) return config_.mta_max_conn_per_relay;
    const std::string_view domain = std::string_view(key).substr(key.rfind("\nmx ") + 4);
    auto it = config_.mta_max_conn_for_domain.find(table::lowercase(domain));
    return it != config_.mta_max_conn_for_domain.end() ? it->second : config_.mta_max_conn_per_domain;
}

void Scheduler::pump() {
    while (!closed_) {
        auto batch = take_batch();
        if (batch.empty()) return;
        start(batch);
    }
}

// While a relay agent already works for a route, a new one for it waits
// until kRelayGather messages are ready or the first of them has waited
// kRelayLingerMs: a process start per one or two messages is what a busy
// relay would otherwise pay (tests/bench/relay.sh measured 3.7 messages per
// connection at C=20 without this).
constexpr size_t kRelayGather = 8;
constexpr std::uint64_t kRelayLingerMs = 100;

bool Scheduler::lingers(const Entry& e, const std::string& key, size_t ready_for_key) {
    if (e.kind != delivery::Kind::Relay || !running_per_route_.count(key) || ready_for_key >= kRelayGather)
        return false;
    std::uint64_t waited = uv_now(loop_) - e.ready_at;
    if (waited >= kRelayLingerMs) return false;
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&linger_timer_)))
        uv_timer_start(
            &linger_timer_, [](uv_timer_t* t) { static_cast<Scheduler*>(t->data)->pump(); }, kRelayLingerMs - waited,
            0);
    return true;
}

// The first ready envelope that may start now (its kind not paused, its
// route under its limit and not lingering), with others of the same route
// up to its kind's batch limit.
Scheduler::Ids Scheduler::take_batch() {
    // Envelopes whose route cannot start now (paused, at its limit) do not
    // use up the lookahead, so that they cannot starve the others; the scan
    // itself stays bounded.
    std::vector<std::pair<Id, std::string>> seen;  // (id, route key) in queue order
    std::map<std::string, size_t> per_key;
    size_t scanned = 0;
    for (auto it = ready_.begin(); it != ready_.end() && seen.size() < kLookahead && scanned < kScanLimit; ++scanned) {
        auto e = entries_.find(*it);
        if (e == entries_.end() || e->second.state != State::Ready) {
            it = ready_.erase(it);  // stale
            continue;
        }
        const std::string& k = e->second.route;
        if (!eligible(e->second.kind, k)) {
            ++it;
            continue;
        }
        ++per_key[k];
        seen.emplace_back(*it, k);
        ++it;
    }
    const std::string* key = nullptr;
    size_t limit = 0;
    for (const auto& [id, k] : seen) {
        const Entry& en = entries_.at(id);
        if (!lingers(en, k, per_key[k])) {
            key = &k;
            limit = delivery::info(en.kind).batch_limit;
            // `scheduler limit max-evp-batch-size N`: smaller batches still.
            if (config_.scheduler_max_evp_batch > 0) limit = std::min<size_t>(limit, config_.scheduler_max_evp_batch);
            break;
        }
    }
    Ids batch;
    if (!key) return batch;
    for (const auto& [id, k] : seen) {
        Entry& en = entries_.at(id);
        if (batch.size() >= limit) break;
        if (k != *key || en.state != State::Ready) continue;  // (an id may sit in ready_ twice)
        en.state = State::Running;                            // its id left in ready_ is now stale
        batch.push_back(id);
    }
    return batch;
}

void Scheduler::start(const Ids& ids) {
    const Entry& head = entries_.at(ids.front());
    queue::Envelope first = envelope(ids.front());
    const config::Action* action = config_.find_action(first.action);
    // The config changed under a queued envelope: keep it, an admin can fix the config.
    if (!action) return fail_all(ids, "no action named " + first.action + " in the config");
    if (head.kind != delivery::Kind::Relay) return launch(ids, make_job(ids, *action, nullptr), head.kind, head.route);
    // A relay batch's route may read tables: a routing thread works it out.
    // The batch counts against its route's limit from now on, so that no
    // second batch starts for the route meanwhile.
    ++running_relay_;
    ++running_per_route_[head.route];
    if (!RelayRouter::route_reads_tables(*action)) {  // quick: no queue behind a slow table
        RelayRoute route;
        std::string why;
        bool ok = router_.route(*action, first, &route, &why);
        return use_route(ids, *action, head.route, ok ? &route : nullptr, why);
    }
    routing_.submit([this, ids, action, first = std::move(first), key = head.route] {
        auto route = std::make_shared<RelayRoute>();
        std::string why;
        bool ok = router_.route(*action, first, route.get(), &why);
        post_.post([this, ids, action, key, route = ok ? route : nullptr, why] {
            routed(ids, *action, key, route.get(), why);
        });
    });
}

// On the loop: a relay batch's route from a routing thread (null when it
// cannot be had now).
void Scheduler::routed(const Ids& ids, const config::Action& action, const std::string& key, const RelayRoute* route,
                       const std::string& why) {
    if (closed_) return;  // the batch stays in the spool, tried at the next start
    use_route(ids, action, key, route, why);
    pump();
}

void Scheduler::use_route(const Ids& ids, const config::Action& action, const std::string& key, const RelayRoute* route,
                          const std::string& why) {
    if (!route) {
        release_relay(key);
        fail_all(ids, why);
        flush_removals();
    } else {
        launch(ids, make_job(ids, action, route), delivery::Kind::Relay, key);
    }
}

// The batch waits for a later attempt.
void Scheduler::fail_all(const Ids& ids, const std::string& why) {
    delivery::Result r{delivery::Result::Status::TempFail, why};
    for (Id id : ids) finish(id, r);
}

// One agent run's work: relayed with `route`, else delivered by the action's
// (or the envelope's) method.
delivery::Job Scheduler::make_job(const Ids& ids, const config::Action& action, const RelayRoute* route) const {
    const queue::Envelope first = envelope(ids.front());
    delivery::Job job;
    job.action = action.name;
    // An expansion may have turned the recipient into a file or a command.
    job.method = first.method.empty() ? action.method : first.method;
    job.user = first.user;
    job.account = first.account;
    // Options only the action's own method reads; a command from an alias
    // runs through mda, which takes none of them.
    if (job.method == action.method) job.options = action.junk ? "junk" : action.lmtp_rcpt_to ? "rcpt-to" : "";
    if (!action.wrapper.empty()) job.wrapper = config_.mda_wrappers.at(action.wrapper);
    if (route) {
        job.options = route->options;
        job.secret = route->secret;
    }
    for (Id id : ids) {
        const queue::Envelope e = envelope(id);
        std::string path = route ? route->path : e.method.empty() ? action.path : e.path;
        std::string sender = route ? router_.wire_sender(action.relay, e) : e.sender;
        job.items.push_back({sender, e.rcpt, e.dest, path, e.msgid, store_.message_path(e.msgid), "", ""});
        job.items.back().expanded = !route && !e.method.empty();
        if (route) RelayRouter::dsn_params(e, &job.items.back().mail_params, &job.items.back().rcpt_params);
    }
    return job;
}

void Scheduler::release_relay(const std::string& key) {
    --running_relay_;
    release_route(key);
}

void Scheduler::release_route(const std::string& key) {
    if (--running_per_route_[key] == 0) running_per_route_.erase(key);
}

// A relay batch was counted against its route when it started (start()).
void Scheduler::launch(const Ids& ids, delivery::Job job, delivery::Kind kind, const std::string& key) {
    bool local = delivery::info(kind).pool == delivery::Pool::Local;
    ++running_;
    if (local) {
        ++running_local_;
        ++running_per_route_[key];
    }
    auto& took = metrics::process().histogram("postern_delivery_agent_seconds",
                                              "How long one delivery agent run took, by kind (local or relay)",
                                              {{"kind", local ? "local" : "relay"}});
    // A result the agent reports is finished at once (its removal starts),
    // not when the whole batch is: a crash in between would make that
    // delivery again. The batch's end then skips it.
    auto finished = std::make_shared<std::vector<char>>(ids.size(), 0);
    job.progress = [this, ids, finished](std::size_t i, const delivery::Result& r) {
        if (i >= ids.size() || (*finished)[i]) return;
        (*finished)[i] = 1;
        finish(ids[i], r);
        flush_removals();
    };
    launcher_.launch(job, [this, ids, local, key, &took, finished,
                           started = std::chrono::steady_clock::now()](std::vector<delivery::Result> results) {
        took.observe(std::chrono::steady_clock::now() - started);
        --running_;
        if (local) {
            --running_local_;
            release_route(key);
        } else {
            release_relay(key);
        }
        for (size_t i = 0; i < ids.size(); ++i)
            if (!(*finished)[i])
                finish(ids[i], i < results.size() ? results[i]
                                                  : delivery::Result{delivery::Result::Status::TempFail, "no result"});
        flush_removals();
        pump();
    });
}

void Scheduler::finish(Id id, const delivery::Result& r) {
    Entry& entry = entries_.at(id);
    if (entry.removed) {
        erase(id, "Removed by administrator");
        return;
    }
    if (r.unreadable) return set_aside(id, r);
    queue::Envelope e = queue::unpack(id, entry.packed);
    std::int64_t now = std::time(nullptr);
    auto status = r.status;
    std::string stat = r.text + (r.dsn_handed_on ? " (DSN handed on)" : "");
    bool expired = status == delivery::Result::Status::TempFail && now >= e.expire;
    if (expired) {
        status = delivery::Result::Status::PermFail;
        stat = "Envelope expired (last error: " + r.text + ")";
        ++stats_.expired;
    }
    const char* result = status == delivery::Result::Status::Ok         ? "Ok"
                         : status == delivery::Result::Status::TempFail ? "TempFail"
                                                                        : "PermFail";
    const bool relayed = delivery::kind_of(delivery_method(config_, e)) == delivery::Kind::Relay;
    metrics::process()
        .counter("postern_deliveries_total", "Delivery attempts, by action and result (Ok, TempFail, PermFail)",
                 {{"action", e.action}, {"result", result}})
        .inc();
    if (status == delivery::Result::Status::Ok)
        metrics::process()
            .histogram("postern_queue_wait_seconds", "From a message's acceptance to its delivery, per recipient")
            .observe(static_cast<double>(now - e.ctime));
    log::info(log::Line(relayed ? "mta delivery" : "mda delivery")
                  .kv("evpid", e.id)
                  .kv("from", e.sender)
                  .kv("to", e.dest)
                  .kv("user", e.user)
                  .kv("delay", delay_text(now - e.ctime))
                  .kv("result", result)
                  .kv("stat", stat));
    if (status == delivery::Result::Status::TempFail) {
        ++stats_.tempfail;
        ++e.retry;
        e.last_try = now;
        e.next_try = next_attempt(e.ctime, e.retry, now);
        e.errorline = r.text;
        warn_if_due(e, r);
        entry.packed = queue::pack(e);
        wait_until(id, entry, e.next_try);
        worker_.submit([this, e = std::move(e)] {
            std::string err;
            if (!store_.update(e, &err))
                log::error(log::Line("queue update-failed").kv("evpid", e.id).kv("error", err));
        });
        arm_timer();
        return;
    }
    if (status == delivery::Result::Status::Ok) {
        ++stats_.delivered;
        // Relayed to a server that took the DSN request over: it reports, not us.
        if (!r.dsn_handed_on && Bouncer::wanted(e, bounce::Kind::Delivered)) {
            entries_.erase(id);
            hold_for_report(std::move(e), bounce::Kind::Delivered, r, "2.0.0", relayed);
        } else {
            erase(id, nullptr);
        }
    } else {
        ++stats_.permfail;
        // An expired envelope's report gives the reason it expired, not its last reply.
        std::string code = expired ? "5.4.7" : r.enhanced.empty() ? "5.0.0" : r.enhanced;
        if (Bouncer::wanted(e, bounce::Kind::Failed)) {
            entries_.erase(id);
            hold_for_report(std::move(e), bounce::Kind::Failed, expired ? delivery::Result{status, stat} : r, code);
        } else {
            erase(id, nullptr);
        }
    }
    flush_reports(msgid_of(id));
}

// A message the spool cannot decode (damaged, or written with another key):
// out of the schedule and into quarantine/ (Store::quarantine), with a line
// in the log; never delivered garbled, never retried, never deleted.
void Scheduler::set_aside(Id id, const delivery::Result& r) {
    auto it = entries_.find(id);
    queue::Envelope e = queue::unpack(id, it->second.packed);
    entries_.erase(it);
    unqueued(e.ctime);
    ++stats_.quarantined;
    log::warn(
        log::Line("queue quarantine").kv("evpid", e.id).kv("from", e.sender).kv("to", e.dest).kv("reason", r.text));
    worker_.submit([this, e = std::move(e)] {
        std::string err;
        if (!store_.quarantine(e, &err))  // still queued: set aside at its next attempt, after a restart
            log::error(log::Line("queue quarantine-failed").kv("evpid", e.id).kv("error", err));
    });
    flush_reports(msgid_of(id));
}

// A final outcome that needs a report: the envelope has left the schedule
// (the caller erased its entry), and leaves the spool once its report is queued.
void Scheduler::hold_for_report(queue::Envelope e, bounce::Kind kind, const delivery::Result& r, std::string status,
                                bool relayed) {
    unqueued(e.ctime);
    auto& pending = reports_[msgid_of(hex_value(e.id))];
    (kind == bounce::Kind::Failed ? pending.failed : pending.delivered)
        .push_back(Outcome{std::move(e), std::move(status), r, relayed});
}

bool Scheduler::settled(std::uint32_t msgid) const {
    auto [first, last] = message_range(msgid);
    for (auto it = entries_.lower_bound(first); it != entries_.end() && it->first <= last; ++it)
        if (it->second.state != State::Waiting) return false;
    return true;
}

// Once no envelope of the message is ready or running, one report per kind
// covers every final outcome collected so far.
void Scheduler::flush_reports(std::uint32_t msgid) {
    auto it = reports_.find(msgid);
    if (it == reports_.end() || !settled(msgid)) return;
    PendingReports pending = std::move(it->second);
    reports_.erase(it);
    worker_.submit([this, pending = std::move(pending)] {
        std::vector<queue::Envelope> queued;
        for (auto [kind, outcomes] : {std::pair{bounce::Kind::Failed, &pending.failed},
                                      std::pair{bounce::Kind::Delivered, &pending.delivered}}) {
            if (outcomes->empty()) continue;
            std::vector<queue::Envelope> fresh;
            std::string log;
            bool done = bouncer_.report(kind, *outcomes, &fresh, &log);
            log::info(log::Line("queue report").kv("msgid", outcomes->front().envelope.msgid).kv("result", log));
            if (!done) continue;  // the originals stay in the spool: tried again after a restart
            for (const auto& o : *outcomes) {
                std::string err;
                if (!store_.remove(o.envelope, &err))
                    log::error(log::Line("queue remove-failed").kv("evpid", o.envelope.id).kv("error", err));
            }
            queued.insert(queued.end(), fresh.begin(), fresh.end());
        }
        if (!queued.empty()) post_.post([this, queued = std::move(queued)]() mutable { enqueue(std::move(queued)); });
    });
}

// `bounce warn-interval`: tell the sender once per interval that the message is late.
void Scheduler::warn_if_due(queue::Envelope& e, const delivery::Result& r) {
    const auto& intervals = config_.bounce_warn_interval;
    if (e.warnings >= intervals.size() || !Bouncer::wanted(e, bounce::Kind::Delayed)) return;
    if (std::time(nullptr) - e.ctime < intervals[e.warnings].count()) return;
    ++e.warnings;
    Outcome o{e, r.enhanced.empty() ? "4.0.0" : r.enhanced, r};
    worker_.submit([this, o = std::move(o)] {
        std::vector<queue::Envelope> fresh;
        std::string log;
        bouncer_.report(bounce::Kind::Delayed, {o}, &fresh, &log);
        log::info(log::Line("queue delay-notice").kv("evpid", o.envelope.id).kv("result", log));
        if (!fresh.empty()) post_.post([this, fresh = std::move(fresh)]() mutable { enqueue(std::move(fresh)); });
    });
}

namespace {

void set_queue_gauges(std::size_t envelopes, const std::map<std::int64_t, std::uint32_t>& ctimes) {
    metrics::process()
        .gauge("postern_queue_envelopes", "Envelopes in the queue (one per recipient)")
        .set(static_cast<std::int64_t>(envelopes));
    metrics::process()
        .age_gauge("postern_queue_oldest_envelope_age_seconds", "Age of the oldest envelope in the queue")
        .set(ctimes.empty() ? 0 : ctimes.begin()->first);
}

}  // namespace

void Scheduler::queued(std::int64_t ctime) {
    ++ctimes_[ctime];
    set_queue_gauges(entries_.size(), ctimes_);
}

void Scheduler::unqueued(std::int64_t ctime) {
    if (auto it = ctimes_.find(ctime); it != ctimes_.end() && --it->second == 0) ctimes_.erase(it);
    set_queue_gauges(entries_.size(), ctimes_);
}

void Scheduler::wait_until(Id id, Entry& entry, std::int64_t when) {
    entry.state = State::Waiting;
    entry.next_try = when;
    entry.route = std::string();  // worked out again when it is next ready
    waiting_.emplace(when, id);
}

// Forget an envelope whose fate is settled and delete it from the spool.
void Scheduler::erase(Id id, const char* why) {
    auto it = entries_.find(id);
    queue::Envelope e = queue::unpack(id, it->second.packed);
    entries_.erase(it);
    unqueued(e.ctime);
    if (why) {
        ++stats_.removed;
        log::info(log::Line("queue remove").kv("evpid", e.id).kv("from", e.sender).kv("to", e.dest).kv("stat", why));
    }
    removals_.push_back(std::move(e));
    flush_removals();
}

// Spool deletions go to the worker in batches, one at a time, so that a busy
// queue syncs each folder once per batch rather than once per envelope.
void Scheduler::flush_removals() {
    if (removing_ || removals_.empty()) return;
    removing_ = true;
    worker_.submit([this, batch = std::move(removals_)] {
        std::vector<std::string> errors;
        store_.remove(batch, &errors);
        for (const auto& err : errors) log::error(log::Line("queue remove-failed").kv("error", err));
        post_.post([this] {
            removing_ = false;
            flush_removals();
        });
    });
    removals_.clear();
}

// "all", a message's 8 hex digits or an envelope's 16.
Scheduler::Ids Scheduler::select(std::string_view which) const {
    Ids ids;
    auto it = entries_.begin(), end = entries_.end();
    if (is_lower_hex(which, 16)) {
        it = entries_.find(hex_value(which));
        if (it != end) end = std::next(it);
    } else if (is_lower_hex(which, 8)) {
        auto [first, last] = message_range(static_cast<std::uint32_t>(hex_value(which)));
        it = entries_.lower_bound(first);
        end = entries_.upper_bound(last);
    } else if (which != "all") {
        return ids;
    }
    for (; it != end; ++it) ids.push_back(it->first);
    return ids;
}

size_t Scheduler::schedule(std::string_view which) {
    size_t n = 0;
    for (Id id : select(which)) {
        Entry& entry = entries_.at(id);
        if (entry.state != State::Waiting) continue;
        queue::Envelope e = queue::unpack(id, entry.packed);
        e.next_try = 0;
        entry.packed = queue::pack(e);
        make_ready(id, entry, e);
        ++n;
    }
    pump();
    return n;
}

size_t Scheduler::remove(std::string_view which) {
    auto ids = select(which);
    for (Id id : ids) {
        Entry& entry = entries_.at(id);
        // Settled when its routing or delivery returns.
        if (entry.state == State::Running || entry.state == State::Routing) entry.removed = true;
        else erase(id, "Removed by administrator");
    }
    return ids.size();
}

void Scheduler::pause(delivery::Pool pool) { (pool == delivery::Pool::Local ? paused_local_ : paused_relay_) = true; }

void Scheduler::resume(delivery::Pool pool) {
    (pool == delivery::Pool::Local ? paused_local_ : paused_relay_) = false;
    pump();
}

size_t Scheduler::message_count() const {
    size_t n = 0;
    std::optional<std::uint32_t> last;
    for (const auto& item : entries_) {
        std::uint32_t msgid = msgid_of(item.first);
        if (last != msgid) ++n;
        last = msgid;
    }
    return n;
}

std::optional<std::int64_t> Scheduler::oldest_ctime() const {
    if (ctimes_.empty()) return std::nullopt;
    return ctimes_.begin()->first;
}

void Scheduler::for_each(const std::function<void(const queue::Envelope&, State)>& visit) const {
    for (const auto& [id, entry] : entries_) visit(queue::unpack(id, entry.packed), entry.state);
}

std::optional<std::pair<queue::Envelope, Scheduler::State>> Scheduler::find(std::string_view id) const {
    if (!is_lower_hex(id, 16)) return std::nullopt;
    auto it = entries_.find(hex_value(id));
    if (it == entries_.end()) return std::nullopt;
    return std::pair{queue::unpack(it->first, it->second.packed), it->second.state};
}

// Retry times are wall-clock seconds, the timer runs on the monotonic clock:
// its wait is capped so that a wall clock set forward is noticed (and what
// fell due tried) within kMaxTimerWait, not after the whole monotonic wait.
constexpr std::int64_t kMaxTimerWait = 60;

void Scheduler::arm_timer() {
    if (closed_) return;
    notice_clock_jump();
    if (waiting_.empty()) return;
    std::int64_t now = std::time(nullptr);
    std::int64_t wait = std::clamp<std::int64_t>(waiting_.top().first - now, 0, kMaxTimerWait);
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<Scheduler*>(t->data)->on_timer(); },
        static_cast<uint64_t>(wait) * 1000, 0);
}

// A wall clock set back by J seconds moves every waiting retry back by J:
// otherwise a clock set back a day holds the whole queue a day. A clock set
// forward needs nothing: what fell due is tried at the next timer.
void Scheduler::notice_clock_jump() {
    std::int64_t wall = std::time(nullptr);
    std::uint64_t mono = uv_now(loop_);
    std::int64_t jump = clock_jump(seen_wall_, seen_mono_, wall, mono);
    seen_wall_ = wall;
    seen_mono_ = mono;
    if (jump == 0) return;
    log::warn(log::Line("scheduler clock-jump").kv("seconds", static_cast<long long>(jump)));
    if (jump > 0) return;
    waiting_ = {};
    for (auto& [id, entry] : entries_) {
        if (entry.state != State::Waiting) continue;
        queue::Envelope e = queue::unpack(id, entry.packed);
        e.next_try += jump;
        entry.packed = queue::pack(e);
        wait_until(id, entry, e.next_try);
    }
}

void Scheduler::on_timer() {
    notice_clock_jump();
    std::int64_t now = std::time(nullptr);
    while (!waiting_.empty() && waiting_.top().first <= now) {
        auto [when, id] = waiting_.top();
        waiting_.pop();
        auto it = entries_.find(id);
        bool stale = it == entries_.end() || it->second.state != State::Waiting || it->second.next_try != when;
        if (stale) continue;
        make_ready(id, it->second, queue::unpack(id, it->second.packed));
    }
    pump();
    arm_timer();
}

}  // namespace postern::scheduler
