// The pre-6.4 grammar: who an old rule's source takes. Before 6.4 an
// authenticated session counted as "local", whatever its address; each old
// source keeps the sessions it took, with the `auth` lines that needs.
#include "legacy_helpers.hpp"

using namespace postern::config;
using namespace postern::config::legacy_test;

// Before 6.4 a rule's source was tested with the key "local" for an
// authenticated session (OpenSMTPD 6.0 ruleset.c: ruleset_check_source), and
// a rule without `from` was `from local`: <localhost> and <anyhost> held that
// key, a table of addresses did not. Each old source, with and without
// `authenticated`, as the match lines that take the same sessions.
TEST_CASE("legacy: an authenticated session counted as local: each old source keeps who it took") {
    struct Case {
        std::string old_criteria;
        std::vector<std::string> lines;  // the current match lines' criteria; empty: the rule is left out
        bool noted;                      // the warning explains the `auth` it added
    };
    const Case cases[] = {
        // `local`, written or implied: the address test, or any authenticated session.
        {"from local for any", {"from local for any", "auth from any for any"}, true},
        {"for any", {"for any", "auth from any for any"}, true},
        {"tagged T sender <u> for any",
         {"tag T mail-from <u> for any", "auth from any tag T mail-from <u> for any"},
         true},
        {"tagged T from local for any", {"tag T from local for any", "tag T auth from any for any"}, true},
        // `any` held "local" too: nothing to add.
        {"from any for any", {"from any for any"}, false},
        {"from ! any for any", {"!from any for any"}, false},
        // A table of addresses: no authenticated session; negated, all of them.
        {"from source <src> for any", {"!auth from src <src> for any"}, true},
        {"from source 192.0.2.0/24 for any", {"!auth from src 192.0.2.0/24 for any"}, true},
        {"from <src> for any", {"!auth from src <src> for any"}, true},
        {"from ! source <src> for any", {"!from src <src> for any", "auth from any for any"}, true},
        // The built-in tables that listed "local": <localhost> as `local`, <anyhost> as `any`.
        {"from source <localhost> for any", {"from src <localhost> for any", "auth from any for any"}, true},
        {"from ! source <localhost> for any", {"!auth !from src <localhost> for any"}, true},
        {"from source <anyhost> for any", {"from src <anyhost> for any"}, false},
        // `! local`: neither a local address nor an authenticated session.
        {"from ! local for any", {"!auth !from local for any"}, true},
        // `authenticated`: authenticated sessions only, each tested as "local".
        {"authenticated for any", {"auth from any for any"}, true},
        {"authenticated from local for any", {"auth from any for any"}, true},
        {"authenticated from any for any", {"auth from any for any"}, false},
        {"authenticated from ! source <src> for any", {"auth from any for any"}, true},
        {"authenticated from source <src> for any", {}, false},
        {"authenticated from ! local for any", {}, false},
        {"authenticated from ! any for any", {}, false},
    };
    for (const Case& k : cases) {
        INFO(k.old_criteria);
        for (const std::string& decision : {std::string("relay"), std::string("deliver to mbox"), std::string()}) {
            INFO(decision);
            const bool reject = decision.empty();
            const std::string method = decision == "relay" ? "relay" : "mbox";
            Read r = read(kDecls + (reject ? "reject " : "accept ") + k.old_criteria + " " + decision + "\n");
            std::vector<std::string> want;
            if (!k.lines.empty() && !reject) want.push_back("action \"" + method + "\" " + method);
            if (k.noted) want.push_back(kNote);
            for (const std::string& l : k.lines)
                want.push_back("match " + l + (reject ? " reject" : " action \"" + method + "\""));
            if (k.lines.empty()) {
                CHECK(r.warnings ==
                      Errors{"test.conf:8:1: pre-6.4 grammar; this rule never matched and is left out: it takes only "
                             "authenticated sessions, whose source was \"local\" before 6.4, and its source excludes "
                             "\"local\""});
                CHECK(r.config.rules.empty());
                CHECK(r.config.actions.empty());
                continue;
            }
            CHECK(r.warnings == Errors{warning(8, want)});
            REQUIRE(r.config.rules.size() == k.lines.size());
            for (const Rule& rule : r.config.rules) {
                CHECK(rule.reject == reject);
                CHECK(rule.action == (reject ? "" : method));
                CHECK(rule.where.line == 8);
                CHECK(rule.where.column == 1);
            }
        }
    }
}

TEST_CASE("legacy: the authenticated line's model: auth, from any, then the old rule's other criteria") {
    Read r = one("accept tagged ! T from local sender ! <u> for domain <u> recipient <u> relay", 2);
    CHECK(shape(r.config, 0) == std::vector<std::pair<Kind, bool>>{{Kind::Tag, true},
                                                                   {Kind::FromLocal, false},
                                                                   {Kind::MailFrom, true},
                                                                   {Kind::ForDomain, false},
                                                                   {Kind::RcptTo, false}});
    CHECK(shape(r.config, 1) == std::vector<std::pair<Kind, bool>>{{Kind::Tag, true},
                                                                   {Kind::Auth, false},
                                                                   {Kind::FromAny, false},
                                                                   {Kind::MailFrom, true},
                                                                   {Kind::ForDomain, false},
                                                                   {Kind::RcptTo, false}});
    CHECK(r.config.rules[1].criteria[3].table == "u");
    CHECK(r.config.rules[1].criteria[4].table == "u");
    // `!auth` for a source table: the socket (the local enqueuer, key "local" too) and
    // authenticated sessions are not in it.
    r = one("accept from source <src> for any relay");
    CHECK(shape(r.config, 0) ==
          std::vector<std::pair<Kind, bool>>{{Kind::Auth, true}, {Kind::FromSrc, false}, {Kind::ForAny, false}});
    CHECK(r.config.rules[0].criteria[0].value.empty());
    CHECK(r.config.rules[0].criteria[0].table.empty());
}

TEST_CASE("legacy: seed 000's outgoing server relays for authenticated users, from any address") {
    // tests/config/seeds/000_outgoing_relay.conf's rules, its placeholder table declared.
    Read r = read("table INCOMING-IP-OR-NETWORK { 192.0.2.0/24 }\n"
                  "accept from local for any relay\n"
                  "accept from source <INCOMING-IP-OR-NETWORK> for any relay\n");
    CHECK(r.warnings ==
          Errors{warning(2, {"action \"relay\" relay", kNote, "match from local for any action \"relay\"",
                             "match auth from any for any action \"relay\""}),
                 warning(3, {kNote, "match !auth from src <INCOMING-IP-OR-NETWORK> for any action \"relay\""})});
    REQUIRE(r.config.actions.size() == 1);
    REQUIRE(r.config.rules.size() == 3);
    for (const Rule& rule : r.config.rules) CHECK(rule.action == "relay");
    CHECK(shape(r.config, 1) ==
          std::vector<std::pair<Kind, bool>>{{Kind::Auth, false}, {Kind::FromAny, false}, {Kind::ForAny, false}});
}
