// The pre-6.4 smtpd.conf grammar, translated into current lines.
//
// Most articles our users learned from write one-line rules (`accept from any
// for domain D deliver to mbox`, `accept ... relay via URL`, `reject ...`) and
// a few old global spellings (`max-message-size`, `expire`, `limit session`).
// OpenSMTPD 6.4 replaced them with `action` + `match`. The translator turns
// each old line into the tokens of the current lines that mean the same thing
// (shared/reference/config-grammar.md §10), which the parser then reads as if
// the user had written them; the user gets one warning per old line that
// shows those lines, ready to paste. Tokens keep the location of the old text
// they came from, so a later error (an unknown table) points at what was written.
//
// "The same thing" includes who a rule took: before 6.4 an authenticated
// session counted as `local`, so an old rule's source becomes `auth` criteria
// too (`accept from local ... relay` is two match lines, the second
// `match auth from any ...`; see source_lines in legacy.cpp).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/lexer.hpp"

namespace postern::config::legacy {

// Whether a line that starts with `word` is pre-6.4 grammar read here.
bool is_legacy_directive(std::string_view word);

// A line of tokens as a user would write it (strings quoted, `<t>`, `!from`).
std::string render(const Line& line);

class Translator {
public:
    // Whether an action of that name exists already (declared, or declared on a broken line).
    using NameTaken = std::function<bool(std::string_view)>;

    struct Result {
        std::vector<Line> lines;            // current lines to read, in order; none for a rule that never matched
        std::optional<Diagnostic> warning;  // "pre-6.4 grammar; ..." with the lines; unset when refused
    };

    // Translates one old line. A refusal adds errors and returns no lines.
    Result translate(const Line& line, const NameTaken& taken, std::vector<Diagnostic>& errors);

private:
    Result translate_rule(const Line& line, const NameTaken& taken, std::vector<Diagnostic>& errors);
    Result translate_global(const Line& line, std::vector<Diagnostic>& errors);
    std::string action_name(std::string_view method, const NameTaken& taken);

    // One action per distinct delivery clause: the clause as rendered -> its action's name.
    std::map<std::string, std::string, std::less<>> actions_;
    std::set<std::string, std::less<>> names_;  // every name given out
};

}  // namespace postern::config::legacy
