// Rule evaluation of `auth`, `auth <t>` and `from auth`, plain and negated:
// truth tables, one row per session with the decision expected.
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "rules/ruleset.hpp"

using namespace postern;
using Kind = rules::Decision::Kind;

namespace {

struct Fixture : test::RulesFixture {
    explicit Fixture(const std::string& text) : RulesFixture(text, {"localhost", "example.org"}) {}
};

// One session and recipient, and what the rules must decide.
struct Row {
    std::string ip;  // "" = the local socket
    bool authenticated;
    std::string user;  // the authenticated user ("" when none)
    std::string rcpt;
    Kind kind;
    std::string action;  // "-" when no action
};

void check_rows(const Fixture& f, const std::vector<Row>& rows) {
    for (const auto& r : rows) {
        INFO("ip=" << r.ip << " authenticated=" << r.authenticated << " user=" << r.user << " rcpt=" << r.rcpt);
        rules::Subject s;
        s.from_socket = r.ip.empty();
        s.from_local = r.ip.empty() || r.ip == "127.0.0.1";
        s.client_ip = r.ip;
        s.helo = "client.test";
        s.sender = "a@b.test";
        s.rcpt = r.rcpt;
        s.rcpt_domain = table::lowercase(r.rcpt.substr(r.rcpt.find('@') + 1));
        s.authenticated = r.authenticated;
        s.auth_user = r.user;
        auto d = f.rules->evaluate(s);
        CHECK(d.kind == r.kind);
        CHECK((d.action ? d.action->name : "-") == r.action);
        CHECK(d.error.empty());
    }
}

const std::string kOut = "203.0.113.5";

}  // namespace

TEST_CASE("rules: auth and from auth relay for authenticated sessions only") {
    Fixture f(R"(
table admins { alice, "Bob" }
action "local" mbox
action "relay" maildir "/var/relay"
action "admin" maildir "/var/admin"
match auth <admins> from any for any action "admin"
match from auth for any action "relay"
match from any for domain example.org action "local"
match !from auth for any reject
)");
    check_rows(f, {
                      // auth <admins>: a listed user, matched case-insensitively, from anywhere.
                      {kOut, true, "alice", "x@far.test", Kind::Deliver, "admin"},
                      {kOut, true, "BOB", "x@example.org", Kind::Deliver, "admin"},
                      // from auth: any other authenticated user relays, from any address.
                      {kOut, true, "carol", "x@far.test", Kind::Deliver, "relay"},
                      {"198.51.100.9", true, "carol", "x@far.test", Kind::Deliver, "relay"},
                      // Unauthenticated: local domains only, relaying refused.
                      {kOut, false, "", "x@example.org", Kind::Deliver, "local"},
                      {kOut, false, "", "x@far.test", Kind::Reject, "-"},
                      // A user name without an authenticated session counts for nothing.
                      {kOut, false, "alice", "x@far.test", Kind::Reject, "-"},
                      // The local socket counts as authenticated (OpenSMTPD), with no user name.
                      {"", false, "", "x@far.test", Kind::Deliver, "relay"},
                  });
}

TEST_CASE("rules: auth defaults to from local, !auth and auth with a value or regex") {
    Fixture f(R"(
action "a" mbox
action "named" maildir
action "regex" maildir "/var/r"
match auth "joe" from any for any action "named"
match from auth regex "^svc-" for any action "regex"
match auth for any action "a"
match !auth from any for domain example.org action "a"
match !auth from any for any reject
)");
    check_rows(f,
               {
                   {kOut, true, "joe", "x@far.test", Kind::Deliver, "named"},
                   {kOut, true, "JOE", "x@far.test", Kind::Deliver, "named"},
                   {kOut, true, "joey", "x@far.test", Kind::NoMatch, "-"},  // `auth` alone is from local: kOut is not
                   {kOut, true, "svc-backup", "x@far.test", Kind::Deliver, "regex"},
                   {kOut, true, "my-svc-backup", "x@far.test", Kind::NoMatch, "-"},
                   // `auth` without from: local sources only (127.0.0.1 and the socket).
                   {"127.0.0.1", true, "joey", "x@far.test", Kind::Deliver, "a"},
                   {"", false, "", "x@far.test", Kind::Deliver, "a"},
                   {"127.0.0.1", false, "", "x@far.test", Kind::Reject, "-"},
                   // !auth: unauthenticated sessions.
                   {kOut, false, "", "x@example.org", Kind::Deliver, "a"},
                   {kOut, false, "", "x@far.test", Kind::Reject, "-"},
                   // A value never matches an authenticated session without a user name.
                   {kOut, true, "", "x@far.test", Kind::NoMatch, "-"},
               });
}

TEST_CASE("rules: from auth with a table, and with a table that cannot be opened") {
    Fixture f(R"(
table relayers { alice, bob }
action "relay" maildir
match from auth <relayers> for any action "relay"
match !from auth <relayers> for any reject
)");
    check_rows(f, {
                      {kOut, true, "alice", "x@far.test", Kind::Deliver, "relay"},
                      {kOut, true, "mallory", "x@far.test", Kind::Reject, "-"},
                      {kOut, false, "", "x@far.test", Kind::Reject, "-"},
                  });

    // The same rules over a registry whose tables never opened.
    table::Registry closed;
    rules::Ruleset rs(f.config, closed, {"localhost"});
    rules::Subject s;
    s.client_ip = kOut;
    s.rcpt = "x@far.test";
    s.rcpt_domain = "far.test";
    s.authenticated = true;
    s.auth_user = "alice";
    auto d = rs.evaluate(s);
    CHECK(d.kind == Kind::TempFail);
    CHECK(d.error == "table 'relayers' is not open");
    // Unauthenticated, the table is never consulted: `!from auth <relayers>` decides.
    s.authenticated = false;
    CHECK(rs.evaluate(s).kind == Kind::Reject);
}
