// Unit tests of relay host URLs (core/relay/url.cpp): each scheme with its
// default port, labels, IPv4 / IPv6 / names, refusals with their exact
// error texts, and the round trip through to_string.

#include <catch2/catch.hpp>

#include <string>

#include "relay/url.hpp"

using namespace postern::relay;
using Scheme = RelayUrl::Scheme;

namespace {

RelayUrl ok(std::string_view text) {
    std::string err;
    auto u = parse_relay_url(text, &err);
    INFO("url: " << text << " error: " << err);
    REQUIRE(u.has_value());
    REQUIRE(err.empty());
    // The canonical text reads back as the same URL, and is a fixed point.
    std::string canon = to_string(*u);
    auto again = parse_relay_url(canon, &err);
    REQUIRE(again.has_value());
    CHECK(*again == *u);
    CHECK(to_string(*again) == canon);
    return *u;
}

std::string bad(std::string_view text) {
    std::string err;
    auto u = parse_relay_url(text, &err);
    INFO("url: " << text);
    REQUIRE_FALSE(u.has_value());
    return err;
}

}  // namespace

TEST_CASE("relay url: each scheme and its default port", "[relay][url]") {
    struct Case {
        const char* text;
        Scheme scheme;
        int port;
        const char* canon;
    };
    const Case cases[] = {
        {"smtp://mx.example.org", Scheme::Smtp, 25, "smtp://mx.example.org"},
        {"smtp+tls://mx.example.org", Scheme::SmtpTls, 25, "smtp+tls://mx.example.org"},
        {"smtp+notls://mx.example.org", Scheme::SmtpNoTls, 25, "smtp+notls://mx.example.org"},
        {"smtps://mx.example.org", Scheme::Smtps, 465, "smtps://mx.example.org"},
        {"lmtp://mx.example.org:24", Scheme::Lmtp, 24, "lmtp://mx.example.org:24"},
    };
    for (const auto& c : cases) {
        RelayUrl u = ok(c.text);
        CHECK(u.scheme == c.scheme);
        CHECK(u.host == "mx.example.org");
        CHECK(u.port == c.port);
        CHECK(u.label.empty());
        CHECK_FALSE(u.ipv6_literal);
        CHECK(to_string(u) == c.canon);
    }
}

TEST_CASE("relay url: no scheme means smtp", "[relay][url]") {
    RelayUrl u = ok("smarthost.example.net");
    CHECK(u.scheme == Scheme::Smtp);
    CHECK(u.host == "smarthost.example.net");
    CHECK(u.port == 25);
    CHECK(to_string(u) == "smtp://smarthost.example.net");
}

TEST_CASE("relay url: host and port without a scheme", "[relay][url]") {
    RelayUrl u = ok("smarthost:2525");
    CHECK(u.scheme == Scheme::Smtp);
    CHECK(u.host == "smarthost");
    CHECK(u.port == 2525);
    CHECK(to_string(u) == "smtp://smarthost:2525");
}

TEST_CASE("relay url: explicit ports, default ones dropped from the text", "[relay][url]") {
    CHECK(ok("smtp://h:587").port == 587);
    CHECK(to_string(ok("smtp://h:25")) == "smtp://h");
    CHECK(to_string(ok("smtps://h:465")) == "smtps://h");
    CHECK(to_string(ok("smtps://h:25")) == "smtps://h:25");
    CHECK(ok("smtp://h:1").port == 1);
    CHECK(ok("smtp://h:65535").port == 65535);
    CHECK(ok("smtp://h:00025").port == 25);
}

TEST_CASE("relay url: schemes are case-insensitive", "[relay][url]") {
    CHECK(ok("SMTP+TLS://h").scheme == Scheme::SmtpTls);
    CHECK(ok("Smtps://h").scheme == Scheme::Smtps);
}

