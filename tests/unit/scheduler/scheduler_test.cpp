// The retry schedule: creation + 10 s x k^2, always in the future.
#include <catch2/catch.hpp>

#include "scheduler/scheduler.hpp"

using postern::scheduler::next_attempt;

TEST_CASE("retry schedule follows creation + base x k^2") {
    CHECK(next_attempt(1000, 1, 1000) == 1010);
    CHECK(next_attempt(1000, 2, 1011) == 1040);
    CHECK(next_attempt(1000, 3, 1041) == 1090);
    CHECK(next_attempt(1000, 1, 1000, 400) == 1400);
}

TEST_CASE("retry schedule skips slots already past (after a restart)") {
    // Retry 1 would be at 1010, but it is 1100 now: the next free slot is k=4 (1160).
    CHECK(next_attempt(1000, 1, 1100) == 1160);
    CHECK(next_attempt(1000, 0, 1000) == 1010);
}

#include "scheduler/bouncer.hpp"

TEST_CASE("remote_reply splits a relay result into the server and its reply") {
    using postern::scheduler::remote_reply;
    std::string mta, reply;
    CHECK(remote_reply("relay: mx.example.org [192.0.2.1]: 550 5.7.1 <x@y>: Relay access denied", &mta, &reply));
    CHECK(mta == "mx.example.org");
    CHECK(reply == "550 5.7.1 <x@y>: Relay access denied");
    CHECK(remote_reply("relay: mx.example.org [2001:db8::1] TLSv1.3 TLS_AES_256_GCM_SHA384: 451 4.3.0 later", &mta,
                       &reply));
    CHECK(reply == "451 4.3.0 later");
    mta = reply = "unchanged";
    CHECK_FALSE(
        remote_reply("relay: mx.example.org [192.0.2.1]: connect to port 25: Connection refused", &mta, &reply));
    CHECK_FALSE(
        remote_reply("relay: example.org: 5.1.10 the domain accepts no mail (null MX, RFC 7505)", &mta, &reply));
    CHECK_FALSE(remote_reply("maildir: 550 no", &mta, &reply));
    CHECK((mta == "unchanged" && reply == "unchanged"));
}

TEST_CASE("status_of finds the enhanced code a report quotes") {
    using postern::scheduler::status_of;
    CHECK(status_of("550 5.1.1 <a@b>: User unknown", "5.0.0") == "5.1.1");
    CHECK(status_of("5.2.2 mailbox full", "5.0.0") == "5.2.2");
    CHECK(status_of("relay: mx.example.org [192.0.2.1]: 550 5.7.1 <x@y>: Relay access denied", "5.0.0") == "5.7.1");
    CHECK(status_of("maildir: cannot create /x: Permission denied", "4.0.0") == "4.0.0");
    CHECK(status_of("451 4.3.0 try later", "4.0.0") == "4.3.0");
    CHECK(status_of("version 5.10.2x", "5.0.0") == "5.0.0");
    CHECK(status_of("", "2.0.0") == "2.0.0");
}
