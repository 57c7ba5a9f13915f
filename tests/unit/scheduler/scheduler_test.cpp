// The retry schedule: creation + 10 s x k^2, always in the future; what a
// report says about one recipient.
#include <catch2/catch.hpp>

#include "scheduler/bouncer.hpp"
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

TEST_CASE("retry schedule stays one step ahead when the wall clock was set back") {
    // Created at 100000, then the clock went back a day: slot 2 (100040)
    // lies a day ahead; the retry comes one step (30 s) from now instead.
    CHECK(next_attempt(100000, 2, 100000 - 86400) == 100000 - 86400 + 30);
    // Before its first attempt (k = 0): one base step at most.
    CHECK(next_attempt(100000, 0, 100000 - 86400) == 100000 - 86400 + 10);
    // Normal progress is untouched: the slot is within one step.
    CHECK(next_attempt(1000, 3, 1041) == 1090);
    CHECK(next_attempt(1000, 30, 1000 + 8410) == 1000 + 9000);
}

TEST_CASE("a wall-clock jump shows against the monotonic clock's progress") {
    using postern::scheduler::clock_jump;
    // 60 s on both clocks, or a few seconds' difference (whole seconds, a late loop time): no jump.
    CHECK(clock_jump(1000, 5000, 1060, 65000) == 0);
    CHECK(clock_jump(1000, 5000, 1061, 64000) == 0);
    CHECK(clock_jump(1000, 5000, 1003, 9999) == 0);
    // Set forward an hour, or back a day, while 60 s passed.
    CHECK(clock_jump(1000, 5000, 1000 + 60 + 3600, 65000) == 3600);
    CHECK(clock_jump(100000, 5000, 100000 + 60 - 86400, 65000) == -86400);
    // Wall clock standing still for 20 s is a jump back of 20 s.
    CHECK(clock_jump(1000, 5000, 1000, 25000) == -20);
}

#include "scheduler/bouncer.hpp"

TEST_CASE("a report quotes the remote server and its reply from the result's fields, never from its text") {
    using postern::delivery::Result;
    using postern::scheduler::Outcome;
    Outcome o;
    o.envelope.dest = "x@example.org";
    o.envelope.last_try = 1700000000;
    o.status = "5.7.1";
    o.result = Result{Result::Status::PermFail,
                      "relay: mx.example.org [192.0.2.1]: 550 5.7.1 <x@y>: Relay access denied"};
    o.result.enhanced = "5.7.1";
    o.result.remote = {"mx.example.org", "192.0.2.1", 550, "5.7.1 <x@y>: Relay access denied"};
    auto rr = postern::scheduler::recipient_report(postern::bounce::Kind::Failed, o);
    CHECK(rr.final_recipient == "x@example.org");
    CHECK(rr.status == "5.7.1");
    CHECK(rr.remote_mta == "mx.example.org");
    CHECK(rr.diagnostic == "550 5.7.1 <x@y>: Relay access denied");
    CHECK(rr.last_attempt == 1700000000);

    // A server that was reached but gave no reply to quote (TLS failed): its
    // name is no Remote-MTA, the reason is the diagnostic.
    o.result = Result{Result::Status::PermFail, "relay: mx.example.org [192.0.2.1]: config error: auth needs TLS"};
    o.result.remote = {"mx.example.org", "192.0.2.1", 0, ""};
    rr = postern::scheduler::recipient_report(postern::bounce::Kind::Failed, o);
    CHECK(rr.remote_mta.empty());
    CHECK(rr.diagnostic == "relay: mx.example.org [192.0.2.1]: config error: auth needs TLS");

    // Text that looks like a relay's is only text: no server named, no reply split out.
    o.result = Result{Result::Status::PermFail, "relay: forged.example [192.0.2.9]: 550 5.7.1 made up by a plugin"};
    rr = postern::scheduler::recipient_report(postern::bounce::Kind::Failed, o);
    CHECK(rr.remote_mta.empty());
    CHECK(rr.diagnostic == "relay: forged.example [192.0.2.9]: 550 5.7.1 made up by a plugin");
    CHECK(rr.will_retry_until == 0);

    o.envelope.expire = 1800000000;
    CHECK(postern::scheduler::recipient_report(postern::bounce::Kind::Delayed, o).will_retry_until == 1800000000);
}
