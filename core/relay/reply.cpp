// The reply parser of the outbound SMTP client (see reply.hpp for the rules
// and the error texts). A byte-at-a-time state machine: the result cannot
// depend on how the network cuts the stream, memory is bounded by
// kMaxReplyLine * kMaxReplyLines, and no byte past the end of a reply is read.

#include "relay/reply.hpp"
#include "util/ascii.hpp"

namespace postern::relay {
namespace {

using util::is_digit;
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; }

// The allowed digit at offset `pos` (0..2) of a reply code: 2..5, 0..5, 0..9.
bool code_digit_ok(std::size_t pos, char c) {
    switch (pos) {
    case 0: return c >= '2' && c <= '5';
    case 1: return c >= '0' && c <= '5';
    default: return is_digit(c);
    }
}

// 1 to 3 digits at the start of `s`; returns how many, 0 when none or too many.
std::size_t digits(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && is_digit(s[n])) ++n;
    return n <= 3 ? n : 0;
}

// RFC 3463: class "." subject "." detail, the class being the reply's first
// digit (a 250 reply cannot carry 5.x.x), then a space or the end of the text.
// There is no class 3: a 354 or 334 text that looks like one is just text.
std::string enhanced_code(std::string_view text, int code) {
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

bool is_keyword(std::string_view k) {
    if (k.empty()) return false;
    for (std::size_t i = 0; i < k.size(); ++i) {
        char c = k[i];
        bool alnum = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (i == 0 || c != '-')) return false;
    }
    return true;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

// "  PLAIN \t LOGIN " -> "PLAIN LOGIN".
std::string collapse_spaces(std::string_view s) {
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

}  // namespace

std::string Reply::text() const {
    std::string out;
    for (const auto& line : lines) {
        if (&line != &lines.front()) out.push_back(' ');
        out += line;
    }
    return out;
}

ReplyParser::Status ReplyParser::feed(std::string_view in, std::size_t* used) {
    std::size_t n = 0;
    if (status_ == Status::NeedMore) {
        while (n < in.size()) {
            if (!take(in[n++])) break;
        }
    }
    if (used) *used = n;
    return status_;
}

void ReplyParser::reset() {
    reply_ = Reply{};
    line_.clear();
    error_.clear();
    status_ = Status::NeedMore;
    cr_ = false;
}

bool ReplyParser::take(char c) {
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
bool ReplyParser::add_to_line(char c) {
    std::size_t pos = line_.size();
    if (pos == 0 && reply_.lines.size() == kMaxReplyLines) {
        fail("more than 100 lines in one reply");
    } else if (pos == kMaxReplyLine) {
        fail("reply line over 4096 bytes");
    } else if (pos < 3 && !code_digit_ok(pos, c)) {
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

void ReplyParser::end_line() {
    if (line_.size() < 3) {
        fail("malformed reply code");
        return;
    }
    bool last = line_.size() == 3 || line_[3] == ' ';
    reply_.lines.push_back(line_.size() > 4 ? line_.substr(4) : std::string());
    line_.clear();
    if (last) {
        reply_.enhanced = enhanced_code(reply_.lines.front(), reply_.code);
        status_ = Status::Done;
    }
}

void ReplyParser::fail(const char* why) {
    error_ = why;
    status_ = Status::Error;
}

std::map<std::string, std::string> ehlo_extensions(const Reply& r) {
    std::map<std::string, std::string> out;
    if (r.code != 250) return out;
    for (std::size_t i = 1; i < r.lines.size(); ++i) {
        std::string_view line = r.lines[i];
        while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
        std::size_t end = 0;
        while (end < line.size() && !is_space(line[end])) ++end;
        std::string_view keyword = line.substr(0, end);
        if (!is_keyword(keyword)) continue;
        std::string key(keyword);
        for (char& c : key) c = to_upper(c);
        out.emplace(std::move(key), collapse_spaces(line.substr(end)));
    }
    return out;
}

}  // namespace postern::relay
