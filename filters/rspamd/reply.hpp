// filters/rspamd/reply.hpp — rspamd's answer to POST /checkv2, decoded into
// typed data.
//
// What rspamd 3.4 (Debian 12) really sends, as captured from a real one
// (tests/unit/rspamd/data/*.json):
//
//   {"is_skipped":false, "score":61.199999, "required_score":100.0,
//    "action":"add header", "symbols":{"NAME":{"name":..,"score":..,..},..},
//    "messages":{"smtp_message":"Gtube pattern"},      (often {})
//    "subject":"***SPAM*** original subject",          (rewrite subject only;
//        the template's %s already replaced, RFC 2047-encoded if not ASCII)
//    "dkim-signature":"v=1; a=rsa-sha256; ...\r\n\t...", (when it signed)
//    "milter":{"add_headers":{"X-Spamd-Result":{"value":"..","order":-1},..},
//              "remove_headers":{"X-Spam":0,..}}}
//
// Header values come folded with "\r\n\t". rspamd's own milter (proxy) also
// accepts, and so this decoder does, an add_headers entry that is a plain
// string, or an array of strings and {value, order} objects, and a
// dkim-signature that is an array. "order" (or "index") is where the header
// goes: 0 is the top, -1 the bottom of the header section (see edits.hpp).
// A remove_headers count says which occurrence: 0 all, N the Nth from the
// top, -N the Nth from the bottom.
//
// Decoding is strict about what we act on (the action must be one of the six
// and the fields we read must have their documented types) and ignores the
// rest (urls, emails, time_real, unknown members), so a newer rspamd that adds
// fields still works, and one that changes a field we rely on fails loudly.
//
// Depends on: json.hpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "json.hpp"

namespace postern::rspamd {

enum class Action { Reject, SoftReject, RewriteSubject, AddHeader, Greylist, NoAction };

// rspamd's exact strings: "reject", "soft reject", "rewrite subject",
// "add header", "greylist", "no action".
std::string_view action_name(Action a);
std::optional<Action> parse_action(std::string_view name);

struct HeaderToAdd {
    std::string name;
    std::string value;  // as rspamd sent it, folding included
    int order = -1;     // -1 (the bottom) when rspamd gave none
    friend bool operator==(const HeaderToAdd&, const HeaderToAdd&) = default;
};

struct HeaderToRemove {
    std::string name;
    int which = 0;  // 0 all, N > 0 the Nth, N < 0 the Nth from the bottom
    friend bool operator==(const HeaderToRemove&, const HeaderToRemove&) = default;
};

struct Symbol {
    std::string name;
    double score = 0;
    friend bool operator==(const Symbol&, const Symbol&) = default;
};

struct Reply {
    Action action = Action::NoAction;
    double score = 0;
    double required_score = 0;
    bool is_skipped = false;
    std::optional<std::string> subject;       // the whole new Subject value
    std::optional<std::string> smtp_message;  // messages.smtp_message
    std::vector<HeaderToAdd> add_headers;     // milter.add_headers, in reply order
    std::vector<HeaderToRemove> remove_headers;
    std::vector<std::string> dkim_signatures;  // DKIM-Signature values
    bool no_action = false;                    // milter.no_action: mark, do not act
    std::vector<Symbol> symbols;               // in reply order
};

struct DecodeError {
    std::size_t offset = 0;  // into the body, for a JSON syntax error; 0 otherwise
    std::string message;     // names the field: "milter.add_headers.X-A: ..."
};

using DecodeResult = std::variant<Reply, DecodeError>;

DecodeResult decode_reply(std::string_view body, const json::Limits& limits = {});

}  // namespace postern::rspamd
