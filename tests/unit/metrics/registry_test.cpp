// The metrics registry's text exposition, byte for byte, and the HTTP
// server answering a real connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "metrics/http_server.hpp"
#include "metrics/registry.hpp"

using namespace postern::metrics;

TEST_CASE("metrics: counters, gauges and label escaping in the text format") {
    Registry r;
    r.counter("postern_messages_refused_total", "Messages refused, by reply code", {{"code", "550"}}).inc(2);
    r.counter("postern_messages_refused_total", "ignored", {{"code", "451"}}).inc();
    r.gauge("postern_sessions_current", "SMTP sessions open now").set(3);
    r.counter("postern_table_lookups_total", "Lookups", {{"table", "a\"b\\c\nd"}}).inc();
    CHECK(r.render(0) == "# HELP postern_messages_refused_total Messages refused, by reply code\n"
                         "# TYPE postern_messages_refused_total counter\n"
                         "postern_messages_refused_total{code=\"451\"} 1\n"
                         "postern_messages_refused_total{code=\"550\"} 2\n"
                         "# HELP postern_sessions_current SMTP sessions open now\n"
                         "# TYPE postern_sessions_current gauge\n"
                         "postern_sessions_current 3\n"
                         "# HELP postern_table_lookups_total Lookups\n"
                         "# TYPE postern_table_lookups_total counter\n"
                         "postern_table_lookups_total{table=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST_CASE("metrics: the same child is returned for the same labels") {
    Registry r;
    Counter& a = r.counter("x_total", "x", {{"k", "v"}});
    Counter& b = r.counter("x_total", "x", {{"k", "v"}});
    CHECK(&a == &b);
    a.inc();
    b.inc();
    CHECK(a.value() == 2);
}

TEST_CASE("metrics: histograms are cumulative, with sum, count and +Inf") {
    Registry r;
    Histogram& h = r.histogram("postern_delivery_seconds", "Delivery time", {}, {0.1, 1});
    h.observe(0.05);
    h.observe(0.5);
    h.observe(0.5);
    h.observe(7.0);
    CHECK(r.render(0) == "# HELP postern_delivery_seconds Delivery time\n"
                         "# TYPE postern_delivery_seconds histogram\n"
                         "postern_delivery_seconds_bucket{le=\"0.10000000000000001\"} 1\n"
                         "postern_delivery_seconds_bucket{le=\"1\"} 3\n"
                         "postern_delivery_seconds_bucket{le=\"+Inf\"} 4\n"
                         "postern_delivery_seconds_sum 8.0500000000000007\n"
                         "postern_delivery_seconds_count 4\n");
}

TEST_CASE("metrics: an age gauge renders seconds since the time it holds, 0 when empty") {
    Registry r;
    Gauge& oldest = r.age_gauge("postern_queue_oldest_message_age_seconds", "Age of the oldest queued message");
    CHECK(r.render(1000).find("postern_queue_oldest_message_age_seconds 0\n") != std::string::npos);
    oldest.set(940);
    CHECK(r.render(1000).find("postern_queue_oldest_message_age_seconds 60\n") != std::string::npos);
}

namespace {

// One HTTP/1.0 request to 127.0.0.1:port, the whole answer.
std::string http(unsigned port, const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

// A port the kernel says is free now.
unsigned free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("metrics: the server answers GET /metrics, refuses other paths and methods") {
    Registry r;
    r.counter("postern_sessions_total", "Sessions").inc(5);
    HttpServer server(r);
    std::string error;
    const unsigned port = free_port();
    REQUIRE(server.start("127.0.0.1", port, &error));
    std::string ok = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    CHECK(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
    CHECK(ok.find("\r\n\r\n# HELP postern_sessions_total Sessions\n# TYPE postern_sessions_total counter\n"
                  "postern_sessions_total 5\n") != std::string::npos);
    CHECK(http(port, "GET / HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0);
    CHECK(http(port, "DELETE /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);

    HttpServer second(r);
    CHECK_FALSE(second.start("127.0.0.1", port, &error));
    CHECK(error.rfind("metrics: cannot listen on 127.0.0.1 port " + std::to_string(port), 0) == 0);
    CHECK_FALSE(second.start("localhost", port, &error));
    CHECK(error == "metrics: localhost is not an IP address");
}
