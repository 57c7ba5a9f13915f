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
