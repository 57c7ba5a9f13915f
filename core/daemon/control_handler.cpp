// posternctl's commands inside the daemon; see control_handler.hpp.
#include "daemon/control_handler.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "delivery/kind.hpp"
#include "filterhost/host.hpp"
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

control::Record envelope_record(const queue::Envelope& e, scheduler::Scheduler::State state) {
    return {{"id", e.id},
            {"msgid", e.msgid},
            {"sender", e.sender},
            {"rcpt", e.rcpt},
            {"dest", e.dest},
            {"action", e.action},
            {"user", e.user},
            {"state", state_name(state)},
            {"ctime", std::to_string(e.ctime)},
            {"expire", std::to_string(e.expire)},
            {"last-try", std::to_string(e.last_try)},
            {"next-try", std::to_string(e.next_try)},
            {"attempts", std::to_string(e.retry)},
            {"last-error", e.errorline}};
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// The project's version (CMake's), as the filter handshake gives it without
// its "postern-" head.
std::string version() {
    std::string v = filterhost::smtpd_version();
    constexpr std::string_view kHead = "postern-";
    return v.compare(0, kHead.size(), kHead) == 0 ? v.substr(kHead.size()) : v;
}

// `local_socket`: the path `listen on socket` serves.
control::Record listener_record(const config::Listener& l, const std::vector<std::string>& chain,
                                const std::string& local_socket) {
    control::Record rec{{"listener", l.socket ? "socket" : l.on},
                        {"port", l.socket ? "" : std::to_string(l.port)},
                        {"path", l.socket ? local_socket : ""},
                        {"tls", yes_no(l.tls)},
                        {"tls-require", yes_no(l.tls_require)},
                        {"smtps", yes_no(l.smtps)},
                        {"auth", yes_no(l.auth)},
                        {"auth-optional", yes_no(l.auth_optional)},
                        {"filter", l.filter}};
    for (const auto& name : chain) rec.emplace_back("member", name);
    return rec;
}

const char* state_name(filterhost::Host::ProcStatus::State s) {
    using State = filterhost::Host::ProcStatus::State;
    switch (s) {
    case State::Starting: return "starting";
    case State::Running: return "running";
    case State::Restarting: return "restarting";
    case State::Down: return "down";
    }
    return "?";
}

// A built-in filter runs inside the daemon: it is running whenever the
// daemon answers. A process filter is as the filter host last saw it.
control::Record filter_record(const config::Config& cfg, const filterhost::Host* host, const std::string& name) {
    const config::Filter* f = cfg.find_filter(name);
    if (f && f->kind == config::Filter::Kind::Builtin)
        return {{"filter", name}, {"kind", "builtin"}, {"state", "running"}, {"pid", ""}, {"restart-in-ms", ""}};
    filterhost::Host::ProcStatus st;
    if (f && host) st = host->proc_status(f->proc);
    using State = filterhost::Host::ProcStatus::State;
    return {{"filter", name},
            {"kind", "proc"},
            {"state", state_name(st.state)},
            {"pid", st.pid > 0 ? std::to_string(st.pid) : ""},
            {"restart-in-ms", st.state == State::Restarting ? std::to_string(st.restart_in_ms) : ""}};
}

bool valid_id(const std::string& id) {
    if (id != "all" && id.size() != 8 && id.size() != 16) return false;
    if (id == "all") return true;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::optional<table::Service> service_named(std::string_view name) {
    using table::Service;
    for (Service s :
         {Service::String, Service::Domain, Service::Netaddr, Service::Mailaddr, Service::Alias, Service::Credentials,
          Service::Userinfo, Service::Source, Service::Addrname, Service::Mailaddrmap, Service::Relayhost})
        if (name == table::service_name(s)) return s;
    return std::nullopt;
}

// The services a rule answers by comparing a subject with every entry
// (Table::match); the others look a key up and have a value.
bool is_match_service(table::Service s) {
    using table::Service;
    return s == Service::String || s == Service::Domain || s == Service::Netaddr || s == Service::Mailaddr;
}

// The first entry of an iterable table that `subject` matches, for the
// answer to show which wildcard or mask was hit; "" when the backend cannot
// list its entries (it matched an exact key). Table::match has decided.
std::string matching_entry(table::Table& t, table::Service service, std::string_view subject) {
    std::string entry, ignored;
    if (!t.iterable()) return entry;
    t.for_each(
        [&](std::string_view key, std::string_view) {
            if (table::entry_matches(service, key, subject)) entry = key;
            return entry.empty();
        },
        &ignored);
    return entry;
}

// What `table lookup` answers, done the way the daemon's own code asks that
// service: a match for the match services; the next address of a table that
// hands them out (relay src) for source; an exact lookup otherwise. Runs on
// a worker thread: any of these may block on the backend.
control::Record lookup_record(table::Table& t, table::Service service, const std::string& key) {
    std::string value, err;
    const char* how = "lookup";
    table::Result r;
    if (is_match_service(service)) {
        how = "match";
        r = t.match(service, key, &err);
        if (r == table::Result::Found) value = matching_entry(t, service, key);  // shown as "entry"
    } else if (service == table::Service::Source && !t.iterable()) {
        how = "fetch";  // the key plays no part: the table gives its next address
        r = t.fetch(service, &value, &err);
    } else {
        r = t.lookup(service, key, &value, &err);
    }
    control::Record rec{{"table", t.name()}, {"service", table::service_name(service)}, {"key", key}, {"how", how}};
    switch (r) {
    case table::Result::Found:
        rec.emplace_back("result", "found");
        // Password hashes (listener auth) and relay passwords never leave the
        // daemon: whoever debugs a set-up learns that the entry exists.
        if (service == table::Service::Credentials) rec.emplace_back("hidden", "yes");
        else if (!is_match_service(service)) rec.emplace_back("value", value);
        else if (!value.empty()) rec.emplace_back("entry", value);  // the entry the subject matched
        break;
    case table::Result::NotFound: rec.emplace_back("result", "not-found"); break;
    case table::Result::TempFail:
        rec.emplace_back("result", "tempfail");
        rec.emplace_back("error", err.empty() ? "table " + t.name() + ": temporary failure" : err);
        break;
    }
    return rec;
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
    if (is({"show", "quarantine"})) return show_quarantine(std::move(done));
    if (w.size() == 2 && w[0] == "release") return release(w[1], std::move(done));
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
    if (w.size() == 5 && w[0] == "table" && w[1] == "lookup") return table_lookup(w[2], w[3], w[4], std::move(done));
    if (is({"reload"})) return reload(std::move(done));
    done(error("unknown command '" + joined + "'"));
}

control::Reply ControlHandler::show_queue() const {
    control::Reply r;
    scheduler_.for_each([&r](const queue::Envelope& e, scheduler::Scheduler::State state) {
        r.records.push_back(envelope_record(e, state));
    });
    return r;
}

control::Reply ControlHandler::show_envelope(const std::string& id) const {
    auto found = scheduler_.find(id);
    if (!found) return error("no envelope " + id + " in the queue");
    const auto& [e, state] = *found;
    control::Record rec = envelope_record(e, state);
    rec.insert(rec.end(), {{"helo", e.helo}, {"client", e.client}, {"hostname", e.hostname}, {"tag", e.tag}});
    return one(std::move(rec));
}

control::Reply ControlHandler::show_stats() const {
    const auto& s = scheduler_.stats();
    std::time_t up = std::time(nullptr) - started_;
    return one({{"uptime", std::to_string(up)},
                {"smtp.session", std::to_string(server_.session_count())},
                {"smtp.session.total", std::to_string(server_.sessions_total())},
                {"scheduler.envelope", std::to_string(scheduler_.size())},
                {"scheduler.envelope.inflight", std::to_string(scheduler_.running())},
                {"scheduler.delivery.ok", std::to_string(s.delivered)},
                {"scheduler.delivery.tempfail", std::to_string(s.tempfail)},
                {"scheduler.delivery.permfail", std::to_string(s.permfail)},
                {"scheduler.envelope.expired", std::to_string(s.expired)},
                {"scheduler.envelope.removed", std::to_string(s.removed)},
                {"scheduler.envelope.quarantined", std::to_string(s.quarantined)}});
}

// The overview of `show status`: the daemon's record, one per listener, one
// per filter the listeners use (protocol.hpp). All of it is in memory: it is
// gathered on the loop, without blocking.
control::Reply ControlHandler::show_status() const {
    using delivery::Pool, delivery::pool_name;
    control::Reply r;
    control::Record daemon{{"version", version()},
                           {"uptime", std::to_string(std::time(nullptr) - started_)},
                           {std::string(pool_name(Pool::Local)), scheduler_.paused(Pool::Local) ? "paused" : "running"},
                           {std::string(pool_name(Pool::Relay)), scheduler_.paused(Pool::Relay) ? "paused" : "running"},
                           {"smtp", server_.paused() ? "paused" : "running"}};
    append_queue_status(daemon);
    r.records.push_back(std::move(daemon));
    const config::Config* cfg = server_.ctx().config;
    const filterhost::Host* host = server_.ctx().filters;
    if (!cfg) return r;
    std::vector<std::string> used;  // the filters of every listener, each once, in order
    for (const auto& l : cfg->listeners) {
        std::vector<std::string> chain = host ? host->chain_names(l) : std::vector<std::string>{};
        r.records.push_back(listener_record(l, chain, server_.ctx().local_socket));
        for (auto& name : chain)
            if (std::find(used.begin(), used.end(), name) == used.end()) used.push_back(std::move(name));
    }
    for (const auto& name : used) r.records.push_back(filter_record(*cfg, host, name));
    return r;
}

void ControlHandler::append_queue_status(control::Record& rec) const {
    std::optional<std::int64_t> oldest = scheduler_.oldest_ctime();
    // A clock set back must not give a negative age.
    std::int64_t age = oldest ? std::max<std::int64_t>(0, std::time(nullptr) - *oldest) : 0;
    rec.insert(rec.end(), {{"queue.messages", std::to_string(scheduler_.message_count())},
                           {"queue.envelopes", std::to_string(scheduler_.size())},
                           {"queue.oldest-age", oldest ? std::to_string(age) : ""}});
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
    if (paused_changed_) paused_changed_(paused_names());
    return one({{what, pause ? "paused" : "running"}});
}

std::vector<std::string> ControlHandler::paused_names() const {
    using delivery::Pool, delivery::pool_name;
    std::vector<std::string> names;
    for (Pool p : {Pool::Local, Pool::Relay})
        if (scheduler_.paused(p)) names.emplace_back(pool_name(p));
    if (server_.paused()) names.emplace_back("smtp");
    return names;
}

void ControlHandler::restore_paused(const std::vector<std::string>& names) {
    for (const auto& what : names) {
        if (auto pool = delivery::pool_named(what)) scheduler_.pause(*pool);
        else if (what == "smtp") server_.pause();
        else continue;
        log::info(log::Line("paused as before the reload").kv("what", what));
    }
    if (paused_changed_ && !names.empty()) paused_changed_(paused_names());
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

// The messages set aside (Store::quarantine), read on a worker thread.
void ControlHandler::show_quarantine(std::function<void(control::Reply)> done) {
    auto result = std::make_shared<control::Reply>();
    event::run_blocking(
        loop_,
        [this, result] {
            std::string err;
            for (const auto& q : store_.quarantined(&err))
                result->records.push_back(
                    {{"msgid", q.msgid}, {"envelopes", std::to_string(q.envelopes)}, {"size", std::to_string(q.size)}});
            if (!err.empty()) *result = error(err);
        },
        [result, done = std::move(done)] { done(std::move(*result)); });
}

// A message back from quarantine (Store::release, on a worker thread), then
// to the scheduler, on the loop.
void ControlHandler::release(const std::string& msgid, std::function<void(control::Reply)> done) {
    struct Result {
        std::vector<queue::Envelope> envelopes;
        std::string error;
    };
    auto result = std::make_shared<Result>();
    event::run_blocking(
        loop_, [this, msgid, result] { store_.release(msgid, result->envelopes, &result->error); },
        [this, msgid, result, done = std::move(done)] {
            if (result->envelopes.empty()) return done(error(result->error));
            const auto n = result->envelopes.size();
            scheduler_.enqueue(result->envelopes);
            log::info(log::Line("queue released").kv("msgid", msgid).kv("envelopes", static_cast<long long>(n)));
            done(one({{"message", "message " + msgid + " released: " + std::to_string(n) +
                                      (n == 1 ? " envelope" : " envelopes") + " queued again"},
                      {"count", std::to_string(n)}}));
        });
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

// The answer comes once the parent has checked the new configuration and,
// when it is valid, started the process that serves with it.
void ControlHandler::reload(std::function<void(control::Reply)> done) {
    if (!reload_) return done(error("this process cannot reload the configuration; restart posternd"));
    reload_([done = std::move(done)](bool ok, std::vector<std::string> errors) {
        if (ok) return done(one({{"message", "configuration reloaded"}}));
        control::Reply r = error("configuration not reloaded; the running one stays");
        for (auto& e : errors) r.records.push_back({{"error", std::move(e)}});
        done(std::move(r));
    });
}

void ControlHandler::table_lookup(const std::string& name, const std::string& service_word, const std::string& key,
                                  std::function<void(control::Reply)> done) {
    if (!tables_.find(name)) return done(error("no table named '" + name + "'"));
    auto service = service_named(service_word);
    if (!service) return done(error("unknown service '" + service_word + "'"));
    auto result = std::make_shared<control::Reply>();
    event::run_blocking(
        loop_,
        [this, name, service = *service, key, result] {
            table::Table* t = tables_.find(name);
            if (!t) *result = error("no table named '" + name + "'");
            else if (!t->supports(service))
                *result = error("table " + name + " does not answer the " + table::service_name(service) +
                                " service (its backend has no query for it)");
            else *result = one(lookup_record(*t, service, key));
        },
        [result, done = std::move(done)] { done(std::move(*result)); });
}

}  // namespace postern::daemon
