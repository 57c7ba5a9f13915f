// Expansion without tables and through `alias <t>`: users, tags, chains,
// loops, sameuser, depth, duplicates, files, commands, includes, error:.
#include <catch2/catch.hpp>

#include "fixtures.hpp"

using namespace expand_test;
using expand::Status;

namespace {

const std::string kUnknownBob = "5.1.1 <nobody-here@example.org>: Recipient address rejected: User unknown";
const std::string kExpansion = "5.2.4 Mailing list expansion problem";
const std::string kTempFail = "4.3.0 Temporary lookup failure";

struct Fixture {
    std::unique_ptr<table::Table> userbase = users();
    std::unique_ptr<table::Table> alias;

    explicit Fixture(Entries aliases = {}) : alias(map("aliases", std::move(aliases))) {}

    expand::Request request(std::string local, bool with_alias = true) const {
        expand::Request r;
        r.local = std::move(local);
        r.domain = "example.org";
        r.alias = with_alias ? alias.get() : nullptr;
        r.userbase = userbase.get();
        return r;
    }
    expand::Result run(std::string local) const { return expand::expand(request(std::move(local))); }
};

// u0: u1, u1: u2, ... u(n-1): un -- n alias hops, ending at bob.
Entries chain(int n) {
    Entries e;
    for (int i = 0; i < n; ++i)
        e.emplace_back("u" + std::to_string(i), i + 1 == n ? "bob" : "u" + std::to_string(i + 1));
    return e;
}

}  // namespace

TEST_CASE("expand: without alias table the local part is a user of the userbase") {
    Fixture f;
    auto r = expand::expand(f.request("Bob", false));
    REQUIRE(r.status == Status::Ok);
    CHECK(r.code == 250);
    CHECK(describe(r) == Strings{"user:bob(1001)"});
    CHECK(r.dests[0].user.home == "/home/bob");
    CHECK(r.dests[0].run_as.uid == 1001);
    CHECK(r.error.empty());
}

TEST_CASE("expand: an unknown user is refused with 550 5.1.1") {
    Fixture f;
    auto r = expand::expand(f.request("nobody-here", false));
    CHECK(r.status == Status::NotFound);
    CHECK(r.code == 550);
    CHECK(r.error == kUnknownBob);
    CHECK(r.log == "no user 'nobody-here' in the userbase");
    CHECK(r.dests.empty());
    // Through an alias table that has no entry for it: the same answer.
    auto a = f.run("nobody-here");
    CHECK(a.status == Status::NotFound);
    CHECK(a.error == kUnknownBob);
}

TEST_CASE("expand: +tag is stripped for the user and kept as the extension") {
    Fixture f;
    auto r = expand::expand(f.request("bob+Lists", false));
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"user:bob+lists(1001)"});
    auto bad = expand::expand(f.request("ghost+x", false));
    CHECK(bad.status == Status::NotFound);
    CHECK(bad.error == "5.1.1 <ghost+x@example.org>: Recipient address rejected: User unknown");
    // Another delimiter, and a delimiter in first place that is no tag.
    auto req = f.request("bob-x", false);
    req.subaddr_delim = '-';
    CHECK(describe(expand::expand(req)) == Strings{"user:bob+x(1001)"});
    CHECK(expand::expand(f.request("+bob", false)).status == Status::NotFound);
}

TEST_CASE("expand: alias lookup tries the full local part, then without the tag") {
    Fixture f(Entries{{"bob+lists", "alice"}, {"carol", "bob"}});
    CHECK(describe(f.run("bob+lists")) == Strings{"user:alice+lists(1002)"});  // full key wins
    CHECK(describe(f.run("bob+other")) == Strings{"user:bob+other(1001)"});    // no entry: the user itself
    CHECK(describe(f.run("carol+x")) == Strings{"user:bob+x(1001)"});          // key without tag, tag kept
    CHECK(describe(f.run("CAROL")) == Strings{"user:bob(1001)"});              // lowercased
}

TEST_CASE("expand: chains a -> b -> c resolve to the last user") {
    Fixture f(Entries{{"a", "b"}, {"b", "c, alice@elsewhere.test"}, {"c", "carol"}, {"bob", "bob+box"}});
    auto r = f.run("a");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"user:carol(1003)", "addr:alice@elsewhere.test"});
    // An element with a tag of its own carries it.
    CHECK(describe(f.run("bob")) == Strings{"user:bob+box(1001)"});
}

