// tables/proc/line_codec.hpp — the text protocol 0.1 of OpenSMTPD 7.6+ table
// programs (smtpd-tables(7); reference/table-protocol.md §5a): pure encoders
// for what the daemon writes and decoders for what a program answers.
//
// A program's lines are untrusted: every decoder returns Garbage with a reason
// rather than guessing, and never reads past the text it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "protocol.hpp"

namespace postern::proctable::line {

inline constexpr std::string_view kVersion = "0.1";
// Longest line taken from a program, its '\n' excluded: a value this long is
// no mail address list anyone meant, and the buffer must stay bounded.
inline constexpr std::size_t kMaxLine = 65536;

// The daemon's greeting: four config lines, each ending in '\n'.
std::string encode_handshake(std::string_view smtpd_version, std::string_view table);

// One request line ending in '\n'. `service` and `key` are ignored where the
// op has none (update; fetch has no key). The caller has refused keys with
// CR or LF; `id` is 8 hex digits; `sec`/`usec` the time of the request.
std::string encode_request(Op op, uint32_t service, std::string_view key, std::string_view table, std::string_view id,
                           int64_t sec, long usec);

// Where the first line of `buffer` ends.
struct Cut {
    enum class State { NeedMore, Line, TooLong };
    State state = State::NeedMore;
    std::size_t length = 0;    // Line: the line without "\n" (and without a "\r" before it)
    std::size_t consumed = 0;  // Line: bytes to drop from the buffer, '\n' included
};
Cut cut_line(std::string_view buffer, std::size_t max = kMaxLine);

// One handshake line from the program: a service, or the end of the list.
struct Registered {
    bool ready = false;    // "register|ready"
    uint32_t service = 0;  // otherwise the service's bit
    bool operator==(const Registered&) const = default;
};
std::variant<Registered, Garbage> decode_register(std::string_view line);

// The reply to a request of kind `op` (Update, Check, Lookup or Fetch) sent
// with `id`. Update answers "ok" as Found.
Decoded decode_reply(std::string_view line, Op op, std::string_view id);

// The reply line a program would write for `reply` (tests and fuzzing: the
// daemon never writes one). No '\n'.
std::string encode_reply(Op op, std::string_view id, const Reply& reply);

}  // namespace postern::proctable::line
