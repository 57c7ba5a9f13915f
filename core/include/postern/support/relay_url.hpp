// postern/support/relay_url.hpp — relay host URLs, shared by the daemon
// (which checks them in the config) and the relay plugin (which connects to
// them). Header-only; C++17.
//
// Relay host URLs, as written after `host` in an action's `relay` options or
// found in a relayhost table (config-grammar.md §5):
//
//   [smtp|smtp+tls|smtp+notls|smtps|lmtp]://[label@]host[:port]
//
// No scheme means smtp://. The port defaults to 25 (465 for smtps); lmtp://
// has no default and needs one. A label (the key of the client credentials in
// the `auth` table) is allowed only with smtp+tls:// and smtps://, the schemes
// that never send credentials in the clear. The host is a DNS name (letters,
// digits, inner hyphens, labels of 1..63 bytes, 253 at most), a dotted IPv4
// address, or an IPv6 address in brackets ("[2001:db8::1]:2525").
//
// parse_relay_url refuses with one of these error texts (X = the offending text):
//   "empty relay URL"
//   "unknown relay URL scheme \"X\""
//   "empty label in relay URL"
//   "invalid character in label \"X\""                     (label: ALPHA DIGIT . _ - +)
//   "a label is only allowed with smtp+tls:// or smtps://"
//   "missing host in relay URL"
//   "missing \"]\" after IPv6 address"
//   "invalid IPv6 address \"X\""
//   "unexpected text after \"]\": \"X\""
//   "IPv6 address \"X\" must be written in brackets"
//   "invalid host name \"X\""
//   "invalid IPv4 address \"X\""                           (all labels numeric)
//   "invalid port \"X\""                                    (1..65535, digits only)
//   "lmtp:// requires a port"
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "postern/support/ascii.hpp"

namespace postern::relay {

struct RelayUrl {
    enum class Scheme { Smtp, SmtpTls, SmtpNoTls, Smtps, Lmtp };
    Scheme scheme = Scheme::Smtp;
    std::string label;  // "" when none
    std::string host;   // as written, without brackets
    int port = 25;
    bool ipv6_literal = false;  // host was "[...]"

    bool operator==(const RelayUrl&) const = default;
};

inline std::optional<RelayUrl> parse_relay_url(std::string_view text, std::string* error);

// The canonical text: always with its scheme, the port only when it is not
// the scheme's default. parse_relay_url(to_string(u)) == u.
inline std::string to_string(const RelayUrl& url);

// "smtp", "smtp+tls", "smtp+notls", "smtps", "lmtp".
inline std::string_view scheme_name(RelayUrl::Scheme scheme);

namespace detail {

inline constexpr std::size_t kMaxHost = 253;  // RFC 1035 2.3.4, without the root dot

struct SchemeName {
    std::string_view name;
    RelayUrl::Scheme scheme;
};

inline constexpr std::array<SchemeName, 5> kSchemes{{
    {"smtp", RelayUrl::Scheme::Smtp},
    {"smtp+tls", RelayUrl::Scheme::SmtpTls},
    {"smtp+notls", RelayUrl::Scheme::SmtpNoTls},
    {"smtps", RelayUrl::Scheme::Smtps},
    {"lmtp", RelayUrl::Scheme::Lmtp},
}};

using util::iequals;
using util::is_alnum;
using util::is_digit;

inline std::optional<RelayUrl> fail(std::string* error, std::string text) {
    if (error) *error = std::move(text);
    return std::nullopt;
}

inline std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// inet_pton reads a C string: a NUL inside `s` would hide what follows it
// ("[::1\0junk]" must not pass as ::1), so those are refused first.
inline bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

inline bool valid_ipv6(std::string_view s) {
    in6_addr addr;
    return s.size() < INET6_ADDRSTRLEN && !has_nul(s) && inet_pton(AF_INET6, std::string(s).c_str(), &addr) == 1;
}

inline bool valid_ipv4(std::string_view s) {
    in_addr addr;
    return s.size() < INET_ADDRSTRLEN && !has_nul(s) && inet_pton(AF_INET, std::string(s).c_str(), &addr) == 1;
}

inline bool all_digits(std::string_view s) {
    for (char c : s)
        if (!is_digit(c)) return false;
    return true;
}

// "" when `host` is a usable name or IPv4 address, else the error text.
inline std::string check_host(std::string_view host) {
    if (host.size() > kMaxHost) return "invalid host name " + quoted(host);
    bool numeric = true;
    std::string_view rest = host;
    while (true) {
        std::size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        if (!util::is_host_label(label)) return "invalid host name " + quoted(host);
        numeric = numeric && all_digits(label);
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
    }
    // "300.1.1.1" or "10.1" are names in DNS syntax but never what was meant.
    if (numeric && !valid_ipv4(host)) return "invalid IPv4 address " + quoted(host);
    return {};
}

inline bool valid_label_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '+'; }

// 1..65535 in decimal, at most 5 digits (so "00025" is 25, "000025" is not).
inline std::optional<int> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5 || !all_digits(s)) return std::nullopt;
    int port = 0;
    for (char c : s) port = port * 10 + (c - '0');
    if (port < 1 || port > 65535) return std::nullopt;
    return port;
}

