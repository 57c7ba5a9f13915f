// tables/proc/imsg_codec.hpp — the binary imsg protocol of OpenSMTPD <= 7.5
// table programs (Debian 12's OpenSMTPD 6.8 and opensmtpd-extras 6.7.1:
// table-sqlite, table-passwd, table-ldap, ...; reference/table-protocol.md §5b).
//
// Wire format, as those programs were compiled on this platform (host byte
// order and C type sizes, since both ends are always the same machine):
//
//   header  u32 type, u16 len (header included), u16 flags, u32 peerid, u32 pid
//   OPEN    u32 version (2), char name[LINE_MAX]      -> OK, no payload
//   UPDATE  (nothing)                                 -> OK, int result
//   CHECK   int service, size_t 0, key NUL            -> OK, int result
//   LOOKUP  int service, size_t 0, key NUL            -> OK, int result [value NUL]
//   FETCH   int service, size_t 0                     -> OK, int result [value NUL]
//   CLOSE   (nothing)                                 -> no reply, the program exits
//
// result: 1 found (only then a value follows, for lookup and fetch), 0 not
// found, -1 error. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol.hpp"

namespace postern::proctable::imsg {

inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::size_t kMaxMessage = 16384;  // the imsg library's MAX_IMSGSIZE, header included
inline constexpr uint32_t kApiVersion = 2;

enum Type : uint32_t { Ok = 0, Fail = 1, Open = 2, Close = 3, Update = 4, Check = 5, Lookup = 6, Fetch = 7 };

// A whole message: header and payload.
std::string encode(uint32_t type, std::string_view payload);
std::string encode_open(std::string_view table_name);
// A CHECK or LOOKUP message; nullopt when the key does not fit in one message
// (or holds a NUL, which the C string on the other side cannot carry).
std::optional<std::string> encode_query(Op op, uint32_t service, std::string_view key);
std::string encode_fetch(uint32_t service);

// The first message at the start of `bytes`.
struct NeedMore {};
struct Frame {
    uint32_t type = 0;
    std::string_view payload;  // points into the bytes given
    std::size_t size = 0;      // header + payload: what to drop from the buffer
};
std::variant<NeedMore, Frame, Garbage> decode_frame(std::string_view bytes);

// The program's answer to a request of kind `op` (Open, Update, Check,
// Lookup or Fetch).
Decoded decode_reply(Op op, const Frame& frame);

// The OK message a program would send for `reply` (tests and fuzzing).
std::string encode_reply(Op op, const Reply& reply);

}  // namespace postern::proctable::imsg
