// Relay host URLs (see url.hpp for the grammar and the error texts). A plain
// left-to-right split: scheme, label, host, port, each checked on its own so
// that the error names the part that is wrong.

#include "relay/url.hpp"
#include "util/ascii.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>

namespace postern::relay {
namespace {

constexpr std::size_t kMaxHost = 253;  // RFC 1035 2.3.4, without the root dot

struct SchemeName {
    std::string_view name;
    RelayUrl::Scheme scheme;
};

constexpr std::array<SchemeName, 5> kSchemes{{
    {"smtp", RelayUrl::Scheme::Smtp},
    {"smtp+tls", RelayUrl::Scheme::SmtpTls},
    {"smtp+notls", RelayUrl::Scheme::SmtpNoTls},
    {"smtps", RelayUrl::Scheme::Smtps},
    {"lmtp", RelayUrl::Scheme::Lmtp},
}};

using util::iequals;
using util::is_alnum;
using util::is_digit;

std::optional<RelayUrl> fail(std::string* error, std::string text) {
    if (error) *error = std::move(text);
    return std::nullopt;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// inet_pton reads a C string: a NUL inside `s` would hide what follows it
// ("[::1\0junk]" must not pass as ::1), so those are refused first.
bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

bool valid_ipv6(std::string_view s) {
    in6_addr addr;
    return s.size() < INET6_ADDRSTRLEN && !has_nul(s) && inet_pton(AF_INET6, std::string(s).c_str(), &addr) == 1;
}

bool valid_ipv4(std::string_view s) {
    in_addr addr;
    return s.size() < INET_ADDRSTRLEN && !has_nul(s) && inet_pton(AF_INET, std::string(s).c_str(), &addr) == 1;
}

bool all_digits(std::string_view s) {
    for (char c : s)
        if (!is_digit(c)) return false;
    return true;
}

// "" when `host` is a usable name or IPv4 address, else the error text.
std::string check_host(std::string_view host) {
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

bool valid_label_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '+'; }

// 1..65535 in decimal, at most 5 digits (so "00025" is 25, "000025" is not).
std::optional<int> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5 || !all_digits(s)) return std::nullopt;
    int port = 0;
    for (char c : s) port = port * 10 + (c - '0');
    if (port < 1 || port > 65535) return std::nullopt;
    return port;
}

// Splits "host", "host:port", "[v6]" or "[v6]:port" into the url.
std::optional<RelayUrl> parse_host_port(std::string_view text, RelayUrl url, std::string* error) {
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

}  // namespace

std::string_view scheme_name(RelayUrl::Scheme scheme) {
    for (const auto& s : kSchemes)
        if (s.scheme == scheme) return s.name;
    return "smtp";
}

std::optional<RelayUrl> parse_relay_url(std::string_view text, std::string* error) {
    if (text.empty()) return fail(error, "empty relay URL");
    RelayUrl url;
    if (std::size_t sep = text.find("://"); sep != std::string_view::npos) {
        std::string_view name = text.substr(0, sep);
        bool known = false;
        for (const auto& s : kSchemes) {
            if (iequals(name, s.name)) {
                url.scheme = s.scheme;
                known = true;
            }
        }
        if (!known) return fail(error, "unknown relay URL scheme " + quoted(name));
        text.remove_prefix(sep + 3);
    }
    if (std::size_t at = text.find('@'); at != std::string_view::npos) {
        std::string_view label = text.substr(0, at);
        if (label.empty()) return fail(error, "empty label in relay URL");
        for (char c : label)
            if (!valid_label_char(c)) return fail(error, "invalid character in label " + quoted(label));
        if (url.scheme != RelayUrl::Scheme::SmtpTls && url.scheme != RelayUrl::Scheme::Smtps)
            return fail(error, "a label is only allowed with smtp+tls:// or smtps://");
        url.label = std::string(label);
        text.remove_prefix(at + 1);
    }
    return parse_host_port(text, std::move(url), error);
}

std::string to_string(const RelayUrl& url) {
    std::string out(scheme_name(url.scheme));
    out += "://";
    if (!url.label.empty()) out += url.label + "@";
    out += url.ipv6_literal ? "[" + url.host + "]" : url.host;
    int default_port = url.scheme == RelayUrl::Scheme::Smtps ? 465 : 25;
    if (url.scheme == RelayUrl::Scheme::Lmtp || url.port != default_port) out += ":" + std::to_string(url.port);
    return out;
}

}  // namespace postern::relay
