// rspamd/client: the asynchronous client on a real libuv loop against a tiny
// HTTP server on loopback (http_server.hpp) — what it sends, a normal reply,
// ten slow scans at once finishing in about the time of one, and each kind
// of failure, typed. Every wait is bounded.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "http_server.hpp"
#include "rspamd/client.hpp"

using namespace postern::rspamd;
using namespace std::chrono_literals;
using rspamd_test::HttpAnswer;
using rspamd_test::HttpRequest;
using rspamd_test::HttpServer;
using Clock = std::chrono::steady_clock;

namespace {

std::string data_file(const std::string& name) {
    std::ifstream in(std::string(POSTERN_SOURCE_DIR) + "/tests/unit/rspamd/data/" + name, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A loop of the test's own; closing it checks that the client left no
// handle behind.
struct Loop {
    uv_loop_t loop{};
    Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
    ~Loop() {
        for (int i = 0; i < 10; ++i) uv_run(&loop, UV_RUN_NOWAIT);
        CHECK(uv_loop_close(&loop) == 0);
    }
    // Runs the loop until `done()` or `limit`; a ticking timer keeps each
    // turn short, so the limit holds even when nothing happens.
    template <typename Pred>
    bool run_until(Pred done, std::chrono::milliseconds limit) {
        uv_timer_t tick;
        uv_timer_init(&loop, &tick);
        uv_timer_start(
            &tick, [](uv_timer_t*) {}, 10, 10);
        auto deadline = Clock::now() + limit;
        while (!done() && Clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
        uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
        uv_run(&loop, UV_RUN_NOWAIT);  // the close, before `tick` goes
        return done();
    }
};

ScanRequest request(std::string body = "Subject: hi\r\n\r\nhello\r\n") {
    Envelope e;
    e.mail_from = "alice@example.org";
    e.rcpts = {"bob@example.net", "carol@example.net"};
    e.ip = "203.0.113.5";
    e.hostname = "mail.example.org";
    e.helo = "mail.example.org";
    e.queue_id = "0123456789abcdef";
    e.mta_name = "mx.example.net";
    MessageBuffer buf;
    REQUIRE_FALSE(buf.append(body));
    return {e, buf.reader()};
}

RspamdClient::Options options(const std::string& url) {
    RspamdClient::Options o;
    o.url = url;
    o.timeout = 5s;
    o.connect_timeout = 2s;
    return o;
}

const Failure& failure(const std::optional<ScanResult>& r) {
    REQUIRE(r);
    if (const auto* reply = std::get_if<Reply>(&*r)) FAIL("a reply, action " << action_name(reply->action));
    return std::get<Failure>(*r);
}

const Reply& reply(const std::optional<ScanResult>& r) {
    REQUIRE(r);
    if (const auto* f = std::get_if<Failure>(&*r)) FAIL("failed: " << kind_name(f->kind) << ": " << f->text);
    return std::get<Reply>(*r);
}

// A loopback port that refuses connections: bound, not listening, and kept
// so while the test runs.
struct ClosedPort {
    postern::util::Fd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    int port = 0;
    ClosedPort() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
};

}  // namespace

TEST_CASE("client: a scan posts the envelope and message to /checkv2 and decodes the reply") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, data_file("clean.json")}; });
    Loop l;
    std::optional<ScanResult> result;
    {
        RspamdClient client(&l.loop, options(server.url() + "/"));
        bool in_scan = true;
        bool called_in_scan = false;
        client.scan(request(), [&](ScanResult r) {
            called_in_scan = in_scan;
            result = std::move(r);
        });
        in_scan = false;
        CHECK(client.running() == 1);
        REQUIRE(l.run_until([&] { return result.has_value(); }, 10s));
        CHECK_FALSE(called_in_scan);
        CHECK(client.running() == 0);
    }
    const Reply& r = reply(result);
    CHECK(r.action == Action::NoAction);
    CHECK(r.add_headers.size() == 7);

    auto reqs = server.requests();
    REQUIRE(reqs.size() == 1);
    const HttpRequest& req = reqs[0];
    CHECK(req.method == "POST");
    CHECK(req.target == "/checkv2");
    CHECK(req.body == "Subject: hi\r\n\r\nhello\r\n");
    CHECK(req.one("Content-Length") == "22");
    CHECK(req.one("From") == "alice@example.org");
    CHECK(req.all("Rcpt") == std::vector<std::string>{"bob@example.net", "carol@example.net"});
    CHECK(req.one("IP") == "203.0.113.5");
    CHECK(req.one("Hostname") == "mail.example.org");
    CHECK(req.one("Helo") == "mail.example.org");
    CHECK(req.one("Queue-Id") == "0123456789abcdef");
    CHECK(req.one("MTA-Name") == "mx.example.net");
    CHECK(req.all("User").empty());
    CHECK(req.all("Pass").empty());
    CHECK(req.all("Expect").empty());
    CHECK(req.one("User-Agent") == "postern filter-rspamd");
}

