// Path expansion and the privileged channel's framing.
#include <catch2/catch.hpp>

#include "delivery/launcher.hpp"
#include "delivery/privileged.hpp"

using namespace postern::delivery;

namespace {
Item item() {
    Item i;
    i.sender = "Alice@Example.com";
    i.rcpt = "Bob+lists@Example.org";
    i.dest = "bob@example.org";
    return i;
}
std::string expand(std::string_view tmpl, const Item& i, const std::string& home) {
    return expand_path(tmpl, "bob", i, home);
}
}  // namespace

TEST_CASE("expand_path: tokens, ~ and lowercase") {
    CHECK(expand("~/Maildir", item(), "/home/bob") == "/home/bob/Maildir");
    CHECK(expand("/var/vmail/%{rcpt.domain}/%{rcpt.user}", item(), "/h") == "/var/vmail/Example.org/Bob+lists");
    CHECK(expand("/v/%{rcpt.domain:lowercase}/%{dest.user}", item(), "/h") == "/v/example.org/bob");
    CHECK(expand("%{user.directory}/m/%{user.username}", item(), "/home/bob") == "/home/bob/m/bob");
    CHECK(expand("/x/%{sender}", item(), "/h") == "/x/Alice@Example.com");
    CHECK(expand("/x/%{nosuch}/y", item(), "/h") == "/x//y");
    CHECK(expand("/x/%{rcpt.user", item(), "/h") == "/x/%{rcpt.user");
}

TEST_CASE("expand_path: envelope values cannot climb out of the folder") {
    Item j = item();
    j.rcpt = "../../etc@x";
    CHECK(expand("/var/mail/%{rcpt.user}", j, "/h") == "/var/mail/:.:..:etc");
    j.rcpt = "a/b\nc@x";
    CHECK(expand("/m/%{rcpt.user}", j, "/h") == "/m/a:b:c");
}

TEST_CASE("expand_path: nothing a shell would act on reaches an mda command") {
    Item j = item();
    j.sender = "x$(touch /tmp/p)`id`;rm -rf / &|>\"'@evil.example";
    CHECK(expand("/usr/bin/procmail -f %{sender}", j, "/h") ==
          "/usr/bin/procmail -f x::touch::tmp:p::id::rm:-rf::::::::@evil.example");
}

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
