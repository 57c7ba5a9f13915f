// scheduler/relay_route.hpp — what the relay plugin is told for one batch of
// envelopes of a `relay` action: where to go (smarthosts in failover order,
// a per-domain smarthost, or MX routing), how (EHLO name, source address,
// TLS, resolver, backup MX name) and, on a private channel, the client
// credentials. Also the sender on the wire (`mail-from`, `srs`).
//
// Tables are read here: `host <list>` (URLs, tried in the table's order),
// `domain <map>` (recipient domain -> URL; a domain without an entry goes by
// MX), `auth <map>` (URL label -> "user:password"), `src <list>` (used in
// turn, one address per batch), `helo-src <map>` (source address -> EHLO
// name). So batch_key() and route() may block for as long as a table takes:
// the scheduler calls them on its routing threads, never on the event loop,
// and they are thread-safe (const config, tables that lock themselves, an
// atomic turn).
//
// Depends on: config (Action, Relay, Config), table/registry.hpp, relay/url.hpp.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "queue/envelope.hpp"
#include "relay/url.hpp"
#include "table/registry.hpp"

namespace postern::scheduler {

struct RelayRoute {
    std::string path;     // "mx:DOMAIN" or "URL [URL ...]" (plugins/relay/options.hpp)
    std::string options;  // the public option words
    std::string secret;   // "auth@LABEL=TOKEN ...": never on a command line
};

// The client certificates of relay actions (`relay pki NAME`), read while
// the daemon is still root, as "cert=B64 key=B64" words by pki name. False
// with one error per file that cannot be read.
using RelayPkis = std::map<std::string, std::string>;
bool load_relay_pkis(const config::Config& config, RelayPkis* out, std::vector<std::string>* errors);

class RelayRouter {
public:
    RelayRouter(const config::Config& config, table::Registry& tables, const RelayPkis& pkis)
        : config_(config), tables_(tables), pkis_(pkis) {}

    // Envelopes with the same key go to the same place and may share one
    // agent run (and one connection): "ACTION\nhost" for the action's
    // smarthosts, "ACTION\nhost URL" for the one a domain table names,
    // "ACTION\nmx DOMAIN" for MX routing. is_mx_key() tells the last apart,
    // for the limit that applies (max-conn-per-domain or -per-relay).
    std::string batch_key(const config::Action& action, const queue::Envelope& e) const;
    static bool is_mx_key(std::string_view key) { return key.find("\nmx ") != std::string_view::npos; }
    // What batch_key() of `e` must ask a table, as a text that is the same
    // for envelopes whose keys are the same; "" when the key needs no table
    // (batch_key() is then quick and may run anywhere).
    static std::string key_lookup(const config::Action& action, const queue::Envelope& e);
    // Whether route() reads a table for this action (else it is quick and
    // may run on the loop: one slow table must not hold up other actions).
    static bool route_reads_tables(const config::Action& action);
    // The route of `e` (and of its batch); false with *why when the mail must
    // wait (a table that cannot be read now).
    bool route(const config::Action& action, const queue::Envelope& e, RelayRoute* out, std::string* why);
    // The envelope sender as sent to the next server: rewritten by
    // `mail-from`, else by `srs` (into e.hostname, the name bounces come back
    // to); the null sender and senders already in that domain stay as they are.
    std::string wire_sender(const config::Relay& r, const queue::Envelope& e) const;
    // The DSN parameters e was received with, to pass on (RFC 3461 6.2):
    // MAIL's RET and ENVID, RCPT's NOTIFY and ORCPT, xtext-encoded.
    static void dsn_params(const queue::Envelope& e, std::string* mail, std::string* rcpt);

private:
    bool smarthosts(const config::Relay& r, const queue::Envelope& e, std::vector<relay::RelayUrl>* out,
                    std::string* why);
    bool credentials(const config::Relay& r, const std::vector<relay::RelayUrl>& hosts, RelayRoute* out,
                     std::string* why);
    std::string source_address(const config::Relay& r, std::string* why);

    const config::Config& config_;
    table::Registry& tables_;
    const RelayPkis& pkis_;
    std::atomic<unsigned> src_turn_ = 0;
};

}  // namespace postern::scheduler
