// SMTP command lines and the paths of MAIL FROM / RCPT TO (RFC 5321 4.1.1,
// 4.1.2, 4.5.3.1): the first code that reads what a client types.
//
// Everything here is a bounded, single forward scan over the argument; no
// byte is looked at twice except in the short label / literal checks.
// The refusal texts are listed in command.hpp next to PathError.

#include "smtp/command.hpp"
#include "util/ascii.hpp"

#include <arpa/inet.h>

#include <array>
#include <utility>

namespace postern::smtp {
namespace {

constexpr std::size_t kMaxLocal = 64;    // RFC 5321 4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;  // 4.5.3.1.2
constexpr std::size_t kMaxPath = 256;    // 4.5.3.1.3, brackets included
using util::iequals;
using util::is_alnum;
using util::is_alpha;
using util::is_digit;
using util::istarts_with;
using util::lowercase;
using util::to_lower;
using util::to_upper;

bool is_printable(char c) { return c >= 0x20 && c <= 0x7e; }
bool is_hex(char c) { return is_digit(c) || (to_lower(c) >= 'a' && to_lower(c) <= 'f'); }

// atext of RFC 5322 3.2.3: the characters of an unquoted local part.
bool is_atext(char c) {
    if (is_alnum(c)) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~': return true;
    default: return false;
    }
}

std::string_view trim_right(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string_view skip_spaces(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    return s;
}

// A dotted host name without a trailing dot; a single label is fine.
bool valid_hostname(std::string_view name) {
    if (name.empty() || name.size() > kMaxDomain) return false;
    for (;;) {
        std::size_t dot = name.find('.');
        if (!util::is_host_label(name.substr(0, dot))) return false;
        if (dot == std::string_view::npos) return true;
        name.remove_prefix(dot + 1);
    }
}

// The inside of an address literal: "192.0.2.1" or "IPv6:2001:db8::1".
// General literals (tag:content) are refused: nobody can route them.
// Returns the canonical form with brackets, or "" when invalid.
std::string address_literal(std::string_view inner) {
    std::array<unsigned char, 16> buf{};
    std::string text;
    bool v6 = istarts_with(inner, "IPv6:");
    if (v6) inner.remove_prefix(5);
    // Only the characters of an address reach inet_pton: a NUL would cut
    // its C string short and let the bytes after it through.
    for (char c : inner)
        if (!(v6 ? is_hex(c) || c == ':' || c == '.' : is_digit(c) || c == '.')) return "";
    if (v6) {
        text.assign(inner);
        if (text.size() > 45 || inet_pton(AF_INET6, text.c_str(), buf.data()) != 1) return "";
        return "[IPv6:" + lowercase(text) + "]";
    }
    text.assign(inner);
    if (text.size() > 15 || inet_pton(AF_INET, text.c_str(), buf.data()) != 1) return "";
    return "[" + text + "]";
}

constexpr std::array<std::pair<std::string_view, Verb>, 14> kVerbs{{
    {"HELO", Verb::Helo},
    {"EHLO", Verb::Ehlo},
    {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data},
    {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit},
    {"VRFY", Verb::Vrfy},
    {"EXPN", Verb::Expn},
    {"HELP", Verb::Help},
    {"STARTTLS", Verb::Starttls},
    {"AUTH", Verb::Auth},
    {"BDAT", Verb::Bdat},
}};

// Reads one path and its parameters, left to right. On failure it fills the
// PathError with the class prefix of MAIL or RCPT and a short reason.
class PathParser {
public:
    PathParser(std::string_view args, bool sender, PathError* err) : s_(args), sender_(sender), err_(err) {}

    std::optional<PathArg> run() {
        PathArg out;
        if (!keyword() || !path(out.mailbox) || !params(out.params)) return std::nullopt;
        return out;
    }

private:
    std::string_view s_;
    std::size_t pos_ = 0;
    bool sender_;
    PathError* err_;

    bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

    bool fail(std::string_view reason) {
        if (err_) {
            err_->text = sender_ ? "5.1.7 Sender address syntax error: " : "5.1.3 Recipient address syntax error: ";
            err_->text += reason;
        }
        return false;
    }

    bool fail_param() {
        if (err_) err_->text = "5.5.4 Invalid command arguments: malformed parameter";
        return false;
    }

    // The reason for a bad run of characters: an unprintable byte says so.
    bool fail_chars(std::string_view run, std::string_view reason) {
        for (char c : run)
            if (!is_printable(c)) return fail("invalid character in address");
        return fail(reason);
    }

    bool keyword() {
        std::string_view kw = sender_ ? "FROM:" : "TO:";
        std::string_view rest = skip_spaces(s_);
        if (!istarts_with(rest, kw)) return fail(sender_ ? "FROM:<address> expected" : "TO:<address> expected");
        rest = skip_spaces(rest.substr(kw.size()));
        pos_ = s_.size() - rest.size();
        if (!at('<')) return fail("angle brackets required");
        return true;
    }

    bool path(Mailbox& mb) {
        std::size_t start = pos_++;  // the '<'
        if (at('>')) {
            ++pos_;
            return sender_ ? true : fail("null path not allowed");
        }
        if (at('@') && !source_route()) return false;
        if (!local_part(mb.local)) return false;
        if (at('@')) {
            ++pos_;
            if (!domain(mb.domain)) return false;
        }
        if (!at('>')) {
            if (pos_ >= s_.size()) return fail("missing closing angle bracket");
            return fail_chars(s_.substr(pos_, 1), "invalid local part");
        }
        ++pos_;
        if (pos_ - start > kMaxPath) return fail("path too long");
        return true;
    }

    // A-d-l ":" (RFC 5321 4.1.2): "@a,@b:" is checked, then dropped.
    bool source_route() {
        std::size_t colon = s_.find(':', pos_);
        std::size_t close = s_.find('>', pos_);
        if (colon == std::string_view::npos || (close != std::string_view::npos && close < colon))
            return fail("missing local part");
        while (at('@')) {
            ++pos_;
            std::size_t end = s_.find_first_of(",:", pos_);
            std::string_view host = s_.substr(pos_, end - pos_);
            if (!valid_hostname(host)) return fail_chars(host, "invalid source route");
            pos_ = end + 1;
            if (s_[end] == ':') return true;
        }
        return fail_chars(s_.substr(pos_, 1), "invalid source route");
    }

    bool local_part(std::string& local) {
        std::size_t start = pos_;
        if (at('"')) {
            if (!quoted_string()) return false;
        } else if (!dot_string()) {
            return false;
        }
        if (pos_ - start > kMaxLocal) return fail("local part too long");
        local.assign(s_.substr(start, pos_ - start));
        return true;
    }

    // Atom *("." Atom): atext runs joined by single dots.
    bool dot_string() {
        std::size_t end = s_.find_first_of("@>", pos_);
        if (end == std::string_view::npos) end = s_.size();
        std::string_view run = s_.substr(pos_, end - pos_);
        if (run.empty()) return fail("missing local part");
        bool after_dot = true;  // a leading dot is an empty atom
        for (char c : run) {
            if (c == '.') {
                if (after_dot) return fail("invalid local part");
                after_dot = true;
            } else if (is_atext(c)) {
                after_dot = false;
            } else {
                return fail_chars(run, "invalid local part");
            }
        }
        if (after_dot) return fail("invalid local part");
        pos_ = end;
        return true;
    }

    // DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE, kept with its quotes.
    bool quoted_string() {
        ++pos_;
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c == '"') return true;
            if (!is_printable(c)) return fail("invalid character in address");
            if (c == '\\') {
                if (pos_ >= s_.size()) break;
                if (!is_printable(s_[pos_++])) return fail("invalid character in address");
            }
        }
        return fail("unterminated quoted string");
    }

