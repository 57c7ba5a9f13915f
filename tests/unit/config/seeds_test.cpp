// Config parser against the smtpd.conf examples from the articles our users
// learned from (tests/config/seeds/, one file per config). Those that use a
// feature of a later issue must fail on it, by name, and on nothing before it.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

namespace {

// What a seed's first error must be.
struct Expected {
    std::string first;      // line:col: message after the file name; "" = parses
    bool unsupported;       // a "not supported yet" refusal; false: the seed is a broken config
};

const std::string kAccept =
    "'accept' is the pre-6.4 grammar, which is not supported yet; write 'action' and 'match' lines instead";

// Seed file -> its first error.
const std::map<std::string, Expected> kExpected = {
    // pki, tls-require, auth <t> and mask-source read; the pre-6.4 rules are not.
    {"000_outgoing_relay.conf", {"10:1: " + kAccept, true}},
    // As printed in the article this file is broken for OpenSMTPD too: `inet4`
    // is a keyword, not an address, and the pkis have no certificate.
    {"001_listing1.conf",
     {"5:11: expected an address, interface, hostname or 'socket' after 'listen on', found 'inet4'", false}},
    {"001_assembled.conf", {"6:1: " + kAccept, true}},
    {"001_wildcard_domains.conf", {"4:1: " + kAccept, true}},
    // pki, tls, tls-require, auth <t> and `match auth` read; the lmtp action is not.
    {"002_lmtp_submission.conf", {"11:16: 'lmtp' is not supported yet", true}},
    // `tls` with no pki declared anywhere: there is no certificate to offer.
    {"003_macro_listen.conf",
     {"4:21: 'tls' needs a pki, and none is declared: declare one with 'pki NAME cert \"FILE\"' and 'pki NAME key "
      "\"FILE\"'",
      false}},
    {"003_reject_order.conf",
     {"2:1: 'reject' is the pre-6.4 grammar, which is not supported yet; write 'match ... reject' instead", true}},
    {"003_baddies.conf", {"3:1: " + kAccept, true}},
    {"003_first_config.conf", {"6:1: " + kAccept, true}},
    {"003_prism.conf", {"8:7: 'queue compression' is not supported yet", true}},
    {"004_ehouse.conf", {"4:7: 'queue compression' is not supported yet", true}},
    {"004_pki_queue.conf", {"4:7: 'queue compression' is not supported yet", true}},
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
                   "listen on egress port submission tls-require pki ehouse.io auth\n" + kRule);
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
