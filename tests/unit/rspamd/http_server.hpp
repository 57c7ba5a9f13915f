// A tiny HTTP/1.x server on loopback for the client's tests, standing in
// for rspamd: a thread accepts, a thread per connection reads one request
// (headers and a Content-Length body), asks the test's handler what to
// answer, waits as long as the answer says (or until the server stops), and
// answers with "Connection: close" as rspamd does. It records every request
// and the most connections it held at once. Everything it waits for is
// bounded by its stop flag, so the destructor always returns.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "postern/support/ascii.hpp"
#include "postern/support/fd.hpp"

namespace rspamd_test {

struct HttpRequest {
    std::string method, target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    std::vector<std::string> all(std::string_view name) const {
        std::vector<std::string> out;
        for (const auto& [n, v] : headers)
            if (postern::util::iequals(n, name)) out.push_back(v);
        return out;
    }
    std::string one(std::string_view name) const {
        auto v = all(name);
        return v.size() == 1 ? v[0] : "<" + std::to_string(v.size()) + " values>";
    }
};

struct HttpAnswer {
    int status = 200;
    std::string body;
    std::chrono::milliseconds delay{0};
    bool hang = false;  // never answer: hold the connection until the server stops
};

class HttpServer {
public:
    using Handler = std::function<HttpAnswer(const HttpRequest&)>;

    explicit HttpServer(Handler handler) : handler_(std::move(handler)) {
        listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        int one = 1;
        ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listener_.get(), 64) != 0)
            throw std::runtime_error("test server: cannot listen");
        socklen_t len = sizeof a;
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~HttpServer() {
        {
            std::lock_guard lock(m_);
            stopping_ = true;
        }
        cv_.notify_all();
        acceptor_.join();
        for (auto& t : connections_) t.join();
    }

    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    std::vector<HttpRequest> requests() {
        std::lock_guard lock(m_);
        return requests_;
    }
    int most_at_once() {
        std::lock_guard lock(m_);
        return most_;
    }

private:
    Handler handler_;
    postern::util::Fd listener_;
    int port_ = 0;
    std::thread acceptor_;
    std::vector<std::thread> connections_;  // touched by the acceptor only, then the destructor
    std::mutex m_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::vector<HttpRequest> requests_;
    int open_ = 0, most_ = 0;

    bool stopping() {
        std::lock_guard lock(m_);
        return stopping_;
    }

    // Waits up to 20 ms for `events` on fd; false when stopping.
    bool wait_for(int fd, short events) {
        for (;;) {
            if (stopping()) return false;
            pollfd p{fd, events, 0};
            int n = ::poll(&p, 1, 20);
            if (n > 0) return true;
        }
    }

    void accept_loop() {
        while (wait_for(listener_.get(), POLLIN)) {
            int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            connections_.emplace_back([this, c] { serve(postern::util::Fd(c)); });
        }
    }

    void serve(postern::util::Fd fd) {
        {
            std::lock_guard lock(m_);
            most_ = std::max(most_, ++open_);
        }
        HttpRequest req;
        bool ok = read_request(fd.get(), req);
        {
            std::lock_guard lock(m_);
            if (ok) requests_.push_back(req);
        }
        if (ok) answer(fd.get(), handler_(req));
        std::lock_guard lock(m_);
        --open_;
    }

    bool read_request(int fd, HttpRequest& req) {
        std::string in;
        std::size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos)
            if (!read_some(fd, in)) return false;
        std::string head = in.substr(0, end);
        in.erase(0, end + 4);
        std::size_t pos = head.find("\r\n");
        std::string first = head.substr(0, pos);
        auto sp1 = first.find(' '), sp2 = first.rfind(' ');
        req.method = first.substr(0, sp1);
        req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
        std::size_t length = 0;
        while (pos != std::string::npos) {
            std::size_t next = head.find("\r\n", pos + 2);
            std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
            pos = next;
            auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            req.headers.emplace_back(line.substr(0, colon), value);
            if (postern::util::iequals(line.substr(0, colon), "Content-Length")) length = std::stoul(value);
        }
        while (in.size() < length)
            if (!read_some(fd, in)) return false;
        req.body = in.substr(0, length);
        return true;
    }

    bool read_some(int fd, std::string& in) {
        if (!wait_for(fd, POLLIN)) return false;
        char buf[65536];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return false;
        in.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    void answer(int fd, const HttpAnswer& a) {
        {
            std::unique_lock lock(m_);
            if (a.hang) {
                cv_.wait(lock, [this] { return stopping_; });
                return;
            }
            if (cv_.wait_for(lock, a.delay, [this] { return stopping_; })) return;
        }
        std::string out = "HTTP/1.1 " + std::to_string(a.status) + " Status\r\nServer: test\r\n" +
                          "Content-Type: application/json\r\nContent-Length: " + std::to_string(a.body.size()) +
                          "\r\nConnection: close\r\n\r\n" + a.body;
        postern::util::write_all(fd, out);
    }
};

}  // namespace rspamd_test