    bool domain(std::string& out) {
        std::size_t end = s_.find('>', pos_);
        if (end == std::string_view::npos) return fail("missing closing angle bracket");
        std::string_view run = s_.substr(pos_, end - pos_);
        if (run.empty()) return fail("missing domain");
        if (run.size() > kMaxDomain) return fail("domain too long");
        if (run.front() == '[') {
            if (run.back() != ']') return fail_chars(run, "invalid address literal");
            out = address_literal(run.substr(1, run.size() - 2));
            if (out.empty()) return fail_chars(run, "invalid address literal");
        } else {
            if (!valid_hostname(run)) return fail_chars(run, "invalid domain");
            out = lowercase(run);
        }
        pos_ = end;
        return true;
    }

    // SP esmtp-param *(SP esmtp-param), keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
    bool params(std::vector<Param>& out) {
        std::string_view rest = trim_right(s_.substr(pos_));
        if (rest.empty()) return true;
        if (rest.front() != ' ') return fail("unexpected text after address");
        for (rest = skip_spaces(rest); !rest.empty(); rest = skip_spaces(rest)) {
            std::size_t sp = rest.find(' ');
            if (!param(rest.substr(0, sp), out)) return false;
            rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
        }
        return true;
    }

    bool param(std::string_view token, std::vector<Param>& out) {
        std::size_t eq = token.find('=');
        std::string_view key = token.substr(0, eq);
        if (key.empty() || !is_alnum(key.front())) return fail_param();
        for (char c : key)
            if (!is_alnum(c) && c != '-') return fail_param();
        for (char c : token)
            if (c <= 0x20 || c > 0x7e) return fail_param();
        Param p;
        p.key.reserve(key.size());
        for (char c : key) p.key.push_back(to_upper(c));
        if (eq != std::string_view::npos) {
            p.has_value = true;
            p.value.assign(token.substr(eq + 1));
        }
        out.push_back(std::move(p));
        return true;
    }
};

}  // namespace

std::string Mailbox::str() const {
    if (domain.empty()) return local;
    return local + "@" + domain;
}

Command parse_command(std::string_view line) {
    line = trim_right(line);
    Command cmd;
    std::size_t sp = line.find(' ');
    cmd.name = line.substr(0, sp);
    if (sp != std::string_view::npos) cmd.args = skip_spaces(line.substr(sp));
    for (const auto& [name, verb] : kVerbs) {
        if (iequals(cmd.name, name)) {
            cmd.verb = verb;
            break;
        }
    }
    return cmd;
}

std::optional<PathArg> parse_mail_from(std::string_view args, PathError* err) {
    return PathParser(args, true, err).run();
}

std::optional<PathArg> parse_rcpt_to(std::string_view args, PathError* err) {
    return PathParser(args, false, err).run();
}

bool valid_helo_name(std::string_view name) {
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
        return !address_literal(name.substr(1, name.size() - 2)).empty();
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);  // an absolute name
    return valid_hostname(name);
}

}  // namespace postern::smtp
