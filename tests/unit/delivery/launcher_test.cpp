// Path expansion and the privileged channel's framing.
#include <catch2/catch.hpp>

#include "delivery/launcher.hpp"
#include "delivery/privileged.hpp"

using namespace postern::delivery;

namespace {
Job job() {
    Job j;
    j.sender = "Alice@Example.com";
    j.rcpt = "Bob+lists@Example.org";
    j.dest = "bob@example.org";
    j.user = "bob";
    return j;
}
}  // namespace

TEST_CASE("expand_path: tokens, ~ and lowercase") {
    CHECK(expand_path("~/Maildir", job(), "/home/bob") == "/home/bob/Maildir");
    CHECK(expand_path("/var/vmail/%{rcpt.domain}/%{rcpt.user}", job(), "/h") == "/var/vmail/Example.org/Bob+lists");
    CHECK(expand_path("/v/%{rcpt.domain:lowercase}/%{dest.user}", job(), "/h") == "/v/example.org/bob");
    CHECK(expand_path("%{user.directory}/m/%{user.username}", job(), "/home/bob") == "/home/bob/m/bob");
    CHECK(expand_path("/x/%{sender}", job(), "/h") == "/x/Alice@Example.com");
    CHECK(expand_path("/x/%{nosuch}/y", job(), "/h") == "/x//y");
    CHECK(expand_path("/x/%{rcpt.user", job(), "/h") == "/x/%{rcpt.user");
}

TEST_CASE("expand_path: envelope values cannot climb out of the folder") {
    Job j = job();
    j.rcpt = "../../etc@x";
    CHECK(expand_path("/var/mail/%{rcpt.user}", j, "/h") == "/var/mail/:.:..:etc");
    j.rcpt = "a/b\nc@x";
    CHECK(expand_path("/m/%{rcpt.user}", j, "/h") == "/m/a:b:c");
}

TEST_CASE("expand_path: nothing a shell would act on reaches an mda command") {
    Job j = job();
    j.sender = "x$(touch /tmp/p)`id`;rm -rf / &|>\"'@evil.example";
    CHECK(expand_path("/usr/bin/procmail -f %{sender}", j, "/h") ==
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
