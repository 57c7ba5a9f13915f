// filters/rspamd/json.hpp — a small, strict JSON parser (RFC 8259) for
// rspamd's replies.
//
// Why our own: JSON is the one format filter-rspamd reads that none of our
// chosen dependencies parses, and a reply is untrusted input (a proxy, a
// misconfigured rspamd, a compromised worker): the parser is bounded in depth,
// size and value count, refuses everything RFC 8259 does not allow (trailing
// commas, comments, single quotes, leading zeros, control characters in
// strings, invalid UTF-8, lone surrogates, a BOM, trailing data) and says
// where and why. Duplicate member names are refused too: two "action"
// members would leave it to chance which one a reader honours.
//
// The tree is plain values: null, bool, number (a double), string (UTF-8,
// \u escapes and surrogate pairs decoded; \u0000 gives a NUL byte), array,
// and object as its members in document order.
//
// Depends on: nothing but the standard library.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace postern::rspamd::json {

class Value;
using Array = std::vector<Value>;
// Members in the order the document gives them; names are unique.
using Object = std::vector<std::pair<std::string, Value>>;

enum class Type { Null, Bool, Number, String, Array, Object };
std::string_view type_name(Type t);

class Value {
public:
    Value() = default;  // null
    explicit Value(bool b) : v_(b) {}
    explicit Value(double d) : v_(d) {}
    explicit Value(std::string s) : v_(std::move(s)) {}
    explicit Value(Array a) : v_(std::move(a)) {}
    explicit Value(Object o) : v_(std::move(o)) {}

    Type type() const { return static_cast<Type>(v_.index()); }
    bool is_null() const { return type() == Type::Null; }

    // The value as that type, or nullptr when it is another.
    const bool* as_bool() const { return std::get_if<bool>(&v_); }
    const double* as_number() const { return std::get_if<double>(&v_); }
    const std::string* as_string() const { return std::get_if<std::string>(&v_); }
    const Array* as_array() const { return std::get_if<Array>(&v_); }
    const Object* as_object() const { return std::get_if<Object>(&v_); }

    // The member of that name of an object; nullptr when there is none or
    // this is not an object.
    const Value* find(std::string_view name) const;

    friend bool operator==(const Value&, const Value&) = default;

private:
    // The order is Type's.
    std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v_{nullptr};
};

struct Limits {
    // Bytes of input. rspamd's largest replies (every symbol with options,
    // extended URLs) are tens of kilobytes.
    std::size_t max_size = 4 * 1024 * 1024;
    // Arrays and objects inside each other; a reply nests four deep.
    std::size_t max_depth = 64;
    // Values of any kind in the document: bounds the tree's memory, which
    // is many times the input's for "[0,0,0,...".
    std::size_t max_values = 1000 * 1000;
};

struct ParseError {
    std::size_t offset = 0;  // bytes from the start of the input
    std::string message;
    friend bool operator==(const ParseError&, const ParseError&) = default;
};

using ParseResult = std::variant<Value, ParseError>;

// One JSON text: a value with optional whitespace around it, nothing else.
ParseResult parse(std::string_view text, const Limits& limits = {});

// "offset N: message", for logs.
std::string describe(const ParseError& e);

}  // namespace postern::rspamd::json
