// Unit tests for PasswdCache (expand/passwd_cache.cpp): answers kept for
// their time and no longer, failures never kept, the size bounded.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "expand/passwd_cache.hpp"

using namespace postern::expand;
using Clock = std::chrono::steady_clock;

namespace {

struct Fake {
    std::map<std::string, int> calls;
    Status next = Status::Ok;
    Clock::time_point now{};

    PasswdCache cache() {
        return PasswdCache(
            [this](const std::string& name, UserInfo* out, std::string* error) {
                ++calls[name];
                if (next == Status::Ok) *out = {name, 1000, 1000, "/home/" + name};
                if (next == Status::TempFail) *error = "nss down";
                return next;
            },
            [this] { return now; });
    }
};

}  // namespace

TEST_CASE("passwd cache: an answer is kept for its time, then asked again") {
    Fake f;
    PasswdCache c = f.cache();
    UserInfo info;
    std::string error;
    CHECK(c.get("bob", &info, &error) == Status::Ok);
    CHECK(info.home == "/home/bob");
    info = {};
    f.now += std::chrono::seconds(4);
    CHECK(c.get("bob", &info, &error) == Status::Ok);
    CHECK(info.home == "/home/bob");  // from memory
    CHECK(f.calls["bob"] == 1);
    f.now += std::chrono::seconds(2);
    f.next = Status::NotFound;  // the account was deleted meanwhile
    CHECK(c.get("bob", &info, &error) == Status::NotFound);
    CHECK(f.calls["bob"] == 2);
}

TEST_CASE("passwd cache: not found is kept too, a failure never is") {
    Fake f;
    PasswdCache c = f.cache();
    UserInfo info;
    std::string error;
    f.next = Status::NotFound;
    CHECK(c.get("nobody-here", &info, &error) == Status::NotFound);
    CHECK(c.get("nobody-here", &info, &error) == Status::NotFound);
    CHECK(f.calls["nobody-here"] == 1);
    f.next = Status::TempFail;
    CHECK(c.get("carol", &info, &error) == Status::TempFail);
    CHECK(error == "nss down");
    f.next = Status::Ok;
    CHECK(c.get("carol", &info, &error) == Status::Ok);
    CHECK(f.calls["carol"] == 2);
}

TEST_CASE("passwd cache: a flood of names does not grow it past its bound") {
    Fake f;
    PasswdCache c = f.cache();
    UserInfo info;
    std::string error;
    for (std::size_t i = 0; i < PasswdCache::kMaxEntries + 10; ++i) c.get("u" + std::to_string(i), &info, &error);
    // Started again once full: the first names are asked again, the last ones are not.
    c.get("u0", &info, &error);
    CHECK(f.calls["u0"] == 2);
    c.get("u" + std::to_string(PasswdCache::kMaxEntries + 9), &info, &error);
    CHECK(f.calls["u" + std::to_string(PasswdCache::kMaxEntries + 9)] == 1);
}
