// One envelope: a message's journey to one recipient, as kept in the spool.
//
// On disk an envelope is a small text file of `key: value` lines whose first
// line is `version: N`. Values are escaped so that no byte a client can send
// (CR, LF, NUL, %, control characters) can start a new line or forge a field:
// the file format cannot be injected into from envelope or message content.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::queue {

inline constexpr int kEnvelopeVersion = 1;

struct Envelope {
    std::string id;             // 16 hex digits: the message id then 8 random hex digits
    std::string msgid;          // 8 hex digits
    std::string action;         // the config action that delivers it
    std::string sender;         // envelope sender; "" is the null sender <>
    std::string rcpt;           // recipient as given in RCPT TO
    std::string dest;           // final recipient after expansion
    std::string user;           // local user the delivery runs as ("" for remote)
    std::string helo;           // client's HELO/EHLO name
    std::string client;         // client address ("127.0.0.1", "local")
    std::string hostname;       // the listener's hostname (our name in that session)
    std::string tag;            // listener tag
    std::int64_t ctime = 0;     // creation, UNIX seconds
    std::int64_t expire = 0;    // give up after this UNIX time
    std::int64_t last_try = 0;  // last attempt, 0 = never
    std::int64_t next_try = 0;  // next attempt, 0 = as soon as possible
    std::uint32_t retry = 0;    // temporary failures so far
    std::string errorline;      // last error, "" if none

    // How to deliver, when it is not simply the action's method to `user`
    // (set by alias expansion: a file, a command, a userbase account).
    std::string method;     // plugin overriding the action's method: "mbox" (file), "mda" (command)
    std::string path;       // that plugin's path: the file or the command; "" = the action's
    std::string account;    // "uid:gid:home" from a userbase; "" = look `user` up in the system
    std::string extension;  // the recipient's +tag

    // DSN (RFC 3461) as the client asked for it.
    std::uint32_t dsn_notify = 0;  // smtp::DsnNotify bits, 0 = not given
    std::string dsn_ret;           // "full", "hdrs" or ""
    std::string dsn_envid;         // decoded ENVID
    std::string dsn_orcpt;         // "rfc822;address" or ""
    std::uint32_t bounce = 0;      // 1: carries a delivery status report, 2: a report about a failed report
    std::uint32_t warnings = 0;    // delay notices already sent for it
};

std::string encode(const Envelope& e);
// Refuses a wrong version, an unknown or repeated key, a missing id/msgid,
// bad escapes and malformed numbers; `error` says which and where.
std::optional<Envelope> decode(std::string_view text, std::string* error);

// The compact form the scheduler holds while an envelope is queued: every
// field but the two ids (its key gives them), numbers as varints, strings
// prefixed by their length: a few hundred bytes, where an Envelope takes
// about 700 before its strings' own allocations. Memory only, never stored:
// unpack() reads only what pack() wrote.
std::string pack(const Envelope& e);
// `id`: the envelope id's 16 hex digits as a number.
Envelope unpack(std::uint64_t id, std::string_view packed);
// A packed envelope with its id, as the spool hands a loaded queue over.
struct Packed {
    std::uint64_t id = 0;
    std::string bytes;
};

// Fresh random ids (from the OS random source).
std::string new_message_id();                         // 8 hex digits
std::string new_envelope_id(std::string_view msgid);  // msgid + 8 hex digits

}  // namespace postern::queue
