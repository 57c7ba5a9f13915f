// ~/.forward: what the expander does with a user's forward file (through an
// injected reader), the forward-only and expand-only methods, and the
// safety checks of read_forward() on real files.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>

#include "fixtures.hpp"

using namespace expand_test;
using expand::ForwardFile;
using expand::Status;

namespace {

const std::string kTempFail = "4.3.0 Temporary lookup failure";
const std::string kExpansion = "5.2.4 Mailing list expansion problem";

// Forward files by user name; a user without one has none.
struct Fixture {
    std::unique_ptr<table::Table> userbase = users();
    std::unique_ptr<table::Table> alias = map("aliases", {{"team", "bob, alice"}});
    std::map<std::string, ForwardFile> files;
    std::vector<std::string> asked;

    void file(const std::string& user, std::string text) {
        ForwardFile f;
        f.status = ForwardFile::Status::Found;
        f.text = std::move(text);
        files[user] = f;
    }
    expand::Result run(std::string local, bool forward_only = false, bool expand_only = false) {
        expand::Request r;
        r.local = std::move(local);
        r.domain = "example.org";
        r.alias = alias.get();
        r.userbase = userbase.get();
        r.forward_only = forward_only;
        r.expand_only = expand_only;
        r.forward = [this](const expand::UserInfo& u) {
            asked.push_back(u.name + ":" + std::to_string(u.uid) + ":" + u.home);
            auto it = files.find(u.name);
            return it == files.end() ? ForwardFile{} : it->second;
        };
        return expand::expand(r);
    }
};

}  // namespace

TEST_CASE("forward: a user's .forward replaces them with its entries, read with their account") {
    Fixture f;
    f.file("bob", "# my forwards\nbob@elsewhere.example, |/usr/bin/vacation bob\n/home/bob/archive\n");
    auto r = f.run("bob");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"addr:bob@elsewhere.example", "cmd:/usr/bin/vacation bob(as 1001)",
                                 "file:/home/bob/archive(as 1001)"});
    CHECK(f.asked == Strings{"bob:1001:/home/bob"});
}

TEST_CASE("forward: the user's own name keeps a copy (sameuser), other users are followed, with their .forward") {
    Fixture f;
    f.file("bob", "\\bob, alice\n");
    f.file("alice", "alice@remote.example\n");
    auto r = f.run("bob+list");
    REQUIRE(r.status == Status::Ok);
    // The tag travels with the expansion, as through an alias (alias_test: root+cron).
    CHECK(describe(r) == Strings{"user:bob+list(1001)", "addr:alice@remote.example+list"});
}

TEST_CASE("forward: no file, an empty one, or one whose lines are all skipped delivers to the user") {
    Fixture f;
    CHECK(describe(f.run("bob")) == Strings{"user:bob(1001)"});
    f.file("bob", ":include:/etc/lists/x\n");
    auto r = f.run("bob");
    CHECK(describe(r) == Strings{"user:bob(1001)"});
    CHECK(r.warnings == Strings{".forward of 'bob': :include:/etc/lists/x skipped"});
}

TEST_CASE("forward: an ignored (unsafe) file is logged and the user gets the mail, a failed read waits") {
    Fixture f;
    ForwardFile unsafe;
    unsafe.status = ForwardFile::Status::Ignored;
    unsafe.why = "/home/bob/.forward ignored: group or world writable";
    f.files["bob"] = unsafe;
    auto r = f.run("bob");
    CHECK(describe(r) == Strings{"user:bob(1001)"});
    CHECK(r.warnings == Strings{"/home/bob/.forward ignored: group or world writable"});

    ForwardFile broken;
    broken.status = ForwardFile::Status::TempFail;
    broken.why = "/home/bob/.forward: Input/output error";
    f.files["bob"] = broken;
    r = f.run("bob");
    CHECK(r.status == Status::TempFail);
    CHECK(r.code == 451);
    CHECK(r.error == kTempFail);
    CHECK(r.log == "/home/bob/.forward: Input/output error");
}

TEST_CASE("forward: root's .forward forwards addresses but runs no commands or files") {
    Fixture f;
    f.file("root", "admin@example.net, |/bin/sh -c evil, /tmp/root-mail\n");
    auto r = f.run("root");
    REQUIRE(r.status == Status::Ok);
    CHECK(describe(r) == Strings{"addr:admin@example.net"});
    CHECK(r.warnings.size() == 2);
}

