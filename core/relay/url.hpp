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

#include <optional>
#include <string>
#include <string_view>

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

std::optional<RelayUrl> parse_relay_url(std::string_view text, std::string* error);

// The canonical text: always with its scheme, the port only when it is not
// the scheme's default. parse_relay_url(to_string(u)) == u.
std::string to_string(const RelayUrl& url);

// "smtp", "smtp+tls", "smtp+notls", "smtps", "lmtp".
std::string_view scheme_name(RelayUrl::Scheme scheme);

}  // namespace postern::relay
