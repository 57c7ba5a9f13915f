// control/output.hpp — what posternctl(8) prints for a reply: text for
// people, or JSON (--json) made with nlohmann::json.
//
// The keys of every JSON document are listed in posternctl(8), JSON OUTPUT,
// and are stable: a later version may add keys, never rename or drop one.
// Every value is a JSON string, except in `show status`, whose numbers,
// flags and absent values are JSON numbers, booleans and null.
//
// Values from the daemon may hold any bytes. In text, control bytes,
// backslashes and invalid UTF-8 are escaped (text_value), so that a value
// can neither break a line nor send terminal control sequences. In JSON,
// a byte that is not part of valid UTF-8 is read as Latin-1 (0xff becomes
// U+00FF), so that the document is always valid and nothing is lost.
//
// Depends on: control/protocol, nlohmann::json.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "control/protocol.hpp"

namespace postern::control {

// How a command's reply is printed.
enum class Shape {
    List,       // show queue: a line per record; JSON: an array of objects
    KeyEquals,  // show stats: key=value lines; JSON: one object
    KeyColon,   // show envelope: key: value lines; JSON: one object
    Text,       // show message: the text as it is; JSON: {"text": ...}
    Status,     // show status: the overview; JSON: see status_json
    Action,     // schedule, pause, ...: a confirmation; JSON: {"message": ...}
    Lookup,     // table lookup: printed by the caller (its exit status is the answer)
};
// `words` is a request validate_request() accepted.
Shape shape_of(const std::vector<std::string>& words);

// The reply as posternctl prints it (every line ends with '\n'; "" for an
// empty queue in text).
std::string render_text(const std::vector<std::string>& words, const Reply& reply);
std::string render_json(const std::vector<std::string>& words, const Reply& reply);

// One record as one JSON object of strings, keys in their order, then '\n'
// (table lookup's answer).
std::string record_json(const Record& rec);

// A value made safe for a text line (see the file comment); `separator`
// (show queue's '|') is escaped too.
std::string text_value(std::string_view s, char separator = '\0');

// The value of the first `key` in `rec`, or nullptr.
const std::string* field(const Record& rec, std::string_view key);

}  // namespace postern::control
