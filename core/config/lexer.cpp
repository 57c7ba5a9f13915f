// The smtpd.conf lexer (see lexer.hpp): bytes to logical lines of tokens.
//
// The rules follow OpenSMTPD's parse.y so that its files lex the same way:
// `\`+newline joins lines (and so continues a comment too), quotes escape only
// their own quote char, space and tab, and a bare word that is all digits is
// a NUMBER. Control bytes are refused rather than guessed at.
#include "config/lexer.hpp"

#include <cstdio>

namespace postern::config {

namespace {

constexpr int kEof = -1;

bool is_blank(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

bool is_punct(int c) {
    switch (c) {
    case '{':
    case '}':
    case '<':
    case '>':
    case '!':
    case '=':
    case ',':
    case '(':
    case ')': return true;
    default: return false;
    }
}

bool is_control(int c) { return (c >= 0 && c < 0x20 && c != '\t' && c != '\n') || c == 0x7f; }

// Bytes that end a bare word (besides a `\`+newline splice).
bool ends_word(int c) { return c == kEof || c == '\n' || c == '#' || is_blank(c) || is_punct(c) || is_control(c); }

bool is_macro_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool looks_numeric(std::string_view s) {
    if (!s.empty() && s.front() == '-') s.remove_prefix(1);
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

std::string byte_name(int c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(c) & 0xffu);
    return buf;
}

Diagnostic make_error(const Location& at, std::string message) { return Diagnostic{at, std::move(message)}; }

}  // namespace

Lexer::Lexer(std::string text, std::string file) : text_(std::move(text)), file_(std::move(file)) {}

int Lexer::peek(std::size_t ahead) const {
    std::size_t at = pos_ + ahead;
    return at < text_.size() ? static_cast<unsigned char>(text_[at]) : kEof;
}

void Lexer::advance() {
    if (pos_ >= text_.size()) return;
    if (text_[pos_] == '\n') {
        ++line_;
        column_ = 1;
    } else {
        ++column_;
    }
    ++pos_;
}

bool Lexer::at_splice() const { return peek() == '\\' && (peek(1) == '\n' || (peek(1) == '\r' && peek(2) == '\n')); }

void Lexer::skip_splice() {
    advance();  // the backslash
    if (peek() == '\r') advance();
    advance();  // the newline
}

// A comment runs to the end of the physical line, or further when that line
// ends in `\`: OpenSMTPD joins the lines before it sees the comment.
void Lexer::skip_comment() {
    while (peek() != kEof && peek() != '\n') {
        if (at_splice()) skip_splice();
        else advance();
    }
}

void Lexer::skip_rest_of_line() {
    while (peek() != kEof && peek() != '\n') {
        if (at_splice()) skip_splice();
        else advance();
    }
}

bool Lexer::read_quoted(Token& tok, std::vector<Diagnostic>& errors) {
    const int quote = peek();
    const std::size_t start = pos_;
    tok.kind = Token::Kind::String;
    advance();
    for (;;) {
        int c = peek();
        if (c == kEof || c == '\n') {
            errors.push_back(make_error(tok.where, std::string("unterminated quoted string: missing closing ") +
                                                       static_cast<char>(quote)));
            return false;
        }
        if (c == quote) {
            advance();
            break;
        }
        if (at_splice()) {
            skip_splice();
            continue;
        }
        if (c == '\\' && (peek(1) == quote || peek(1) == ' ' || peek(1) == '\t')) {
            advance();
            c = peek();
        } else if (is_control(c)) {
            errors.push_back(
                make_error(here(), "unexpected control character (byte " + byte_name(c) + ") in quoted string"));
            return false;
        }
        tok.text.push_back(static_cast<char>(c));
        advance();
        if (tok.text.size() > kMaxTokenLength) {
            errors.push_back(
                make_error(tok.where, "quoted string is longer than " + std::to_string(kMaxTokenLength) + " bytes"));
            return false;
        }
    }
    tok.length = static_cast<int>(pos_ - start);
    return true;
}

bool Lexer::read_word(Token& tok, std::vector<Diagnostic>& errors) {
    const std::size_t start = pos_;
    tok.kind = Token::Kind::Word;
    while (!ends_word(peek()) && !at_splice()) {
        tok.text.push_back(static_cast<char>(peek()));
        advance();
        if (tok.text.size() > kMaxTokenLength) {
            errors.push_back(
                make_error(tok.where, "word is longer than " + std::to_string(kMaxTokenLength) + " bytes"));
            return false;
        }
    }
    if (looks_numeric(tok.text)) tok.kind = Token::Kind::Number;
    tok.length = static_cast<int>(pos_ - start);
    return true;
}

bool Lexer::lex_value(std::string_view name, std::string_view value, const Location& at, Line& out,
                      std::vector<Diagnostic>& errors) {
    Lexer sub{std::string(value), at.file};
    sub.expand_ = false;
    std::vector<Diagnostic> sub_errors;
    Line line;
    for (;;) {
        Status st = sub.next_line({}, line, sub_errors);
        if (st == Status::End) break;
        if (st == Status::Bad) {
            // Point at the `$name` the user wrote, and say the value is at fault.
            errors.push_back(
                make_error(at, "in the value of macro '" + std::string(name) + "': " + sub_errors.front().message));
            return false;
        }
        for (Token& t : line) {
            t.where = at;
            t.length = 0;
            out.push_back(std::move(t));
        }
    }
    return true;
}

bool Lexer::expand_macro(const Macros& macros, Line& out, std::vector<Diagnostic>& errors) {
    const Location at = here();
    const std::size_t start = pos_;
    advance();  // the `$`
    std::string name;
    while (is_macro_char(peek())) {
        name.push_back(static_cast<char>(peek()));
        advance();
    }
    if (name.empty()) {
        errors.push_back(make_error(at, "expected a macro name after '$'"));
        return false;
    }
    auto it = macros.find(name);
    if (it == macros.end()) {
        errors.push_back(make_error(at, "undefined macro '$" + name + "'"));
        return false;
    }
    const std::size_t before = out.size();
    if (!lex_value(name, it->second, at, out, errors)) return false;
    const int used = static_cast<int>(pos_ - start);
    // `$dom.example` glues the value to the text that follows, as OpenSMTPD's
    // push-back of the value into the input does.
    if (!ends_word(peek()) && !at_splice() && peek() != '"' && peek() != '\'') {
        Token rest;
        rest.where = at;
        if (!read_word(rest, errors)) return false;
        if (out.size() > before && out.back().kind != Token::Kind::Punct) {
            Token& last = out.back();
            last.text += rest.text;
            last.kind = looks_numeric(last.text) ? Token::Kind::Number : Token::Kind::Word;
        } else {
            out.push_back(std::move(rest));
        }
    }
    for (std::size_t i = before; i < out.size(); ++i) out[i].length = used;
    if (!out.empty() && out.size() > before) out.back().length = static_cast<int>(pos_ - start);
    return true;
}

Lexer::Status Lexer::next_line(const Macros& macros, Line& out, std::vector<Diagnostic>& errors) {
    out.clear();
    std::vector<Location> open_braces;  // newlines inside `{ }` do not end the line
    auto fail = [&] {
        skip_rest_of_line();
        out.clear();
        return Status::Bad;
    };
    for (;;) {
        const int c = peek();
        if (c == kEof) {
            if (!open_braces.empty()) {
                errors.push_back(make_error(open_braces.back(), "missing '}' to close this '{'"));
                out.clear();
                return Status::Bad;
            }
            return out.empty() ? Status::End : Status::Line;
        }
        if (is_blank(c)) {
            advance();
            continue;
        }
        if (at_splice()) {
            skip_splice();
            continue;
        }
        if (c == '\n') {
            advance();
            if (open_braces.empty() && !out.empty()) return Status::Line;
            continue;
        }
        if (c == '#') {
            skip_comment();
            continue;
        }
        Token tok;
        tok.where = here();
        if (c == '"' || c == '\'') {
            if (!read_quoted(tok, errors)) return fail();
        } else if (is_punct(c)) {
            tok.kind = Token::Kind::Punct;
            tok.text.push_back(static_cast<char>(c));
            advance();
            if (c == '=' && peek() == '>') {
                tok.text.push_back('>');
                advance();
            }
            tok.length = static_cast<int>(tok.text.size());
        } else if (c == '$' && expand_) {
            const std::size_t before = out.size();
            if (!expand_macro(macros, out, errors)) return fail();
            for (std::size_t i = before; i < out.size(); ++i) {
                if (out[i].is_punct("{")) open_braces.push_back(out[i].where);
                if (out[i].is_punct("}") && !open_braces.empty()) open_braces.pop_back();
            }
            continue;
        } else if (is_control(c)) {
            errors.push_back(make_error(tok.where, "unexpected control character (byte " + byte_name(c) + ")"));
            return fail();
        } else if (!read_word(tok, errors)) {
            return fail();
        }
        if (tok.is_punct("{")) open_braces.push_back(tok.where);
        if (tok.is_punct("}") && !open_braces.empty()) open_braces.pop_back();
        out.push_back(std::move(tok));
    }
}

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string describe(const Token& t) {
    std::string text = t.text.size() > 48 ? t.text.substr(0, 45) + "..." : t.text;
    if (t.kind == Token::Kind::String) return "\"" + text + "\"";
    return quote(text);
}

Location Cursor::where() const {
    if (!done()) return line_[i_].where;
    const Token& last = line_.back();
    Location l = last.where;
    l.column += last.length;
    return l;
}

}  // namespace postern::config