TEST_CASE("forward: alias members each follow their own .forward") {
    Fixture f;
    f.file("alice", "alice@remote.example\n");
    CHECK(describe(f.run("team")) == Strings{"user:bob(1001)", "addr:alice@remote.example"});
}

TEST_CASE("forward: an error: line ends the expansion with its code") {
    Fixture f;
    f.file("bob", "error:550 5.1.1 bob has left\n");
    auto r = f.run("bob");
    CHECK(r.status == Status::Permanent);
    CHECK(r.code == 550);
    CHECK(r.error == "5.1.1 bob has left");
}

TEST_CASE("forward-only: only addresses may come out, a user without .forward waits") {
    Fixture f;
    auto r = f.run("bob", true);
    CHECK(r.status == Status::TempFail);
    CHECK(r.code == 451);
    CHECK(r.log == "user 'bob' has no .forward, and the action is forward-only");

    f.file("bob", "bob@elsewhere.example\n");
    CHECK(describe(f.run("bob", true)) == Strings{"addr:bob@elsewhere.example"});

    f.file("bob", "bob@elsewhere.example, |/usr/bin/vacation\n");
    r = f.run("bob", true);
    CHECK(r.status == Status::TempFail);
    CHECK(r.log == ".forward of 'bob': only addresses may be forwarded by a forward-only action");
    CHECK(r.dests.empty());
}

TEST_CASE("expand-only: a user without .forward is refused for good, its entries are delivered") {
    Fixture f;
    auto r = f.run("bob", false, true);
    CHECK(r.status == Status::Permanent);
    CHECK(r.code == 550);
    CHECK(r.error == kExpansion);
    CHECK(r.log == "user 'bob' has no .forward, and the action is expand-only");

    f.file("bob", "|/usr/bin/procmail\n");
    CHECK(describe(f.run("bob", false, true)) == Strings{"cmd:/usr/bin/procmail(as 1001)"});
}

// read_forward() on real files: the test runs as root to give them owners.
TEST_CASE("forward: read_forward checks owner, modes, links and the home folder") {
    if (geteuid() != 0) {
        WARN("not run: needs root to give files to another owner");
        return;
    }
    TempDir home;
    REQUIRE(::chown(home.path().c_str(), 4242, 4242) == 0);
    REQUIRE(::chmod(home.path().c_str(), 0700) == 0);
    const std::string fwd = home.path() + "/.forward";
    using S = ForwardFile::Status;

    CHECK(expand::read_forward(4242, home.path()).status == S::Absent);

    home.write(".forward", "bob@example.net\n");
    REQUIRE(::chown(fwd.c_str(), 4242, 4242) == 0);
    REQUIRE(::chmod(fwd.c_str(), 0644) == 0);
    auto f = expand::read_forward(4242, home.path());
    CHECK(f.status == S::Found);
    CHECK(f.text == "bob@example.net\n");

    REQUIRE(::chmod(fwd.c_str(), 0664) == 0);
    f = expand::read_forward(4242, home.path());
    CHECK(f.status == S::Ignored);
    CHECK(f.why == fwd + " ignored: group or world writable");

    REQUIRE(::chmod(fwd.c_str(), 0644) == 0);
    REQUIRE(::chown(fwd.c_str(), 4343, 4242) == 0);
    f = expand::read_forward(4242, home.path());
    CHECK(f.status == S::Ignored);
    CHECK(f.why == fwd + " ignored: not owned by the user");

    REQUIRE(::unlink(fwd.c_str()) == 0);
    const std::string target = home.write("elsewhere", "x@example.net\n");
    REQUIRE(::chown(target.c_str(), 4242, 4242) == 0);
    REQUIRE(::symlink(target.c_str(), fwd.c_str()) == 0);
    f = expand::read_forward(4242, home.path());
    CHECK(f.status == S::Ignored);
    CHECK(f.why == fwd + " ignored: it is a symbolic link");

    REQUIRE(::unlink(fwd.c_str()) == 0);
    home.write(".forward", "   \n\n");
    REQUIRE(::chown(fwd.c_str(), 4242, 4242) == 0);
    CHECK(expand::read_forward(4242, home.path()).status == S::Absent);  // empty: as if none

    REQUIRE(::chmod(home.path().c_str(), 0770) == 0);
    f = expand::read_forward(4242, home.path());
    CHECK(f.status == S::Ignored);
    CHECK(f.why == fwd + " ignored: its folder " + home.path() + " may be written by others than the user");

    REQUIRE(::chmod(home.path().c_str(), 01777) == 0);
    CHECK(expand::read_forward(4242, home.path()).status == S::TempFail);
}
