// Rule evaluation of `from rdns`, `helo`, regex tables and the built-in
// tables: truth tables, one row per subject with the decision expected.
#include <catch2/catch.hpp>

#include <functional>

#include "fixture.hpp"
#include "rules/ruleset.hpp"

using namespace postern;
using Kind = rules::Decision::Kind;

namespace {

struct Fixture : test::RulesFixture {
    explicit Fixture(const std::string& text, const std::function<void(table::Registry&)>& setup = {})
        : RulesFixture(text, {"localhost"}, setup) {}
};

// One subject and what the rules must decide for it.
struct Row {
    std::string ip;  // "" = the local socket
    std::string rdns;
    std::string helo;
    std::string sender;
    std::string rcpt;
    Kind kind;
    std::string action;  // "-" when no action
};

void check_rows(const Fixture& f, const std::vector<Row>& rows) {
    for (const auto& r : rows) {
        INFO("ip=" << r.ip << " rdns=" << r.rdns << " helo=" << r.helo << " sender=" << r.sender << " rcpt=" << r.rcpt);
        rules::Subject s;
        s.from_socket = r.ip.empty();
        s.from_local = r.ip.empty() || r.ip == "127.0.0.1" || r.ip == "::1";
        s.client_ip = r.ip;
        s.rdns = r.rdns;
        s.helo = r.helo;
        s.sender = r.sender;
        s.rcpt = r.rcpt;
        s.rcpt_domain = table::lowercase(r.rcpt.substr(r.rcpt.find('@') + 1));
        auto d = f.rules->evaluate(s);
        CHECK(d.kind == r.kind);
        CHECK((d.action ? d.action->name : "-") == r.action);
        CHECK(d.error.empty());
    }
}

const std::string kOut = "203.0.113.5";

}  // namespace

TEST_CASE("rules: from rdns and helo, plain and negated") {
    Fixture f(R"(
table partners { "*.partner.test" }
table badhelos { localhost, "*.invalid" }
action "in" maildir
action "partner" mbox
action "named" maildir "/var/vmail"
match from any helo <badhelos> for any reject
match from rdns <partners> for any action "partner"
match from rdns regex "^mail[0-9]*[.]" for domain example.org action "in"
match !from rdns for domain example.org reject
match from rdns for domain example.org action "named"
match from any !helo "*.example.net" for domain example.net reject
match from any helo regex "^mx[0-9][.]" for domain example.net action "in"
match !from rdns "*.dyn.test" for domain example.com action "in"
)");
    check_rows(f,
               {
                   // helo <badhelos> comes first: a client naming itself localhost is refused, whoever it is.
                   {kOut, "mail.partner.test", "localhost", "a@b.test", "x@far.test", Kind::Reject, "-"},
                   {kOut, "", "box.invalid", "a@b.test", "x@example.org", Kind::Reject, "-"},
                   {kOut, "", "LocalHost", "a@b.test", "x@example.org", Kind::Reject,
                    "-"},  // case-insensitive
                           // from rdns <partners>: relaying for partners, by PTR name only.
                   {kOut, "mail.partner.test", "mail.partner.test", "a@b.test", "x@far.test", Kind::Deliver, "partner"},
                   {kOut, "MX.Partner.Test", "mx", "a@b.test", "x@far.test", Kind::Deliver, "partner"},
                   {kOut, "partner.test", "mx", "a@b.test", "x@far.test", Kind::NoMatch, "-"},
                   {kOut, "", "mail.partner.test", "a@b.test", "x@far.test", Kind::NoMatch, "-"},  // helo is no PTR
                                                                                                   // from rdns regex
                   {kOut, "mail7.sender.test", "h", "a@b.test", "x@example.org", Kind::Deliver, "in"},
                   {kOut, "mail.sender.test", "h", "a@b.test", "x@example.org", Kind::Deliver, "in"},
                   // !from rdns: no PTR name, refused for example.org
                   {kOut, "", "h", "a@b.test", "x@example.org", Kind::Reject, "-"},
                   // from rdns (bare): any PTR name
                   {kOut, "smtp.sender.test", "h", "a@b.test", "x@example.org", Kind::Deliver, "named"},
                   // !helo "*.example.net": for example.net only clients naming themselves in it
                   {kOut, "", "mx1.example.net", "a@b.test", "x@example.net", Kind::Deliver, "in"},
                   {kOut, "", "mx1.example.com", "a@b.test", "x@example.net", Kind::Reject, "-"},
                   {kOut, "", "", "a@b.test", "x@example.net", Kind::Reject, "-"},  // no HELO matches nothing
                   {kOut, "", "www.example.net", "a@b.test", "x@example.net", Kind::NoMatch, "-"},
                   // !from rdns "*.dyn.test": anything but dynamic names, including no name
                   {kOut, "host.dyn.test", "h", "a@b.test", "x@example.com", Kind::NoMatch, "-"},
                   {kOut, "mx.static.test", "h", "a@b.test", "x@example.com", Kind::Deliver, "in"},
                   {kOut, "", "h", "a@b.test", "x@example.com", Kind::Deliver, "in"},
               });
}

