// control/protocol.hpp — the control socket protocol spoken by posternctl(8)
// and posternd.
//
// One exchange per connection: the client connects to the UNIX socket
// (default /run/postern/control.sock), sends ONE request frame, then reads
// the reply frame until the server closes the connection. (When the server
// refused a request before reading all of it, Linux reports ECONNRESET after
// the reply bytes: a client takes that as the end of the reply too.)
//
// Framing is netstrings (length ":" bytes ","), nested:
//
//   netstring = LENGTH ":" BYTES ","      LENGTH: decimal, at most 9 digits,
//                                         no leading zero (so "0" for empty)
//   request   = netstring( netstring("postern-control/1") 1*32 netstring(WORD) )
//   reply     = netstring( netstring("postern-control/1")
//                          netstring("ok" | "error")
//                          netstring(ERROR-TEXT)          ; empty when ok
//                          *netstring(RECORD) )
//   RECORD    = *( netstring(KEY) netstring(VALUE) )      ; ordered pairs
//
// A value may hold any bytes (NUL, CR, LF, ':' and ',' included): every field
// carries its own length, so no content can end a field early or forge one.
// Sizes are bounded: a request frame is at most kMaxRequest bytes, a reply
// frame at most kMaxReply. The first field names the protocol version; a peer
// that sees another version refuses the frame.
//
// Commands (the request's words; see validate_request and usage_lines):
//   show queue                  records: one per envelope, keys in this order:
//                               id, msgid, sender, rcpt, dest, action, user,
//                               state, ctime, expire, last-try, next-try,
//                               attempts, last-error (posternctl(8))
//   show stats                  one record of counters (uptime first)
//   show status                 records: first the daemon's: version,
//                               uptime (seconds), mda, mta, smtp
//                               (running|paused), queue.messages,
//                               queue.envelopes, queue.oldest-age (seconds
//                               since the oldest message was received, ""
//                               when the queue is empty); then one per
//                               listener, first key "listener" (the address
//                               as written, "socket" for the local socket):
//                               port ("" for the socket), path (the
//                               socket's path, "" for others), tls, tls-require,
//                               smtps, auth, auth-optional (yes|no), filter
//                               (as configured, "" = none), then a "member"
//                               key per filter of its chain, in order; then
//                               one per filter those chains use, first key
//                               "filter" (its name): kind (proc|builtin),
//                               state (starting|running|restarting|down),
//                               pid ("" = none), restart-in-ms (the backoff
//                               left while restarting, else "")
//   show message ID             one record with key "text": the message file
//   show envelope EVPID         one record: the envelope's fields
//   schedule ID|all, remove ID|all, pause mta|mda|smtp, resume mta|mda|smtp,
//   log verbose|brief, update table NAME
//                               no records needed; an optional record with
//                               key "message" is shown as the confirmation
//   table lookup NAME SERVICE KEY
//                               one record: table, service, key, how
//                               (lookup|match|fetch), result
//                               (found|not-found|tempfail), then value when
//                               found (value services), entry when a match
//                               service found the subject (the entry it
//                               matched, when the table can be listed),
//                               hidden = "yes" instead of the value for
//                               credentials, error when tempfail. SERVICE
//                               is one of service_names().
//   reload                      the daemon reads its configuration again
//                               (posternd(8)); ok with one record, key
//                               "message": "configuration reloaded"; or
//                               error "configuration not reloaded; the
//                               running one stays", then one record per
//                               problem, key "error": "FILE:LINE:COL: ..."
// ID is a message id (8 lowercase hex digits) or an envelope id (16).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::control {

inline constexpr std::string_view kVersion = "postern-control/1";
inline constexpr size_t kMaxRequest = 64 * 1024;       // whole request frame
inline constexpr size_t kMaxReply = 64 * 1024 * 1024;  // whole reply frame
inline constexpr size_t kMaxWords = 32;
inline constexpr size_t kMaxKey = 1024;  // a `table lookup` KEY

struct Request {
    std::vector<std::string> words;
    bool operator==(const Request&) const = default;
};

using Record = std::vector<std::pair<std::string, std::string>>;

struct Reply {
    bool ok = true;
    std::string error;  // one line of text when !ok
    std::vector<Record> records;
    bool operator==(const Reply&) const = default;
};

std::string encode_request(const Request& req);
std::string encode_reply(const Reply& reply);

// Decode exactly one whole frame (no bytes before or after it). On failure
// return false and set *err to a short reason, e.g. "truncated frame".
bool decode_request(std::string_view in, Request* req, std::string* err);
bool decode_reply(std::string_view in, Reply* reply, std::string* err);

// For a reader that receives a frame piece by piece: is the outer netstring
// at the front of `in` complete yet? Bad sets *err (and never turns good).
enum class FrameState { Incomplete, Complete, Bad };
FrameState scan_frame(std::string_view in, size_t max_frame, std::string* err);

// Is this a command posternd knows, with well-formed arguments? Returns an
// empty string when it is, else why not ("unknown command: show foo",
// "invalid ID 'xyz': expected 8 or 16 hex digits or all"). Used by the client
// before it connects and by the server before it calls its handler.
std::string validate_request(const Request& req);

// The command forms, one per line, for usage messages ("schedule ID|all").
const std::vector<std::string_view>& usage_lines();

// The SERVICE words of `table lookup`: OpenSMTPD's lookup services.
const std::vector<std::string_view>& service_names();

// A word made safe for an error message: printable ASCII, at most 64 bytes.
std::string printable(std::string_view word);

}  // namespace postern::control
