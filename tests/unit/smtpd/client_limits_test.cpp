// tests/unit/smtpd/client_limits_test.cpp — what SmtpServer keeps per client
// address: sessions at once (max-sessions-per-address), new connections a
// second (max-conn-rate), AUTH failures (max-auth-failures); IPv6 clients
// counted by their /64, an IPv4-mapped address as its IPv4 one.
#include <catch2/catch.hpp>

#include <uv.h>

#include <chrono>
#include <thread>

#include "config/config.hpp"
#include "smtpd/server.hpp"

using postern::smtpd::SmtpServer;
using Admission = SmtpServer::Admission;

namespace {

struct Fixture {
    uv_loop_t loop{};
    postern::config::Config config;
    std::unique_ptr<SmtpServer> server;
    Fixture(unsigned per_address, unsigned rate) {
        uv_loop_init(&loop);
        config.max_sessions_per_address = per_address;
        config.max_conn_rate = rate;
        postern::smtpd::SmtpContext ctx;
        ctx.config = &config;
        server = std::make_unique<SmtpServer>(&loop, std::move(ctx));
    }
    ~Fixture() {
        server.reset();
        uv_loop_close(&loop);
    }
    // The loop's clock moves on a second (admit() reads uv_now()).
    void next_second() {
        std::this_thread::sleep_for(std::chrono::milliseconds(1010));
        uv_update_time(&loop);
    }
};

}  // namespace

TEST_CASE("sessions per address: the one past the limit is refused, and admitted once one is released") {
    Fixture f(2, 100);
    CHECK(f.server->admit("192.0.2.1") == Admission::Ok);
    CHECK(f.server->admit("192.0.2.1") == Admission::Ok);
    CHECK(f.server->admit("192.0.2.1") == Admission::TooManySessions);
    CHECK(f.server->admit("192.0.2.2") == Admission::Ok);
    f.server->release("192.0.2.1");
    CHECK(f.server->admit("192.0.2.1") == Admission::Ok);
    // The IPv4-mapped form is the same client.
    CHECK(f.server->admit("::ffff:192.0.2.1") == Admission::TooManySessions);
}

TEST_CASE("IPv6 clients are counted by their /64") {
    Fixture f(2, 100);
    CHECK(f.server->admit("2001:db8::1") == Admission::Ok);
    CHECK(f.server->admit("2001:db8::ffff:2") == Admission::Ok);
    CHECK(f.server->admit("2001:db8:0:0:1234::3") == Admission::TooManySessions);
    CHECK(f.server->admit("2001:db8:0:1::1") == Admission::Ok);
}

TEST_CASE("connection rate: refused past N a second, refusals counted, a new second starts afresh") {
    Fixture f(100, 3);
    for (int i = 0; i < 3; ++i) CHECK(f.server->admit("192.0.2.9") == Admission::Ok);
    CHECK(f.server->admit("192.0.2.9") == Admission::TooFast);
    CHECK(f.server->admit("192.0.2.10") == Admission::Ok);
    f.next_second();
    CHECK(f.server->admit("192.0.2.9") == Admission::Ok);
}

TEST_CASE("AUTH failures are counted per address") {
    Fixture f(100, 100);
    CHECK(f.server->auth_failures("192.0.2.5") == 0);
    f.server->auth_failed("192.0.2.5");
    f.server->auth_failed("192.0.2.5");
    CHECK(f.server->auth_failures("192.0.2.5") == 2);
    CHECK(f.server->auth_failures("192.0.2.6") == 0);
    f.server->auth_failed("2001:db8::1");
    CHECK(f.server->auth_failures("2001:db8::2") == 1);
}