TEST_CASE("expand: a loop never expands forever") {
    SECTION("a pure cycle leaves nothing: 550 5.2.4") {
        Fixture f(Entries{{"a", "b"}, {"b", "a"}});
        auto r = f.run("a");
        CHECK(r.status == Status::Permanent);
        CHECK(r.code == 550);
        CHECK(r.error == kExpansion);
        CHECK(r.log == "expansion of <a@example.org> leaves no destination");
    }
    SECTION("a cycle with an exit delivers to the exit only") {
        Fixture f(Entries{{"a", "b, carol"}, {"b", "a, alice"}});
        CHECK(describe(f.run("a")) == Strings{"user:alice(1002)", "user:carol(1003)"});
    }
}

TEST_CASE("expand: a name that expands to itself is that user (sameuser)") {
    Fixture f(Entries{{"root", "root, admin@other.test"}, {"bob", "alice, bob"}, {"list", "list"}});
    auto r = f.run("root");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"user:root(0)", "addr:admin@other.test"});
    CHECK(describe(f.run("bob")) == Strings{"user:alice(1002)", "user:bob(1001)"});
    // With the tag on the recipient, the entry found without it still names itself.
    CHECK(describe(f.run("root+cron")) == Strings{"user:root+cron(0)", "addr:admin@other.test+cron"});
    // Itself, but not a user of the userbase.
    auto list = f.run("list");
    CHECK(list.status == Status::Permanent);
    CHECK(list.error == kExpansion);
    CHECK(list.log == "alias target 'list' of <list@example.org> is not a user");
}

TEST_CASE("expand: the depth limit counts alias hops") {
    SECTION("ten hops pass, eleven fail") {
        Fixture ten(chain(10));
        CHECK(describe(ten.run("u0")) == Strings{"user:bob(1001)"});
        Fixture eleven(chain(11));
        auto r = eleven.run("u0");
        CHECK(r.status == Status::Permanent);
        CHECK(r.code == 550);
        CHECK(r.error == kExpansion);
        CHECK(r.log == "expansion of <u0@example.org> deeper than 10 at 'u10' in table <aliases>");
        CHECK(r.dests.empty());
    }
    SECTION("max_depth is the request's") {
        Fixture f(chain(3));
        auto req = f.request("u0");
        req.max_depth = 3;
        CHECK(expand::expand(req).status == Status::Ok);
        req.max_depth = 2;
        CHECK(expand::expand(req).status == Status::Permanent);
        req.max_depth = 0;  // the daemon's last re-match: no alias hop left
        CHECK(expand::expand(req).status == Status::Permanent);
        req.local = "bob";  // no entry needs no hop
        CHECK(describe(expand::expand(req)) == Strings{"user:bob(1001)"});
    }
}

TEST_CASE("expand: duplicates are delivered once, first one wins") {
    Fixture f(Entries{{"team", "bob, alice, bob+x, sub, Carol@Example.ORG, carol@example.org, /var/a, /var/a"},
                      {"sub", "alice, bob"}});
    auto r = f.run("team");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) ==
          Strings{"user:bob(1001)", "user:alice(1002)", "addr:Carol@example.org", "file:/var/a(as 65534)"});
}

TEST_CASE("expand: files run as the alias key's user, else the default user, never root") {
    Fixture f(Entries{{"bob", "/home/bob/archive.mbox"},
                      {"staff", "/var/mail/staff"},
                      {"root", "/var/log/root.mbox"},
                      {"alice+log", "/tmp/alice.log"}});
    CHECK(describe(f.run("bob")) == Strings{"file:/home/bob/archive.mbox(as 1001)"});
    CHECK(describe(f.run("staff")) == Strings{"file:/var/mail/staff(as 65534)"});    // no such user: nobody
    CHECK(describe(f.run("root")) == Strings{"file:/var/log/root.mbox(as 65534)"});  // uid 0: nobody
    auto r = f.run("alice+log");
    CHECK(describe(r) == Strings{"file:/tmp/alice.log(as 1002)"});  // key's tag stripped
    CHECK(r.dests[0].user.name == "alice");
    CHECK(r.dests[0].extension == "log");
}

