// tests/unit/plugins/relay_test.cpp — delivery-relay.so against the scripted
// server of relay_server.hpp: the exact bytes of a delivery, typed results,
// remote 4xx/5xx replies quoted with the host, a server that hangs up,
// connection reuse with RSET, bad URLs and options. TLS: relay_tls_test.cpp.
#include "relay_server.hpp"

using namespace relay_test;

TEST_CASE("relay: a clean delivery sends exactly EHLO, MAIL, RCPT, DATA, the stuffed message, QUIT") {
    test::TempDir dir;
    FakeServer server({});
    auto o = send(dir, server.url());
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 250 2.0.0 queued as 42");  // where it went, for the log
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: lmtp:// greets with LHLO and otherwise runs the same transaction") {
    test::TempDir dir;
    FakeServer server({});
    std::string url = server.url();
    auto o = send(dir, "lmtp://" + url.substr(url.find("://") + 3));
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "LHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: a non-ASCII address goes only to a server offering SMTPUTF8") {
    test::TempDir dir;
    test::Request r;
    r.path = "";
    r.options = kOptions;
    {
        Script s;
        s.ehlo = {"mx.test", "SMTPUTF8"};
        FakeServer server(s);
        r.path = server.url();
        r.dest = "jos\xc3\xa9@example.com";
        auto fd = test::message_fd(dir, kMessage);
        auto o = test::deliver(relay(), r, fd.get());
        CHECK(o.status == POSTERN_OK);
        flush(dir);
        server.stop();
        REQUIRE(server.transcripts().size() == 1);
        CHECK(server.transcripts()[0].find("MAIL FROM:<alice@example.org> SMTPUTF8\r\n") != std::string::npos);
    }
    FakeServer server({});
    r.path = server.url();
    auto fd = test::message_fd(dir, kMessage);
    auto o = test::deliver(relay(), r, fd.get());
    CHECK(o.status == POSTERN_PERMFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 5.6.7 the server does not offer SMTPUTF8 for a non-ASCII address");
    flush(dir);
    server.stop();
}

TEST_CASE("relay: deliver_many sends one transaction, a recipient the server cannot take fails alone") {
    test::TempDir dir;
    FakeServer server({});  // no SMTPUTF8
    auto fd = test::message_fd(dir, kMessage);
    const std::string url = server.url();
    const char* dests[] = {"bob@example.com", "jos\xc3\xa9@example.com", "carol@example.com"};
    postern_delivery_request reqs[3] = {};
    postern_delivery_result results[3] = {};
    const postern_delivery_request* req_ptrs[3];
    postern_delivery_result* result_ptrs[3];
    for (int i = 0; i < 3; ++i) {
        reqs[i].struct_size = sizeof reqs[i];
        reqs[i].message_fd = fd.get();
        reqs[i].sender = "alice@example.org";
        reqs[i].rcpt = reqs[i].dest = dests[i];
        reqs[i].user = "bob";
        reqs[i].home = "/nonexistent";
        reqs[i].path = url.c_str();
        reqs[i].options = kOptions.c_str();
        reqs[i].msgid = "0123456789abcdef";
        results[i].struct_size = sizeof results[i];
        req_ptrs[i] = &reqs[i];
        result_ptrs[i] = &results[i];
    }
    auto many = postern::util::deliver_many_of(relay());
    REQUIRE(many);
    many(req_ptrs, 3, result_ptrs);
    CHECK(results[0].status == POSTERN_OK);
    CHECK(results[1].status == POSTERN_PERMFAIL);
    CHECK(std::string(results[1].text) ==
          "relay: 127.0.0.1 [127.0.0.1]: 5.6.7 the server does not offer SMTPUTF8 for a non-ASCII address");
    CHECK(results[2].status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\n"
                                     "RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n" +
                                         kWire + "QUIT\r\n");
}

TEST_CASE("relay: results carry the server, its reply and the enhanced code as fields") {
    test::TempDir dir;
    test::Request r;
    r.options = kOptions;
    auto typed = [&](const Script& script, const std::string& dest = "bob@example.com") {
        FakeServer server(script);
        r.path = server.url();
        r.dest = dest;
        auto fd = test::message_fd(dir, kMessage);
        auto res = test::deliver_typed(relay(), r, fd.get());
        flush(dir);
        server.stop();
        return res;
    };
    auto res = typed({});
    CHECK(res.status == POSTERN_OK);
    CHECK(std::string(res.text) == "relay: 127.0.0.1 [127.0.0.1]: 250 2.0.0 queued as 42");
    CHECK(std::string(res.enhanced) == "2.0.0");
    CHECK(std::string(res.remote_host) == "127.0.0.1");
    CHECK(std::string(res.remote_addr) == "127.0.0.1");
    CHECK(res.remote_code == 250);
    CHECK(std::string(res.remote_reply) == "2.0.0 queued as 42");
    CHECK(res.flags == 0);

    Script refuse;
    refuse.replies["RCPT"] = "550-5.1.1 <bob@example.com>:\r\n550 5.1.1 user unknown\r\n";
    res = typed(refuse);
    CHECK(res.status == POSTERN_PERMFAIL);
    CHECK(std::string(res.enhanced) == "5.1.1");
    CHECK(res.remote_code == 550);
    CHECK(std::string(res.remote_reply) == "5.1.1 <bob@example.com>: 5.1.1 user unknown");

    // A reply without an enhanced code has none; a 4xx is temporary.
    Script later;
    later.replies["."] = "451 try later\r\n";
    res = typed(later);
    CHECK(res.status == POSTERN_TEMPFAIL);
    CHECK(std::string(res.enhanced).empty());
    CHECK(res.remote_code == 451);
    CHECK(std::string(res.remote_reply) == "try later");

    // Our own refusal names the server but quotes no reply of its.
    res = typed({}, "jos\xc3\xa9@example.com");
    CHECK(res.status == POSTERN_PERMFAIL);
    CHECK(std::string(res.enhanced) == "5.6.7");
    CHECK(std::string(res.remote_host) == "127.0.0.1");
    CHECK(res.remote_code == 0);
    CHECK(std::string(res.remote_reply).empty());
}

TEST_CASE("relay: a server offering DSN takes NOTIFY over: the result says so in its flags, not its text") {
    test::TempDir dir;
    Script s;
    s.ehlo = {"mx.test", "DSN"};
    FakeServer server(s);
    test::Request r;
    r.path = server.url();
    r.options = kOptions;
    r.mail_params = "RET=HDRS";
    r.rcpt_params = "NOTIFY=SUCCESS,FAILURE";
    auto fd = test::message_fd(dir, kMessage);
    auto res = test::deliver_typed(relay(), r, fd.get());
    CHECK(res.status == POSTERN_OK);
    CHECK(res.flags == POSTERN_RESULT_DSN_HANDED_ON);
    CHECK(std::string(res.text) == "relay: 127.0.0.1 [127.0.0.1]: 250 2.0.0 queued as 42");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0].find("RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE\r\n") != std::string::npos);
}

