// The YAML reader: what it reads (every_option.yaml is every_option.conf),
// and each refusal with the exact `file:line:col: ...` a user sees: those of
// the document's shape (the reader's) and those of its meaning (the
// smtpd.conf parser's, pointing into the YAML).
#include <catch2/catch.hpp>

#include "canonical.hpp"
#include "config/printer.hpp"
#include "config/yaml_reader.hpp"

using namespace postern::config;
using postern::config::test::canonical;
using postern::config::test::source_path;

namespace {

std::vector<std::string> errors_of(const std::string& yaml) {
    std::vector<std::string> out;
    for (const Diagnostic& d : read_yaml_text(yaml, "test.yaml").errors) out.push_back(format(d));
    return out;
}

using Lines = std::vector<std::string>;

// An action and a rule, for documents that test something else.
const std::string kRule = "actions:\n  local: {method: mbox}\nmatches:\n  - {action: local}\n";

}  // namespace

TEST_CASE("yaml reader: every_option.yaml reads to the model of every_option.conf") {
    auto conf = parse_file(source_path("tests/config/yaml/every_option.conf"));
    auto yaml = parse_file(source_path("tests/config/yaml/every_option.yaml"));  // chosen by the extension
    REQUIRE(conf.errors.empty());
    for (const auto& e : yaml.errors) UNSCOPED_INFO(format(e));
    REQUIRE(yaml.errors.empty());
    CHECK(yaml.warnings.empty());
    CHECK(print_conf(canonical(*yaml.config)) == print_conf(canonical(*conf.config)));
    CHECK(canonical(*yaml.config) == canonical(*conf.config));
}

TEST_CASE("yaml reader: a small document, its defaults as in smtpd.conf") {
    auto r = read_yaml_text("listeners:\n  - listen-on: 127.0.0.1\n    port: 2525\n"
                            "actions:\n  local:\n    method: maildir\n    path: /var/mail/%{rcpt.user}\n"
                            "matches:\n  - {for: {domain: example.org}, action: local}\n",
                            "test.yaml");
    REQUIRE(r.errors.empty());
    const Config& c = *r.config;
    REQUIRE(c.listeners.size() == 2);  // the local socket is implied
    CHECK(c.listeners[0].on == "127.0.0.1");
    CHECK(c.listeners[0].port == 2525);
    CHECK(c.listeners[0].where.line == 2);
    CHECK(c.listeners[0].where.column == 5);
    CHECK(c.listeners[1].socket);
    REQUIRE(c.actions.size() == 1);
    CHECK(c.actions[0].path == "/var/mail/%{rcpt.user}");
    REQUIRE(c.rules.size() == 1);
    REQUIRE(c.rules[0].criteria.size() == 2);
    CHECK(c.rules[0].criteria[0].kind == Criterion::Kind::ForDomain);
    CHECK(c.rules[0].criteria[0].value == "example.org");
    CHECK(c.rules[0].criteria[1].kind == Criterion::Kind::FromLocal);  // implied
}

TEST_CASE("yaml reader: values are never keywords, macros or numbers unless the field wants one") {
    auto r = read_yaml_text("hostname: $host\nlisteners:\n  - {listen-on: lo, tag: 123}\n" + kRule +
                                "  - {for: {domain: action}, action: local}\n",
                            "test.yaml");
    REQUIRE(r.errors.empty());
    CHECK(r.config->hostname == "$host");
    CHECK(r.config->listeners[0].tag == "123");
    CHECK(r.config->rules[1].criteria[0].value == "action");
}

