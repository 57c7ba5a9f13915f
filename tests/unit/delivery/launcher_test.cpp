// The privileged channel's framing (path expansion: format_test.cpp).
#include <catch2/catch.hpp>

#include "delivery/privileged.hpp"

using namespace postern::delivery;

TEST_CASE("frames: round trip, partial input, garbage") {
    std::vector<std::string> in = {"1", "maildir", "", std::string("a\0b,:", 5), "\n"};
    std::string wire = encode_frame(in) + encode_frame({"2"});
    std::vector<std::string> out;
    bool bad = false;

    std::string partial = wire.substr(0, 7);
    CHECK_FALSE(decode_frame(partial, &out, &bad));
    CHECK_FALSE(bad);

    REQUIRE(decode_frame(wire, &out, &bad));
    CHECK(out == in);
    REQUIRE(decode_frame(wire, &out, &bad));
    CHECK(out == std::vector<std::string>{"2"});
    CHECK(wire.empty());

    for (std::string garbage : {"x:abc,", "3:abcd", "99999999999:", "5:1:a,x,", ":,"}) {
        INFO(garbage);
        std::string g = garbage;
        CHECK_FALSE(decode_frame(g, &out, &bad));
        CHECK(bad);
    }
}
