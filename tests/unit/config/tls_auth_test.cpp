// Config parser: pki and ca declarations, the TLS and AUTH options of
// `listen`, `smtp ciphers` and the `auth` / `from auth` match criteria: every
// form read into the model, then each broken form with its exact message.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;
using Kind = Criterion::Kind;
using Errors = std::vector<std::string>;

namespace {

Config ok(const std::string& text) {
    auto r = parse(text);
    INFO("errors: " << (r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return *r.config;
}

// Two complete pkis and a CA for the listen lines below.
const std::string kPkis = "pki mx.example.org cert \"/etc/ssl/mx.crt\"\n"
                          "pki mx.example.org key \"/etc/ssl/private/mx.key\"\n"
                          "pki * cert \"/etc/ssl/any.crt\" key \"/etc/ssl/private/any.key\"\n"
                          "ca clients cert \"/etc/ssl/clients.pem\"\n";

}  // namespace

TEST_CASE("pki: cert, key and dhe lines combine into one pki per name") {
    Config c = ok("pki Mail.Example.ORG cert \"/etc/ssl/mail.crt\"\n"
                  "pki mail.example.org key '/etc/ssl/private/mail.key'\n"
                  "pki mail.example.org dhe auto\n"
                  "pki * certificate \"/etc/ssl/star.crt\" key \"/etc/ssl/star.key\" dhe legacy\n"
                  "pki example_com cert \"/nonexistent/is/fine.crt\"\n"
                  "pki example_com key \"/nonexistent/is/fine.key\"\n" +
                  kRule);
    REQUIRE(c.pkis.size() == 3);
    const Pki& mail = c.pkis[0];
    CHECK(mail.name == "mail.example.org");  // lowercased
    CHECK(mail.cert == "/etc/ssl/mail.crt");
    CHECK(mail.key == "/etc/ssl/private/mail.key");
    CHECK(mail.dhe == "auto");
    CHECK(mail.where.line == 1);
    CHECK(mail.where.column == 1);
    CHECK(c.pkis[1].name == "*");
    CHECK(c.pkis[1].cert == "/etc/ssl/star.crt");
    CHECK(c.pkis[1].dhe == "legacy");
    CHECK(c.pkis[2].name == "example_com");
    CHECK(c.pkis[2].dhe == "none");  // the default
    CHECK(c.find_pki("*") == &c.pkis[1]);
    CHECK(c.find_pki("nope") == nullptr);
}

TEST_CASE("pki: the pre-6.4 'certificate' keyword is read with a warning") {
    auto r = parse("pki mx certificate \"/c\"\npki mx key \"/k\"\nca c certificate \"/ca\"\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->pkis[0].cert == "/c");
    CHECK(r.config->cas[0].cert == "/ca");
    CHECK(formatted(r.warnings) == Errors{"test.conf:1:8: 'certificate' is the pre-6.4 spelling of 'cert'",
                                          "test.conf:3:6: 'certificate' is the pre-6.4 spelling of 'cert'"});
}

TEST_CASE("ca: NAME cert FILE") {
    Config c = ok("ca Clients.Example cert \"/etc/ssl/ca.pem\"\nca * cert \"/etc/ssl/all.pem\"\n" + kRule);
    REQUIRE(c.cas.size() == 2);
    CHECK(c.cas[0].name == "clients.example");
    CHECK(c.cas[0].cert == "/etc/ssl/ca.pem");
    CHECK(c.cas[0].where.line == 1);
    CHECK(c.find_ca("*") == &c.cas[1]);
}

TEST_CASE("listen: tls, tls-require, smtps with pki, ca, verify, ciphers and protocols") {
    Config c = ok(kPkis +
                  "listen on lo tls pki mx.example.org\n"
                  "listen on lo port submission tls-require pki MX.example.org pki *\n"
                  "listen on lo tls-require verify ca clients pki *\n"
                  "listen on lo smtps pki * ciphers \"HIGH:!aNULL\" protocols \"tlsv1.2,tlsv1.3\"\n"
                  "listen on lo smtps verify ca clients port 4465 pki *\n"
                  "listen on lo port smtps smtps pki *\n"
                  "listen on lo port 25 pki * protocols 'secure:!tlsv1.0' tls\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 8);  // and the implied socket
    const Listener& a = c.listeners[0];
    CHECK(a.tls);
    CHECK_FALSE(a.tls_require);
    CHECK_FALSE(a.smtps);
    CHECK_FALSE(a.verify);
    CHECK(a.pkis == Errors{"mx.example.org"});
    CHECK(a.ca.empty());
    CHECK(a.port == 25);
    const Listener& b = c.listeners[1];
    CHECK(b.tls);
    CHECK(b.tls_require);
    CHECK(b.port == 587);
    CHECK(b.pkis == Errors{"mx.example.org", "*"});
    const Listener& v = c.listeners[2];
    CHECK(v.tls_require);
    CHECK(v.verify);
    CHECK(v.ca == "clients");
    const Listener& s = c.listeners[3];
    CHECK(s.smtps);
    CHECK_FALSE(s.tls);
    CHECK(s.port == 465);  // smtps without port
    CHECK(s.ciphers == "HIGH:!aNULL");
    CHECK(s.protocols == "tlsv1.2,tlsv1.3");
    CHECK(c.listeners[4].smtps);
    CHECK(c.listeners[4].verify);
    CHECK(c.listeners[4].port == 4465);  // an explicit port wins, before or after smtps
    CHECK(c.listeners[5].port == 465);
    CHECK(c.listeners[6].tls);
    CHECK(c.listeners[6].protocols == "secure:!tlsv1.0");
    // Listeners without TLS keep every new field at its default.
    const Listener& sock = c.listeners[7];
    CHECK(sock.socket);
    CHECK_FALSE(sock.tls);
    CHECK(sock.pkis.empty());
    CHECK_FALSE(sock.auth);
}

TEST_CASE("listen: auth, auth-optional, senders, masquerade, received-auth, hostnames, no-dsn") {
    Config c = ok(kPkis +
                  "table creds file:/etc/mail/creds\n"
                  "table senders { bob = bob@example.org, alice = \"@example.org\" }\n"
                  "table names { 192.0.2.1 = mx1.example.org }\n"
                  "listen on lo port submission tls-require pki * auth <creds> senders <senders> masquerade\n"
                  "listen on lo tls pki * auth-optional received-auth no-dsn hostnames <names>\n"
                  "listen on lo smtps pki * auth senders <senders>\n"
                  "listen on lo tls pki * auth-optional { joe = \"$6$salt$hash\" }\n"
                  "listen on socket no-dsn\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 5);
    const Listener& sub = c.listeners[0];
    CHECK(sub.auth);
    CHECK_FALSE(sub.auth_optional);
    CHECK(sub.auth_table == "creds");
    CHECK(sub.senders_table == "senders");
    CHECK(sub.masquerade);
    CHECK_FALSE(sub.received_auth);
    const Listener& mx = c.listeners[1];
    CHECK_FALSE(mx.auth);
    CHECK(mx.auth_optional);
    CHECK(mx.auth_table.empty());  // system users
    CHECK(mx.received_auth);
    CHECK(mx.no_dsn);
    CHECK(mx.hostnames_table == "names");
    CHECK_FALSE(mx.masquerade);
    CHECK(c.listeners[2].senders_table == "senders");
    CHECK_FALSE(c.listeners[2].masquerade);
    const Listener& inl = c.listeners[3];
    REQUIRE_FALSE(inl.auth_table.empty());
    const TableDecl* t = c.find_table(inl.auth_table);
    REQUIRE(t);
    CHECK(t->backend == "inline");
    CHECK(t->entries == std::vector<std::pair<std::string, std::string>>{{"joe", "$6$salt$hash"}});
    CHECK(c.listeners[4].socket);
    CHECK(c.listeners[4].no_dsn);
}

TEST_CASE("listen: a tls listener without pki gets the one OpenSMTPD 6.8 would use") {
    // The pki named as the listener's hostname.
    Config a = ok(kPkis + "listen on lo tls hostname MX.example.org\n" + kRule);
    CHECK(a.listeners[0].pkis == Errors{"mx.example.org"});
    // Else the one named as the server (`hostname` directive).
    Config b = ok("hostname mx.example.org\n" + kPkis + "listen on lo smtps\n" + kRule);
    CHECK(b.listeners[0].pkis == Errors{"mx.example.org"});
    // Else "*".
    Config c = ok(kPkis + "listen on lo tls-require hostname other.example.org\n" + kRule);
    CHECK(c.listeners[0].pkis == Errors{"*"});
    // Else the only pki there is, whatever its name.
    Config d = ok("pki only.example cert \"/c\" key \"/k\"\nlisten on lo tls\n" + kRule);
    CHECK(d.listeners[0].pkis == Errors{"only.example"});
    // The pki may be declared after the listener: 6.8 looked it up by name only when serving.
    Config e = ok("listen on lo tls\npki late cert \"/c\" key \"/k\"\n" + kRule);
    CHECK(e.listeners[0].pkis == Errors{"late"});
}

TEST_CASE("globals: smtp ciphers") {
    CHECK(ok(kRule).ciphers.empty());
    CHECK(ok("smtp ciphers \"HIGH:!aNULL:!MD5\"\n" + kRule).ciphers == "HIGH:!aNULL:!MD5");
}

TEST_CASE("match: auth and from auth, bare, with a user, table or regex, negated") {
    Config c = ok("table users { alice, bob }\n"
                  "action d mbox\n"
                  "match auth from any for any action d\n"
                  "match auth \"alice\" for any action d\n"
                  "match auth <users> from any for any action d\n"
                  "match !auth from any for any reject\n"
                  "match from auth for any action d\n"
                  "match from auth <users> for any action d\n"
                  "match from auth regex \"^adm-\" for any action d\n"
                  "match !from auth for domain example.org reject\n"
                  "match auth bob action d\n");
    REQUIRE(c.rules.size() == 9);
    const Criterion& bare = c.rules[0].criteria[0];
    CHECK(bare.kind == Kind::Auth);
    CHECK_FALSE(bare.negated);
    CHECK(bare.value.empty());
    CHECK(bare.table.empty());
    CHECK(c.rules[0].criteria[1].kind == Kind::FromAny);
    CHECK(c.rules[1].criteria[0].kind == Kind::Auth);
    CHECK(c.rules[1].criteria[0].value == "alice");
    // No `from`: OpenSMTPD's default `from local` is appended.
    CHECK(c.rules[1].criteria.back().kind == Kind::FromLocal);
    CHECK(c.rules[2].criteria[0].table == "users");
    CHECK(c.rules[3].criteria[0].kind == Kind::Auth);
    CHECK(c.rules[3].criteria[0].negated);
    CHECK(c.rules[3].reject);
    const Criterion& fa = c.rules[4].criteria[0];
    CHECK(fa.kind == Kind::FromAuth);
    CHECK(fa.value.empty());
    CHECK(fa.table.empty());
    CHECK(c.rules[5].criteria[0].kind == Kind::FromAuth);
    CHECK(c.rules[5].criteria[0].table == "users");
    CHECK(c.rules[6].criteria[0].regex);
    CHECK(c.rules[6].criteria[0].value == "^adm-");
    CHECK(c.rules[7].criteria[0].kind == Kind::FromAuth);
    CHECK(c.rules[7].criteria[0].negated);
    CHECK(c.rules[7].criteria[0].where.column == 7);  // at the '!'
    CHECK(c.rules[8].criteria[0].value == "bob");
}

TEST_CASE("errors: pki and ca declarations") {
    CHECK(errors_of("pki mx key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:1: pki 'mx' has no certificate: add 'pki mx cert \"FILE\"'"});
    CHECK(errors_of("pki mx cert \"/c\"\n" + kRule) ==
          Errors{"test.conf:1:1: pki 'mx' has no key: add 'pki mx key \"FILE\"'"});
    CHECK(errors_of("pki mx dhe auto\n" + kRule) ==
          Errors{"test.conf:1:1: pki 'mx' has no certificate: add 'pki mx cert \"FILE\"'",
                 "test.conf:1:1: pki 'mx' has no key: add 'pki mx key \"FILE\"'"});
    CHECK(errors_of("pki mx cert \"/c\" key \"/k\"\npki MX cert \"/d\"\n" + kRule) ==
          Errors{"test.conf:2:8: 'cert' is given twice for pki 'mx'"});
    CHECK(errors_of("pki mx key \"/k\" cert \"/c\" key \"/l\"\n" + kRule) ==
          Errors{"test.conf:1:27: 'key' is given twice for pki 'mx'"});
    CHECK(errors_of("pki mx cert \"/c\" key \"/k\" dhe strong\n" + kRule) ==
          Errors{"test.conf:1:31: expected none, auto or legacy after 'dhe', found 'strong'"});
    CHECK(errors_of("pki mx\n" + kRule) == Errors{"test.conf:1:7: expected cert, key or dhe after pki name 'mx', "
                                                  "found end of line"});
    CHECK(errors_of("pki mx cert\n" + kRule) == Errors{"test.conf:1:12: expected a file name after 'cert', found end "
                                                       "of line"});
    CHECK(errors_of("pki mx cert key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:13: expected a file name after 'cert', found 'key'"});
    CHECK(errors_of("pki mx cert \"\"\n" + kRule) ==
          Errors{"test.conf:1:13: expected a file name after 'cert', found \"\""});
    CHECK(errors_of("pki \"mail/example\" cert \"/c\" key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:5: invalid pki name \"mail/example\": expected a host name or '*'"});
    CHECK(errors_of("pki mx..example cert \"/c\" key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:5: invalid pki name 'mx..example': expected a host name or '*'"});
    CHECK(errors_of("pki\n" + kRule) ==
          Errors{"test.conf:1:4: expected a host name or '*' after 'pki', found end of line"});
    CHECK(errors_of("ca c\n" + kRule) == Errors{"test.conf:1:5: expected cert after ca name 'c', found end of line"});
    CHECK(errors_of("ca c key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:6: expected cert after ca name 'c', found 'key'"});
    CHECK(errors_of("ca c cert \"/a\"\nca C cert \"/b\"\n" + kRule) ==
          Errors{"test.conf:2:1: ca 'c' is declared twice (first at test.conf:1:1)"});
    CHECK(errors_of("ca c cert \"/a\" extra\n" + kRule) ==
          Errors{"test.conf:1:16: expected end of line after the file name, found 'extra'"});
}

TEST_CASE("errors: fatal listen combinations") {
    const std::string p = "pki mx cert \"/c\" key \"/k\"\nca c cert \"/ca\"\ntable creds { u = p }\n";
    // AUTH never in plaintext, as OpenSMTPD.
    CHECK(errors_of(p + "listen on lo auth\n" + kRule) ==
          Errors{"test.conf:4:14: 'auth' needs 'tls', 'tls-require' or 'smtps' on the same listener: passwords are "
                 "never accepted in plaintext"});
    CHECK(errors_of(p + "listen on lo port 587 auth-optional <creds>\n" + kRule) ==
          Errors{"test.conf:4:23: 'auth-optional' needs 'tls', 'tls-require' or 'smtps' on the same listener: "
                 "passwords are never accepted in plaintext"});
    CHECK(errors_of(p + "listen on lo pki mx\n" + kRule) ==
          Errors{"test.conf:4:14: 'pki' needs 'tls', 'tls-require' or 'smtps' on the same listener"});
    CHECK(errors_of(p + "listen on lo tls smtps pki mx\n" + kRule) ==
          Errors{"test.conf:4:18: 'smtps' cannot be used together with 'tls': a listener offers either STARTTLS "
                 "(tls, tls-require) or TLS from the first byte (smtps); use one listen line for each"});
    CHECK(errors_of(p + "listen on lo smtps tls-require\n" + kRule) ==
          Errors{"test.conf:4:20: 'tls-require' cannot be used together with 'smtps': a listener offers either "
                 "STARTTLS (tls, tls-require) or TLS from the first byte (smtps); use one listen line for each"});
    CHECK(errors_of(p + "listen on lo tls tls-require\n" + kRule) ==
          Errors{"test.conf:4:18: 'tls-require' cannot be used together with 'tls': a listener offers either "
                 "STARTTLS (tls, tls-require) or TLS from the first byte (smtps); use one listen line for each"});
    CHECK(errors_of(p + "listen on lo tls-require verify pki mx\n" + kRule) ==
          Errors{"test.conf:4:26: 'verify' needs 'ca NAME' on the same listener: the CA that client certificates "
                 "are checked against"});
    CHECK(errors_of(p + "listen on lo tls verify\n" + kRule) ==
          Errors{"test.conf:4:18: 'verify' must follow 'tls-require' or 'smtps', as in 'tls-require verify'"});
    CHECK(errors_of(p + "listen on lo tls ca c verify\n" + kRule) ==
          Errors{"test.conf:4:23: 'verify' must follow 'tls-require' or 'smtps', as in 'tls-require verify'"});
    CHECK(errors_of(p + "listen on socket tls\n" + kRule) ==
          Errors{"test.conf:4:18: 'tls' cannot be used with 'listen on socket'"});
    CHECK(errors_of(p + "listen on socket auth\n" + kRule) ==
          Errors{"test.conf:4:18: 'auth' cannot be used with 'listen on socket'"});
}

TEST_CASE("errors: unknown and duplicate listen options") {
    const std::string p = "pki mx cert \"/c\" key \"/k\"\nca c cert \"/ca\"\ntable creds { u = p }\n";
    CHECK(errors_of(p + "listen on lo tls pki nope\n" + kRule) ==
          Errors{"test.conf:4:22: unknown pki 'nope': declare it with 'pki nope cert \"FILE\"' and 'pki nope key "
                 "\"FILE\"' before this line"});
    CHECK(errors_of("listen on lo tls pki late\npki late cert \"/c\" key \"/k\"\n" + kRule) ==
          Errors{"test.conf:1:22: unknown pki 'late': declare it with 'pki late cert \"FILE\"' and 'pki late key "
                 "\"FILE\"' before this line"});
    CHECK(errors_of(p + "listen on lo tls-require verify ca nope pki mx\n" + kRule) ==
          Errors{"test.conf:4:36: unknown ca 'nope': declare it with 'ca nope cert \"FILE\"' before this line"});
    CHECK(errors_of(p + "listen on lo tls tls pki mx\n" + kRule) == Errors{"test.conf:4:18: 'tls' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx pki MX\n" + kRule) ==
          Errors{"test.conf:4:29: pki 'mx' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx auth auth\n" + kRule) ==
          Errors{"test.conf:4:30: 'auth' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx auth auth-optional\n" + kRule) ==
          Errors{"test.conf:4:30: 'auth-optional' cannot be used together with 'auth'"});
    CHECK(errors_of(p + "listen on lo tls-require verify ca c ca c pki mx\n" + kRule) ==
          Errors{"test.conf:4:38: 'ca' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx auth senders <creds> senders <creds>\n" + kRule) ==
          Errors{"test.conf:4:46: 'senders' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx no-dsn no-dsn\n" + kRule) ==
          Errors{"test.conf:4:32: 'no-dsn' is given twice"});
    CHECK(errors_of(p + "listen on lo tls pki mx masquerade\n" + kRule) ==
          Errors{"test.conf:4:25: 'masquerade' must follow 'senders <table>'"});
    CHECK(errors_of(p + "listen on lo tls pki mx auth <nope>\n" + kRule) ==
          Errors{"test.conf:4:31: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of(p + "listen on lo tls pki mx auth creds\n" + kRule) ==
          Errors{"test.conf:4:30: expected a listen option (port, inet4, inet6, hostname, hostnames, tag, mask-src, "
                 "tls, tls-require, smtps, pki, ca, ciphers, protocols, auth, auth-optional, senders, received-auth, "
                 "no-dsn, proxy-v2, filter), found 'creds'"});
    CHECK(errors_of(p + "listen on lo tls pki mx senders\n" + kRule) ==
          Errors{"test.conf:4:32: expected a table <name> or { ... } after 'senders', found end of line"});
    CHECK(errors_of("table l { a, b }\n" + p + "listen on lo tls pki mx auth <l>\n" + kRule) ==
          Errors{"test.conf:5:25: 'auth' needs a table of key = value entries, but table 'l' is a list"});
    CHECK(errors_of(p + "listen on lo tls pki mx hostnames <localhost>\n" + kRule) ==
          Errors{"test.conf:4:25: 'hostnames' needs a table of key = value entries, but table 'localhost' is a list"});
    CHECK(errors_of(p + "listen on lo tls pki mx protocols \"tlsv1.2,sslv3\"\n" + kRule) ==
          Errors{"test.conf:4:35: unknown TLS protocol 'sslv3' in 'protocols': expected tlsv1.2, tlsv1.3, secure, "
                 "default, legacy or all, separated by ','"});
    CHECK(errors_of(p + "listen on lo tls pki mx ciphers\n" + kRule) ==
          Errors{"test.conf:4:32: expected a cipher list after 'ciphers', quoted as in ciphers \"HIGH:!aNULL\", found "
                 "end of line"});
    CHECK(errors_of(p + "listen on lo tls pki\n" + kRule) ==
          Errors{"test.conf:4:21: expected a pki name after 'pki', found end of line"});
    CHECK(
        errors_of(p + "listen on tls pki mx\n" + kRule) ==
        Errors{"test.conf:4:11: expected an address, interface, hostname or 'socket' after 'listen on', found 'tls'"});
}

TEST_CASE("errors: a tls listener with no pki to use") {
    CHECK(errors_of("listen on lo tls\n" + kRule) ==
          Errors{"test.conf:1:14: 'tls' needs a pki, and none is declared: declare one with 'pki NAME cert \"FILE\"' "
                 "and 'pki NAME key \"FILE\"'"});
    CHECK(errors_of("pki a cert \"/c\" key \"/k\"\npki b cert \"/c\" key \"/k\"\n"
                    "listen on lo port 465 smtps hostname mx.example.org\n" +
                    kRule) ==
          Errors{"test.conf:3:23: 'smtps' needs a pki: none is named 'mx.example.org' or '*'; name one with 'pki "
                 "NAME' on this listener"});
    CHECK(errors_of("pki a cert \"/c\" key \"/k\"\npki b cert \"/c\" key \"/k\"\nlisten on lo tls-require\n" + kRule) ==
          Errors{"test.conf:3:14: 'tls-require' needs a pki: none is named '*'; name one with 'pki NAME' on this "
                 "listener"});
}

TEST_CASE("warnings: TLS and senders options that have no effect") {
    auto r = parse("ca c cert \"/ca\"\ntable s { u = a@b }\n"
                   "listen on lo ca c ciphers HIGH protocols secure\n"
                   "pki mx cert \"/c\" key \"/k\"\nlisten on lo tls senders <s>\n" +
                   kRule);
    REQUIRE(r.errors.empty());
    CHECK(formatted(r.warnings) ==
          Errors{"test.conf:3:14: 'ca' has no effect without 'tls', 'tls-require' or 'smtps'",
                 "test.conf:3:19: 'ciphers' has no effect without 'tls', 'tls-require' or 'smtps'",
                 "test.conf:3:32: 'protocols' has no effect without 'tls', 'tls-require' or 'smtps'",
                 "test.conf:5:18: 'senders' has no effect without 'auth' or 'auth-optional'"});
}

TEST_CASE("errors: smtp ciphers, match auth and from auth") {
    CHECK(errors_of("smtp ciphers\n" + kRule) ==
          Errors{"test.conf:1:13: expected a cipher list after 'smtp ciphers', quoted as in smtp ciphers "
                 "\"HIGH:!aNULL\", found end of line"});
    CHECK(errors_of("smtp ciphers HIGH LOW\n" + kRule) ==
          Errors{"test.conf:1:19: expected end of line after the cipher list, found 'LOW'"});
    const std::string d = "action d mbox\n";
    CHECK(errors_of(d + "match auth <nope> for any action d\n") ==
          Errors{"test.conf:2:13: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of(d + "match auth auth for any action d\n") ==
          Errors{"test.conf:2:12: 'auth' may appear only once in a match rule"});
    CHECK(errors_of(d + "match from auth from any action d\n") ==
          Errors{"test.conf:2:17: 'from' may appear only once in a match rule"});
    CHECK(errors_of(d + "match auth regex for any action d\n") ==
          Errors{"test.conf:2:18: expected a value, <table> or { ... } after 'regex', found 'for'"});
    CHECK(errors_of(d + "match from auth regex action d\n") ==
          Errors{"test.conf:2:23: expected a value, <table> or { ... } after 'regex', found 'action'"});
    CHECK(errors_of(d + "match ! from auth ! action d\n") ==
          Errors{"test.conf:2:19: '!' cannot be used before 'action'"});
}