TEST_CASE("yaml reader: shape errors, each at its node") {
    CHECK(errors_of("listenrs: []\n") ==
          Lines{"test.yaml:1:1: unknown key 'listenrs' in the configuration; expected hostname, queue, "
                "control-socket, pidfile, plugin-path, mbox-path, smtp, mta, srs, bounce, metrics, tables, pki, ca, "
                "mda-wrappers, procs, filters, actions, listeners, matches, admd or scheduler"});
    CHECK(errors_of("listeners:\n  - listen-on: lo\n    prot: 25\n" + kRule) ==
          Lines{"test.yaml:3:5: unknown key 'prot' in a listener; expected listen-on, port, family, hostname, "
                "hostnames, tag, mask-src, tls, tls-require, smtps, verify, pki, ca, ciphers, protocols, auth, "
                "auth-optional, senders, masquerade, received-auth, no-dsn, proxy-v2 or filter"});
    CHECK(errors_of("actions:\n  local: {method: mbox, path: /x}\n") ==
          Lines{"test.yaml:2:25: unknown key 'path' in action 'local' (method mbox); expected method, alias, "
                "virtual, userbase, user, wrapper or ttl"});
    CHECK(errors_of("queue: {compresion: true}\n") ==
          Lines{"test.yaml:1:9: unknown key 'compresion' in 'queue'; expected path, ttl, compression or encryption"});
    CHECK(errors_of("hostname: a\nhostname: b\n") ==
          Lines{"test.yaml:2:1: key 'hostname' is given twice in the configuration (first at 1:1)"});
}

TEST_CASE("yaml reader: wrong types") {
    CHECK(errors_of("listeners: {listen-on: lo}\n" + kRule) ==
          Lines{"test.yaml:1:12: expected a list under 'listeners', found a mapping"});
    CHECK(errors_of("listeners:\n  - {listen-on: lo, port: [25]}\n" + kRule) ==
          Lines{"test.yaml:2:27: expected a value for 'port', found a list"});
    CHECK(errors_of("listeners:\n  - {listen-on: lo, mask-src: maybe}\n" + kRule) ==
          Lines{"test.yaml:2:31: expected true or false for 'mask-src' in a listener, found 'maybe'"});
    CHECK(errors_of("hello\n") == Lines{"test.yaml:1:1: expected a mapping for the configuration, found 'hello'"});
    CHECK(errors_of("actions:\n  r: {method: relay, tls: maybe}\nmatches:\n  - {action: r}\n") ==
          Lines{"test.yaml:2:27: expected true or false for 'tls' in the relay (or no-verify), found 'maybe'"});
    CHECK(errors_of("actions:\n  local: {method: mbox}\nmatches:\n  - {from: anywhere, action: local}\n") ==
          Lines{"test.yaml:4:12: expected any, local, socket, rdns, auth or a mapping for 'from', found 'anywhere'"});
}

TEST_CASE("yaml reader: missing and conflicting fields") {
    CHECK(errors_of("listeners:\n  - port: 25\n" + kRule) ==
          Lines{"test.yaml:2:5: a listener needs 'listen-on' (an address, an interface, a host name or socket)"});
    CHECK(errors_of("actions:\n  local: {path: /x}\n") ==
          Lines{"test.yaml:2:10: action 'local' needs 'method' (mbox, maildir, mda, lmtp, forward-only, "
                "expand-only or relay)"});
    CHECK(errors_of("actions:\n  p: {method: mda}\n") ==
          Lines{"test.yaml:2:6: action 'p' (method mda) needs 'command'"});
    CHECK(errors_of("actions:\n  local: {method: mbox}\nmatches:\n  - from: any\n") ==
          Lines{"test.yaml:4:5: a match needs 'action: NAME' or 'reject: true'"});
    CHECK(errors_of("actions:\n  local: {method: mbox}\nmatches:\n  - {reject: true, action: local}\n") ==
          Lines{"test.yaml:4:6: 'reject' cannot be used together with 'action'"});
    CHECK(errors_of(
              "actions:\n  local: {method: mbox}\nmatches:\n  - {from: {src: 1.2.3.4, rdns: x}, action: local}\n") ==
          Lines{"test.yaml:4:12: 'from' needs one of src, rdns, auth or mail-from"});
    CHECK(errors_of("actions:\n  local: {method: mbox}\nmatches:\n"
                    "  - {for: {domain: {table: a, value: b}}, action: local}\n") ==
          Lines{"test.yaml:4:31: 'value' cannot be used together with 'table' in 'domain'"});
    CHECK(errors_of("filters:\n  f: {match: {rdns: true}}\n") ==
          Lines{"test.yaml:2:6: filter 'f' needs one of proc, proc-exec, chain or phase"});
    CHECK(errors_of("filters:\n  f: {phase: connect, match: {rdns: true, fcrdns: true}, junk: true}\n") ==
          Lines{"test.yaml:2:43: a built-in filter tests one condition, and 'fcrdns' would be a second one: put one "
                "filter per condition in a chain"});
    CHECK(errors_of("actions:\n  local: {method: mbox}\n") ==
          Lines{"test.yaml:1:1: no match: nothing would ever be accepted; add at least one entry under 'matches'"});
    CHECK(errors_of("") ==
          Lines{"test.yaml:1:1: no match: nothing would ever be accepted; add at least one entry under 'matches'"});
}