TEST_CASE("client: ten slow scans at once on one loop finish in about the time of one") {
    constexpr auto kDelay = 600ms;
    HttpServer server([&](const HttpRequest&) { return HttpAnswer{200, data_file("add_header.json"), kDelay}; });
    Loop l;
    std::vector<std::optional<ScanResult>> results(10);
    int finished = 0;
    auto start = Clock::now();
    {
        RspamdClient client(&l.loop, options(server.url()));
        for (auto& slot : results)
            client.scan(request(), [&, s = &slot](ScanResult r) {
                *s = std::move(r);
                ++finished;
            });
        CHECK(client.running() == 10);
        REQUIRE(l.run_until([&] { return finished == 10; }, 15s));
    }
    auto took = Clock::now() - start;
    for (const auto& r : results) CHECK(reply(r).action == Action::AddHeader);
    // One after another they would take ten times the delay; the bound
    // leaves room for a loaded machine.
    CHECK(took >= kDelay);
    CHECK(took < 5 * kDelay);
    CHECK(server.most_at_once() == 10);
}

TEST_CASE("client: rspamd not listening is a Connect failure") {
    ClosedPort closed;
    Loop l;
    std::optional<ScanResult> result;
    {
        RspamdClient client(&l.loop, options("http://127.0.0.1:" + std::to_string(closed.port)));
        client.scan(request(), [&](ScanResult r) { result = std::move(r); });
        REQUIRE(l.run_until([&] { return result.has_value(); }, 10s));
    }
    const Failure& f = failure(result);
    CHECK(f.kind == Failure::Kind::Connect);
    CHECK(f.text.find("onnect") != std::string::npos);
    INFO(f.text);
}

TEST_CASE("client: rspamd too slow is a Timeout failure, after the configured time") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, "", 0ms, true}; });
    Loop l;
    std::optional<ScanResult> result;
    auto start = Clock::now();
    {
        auto o = options(server.url());
        o.timeout = 300ms;
        RspamdClient client(&l.loop, o);
        client.scan(request(), [&](ScanResult r) { result = std::move(r); });
        REQUIRE(l.run_until([&] { return result.has_value(); }, 10s));
    }
    auto took = Clock::now() - start;
    const Failure& f = failure(result);
    CHECK(f.kind == Failure::Kind::Timeout);
    CHECK(took >= 300ms);
    CHECK(took < 3s);
    CHECK(server.requests().size() == 1);  // it was sent, then not answered
}

TEST_CASE("client: an error status is an HttpStatus failure quoting the answer") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{500, R"({"error":"boom"})"}; });
    Loop l;
    std::optional<ScanResult> result;
    {
        RspamdClient client(&l.loop, options(server.url()));
        client.scan(request(), [&](ScanResult r) { result = std::move(r); });
        REQUIRE(l.run_until([&] { return result.has_value(); }, 10s));
    }
    const Failure& f = failure(result);
    CHECK(f.kind == Failure::Kind::HttpStatus);
    CHECK(f.http_status == 500);
    CHECK(f.text == R"(HTTP status 500: {"error":"boom"})");
}

TEST_CASE("client: an answer that is not a reply, or too long, is a BadReply failure") {
    HttpServer server([](const HttpRequest& req) {
        if (req.one("Queue-Id") == "json") return HttpAnswer{200, "{\"action\": oops}"};
        if (req.one("Queue-Id") == "action") return HttpAnswer{200, R"({"action":"discard","score":1})"};
        return HttpAnswer{200, data_file("clean.json")};
    });
    Loop l;
    std::optional<ScanResult> json, action, big;
    {
        auto o = options(server.url());
        o.max_reply = 1000;
        RspamdClient client(&l.loop, o);
        auto with_id = [](std::string id) {
            ScanRequest r = request();
            r.envelope.queue_id = std::move(id);
            return r;
        };
        client.scan(with_id("json"), [&](ScanResult r) { json = std::move(r); });
        client.scan(with_id("action"), [&](ScanResult r) { action = std::move(r); });
        client.scan(with_id("big"), [&](ScanResult r) { big = std::move(r); });
        REQUIRE(l.run_until([&] { return json && action && big; }, 10s));
    }
    CHECK(failure(json).kind == Failure::Kind::BadReply);
    CHECK(failure(json).text == "JSON: expected a value (at byte 11)");
    CHECK(failure(action).kind == Failure::Kind::BadReply);
    CHECK(failure(action).text == "action: unknown action \"discard\"");
    CHECK(failure(big).kind == Failure::Kind::BadReply);
    CHECK(failure(big).text == "reply larger than 1000 bytes");
}

