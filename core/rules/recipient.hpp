// From one RCPT TO to the deliveries it stands for.
//
// The rules pick the action; the action's alias, virtual and userbase tables
// expand the recipient into users, files, commands and further addresses;
// addresses are matched again as mail from this host, until everything is a
// delivery or the recipient is refused with the reply that says why. Runs on
// a worker thread: rules and expansion may read tables that block.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "expand/forward.hpp"
#include "queue/envelope.hpp"
#include "rules/ruleset.hpp"
#include "table/registry.hpp"

namespace postern::rules {

// The account relay deliveries run as.
inline constexpr const char* kRelayUser = "_postern";

// One future envelope.
struct PlannedDelivery {
    std::string action;     // the action that delivers it
    std::string dest;       // final address
    std::string user;       // recipient account name
    std::string method;     // "" = the action's; "mbox" for a file, "mda" for a command
    std::string path;       // the file or command; "" = the action's path
    std::string account;    // "uid:gid:home" the delivery runs as
    std::string extension;  // the recipient's +tag
};

struct Resolution {
    int code = 250;    // 250, or the refusal's code
    std::string text;  // the refusal's text after the code ("5.1.1 <a@b>: ...")
    std::string log;   // details for the log, never for the client
    std::vector<PlannedDelivery> deliveries;
    std::vector<std::string> warnings;  // what expansion skipped (an unsafe .forward), for the log
    bool accepted() const { return code / 100 == 2; }
};

// A new envelope of message `msgid` for one delivery, created at `now`, with
// its expiry from the action's ttl or `queue ttl`; the caller adds who sent it.
queue::Envelope new_envelope(const config::Config& config, const PlannedDelivery& d, const std::string& msgid,
                             std::int64_t now);

// `subject` describes the session and the recipient (rcpt, rcpt_domain set);
// `local` is the recipient's local part as sent.
// `forward` reads users' ~/.forward (nullptr: never).
Resolution resolve_recipient(const config::Config& config, const rules::Ruleset& rules, table::Registry& tables,
                             const rules::Subject& subject, const std::string& local, int depth = 10,
                             const expand::ForwardReader* forward = nullptr);

}  // namespace postern::rules
