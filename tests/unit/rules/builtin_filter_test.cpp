// Built-in filter conditions (rules/builtin_filter): a truth table per
// condition kind. Each condition is declared twice, as written and with `!`,
// and every row checks both: the negation flips the verdict, whatever the
// condition (a client with no reverse name included: `rdns` never holds for
// it, so `! rdns` always does).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fixture.hpp"
#include "rules/builtin_filter.hpp"

using namespace postern;
using Verdict = rules::Ruleset::Verdict;

namespace {

// One built-in filter: its name, its phase and its condition as written.
struct Declared {
    std::string name;
    std::string phase;
    std::string condition;
};

const std::vector<Declared> kDeclared = {
    {"fcrdns", "connect", "fcrdns"},
    {"rdns", "connect", "rdns"},
    {"rdns-table", "connect", "rdns <rdnsok>"},
    {"rdns-regex", "connect", R"(rdns regex { "^mail[0-9]+[.]" })"},
    {"src", "connect", "src <nets>"},
    {"helo", "ehlo", "helo <helos>"},
    {"helo-later", "mail-from", "helo <helos>"},
    {"auth", "auth", "auth"},
    {"auth-table", "auth", "auth <admins>"},
    {"auth-regex", "mail-from", R"(auth regex { "^svc-" })"},
    {"mail-from", "mail-from", "mail-from <senders>"},
    {"mail-from-at-rcpt", "rcpt-to", "mail-from <senders>"},
    {"mail-from-regex", "mail-from", "mail-from regex <bounces>"},
    {"rcpt-to", "rcpt-to", R"(rcpt-to { "postmaster@example.org", "@closed.test" })"},
};

std::string config_text() {
    std::string text = R"(
table rdnsok { "*.example.org" }
table nets { "192.0.2.0/24", "2001:db8::/32", "198.51.100.7" }
table helos { "*.example.org", "localhost" }
table admins { alice, "Bob" }
table senders { "spam@example.org", "@spam.test", "bulk" }
table bounces { "^bounce-[a-z]+@lists[.]", "^news@" }
action "in" mbox
match from any for local action "in"
)";
    for (const auto& d : kDeclared) {
        text += "filter \"" + d.name + "\" phase " + d.phase + " match " + d.condition + " reject \"550 no\"\n";
        text += "filter \"not-" + d.name + "\" phase " + d.phase + " match ! " + d.condition + " reject \"550 no\"\n";
    }
    return text;
}

const config::BuiltinFilter& builtin(const test::RulesFixture& f, const std::string& name) {
    const config::Filter* filter = f.config.find_filter(name);
    INFO("filter " << name);
    REQUIRE(filter);
    REQUIRE(filter->kind == config::Filter::Kind::Builtin);
    return filter->builtin;
}

// A session as the condition sees it, the phase's parameter, and whether the
// condition (without `!`) holds.
struct Row {
    std::string filter;
    rules::Subject subject;
    std::string param;
    bool holds;
};

const std::string kIp = "203.0.113.5";

void check_rows(const test::RulesFixture& f, const std::vector<Row>& rows) {
    for (const auto& r : rows) {
        INFO("filter=" << r.filter << " ip=" << r.subject.client_ip << " rdns=" << r.subject.rdns
                       << " fcrdns=" << r.subject.fcrdns << " helo=" << r.subject.helo << " sender=" << r.subject.sender
                       << " auth=" << r.subject.authenticated << ":" << r.subject.auth_user << " param=" << r.param);
        std::string error;
        CHECK(rules::test_builtin(*f.rules, builtin(f, r.filter), r.subject, r.param, &error) ==
              (r.holds ? Verdict::Yes : Verdict::No));
        CHECK(rules::test_builtin(*f.rules, builtin(f, "not-" + r.filter), r.subject, r.param, &error) ==
              (r.holds ? Verdict::No : Verdict::Yes));
        CHECK(error.empty());
    }
}

rules::Subject from(std::string ip, std::string rdns = "") {
    rules::Subject s;
    s.client_ip = std::move(ip);
    s.rdns = std::move(rdns);
    return s;
}

// The reverse name resolves back to the client's address.
rules::Subject confirmed(std::string ip, std::string rdns) {
    rules::Subject s = from(std::move(ip), std::move(rdns));
    s.fcrdns = true;
    return s;
}

}  // namespace

