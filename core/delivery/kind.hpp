// delivery/kind.hpp — the kinds of delivery the core tells apart, and what
// each decides: how many deliveries share one agent run, how long an agent
// may take, which pool of concurrent runs it counts against (the pool
// `posternctl pause mda|mta` stops), and what an item's path means.
//
// An action's method ("maildir", "mbox", "mda", "lmtp", "relay") names the
// plugin that delivers and travels to the agent as it is; the core looks at
// the method's kind only, worked out here, in one place. Header-only, so
// that the rules and the config checks use it without linking the launcher.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>

#include "delivery/format.hpp"

namespace postern::delivery {

// The method names the core itself writes into an envelope or a job.
namespace method {
inline constexpr std::string_view kMaildir = "maildir";
inline constexpr std::string_view kMbox = "mbox";  // also an alias's `/file` line
inline constexpr std::string_view kMda = "mda";    // also an alias's `|command` line
inline constexpr std::string_view kLmtp = "lmtp";
inline constexpr std::string_view kRelay = "relay";
}  // namespace method

enum class Kind {
    Local,    // into a mailbox on this host: maildir, mbox
    Command,  // a command run as the recipient: mda
    Lmtp,     // handed to an LMTP server by the lmtp plugin
    Relay,    // to another mail server over SMTP
};

// Agent runs at once are counted per pool, and each pool pauses apart.
enum class Pool {
    Local,  // posternctl's "mda": each run may write a user's mailbox
    Relay,  // posternctl's "mta": each run holds an outbound connection
};

struct KindInfo {
    Kind kind;
    Pool pool;
    std::size_t batch_limit;            // deliveries one agent run takes
    std::chrono::milliseconds timeout;  // then the agent is killed; its deliveries are retried
    // What an item's path is: a %{...} template expanded for this use, or
    // (nullopt) not a template at all (a relay's path is its route).
    std::optional<FormatUse> path_use;
};

// The kind of a method. A method the core does not know (an envelope
// written by another version) is taken as local delivery through the plugin
// of that name: the agent delivers or says why not.
constexpr Kind kind_of(std::string_view m) {
    if (m == method::kRelay) return Kind::Relay;
    if (m == method::kMda) return Kind::Command;
    if (m == method::kLmtp) return Kind::Lmtp;
    return Kind::Local;
}

// Local runs go 32 to a batch: a busy queue pays one process start per batch.
// Commands go one by one, since each may take minutes. A relay agent stops
// starting new transactions once a batch has taken 10 minutes
// (plugins/relay/relay.cpp); its hour only ends one stuck in a single
// transaction, whose timeouts (5 minutes a reply) may add up past that.
constexpr KindInfo info(Kind k) {
    using std::chrono::minutes;
    switch (k) {
    case Kind::Local: return {k, Pool::Local, 32, minutes(10), FormatUse::Path};
    case Kind::Command: return {k, Pool::Local, 1, minutes(10), FormatUse::Command};
    case Kind::Lmtp: return {k, Pool::Local, 32, minutes(10), FormatUse::Path};
    case Kind::Relay: return {k, Pool::Relay, 32, minutes(60), std::nullopt};
    }
    return {Kind::Local, Pool::Local, 1, minutes(10), FormatUse::Path};  // not reached
}

constexpr KindInfo info(std::string_view m) { return info(kind_of(m)); }

// posternctl's names for the pools.
constexpr std::string_view pool_name(Pool p) { return p == Pool::Relay ? "mta" : "mda"; }
constexpr std::optional<Pool> pool_named(std::string_view name) {
    if (name == "mda") return Pool::Local;
    if (name == "mta") return Pool::Relay;
    return std::nullopt;
}

}  // namespace postern::delivery
