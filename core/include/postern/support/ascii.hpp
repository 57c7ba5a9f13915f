// postern/support/ascii.hpp — ASCII character classes and case folding for
// protocol text (SMTP verbs, domains, table keys, header names). Deliberately
// not <cctype>: protocol text compares the same whatever the locale, and
// bytes above 127 are never letters. Part of the plugin SDK: header-only,
// C++17, pure functions (any thread); the daemon uses the same header
// (core/util/ascii.hpp forwards here).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::util {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
constexpr char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

inline std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = to_lower(c);
    return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

constexpr bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// A DNS label of a host name (RFC 1035 2.3.1, RFC 1123 2.1): 1 to 63
// letters, digits and inner hyphens.
constexpr bool is_host_label(std::string_view label) {
    if (label.empty() || label.size() > 63) return false;
    if (!is_alnum(label.front()) || !is_alnum(label.back())) return false;
    for (char c : label)
        if (!is_alnum(c) && c != '-') return false;
    return true;
}

}  // namespace postern::util