TEST_CASE("builtin filter: the parser fills the condition the rules test") {
    test::RulesFixture f(config_text());
    using K = config::FilterCondition::Kind;
    using C = config::Criterion::Kind;
    struct Expect {
        std::string name;
        K kind;
        bool regex;
        bool table;
        C criterion;
    };
    const std::vector<Expect> expected = {
        {"fcrdns", K::Fcrdns, false, false, C::FromRdns},  {"rdns", K::Rdns, false, false, C::FromRdns},
        {"rdns-table", K::Rdns, false, true, C::FromRdns}, {"rdns-regex", K::Rdns, true, true, C::FromRdns},
        {"src", K::Src, false, true, C::FromSrc},          {"helo", K::Helo, false, true, C::Helo},
        {"auth", K::Auth, false, false, C::Auth},          {"auth-table", K::Auth, false, true, C::Auth},
        {"auth-regex", K::Auth, true, true, C::Auth},      {"mail-from", K::MailFrom, false, true, C::MailFrom},
        {"rcpt-to", K::RcptTo, false, true, C::RcptTo},
    };
    for (const auto& e : expected) {
        INFO("filter " << e.name);
        const auto& plain = builtin(f, e.name);
        const auto& negated = builtin(f, "not-" + e.name);
        CHECK(plain.condition.kind == e.kind);
        CHECK_FALSE(plain.condition.negated);
        CHECK(negated.condition.negated);
        CHECK(plain.condition.regex == e.regex);
        CHECK(plain.condition.table.empty() != e.table);
        CHECK(plain.decision == config::BuiltinFilter::Decision::Reject);
        CHECK(plain.value == "550 no");
        const config::Criterion c = rules::builtin_criterion(plain.condition);
        if (e.kind != K::Fcrdns) CHECK(c.kind == e.criterion);  // fcrdns is the session's answer, no criterion
        CHECK(c.regex == e.regex);
        CHECK(c.table == plain.condition.table);
        // The criterion is tested without its negation: test_builtin applies it.
        CHECK_FALSE(rules::builtin_criterion(negated.condition).negated);
    }
    CHECK(builtin(f, "rdns-table").condition.table == "rdnsok");
    CHECK(builtin(f, "helo").phase == filter::Phase::Ehlo);
}

TEST_CASE("builtin filter: the phase's parameter is what the condition is about") {
    test::RulesFixture f(config_text());
    rules::Subject s = from(kIp, "mx.example.net");
    s.helo = "old.example.net";
    s.sender = "old@example.net";
    s.rcpt = "old-rcpt@example.net";

    auto at_ehlo = rules::builtin_subject(builtin(f, "helo"), s, "new.example.org");
    CHECK(at_ehlo.helo == "new.example.org");
    CHECK(at_ehlo.sender == "old@example.net");

    auto at_mail = rules::builtin_subject(builtin(f, "mail-from"), s, "new@example.org");
    CHECK(at_mail.sender == "new@example.org");
    CHECK(at_mail.helo == "old.example.net");
    CHECK(at_mail.rcpt == "old-rcpt@example.net");

    auto at_rcpt = rules::builtin_subject(builtin(f, "rcpt-to"), s, "new-rcpt@example.org");
    CHECK(at_rcpt.rcpt == "new-rcpt@example.org");
    CHECK(at_rcpt.sender == "old@example.net");

    // connect and auth have no parameter of their own for a condition.
    auto at_connect = rules::builtin_subject(builtin(f, "rdns"), s, "mx.example.net|203.0.113.5");
    CHECK(at_connect.helo == "old.example.net");
    CHECK(at_connect.sender == "old@example.net");
    CHECK(at_connect.rcpt == "old-rcpt@example.net");
    CHECK(at_connect.rdns == "mx.example.net");
}

TEST_CASE("builtin filter: fcrdns, and rdns alone, with a table and a regex table") {
    test::RulesFixture f(config_text());
    check_rows(f, {
                      // fcrdns: a reverse name that resolves back to the client.
                      {"fcrdns", confirmed(kIp, "mx.example.org"), "", true},
                      {"fcrdns", from(kIp, "mx.example.org"), "", false},
                      {"fcrdns", confirmed(kIp, ""), "", false},
                      {"fcrdns", from(kIp), "", false},
                      // bare rdns: a reverse name, confirmed or not.
                      {"rdns", from(kIp, "anything.test"), "", true},
                      {"rdns", confirmed(kIp, "anything.test"), "", true},
                      {"rdns", from(kIp), "", false},
                      // rdns <table>: a name in it (globs, case-insensitive).
                      {"rdns-table", from(kIp, "mx.example.org"), "", true},
                      {"rdns-table", from(kIp, "MX.Example.ORG"), "", true},
                      {"rdns-table", from(kIp, "mx.example.net"), "", false},
                      {"rdns-table", from(kIp, "example.org"), "", false},
                      // rdns regex: extended regular expressions.
                      {"rdns-regex", from(kIp, "mail7.sender.test"), "", true},
                      {"rdns-regex", from(kIp, "smtp.sender.test"), "", false},
                      {"rdns-regex", from(kIp, "mail.sender.test"), "", false},
                      // No reverse name holds nothing, whatever the table: so
                      // the negated conditions hold.
                      {"rdns-table", from(kIp), "", false},
                      {"rdns-regex", from(kIp), "", false},
                  });
}

TEST_CASE("builtin filter: src against a table of addresses and networks") {
    test::RulesFixture f(config_text());
    rules::Subject socket;
    socket.from_socket = true;
    socket.from_local = true;
    check_rows(f, {
                      {"src", from("192.0.2.77"), "", true},
                      {"src", from("192.0.2.0"), "", true},
                      {"src", from("192.0.3.1"), "", false},
                      {"src", from("198.51.100.7"), "", true},
                      {"src", from("198.51.100.8"), "", false},
                      {"src", from("2001:db8::25"), "", true},
                      {"src", from("2001:db9::25"), "", false},
                      // The local socket's source is "local", in none of these.
                      {"src", socket, "", false},
                  });
}

