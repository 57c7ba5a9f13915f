// filters/rspamd/json.cpp — the strict JSON parser (see json.hpp).
//
// A recursive-descent parser over a string_view with a cursor. Recursion is
// bounded by Limits::max_depth, so the stack is too. Errors are values, not
// exceptions: the first one stops the parse and carries its offset.

#include "json.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <system_error>

namespace postern::rspamd::json {

std::string_view type_name(Type t) {
    switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
    }
    return "a value";
}

const Value* Value::find(std::string_view name) const {
    const Object* o = as_object();
    if (!o) return nullptr;
    for (const auto& [key, value] : *o)
        if (key == name) return &value;
    return nullptr;
}

std::string describe(const ParseError& e) { return "offset " + std::to_string(e.offset) + ": " + e.message; }

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// The length of the well-formed UTF-8 sequence at the start of s (RFC 3629
// section 4: no overlong forms, no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) {
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    auto tail = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return tail(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!tail(1) || !tail(2)) return 0;
        if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
        if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!tail(1) || !tail(2) || !tail(3)) return 0;
        if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
        if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

class Parser {
public:
    Parser(std::string_view text, const Limits& limits) : in_(text), limits_(limits) {}

    ParseResult run() {
        if (in_.size() > limits_.max_size)
            return ParseError{limits_.max_size, "input larger than " + std::to_string(limits_.max_size) + " bytes"};
        skip_ws();
        std::optional<Value> v = value(0);
        if (!v) return std::move(*error_);
        skip_ws();
        if (pos_ != in_.size()) return ParseError{pos_, "data after the value"};
        return std::move(*v);
    }

private:
    std::string_view in_;
    const Limits& limits_;
    std::size_t pos_ = 0;
    std::size_t values_ = 0;
    std::optional<ParseError> error_;

    bool at_end() const { return pos_ >= in_.size(); }
    char peek() const { return in_[pos_]; }

    std::nullopt_t fail(std::size_t at, std::string message) {
        if (!error_) error_ = ParseError{at, std::move(message)};
        return std::nullopt;
    }
    std::nullopt_t fail_here(std::string_view expected) {
        if (at_end()) return fail(pos_, "unexpected end of input, expected " + std::string(expected));
        return fail(pos_, "expected " + std::string(expected));
    }

    void skip_ws() {
        while (!at_end() && is_ws(peek())) ++pos_;
    }