TEST_CASE("rules: mail-from and rcpt-to against regex tables") {
    Fixture f(R"(
table senders { "^bounce-[a-z]+@lists[.]example[.]org$", "^news@" }
table rcpts { "^postmaster@", "^abuse@" }
action "lists" maildir
action "pm" mbox
action "in" maildir "/var/vmail"
match from any mail-from regex <senders> for any action "lists"
match from any for rcpt-to regex <rcpts> action "pm"
match from any !mail-from regex <senders> !rcpt-to regex { "^noreply@" } for domain example.org action "in"
)");
    check_rows(f, {
                      {kOut, "", "h", "bounce-dev@lists.example.org", "x@far.test", Kind::Deliver, "lists"},
                      {kOut, "", "h", "news@anywhere.test", "x@far.test", Kind::Deliver, "lists"},
                      {kOut, "", "h", "bounce-dev@lists.example.org.evil", "x@far.test", Kind::NoMatch, "-"},
                      {kOut, "", "h", "a@b.test", "postmaster@far.test", Kind::Deliver, "pm"},
                      {kOut, "", "h", "a@b.test", "abuse@example.org", Kind::Deliver, "pm"},
                      {kOut, "", "h", "a@b.test", "the-postmaster@far.test", Kind::NoMatch, "-"},
                      {kOut, "", "h", "a@b.test", "joe@example.org", Kind::Deliver, "in"},
                      {kOut, "", "h", "a@b.test", "noreply@example.org", Kind::NoMatch, "-"},
                  });
}

TEST_CASE("rules: built-in tables hold what the daemon gives the registry") {
    const char* text = R"(
action "local" mbox
action "relay" maildir
match !from src <anyhost> for any reject
match from any for domain <localnames> action "local"
match from src <localhost> for domain <anydestination> action "relay"
match !from src <localhost> !for domain <localnames> reject
)";
    Fixture f(text, [](table::Registry& r) {
        r.set_local_identity({"mx.example.org"}, {"127.0.0.1", "::1", "192.0.2.10", "2001:db8::10"});
    });
    check_rows(f, {
                      // <localnames>: localhost, the server name and the local addresses, bare and bracketed.
                      {kOut, "", "h", "a@b.test", "joe@localhost", Kind::Deliver, "local"},
                      {kOut, "", "h", "a@b.test", "joe@MX.example.org", Kind::Deliver, "local"},
                      {kOut, "", "h", "a@b.test", "joe@[192.0.2.10]", Kind::Deliver, "local"},
                      {kOut, "", "h", "a@b.test", "joe@192.0.2.10", Kind::Deliver, "local"},
                      {kOut, "", "h", "a@b.test", "joe@[IPv6:2001:db8::10]", Kind::Deliver, "local"},
                      {kOut, "", "h", "a@b.test", "joe@[192.0.2.11]", Kind::Reject, "-"},
                      {kOut, "", "h", "a@b.test", "joe@example.org", Kind::Reject, "-"},
                      // <localhost> + <anydestination>: relaying for this host's own addresses and the socket.
                      {"127.0.0.1", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"192.0.2.10", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"::1", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"2001:db8::10", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"", "", "", "a@b.test", "far@away.test", Kind::Deliver,
                       "relay"},  // the socket ("local")
                                  // !from src <localhost> !for domain <localnames>: everyone else is refused relaying.
                      {kOut, "", "h", "a@b.test", "far@away.test", Kind::Reject, "-"},
                      {"192.0.2.11", "", "h", "a@b.test", "far@away.test", Kind::Reject, "-"},
                      {"2001:db8::11", "", "h", "a@b.test", "far@away.test", Kind::Reject, "-"},
                      // <anyhost> holds every address and the socket: its negation never matched above.
                  });
}

TEST_CASE("rules: built-in tables without the daemon's identity hold loopback only") {
    Fixture f(R"(
action "relay" maildir
match from src <localhost> for domain <anydestination> action "relay"
match from any for domain <localnames> reject
)");
    check_rows(f, {
                      {"127.0.0.1", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"::1", "", "h", "a@b.test", "far@away.test", Kind::Deliver, "relay"},
                      {"192.0.2.10", "", "h", "a@b.test", "far@away.test", Kind::NoMatch, "-"},
                      {"192.0.2.10", "", "h", "a@b.test", "joe@localhost", Kind::Reject, "-"},
                      {"192.0.2.10", "", "h", "a@b.test", "joe@[127.0.0.1]", Kind::Reject, "-"},
                      {"192.0.2.10", "", "h", "a@b.test", "joe@mx.example.org", Kind::NoMatch, "-"},
                  });
}

TEST_CASE("rules: set_builtin replaces one built-in table, a declared table replaces it in the file") {
    Fixture f(R"(
table localhost { 198.51.100.0/24 }
action "relay" maildir
match from src <localhost> for domain <anydestination> action "relay"
)",
              [](table::Registry& r) {
                  CHECK(r.set_builtin("anydestination", {"*.example.org"}));
                  CHECK_FALSE(r.set_builtin("getpwnam", {"x"}));
                  CHECK_FALSE(r.set_builtin("<anydestination>", {"x"}));
              });
    check_rows(
        f, {
               {"198.51.100.7", "", "h", "a@b.test", "joe@mx.example.org", Kind::Deliver, "relay"},
               {"198.51.100.7", "", "h", "a@b.test", "joe@example.org", Kind::NoMatch, "-"},
               {"127.0.0.1", "", "h", "a@b.test", "joe@mx.example.org", Kind::NoMatch, "-"},  // the file's table wins
               {"", "", "", "a@b.test", "joe@mx.example.org", Kind::NoMatch, "-"},
           });
}

TEST_CASE("rules: from src on the socket matches only an entry written 'local'") {
    Fixture f(R"(
action "a" maildir
match from src { local } for any action "a"
match from src 127.0.0.1 for any reject
)");
    check_rows(f, {
                      {"", "", "", "a@b.test", "far@away.test", Kind::Deliver, "a"},
                      {"127.0.0.1", "", "h", "a@b.test", "far@away.test", Kind::Reject, "-"},
                      {kOut, "", "h", "a@b.test", "far@away.test", Kind::NoMatch, "-"},
                  });
}
