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

// Seed file -> its first error (line:col: message after the file name); "" = parses.
const std::map<std::string, std::string> kExpected = {
    {"000_outgoing_relay.conf", "2:1: 'pki' is not supported yet"},
    {"001_listing1.conf", "2:1: 'pki' is not supported yet"},
    {"001_assembled.conf", "6:1: 'accept' is the pre-6.4 grammar, which is not supported yet; write 'action' "
                           "and 'match' lines instead"},
    {"001_wildcard_domains.conf", "4:1: 'accept' is the pre-6.4 grammar, which is not supported yet; write "
                                  "'action' and 'match' lines instead"},
    {"002_lmtp_submission.conf", "5:1: 'pki' is not supported yet"},
    {"003_macro_listen.conf", "4:21: 'tls' is not supported yet"},
    {"003_reject_order.conf", "2:1: 'reject' is the pre-6.4 grammar, which is not supported yet; write "
                              "'match ... reject' instead"},
    {"003_baddies.conf", "3:1: 'accept' is the pre-6.4 grammar, which is not supported yet; write 'action' "
                         "and 'match' lines instead"},
    {"003_first_config.conf", "6:1: 'accept' is the pre-6.4 grammar, which is not supported yet; write "
                              "'action' and 'match' lines instead"},
    {"003_prism.conf", "2:1: 'pki' is not supported yet"},
    {"004_ehouse.conf", "2:1: 'pki' is not supported yet"},
    {"004_pki_queue.conf", "2:1: 'pki' is not supported yet"},
};

}  // namespace

TEST_CASE("seeds: every seed config fails first on the unsupported feature it uses") {
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
        if (it->second.empty()) {
            CHECK(r.errors.empty());
            CHECK(r.config);
            continue;
        }
        REQUIRE_FALSE(r.errors.empty());
        CHECK(format(r.errors.front()) == entry.path().string() + ":" + it->second);
        CHECK_FALSE(r.config);
        CHECK(r.errors.front().message.find("is not supported yet") != std::string::npos);
    }
    CHECK(seen == static_cast<int>(kExpected.size()));
}

TEST_CASE("seeds: the macro seed expands its macro before failing on tls") {
    // 003_macro_listen.conf's second line is fine on its own: prove it parses.
    auto r = parse("lan_addr = \"192.168.0.1\"\nlisten on $lan_addr\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->listeners[0].on == "192.168.0.1");
}
