// plugins/relay/relay.cpp — delivery-relay.so, the `relay` action: hands one
// message for one recipient to the next SMTP server, a smarthost or the
// recipient domain's mail exchanger.
//
// Runs inside postern-local, started by the daemon as the unprivileged user
// with `--method relay`. request.path and request.options are described in
// options.hpp; request.sender is the envelope sender ("" = <>),
// request.dest the recipient, request.message_fd the spooled message with
// LF line ends.
//
// Routing: smarthosts are tried in the order written until one accepts a
// connection and greets (failover); a failure after that (a refused
// recipient) is the message's, not the host's. MX routing looks the domain
// up (resolver.hpp), orders its exchangers (relay/mx.hpp: preference, random
// among equals, backup cut-off, null MX refused with 5.1.10), falls back to
// the domain's own addresses when it has no MX (implicit MX) and tries each
// exchanger's addresses in turn, port 25.
//
// TLS: smtps:// starts it at once; smtp+tls:// (and MX routing with
// starttls=required) requires STARTTLS; smtp:// uses STARTTLS when offered,
// without checking the certificate (opportunistic), and never falls back to
// plaintext after a failed handshake; smtp+notls:// never uses TLS.
// smtp+tls:// and smtps:// check the certificate chain and the host name
// (sent as SNI) unless tls=no-verify.
//
// Batches: postern-local hands the plugin each batch whole (deliver_batch),
// in an agent that lives on and serves batch after batch. What belongs to a
// batch lives in that call: its time budget (no new transaction after 10
// minutes, or half the daemon's limit) and, per route, the MX lookup and
// "cannot be reached", which fails the batch's other messages for that
// route at once. An agent without deliver_batch calls deliver_many, each
// call then a batch of its own.
//
// Connection reuse (scache.hpp): a connection is used for every message of
// a batch to its route (path and options), one transaction after another
// (RSET only after one that did not end cleanly), and kept open after the
// batch for the next one to the same route, a few seconds at most, then
// taken up with RSET; one found dead at RSET or MAIL is replaced once,
// before the message goes. It is closed after a 421, an error, 1000 messages
// (`mta limit session-mail-max`), 5 minutes, or when the agent ends.
//
// Results: see session.hpp. A success's text names the host, its address,
// the TLS version and cipher and the server's reply, for the daemon's log.
// A bad URL or bad options are a site configuration error: temporary
// ("relay: config error: ..."), so that mail waits while it is fixed.
//
// Depends on: session.hpp, delivery_io.hpp (the SMTP client library shared
// with plugins/lmtp), resolver.hpp, mx.hpp, postern/support/{relay_url,delivery_guard}.hpp.
#include <postern/delivery.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "delivery_io.hpp"
#include "mx.hpp"
#include "options.hpp"
#include "postern/support/delivery_guard.hpp"
#include "postern/support/sigpipe_guard.hpp"
#include "resolver.hpp"
#include "scache.hpp"
#include "session.hpp"