    bool literal(std::string_view word) {
        if (in_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    std::optional<Value> value(std::size_t depth) {
        if (++values_ > limits_.max_values)
            return fail(pos_, "more than " + std::to_string(limits_.max_values) + " values");
        if (at_end()) return fail_here("a value");
        switch (peek()) {
        case '{': return object(depth + 1);
        case '[': return array(depth + 1);
        case '"': {
            auto s = string();
            if (!s) return std::nullopt;
            return Value(std::move(*s));
        }
        case 't':
            if (literal("true")) return Value(true);
            break;
        case 'f':
            if (literal("false")) return Value(false);
            break;
        case 'n':
            if (literal("null")) return Value();
            break;
        default:
            if (peek() == '-' || is_digit(peek())) return number();
        }
        return fail_here("a value");
    }

    bool enter(std::size_t depth) {
        if (depth <= limits_.max_depth) return true;
        fail(pos_, "nested deeper than " + std::to_string(limits_.max_depth));
        return false;
    }

    std::optional<Value> array(std::size_t depth) {
        if (!enter(depth)) return std::nullopt;
        ++pos_;  // '['
        Array items;
        skip_ws();
        if (!at_end() && peek() == ']') {
            ++pos_;
            return Value(std::move(items));
        }
        for (;;) {
            skip_ws();
            auto v = value(depth);
            if (!v) return std::nullopt;
            items.push_back(std::move(*v));
            skip_ws();
            if (at_end()) return fail_here("',' or ']'");
            if (peek() == ']') break;
            if (peek() != ',') return fail_here("',' or ']'");
            ++pos_;
        }
        ++pos_;  // ']'
        return Value(std::move(items));
    }

    std::optional<Value> object(std::size_t depth) {
        if (!enter(depth)) return std::nullopt;
        std::size_t start = pos_;
        ++pos_;  // '{'
        Object members;
        skip_ws();
        if (!at_end() && peek() == '}') {
            ++pos_;
            return Value(std::move(members));
        }
        for (;;) {
            skip_ws();
            if (at_end() || peek() != '"') return fail_here("a member name");
            auto name = string();
            if (!name) return std::nullopt;
            skip_ws();
            if (at_end() || peek() != ':') return fail_here("':' after the member name");
            ++pos_;
            skip_ws();
            auto v = value(depth);
            if (!v) return std::nullopt;
            members.emplace_back(std::move(*name), std::move(*v));
            skip_ws();
            if (at_end()) return fail_here("',' or '}'");
            if (peek() == '}') break;
            if (peek() != ',') return fail_here("',' or '}'");
            ++pos_;
        }
        ++pos_;  // '}'
        if (auto dup = duplicate_name(members)) return fail(start, "duplicate member name \"" + *dup + "\"");
        return Value(std::move(members));
    }

    static std::optional<std::string> duplicate_name(const Object& members) {
        if (members.size() < 2) return std::nullopt;
        std::vector<std::string_view> names;
        names.reserve(members.size());
        for (const auto& m : members) names.push_back(m.first);
        std::sort(names.begin(), names.end());
        auto it = std::adjacent_find(names.begin(), names.end());
        if (it == names.end()) return std::nullopt;
        return std::string(*it);
    }

    // Four hex digits after "\u".
    std::optional<std::uint32_t> hex4() {
        if (in_.size() - pos_ < 4) return fail(pos_, "unexpected end of input in a \\u escape");
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = in_[pos_ + i];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
            else return fail(pos_ + i, "expected a hex digit in a \\u escape");
        }
        pos_ += 4;
        return v;
    }

    // After "\u": one code point, or a surrogate pair "\uD8xx\uDCxx".
    bool unicode_escape(std::string& out, std::size_t escape_at) {
        auto hi = hex4();
        if (!hi) return false;
        std::uint32_t cp = *hi;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail(escape_at, "a low surrogate without a high one");
            return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (in_.substr(pos_, 2) != "\\u") {
                fail(escape_at, "a high surrogate without a low one");
                return false;
            }
            pos_ += 2;
            auto lo = hex4();
            if (!lo) return false;
            if (*lo < 0xDC00 || *lo > 0xDFFF) {
                fail(escape_at, "a high surrogate without a low one");
                return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (*lo - 0xDC00);
        }
        append_utf8(out, cp);
        return true;
    }

    bool escape(std::string& out) {
        std::size_t at = pos_;
        ++pos_;  // '\\'
        if (at_end()) {
            fail(pos_, "unexpected end of input in an escape");
            return false;
        }
        char c = peek();
        ++pos_;
        switch (c) {
        case '"': out += '"'; return true;
        case '\\': out += '\\'; return true;
        case '/': out += '/'; return true;
        case 'b': out += '\b'; return true;
        case 'f': out += '\f'; return true;
        case 'n': out += '\n'; return true;
        case 'r': out += '\r'; return true;
        case 't': out += '\t'; return true;
        case 'u': return unicode_escape(out, at);
        }
        fail(at, "invalid escape");
        return false;
    }

    std::optional<std::string> string() {
        std::size_t start = pos_;
        ++pos_;  // '"'
        std::string out;
        for (;;) {
            if (at_end()) return fail(start, "unterminated string");
            auto c = static_cast<unsigned char>(peek());
            if (c == '"') break;
            if (c == '\\') {
                if (!escape(out)) return std::nullopt;
            } else if (c < 0x20) {
                return fail(pos_, "control character in a string");
            } else {
                std::size_t n = utf8_sequence(in_.substr(pos_));
                if (n == 0) return fail(pos_, "invalid UTF-8");
                out.append(in_.substr(pos_, n));
                pos_ += n;
            }
        }
        ++pos_;  // '"'
        return out;
    }

    // number = [ "-" ] int [ frac ] [ exp ], int without leading zeros.
    std::optional<Value> number() {
        std::size_t start = pos_;
        if (peek() == '-') ++pos_;
        if (at_end() || !is_digit(peek())) return fail_here("a digit");
        if (peek() == '0') {
            ++pos_;
            if (!at_end() && is_digit(peek())) return fail(pos_, "a leading zero");
        } else {
            while (!at_end() && is_digit(peek())) ++pos_;
        }
        if (!at_end() && peek() == '.') {
            ++pos_;
            if (at_end() || !is_digit(peek())) return fail_here("a digit after '.'");
            while (!at_end() && is_digit(peek())) ++pos_;
        }
        if (!at_end() && (peek() == 'e' || peek() == 'E')) {
            ++pos_;
            if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
            if (at_end() || !is_digit(peek())) return fail_here("a digit in the exponent");
            while (!at_end() && is_digit(peek())) ++pos_;
        }
        double d = 0;
        const char* first = in_.data() + start;
        const char* last = in_.data() + pos_;
        auto [ptr, ec] = std::from_chars(first, last, d);
        // RFC 8259 section 6 lets a parser limit the range: a number a double
        // cannot hold (its overflow or underflow) is refused, not rounded.
        if (ec == std::errc::result_out_of_range) return fail(start, "number out of range");
        if (ec != std::errc() || ptr != last) return fail(start, "invalid number");
        return Value(d);
    }
};

}  // namespace

ParseResult parse(std::string_view text, const Limits& limits) { return Parser(text, limits).run(); }

}  // namespace postern::rspamd::json
