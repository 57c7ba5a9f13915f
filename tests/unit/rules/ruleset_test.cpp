// Rule evaluation: which match line decides, per recipient, first match wins.
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "rules/ruleset.hpp"

using namespace postern;
using Kind = rules::Decision::Kind;

namespace {

struct Fixture : test::RulesFixture {
    explicit Fixture(const std::string& text) : RulesFixture(text, {"localhost", "mx.example.org"}) {}

    rules::Decision eval(const std::string& rcpt, bool local = false, std::string ip = "203.0.113.5",
                         std::string sender = "someone@example.com", std::string tag = "") {
        rules::Subject s;
        s.from_local = local;
        s.client_ip = ip;
        s.sender = sender;
        s.rcpt = rcpt;
        s.rcpt_domain = rcpt.substr(rcpt.find('@') + 1);
        s.tag = tag;
        return rules->evaluate(s);
    }
    std::string action_of(const rules::Decision& d) { return d.action ? d.action->name : "-"; }
};

const char* kConfig = R"(
table trusted { 192.0.2.0/24, "[2001:db8::]/32" }
table domains { example.org, "*.example.net" }
table spammers { "@spam.test" }
action "local" maildir
action "virt" maildir "/var/vmail/%{rcpt.domain}"
action "tagged" mbox
match tag DKIM for any action "tagged"
match from any mail-from <spammers> for any reject
match from any for domain <domains> action "virt"
match from src <trusted> for any action "local"
match !from local for rcpt-to "postmaster@elsewhere.test" action "local"
match for local action "local"
)";

}  // namespace

TEST_CASE("rules: a truth table of sources, domains, senders and tags") {
    Fixture f(kConfig);
    struct Row {
        std::string rcpt;
        bool local;
        std::string ip, sender, tag;
        Kind kind;
        std::string action;
    };
    std::vector<Row> rows = {
        // for local (implied from local): local clients only
        {"joe@localhost", true, "127.0.0.1", "a@b.c", "", Kind::Deliver, "local"},
        {"joe@localhost", false, "203.0.113.5", "a@b.c", "", Kind::NoMatch, "-"},
        {"joe@mx.example.org", true, "127.0.0.1", "a@b.c", "", Kind::Deliver, "local"},
        // for domain <domains> from any
        {"joe@example.org", false, "203.0.113.5", "a@b.c", "", Kind::Deliver, "virt"},
        {"joe@mail.example.net", false, "203.0.113.5", "a@b.c", "", Kind::Deliver, "virt"},
        {"joe@example.net", false, "203.0.113.5", "a@b.c", "", Kind::NoMatch, "-"},
        // mail-from <spammers> reject comes first
        {"joe@example.org", false, "203.0.113.5", "x@spam.test", "", Kind::Reject, "-"},
        // from src <trusted> for any: relaying for a trusted network only
        {"far@away.test", false, "192.0.2.77", "a@b.c", "", Kind::Deliver, "local"},
        {"far@away.test", false, "198.51.100.1", "a@b.c", "", Kind::NoMatch, "-"},
        {"far@away.test", false, "2001:db8::9", "a@b.c", "", Kind::Deliver, "local"},
        // negated source: !from local
        {"postmaster@elsewhere.test", false, "198.51.100.1", "a@b.c", "", Kind::Deliver, "local"},
        {"postmaster@elsewhere.test", true, "127.0.0.1", "a@b.c", "", Kind::NoMatch, "-"},
        // tag (implied from local)
        {"far@away.test", true, "127.0.0.1", "a@b.c", "DKIM", Kind::Deliver, "tagged"},
        {"far@away.test", false, "198.51.100.1", "a@b.c", "DKIM", Kind::NoMatch, "-"},
    };
    for (const auto& r : rows) {
        INFO(r.rcpt << " local=" << r.local << " ip=" << r.ip << " sender=" << r.sender << " tag=" << r.tag);
        auto d = f.eval(r.rcpt, r.local, r.ip, r.sender, r.tag);
        CHECK(d.kind == r.kind);
        CHECK(f.action_of(d) == r.action);
    }
}

TEST_CASE("rules: regex criteria") {
    Fixture f(R"(
action "a" maildir
match from any for rcpt-to regex "^list-.*@example[.]org$" action "a"
)");
    CHECK(f.eval("list-dev@example.org").kind == Kind::Deliver);
    CHECK(f.eval("dev@example.org").kind == Kind::NoMatch);
}

TEST_CASE("rules: a table that cannot be opened is a temporary failure, never a match") {
    config::Config c;
    c.rules.push_back({});
    config::Criterion cr;
    cr.kind = config::Criterion::Kind::ForDomain;
    cr.table = "missing";
    c.rules.back().criteria.push_back(cr);
    c.rules.back().reject = true;
    table::Registry tables;
    rules::Ruleset rs(c, tables, {"localhost"});
    rules::Subject s;
    s.rcpt = "a@example.org";
    s.rcpt_domain = "example.org";
    auto d = rs.evaluate(s);
    CHECK(d.kind == Kind::TempFail);
    CHECK(d.error == "table 'missing' is not open");
}
