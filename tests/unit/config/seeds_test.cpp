// Config parser against the smtpd.conf examples from the articles our users
// learned from (tests/config/seeds/, one file per config). Those that use a
// feature of a later issue must fail on it, by name, and on nothing before it;
// the others parse, or fail on a mistake printed in the article.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

namespace {

// What a seed's first error must be.
struct Expected {
    std::string first;  // line:col: message after the file name; "" = parses
    bool unsupported;   // a "not supported yet" refusal; false: the seed is a broken config
};

// Seed file -> its first error. The pre-6.4 rules are translated (with a
// warning each); what is left is unsupported or the article's own mistake.
const std::map<std::string, Expected> kExpected = {
    // The article leaves a placeholder, <INCOMING-IP-OR-NETWORK>, for the reader
    // to declare: as printed, the table does not exist (OpenSMTPD refuses it too).
    {"000_outgoing_relay.conf",
     {"11:21: unknown table 'INCOMING-IP-OR-NETWORK': declare it with 'table INCOMING-IP-OR-NETWORK ...' before "
      "this line",
      false}},
    // As printed in the article this file is broken for OpenSMTPD too: `inet4`
    // is a keyword, not an address, and the pkis have no certificate.
    {"001_listing1.conf",
     {"5:11: expected an address, interface, hostname or 'socket' after 'listen on', found 'inet4'", false}},
    {"001_assembled.conf", {"", false}},
    {"001_wildcard_domains.conf", {"", false}},
    {"002_lmtp_submission.conf", {"", false}},
    // `accept ... for domain D` with no delivery clause: the expand-only method.
    {"003_baddies.conf", {"", false}},
    {"003_first_config.conf", {"", false}},
    // `tls` with no pki declared anywhere: there is no certificate to offer.
    {"003_macro_listen.conf",
     {"4:21: 'tls' needs a pki, and none is declared: declare one with 'pki NAME cert \"FILE\"' and 'pki NAME key "
      "\"FILE\"'",
      false}},
    {"003_reject_order.conf", {"", false}},
    // `deliver to maildmda` is a typo in the slides (the `maildir`/`mda`
    // choice merged).
    {"003_prism.conf", {"27:2: expected mbox, maildir, mda or lmtp after 'deliver to', found 'maildmda'", false}},
    // The article's placeholder for the key, which it says to replace with
    // the output of `openssl rand -hex 16` (OpenSMTPD refuses it too).
    {"004_ehouse.conf",
     {"5:22: the queue encryption key must be 32 characters, as 'openssl rand -hex 16' prints; this one has 11",
      false}},
    {"004_pki_queue.conf",
     {"5:22: the queue encryption key must be 32 characters, as 'openssl rand -hex 16' prints; this one has 11",
      false}},
};

}  // namespace

TEST_CASE("seeds: every seed config fails first on the unsupported feature it uses, or on its own mistake") {
    const std::filesystem::path dir = source_path("tests/config/seeds");
    int seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".conf") continue;
        const std::string name = entry.path().filename().string();
        INFO("seed " << name);
        auto it = kExpected.find(name);
        REQUIRE(it != kExpected.end());  // a new seed needs its expectation here
        ++seen;
        auto r = parse_file(entry.path().string());
        if (it->second.first.empty()) {
            CHECK(r.errors.empty());
            CHECK(r.config);
            continue;
        }
        REQUIRE_FALSE(r.errors.empty());
        CHECK(format(r.errors.front()) == entry.path().string() + ":" + it->second.first);
        CHECK_FALSE(r.config);
        CHECK((r.errors.front().message.find("is not supported yet") != std::string::npos) == it->second.unsupported);
    }
    CHECK(seen == static_cast<int>(kExpected.size()));
}