TEST_CASE("expand: commands, quoted commands and the action's user") {
    Fixture f(
        Entries{{"bob", R"("|/usr/bin/filter -a, -b", |/usr/bin/vacation bob)"}, {"root", "|/usr/local/bin/notify"}});
    auto r = f.run("bob");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"cmd:/usr/bin/filter -a, -b(as 1001)", "cmd:/usr/bin/vacation bob(as 1001)"});
    CHECK(describe(f.run("root")) == Strings{"cmd:/usr/local/bin/notify(as 65534)"});
    auto req = f.request("root");
    req.as_user = "vmail";
    CHECK(describe(expand::expand(req)) == Strings{"cmd:/usr/local/bin/notify(as 2000)"});
    req.as_user = "root";  // the action's user is root: still not root
    CHECK(describe(expand::expand(req)) == Strings{"cmd:/usr/local/bin/notify(as 65534)"});
}

TEST_CASE("expand: the action's user runs user deliveries, unknown, it is a temporary failure") {
    Fixture f(Entries{{"team", "bob, alice"}});
    auto req = f.request("team");
    req.as_user = "vmail";
    auto r = expand::expand(req);
    REQUIRE(r.dests.size() == 2);
    CHECK(r.dests[0].user.name == "bob");
    CHECK(r.dests[0].run_as.name == "vmail");
    CHECK(r.dests[1].run_as.uid == 2000);
    req.as_user = "ghost";
    auto bad = expand::expand(req);
    CHECK(bad.status == Status::TempFail);
    CHECK(bad.code == 451);
    CHECK(bad.error == kTempFail);
    CHECK(bad.log == "action user 'ghost' is unknown");
}

TEST_CASE("expand: a missing default user is a temporary failure") {
    Fixture f(Entries{{"staff", "/var/mail/staff"}});
    auto req = f.request("staff");
    req.default_user = "postern-surely-absent-user-42";
    auto r = expand::expand(req);
    CHECK(r.status == Status::TempFail);
    CHECK(r.code == 451);
    CHECK(r.log == "no unprivileged account for files and commands: default user "
                   "'postern-surely-absent-user-42' is unknown");
    req.default_user = "root";
    CHECK(expand::expand(req).log == "no unprivileged account for files and commands: default user 'root' has uid 0");
}

TEST_CASE("expand: :include: files add their entries, one level deep") {
    TempDir dir;
    REQUIRE_FALSE(dir.path().empty());
    std::string nested = dir.write("nested", "carol\n");
    std::string staff = dir.write("staff", "# the staff\n"
                                           "alice, bob@other.test\n"
                                           "\n"
                                           "/var/mail/staff-archive\n"
                                           ":include:" +
                                               nested +
                                               "\n"
                                               "|/usr/bin/logger\n");
    Fixture f(Entries{{"staff", ":include:" + staff + ", carol"}, {"alice", "bob"}});
    auto r = f.run("staff");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"user:bob(1001)", "addr:bob@other.test", "file:/var/mail/staff-archive(as 65534)",
                                 "cmd:/usr/bin/logger(as 65534)", "user:carol(1003)"});
    CHECK(r.warnings == Strings{"nested :include:" + nested + " skipped (one level only)"});
}

TEST_CASE("expand: :include: problems") {
    TempDir dir;
    SECTION("a missing file is a temporary failure") {
        std::string path = dir.path() + "/absent";
        Fixture f(Entries{{"staff", ":include:" + path}});
        auto r = f.run("staff");
        CHECK(r.status == Status::TempFail);
        CHECK(r.code == 451);
        CHECK(r.error == kTempFail);
        CHECK(r.log == "cannot open :include: file " + path + ": No such file or directory");
    }
    SECTION("a folder is not an include file") {
        Fixture f(Entries{{"staff", ":include:" + dir.path()}});
        CHECK(f.run("staff").log == ":include: file " + dir.path() + " is not a regular file");
    }
    SECTION("a bad line refuses the recipient") {
        std::string path = dir.write("bad", "bob\n\"unterminated, x\n");
        Fixture f(Entries{{"staff", ":include:" + path}});
        auto r = f.run("staff");
        CHECK(r.status == Status::Permanent);
        CHECK(r.log == ":include: file " + path + ": unterminated quote");
    }
    SECTION("a relative path is an invalid element") {
        Fixture f(Entries{{"staff", ":include:staff.txt"}});
        auto r = f.run("staff");
        CHECK(r.status == Status::Permanent);
        CHECK(r.log == "table <aliases>: entry 'staff': :include: needs an absolute path");
    }
    SECTION("fan-out is bounded") {
        std::string text;
        for (int i = 0; i < 1001; ++i) text += "u" + std::to_string(i) + "@example.net\n";
        Fixture f(Entries{{"big", ":include:" + dir.write("big", text)}});
        auto r = f.run("big");
        CHECK(r.status == Status::Permanent);
        CHECK(r.log == "expansion of <big@example.org> gives more than 1000 destinations");
        CHECK(r.dests.empty());
    }
}

