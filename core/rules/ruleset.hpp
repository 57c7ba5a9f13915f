// The rules: which `match` line applies to a recipient, hence which action
// delivers it or whether it is refused.
//
// Evaluated per recipient, first match wins, as OpenSMTPD does. Evaluation
// may consult tables, which may block: run it on a worker thread.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "table/registry.hpp"

namespace postern::rules {

// What the rules look at for one recipient.
struct Subject {
    bool from_socket = false;  // local enqueue (sendmail)
    bool from_local = false;   // loopback or one of this host's addresses
    std::string client_ip;     // "" for the socket
    std::string rdns;          // the client's PTR name; "" when it has none
    bool fcrdns = false;       // ... and it resolves back to the client's address
    std::string helo;          // the HELO/EHLO name as given; "" before one
    std::string sender;        // "user@domain", "" for <>
    std::string rcpt;          // "user@domain"
    std::string rcpt_domain;   // lowercased
    std::string tag;           // listener tag
    bool tls = false;          // the session is under TLS (STARTTLS done, or smtps)
    // The session authenticated (SMTP AUTH), as auth_user. The local socket
    // counts as authenticated whatever this says, as in OpenSMTPD; its
    // auth_user is the local user's name when the daemon knows it.
    bool authenticated = false;
    std::string auth_user;
};

struct Decision {
    enum class Kind { Deliver, Reject, NoMatch, TempFail } kind = Kind::NoMatch;
    const config::Action* action = nullptr;  // Deliver only
    const config::Rule* rule = nullptr;      // the rule that decided, if any
    std::string error;                       // TempFail: the table problem
};

class Ruleset {
public:
    // `localnames`: the domains `for local` means (localhost, our names, address literals).
    Ruleset(const config::Config& config, table::Registry& tables, std::vector<std::string> localnames);

    Decision evaluate(const Subject& subject) const;

    // Is the domain one of ours (`for local`)?
    bool is_local_domain(std::string_view domain) const;

    // One criterion, negation not applied (built-in filters' conditions are
    // tested the same way). May block on a table: call it on a worker.
    enum class Verdict { Yes, No, TempFail };
    Verdict test(const config::Criterion& c, const Subject& s, std::string* error) const;

private:
    Verdict test_value(const config::Criterion& c, table::Service service, std::string_view subject,
                       std::string* error) const;

    const config::Config& config_;
    table::Registry& tables_;
    std::vector<std::string> localnames_;
};

}  // namespace postern::rules