TEST_CASE("seeds: the pki lines of the seeds are read, old 'certificate' spelling included") {
    // 004_ehouse.conf's pki and listen lines, without the parts not read yet.
    auto r = parse("pki ehouse.io certificate \"/etc/ssl/certs/mail.crt\"\n"
                   "pki ehouse.io key \"/etc/ssl/private/mail.key\"\n"
                   "listen on localhost\n"
                   "listen on egress port smtp tls pki ehouse.io auth-optional\n"
                   "listen on egress port submission tls-require pki ehouse.io auth\n" +
                   kRule);
    REQUIRE(r.errors.empty());
    CHECK(formatted(r.warnings) ==
          std::vector<std::string>{"test.conf:1:15: 'certificate' is the pre-6.4 spelling of 'cert'"});
    REQUIRE(r.config->pkis.size() == 1);
    CHECK(r.config->pkis[0].cert == "/etc/ssl/certs/mail.crt");
    CHECK(r.config->pkis[0].key == "/etc/ssl/private/mail.key");
    const Listener& sub = r.config->listeners[2];
    CHECK(sub.port == 587);
    CHECK(sub.tls_require);
    CHECK(sub.auth);
    CHECK(sub.pkis == std::vector<std::string>{"ehouse.io"});
    CHECK(r.config->listeners[1].auth_optional);
}

TEST_CASE("seeds: the macro seed expands its macro before failing on tls without a pki") {
    // 003_macro_listen.conf's second line is fine on its own: prove it parses.
    auto r = parse("lan_addr = \"192.168.0.1\"\nlisten on $lan_addr\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->listeners[0].on == "192.168.0.1");
    // Its third line parses once a pki exists; the only one declared is used.
    r = parse("lan_addr = \"192.168.0.1\"\npki mx cert \"/c\" key \"/k\"\nlisten on $lan_addr tls auth\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->listeners[0].pkis == std::vector<std::string>{"mx"});
    CHECK(r.config->listeners[0].auth);
}

namespace {

// A seed's text without the lines numbered in `drop` (1-based): to see what
// it holds past its first refusal. Blank lines keep the numbering.
std::string seed_without(const std::string& name, std::initializer_list<int> drop) {
    std::ifstream in(source_path("tests/config/seeds/" + name));
    std::string line, out;
    for (int n = 1; std::getline(in, line); ++n)
        out += (std::find(drop.begin(), drop.end(), n) != drop.end() ? std::string() : line) + "\n";
    return out;
}

}  // namespace

TEST_CASE("seeds: past their queue lines, the 003/004 seeds fail only on the article's own typo or not at all") {
    // 003_prism.conf: `deliver to maildmda` is a typo in the slides (the
    // `maildir`/`mda` choice merged); its two relay rules translate.
    auto r = parse(seed_without("003_prism.conf", {8, 9}));
    CHECK(formatted(r.errors) ==
          std::vector<std::string>{"test.conf:27:2: expected mbox, maildir, mda or lmtp after 'deliver to', found "
                                   "'maildmda'"});
    // 004_ehouse.conf parses once its queue lines are gone.
    auto ehouse = parse(seed_without("004_ehouse.conf", {4, 5}));
    REQUIRE(ehouse.errors.empty());
    REQUIRE(ehouse.config->actions.size() == 2);
    CHECK(ehouse.config->actions[0].method == "maildir");
    CHECK(ehouse.config->actions[0].alias_table == "aliases");
    CHECK(ehouse.config->actions[1].method == "relay");
    // `accept for any relay` (from local implied) is also the rule for
    // authenticated users, as the article says: before 6.4 they counted as local.
    REQUIRE(ehouse.config->rules.size() == 3);
    CHECK(ehouse.config->rules[1].action == "relay");
    CHECK(ehouse.config->rules[2].action == "relay");
    REQUIRE(ehouse.config->rules[2].criteria.size() == 3);
    CHECK(ehouse.config->rules[2].criteria[0].kind == Criterion::Kind::Auth);
    CHECK(ehouse.config->rules[2].criteria[1].kind == Criterion::Kind::FromAny);
    CHECK(ehouse.config->rules[2].criteria[2].kind == Criterion::Kind::ForAny);
}

TEST_CASE("seeds: 002's lmtp and relay actions are read") {
    auto r = parse_file(source_path("tests/config/seeds/002_lmtp_submission.conf"));
    REQUIRE(r.errors.empty());
    const Action* receive = r.config->find_action("receive");
    REQUIRE(receive);
    CHECK(receive->method == "lmtp");
    CHECK(receive->path == "/var/run/lmtp");
    CHECK(receive->lmtp_rcpt_to);
    CHECK(receive->virtual_table == "virtuals");
    const Action* send = r.config->find_action("send");
    REQUIRE(send);
    CHECK(send->method == "relay");
    CHECK(send->relay.pki == "example_com");
    CHECK(r.warnings.empty());
}
