// tests/unit/plugins/relay_test.cpp — delivery-relay.so, loaded as
// postern-local loads it, against a scripted SMTP server run by the test on
// 127.0.0.1 (a thread, one connection at a time, every wait bounded): the
// exact bytes of a delivery, remote 4xx/5xx replies quoted with the host, a
// server that hangs up, connection reuse with RSET, bad URLs and options,
// STARTTLS with a self-signed certificate, and smtp+tls:// refusing a server
// without STARTTLS.
//
// The test's server side of TLS is plain OpenSSL.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using postern::util::Fd;

const postern::util::DeliveryPlugin& relay() {
    static auto p = test::load_delivery("relay");
    return p;
}

// The few OpenSSL server functions the test needs, typed from the headers.

// What the scripted server does.
struct Script {
    std::string greeting = "220 mx.test ESMTP\r\n";
    std::vector<std::string> ehlo = {"mx.test"};  // the 250 lines; STARTTLS added when offered
    bool offer_starttls = false;
    std::string cert, key;                       // PEM files, for STARTTLS
    std::map<std::string, std::string> replies;  // verb ("RCPT", "DATA", "." for end of data) -> reply
    std::string close_on;                        // verb at which to hang up without a reply
    bool close_after_message = false;            // hang up after the reply to the first message
    int silent_message = 0;                      // hang up without a reply after this message (1 = first)
};

class FakeServer {
public:
    explicit FakeServer(Script s) : script_(std::move(s)) {
        listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(listener_);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        REQUIRE(::listen(listener_.get(), 4) == 0);
        if (!script_.cert.empty()) {
            ctx_ = ::SSL_CTX_new(::TLS_server_method());
            REQUIRE(ctx_);
            REQUIRE(::SSL_CTX_use_certificate_chain_file(ctx_, script_.cert.c_str()) == 1);
            REQUIRE(::SSL_CTX_use_PrivateKey_file(ctx_, script_.key.c_str(), SSL_FILETYPE_PEM) == 1);
        }
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeServer() {
        stop();
        if (ctx_) ::SSL_CTX_free(ctx_);
    }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::string url(const std::string& scheme = "smtp+notls") const {
        return scheme + "://127.0.0.1:" + std::to_string(port_);
    }
    // Valid after stop(): what each connection sent, TLS already removed.
    const std::vector<std::string>& transcripts() const { return transcripts_; }

private:
    struct Conn {
        Fd fd;
        SSL* ssl = nullptr;
        std::string in;
        std::string* log;
    };

    void serve() {
        auto deadline = std::chrono::steady_clock::now() + 30s;
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
            pollfd p{listener_.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            Conn c;
            c.fd.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c.fd) continue;
            timeval tv{5, 0};  // bounds SSL_accept and writes
            ::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            ::setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            transcripts_.emplace_back();
            c.log = &transcripts_.back();
            talk(c);
            if (c.ssl) ::SSL_free(c.ssl);
        }
    }

    void put(Conn& c, const std::string& s) {
        if (c.ssl) ::SSL_write(c.ssl, s.data(), static_cast<int>(s.size()));
        else ::send(c.fd.get(), s.data(), s.size(), MSG_NOSIGNAL);
    }

    // One line (with its CRLF) into *line; false on EOF, error, stop or 10 s of silence.
    bool line(Conn& c, std::string* line) {
        auto deadline = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            size_t nl = c.in.find("\r\n");
            if (nl != std::string::npos) {
                *line = c.in.substr(0, nl + 2);
                c.in.erase(0, nl + 2);
                *c.log += *line;
                return true;
            }
            if (stop_ || std::chrono::steady_clock::now() > deadline) return false;
            if (!c.ssl || ::SSL_pending(c.ssl) == 0) {
                pollfd p{c.fd.get(), POLLIN, 0};
                if (::poll(&p, 1, 50) <= 0) continue;
            }
            char buf[4096];
            int n = c.ssl ? ::SSL_read(c.ssl, buf, sizeof buf)
                          : static_cast<int>(::recv(c.fd.get(), buf, sizeof buf, 0));
            if (n <= 0) return false;
            c.in.append(buf, static_cast<size_t>(n));
        }
    }

    std::string reply(const std::string& verb, const std::string& fallback) {
        auto it = script_.replies.find(verb);
        return it == script_.replies.end() ? fallback : it->second;
    }

    std::string ehlo_reply() {
        std::vector<std::string> lines = script_.ehlo;
        if (script_.offer_starttls && !tls_now_) lines.push_back("STARTTLS");
        std::string out;
        for (size_t i = 0; i < lines.size(); ++i)
            out += "250" + std::string(i + 1 < lines.size() ? "-" : " ") + lines[i] + "\r\n";
        return out;
    }

    void talk(Conn& c) {
        tls_now_ = false;
        put(c, script_.greeting);
        std::string l;
        while (line(c, &l)) {
            std::string verb = l.substr(0, l.find_first_of(" \r"));
            for (char& ch : verb) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            if (verb == script_.close_on) return;
            if (verb == "EHLO") {
                put(c, reply("EHLO", ehlo_reply()));
            } else if (verb == "STARTTLS" && script_.offer_starttls && !tls_now_) {
                put(c, "220 2.0.0 go ahead\r\n");
                c.ssl = ::SSL_new(ctx_);
                ::SSL_set_fd(c.ssl, c.fd.get());
                if (::SSL_accept(c.ssl) != 1) return;
                tls_now_ = true;
                *c.log += "<TLS>\r\n";
            } else if (verb == "DATA") {
                std::string r = reply("DATA", "354 go ahead\r\n");
                put(c, r);
                if (r[0] != '3') continue;
                while (line(c, &l) && l != ".\r\n") {
                }
                if (++messages_ == script_.silent_message) return;
                put(c, reply(".", "250 2.0.0 queued as 42\r\n"));
                if (script_.close_after_message) return;
            } else if (verb == "QUIT") {
                put(c, "221 2.0.0 bye\r\n");
                return;
            } else {
                put(c, reply(verb, "250 2.0.0 ok\r\n"));
            }
        }
    }

    Script script_;
    Fd listener_;
    int port_ = 0;
    SSL_CTX* ctx_ = nullptr;
    bool tls_now_ = false;
    int messages_ = 0;
    std::atomic<bool> stop_{false};
    std::vector<std::string> transcripts_;
    std::thread thread_;
};