TEST_CASE("client: a message held in a file is sent byte for byte") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, data_file("clean.json")}; });
    MessageBuffer::Options bo;
    bo.spill_threshold = 4096;
    MessageBuffer buf(bo);
    std::string expect;
    for (int i = 0; i < 20000; ++i) {
        std::string line = "line " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 70), 'y');
        REQUIRE_FALSE(buf.append_line(line));
        expect += line + "\r\n";
    }
    REQUIRE(buf.in_file());
    Loop l;
    std::optional<ScanResult> result;
    {
        RspamdClient client(&l.loop, options(server.url()));
        ScanRequest req = request();
        req.body = buf.reader();
        client.scan(std::move(req), [&](ScanResult r) { result = std::move(r); });
        REQUIRE(l.run_until([&] { return result.has_value(); }, 10s));
    }
    reply(result);
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].body.size() == expect.size());
    CHECK(reqs[0].body == expect);
    // The program's own reader is untouched by the scan's.
    BodyReader mine = buf.reader();
    char c;
    CHECK(mine.read(&c, 1) == 1);
    CHECK(c == 'l');
}

TEST_CASE("client: a cancelled scan is never reported, the others go on") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, data_file("clean.json"), 200ms}; });
    Loop l;
    bool cancelled_called = false;
    std::optional<ScanResult> other;
    {
        RspamdClient client(&l.loop, options(server.url()));
        auto id = client.scan(request(), [&](ScanResult) { cancelled_called = true; });
        client.scan(request(), [&](ScanResult r) { other = std::move(r); });
        REQUIRE(l.run_until([&] { return server.requests().size() == 2; }, 10s));
        CHECK(client.cancel(id));
        CHECK_FALSE(client.cancel(id));
        CHECK_FALSE(client.cancel(9999));
        CHECK(client.running() == 1);
        REQUIRE(l.run_until([&] { return other.has_value(); }, 10s));
        CHECK(client.running() == 0);
    }
    reply(other);
    CHECK_FALSE(cancelled_called);
}

TEST_CASE("client: a client destroyed with scans running reports none and leaves no handle") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, "", 0ms, true}; });
    Loop l;
    int called = 0;
    {
        RspamdClient client(&l.loop, options(server.url()));
        for (int i = 0; i < 3; ++i) client.scan(request(), [&](ScanResult) { ++called; });
        REQUIRE(l.run_until([&] { return server.requests().size() == 3; }, 10s));
    }
    for (int i = 0; i < 5; ++i) uv_run(&l.loop, UV_RUN_NOWAIT);
    CHECK(called == 0);
    // ~Loop checks uv_loop_close: every poll and timer handle was closed.
}

TEST_CASE("client: done may start the next scan") {
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, data_file("gtube.json")}; });
    Loop l;
    std::vector<Action> seen;
    {
        RspamdClient client(&l.loop, options(server.url()));
        std::function<void(ScanResult)> again = [&](ScanResult r) {
            seen.push_back(reply(std::optional<ScanResult>(std::move(r))).action);
            if (seen.size() < 3) client.scan(request(), again);
        };
        client.scan(request(), again);
        REQUIRE(l.run_until([&] { return seen.size() == 3; }, 10s));
    }
    CHECK(seen == std::vector<Action>(3, Action::Reject));
}

TEST_CASE("client: only http and https, no proxy from the environment") {
    Loop l;
    std::optional<ScanResult> ftp;
    {
        RspamdClient client(&l.loop, options("ftp://127.0.0.1:21"));
        client.scan(request(), [&](ScanResult r) { ftp = std::move(r); });
        REQUIRE(l.run_until([&] { return ftp.has_value(); }, 10s));
    }
    CHECK(failure(ftp).kind == Failure::Kind::Transfer);

    // A proxy meant for the web must not see mail: the scan goes straight
    // to the server.
    HttpServer server([](const HttpRequest&) { return HttpAnswer{200, data_file("clean.json")}; });
    ClosedPort proxy;
    std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy.port);
    ::setenv("http_proxy", proxy_url.c_str(), 1);
    ::setenv("HTTP_PROXY", proxy_url.c_str(), 1);
    std::optional<ScanResult> direct;
    {
        RspamdClient client(&l.loop, options(server.url()));
        client.scan(request(), [&](ScanResult r) { direct = std::move(r); });
        l.run_until([&] { return direct.has_value(); }, 10s);
    }
    ::unsetenv("http_proxy");
    ::unsetenv("HTTP_PROXY");
    reply(direct);
}