TEST_CASE("relay url: labels with smtp+tls and smtps", "[relay][url]") {
    RelayUrl u = ok("smtp+tls://gmail@smtp.gmail.com:587");
    CHECK(u.label == "gmail");
    CHECK(u.host == "smtp.gmail.com");
    CHECK(u.port == 587);
    CHECK(to_string(u) == "smtp+tls://gmail@smtp.gmail.com:587");
    RelayUrl s = ok("smtps://my_relay-1.x+y@relay.example");
    CHECK(s.label == "my_relay-1.x+y");
    CHECK(s.port == 465);
}

TEST_CASE("relay url: a label is refused with the other schemes", "[relay][url]") {
    const char* want = "a label is only allowed with smtp+tls:// or smtps://";
    CHECK(bad("smtp://l@h") == want);
    CHECK(bad("smtp+notls://l@h") == want);
    CHECK(bad("lmtp://l@h:24") == want);
    CHECK(bad("l@h") == want);
}

TEST_CASE("relay url: bad labels", "[relay][url]") {
    CHECK(bad("smtps://@h") == "empty label in relay URL");
    CHECK(bad("smtps://a b@h") == "invalid character in label \"a b\"");
    CHECK(bad("smtps://a:b@h") == "invalid character in label \"a:b\"");
}

TEST_CASE("relay url: IPv4 addresses", "[relay][url]") {
    RelayUrl u = ok("smtp://192.0.2.10:2525");
    CHECK(u.host == "192.0.2.10");
    CHECK(u.port == 2525);
    CHECK_FALSE(u.ipv6_literal);
    CHECK(bad("smtp://300.1.1.1") == "invalid IPv4 address \"300.1.1.1\"");
    CHECK(bad("10.1") == "invalid IPv4 address \"10.1\"");
    CHECK(bad("smtp://1.2.3.4.5") == "invalid IPv4 address \"1.2.3.4.5\"");
}

TEST_CASE("relay url: IPv6 literals", "[relay][url]") {
    RelayUrl u = ok("[2001:db8::1]:2525");
    CHECK(u.scheme == Scheme::Smtp);
    CHECK(u.host == "2001:db8::1");
    CHECK(u.port == 2525);
    CHECK(u.ipv6_literal);
    CHECK(to_string(u) == "smtp://[2001:db8::1]:2525");
    RelayUrl l = ok("smtps://label@[::1]");
    CHECK(l.host == "::1");
    CHECK(l.port == 465);
    CHECK(to_string(l) == "smtps://label@[::1]");
    CHECK(ok("lmtp://[::ffff:192.0.2.1]:24").host == "::ffff:192.0.2.1");
}

TEST_CASE("relay url: bad IPv6 literals", "[relay][url]") {
    CHECK(bad("smtp://[2001:db8::1") == "missing \"]\" after IPv6 address");
    CHECK(bad("smtp://[2001:db8::g]") == "invalid IPv6 address \"2001:db8::g\"");
    CHECK(bad("smtp://[192.0.2.1]") == "invalid IPv6 address \"192.0.2.1\"");
    CHECK(bad("smtp://[]") == "invalid IPv6 address \"\"");
    CHECK(bad("smtp://[fe80::1%eth0]") == "invalid IPv6 address \"fe80::1%eth0\"");
    // A NUL must not cut the address short for inet_pton (found by fuzz_relay_url).
    const std::string nul(1, '\0');
    CHECK(bad("[20:db8::" + nul + nul + "1]:25") == "invalid IPv6 address \"20:db8::" + nul + nul + "1\"");
    CHECK(bad("smtp://2001:db8::1" + nul) == "invalid host name \"2001:db8::1" + nul + "\"");
    CHECK(bad("10.0.0.1" + nul) == "invalid host name \"10.0.0.1" + nul + "\"");
    CHECK(bad("smtp://[::1]x") == "unexpected text after \"]\": \"x\"");
    CHECK(bad("smtp://[::1]:") == "invalid port \"\"");
    CHECK(bad("smtp://2001:db8::1") == "IPv6 address \"2001:db8::1\" must be written in brackets");
    CHECK(bad("smtp://a:b:c") == "invalid host name \"a:b:c\"");
}

