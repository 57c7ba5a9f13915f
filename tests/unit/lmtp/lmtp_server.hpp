// tests/unit/lmtp/lmtp_server.hpp — a scripted LMTP server (RFC 2033) for
// the lmtp plugin's tests: on 127.0.0.1 or on a UNIX socket, in a thread,
// one connection at a time, every wait bounded. It answers each RCPT and,
// after the message, each accepted recipient as its script says, can stop
// answering at a chosen command (a server that hangs), and records what each
// connection sent.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "../plugins/support.hpp"

namespace lmtp_test {

using namespace std::chrono_literals;
using postern::util::Fd;

struct Script {
    std::vector<std::string> lhlo = {"lmtp.test", "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"};
    std::map<std::string, std::string> rcpt;  // address -> its RCPT reply (default 250 2.1.5 ok)
    std::map<std::string, std::string> eom;   // address -> its reply after the message (default 250 2.0.0 saved)
    std::string hang_on;                      // verb ("LHLO", "DATA", "." = end of message): no reply from there on
};

class LmtpServer {
public:
    // On 127.0.0.1 (a free port), or on the UNIX socket `socket_path`.
    explicit LmtpServer(Script s, const std::string& socket_path = "")
        : script_(std::move(s)), socket_path_(socket_path) {
        if (socket_path_.empty()) {
            listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            REQUIRE(listener_);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
            socklen_t len = sizeof a;
            REQUIRE(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
            port_ = ntohs(a.sin_port);
        } else {
            listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            REQUIRE(listener_);
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            REQUIRE(socket_path_.size() < sizeof a.sun_path);
            std::memcpy(a.sun_path, socket_path_.data(), socket_path_.size());
            REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        }
        REQUIRE(::listen(listener_.get(), 4) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~LmtpServer() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    // The action's destination: "127.0.0.1:PORT" or the socket's path.
    std::string destination() const {
        return socket_path_.empty() ? "127.0.0.1:" + std::to_string(port_) : socket_path_;
    }
    // Valid after stop(): what each connection sent, in order.
    const std::vector<std::string>& transcripts() const { return transcripts_; }

private:
    struct Conn {
        Fd fd;
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
            transcripts_.emplace_back();
            c.log = &transcripts_.back();
            talk(c);
        }
    }

    static void put(Conn& c, const std::string& s) { ::send(c.fd.get(), s.data(), s.size(), MSG_NOSIGNAL); }

    // One line (with its CRLF) into *line; false on EOF, stop or 10 s of silence.
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
            pollfd p{c.fd.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            char buf[4096];
            ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
            if (n <= 0) return false;
            c.in.append(buf, static_cast<size_t>(n));
        }
    }

    // Keep the connection open and silent until the test stops the server.
    void hang() {
        while (!stop_) std::this_thread::sleep_for(20ms);
    }

    static std::string address_of(const std::string& l) {
        size_t open = l.find('<'), close = l.find('>');
        return open == std::string::npos || close == std::string::npos ? "" : l.substr(open + 1, close - open - 1);
    }

    static std::string lookup(const std::map<std::string, std::string>& m, const std::string& key,
                              const std::string& fallback) {
        auto it = m.find(key);
        return it == m.end() ? fallback : it->second;
    }

    void talk(Conn& c) {
        put(c, "220 lmtp.test LMTP ready\r\n");
        std::vector<std::string> accepted;
        std::string l;
        while (line(c, &l)) {
            std::string verb = l.substr(0, l.find_first_of(" \r"));
            if (verb == script_.hang_on) return hang();
            if (verb == "LHLO") {
                std::string out;
                for (size_t i = 0; i < script_.lhlo.size(); ++i)
                    out += "250" + std::string(i + 1 < script_.lhlo.size() ? "-" : " ") + script_.lhlo[i] + "\r\n";
                put(c, out);
            } else if (verb == "RCPT") {
                std::string a = address_of(l);
                std::string r = lookup(script_.rcpt, a, "250 2.1.5 ok\r\n");
                if (r[0] == '2') accepted.push_back(a);
                put(c, r);
            } else if (verb == "DATA") {
                if (accepted.empty()) {
                    put(c, "503 5.5.1 no valid recipients\r\n");
                    continue;
                }
                put(c, "354 go ahead\r\n");
                while (line(c, &l) && l != ".\r\n") {
                }
                if (script_.hang_on == ".") return hang();
                for (const auto& a : accepted) put(c, lookup(script_.eom, a, "250 2.0.0 <" + a + "> saved\r\n"));
                accepted.clear();
            } else if (verb == "RSET") {
                accepted.clear();
                put(c, "250 2.0.0 ok\r\n");
            } else if (verb == "QUIT") {
                put(c, "221 2.0.0 bye\r\n");
                return;
            } else {
                put(c, "250 2.0.0 ok\r\n");
            }
        }
    }

    Script script_;
    std::string socket_path_;
    Fd listener_;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::vector<std::string> transcripts_;
    std::thread thread_;
};

}  // namespace lmtp_test