TEST_CASE("relay: a caller's result struct without the typed fields gets status and text only") {
    test::TempDir dir;
    FakeServer server({});
    test::Request r;
    r.path = server.url();
    r.options = kOptions;
    auto fd = test::message_fd(dir, kMessage);
    postern_delivery_request req = test::request_of(r, fd.get());
    const postern_delivery_request* reqs[] = {&req};
    postern_delivery_result res;
    std::memset(&res, 0x5a, sizeof res);  // what the plugin must not touch stays 0x5a
    res.struct_size = offsetof(postern_delivery_result, enhanced);
    postern_delivery_result* results[] = {&res};
    postern::util::deliver_many_of(relay())(reqs, 1, results);
    CHECK(res.status == POSTERN_OK);
    CHECK(std::string(res.text) == "relay: 127.0.0.1 [127.0.0.1]: 250 2.0.0 queued as 42");
    const auto* tail = reinterpret_cast<const unsigned char*>(&res) + offsetof(postern_delivery_result, enhanced);
    CHECK(
        std::all_of(tail, reinterpret_cast<const unsigned char*>(&res + 1), [](unsigned char c) { return c == 0x5a; }));
    flush(dir);
    server.stop();
}

TEST_CASE("relay: SIZE is declared when offered, and the null sender is <>") {
    test::TempDir dir;
    Script s;
    s.ehlo = {"mx.test", "SIZE 1000000"};
    FakeServer server(s);
    test::Request r;
    r.path = server.url("smtp");  // plain smtp://: no STARTTLS offered, so none
    r.options = kOptions;
    r.sender = "";
    auto fd = test::message_fd(dir, kMessage);
    auto o = test::deliver(relay(), r, fd.get());
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\nMAIL FROM:<> SIZE=" + std::to_string(kWire.size()) +
                                         "\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + kWire + "QUIT\r\n");
}

TEST_CASE("relay: 451 at RCPT is temporary and quoted with the host") {
    test::TempDir dir;
    Script s;
    s.replies["RCPT"] = "451 4.3.0 try later\r\n";
    FakeServer server(s);
    auto o = send(dir, server.url());
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 451 4.3.0 try later");
}

TEST_CASE("relay: 550 at RCPT is permanent and quoted with the host") {
    test::TempDir dir;
    Script s;
    s.replies["RCPT"] = "550-5.1.1 <bob@example.com>:\r\n550 5.1.1 user unknown\r\n";
    FakeServer server(s);
    auto o = send(dir, server.url());
    CHECK(o.status == POSTERN_PERMFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 550 5.1.1 <bob@example.com>: 5.1.1 user unknown");
    // The connection stays usable: the next message goes after an RSET.
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          "EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nQUIT\r\n");
}

TEST_CASE("relay: 554 greeting and 552 after the message are permanent, 421 temporary") {
    test::TempDir dir;
    {
        Script s;
        s.greeting = "554 5.7.1 go away\r\n";
        FakeServer server(s);
        auto o = send(dir, server.url());
        CHECK(o.status == POSTERN_PERMFAIL);
        CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 554 5.7.1 go away");
    }
    {
        Script s;
        s.replies["."] = "552 5.3.4 too big\r\n";
        FakeServer server(s);
        auto o = send(dir, server.url());
        CHECK(o.status == POSTERN_PERMFAIL);
        CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 552 5.3.4 too big");
        flush(dir);
    }
    {
        Script s;
        s.replies["MAIL"] = "421 4.3.2 shutting down\r\n";
        FakeServer server(s);
        auto o = send(dir, server.url());
        CHECK(o.status == POSTERN_TEMPFAIL);
        CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 421 4.3.2 shutting down");
    }
}

