// Rule evaluation of `match ... tls` and `match from mail-from`: truth
// tables, one row per subject with the action expected.
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "rules/ruleset.hpp"

using namespace postern;
using Kind = rules::Decision::Kind;

namespace {

rules::Subject remote(const std::string& sender, bool tls) {
    rules::Subject s;
    s.client_ip = "203.0.113.5";
    s.sender = sender;
    s.rcpt = "bob@localhost";
    s.rcpt_domain = "localhost";
    s.tls = tls;
    return s;
}

std::string decided(const test::RulesFixture& f, const rules::Subject& s) {
    auto d = f.rules->evaluate(s);
    if (d.kind == Kind::Reject) return "reject";
    if (d.kind == Kind::NoMatch) return "none";
    if (d.kind == Kind::TempFail) return "tempfail: " + d.error;
    return d.action ? d.action->name : "?";
}

}  // namespace

TEST_CASE("rules: tls matches a session under TLS, !tls one in clear") {
    test::RulesFixture f(R"(
action "secure" maildir
action "clear" mbox
match from any for local tls action "secure"
match from any for local !tls action "clear"
)");
    CHECK(decided(f, remote("a@example.org", true)) == "secure");
    CHECK(decided(f, remote("a@example.org", false)) == "clear");
    // The socket is never under TLS.
    rules::Subject sock = remote("a@example.org", false);
    sock.from_socket = true;
    sock.client_ip.clear();
    CHECK(decided(f, sock) == "clear");
}

TEST_CASE("rules: a tls rule alone leaves a session in clear to the next rules") {
    test::RulesFixture f(R"(
action "secure" maildir
match from any for local tls action "secure"
)");
    CHECK(decided(f, remote("a@example.org", true)) == "secure");
    CHECK(decided(f, remote("a@example.org", false)) == "none");  // 550, not OpenSMTPD's 451
}

TEST_CASE("rules: from mail-from chooses by sender, from any address") {
    test::RulesFixture f(R"(
table vips { "boss@example.org", "@partner.test" }
action "vip" maildir
action "list" maildir "/var/lists"
action "rest" mbox
match from mail-from <vips> for local action "vip"
match from mail-from regex "^list-.*@lists\.example\.org$" for local action "list"
match from mail-from "@spam.test" for local reject
match from any for local action "rest"
)");
    CHECK(decided(f, remote("boss@example.org", false)) == "vip");
    CHECK(decided(f, remote("anyone@partner.test", false)) == "vip");
    CHECK(decided(f, remote("list-dev@lists.example.org", false)) == "list");
    CHECK(decided(f, remote("x@spam.test", false)) == "reject");
    CHECK(decided(f, remote("other@example.org", false)) == "rest");
    CHECK(decided(f, remote("", false)) == "rest");  // the null sender is in none of them
    // `from mail-from` is a source: it stands for `from any`, the socket included.
    rules::Subject sock = remote("boss@example.org", false);
    sock.from_socket = true;
    sock.client_ip.clear();
    CHECK(decided(f, sock) == "vip");
}

TEST_CASE("rules: !from mail-from and mail-from without from") {
    test::RulesFixture f(R"(
action "others" maildir
action "boss" mbox
match !from mail-from "boss@example.org" for local action "others"
match from any mail-from "boss@example.org" for local action "boss"
)");
    CHECK(decided(f, remote("boss@example.org", false)) == "boss");
    CHECK(decided(f, remote("someone@example.org", false)) == "others");
}