TEST_CASE("yaml reader: undefined names, as the smtpd.conf parser says them, at the YAML") {
    CHECK(errors_of("actions:\n  local: {method: mbox}\nmatches:\n  - {from: any, for: any, action: lcoal}\n") ==
          Lines{"test.yaml:4:35: unknown action 'lcoal': declare it with 'action lcoal ...' before this line"});
    CHECK(errors_of("actions:\n  local: {method: mbox, alias: nope}\nmatches:\n  - {action: local}\n") ==
          Lines{"test.yaml:2:32: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of("listeners:\n  - {listen-on: lo, tls: true, pki: mx}\n" + kRule) ==
          Lines{"test.yaml:2:37: unknown pki 'mx': declare it with 'pki mx cert \"FILE\"' and 'pki mx key \"FILE\"' "
                "before this line"});
    CHECK(errors_of("listeners:\n  - {listen-on: lo, filter: nope}\n" + kRule) ==
          Lines{"test.yaml:2:29: filter 'nope' is not declared: declare it with 'filter nope ...' before this line"});
    CHECK(errors_of("pki:\n  mx: {cert: /c}\n" + kRule) ==
          Lines{"test.yaml:2:3: pki 'mx' has no key: add 'pki mx key \"FILE\"'"});
}

TEST_CASE("yaml reader: the values' checks are the smtpd.conf parser's") {
    CHECK(errors_of("listeners:\n  - {listen-on: lo, port: 70000}\n" + kRule) ==
          Lines{"test.yaml:2:27: port 70000 is out of range (1-65535)"});
    CHECK(errors_of("listeners:\n  - {listen-on: lo, auth: true}\n" + kRule) ==
          Lines{"test.yaml:2:21: 'auth' needs 'tls', 'tls-require' or 'smtps' on the same listener: passwords are "
                "never accepted in plaintext"});
    CHECK(errors_of("pki:\n  mx: {cert: /c, key: /k}\nlisteners:\n  - {listen-on: lo, tls: true, verify: true}\n" +
                    kRule) == Lines{"test.yaml:4:32: 'verify' must follow 'tls-require' or 'smtps', as in 'tls-require "
                                    "verify'"});
    CHECK(errors_of("actions:\n  local: {method: maildir, path: \"~/%{nope}\"}\nmatches:\n  - {action: local}\n") ==
          Lines{"test.yaml:2:34: expected a format name (sender, sender.user, sender.domain, rcpt, rcpt.user, "
                "rcpt.domain, dest, dest.user, dest.domain, user.username, user.directory or mbox.from) after '%{', "
                "found 'nope'"});
    CHECK(errors_of("tables:\n  t: []\n" + kRule) ==
          Lines{"test.yaml:2:6: empty table: expected at least one entry inside { }"});
}

TEST_CASE("yaml reader: invalid YAML, -D, and a document too large") {
    CHECK(errors_of("listeners:\n  - {listen-on: lo\nactions: x\n") ==
          Lines{"test.yaml:3:8: invalid YAML: end of map flow not found"});
    auto r = read_yaml_text(kRule, "test.yaml", Macros{{"x", "1"}});
    REQUIRE(r.errors.empty());
    REQUIRE(r.warnings.size() == 1);
    CHECK(format(r.warnings[0]) == "test.yaml:1:1: -D has no effect on a YAML configuration: it has no macros "
                                   "(use YAML anchors, or your tool's variables)");
    // Aliases let a small document name one big list many times over: 1000
    // tables each naming the same 1000 entries would be 2 million tokens.
    std::string big = "tables:\n  t0: &l [";
    for (int i = 0; i < 1000; ++i) big += (i ? ", e" : "e") + std::to_string(i);
    big += "]\n";
    for (int i = 1; i < 1000; ++i) big += "  t" + std::to_string(i) + ": *l\n";
    CHECK(errors_of(big + kRule) == Lines{"test.yaml:1:1: the document is too large (more than 1000000 values)"});
}

TEST_CASE("yaml reader: files: chosen by the extension, unreadable named") {
    CHECK(is_yaml_name("/etc/postern/postern.yaml"));
    CHECK(is_yaml_name("a.yml"));
    CHECK_FALSE(is_yaml_name("smtpd.conf"));
    CHECK_FALSE(is_yaml_name(".yaml"));
    auto r = parse_file("/nonexistent/postern.yaml");
    REQUIRE(r.errors.size() == 1);
    CHECK(format(r.errors[0]) == "/nonexistent/postern.yaml:0:0: cannot read config file: No such file or directory");
}

TEST_CASE("yaml reader: anchors, x- keys to hold them, and merge keys refused") {
    auto r = read_yaml_text("x-maildir: &maildir {method: maildir, path: \"/var/mail/%{rcpt.user}\"}\n"
                            "actions:\n  a: *maildir\n  b: *maildir\n"
                            "matches:\n  - {for: any, action: a}\n  - {action: b}\n",
                            "test.yaml");
    REQUIRE(r.errors.empty());
    REQUIRE(r.config->actions.size() == 2);
    CHECK(r.config->actions[1].name == "b");
    CHECK(r.config->actions[1].path == "/var/mail/%{rcpt.user}");
    CHECK(errors_of("x-common: &c {method: mbox}\nactions:\n  local:\n    <<: *c\n    user: x\n") ==
          Lines{"test.yaml:4:5: merge keys ('<<') are not supported: write the keys out, or anchor a whole mapping "
                "and name it with an alias"});
    CHECK(errors_of("listeners:\n  - listen-on: lo\n    x-note: only at the top\n" + kRule).size() == 1);
    // yaml-cpp accepts an alias inside its own anchor: a structure without end.
    CHECK(errors_of("x-a: &a [*a]\nmatches: *a\n") ==
          Lines{"test.yaml:1:6: nested more than 32 levels deep (is an alias inside its own anchor?)"});
    CHECK(errors_of("x-a: &a {k: *a}\nmatches: [*a]\n").size() == 1);
}

TEST_CASE("yaml reader: what the smtpd.conf lexer refuses in a string, the YAML reader refuses too") {
    CHECK(errors_of("hostname: \"mx.example.org\\r\\nX-Injected: yes\"\n" + kRule) ==
          Lines{"test.yaml:1:11: unexpected control character (byte 0x0d) in a value"});
    CHECK(errors_of("tables:\n  t: [\"a\\u0000b\"]\n" + kRule).size() == 1);
    CHECK(errors_of("hostname: " + std::string(8193, 'a') + "\n" + kRule) ==
          Lines{"test.yaml:1:11: value is longer than 8192 bytes"});
    auto r = read_yaml_text("hostname: \"a\\tb\"\n" + kRule, "test.yaml");  // a tab is fine, as in smtpd.conf
    REQUIRE(r.errors.empty());
    CHECK(r.config->hostname == "a\tb");
}

TEST_CASE("yaml reader: queue compression and encryption, with or without the key") {
    auto r = read_yaml_text("queue: {compression: true, encryption: true}\n" + kRule, "test.yaml");
    REQUIRE(r.errors.empty());
    CHECK(r.config->queue_compression);
    CHECK(r.config->queue_encryption);
    CHECK(r.config->queue_encryption_key.empty());
    r = read_yaml_text("queue: {compression: false, encryption: 0123456789abcdef0123456789abcdef}\n" + kRule,
                       "test.yaml");
    REQUIRE(r.errors.empty());
    CHECK_FALSE(r.config->queue_compression);
    CHECK(r.config->queue_encryption_key == "0123456789abcdef0123456789abcdef");
    CHECK(errors_of("queue: {encryption: tooshort}\n" + kRule) ==
          Lines{"test.yaml:1:21: the queue encryption key must be 32 characters, as 'openssl rand -hex 16' prints; "
                "this one has 8"});
}
