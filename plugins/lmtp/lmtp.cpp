// plugins/lmtp/lmtp.cpp — delivery-lmtp.so, the `lmtp` action: hands a
// message to a local LMTP server (RFC 2033), such as Dovecot's lmtp, which
// files it into the recipients' mailboxes.
//
//   action "local" lmtp "/run/dovecot/lmtp" [rcpt-to]
//   action "local" lmtp "127.0.0.1:24" [rcpt-to]
//
// Runs inside postern-local as the recipient's user (target.hpp says what
// request.path and request.options hold). The dialogue is the relay's
// SMTP/LMTP client (plugins/relay: session.hpp), with the scheme lmtp:
// LHLO, MAIL, a RCPT per recipient, DATA, then one reply per accepted
// recipient after the message, so that each recipient gets its own result:
// 2xx delivered, 4xx temporary, 5xx permanent, with the server's code,
// reply and enhanced code as typed fields.
//
// The LMTP recipient: the local user name (request.user), or with rcpt-to
// the address after expansion (request.dest), as OpenSMTPD's mail.lmtp -u
// and -r. Recipients of one message that come to the same LMTP address
// (several addresses of one user) are sent once, and share the result.
//
// No TLS: the grammar has no way to ask for it (OpenSMTPD's mail.lmtp never
// starts it either), and a STARTTLS the server offers is not taken up. No
// DSN parameters are passed on: the LMTP server is the last stop, and the
// daemon sends any success report itself.
//
// Batches and connection reuse: the agent hands the plugin each batch whole
// (deliver_batch) and lives on for the next ones. The connection is used
// for every message of a batch with the same path and options (RSET only
// after a transaction that did not end cleanly, and before taking up a kept
// one; one found dead at RSET is replaced once), and kept open after
// the batch a few seconds for the next (plugins/relay/scache.hpp); QUIT when
// it is closed.
//
// Time: every connect, write and reply wait is bounded (target.hpp: 120 s
// each by default; connecting at most 30 s). The daemon kills the agent
// when a batch has taken 10 minutes, so after 5 (counted from the batch's
// start) the agent starts no new transaction, and once the server could not
// be reached or stopped answering, the batch's other messages fail at once
// with that reason instead of waiting through the same timeouts again: they
// wait in the queue for the next attempt. Both are the batch's alone.
//
// Depends on: plugins/relay's client (session.hpp, connection.hpp,
// delivery_io.hpp), target.hpp, postern/support/sigpipe_guard.hpp.
#include <postern/delivery.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connection.hpp"
#include "delivery_io.hpp"
#include "postern/support/sigpipe_guard.hpp"
#include "scache.hpp"
#include "session.hpp"
#include "target.hpp"