namespace {

using postern::relay_plugin::Address;
using postern::relay_plugin::Clock;
using postern::relay_plugin::Failure;
using postern::relay_plugin::Link;
using postern::relay_plugin::put_result;
using postern::relay_plugin::read_message;
using postern::relay_plugin::Resolver;
using postern::relay_plugin::Session;
using postern::relay_plugin::SessionCache;
using postern::relay_plugin::Settings;
using postern::util::SigpipeGuard;
namespace relay = postern::relay;

// After this long in one batch, the agent starts no new transaction: the
// rest of the batch waits for the queue's next attempt. A transaction under
// way is never cut (the daemon kills an agent only after an hour): cutting
// one after the message went out could deliver it twice.
constexpr auto kBatchBudget = std::chrono::minutes(10);

// The hosts to try, in order, for one path: the smarthosts as written, or
// the exchangers of a domain with their addresses.
struct Target {
    relay::RelayUrl url;
    std::vector<Address> addresses;  // MX routing; empty = look the host up when connecting
};

// The connections kept between batches (scache.hpp).
SessionCache& kept() { return postern::relay_plugin::kept_sessions(); }

// What one batch keeps for itself and forgets when it ends: when it
// started, and for each route (path and options) where it goes (the MX
// lookup, made once per batch and never kept longer than one), why it could
// not be reached (the batch's other messages fail with it at once instead
// of waiting through the same timeouts again), and the connection in use.
// At its end, the connections still good go back to the cache.
class Batch {
public:
    // An agent holds the connections of the batch under way only: those
    // kept for other routes are closed now (scache.hpp).
    Batch(const postern_delivery_batch* abi, const postern_delivery_request* const* reqs, size_t n) {
        kept().keep_only(postern::relay_plugin::route_keys(reqs, n));
        // A daemon that gives the batch less time than our budget gets its
        // half: the last transaction started has the other half to end.
        if (abi && abi->time_limit_ms > 0)
            budget_ = std::min<Clock::duration>(budget_, std::chrono::milliseconds(abi->time_limit_ms / 2));
    }
    ~Batch() {
        try {
            for (auto& [key, route] : routes_) kept().put(key, std::move(route.link));
        } catch (...) {  // memory exhausted: the connections close as they go
        }
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    struct Route {
        bool routed = false;
        std::vector<Target> targets;
        std::optional<Failure> unreachable;
        Link link;
        bool link_taken = false;  // the cache was asked once
    };
    Route& route(const std::string& key) { return routes_[key]; }
    bool time_is_up() const { return Clock::now() - started_ > budget_; }

private:
    Clock::time_point started_ = Clock::now();
    Clock::duration budget_ = kBatchBudget;
    std::map<std::string, Route> routes_;
};

// A request's optional strings may be null.
std::string_view text(const char* s) { return s ? s : ""; }

// The domain cannot receive mail: `enhanced` ("5.1.2") leads the reason too.
Failure perm(const std::string& domain, std::string_view enhanced, const std::string& why) {
    Failure f(POSTERN_PERMFAIL, "relay: " + domain + ": " + std::string(enhanced) + " " + why);
    f.enhanced = enhanced;
    return f;
}

// An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321 4.1.3):
// that host itself, port 25, no DNS.
bool route_literal(const Settings& s, std::string_view domain, std::vector<Target>* out, Failure* f) {
    std::string_view inner = domain.substr(1, domain.size() - 2);
    bool v6 = inner.size() > 5 && (inner.substr(0, 5) == "IPv6:" || inner.substr(0, 5) == "ipv6:");
    std::string text(v6 ? inner.substr(5) : inner);
    Address a;
    if (v6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.sa);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(25);
        if (::inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) != 1)
            return *f = perm(std::string(domain), "5.1.2", "invalid address literal"), false;
        a.len = sizeof *sin6;
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&a.sa);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(25);
        if (::inet_pton(AF_INET, text.c_str(), &sin->sin_addr) != 1)
            return *f = perm(std::string(domain), "5.1.2", "invalid address literal"), false;
        a.len = sizeof *sin;
    }
    a.text = text;
    Target t;
    t.url.scheme = s.require_tls ? relay::RelayUrl::Scheme::SmtpTls : relay::RelayUrl::Scheme::Smtp;
    t.url.host = text;
    t.url.ipv6_literal = v6;
    t.addresses.push_back(std::move(a));
    out->push_back(std::move(t));
    return true;
}

// The exchangers of s.mx_domain in the order to try (mx.hpp), each with its
// addresses; false with *f when the domain cannot take mail now or ever.
bool route_mx(const Settings& s, std::vector<Target>* out, Failure* f) {
    if (s.mx_domain.size() > 2 && s.mx_domain.front() == '[' && s.mx_domain.back() == ']')
        return route_literal(s, s.mx_domain, out, f);
    std::string error;
    auto resolver = Resolver::create(s.resolver, std::min(s.timeout, 30), &error);
    if (!resolver) return *f = {POSTERN_TEMPFAIL, "relay: " + error}, false;
    const std::string& domain = s.mx_domain;
    std::vector<relay::MxRecord> records;
    auto st = resolver->mx(domain, &records, &error);
    if (st == Resolver::Status::NotFound) return *f = perm(domain, "5.1.2", "domain not found in the DNS"), false;
    if (st == Resolver::Status::TempFail) return *f = {POSTERN_TEMPFAIL, "relay: " + error}, false;
    std::vector<std::string> hosts;
    if (st == Resolver::Status::NoData) {
        hosts.push_back(domain);  // the implicit MX (RFC 5321 5.1)
    } else {
        static std::mt19937 rng(std::random_device{}());
        bool null_mx = false;
        hosts = relay::order_mx(std::move(records), s.self, rng, &null_mx);
        if (null_mx) return *f = perm(domain, "5.1.10", "the domain accepts no mail (null MX, RFC 7505)"), false;
        if (hosts.empty()) {
            *f = {POSTERN_TEMPFAIL, "relay: " + domain + ": 4.4.6 no exchanger is preferred over this server (" +
                                        s.self + "): mail would loop"};
            f->enhanced = "4.4.6";
            return false;
        }
    }
    std::string last;
    for (const std::string& h : hosts) {
        Target t;
        t.url.scheme = s.require_tls ? relay::RelayUrl::Scheme::SmtpTls : relay::RelayUrl::Scheme::Smtp;
        t.url.host = h;
        auto a = resolver->addresses(h, 25, s.family, &t.addresses, &error);
        if (a == Resolver::Status::Ok) {
            out->push_back(std::move(t));
            continue;
        }
        last = a == Resolver::Status::TempFail ? error : h + ": no address";
        if (st == Resolver::Status::NoData && a != Resolver::Status::TempFail)
            return *f = perm(domain, "5.4.4", "no MX and no address record: the domain cannot receive mail"), false;
    }
    if (out->empty())
        return *f = {POSTERN_TEMPFAIL, "relay: " + domain + ": no usable exchanger (" + last + ")"}, false;
    return true;
}