TEST_CASE("builtin filter: helo at ehlo tests the parameter, later the session's name") {
    test::RulesFixture f(config_text());
    rules::Subject named = from(kIp);
    named.helo = "mx.example.org";
    rules::Subject unnamed = from(kIp);
    check_rows(f, {
                      {"helo", unnamed, "mx.example.org", true},
                      {"helo", unnamed, "LOCALHOST", true},
                      {"helo", unnamed, "mx.example.net", false},
                      // The EHLO being filtered replaces an earlier name.
                      {"helo", named, "mx.example.net", false},
                      {"helo", from(kIp), "", false},
                      // At mail-from the parameter is the sender: the session's name counts.
                      {"helo-later", named, "joe@example.net", true},
                      {"helo-later", unnamed, "mx.example.org", false},
                  });
}

TEST_CASE("builtin filter: auth alone and with a table") {
    test::RulesFixture f(config_text());
    auto session = [](bool authenticated, std::string user) {
        rules::Subject s = from(kIp);
        s.authenticated = authenticated;
        s.auth_user = std::move(user);
        return s;
    };
    rules::Subject socket;
    socket.from_socket = true;
    socket.from_local = true;
    check_rows(f, {
                      {"auth", session(true, "alice"), "", true},
                      {"auth", session(false, ""), "", false},
                      {"auth", socket, "", true},  // the local enqueuer counts as authenticated
                      {"auth-table", session(true, "alice"), "", true},
                      {"auth-table", session(true, "bob"), "", true},  // case-insensitive
                      {"auth-table", session(true, "carol"), "", false},
                      {"auth-table", session(false, "alice"), "", false},  // not authenticated: no user
                      {"auth-regex", session(true, "svc-backup"), "x@example.org", true},
                      {"auth-regex", session(true, "alice"), "svc-x@example.org", false},
                  });
}

TEST_CASE("builtin filter: mail-from at mail-from tests the parameter, at rcpt-to the sender") {
    test::RulesFixture f(config_text());
    auto sending = [](std::string sender) {
        rules::Subject s = from(kIp);
        s.sender = std::move(sender);
        return s;
    };
    check_rows(f, {
                      // Table entries in the Mailaddr forms: address, "@domain", "user".
                      {"mail-from", sending(""), "spam@example.org", true},
                      {"mail-from", sending(""), "SPAM@Example.Org", true},
                      {"mail-from", sending(""), "anyone@spam.test", true},
                      {"mail-from", sending(""), "bulk@anywhere.test", true},
                      {"mail-from", sending(""), "ham@example.org", false},
                      {"mail-from", sending(""), "spam@example.org.test", false},
                      {"mail-from", sending(""), "", false},  // <>
                                                              // The MAIL FROM being filtered, not an earlier sender.
                      {"mail-from", sending("spam@example.org"), "ham@example.org", false},
                      // At rcpt-to the parameter is the recipient: the sender counts.
                      {"mail-from-at-rcpt", sending("spam@example.org"), "joe@example.com", true},
                      {"mail-from-at-rcpt", sending("ham@example.org"), "spam@example.org", false},
                      // A regex table.
                      {"mail-from-regex", sending(""), "bounce-dev@lists.example.org", true},
                      {"mail-from-regex", sending(""), "news@example.com", true},
                      {"mail-from-regex", sending(""), "bounce-42@lists.example.org", false},
                      {"mail-from-regex", sending(""), "the-news@example.com", false},
                  });
}

TEST_CASE("builtin filter: rcpt-to tests the parameter against an inline table") {
    test::RulesFixture f(config_text());
    rules::Subject s = from(kIp);
    s.rcpt = "postmaster@example.org";  // an earlier recipient: not what is tested
    check_rows(f, {
                      {"rcpt-to", from(kIp), "postmaster@example.org", true},
                      {"rcpt-to", from(kIp), "Postmaster@EXAMPLE.org", true},
                      {"rcpt-to", from(kIp), "joe@closed.test", true},
                      {"rcpt-to", from(kIp), "joe@example.org", false},
                      {"rcpt-to", s, "joe@example.org", false},
                  });
}

TEST_CASE("builtin filter: a table that cannot be read is a temporary failure, negated or not") {
    test::RulesFixture f(config_text());
    table::Registry closed;  // none of the tables open
    rules::Ruleset rules(f.config, closed, {"localhost"});
    for (const std::string name : {"mail-from", "not-mail-from", "src", "not-src"}) {
        INFO("filter " << name);
        std::string error;
        rules::Subject s = from("192.0.2.1");
        CHECK(rules::test_builtin(rules, builtin(f, name), s, "spam@example.org", &error) == Verdict::TempFail);
        CHECK(error.find("is not open") != std::string::npos);
    }
    // A condition that needs no table never fails.
    std::string error;
    CHECK(rules::test_builtin(rules, builtin(f, "not-rdns"), from(kIp), "", &error) == Verdict::Yes);
    CHECK(error.empty());
}
