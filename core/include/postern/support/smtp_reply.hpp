// postern/support/smtp_reply.hpp — replies of a remote SMTP or LMTP server
// as a client reads them (RFC 5321 4.2, enhanced status codes of RFC 2034 /
// RFC 3463): the parser of the relay plugin, for any delivery plugin that
// speaks SMTP. Header-only; C++17; no state shared between objects, so one
// parser per connection may live on any thread.
//
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

#include "postern/support/ascii.hpp"

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
inline std::map<std::string, std::string> ehlo_extensions(const Reply& r);

namespace detail {

using util::is_digit;
inline char to_upper(char c) { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; }

// The allowed digit at offset `pos` (0..2) of a reply code: 2..5, 0..5, 0..9.
inline bool code_digit_ok(std::size_t pos, char c) {
    switch (pos) {
    case 0: return c >= '2' && c <= '5';
    case 1: return c >= '0' && c <= '5';
    default: return is_digit(c);
    }
}

// 1 to 3 digits at the start of `s`; returns how many, 0 when none or too many.
inline std::size_t digits(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && is_digit(s[n])) ++n;
    return n <= 3 ? n : 0;
}

// RFC 3463: class "." subject "." detail, the class being the reply's first
// digit (a 250 reply cannot carry 5.x.x), then a space or the end of the text.
// There is no class 3: a 354 or 334 text that looks like one is just text.
inline std::string enhanced_code(std::string_view text, int code) {
    if (code / 100 == 3) return {};
    if (text.size() < 5 || text[0] != char('0' + code / 100) || text[1] != '.') return {};
    std::size_t subject = digits(text.substr(2));
    if (subject == 0 || 2 + subject >= text.size() || text[2 + subject] != '.') return {};
    std::size_t detail_at = 3 + subject;
    std::size_t detail = digits(text.substr(detail_at));
    if (detail == 0) return {};
    std::size_t end = detail_at + detail;
    if (end < text.size() && text[end] != ' ') return {};
    return std::string(text.substr(0, end));
}

inline bool is_keyword(std::string_view k) {
    if (k.empty()) return false;
    for (std::size_t i = 0; i < k.size(); ++i) {
        char c = k[i];
        bool alnum = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || c != '-')) return false;
    }
    return true;
}

inline bool is_space(char c) { return c == ' ' || c == '\t'; }

// "  PLAIN \t LOGIN " -> "PLAIN LOGIN".
inline std::string collapse_spaces(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (!is_space(c)) {
            out.push_back(c);
        } else if (!out.empty() && out.back() != ' ') {
            out.push_back(' ');
        }
    }
    if (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

}  // namespace detail

inline std::string Reply::text() const {
    std::string out;
    for (const auto& line : lines) {
        if (&line != &lines.front()) out.push_back(' ');
        out += line;
    }
    return out;
}

inline ReplyParser::Status ReplyParser::feed(std::string_view in, std::size_t* used) {
    std::size_t n = 0;
    if (status_ == Status::NeedMore) {
        while (n < in.size()) {
            if (!take(in[n++])) break;
        }
    }
    if (used) *used = n;
    return status_;
}

inline void ReplyParser::reset() {
    reply_ = Reply{};
    line_.clear();
    error_.clear();
    status_ = Status::NeedMore;
    cr_ = false;
}

inline bool ReplyParser::take(char c) {
    if (cr_) {
        cr_ = false;
        if (c != '\n') {
            fail("bare CR in reply");
            return false;
        }
        end_line();
        return status_ == Status::NeedMore;
    }
    switch (c) {
    case '\n': end_line(); return status_ == Status::NeedMore;
    case '\r': cr_ = true; return true;
    case '\0': fail("NUL byte in reply"); return false;
    default: return add_to_line(c);
    }
}

// The code and separator are checked as they arrive, not at the line end:
// a peer that is not an SMTP server is refused on its first wrong byte.
inline bool ReplyParser::add_to_line(char c) {
    std::size_t pos = line_.size();
    if (pos == 0 && reply_.lines.size() == kMaxReplyLines) {
        fail("more than 100 lines in one reply");
    } else if (pos == kMaxReplyLine) {
        fail("reply line over 4096 bytes");
    } else if (pos < 3 && !detail::code_digit_ok(pos, c)) {
        fail("malformed reply code");
    } else if (pos == 3 && c != '-' && c != ' ') {
        fail("malformed separator after reply code");
    }
    if (status_ == Status::Error) return false;
    line_.push_back(c);
    if (pos == 2) {
        int code = (line_[0] - '0') * 100 + (line_[1] - '0') * 10 + (line_[2] - '0');
        if (reply_.lines.empty()) {
            reply_.code = code;
        } else if (code != reply_.code) {
            fail("reply code changed within a multi-line reply");
            return false;
        }
    }
    return true;
}

inline void ReplyParser::end_line() {
    if (line_.size() < 3) {
        fail("malformed reply code");
        return;
    }
    bool last = line_.size() == 3 || line_[3] == ' ';
    reply_.lines.push_back(line_.size() > 4 ? line_.substr(4) : std::string());
    line_.clear();
    if (last) {
        reply_.enhanced = detail::enhanced_code(reply_.lines.front(), reply_.code);
        status_ = Status::Done;
    }
}

inline void ReplyParser::fail(const char* why) {
    error_ = why;
    status_ = Status::Error;
}

inline std::map<std::string, std::string> ehlo_extensions(const Reply& r) {
    std::map<std::string, std::string> out;
    if (r.code != 250) return out;
    for (std::size_t i = 1; i < r.lines.size(); ++i) {
        std::string_view line = r.lines[i];
        while (!line.empty() && detail::is_space(line.front())) line.remove_prefix(1);
        std::size_t end = 0;
        while (end < line.size() && !detail::is_space(line[end])) ++end;
        std::string_view keyword = line.substr(0, end);
        if (!detail::is_keyword(keyword)) continue;
        std::string key(keyword);
        for (char& c : key) c = detail::to_upper(c);
        out.emplace(std::move(key), detail::collapse_spaces(line.substr(end)));
    }
    return out;
}

}  // namespace postern::relay