TEST_CASE("expand: error: entries answer with their own code and text") {
    Fixture f(Entries{{"gone", "error:550 5.1.6 bob has moved, write to bob@new.test"},
                      {"later", "error:451 4.2.1 mailbox busy"},
                      {"mixed", "alice, error:552 5.2.2 over quota, bob"},
                      {"via", "gone"}});
    auto r = f.run("gone");
    CHECK(r.status == Status::Permanent);
    CHECK(r.code == 550);
    CHECK(r.error == "5.1.6 bob has moved");  // the comma splits the value: the rest is another element
    auto t = f.run("later");
    CHECK(t.status == Status::TempFail);
    CHECK(t.code == 451);
    CHECK(t.error == "4.2.1 mailbox busy");
    auto m = f.run("mixed");
    CHECK(m.status == Status::Permanent);
    CHECK(m.code == 552);
    CHECK(m.error == "5.2.2 over quota");
    CHECK(m.dests.empty());
    CHECK(f.run("via").code == 550);
}

TEST_CASE("expand: bad alias values refuse the recipient with 550 5.2.4") {
    Fixture f(Entries{{"typo", "bob, ali ce"},
                      {"ghost", "bob, nosuchuser"},
                      {"empty", " , ,"},
                      {"quote", "bob, \"x"},
                      {"badinfo", "broken"}});
    auto typo = f.run("typo");
    CHECK(typo.status == Status::Permanent);
    CHECK(typo.code == 550);
    CHECK(typo.error == kExpansion);
    CHECK(typo.log == "table <aliases>: entry 'typo': 'ali ce' is not a user name, address, path or command");
    auto ghost = f.run("ghost");
    CHECK(ghost.error == kExpansion);
    CHECK(ghost.log == "alias target 'nosuchuser' of <ghost@example.org> is not a user");
    CHECK(ghost.dests.empty());
    auto empty = f.run("empty");
    CHECK(empty.error == kExpansion);
    CHECK(empty.log == "expansion of <empty@example.org> leaves no destination");
    CHECK(f.run("quote").log == "table <aliases>: entry 'quote': unterminated quote");
    auto bad = f.run("badinfo");
    CHECK(bad.status == Status::Permanent);
    CHECK(bad.log == "userbase <users>: userinfo for 'broken' is not uid:gid:/home");
}

TEST_CASE("expand: a table that cannot answer gives 451 4.3.0") {
    auto userbase = users();
    SECTION("alias table, on the recipient") {
        FailingTable alias("bob", {});
        expand::Request req;
        req.local = "bob";
        req.domain = "example.org";
        req.alias = &alias;
        req.userbase = userbase.get();
        auto r = expand::expand(req);
        CHECK(r.status == Status::TempFail);
        CHECK(r.code == 451);
        CHECK(r.error == kTempFail);
        CHECK(r.log == "table <failing>: lookup of 'bob' failed: backend unreachable");
    }
    SECTION("alias table, deeper in the chain") {
        FailingTable alias("b", {{"a", "alice, b"}});
        expand::Request req;
        req.local = "a";
        req.alias = &alias;
        req.userbase = userbase.get();
        auto r = expand::expand(req);
        CHECK(r.status == Status::TempFail);
        CHECK(r.dests.empty());
    }
    SECTION("userbase") {
        FailingTable ub("", {});
        auto alias = map("aliases", {{"a", "bob"}});
        expand::Request req;
        req.local = "a";
        req.alias = alias.get();
        req.userbase = &ub;
        auto r = expand::expand(req);
        CHECK(r.status == Status::TempFail);
        CHECK(r.error == kTempFail);
        CHECK(r.log == "userbase <failing>: backend unreachable");
    }
}

TEST_CASE("expand: the system's users when no userbase is given") {
    auto alias = map("aliases", {{"postmaster", "root"}});
    expand::Request req;
    req.local = "postmaster";
    req.domain = "localhost";
    req.alias = alias.get();
    auto r = expand::expand(req);
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"user:root(0)"});
    req.local = "postern-surely-absent-user-42";
    auto bad = expand::expand(req);
    CHECK(bad.status == Status::NotFound);
    CHECK(bad.error == "5.1.1 <postern-surely-absent-user-42@localhost>: Recipient address rejected: User unknown");
}
