// Unit tests of MX ordering (plugins/relay/mx.cpp): preference order, the
// shuffle among equals (seeded, so reproducible), the backup-MX cutoff at our
// own name, null MX, and the clean-up of odd answers.

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "plugins/relay/mx.hpp"

using namespace postern::relay;
using Hosts = std::vector<std::string>;

namespace {

Hosts order(std::vector<MxRecord> records, std::string_view self = "", bool* null_mx = nullptr, unsigned seed = 1) {
    std::mt19937 rng(seed);
    bool is_null = true;
    Hosts out = order_mx(std::move(records), self, rng, &is_null);
    if (null_mx) *null_mx = is_null;
    return out;
}

}  // namespace

TEST_CASE("mx: sorted by preference", "[relay][mx]") {
    bool null_mx = true;
    Hosts h = order({{30, "c.example"}, {10, "a.example"}, {20, "b.example"}}, "", &null_mx);
    CHECK(h == Hosts{"a.example", "b.example", "c.example"});
    CHECK_FALSE(null_mx);
}

TEST_CASE("mx: a single record", "[relay][mx]") {
    CHECK(order({{10, "mx.example"}}) == Hosts{"mx.example"});
    CHECK(order({{0, "mx.example"}}) == Hosts{"mx.example"});
}

TEST_CASE("mx: no records give an empty list, not a null MX", "[relay][mx]") {
    bool null_mx = true;
    CHECK(order({}, "", &null_mx).empty());
    CHECK_FALSE(null_mx);
}

TEST_CASE("mx: equal preferences are shuffled, both orders occur", "[relay][mx]") {
    std::mt19937 rng(12345);
    int a_first = 0, b_first = 0;
    for (int run = 0; run < 200; ++run) {
        bool null_mx = true;
        Hosts h = order_mx({{10, "a.example"}, {10, "b.example"}, {20, "z.example"}}, "", rng, &null_mx);
        REQUIRE(h.size() == 3);
        REQUIRE(h[2] == "z.example");  // never before the better preference
        REQUIRE(std::set<std::string>{h[0], h[1]} == std::set<std::string>{"a.example", "b.example"});
        (h[0] == "a.example" ? a_first : b_first)++;
    }
    // 200 fair coin flips: each side below 60 has probability ~1e-9; the seed
    // makes the outcome fixed anyway.
    CHECK(a_first > 60);
    CHECK(b_first > 60);
}

TEST_CASE("mx: shuffling stays within each preference", "[relay][mx]") {
    std::mt19937 rng(7);
    std::set<Hosts> seen;
    for (int run = 0; run < 300; ++run) {
        Hosts h = order_mx({{5, "c"}, {1, "a1"}, {5, "d"}, {1, "a2"}, {1, "a3"}, {9, "e"}}, "", rng, nullptr);
        REQUIRE(h.size() == 6);
        REQUIRE(std::set<std::string>(h.begin(), h.begin() + 3) == std::set<std::string>{"a1", "a2", "a3"});
        REQUIRE(std::set<std::string>(h.begin() + 3, h.begin() + 5) == std::set<std::string>{"c", "d"});
        REQUIRE(h[5] == "e");
        seen.insert(h);
    }
    CHECK(seen.size() == 12);  // 3! orders of the first group times 2! of the second
}

TEST_CASE("mx: the same seed gives the same order", "[relay][mx]") {
    std::vector<MxRecord> r{{10, "a"}, {10, "b"}, {10, "c"}, {10, "d"}};
    CHECK(order(r, "", nullptr, 99) == order(r, "", nullptr, 99));
}

TEST_CASE("mx: as a backup MX, only better exchangers remain", "[relay][mx]") {
    std::vector<MxRecord> r{
        {10, "primary.example"}, {20, "backup.example"}, {20, "other.example"}, {30, "worse.example"}};
    CHECK(order(r, "backup.example") == Hosts{"primary.example"});
    CHECK(order(r, "worse.example").size() == 3);
    CHECK(order(r, "unrelated.example").size() == 4);
}

TEST_CASE("mx: our own name compares without case or final dot", "[relay][mx]") {
    std::vector<MxRecord> r{{10, "Primary.Example."}, {20, "BACKUP.example."}};
    CHECK(order(r, "backup.EXAMPLE") == Hosts{"Primary.Example"});
    CHECK(order(r, "backup.example.") == Hosts{"Primary.Example"});
}

TEST_CASE("mx: when we are the best MX nothing remains", "[relay][mx]") {
    bool null_mx = true;
    CHECK(order({{10, "me.example"}, {20, "backup.example"}}, "me.example", &null_mx).empty());
    CHECK_FALSE(null_mx);
    // Listed twice: the better of our own preferences is the cutoff.
    CHECK(order({{5, "a"}, {10, "me"}, {30, "me"}, {20, "b"}}, "me") == Hosts{"a"});
    // An empty own name (or ".") never cuts.
    CHECK(order({{10, "a"}}, ".") == Hosts{"a"});
}

TEST_CASE("mx: null MX", "[relay][mx]") {
    bool null_mx = false;
    CHECK(order({{0, "."}}, "", &null_mx).empty());
    CHECK(null_mx);
    null_mx = false;
    CHECK(order({{0, ""}}, "", &null_mx).empty());
    CHECK(null_mx);
    // The null MX does not depend on our own name.
    null_mx = false;
    CHECK(order({{0, "."}}, "mx.example", &null_mx).empty());
    CHECK(null_mx);
}

TEST_CASE("mx: a root host that is not a proper null MX is skipped", "[relay][mx]") {
    bool null_mx = true;
    CHECK(order({{10, "."}}, "", &null_mx).empty());
    CHECK_FALSE(null_mx);
    CHECK(order({{0, "."}, {10, "mx.example"}}, "", &null_mx) == Hosts{"mx.example"});
    CHECK_FALSE(null_mx);
}

TEST_CASE("mx: names with an empty label are skipped", "[relay][mx]") {
    // Found by fuzz_mx: ".." came out as ".", a name no exchanger can have.
    CHECK(order({{0, ".."}, {5, ".a"}, {5, "a..b"}, {5, "b."}, {7, "c"}}) == Hosts{"b", "c"});
}

TEST_CASE("mx: duplicates keep their best preference, final dots dropped", "[relay][mx]") {
    CHECK(order({{20, "a.example."}, {10, "b.example"}, {5, "A.EXAMPLE"}}) == Hosts{"A.EXAMPLE", "b.example"});
    CHECK(order({{10, "mx.example."}}) == Hosts{"mx.example"});
}

TEST_CASE("mx: a null result pointer is allowed", "[relay][mx]") {
    std::mt19937 rng(1);
    CHECK(order_mx({{0, "."}}, "", rng, nullptr).empty());
    CHECK(order_mx({{1, "x"}}, "", rng, nullptr) == Hosts{"x"});
}