TEST_CASE("relay url: bad host names", "[relay][url]") {
    CHECK(bad("smtp://-mx.example") == "invalid host name \"-mx.example\"");
    CHECK(bad("smtp://mx-.example") == "invalid host name \"mx-.example\"");
    CHECK(bad("smtp://mx..example") == "invalid host name \"mx..example\"");
    CHECK(bad("smtp://mx.example.") == "invalid host name \"mx.example.\"");
    CHECK(bad("smtp://.example") == "invalid host name \".example\"");
    CHECK(bad("smtp://mx_1.example") == "invalid host name \"mx_1.example\"");
    CHECK(bad("smtp://mx.example/") == "invalid host name \"mx.example/\"");
    CHECK(bad("smtp://m\xc3\xa9.example") == "invalid host name \"m\xc3\xa9.example\"");
    std::string long_label(64, 'a');
    CHECK(bad("smtp://" + long_label + ".example") == "invalid host name \"" + long_label + ".example\"");
    CHECK(ok(std::string(63, 'a') + ".example").host.size() == 71);
}

TEST_CASE("relay url: host name length", "[relay][url]") {
    // 4 labels of 63 + 3 dots = 255 > 253; 3 of 63 + "a" + ... = 253 is fine.
    std::string l63(63, 'a');
    std::string max = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
    REQUIRE(max.size() == 253);
    CHECK(ok(max).host == max);
    std::string over = max + "b";
    CHECK(bad(over) == "invalid host name \"" + over + "\"");
}

TEST_CASE("relay url: missing host", "[relay][url]") {
    CHECK(bad("smtp://") == "missing host in relay URL");
    CHECK(bad("smtp://:25") == "missing host in relay URL");
    CHECK(bad("smtps://label@") == "missing host in relay URL");
    CHECK(bad(":25") == "missing host in relay URL");
}

TEST_CASE("relay url: bad ports", "[relay][url]") {
    CHECK(bad("smtp://h:") == "invalid port \"\"");
    CHECK(bad("smtp://h:0") == "invalid port \"0\"");
    CHECK(bad("smtp://h:65536") == "invalid port \"65536\"");
    CHECK(bad("smtp://h:000025") == "invalid port \"000025\"");
    CHECK(bad("smtp://h:-1") == "invalid port \"-1\"");
    CHECK(bad("smtp://h:25x") == "invalid port \"25x\"");
    CHECK(bad("smtp://h: 25") == "invalid port \" 25\"");
    CHECK(bad("smtp://h:99999999999999999999") == "invalid port \"99999999999999999999\"");
}

TEST_CASE("relay url: lmtp requires a port", "[relay][url]") {
    CHECK(bad("lmtp://localhost") == "lmtp:// requires a port");
    CHECK(bad("lmtp://[::1]") == "lmtp:// requires a port");
    CHECK(ok("lmtp://localhost:24").port == 24);
}

TEST_CASE("relay url: unknown schemes and empty text", "[relay][url]") {
    CHECK(bad("") == "empty relay URL");
    CHECK(bad("http://h") == "unknown relay URL scheme \"http\"");
    CHECK(bad("tls://h") == "unknown relay URL scheme \"tls\"");
    CHECK(bad("smtp+auth://h") == "unknown relay URL scheme \"smtp+auth\"");
    CHECK(bad("://h") == "unknown relay URL scheme \"\"");
    CHECK(bad("smtp:/h") == "invalid port \"/h\"");
}

TEST_CASE("relay url: a null error pointer is allowed", "[relay][url]") {
    CHECK_FALSE(parse_relay_url("http://h", nullptr).has_value());
    CHECK(parse_relay_url("h", nullptr).has_value());
}

TEST_CASE("relay url: to_string of each scheme name", "[relay][url]") {
    CHECK(scheme_name(Scheme::Smtp) == "smtp");
    CHECK(scheme_name(Scheme::SmtpTls) == "smtp+tls");
    CHECK(scheme_name(Scheme::SmtpNoTls) == "smtp+notls");
    CHECK(scheme_name(Scheme::Smtps) == "smtps");
    CHECK(scheme_name(Scheme::Lmtp) == "lmtp");
}
