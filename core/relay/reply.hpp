// Replies of a remote SMTP server, as read by the outbound client (RFC 5321
// 4.2, enhanced status codes of RFC 2034 / RFC 3463).
//
// The parser is the first code that reads what another server sends us, so
// it is bounded in every dimension and fuzzed (tests/fuzz/fuzz_reply.cpp):
// OpenSMTPD's CVE-2020-8794 was a client-side reply parser that could be led
// past the end of a reply. Here a reply is fed in whatever pieces the network
// delivers, the parser never takes a byte beyond the end of one reply (the
// rest belongs to the next, e.g. with PIPELINING), and every malformed input
// ends in Error with a fixed text rather than a guess.
//
// Accepted: lines "NNN-text" (more follow) and "NNN text" (the last), a bare
// "NNN" read as "NNN ", CRLF or LF line ends. NNN is 2xx..5xx with a second
// digit 0..5, the same on every line. Refused, with these error() texts:
//   "malformed reply code"                          (not [2-5][0-5][0-9], or a line under 3 bytes)
//   "malformed separator after reply code"          (neither '-', ' ' nor the line end)
//   "reply code changed within a multi-line reply"
//   "NUL byte in reply"
//   "bare CR in reply"                              (a CR not followed by LF)
//   "reply line over 4096 bytes"                    (line end not counted; RFC 5321 says 512)
//   "more than 100 lines in one reply"
// Errors are reported at the first offending byte, so that a peer speaking
// something else (an HTTP server, a banner of garbage) is dropped at once.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace postern::relay {

inline constexpr std::size_t kMaxReplyLine = 4096;
inline constexpr std::size_t kMaxReplyLines = 100;

struct Reply {
    int code = 0;
    std::string enhanced;            // "5.1.1", or "" when the first line carries no valid one
                                     // (class 2, 4 or 5 equal to the code's first digit)
    std::vector<std::string> lines;  // the text after "NNN-" / "NNN " (an enhanced code stays in it)
    std::string text() const;        // the lines joined with " "
};

class ReplyParser {
public:
    enum class Status { NeedMore, Done, Error };

    // Consume bytes of `in` up to the end of one complete reply; `*used` says
    // how many were taken. NeedMore: all of `in` was taken. Done: the reply
    // ended at in[*used - 1]. Error: in[*used - 1] is the offending byte.
    // Once Done or Error, further calls take nothing until reset().
    Status feed(std::string_view in, std::size_t* used);

    Status status() const { return status_; }
    const Reply& reply() const { return reply_; }  // complete once Done; partial before
    const std::string& error() const { return error_; }
    void reset();

private:
    bool take(char c);  // false once the byte ended the reply or was an error
    bool add_to_line(char c);
    void end_line();
    void fail(const char* why);

    Reply reply_;
    std::string line_;  // the current line, without its line end
    std::string error_;
    Status status_ = Status::NeedMore;
    bool cr_ = false;  // the previous byte was a CR: only LF may follow
};

// The extensions a 250 reply to EHLO offers (the first line is the greeting):
// keyword uppercased -> parameters, whitespace collapsed to single spaces
// ("SIZE" -> "35882577", "AUTH" -> "PLAIN LOGIN", "PIPELINING" -> "").
// Lines whose keyword is not RFC 5321 syntax (ALPHA/DIGIT then ALPHA/DIGIT/'-',
// e.g. the old "AUTH=LOGIN") are skipped; a repeated keyword keeps its first
// line. Any other reply code gives an empty map.
std::map<std::string, std::string> ehlo_extensions(const Reply& r);

}  // namespace postern::relay