// Splits "host", "host:port", "[v6]" or "[v6]:port" into the url.
inline std::optional<RelayUrl> parse_host_port(std::string_view text, RelayUrl url, std::string* error) {
    if (text.empty()) return fail(error, "missing host in relay URL");
    std::string_view host = text, port;
    bool has_port = false;
    if (text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos) return fail(error, "missing \"]\" after IPv6 address");
        host = text.substr(1, close - 1);
        if (!valid_ipv6(host)) return fail(error, "invalid IPv6 address " + quoted(host));
        std::string_view after = text.substr(close + 1);
        if (!after.empty() && after.front() != ':') return fail(error, "unexpected text after \"]\": " + quoted(after));
        has_port = !after.empty();
        if (has_port) port = after.substr(1);
        url.ipv6_literal = true;
    } else {
        std::size_t colon = text.find(':');
        if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
            if (valid_ipv6(text)) return fail(error, "IPv6 address " + quoted(text) + " must be written in brackets");
            return fail(error, "invalid host name " + quoted(text));
        }
        host = text.substr(0, colon);
        has_port = colon != std::string_view::npos;
        if (has_port) port = text.substr(colon + 1);
        if (host.empty()) return fail(error, "missing host in relay URL");
        if (std::string why = check_host(host); !why.empty()) return fail(error, std::move(why));
    }
    url.host = std::string(host);
    if (has_port) {
        auto p = parse_port(port);
        if (!p) return fail(error, "invalid port " + quoted(port));
        url.port = *p;
    } else if (url.scheme == RelayUrl::Scheme::Lmtp) {
        return fail(error, "lmtp:// requires a port");
    } else {
        url.port = url.scheme == RelayUrl::Scheme::Smtps ? 465 : 25;
    }
    return url;
}

}  // namespace detail

inline std::string_view scheme_name(RelayUrl::Scheme scheme) {
    for (const auto& s : detail::kSchemes)
        if (s.scheme == scheme) return s.name;
    return "smtp";
}

inline std::optional<RelayUrl> parse_relay_url(std::string_view text, std::string* error) {
    if (text.empty()) return detail::fail(error, "empty relay URL");
    RelayUrl url;
    if (std::size_t sep = text.find("://"); sep != std::string_view::npos) {
        std::string_view name = text.substr(0, sep);
        bool known = false;
        for (const auto& s : detail::kSchemes) {
            if (util::iequals(name, s.name)) {
                url.scheme = s.scheme;
                known = true;
            }
        }
        if (!known) return detail::fail(error, "unknown relay URL scheme " + detail::quoted(name));
        text.remove_prefix(sep + 3);
    }
    if (std::size_t at = text.find('@'); at != std::string_view::npos) {
        std::string_view label = text.substr(0, at);
        if (label.empty()) return detail::fail(error, "empty label in relay URL");
        for (char c : label)
            if (!detail::valid_label_char(c))
                return detail::fail(error, "invalid character in label " + detail::quoted(label));
        if (url.scheme != RelayUrl::Scheme::SmtpTls && url.scheme != RelayUrl::Scheme::Smtps)
            return detail::fail(error, "a label is only allowed with smtp+tls:// or smtps://");
        url.label = std::string(label);
        text.remove_prefix(at + 1);
    }
    return detail::parse_host_port(text, std::move(url), error);
}

inline std::string to_string(const RelayUrl& url) {
    std::string out(scheme_name(url.scheme));
    out += "://";
    if (!url.label.empty()) out += url.label + "@";
    out += url.ipv6_literal ? "[" + url.host + "]" : url.host;
    int default_port = url.scheme == RelayUrl::Scheme::Smtps ? 465 : 25;
    if (url.scheme == RelayUrl::Scheme::Lmtp || url.port != default_port) out += ":" + std::to_string(url.port);
    return out;
}

}  // namespace postern::relay
