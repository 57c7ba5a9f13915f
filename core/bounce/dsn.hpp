// Delivery status notifications: the bounce, delay warning and success
// report postern sends back to a message's sender (RFC 3464 inside an
// RFC 3462 multipart/report, RFC 5322 headers).
//
// build_dsn() is a pure function of its arguments (plus the clock for Date:
// and the OS random source for Message-ID and the MIME boundary): the
// scheduler decides when a report is due and who gets it (never for the null
// sender, a bounce of a bounce, or NOTIFY=NEVER; see control-and-ops.md §7),
// then queues the text this returns as a new message sent with MAIL FROM:<>.
//
// Every value that came from an envelope or a remote server is untrusted: it
// is made header-safe (control characters become spaces, 8-bit bytes '?') so
// that an address such as "a@b\nBcc: x@y" stays inside its own field, and
// long values are folded so that no line reaches 998 octets. Lines end in LF,
// as postern stores messages.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace postern::bounce {

enum class Kind { Failed, Delayed, Delivered };

struct RecipientReport {
    std::string final_recipient;        // address
    std::string original_recipient;     // ORCPT "rfc822;a@b" or ""
    std::string status;                 // "5.1.1"; a malformed one becomes 5.0.0 / 4.0.0 / 2.0.0
    std::string diagnostic;             // reply or reason text
    std::string remote_mta;             // "" if none
    std::int64_t last_attempt = 0;      // UNIX seconds, 0 = not reported
    std::int64_t will_retry_until = 0;  // Delayed only
    // Delivered only: handed to a server that will not report on it (no DSN
    // support): Action "relayed" (RFC 3464 2.3.3) instead of "delivered".
    bool relayed = false;
};

struct Report {
    Kind kind = Kind::Failed;
    std::string reporting_mta;  // our hostname
    std::string sender;         // the original envelope sender, the report's To:
    std::string envid;          // ENVID, decoded; "" if none
    std::int64_t arrival = 0;   // UNIX seconds the message arrived, 0 = not reported
    bool return_full = false;   // RET=FULL: the whole message on a failure, else headers only
    std::string postmaster = "MAILER-DAEMON";
};

// What a report carries of the original, at most: a message larger than
// this comes back as its header section alone, and a header section larger
// than this is cut at a line end. A report is then bounded whatever was sent
// (a 35 MB message, or one without an empty line, all "headers").
inline constexpr std::size_t kMaxReturned = 256 * 1024;

// `original` is the stored message (LF line ends). Returns the whole report
// message, headers and body, LF line ends. The original is attached as
// message/rfc822 for Kind::Failed with return_full when it is at most
// kMaxReturned, otherwise its header section alone as text/rfc822-headers
// (at most kMaxReturned of it).
std::string build_dsn(const Report& report, const std::vector<RecipientReport>& rcpts, std::string_view original,
                      std::string_view message_id_domain);

// The pieces below are exposed for the unit tests.

// A copy of `value` fit for a header field: control characters (CR, LF, TAB,
// NUL, DEL ...) become spaces, bytes over 127 become '?', ends trimmed.
std::string header_safe(std::string_view value);

// "Name: value\n", folded at spaces so that lines stay near 78 octets; a word
// too long for that is cut into pieces so that no line exceeds 998 octets.
std::string fold_field(std::string_view name, std::string_view value);

// "Tue, 02 Jan 2024 03:04:05 +0000" (RFC 5322 3.3, always UTC).
std::string rfc5322_date(std::int64_t unix_seconds);

// A MIME boundary that does not occur in `content`: asks `token` for
// candidates (a bounded number of times) and returns the first absent one.
std::string pick_boundary(std::string_view content, const std::function<std::string()>& token);

}  // namespace postern::bounce
