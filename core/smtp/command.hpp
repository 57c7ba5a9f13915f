// SMTP command lines and the paths of MAIL FROM / RCPT TO (RFC 5321 4.1).
//
// Pure parsing over std::string_view: no I/O, no allocation beyond the
// results. Every function here reads untrusted network input, is bounded by
// the length of its argument, and has a fuzz target (tests/fuzz).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::smtp {

enum class Verb { Helo, Ehlo, Mail, Rcpt, Data, Rset, Noop, Quit, Vrfy, Expn, Help, Starttls, Auth, Bdat, Unknown };

struct Command {
    Verb verb = Verb::Unknown;
    std::string_view name;  // the verb as sent
    std::string_view args;  // everything after the verb and its separating space(s), right-trimmed
};

// `line` is one command line without its CRLF / LF.
Command parse_command(std::string_view line);

// An ESMTP parameter: `SIZE=1024` -> {"SIZE", "1024", true}; `SMTPUTF8` -> {"SMTPUTF8", "", false}.
struct Param {
    std::string key;  // uppercased
    std::string value;
    bool has_value = false;
};

// A mailbox from a path. The null reverse-path `<>` has both parts empty.
struct Mailbox {
    std::string local;   // as sent (quoted local parts keep their quotes)
    std::string domain;  // lowercased; "" when the client gave none (`<postmaster>`);
                         // literals as "[192.0.2.1]" or "[IPv6:2001:db8::1]"
    bool empty() const { return local.empty() && domain.empty(); }
    std::string str() const;  // "local@domain", "local" or ""
};

struct PathArg {
    Mailbox mailbox;
    std::vector<Param> params;
};

// Why a path did not parse; `text` is the reply text to send after the reply
// code the session chooses. Address errors read
//   "5.1.7 Sender address syntax error: REASON"     (parse_mail_from)
//   "5.1.3 Recipient address syntax error: REASON"  (parse_rcpt_to)
// with REASON one of: "FROM:<address> expected" / "TO:<address> expected",
// "angle brackets required", "missing closing angle bracket",
// "null path not allowed" (RCPT only), "missing local part",
// "invalid local part", "unterminated quoted string", "local part too long"
// (over 64 octets), "missing domain", "invalid domain", "domain too long"
// (over 255), "invalid address literal", "invalid source route",
// "invalid character in address" (control or 8-bit byte), "path too long"
// (over 256 octets with the brackets), "unexpected text after address".
// A malformed ESMTP parameter (empty or bad keyword, a byte outside
// printable ASCII) gives "5.5.4 Invalid command arguments: malformed parameter".
// Whether a well-formed parameter is supported is the session's decision.
struct PathError {
    std::string text;
};

// `args` of MAIL: "FROM:<a@b> SIZE=10". Accepts `<>`, strips source routes
// (`<@a,@b:u@d>`), allows spaces after the colon, requires brackets.
std::optional<PathArg> parse_mail_from(std::string_view args, PathError* err);
// `args` of RCPT: "TO:<a@b> NOTIFY=NEVER". The null path is refused.
std::optional<PathArg> parse_rcpt_to(std::string_view args, PathError* err);

// A domain name or an address literal ([192.0.2.1], [IPv6:...]) as accepted in HELO/EHLO.
bool valid_helo_name(std::string_view name);

}  // namespace postern::smtp
