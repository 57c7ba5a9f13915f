// delivery/result.hpp — what became of one delivery, as typed data, and the
// form it travels in.
//
// A result is data, never prose parsed back: the scheduler decides on the
// status and the "DSN handed on" flag, a report quotes the enhanced code and
// the remote server's name and reply; the text is only for the log.
//
// The wire form (fields of a util/frame.hpp frame) is written by the agent
// (postern-local, after its index) and by the privileged parent (after the
// request id), and read by the launcher and the unprivileged process. The
// agent runs as the recipient, so whoever reads a result checks every field
// (parse_result) before it is believed.
//
// postern-local compiles result.cpp in too: it depends on util/frame only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::delivery {

struct Result {
    enum class Status { Ok, TempFail, PermFail };
    Result() = default;
    Result(Status s, std::string t) : status(s), text(std::move(t)) {}  // no typed fields: a local outcome

    Status status = Status::TempFail;
    std::string text;      // one line for the log: where it went, or the reason
    std::string enhanced;  // RFC 3463 code of the status's class, "5.1.1"; "" = none given
    // The server that answered (a relay): a report's Remote-MTA and
    // Diagnostic-Code. host "" = no server took part; code 0 = no reply to quote.
    struct Remote {
        std::string host;   // "mx.example.org", as the route named it
        std::string addr;   // "192.0.2.1", "2001:db8::1"
        int code = 0;       // 250, 550, ...
        std::string reply;  // its reply after the code, lines joined with " ": "5.1.1 <b@example.com>: unknown"
    } remote;
    bool dsn_handed_on = false;  // the next server took the DSN request over: it reports, not us (Ok only)
    // The spooled message cannot be decoded (damaged, cut, or written with
    // another queue key): it is set aside, not tried again (TempFail only).
    // Only the launcher says so, never an agent.
    bool unreadable = false;
};

// Bounds of the fields as they travel (the agent's come from the plugin's
// fixed buffers: 1024-byte text and reply, 256-byte host, 64-byte address).
inline constexpr std::size_t kMaxResultText = 4096;
inline constexpr std::size_t kMaxRemoteHost = 255;
inline constexpr std::size_t kMaxRemoteAddr = 63;
inline constexpr std::size_t kMaxRemoteReply = 1023;

// The wire form: kResultFields fields, status word ("ok", "temp", "perm"),
// text, enhanced, remote host, remote address, remote code (decimal, "0" =
// none), remote reply, flags (decimal; 1 = DSN handed on, 2 = unreadable).
inline constexpr std::size_t kResultFields = 8;
void append_result_fields(const Result& r, std::vector<std::string>* out);
// Reads fields[0 .. kResultFields) from a peer that is not trusted; false
// with *why naming the first field that is not what the wire form allows.
bool parse_result(const std::string* fields, Result* out, std::string* why);

// "" when every field of `r` is one the wire form allows, else what is wrong.
std::string check_result(const Result& r);
// An enhanced status code of the class `status` calls for (2, 4 or 5):
// "C.SSS.DDD" with one to three digits each (RFC 3463).
bool valid_enhanced(std::string_view code, Result::Status status);

const char* status_word(Result::Status s);

}  // namespace postern::delivery
