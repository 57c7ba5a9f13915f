// The `lmtp` and `relay` action methods: every option read into the model,
// relay URLs taken apart, and broken lines refused with exact errors.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;
using Errors = std::vector<std::string>;
using Scheme = RelayUrl::Scheme;

namespace {

Config ok(const std::string& text) {
    auto r = parse(text);
    INFO("errors: " << (r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return *r.config;
}

// Three tables, a pki and a ca for the relay lines (lines 1-5).
const std::string kDecls = "table creds { lbl = \"user:secret\" }\n"
                           "table list { 192.0.2.1, 192.0.2.2 }\n"
                           "table map { example.org = smtp://mx.example.org }\n"
                           "pki mx cert \"/c\" key \"/k\"\n"
                           "ca cacert cert \"/ca\"\n";

// The errors of `action r relay OPTIONS` on line 6 (its options start at column 16).
Errors relay_errors(const std::string& options) {
    return errors_of(kDecls + "action r relay " + options + "\nmatch for any action r\n");
}

Action only_action(const std::string& text) {
    Config c = ok(text);
    REQUIRE(c.actions.size() == 1);
    return c.actions[0];
}

}  // namespace

TEST_CASE("lmtp: a socket path, rcpt-to and the local options") {
    Action a = only_action("table v { a@example.org = a }\n"
                           "action r lmtp \"/var/run/dovecot/lmtp\" rcpt-to virtual <v> user vmail ttl 2d\n"
                           "match for any action r\n");
    CHECK(a.method == "lmtp");
    CHECK(a.path == "/var/run/dovecot/lmtp");
    CHECK(a.lmtp_rcpt_to);
    CHECK(a.virtual_table == "v");
    CHECK(a.user == "vmail");
    REQUIRE(a.ttl);
    CHECK(a.ttl->count() == 2 * 86400);
}

TEST_CASE("lmtp: HOST:PORT bare or quoted and IPv6 in brackets, without rcpt-to") {
    Action a = only_action("action r lmtp localhost:24\nmatch for any action r\n");
    CHECK(a.path == "localhost:24");
    CHECK_FALSE(a.lmtp_rcpt_to);
    CHECK(a.user.empty());
    CHECK(only_action("table a { x = y }\naction r lmtp \"[::1]:2424\" alias <a>\nmatch for any action r\n").path ==
          "[::1]:2424");
    CHECK(only_action("action r lmtp \"127.0.0.1:24\"\nmatch for any action r\n").path == "127.0.0.1:24");
}

TEST_CASE("lmtp: a destination that is neither a socket nor HOST:PORT is refused") {
    const std::string what =
        "expected an LMTP server after 'lmtp': a socket path or HOST:PORT, as in lmtp \"/var/run/lmtp\", found ";
    CHECK(errors_of("action r lmtp\nmatch for any action r\n") == Errors{"test.conf:1:14: " + what + "end of line"});
    CHECK(errors_of("action r lmtp localhost\nmatch for any action r\n") ==
          Errors{"test.conf:1:15: " + what + "'localhost'"});
    CHECK(errors_of("action r lmtp \"h:0\"\nmatch for any action r\n") ==
          Errors{"test.conf:1:15: " + what + "\"h:0\""});
    CHECK(errors_of("action r lmtp lmtp://h:24\nmatch for any action r\n") ==
          Errors{"test.conf:1:15: " + what + "'lmtp://h:24'"});
    CHECK(errors_of("table a { x = y }\naction r lmtp alias <a>\nmatch for any action r\n") ==
          Errors{"test.conf:2:15: " + what + "'alias'"});
    CHECK(
        errors_of("action r lmtp \"/s\" rcpt-to junk\nmatch for any action r\n") ==
        Errors{
            "test.conf:1:28: expected an action option (alias, virtual, userbase, user, wrapper, ttl), found 'junk'"});
}

TEST_CASE("relay: every option of one relay read into the model") {
    Config c = ok(kDecls +
                  "table names { 192.0.2.1 = out.example.org }\n"
                  "action out relay host smtp+tls://lbl@smtp.example.com:587 auth <creds> helo mail.example.org "
                  "helo-src <names> src 192.0.2.1 tls no-verify pki MX ca cacert mail-from \"@example.net\" "
                  "ciphers \"HIGH:!aNULL\" protocols \"tlsv1.2,tlsv1.3\" ttl 1d\n"
                  "match from local for any action out\n");
    REQUIRE(c.actions.size() == 1);
    const Action& a = c.actions[0];
    CHECK(a.method == "relay");
    CHECK(a.path.empty());
    const Relay& r = a.relay;
    CHECK(r.host == "smtp+tls://lbl@smtp.example.com:587");
    REQUIRE(r.url);
    CHECK(r.url->scheme == Scheme::SmtpTls);
    CHECK(r.url->label == "lbl");
    CHECK(r.url->host == "smtp.example.com");
    CHECK(r.url->port == 587);
    CHECK(r.host_table.empty());
    CHECK(r.auth_table == "creds");
    CHECK(r.helo == "mail.example.org");
    CHECK(r.helo_src_table == "names");
    CHECK(r.src == "192.0.2.1");
    CHECK(r.src_table.empty());
    CHECK(r.tls);
    CHECK(r.tls_no_verify);
    CHECK(r.pki == "mx");
    CHECK(r.ca == "cacert");
    CHECK(r.mail_from == "@example.net");
    CHECK(r.ciphers == "HIGH:!aNULL");
    CHECK(r.protocols == "tlsv1.2,tlsv1.3");
    CHECK_FALSE(r.backup);
    CHECK(r.domain_table.empty());
    REQUIRE(a.ttl);
    CHECK(a.ttl->count() == 86400);
}

TEST_CASE("relay: bare, backup, backup mx, domain map, host and src tables, verified tls") {
    Config c = ok(kDecls + "action bare relay\n"
                           "action b1 relay backup\n"
                           "action b2 relay backup mx mx1.example.org tls\n"
                           "action dom relay domain <map> src <list> mail-from bounces\n"
                           "action hosts relay host <list> mail-from user@example.net\n"
                           "action v6 relay host smtp+notls://[2001:db8::1] src 2001:db8::25\n"
                           "match for any action bare\n");
    REQUIRE(c.actions.size() == 6);
    const Relay& bare = c.actions[0].relay;
    CHECK(c.actions[0].method == "relay");
    CHECK(bare.host.empty());
    CHECK_FALSE(bare.url);
    CHECK_FALSE(bare.tls);
    CHECK_FALSE(bare.backup);
    CHECK(c.actions[1].relay.backup);
    CHECK(c.actions[1].relay.backup_mx.empty());
    CHECK(c.actions[2].relay.backup);
    CHECK(c.actions[2].relay.backup_mx == "mx1.example.org");
    CHECK(c.actions[2].relay.tls);
    CHECK_FALSE(c.actions[2].relay.tls_no_verify);
    CHECK(c.actions[3].relay.domain_table == "map");
    CHECK(c.actions[3].relay.src_table == "list");
    CHECK(c.actions[3].relay.mail_from == "bounces");
    CHECK(c.actions[4].relay.host_table == "list");
    CHECK(c.actions[4].relay.host.empty());
    CHECK(c.actions[4].relay.mail_from == "user@example.net");
    REQUIRE(c.actions[5].relay.url);
    CHECK(c.actions[5].relay.url->scheme == Scheme::SmtpNoTls);
    CHECK(c.actions[5].relay.url->host == "2001:db8::1");
    CHECK(c.actions[5].relay.url->port == 25);
    CHECK(c.actions[5].relay.src == "2001:db8::25");
}

TEST_CASE("relay URLs: schemes, labels, IPv6 and default ports") {
    struct Case {
        const char* text;
        Scheme scheme;
        const char* label;
        const char* host;
        int port;
    };
    const Case cases[] = {
        {"mx.example.org", Scheme::Smtp, "", "mx.example.org", 25},
        {"smtp://10.0.0.1:2525", Scheme::Smtp, "", "10.0.0.1", 2525},
        {"smtp+tls://mx.example.org", Scheme::SmtpTls, "", "mx.example.org", 25},
        {"smtps://lbl@mx.example.org", Scheme::Smtps, "lbl", "mx.example.org", 465},
        {"smtps://mx.example.org:4650", Scheme::Smtps, "", "mx.example.org", 4650},
        {"smtp+notls://[2001:db8::1]", Scheme::SmtpNoTls, "", "2001:db8::1", 25},
        {"smtp+tls://a.b@[::1]:587", Scheme::SmtpTls, "a.b", "::1", 587},
        {"lmtp://127.0.0.1:24", Scheme::Lmtp, "", "127.0.0.1", 24},
    };
    for (const Case& k : cases) {
        INFO(k.text);
        std::string why;
        auto url = parse_relay_url(k.text, why);
        REQUIRE(url);
        CHECK(why.empty());
        CHECK(url->scheme == k.scheme);
        CHECK(url->label == k.label);
        CHECK(url->host == k.host);
        CHECK(url->port == k.port);
    }
    CHECK(scheme_name(Scheme::SmtpNoTls) == "smtp+notls");
    CHECK(scheme_name(Scheme::Lmtp) == "lmtp");
}

TEST_CASE("relay URLs: what is wrong with a broken one") {
    const std::pair<const char*, const char*> cases[] = {
        {"", "empty relay URL"},
        {"ftp://x", "unknown relay URL scheme \"ftp\""},
        {"tls://x", "unknown relay URL scheme \"tls\""},
        {"smtp://lbl@x", "a label is only allowed with smtp+tls:// or smtps://"},
        {"lbl@x", "a label is only allowed with smtp+tls:// or smtps://"},
        {"smtps://@x", "empty label in relay URL"},
        {"lmtp://127.0.0.1", "lmtp:// requires a port"},
        {"smtp://2001:db8::1", "IPv6 address \"2001:db8::1\" must be written in brackets"},
        {"smtp://[2001:db8::1", "missing \"]\" after IPv6 address"},
        {"smtp://[2001:db8::zz]:25", "invalid IPv6 address \"2001:db8::zz\""},
        {"smtp://[::1]x", "unexpected text after \"]\": \"x\""},
        {"smtp://x:99999", "invalid port \"99999\""},
        {"smtp://x:", "invalid port \"\""},
        {"smtp://", "missing host in relay URL"},
        {"smtp://:25", "missing host in relay URL"},
        {"smtp://x/path", "invalid host name \"x/path\""},
        {"smtp://-x", "invalid host name \"-x\""},
    };
    for (const auto& [text, why_expected] : cases) {
        INFO(text);
        std::string why;
        CHECK_FALSE(parse_relay_url(text, why));
        CHECK(why == why_expected);
    }
}

TEST_CASE("relay: broken relay lines are refused with exact errors") {
    const std::string p = "test.conf:6:";
    // Bad URLs.
    CHECK(relay_errors("host ftp://mx") ==
          Errors{p + "21: invalid relay URL 'ftp://mx': unknown relay URL scheme \"ftp\""});
    CHECK(relay_errors("host smtp://lbl@mx auth <creds>") ==
          Errors{p + "21: invalid relay URL 'smtp://lbl@mx': a label is only allowed with smtp+tls:// or smtps://"});
    CHECK(relay_errors("host lmtp://127.0.0.1") ==
          Errors{p + "21: invalid relay URL 'lmtp://127.0.0.1': lmtp:// requires a port"});
    CHECK(
        relay_errors("host smtp://2001:db8::1") ==
        Errors{p +
               "21: invalid relay URL 'smtp://2001:db8::1': IPv6 address \"2001:db8::1\" must be written in brackets"});
    CHECK(relay_errors("host \"smtp://mx:0\"") ==
          Errors{p + "21: invalid relay URL \"smtp://mx:0\": invalid port \"0\""});
    CHECK(relay_errors("host") ==
          Errors{p + "20: expected a relay URL or <table> after 'host', as in host smtp+tls://mx.example.org, found "
                     "end of line"});
    // Combinations.
    CHECK(relay_errors("auth <creds>") ==
          Errors{p + "16: 'auth' needs 'host' on the same relay: credentials are for one smarthost"});
    CHECK(relay_errors("backup host mx.example.org") == Errors{p + "16: 'backup' cannot be used together with 'host'"});
    CHECK(relay_errors("domain <map> backup") == Errors{p + "29: 'backup' cannot be used together with 'domain'"});
    CHECK(relay_errors("host mx.example.org domain <map>") ==
          Errors{p + "36: 'domain' cannot be used together with 'host'"});
    // Words.
    const std::string what = "expected a relay option (host, domain, backup, helo, helo-src, src, auth, tls, pki, ca, "
                             "mail-from, srs, ciphers, protocols, ttl), found ";
    CHECK(relay_errors("frob") == Errors{p + "16: " + what + "'frob'"});
    CHECK(relay_errors("tls verify") == Errors{p + "20: " + what + "'verify'"});
    CHECK(relay_errors("via smtp://mx") == Errors{p + "16: " + what + "'via'"});
    CHECK(relay_errors("alias <map>") ==
          Errors{p + "16: 'alias' is an option of local delivery and cannot be used with 'relay'"});
    CHECK(relay_errors("user bob") ==
          Errors{p + "16: 'user' is an option of local delivery and cannot be used with 'relay'"});
    CHECK(relay_errors("filter f") ==
          Errors{p + "23: filter 'f' is not declared: declare it with 'filter f ...' before this line"});
    CHECK(relay_errors("srs") == Errors{p + "16: 'srs' needs a key: add 'srs key SECRET'"});
    CHECK(errors_of("srs key s3cret\n" + kDecls + "action r relay srs\nmatch for any action r\n").empty());
    CHECK(relay_errors("helo a helo b") == Errors{p + "23: 'helo' is given twice"});
    CHECK(relay_errors("ttl 1d helo a") == Errors{p + "23: 'helo' must come before 'ttl'"});
    // Values.
    CHECK(relay_errors("src mail.example.org") ==
          Errors{p + "20: expected an IP address, <table> or { ... } after 'src', found 'mail.example.org'"});
    CHECK(relay_errors("mail-from a@b@c") ==
          Errors{p + "26: expected an address after 'mail-from' (user@domain, @domain or user), found 'a@b@c'"});
    CHECK(relay_errors("mail-from user@") ==
          Errors{p + "26: expected an address after 'mail-from' (user@domain, @domain or user), found 'user@'"});
    CHECK(relay_errors("backup mx") == Errors{p + "25: expected an MX host name after 'backup mx', found end of line"});
    CHECK(relay_errors("helo tls") == Errors{p + "21: expected a host name after 'helo', found 'tls'"});
    CHECK(relay_errors("pki nope") ==
          Errors{p + "20: unknown pki 'nope': declare it with 'pki nope cert \"FILE\"' and 'pki nope key \"FILE\"' "
                     "before this line"});
    CHECK(relay_errors("ca nope") ==
          Errors{p + "19: unknown ca 'nope': declare it with 'ca nope cert \"FILE\"' before this line"});
    CHECK(relay_errors("protocols \"tlsv9\"") ==
          Errors{p + "26: unknown TLS protocol 'tlsv9' in 'protocols': expected tlsv1.2, tlsv1.3, secure, default, "
                     "legacy or all, separated by ','"});
    CHECK(relay_errors("host smtps://lbl@mx auth <list>") ==
          Errors{p + "36: 'auth' needs a table of key = value entries, but table 'list' is a list"});
    CHECK(relay_errors("helo-src <nope>") ==
          Errors{p + "26: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(relay_errors("domain mx.example.org") ==
          Errors{p + "23: expected a table <name> or { ... } after 'domain', found 'mx.example.org'"});
}

TEST_CASE("relay and lmtp: a broken action is remembered, so rules using it add no noise") {
    CHECK(errors_of("action r relay host ftp://x\nmatch for any action r\nmatch from any for any action r\n") ==
          Errors{"test.conf:1:21: invalid relay URL 'ftp://x': unknown relay URL scheme \"ftp\""});
}

TEST_CASE("relay: srs key, srs key backup and srs ttl") {
    Config c = ok("srs key one\nsrs key backup two\nsrs ttl 7d\naction r relay srs\nmatch for any action r\n");
    CHECK(c.srs_key == "one");
    CHECK(c.srs_backup_key == "two");
    CHECK(c.srs_ttl == std::chrono::seconds(7 * 86400));
    CHECK(c.actions[0].relay.srs);
    CHECK(ok("action r relay\nmatch for any action r\n").srs_ttl == std::chrono::seconds(4 * 86400));
    const std::string rule = "action r relay\nmatch for any action r\n";
    CHECK(errors_of("srs ttl 36h\n" + rule) == Errors{"test.conf:1:9: 'srs ttl' must be whole days, as in srs ttl 4d"});
    CHECK(errors_of("srs key\n" + rule) ==
          Errors{"test.conf:1:8: expected a secret after 'srs key', found end of line"});
    CHECK(errors_of("srs frob\n" + rule) == Errors{"test.conf:1:5: expected key or ttl after 'srs', found 'frob'"});
}
