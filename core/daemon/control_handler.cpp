// posternctl's commands inside the daemon; see control_handler.hpp.
#include "daemon/control_handler.hpp"

#include <unistd.h>

#include <memory>

#include "delivery/kind.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace postern::daemon {
namespace {

control::Reply error(std::string text) {
    control::Reply r;
    r.ok = false;
    r.error = std::move(text);
    return r;
}

control::Reply one(control::Record rec) {
    control::Reply r;
    r.records.push_back(std::move(rec));
    return r;
}

const char* state_name(scheduler::Scheduler::State s) {
    switch (s) {
    case scheduler::Scheduler::State::Ready: return "ready";
    case scheduler::Scheduler::State::Routing: return "ready";  // its route is being looked up
    case scheduler::Scheduler::State::Waiting: return "waiting";
    case scheduler::Scheduler::State::Running: return "running";
    }
    return "?";
}

control::Record envelope_record(const scheduler::Scheduler::Entry& entry) {
    const queue::Envelope& e = entry.envelope;
    return {{"id", e.id},
            {"msgid", e.msgid},
            {"sender", e.sender},
            {"rcpt", e.rcpt},
            {"dest", e.dest},
            {"action", e.action},
            {"user", e.user},
            {"state", state_name(entry.state)},
            {"ctime", std::to_string(e.ctime)},
            {"expire", std::to_string(e.expire)},
            {"last-try", std::to_string(e.last_try)},
            {"next-try", std::to_string(e.next_try)},
            {"attempts", std::to_string(e.retry)},
            {"last-error", e.errorline}};
}

bool valid_id(const std::string& id) {
    if (id != "all" && id.size() != 8 && id.size() != 16) return false;
    if (id == "all") return true;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

ControlHandler::ControlHandler(uv_loop_t* loop, smtpd::SmtpServer& server, scheduler::Scheduler& scheduler,
                               queue::Store& store, table::Registry& tables)
    : loop_(loop), server_(server), scheduler_(scheduler), store_(store), tables_(tables) {}

void ControlHandler::handle(const control::Request& req, uid_t peer_uid, std::function<void(control::Reply)> done) {
    const auto& w = req.words;
    auto is = [&](std::initializer_list<const char*> words) {
        if (w.size() != words.size()) return false;
        size_t i = 0;
        for (const char* word : words)
            if (w[i++] != word) return false;
        return true;
    };
    std::string joined;
    for (const auto& word : w) joined += (joined.empty() ? "" : " ") + word;
    log::info(log::Line("control request").kv("uid", static_cast<long long>(peer_uid)).kv("command", joined));

    if (is({"show", "queue"})) return done(show_queue());
    if (is({"show", "stats"})) return done(show_stats());
    if (is({"show", "status"})) return done(show_status());
    if (w.size() == 3 && w[0] == "show" && w[1] == "envelope") return done(show_envelope(w[2]));
    if (w.size() == 3 && w[0] == "show" && w[1] == "message") return show_message(w[2], std::move(done));
    if (w.size() == 2 && (w[0] == "schedule" || w[0] == "remove")) {
        if (!valid_id(w[1])) return done(error("expected an envelope id, a message id or 'all', got '" + w[1] + "'"));
        size_t n = w[0] == "schedule" ? scheduler_.schedule(w[1]) : scheduler_.remove(w[1]);
        std::string what = w[0] == "schedule" ? "scheduled" : "removed";
        return done(one({{"message", std::to_string(n) + (n == 1 ? " envelope " : " envelopes ") + what},
                         {"count", std::to_string(n)}}));
    }
    if (w.size() == 2 && (w[0] == "pause" || w[0] == "resume")) return done(pause_resume(w[1], w[0] == "pause"));
    if (w.size() == 2 && w[0] == "log" && (w[1] == "verbose" || w[1] == "brief")) {
        log::set_verbose(w[1] == "verbose");
        return done(one({{"log", w[1]}}));
    }
    if (w.size() == 3 && w[0] == "update" && w[1] == "table") return update_table(w[2], std::move(done));
    done(error("unknown command '" + joined + "'"));
}

control::Reply ControlHandler::show_queue() const {
    control::Reply r;
    for (const auto& [id, entry] : scheduler_.entries()) r.records.push_back(envelope_record(entry));
    return r;
}

control::Reply ControlHandler::show_envelope(const std::string& id) const {
    auto it = scheduler_.entries().find(id);
    if (it == scheduler_.entries().end()) return error("no envelope " + id + " in the queue");
    control::Record rec = envelope_record(it->second);
    const queue::Envelope& e = it->second.envelope;
    rec.insert(rec.end(), {{"helo", e.helo}, {"client", e.client}, {"hostname", e.hostname}, {"tag", e.tag}});
    return one(std::move(rec));
}

control::Reply ControlHandler::show_stats() const {
    const auto& s = scheduler_.stats();
    std::time_t up = std::time(nullptr) - started_;
    return one({{"uptime", std::to_string(up)},
                {"smtp.session", std::to_string(server_.session_count())},
                {"smtp.session.total", std::to_string(server_.sessions_total())},
                {"scheduler.envelope", std::to_string(scheduler_.entries().size())},
                {"scheduler.envelope.inflight", std::to_string(scheduler_.running())},
                {"scheduler.delivery.ok", std::to_string(s.delivered)},
                {"scheduler.delivery.tempfail", std::to_string(s.tempfail)},
                {"scheduler.delivery.permfail", std::to_string(s.permfail)},
                {"scheduler.envelope.expired", std::to_string(s.expired)},
                {"scheduler.envelope.removed", std::to_string(s.removed)}});
}

control::Reply ControlHandler::show_status() const {
    using delivery::Pool, delivery::pool_name;
    return one({{std::string(pool_name(Pool::Local)), scheduler_.paused(Pool::Local) ? "paused" : "running"},
                {std::string(pool_name(Pool::Relay)), scheduler_.paused(Pool::Relay) ? "paused" : "running"},
                {"smtp", server_.paused() ? "paused" : "running"}});
}

control::Reply ControlHandler::pause_resume(const std::string& what, bool pause) {
    if (auto pool = delivery::pool_named(what)) {
        pause ? scheduler_.pause(*pool) : scheduler_.resume(*pool);
    } else if (what == "smtp") {
        pause ? server_.pause() : server_.resume();
    } else {
        return error("expected mda, mta or smtp, got '" + what + "'");
    }
    log::info(log::Line(pause ? "control paused" : "control resumed").kv("what", what));
    return one({{what, pause ? "paused" : "running"}});
}

void ControlHandler::show_message(const std::string& id, std::function<void(control::Reply)> done) {
    if (!valid_id(id) || id == "all") return done(error("expected a message or envelope id, got '" + id + "'"));
    std::string msgid = id.substr(0, 8);
    auto result = std::make_shared<control::Reply>();
    event::run_blocking(
        loop_,
        [this, msgid, result] {
            std::string err;
            util::Fd fd(store_.open_message(msgid, &err));
            if (!fd) {
                *result = error("no message " + msgid + ": " + err);
                return;
            }
            std::string text;
            char buf[65536];
            ssize_t n;
            while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
            *result = one({{"text", std::move(text)}});
        },
        [result, done = std::move(done)] { done(std::move(*result)); });
}

void ControlHandler::update_table(const std::string& name, std::function<void(control::Reply)> done) {
    if (!tables_.find(name)) return done(error("no table named '" + name + "'"));
    auto result = std::make_shared<control::Reply>();
    event::run_blocking(
        loop_,
        [this, name, result] {
            std::string err;
            if (tables_.reload(name, &err)) *result = one({{"table", name}, {"updated", "yes"}});
            else *result = error("table " + name + ": " + err);
        },
        [result, name, done = std::move(done)] {
            log::info(
                log::Line("control update-table").kv("table", name).kv("result", result->ok ? "ok" : result->error));
            done(std::move(*result));
        });
}

}  // namespace postern::daemon