// A new connection: each target in turn until one is ready for a
// transaction (failover); the last failure when none is.
bool connect(const Settings& s, Batch::Route& r, Failure* f) {
    for (const Target& t : r.targets) {
        r.link = Link{};
        r.link.session = Session::open(s, t.url, t.addresses.empty() ? nullptr : &t.addresses, f);
        r.link.max_transactions = static_cast<unsigned>(s.mail_max);
        r.link.idle_limit = std::chrono::seconds(s.keepalive);
        if (r.link) return true;
    }
    return false;
}

using Recipients = std::vector<Session::Recipient>;

// One transaction on the link, counted; a link that broke is dropped.
Session::Result transact(Link& link, std::string_view sender, std::string_view mail_params, const std::string& message,
                         Recipients* rcpts, Failure* f) {
    ++link.transactions;
    Session::Result r = link.session->transaction(sender, message, mail_params, rcpts, f);
    if (r == Session::Result::Broken || r == Session::Result::Lost) link.session.reset();  // dead: no QUIT to send
    link.needs_rset = r != Session::Result::Ok;
    return r;
}

// One attempt on the route's connection (this batch's, or one kept from an
// earlier batch), then (if it was found dead before the message went out)
// one on a fresh one. A connection lost after the message was sent is not
// retried here: the queue's next attempt decides, as for any temporary
// failure. Returns the transaction's result; *f holds the failure of the
// recipients without an outcome of their own.
Session::Result send(const Settings& s, Batch& batch, const std::string& key, std::string_view sender,
                     std::string_view mail_params, const std::string& message, Recipients* rcpts, Failure* f) {
    using Result = Session::Result;
    if (batch.time_is_up()) {
        *f = {POSTERN_TEMPFAIL, "relay: this batch's time is up; the message waits for the next attempt"};
        return Result::Failed;
    }
    Batch::Route& r = batch.route(key);
    if (!r.link_taken) {
        r.link = kept().take(key);
        r.link_taken = true;
    }
    if (r.link && r.link.spent(Clock::now())) {
        kept().put(key, std::move(r.link));  // closes it
        r.link = Link{};
    }
    if (r.link) {
        // Any trouble at RSET (closed, timed out, refused, 421) means a fresh connection.
        Result res = r.link.needs_rset ? r.link.session->reset(f) : Result::Ok;
        if (res == Result::Ok) {
            res = transact(r.link, sender, mail_params, message, rcpts, f);
            if (res != Result::Broken) return res;  // Ok, Failed, or Lost: the message may be there
        }
        r.link.session.reset();
    }
    if (r.unreachable) {
        *f = *r.unreachable;
        return Result::Failed;
    }
    if (!r.routed) {
        if (!s.mx_domain.empty()) {
            if (!route_mx(s, &r.targets, f)) return r.unreachable = *f, Result::Failed;
        } else {
            for (const auto& u : s.hosts) r.targets.push_back({u, {}});
        }
        r.routed = true;
    }
    if (!connect(s, r, f)) return r.unreachable = *f, Result::Failed;
    return transact(r.link, sender, mail_params, message, rcpts, f);
}

// reqs[0..n) share message, sender, path, options and mail_params.
void run(Batch& batch, const postern_delivery_request* const* reqs, size_t n, postern_delivery_result* const* results) {
    const postern_delivery_request& first = *reqs[0];
    auto answer_all = [&](const Failure& f) {
        for (size_t i = 0; i < n; ++i) put_result(results[i], f);
    };
    std::string key = postern::relay_plugin::route_key(first);
    Settings s;
    std::string error;
    // A site configuration error: the mail waits while it is fixed.
    if (!postern::relay_plugin::parse_settings(text(first.path), text(first.options), &s, &error))
        return answer_all({POSTERN_TEMPFAIL, "relay: config error: " + error});
    std::string message;
    Failure f{POSTERN_TEMPFAIL, "relay: unexpected error"};
    if (!read_message(first.message_fd, "relay", &message, &f)) return answer_all(f);
    Recipients rcpts;
    // A core older than the DSN members passes none: no DSN parameters.
    auto params = [](const postern_delivery_request* r, bool mail) {
        if (!POSTERN_HAS_MEMBER(r, struct postern_delivery_request, rcpt_params)) return std::string_view();
        return text(mail ? r->mail_params : r->rcpt_params);
    };
    for (size_t i = 0; i < n; ++i) rcpts.push_back({text(reqs[i]->dest), params(reqs[i], false), {}});
    send(s, batch, key, text(first.sender), params(&first, true), message, &rcpts, &f);
    for (size_t i = 0; i < n; ++i) {
        // An outcome of its own (a RCPT refusal, the reply to the message), or the transaction's failure.
        put_result(results[i], rcpts[i].outcome.reason.empty() ? f : rcpts[i].outcome);
    }
}

// A whole batch: message after message (the recipients of each in one
// transaction), each result reported as soon as it is known; none more once
// the agent cannot report any more.
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
    postern::relay_plugin::guarded_deliver_batch("relay", run_batch, batch, reqs, n, results);
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
    postern::relay_plugin::guarded_deliver_many("relay", run_many, reqs, n, results);
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    return postern::relay_plugin::deliver_one(deliver_many, req, err, errlen);
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "relay", deliver, deliver_many, deliver_batch,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