TEST_CASE("relay: a server that hangs up early is a temporary failure") {
    test::TempDir dir;
    Script s;
    s.close_on = "RCPT";
    FakeServer server(s);
    auto o = send(dir, server.url());
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: connection closed by server (after RCPT TO)");
}

TEST_CASE("relay: nothing listening is a temporary failure naming the address") {
    test::TempDir dir;
    int port;
    {
        FakeServer server({});
        port = std::stoi(server.url().substr(server.url().rfind(':') + 1));
    }
    auto o = send(dir, "smtp://127.0.0.1:" + std::to_string(port));
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: connect to port " + std::to_string(port) + ": Connection refused");
}

TEST_CASE("relay: a silent server times out as a temporary failure") {
    test::TempDir dir;
    Script s;
    s.greeting = "";
    FakeServer server(s);
    auto start = std::chrono::steady_clock::now();
    auto o = send(dir, server.url(), "helo=client.test timeout=1");
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: no reply: timed out (greeting)");
}

TEST_CASE("relay: a garbage reply is a temporary failure") {
    test::TempDir dir;
    Script s;
    s.greeting = "HTTP/1.1 400 Bad Request\r\n";
    FakeServer server(s);
    auto o = send(dir, server.url());
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: bad reply: malformed reply code (greeting)");
}

TEST_CASE("relay: two messages to one URL share one connection, RSET between them") {
    test::TempDir dir;
    FakeServer server({});
    CHECK(send(dir, server.url()).status == POSTERN_OK);
    CHECK(send(dir, server.url()).status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "RSET\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: a kept connection found dead at RSET is replaced once") {
    test::TempDir dir;
    Script s;
    s.close_after_message = true;
    FakeServer server(s);
    CHECK(send(dir, server.url()).status == POSTERN_OK);
    auto o = send(dir, server.url());
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: 250 2.0.0 queued as 42");  // where it went, for the log
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 2);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction());
    CHECK(server.transcripts()[1] == "EHLO client.test\r\n" + transaction());
}

TEST_CASE("relay: a connection lost after the message is temporary and not retried at once") {
    test::TempDir dir;
    Script s;
    s.silent_message = 2;
    FakeServer server(s);
    CHECK(send(dir, server.url()).status == POSTERN_OK);
    auto o = send(dir, server.url());
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: connection closed by server (after the message)");
    server.stop();
    // The relay may hold the message already: a second copy must wait for the queue's retry.
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "RSET\r\n" + transaction());
}

TEST_CASE("relay: bad URLs and options are configuration errors: the mail waits (temporary)") {
    test::TempDir dir;
    auto o = send(dir, "smtp://");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: missing host in relay URL");
    o = send(dir, "gopher://mx.example.org");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: unknown relay URL scheme \"gopher\"");
    o = send(dir, "lmtp://127.0.0.1");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: lmtp:// requires a port");
    o = send(dir, "smtp://127.0.0.1:1", "frobnicate=yes");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: unknown option \"frobnicate=yes\"");
    o = send(dir, "smtp://127.0.0.1:1", "timeout=0");
    CHECK(o.error == "relay: config error: timeout= must be 1 to 3600 seconds");
    o = send(dir, "smtp://127.0.0.1:1", "tls=maybe");
    CHECK(o.error == "relay: config error: tls= must be verify or no-verify, not \"maybe\"");
    o = send(dir, "smtp://127.0.0.1:1", "helo=a helo=b");
    CHECK(o.error == "relay: config error: option helo= given twice");
    o = send(dir, "smtp+notls://joe@127.0.0.1:1", "auth@joe=AGpvZQBzZWNyZXQ=");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: a label is only allowed with smtp+tls:// or smtps://");
    o = send(dir, "smtp+notls://127.0.0.1:1", "auth=joe:secret");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: config error: unknown option \"auth...\"");
    o = send(dir, "smtp://127.0.0.1:1", "cert=QUJD");
    CHECK(o.error == "relay: config error: cert= and key= go together");
    o = send(dir, "mx:bad domain", "");
    CHECK(o.error == "relay: config error: invalid domain for MX routing");
}

TEST_CASE("relay: hostile envelope addresses never reach the command line") {
    test::TempDir dir;
    FakeServer server({});
    test::Request r;
    r.path = server.url();
    r.options = kOptions;
    r.dest = "bob@example.com>\r\nRCPT TO:<eve@example.net";
    auto fd = test::message_fd(dir, kMessage);
    auto o = test::deliver(relay(), r, fd.get());
    CHECK(o.status == POSTERN_PERMFAIL);
    CHECK(o.error == "relay: invalid envelope address");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0].find("eve@") == std::string::npos);
}
