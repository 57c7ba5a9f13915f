// Fuzz target: relay host URLs (core/relay/url.cpp), read from the
// configuration and from relayhost tables. A URL that parses must respect
// the grammar's rules and survive to_string and a second parse unchanged; a
// refusal must carry one of the documented error texts.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "relay/url.hpp"

using namespace postern::relay;
using Scheme = RelayUrl::Scheme;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool starts_with_any(std::string_view s) {
    static constexpr std::string_view kTexts[] = {
        "empty relay URL",
        "unknown relay URL scheme \"",
        "empty label in relay URL",
        "invalid character in label \"",
        "a label is only allowed with smtp+tls:// or smtps://",
        "missing host in relay URL",
        "missing \"]\" after IPv6 address",
        "invalid IPv6 address \"",
        "unexpected text after \"]\": \"",
        "IPv6 address \"",
        "invalid host name \"",
        "invalid IPv4 address \"",
        "invalid port \"",
        "lmtp:// requires a port",
    };
    for (auto t : kTexts)
        if (s.substr(0, t.size()) == t) return true;
    return false;
}

void check_url(const RelayUrl& u) {
    check(!u.host.empty() && u.port >= 1 && u.port <= 65535);
    check(u.label.empty() || u.scheme == Scheme::SmtpTls || u.scheme == Scheme::Smtps);
    check(u.ipv6_literal || u.host.size() <= 253);
    for (char c : u.host) check(c > 0x20 && c < 0x7f && c != '@' && c != '/' && c != '[' && c != ']');
    for (char c : u.label) check(c > 0x20 && c < 0x7f && c != '@' && c != ':');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string error;
    auto url = parse_relay_url(text, &error);
    if (!url) {
        check(starts_with_any(error));
        return 0;
    }
    check(error.empty());
    check_url(*url);
    std::string canon = to_string(*url);
    std::string again_error;
    auto again = parse_relay_url(canon, &again_error);
    check(again.has_value() && *again == *url);
    check(to_string(*again) == canon);
    return 0;
}
