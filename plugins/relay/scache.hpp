// plugins/relay/scache.hpp — outbound connections kept between batches, as
// Postfix's scache keeps them: a connection left idle after a batch stays
// open a few seconds, and the next batch for the same route (the same path
// and options: destination, TLS, credentials) takes it up again with RSET
// instead of a new TCP connection, greeting, EHLO, STARTTLS and AUTH.
// Within a batch, messages follow one another on the connection without
// RSET when the one before ended cleanly.
//
// The delivery agent that holds the cache lives on between batches
// (postern/delivery.h), one batch at a time, so the cache is the process's
// own and needs no lock. A kept connection is closed (QUIT):
//  - when it has been idle longer than its idle limit (kIdleLimit, or
//    `mta limit session-keepalive`), or open longer than kAgeLimit, or has
//    carried its most messages (kMaxTransactions, or `mta limit
//    session-mail-max`): what a server tolerates on one connection stays
//    bounded;
//  - when a batch for other routes starts: an agent holds the connections
//    of its batch under way, or of its last one, only. The daemon gives a
//    route's next batch to the idle agent whose last batch went there
//    (delivery/agent_pool.hpp), so the connections open to a destination
//    stay within its limit (max-conn-per-relay, max-conn-per-domain), idle
//    ones included;
//  - when more than kMaxKept are idle (the longest idle first);
//  - when the cache goes (the plugin unloaded: the agent ends).
// One that something came on while it was idle (a 421, or the server
// closed it) is dropped without a word, and so is one found dead at RSET
// by the caller. The caller closes one that failed or got a 421.
//
// Depends on: session.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "session.hpp"

namespace postern::relay_plugin {

using Clock = std::chrono::steady_clock;

inline constexpr auto kIdleLimit = std::chrono::seconds(5);
inline constexpr auto kAgeLimit = std::chrono::seconds(300);
inline constexpr unsigned kMaxTransactions = 1000;
inline constexpr std::size_t kMaxKept = 8;

// A connection and what it has served.
struct Link {
    std::unique_ptr<Session> session;
    Clock::time_point opened = Clock::now();
    Clock::time_point idle_since = Clock::now();
    unsigned transactions = 0;
    // Its limits, from the route's options (options.hpp) when it was opened.
    unsigned max_transactions = kMaxTransactions;
    Clock::duration idle_limit = kIdleLimit;
    // RSET before the next transaction: after one that did not end cleanly,
    // and before the first on a connection kept idle (whose answer says it
    // is still alive). Within a batch, a transaction that ran to its end
    // leaves the server ready for the next MAIL (RFC 5321 4.1.4): no RSET.
    bool needs_rset = false;

    explicit operator bool() const { return session != nullptr; }
    // Worn out: to be closed rather than kept.
    bool spent(Clock::time_point now) const { return transactions >= max_transactions || now - opened >= kAgeLimit; }
};

class SessionCache {
public:
    SessionCache() = default;
    ~SessionCache() { clear(); }
    SessionCache(const SessionCache&) = delete;
    SessionCache& operator=(const SessionCache&) = delete;

    // The kept connection of `route`, if one is usable; empty otherwise.
    Link take(const std::string& route);
    // Keeps `link` for `route` (closing one kept for it already), unless
    // it is spent; idle from now, to be checked with RSET when taken.
    void put(const std::string& route, Link link);
    // Closes the kept connections that are past their limits.
    void sweep();
    // Closes every kept connection.
    void clear();
    // Closes every kept connection but those of `routes` (the routes of
    // the batch that starts).
    void keep_only(const std::vector<std::string>& routes);
    std::size_t size() const { return kept_.size(); }

private:
    static void close(Link& link) noexcept;
    std::map<std::string, Link> kept_;
};

// The process's cache, shared by the relay and lmtp plugins' batches. OpenSSL
// is initialised before it is complete, so OpenSSL's exit cleanup runs after
// the cache's destructor has sent its QUITs.
SessionCache& kept_sessions();

}  // namespace postern::relay_plugin
