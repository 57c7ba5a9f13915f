// tables/proc/protocol.hpp — what both table program protocols share: the
// request kinds, the service names and numbers (OpenSMTPD's K_* values, equal
// to the POSTERN_SERVICE_* bits) and the decoded reply.
//
// Pure declarations and functions, no I/O: the codecs (line_codec, imsg_codec)
// and their fuzz targets build on them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace postern::proctable {

// What the daemon asks a program. Open is the imsg protocol's greeting.
enum class Op { Open, Update, Check, Lookup, Fetch };

// Services a program may name beyond the ABI's: regex and auth (OpenSMTPD
// 7.6+) are valid registrations, which postern never asks for.
inline constexpr uint32_t kServiceRegex = 0x800u;
inline constexpr uint32_t kServiceAuth = 0x1000u;

// The protocol name of one service bit ("alias"), "" for none or several.
std::string_view service_name(uint32_t service);
// The bit of a protocol service name, nullopt for an unknown name or "none".
std::optional<uint32_t> service_from_name(std::string_view name);
// Whether OpenSMTPD asks this service with `check` (a match: found or not)
// rather than `lookup` (a value): domain, netaddr, mailaddr, string, regex, auth.
bool is_match_service(uint32_t service);

// One answer from a program.
struct Reply {
    enum class Status { Found, NotFound, Error };
    Status status = Status::NotFound;
    // Found from lookup/fetch: the value; Error: the program's message (may be empty).
    std::string text;
    bool operator==(const Reply&) const = default;
};

// Bytes that break the protocol: the program is stopped and restarted.
struct Garbage {
    std::string why;
    bool operator==(const Garbage&) const = default;
};

using Decoded = std::variant<Reply, Garbage>;

}  // namespace postern::proctable
