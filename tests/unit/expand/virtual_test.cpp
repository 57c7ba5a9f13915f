// Expansion through `virtual <t>`: the six lookup keys in order, catch-alls,
// addresses for the daemon to re-match, local users, refusals.
#include <catch2/catch.hpp>

#include "fixtures.hpp"

using namespace expand_test;
using expand::Status;

namespace {

struct Virtual {
    std::unique_ptr<table::Table> userbase = users();
    std::unique_ptr<table::Table> table;

    explicit Virtual(Entries entries) : table(map("virtuals", std::move(entries))) {}

    expand::Result run(std::string local, std::string domain = "example.org") const {
        expand::Request r;
        r.local = std::move(local);
        r.domain = std::move(domain);
        r.virtual_ = table.get();
        r.userbase = userbase.get();
        return expand::expand(r);
    }
};

}  // namespace

TEST_CASE("virtual: each of the six keys wins over the ones after it") {
    // Each key delivers to a distinct address; removing the winner lets the next one win.
    const Entries all = {
        {"bob+tag@example.org", "k1@dest.test"},
        {"bob@example.org", "k2@dest.test"},
        {"bob+tag", "k3@dest.test"},
        {"bob", "k4@dest.test"},
        {"@example.org", "k5@dest.test"},
        {"@", "k6@dest.test"},
    };
    for (std::size_t first = 0; first < all.size(); ++first) {
        Entries some(all.begin() + static_cast<long>(first), all.end());
        Virtual v(some);
        auto r = v.run("Bob+tag");
        INFO("winner " << all[first].first);
        REQUIRE(r.status == Status::Ok);
        CHECK(describe(r) == Strings{"addr:k" + std::to_string(first + 1) + "@dest.test+tag"});
    }
}

TEST_CASE("virtual: without a tag, the tagged keys are not tried") {
    Virtual v(Entries{{"bob+tag@example.org", "k1@dest.test"}, {"bob+tag", "k3@dest.test"}, {"bob", "k4@dest.test"}});
    CHECK(describe(v.run("bob")) == Strings{"addr:k4@dest.test"});
    // A tagged recipient falls back to the key without tag.
    CHECK(describe(v.run("bob+other")) == Strings{"addr:k4@dest.test+other"});
}

TEST_CASE("virtual: no key at all is an unknown user, 550 5.1.1") {
    Virtual v(Entries{{"bob@example.org", "bob"}, {"@example.net", "alice"}});
    auto r = v.run("alice");
    CHECK(r.status == Status::NotFound);
    CHECK(r.code == 550);
    CHECK(r.error == "5.1.1 <alice@example.org>: Recipient address rejected: User unknown");
    CHECK(r.log == "no key for <alice@example.org> in table <virtuals>");
    CHECK(r.dests.empty());
}

TEST_CASE("virtual: catch-all @domain beats the global @") {
    Virtual v(Entries{{"@example.org", "vmail"}, {"@", "postmaster@hub.test"}, {"bob@example.org", "bob"}});
    CHECK(describe(v.run("anyone")) == Strings{"user:vmail(2000)"});
    CHECK(describe(v.run("anyone+x")) == Strings{"user:vmail+x(2000)"});
    CHECK(describe(v.run("anyone", "example.net")) == Strings{"addr:postmaster@hub.test"});
    CHECK(describe(v.run("BOB")) == Strings{"user:bob(1001)"});
}

TEST_CASE("virtual: values mix local users and addresses, users are not looked up again") {
    Virtual v(Entries{{"team@example.org", "bob, alice+team, carol@Partner.TEST, team@example.org"},
                      {"bob", "alice"},  // a bare user in a value is a user, not another virtual key
                      {"ghost@example.org", "nosuchuser"}});
    auto r = v.run("team");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) ==
          Strings{"user:bob(1001)", "user:alice+team(1002)", "addr:carol@partner.test", "addr:team@example.org"});
    auto g = v.run("ghost");
    CHECK(g.status == Status::Permanent);
    CHECK(g.code == 550);
    CHECK(g.error == "5.2.4 Mailing list expansion problem");
}

TEST_CASE("virtual: files, commands, includes and error: entries") {
    TempDir dir;
    std::string list = dir.write("list", "alice\nsub@lists.test\n");
    Virtual v(Entries{{"archive@example.org", "/var/vmail/archive.mbox, |/usr/bin/index"},
                      {"bob", "/home/bob/virtual.mbox"},
                      {"list@example.org", ":include:" + list},
                      {"old@example.org", "error:550 5.1.6 old has moved"}});
    // Keyed by an address: no user owns them, the default user does.
    CHECK(describe(v.run("archive")) ==
          Strings{"file:/var/vmail/archive.mbox(as 65534)", "cmd:/usr/bin/index(as 65534)"});
    // Keyed by a user name (the fourth key): that user does.
    CHECK(describe(v.run("bob")) == Strings{"file:/home/bob/virtual.mbox(as 1001)"});
    CHECK(describe(v.run("list")) == Strings{"user:alice(1002)", "addr:sub@lists.test"});
    auto old = v.run("old");
    CHECK(old.status == Status::Permanent);
    CHECK(old.code == 550);
    CHECK(old.error == "5.1.6 old has moved");
}

TEST_CASE("virtual: a table that cannot answer gives 451 4.3.0, even after a miss") {
    auto userbase = users();
    FailingTable table("bob", {{"@example.org", "vmail"}});
    expand::Request req;
    req.local = "bob";
    req.domain = "example.org";
    req.virtual_ = &table;
    req.userbase = userbase.get();
    auto r = expand::expand(req);  // bob@example.org misses, then "bob" fails
    CHECK(r.status == Status::TempFail);
    CHECK(r.code == 451);
    CHECK(r.error == "4.3.0 Temporary lookup failure");
    CHECK(r.log == "table <failing>: lookup of 'bob' failed: backend unreachable");
}

TEST_CASE("virtual: without a domain only the user keys and @ are tried") {
    Virtual v(Entries{{"bob@", "carol"}, {"@", "alice"}});
    CHECK(describe(v.run("bob", "")) == Strings{"user:alice(1002)"});
}
