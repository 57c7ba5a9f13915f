// The scheduler; see scheduler.hpp.
#include "daemon/scheduler.hpp"

#include <ctime>

#include "util/log.hpp"

namespace postern::daemon {
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

}  // namespace

std::int64_t next_attempt(std::int64_t ctime, std::uint32_t retry, std::int64_t now, std::int64_t base) {
    std::int64_t k = retry;
    std::int64_t t = ctime + base * k * k;
    while (t <= now) {
        ++k;
        t = ctime + base * k * k;
    }
    return t;
}

Scheduler::Scheduler(uv_loop_t* loop, const config::Config& config, queue::Store& store, delivery::Launcher& launcher,
                     SerialWorker& worker, unsigned max_running)
    : loop_(loop), config_(config), store_(store), launcher_(launcher), worker_(worker), max_running_(max_running) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
}

Scheduler::~Scheduler() = default;

void Scheduler::close() {
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void Scheduler::enqueue(const std::vector<queue::Envelope>& envelopes) {
    std::int64_t now = std::time(nullptr);
    for (const auto& e : envelopes) {
        if (e.next_try > now) waiting_.emplace(e.next_try, e);
        else ready_.push_back(e);
    }
    pump();
    arm_timer();
}

void Scheduler::pump() {
    while (!closed_ && running_ < max_running_ && !ready_.empty()) {
        queue::Envelope e = std::move(ready_.front());
        ready_.pop_front();
        start(std::move(e));
    }
}

void Scheduler::start(queue::Envelope e) {
    const config::Action* action = config_.find_action(e.action);
    if (!action) {
        // The config changed under a queued envelope: keep it, an admin can fix the config.
        finish(std::move(e), {delivery::Result::Status::TempFail, "no action named " + e.action + " in the config"});
        return;
    }
    delivery::Job job;
    job.method = action->method;
    job.sender = e.sender;
    job.rcpt = e.rcpt;
    job.dest = e.dest;
    job.user = e.user;
    job.path = action->path;
    job.options = action->junk ? "junk" : "";
    job.msgid = e.msgid;
    job.message_path = store_.message_path(e.msgid);
    ++running_;
    launcher_.launch(job, [this, e = std::move(e)](delivery::Result r) mutable {
        --running_;
        finish(std::move(e), r);
        pump();
    });
}

void Scheduler::finish(queue::Envelope e, const delivery::Result& r) {
    std::int64_t now = std::time(nullptr);
    auto status = r.status;
    std::string stat = r.text;
    if (status == delivery::Result::Status::TempFail && now >= e.expire) {
        status = delivery::Result::Status::PermFail;
        stat = "Envelope expired (last error: " + r.text + ")";
    }
    const char* result = status == delivery::Result::Status::Ok         ? "Ok"
                         : status == delivery::Result::Status::TempFail ? "TempFail"
                                                                        : "PermFail";
    log::info(log::Line("mda delivery")
                  .kv("evpid", e.id)
                  .kv("from", e.sender)
                  .kv("to", e.dest)
                  .kv("user", e.user)
                  .kv("delay", delay_text(now - e.ctime))
                  .kv("result", result)
                  .kv("stat", stat));
    if (status == delivery::Result::Status::TempFail) {
        ++e.retry;
        e.last_try = now;
        e.next_try = next_attempt(e.ctime, e.retry, now);
        e.errorline = r.text;
        worker_.submit([this, e] {
            std::string err;
            if (!store_.update(e, &err)) log::error(log::Line("queue update-failed").kv("evpid", e.id).kv("error", err));
        });
        waiting_.emplace(e.next_try, std::move(e));
        arm_timer();
        return;
    }
    // Final: delivered, or refused for good (bounces come with the DSN work).
    worker_.submit([this, e = std::move(e)] {
        std::string err;
        if (!store_.remove(e, &err)) log::error(log::Line("queue remove-failed").kv("evpid", e.id).kv("error", err));
    });
}

void Scheduler::arm_timer() {
    if (closed_ || waiting_.empty()) return;
    std::int64_t now = std::time(nullptr);
    std::int64_t wait = waiting_.begin()->first - now;
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<Scheduler*>(t->data)->on_timer(); },
        static_cast<uint64_t>(wait > 0 ? wait : 0) * 1000, 0);
}

void Scheduler::on_timer() {
    std::int64_t now = std::time(nullptr);
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
        ready_.push_back(std::move(waiting_.begin()->second));
        waiting_.erase(waiting_.begin());
    }
    pump();
    arm_timer();
}

}  // namespace postern::daemon