const std::string kMessage = "Subject: hi\n\n.dot line\nbody\n";
const std::string kWire = "Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n";
const std::string kOptions = "helo=client.test timeout=10";

test::Outcome send(const test::TempDir& dir, const std::string& url, const std::string& options = kOptions,
                   const std::string& message = kMessage) {
    test::Request r;
    r.path = url;
    r.options = options;
    auto fd = test::message_fd(dir, message);
    return test::deliver(relay(), r, fd.get());
}

// A call for another URL closes the kept connection with QUIT; a bad URL is
// the cheapest such call.
test::Outcome flush(const test::TempDir& dir) { return send(dir, "smtp://"); }

std::string transaction(const std::string& extra_mail = "") {
    return "MAIL FROM:<alice@example.org>" + extra_mail + "\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + kWire;
}

// A self-signed certificate for CN=localhost, made by the openssl tool.
// With `san`, the certificate also names that subjectAltName ("IP:127.0.0.1").
void make_cert(const test::TempDir& dir, Script* s, const std::string& san = "") {
    s->cert = dir / "cert.pem";
    s->key = dir / "key.pem";
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + s->key +
                      " -out " + s->cert + (san.empty() ? "" : " -addext subjectAltName=" + san) + " >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
}

}  // namespace

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

TEST_CASE("relay: deliver_many sends one transaction; a recipient the server cannot take fails alone") {
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

TEST_CASE("relay: smtp+tls:// uses STARTTLS and sends the transaction encrypted") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify");
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.3 TLS_", 0) == 0);  // the log names the TLS used
    CHECK(o.error.find(": 250 2.0.0 queued as 42") != std::string::npos);
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          "EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\nEHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: protocols and ciphers limit the TLS of the connection") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"),
                  kOptions + " tls=no-verify tls-versions=771:771 ciphers=ECDHE-RSA-AES128-GCM-SHA256");
    CHECK(o.status == POSTERN_OK);
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256: 250 ", 0) == 0);
    flush(dir);
    o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify ciphers=NO-SUCH-CIPHER");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS setup failed: no usable cipher in \"NO-SUCH-CIPHER\"");
    o = send(dir, server.url("smtp+tls"), kOptions + " tls-versions=772:771");
    CHECK(o.error == "relay: config error: tls-versions= must be MIN:MAX");
    flush(dir);
    server.stop();
}

TEST_CASE("relay: smtp+tls:// checks the certificate unless tls=no-verify") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions);
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS handshake failed: certificate: self-signed certificate");
    // Trusting the certificate as a CA: the chain passes, the name (127.0.0.1 vs CN=localhost) does not.
    o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + s.cert);
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS handshake failed: certificate: IP address mismatch");
    o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + dir / "missing.pem");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: cannot load CA certificates from " + dir / "missing.pem");
}

TEST_CASE("relay: smtp+tls:// with a trusted certificate naming the host delivers") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s, "IP:127.0.0.1");
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + s.cert);
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.3 TLS_", 0) == 0);  // the log names the TLS used
    CHECK(o.error.find(": 250 2.0.0 queued as 42") != std::string::npos);
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          "EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\nEHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: plain smtp:// uses STARTTLS when offered, without checking the certificate") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp"));
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0].rfind("EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\n", 0) == 0);
}

TEST_CASE("relay: smtp+tls:// to a server without STARTTLS is temporary and sends no mail") {
    test::TempDir dir;
    FakeServer server({});
    auto o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: STARTTLS not offered");
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n");
}
