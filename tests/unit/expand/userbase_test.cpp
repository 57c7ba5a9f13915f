// The userbase: `uid:gid:/home` tables and the system's users.
#include <catch2/catch.hpp>

#include "fixtures.hpp"

using namespace expand_test;
using expand::Status;
using expand::UserInfo;

TEST_CASE("userbase: parse_userinfo accepts uid:gid:/home only") {
    UserInfo u;
    std::string why;
    REQUIRE(expand::parse_userinfo("bob", "1001:100:/home/bob", &u, &why));
    CHECK(u.name == "bob");
    CHECK(u.uid == 1001);
    CHECK(u.gid == 100);
    CHECK(u.home == "/home/bob");
    REQUIRE(expand::parse_userinfo("x", "0:0:/a:b", &u, &why));
    CHECK(u.home == "/a:b");  // the home is the rest of the value
    for (std::string bad : {"", "1001", "1001:100", "a:100:/h", "1001:b:/h", "-1:0:/h", "1001:100:home",
                            "1001:100:", "99999999999:0:/h", "4294967295:0:/h", " 1:1:/h"}) {
        INFO(bad);
        CHECK_FALSE(expand::parse_userinfo("x", bad, &u, &why));
    }
    expand::parse_userinfo("bob", "1001:100:home", &u, &why);
    CHECK(why == "userinfo for 'bob' has no absolute home directory");
    expand::parse_userinfo("bob", "x", &u, &why);
    CHECK(why == "userinfo for 'bob' is not uid:gid:/home");
}

TEST_CASE("userbase: table lookups, case-insensitive, malformed entries") {
    auto ub = users();
    UserInfo u;
    std::string why;
    REQUIRE(expand::lookup_user(ub.get(), "BOB", &u, &why) == Status::Ok);
    CHECK(u.name == "bob");
    CHECK(u.uid == 1001);
    CHECK(u.home == "/home/bob");
    CHECK(expand::lookup_user(ub.get(), "nosuchuser", &u, &why) == Status::NotFound);
    CHECK(expand::lookup_user(ub.get(), "", &u, &why) == Status::NotFound);
    CHECK(expand::lookup_user(ub.get(), "broken", &u, &why) == Status::Permanent);
    CHECK(why == "userbase <users>: userinfo for 'broken' is not uid:gid:/home");
}

TEST_CASE("userbase: a table that cannot answer is a temporary failure") {
    FailingTable ub("", {});
    UserInfo u;
    std::string why;
    CHECK(expand::lookup_user(&ub, "bob", &u, &why) == Status::TempFail);
    CHECK(why == "userbase <failing>: backend unreachable");
}

TEST_CASE("userbase: nullptr asks the system's users") {
    UserInfo u;
    std::string why;
    REQUIRE(expand::lookup_user(nullptr, "root", &u, &why) == Status::Ok);
    CHECK(u.name == "root");
    CHECK(u.uid == 0);
    CHECK(u.gid == 0);
    CHECK(u.home.front() == '/');
    CHECK(expand::lookup_user(nullptr, "ROOT", &u, &why) == Status::Ok);  // lowercased first
    CHECK(expand::lookup_user(nullptr, "postern-surely-absent-user-42", &u, &why) == Status::NotFound);
    CHECK(expand::lookup_user(nullptr, std::string_view("ro\0ot", 5), &u, &why) == Status::NotFound);
}
