// tests/unit/plugins/relay_server.hpp — what the relay plugin's unit tests
// share: delivery-relay.so loaded as postern-local loads it, and a scripted
// SMTP server on 127.0.0.1 (a thread, one connection at a time, every wait
// bounded) that records what it was sent; its side of TLS is plain OpenSSL.
#pragma once

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

namespace relay_test {

using namespace std::chrono_literals;
using postern::util::Fd;

inline const postern::util::DeliveryPlugin& relay() {
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

inline const std::string kMessage = "Subject: hi\n\n.dot line\nbody\n";
inline const std::string kWire = "Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n";
inline const std::string kOptions = "helo=client.test timeout=10";

inline test::Outcome send(const test::TempDir& dir, const std::string& url, const std::string& options = kOptions,
                          const std::string& message = kMessage) {
    test::Request r;
    r.path = url;
    r.options = options;
    auto fd = test::message_fd(dir, message);
    return test::deliver(relay(), r, fd.get());
}

// A call for another URL closes the kept connection with QUIT; a bad URL is
// the cheapest such call.
inline test::Outcome flush(const test::TempDir& dir) { return send(dir, "smtp://"); }

inline std::string transaction(const std::string& extra_mail = "") {
    return "MAIL FROM:<alice@example.org>" + extra_mail + "\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + kWire;
}

// A self-signed certificate for CN=localhost, made by the openssl tool.
// With `san`, the certificate also names that subjectAltName ("IP:127.0.0.1").
inline void make_cert(const test::TempDir& dir, Script* s, const std::string& san = "") {
    s->cert = dir / "cert.pem";
    s->key = dir / "key.pem";
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + s->key +
                      " -out " + s->cert + (san.empty() ? "" : " -addext subjectAltName=" + san) + " >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
}

}  // namespace relay_test