namespace {

using postern::lmtp_plugin::Target;
using postern::relay_plugin::Clock;
using postern::relay_plugin::Connection;
using postern::relay_plugin::Failure;
using postern::relay_plugin::Link;
using postern::relay_plugin::Session;
using postern::relay_plugin::SessionCache;
using postern::relay_plugin::Settings;
using postern::util::SigpipeGuard;

constexpr const char* kTag = "lmtp";
constexpr auto kBatchBudget = std::chrono::minutes(5);

// The connections kept between batches (plugins/relay/scache.hpp).
SessionCache& kept() { return postern::relay_plugin::kept_sessions(); }

// What one batch keeps for itself: when it started, and per destination
// (path and options) the connection in use and why the server could not be
// reached or stopped answering. The connections still good go back to the
// cache at its end.
class Batch {
public:
    // An agent holds the connections of the batch under way only: those
    // kept for other routes are closed now (scache.hpp).
    Batch(const postern_delivery_batch* abi, const postern_delivery_request* const* reqs, size_t n) {
        kept().keep_only(postern::relay_plugin::route_keys(reqs, n));
        if (abi && abi->time_limit_ms > 0)
            budget_ = std::min<Clock::duration>(budget_, std::chrono::milliseconds(abi->time_limit_ms / 2));
    }
    ~Batch() {
        try {
            for (auto& [key, d] : dests_) kept().put(key, std::move(d.link));
        } catch (...) {  // memory exhausted: the connections close as they go
        }
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    struct Dest {
        Link link;
        bool link_taken = false;
        std::optional<Failure> unreachable;
    };
    Dest& dest(const std::string& key) { return dests_[key]; }
    bool time_is_up() const { return Clock::now() - started_ > budget_; }

private:
    Clock::time_point started_ = Clock::now();
    Clock::duration budget_ = kBatchBudget;
    std::map<std::string, Dest> dests_;
};

std::string_view text(const char* s) { return s ? s : ""; }

std::string local_host_name() {
    char buf[256] = "";
    if (::gethostname(buf, sizeof buf - 1) != 0 || !*buf) return "localhost";
    return buf;
}

Settings settings_for(const Target& t) {
    Settings s;
    s.tag = kTag;
    s.opportunistic_tls = false;
    s.timeout = t.timeout;
    s.helo = local_host_name();
    return s;
}

std::unique_ptr<Session> open_session(const Target& t, const Settings& s, Failure* f) {
    if (!t.unix_socket) return Session::open(s, t.url, nullptr, f);
    std::string error;
    auto conn = Connection::open_unix(t.socket_path, t.timeout, &error);
    if (!conn) {
        *f = {POSTERN_TEMPFAIL, std::string(kTag) + ": " + error};
        return nullptr;
    }
    return Session::start(s, std::move(conn), t.url, f);
}

using Recipients = std::vector<Session::Recipient>;

// One transaction on the connection (this batch's, or one kept from an
// earlier batch), else (it was found dead at RSET) on a fresh one. *f holds
// the failure of the recipients without an outcome of their own.
void send(const Target& t, Batch& batch, const std::string& key, std::string_view sender, const std::string& message,
          Recipients* rcpts, Failure* f) {
    using Result = Session::Result;
    if (batch.time_is_up()) {
        *f = {POSTERN_TEMPFAIL,
              std::string(kTag) + ": this batch's time is up; the message waits for the next attempt"};
        return;
    }
    const Settings s = settings_for(t);
    Batch::Dest& d = batch.dest(key);
    if (!d.link_taken) {
        d.link = kept().take(key);
        d.link_taken = true;
    }
    if (d.link && d.link.spent(Clock::now())) {
        kept().put(key, std::move(d.link));  // closes it
        d.link = Link{};
    }
    if (d.link) {
        Result r = d.link.needs_rset ? d.link.session->reset(f) : Result::Ok;
        if (r == Result::Ok) {
            ++d.link.transactions;
            r = d.link.session->transaction(sender, message, "", rcpts, f);
            d.link.needs_rset = r != Result::Ok;
            if (r == Result::Ok || r == Result::Failed) return;
            d.link.session.reset();  // dead: no QUIT to send
            if (r == Result::Lost) return;
        }
        d.link.session.reset();
    }
    if (d.unreachable) {
        *f = *d.unreachable;
        return;
    }
    d.link = Link{};
    d.link.session = open_session(t, s, f);
    if (!d.link) {
        d.unreachable = *f;
        return;
    }
    ++d.link.transactions;
    Result r = d.link.session->transaction(sender, message, "", rcpts, f);
    d.link.needs_rset = r != Result::Ok;
    if (r == Result::Broken || r == Result::Lost) {
        d.link.session.reset();
        d.unreachable = *f;
    }
}

// reqs[0..n) share the message, sender, path and options.
void run(Batch& batch, const postern_delivery_request* const* reqs, size_t n, postern_delivery_result* const* results) {
    using postern::relay_plugin::put_result;
    const postern_delivery_request& first = *reqs[0];
    auto answer_all = [&](const Failure& f) {
        for (size_t i = 0; i < n; ++i) put_result(results[i], f);
    };
    std::string key = postern::relay_plugin::route_key(first);
    Target t;
    std::string error;
    // A site configuration error: the mail waits while it is fixed.
    if (!postern::lmtp_plugin::parse_target(text(first.path), text(first.options), &t, &error))
        return answer_all({POSTERN_TEMPFAIL, std::string(kTag) + ": config error: " + error});
    std::string message;
    Failure f{POSTERN_TEMPFAIL, std::string(kTag) + ": unexpected error"};
    if (!postern::relay_plugin::read_message(first.message_fd, kTag, &message, &f)) return answer_all(f);

    // One RCPT per distinct LMTP recipient; slot[i] is request i's.
    std::vector<std::string> addresses;
    std::map<std::string, size_t> index;
    std::vector<size_t> slot(n);
    for (size_t i = 0; i < n; ++i) {
        std::string a(text(t.rcpt_to ? reqs[i]->dest : reqs[i]->user));
        auto [it, added] = index.emplace(a, addresses.size());
        if (added) addresses.push_back(a);
        slot[i] = it->second;
    }
    Recipients rcpts;
    for (const auto& a : addresses) rcpts.push_back({a, "", {}});
    send(t, batch, key, text(first.sender), message, &rcpts, &f);
    for (size_t i = 0; i < n; ++i) {
        const Failure& own = rcpts[slot[i]].outcome;
        put_result(results[i], own.reason.empty() ? f : own);
    }
}

// A whole batch: message after message, each result reported as soon as it
// is known; none more once the agent cannot report any more.
void run_batch(const postern_delivery_batch* abi, const postern_delivery_request* const* reqs, size_t n,
               postern_delivery_result* const* results, postern::relay_plugin::Reporter& reporter) {
    SigpipeGuard guard;
    Batch batch(abi, reqs, n);
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (i + k < n && postern::relay_plugin::same_message(*reqs[i], *reqs[i + k])) ++k;
        run(batch, reqs + i, k, results + i);
        bool heard = true;
        for (size_t j = i; j < i + k; ++j) heard = reporter.report(j) && heard;
        if (!heard) return;  // the daemon no longer hears of what is sent: send no more
        i += k;
    }
}

void deliver_batch(const postern_delivery_batch* batch, const postern_delivery_request* const* reqs, size_t n,
                   postern_delivery_result* const* results) noexcept {
    postern::relay_plugin::guarded_deliver_batch(kTag, run_batch, batch, reqs, n, results);
}

// An agent without deliver_batch (or a direct call of deliver): each call is
// a batch of its own, and as before deliver_batch, one connection is kept,
// the last route's; a call for another route closes it with QUIT.
void run_many(const postern_delivery_request* const* reqs, size_t n, postern_delivery_result* const* results) {
    SigpipeGuard guard;
    Batch batch(nullptr, reqs, n);
    run(batch, reqs, n, results);
}

void deliver_many(const postern_delivery_request* const* reqs, size_t n,
                  postern_delivery_result* const* results) noexcept {
    postern::relay_plugin::guarded_deliver_many("lmtp", run_many, reqs, n, results);
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    return postern::relay_plugin::deliver_one(deliver_many, req, err, errlen);
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "lmtp", deliver, deliver_many, deliver_batch,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
