// Test support for the control socket: a Handler that answers from a small
// fixed table, a real control::Server on a real libuv loop run in a thread of
// the test (socket in a fresh temp folder), and a plain blocking client.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "control/protocol.hpp"
#include "control/server.hpp"
#include "util/fd.hpp"

namespace control_test {

using namespace postern::control;
using namespace std::string_literals;

// The queue the test daemon reports. The second envelope is hostile: a '|',
// a newline and a NUL in the sender, a quote, tab, backslash and an invalid
// UTF-8 byte in the error; its recipient is valid UTF-8 (kept as it is).
inline std::vector<Record> queue_table() {
    return {
        {{"id", "0123456789abcdef"},
         {"sender", "alice@example.org"},
         {"rcpt", "bob@example.net"},
         {"next-try", "2026-11-02 10:00:00"},
         {"attempts", "0"},
         {"last-error", ""}},
        {{"id", "89abcdef01234567"},
         {"sender", "evil|x\n\0@example.org"s},
         {"rcpt", "caf\xc3\xa9@example.net"},
         {"next-try", "pending"},
         {"attempts", "3"},
         {"last-error", "421 \"busy\"\t\\ \xff"}},
    };
}

// What the test daemon's tables answer to `table lookup t SERVICE KEY`: the
// KEY picks the answer. "hostile" has a value with a newline, an escape
// sequence and an invalid UTF-8 byte.
inline Record lookup_answer(const std::string& service, const std::string& key) {
    Record r{{"table", "t"}, {"service", service}, {"key", key}, {"how", "lookup"}};
    if (key == "missing") r.emplace_back("result", "not-found");
    else if (key == "down") r.insert(r.end(), {{"result", "tempfail"}, {"error", "table t: timed out\nretry"}});
    else if (key == "garbled") r.emplace_back("result", "perhaps");
    else if (service == "credentials") r.insert(r.end(), {{"result", "found"}, {"hidden", "yes"}});
    else if (service == "domain") r.insert(r.end(), {{"result", "found"}, {"entry", "*.example.org"}});
    else if (service == "netaddr") r.emplace_back("result", "found");
    else if (key == "hostile") r.insert(r.end(), {{"result", "found"}, {"value", "a\nb\x1b[31m\xff"}});
    else r.insert(r.end(), {{"result", "found"}, {"value", "1001:1001:/home/bob"}});
    return r;
}

// Answers on the loop thread. `show stats` answers 20 ms later (a deferred
// done); `update table slow` never answers until the server is shut down.
class TestHandler : public Handler {
public:
    uv_loop_t* loop = nullptr;
    std::atomic<int> calls{0};
    std::atomic<long> last_uid{-1};
    std::atomic<bool> empty_queue{false};  // show queue answers no records

    void handle(const Request& req, uid_t peer_uid, std::function<void(Reply)> done) override {
        ++calls;
        last_uid = static_cast<long>(peer_uid);
        const auto& w = req.words;
        Reply r;
        if (w == std::vector<std::string>{"show", "queue"}) {
            if (!empty_queue) r.records = queue_table();
        } else if (w == std::vector<std::string>{"show", "stats"}) {
            r.records = {{{"uptime", "12"}, {"smtp.session", "3"}, {"scheduler.envelope", "2"}}};
            return later(std::move(r), std::move(done));
        } else if (w == std::vector<std::string>{"show", "status"}) {
            r.records = {
                {{"version", "0.1.0"},
                 {"uptime", "3600"},
                 {"mda", "running"},
                 {"mta", "paused"},
                 {"smtp", "running"},
                 {"queue.messages", "0"},
                 {"queue.envelopes", "0"},
                 {"queue.oldest-age", ""}},
                {{"listener", "::1"},
                 {"port", "465"},
                 {"path", ""},
                 {"tls", "no"},
                 {"tls-require", "no"},
                 {"smtps", "yes"},
                 {"auth", "no"},
                 {"auth-optional", "yes"},
                 {"filter", "f"},
                 {"member", "f"}},
                {{"filter", "f"}, {"kind", "proc"}, {"state", "starting"}, {"pid", ""}, {"restart-in-ms", ""}}};
        } else if (w[0] == "show" && w[1] == "message") {
            r.records = {{{"text", "Subject: hi\r\n\r\nbody\r\n"}}};
        } else if (w[0] == "show" && w[1] == "envelope") {
            r.records = {{{"id", w[2]}, {"rcpt", "bob@example.net"}, {"retry", "1"}}};
        } else if (w[0] == "schedule" && w[1] != "all") {
            r.records = {{{"message", "1 envelope scheduled"}}};
        } else if (w[0] == "remove") {
            r.ok = false;
            r.error = "no such envelope: " + w[1] + "\nsecond line";
        } else if (w.size() == 5 && w[0] == "table" && w[1] == "lookup") {
            r.records = {lookup_answer(w[3], w[4])};
        } else if (w == std::vector<std::string>{"update", "table", "slow"}) {
            parked_.push_back(std::move(done));
            return;
        }
        done(std::move(r));
    }

    // On the loop, after the server closed: answer what is still waiting.
    // Those answers must go nowhere, harmlessly.
    void release_all() {
        for (auto& d : parked_) d(Reply{true, "", {{{"message", "too late"}}}});
        parked_.clear();
        for (auto& [raw, t] : timers_) {
            uv_timer_stop(&t->timer);
            t->done(std::move(t->reply));
            uv_close(reinterpret_cast<uv_handle_t*>(&t->timer), nullptr);
            closing_.push_back(std::move(t));  // freed with the handler, after the loop ends
        }
        timers_.clear();
    }

private:
    struct Later {
        uv_timer_t timer{};
        TestHandler* self = nullptr;
        Reply reply;
        std::function<void(Reply)> done;
    };

    void later(Reply r, std::function<void(Reply)> done) {
        auto t = std::make_unique<Later>();
        t->self = this;
        t->reply = std::move(r);
        t->done = std::move(done);
        uv_timer_init(loop, &t->timer);
        t->timer.data = t.get();
        uv_timer_start(
            &t->timer,
            [](uv_timer_t* h) {
                auto* l = static_cast<Later*>(h->data);
                l->done(std::move(l->reply));
                auto& timers = l->self->timers_;
                auto it = timers.find(l);
                l->self->closing_.push_back(std::move(it->second));
                timers.erase(it);
                uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
            },
            20, 0);
        timers_.emplace(t.get(), std::move(t));
    }

    std::vector<std::function<void(Reply)>> parked_;
    std::map<Later*, std::unique_ptr<Later>> timers_;
    std::vector<std::unique_ptr<Later>> closing_;
};

// A Server listening in a temp folder, its loop running in a thread. The
// destructor stops it on the loop, checks that closing the server left no
// open handle behind, and joins.
class TestServer {
public:
    explicit TestServer(std::chrono::milliseconds request_timeout = std::chrono::seconds(10)) {
        // libuv writes to sockets with write(2): a client that hung up raises
        // SIGPIPE, which a server process ignores (posternd must, too).
        ::signal(SIGPIPE, SIG_IGN);
        char tmpl[] = "/tmp/postern-control-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/control.sock";
        REQUIRE(uv_loop_init(&loop_) == 0);
        handler.loop = &loop_;
        server_ = std::make_unique<Server>(&loop_, handler);
        server_->set_timeouts(request_timeout, std::chrono::seconds(10));
        std::string error;
        bool ok = server_->listen(path_, &error);
        INFO(error);
        REQUIRE(ok);
        uv_async_init(&loop_, &stop_, &TestServer::on_stop);
        stop_.data = this;
        thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
    }

    ~TestServer() {
        uv_async_send(&stop_);
        thread_.join();
        CHECK(leaked_ == 0);
        CHECK(uv_loop_close(&loop_) == 0);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    const std::string& path() const { return path_; }
    const std::string& dir() const { return dir_; }
    bool socket_removed_on_close() const { return socket_removed_; }

    TestHandler handler;

private:
    static void on_stop(uv_async_t* a) {
        auto* self = static_cast<TestServer*>(a->data);
        self->server_->close();
        self->socket_removed_ = !std::filesystem::exists(self->path_);
        self->handler.release_all();
        uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
        // Anything still open now was leaked by the server: count it, and close
        // it so that the loop (and the test) ends anyway.
        uv_walk(
            &self->loop_,
            [](uv_handle_t* h, void* arg) {
                if (uv_is_closing(h)) return;
                ++*static_cast<int*>(arg);
                uv_close(h, nullptr);
            },
            &self->leaked_);
    }

    std::string dir_, path_;
    uv_loop_t loop_{};
    uv_async_t stop_{};
    std::unique_ptr<Server> server_;
    std::thread thread_;
    int leaked_ = 0;
    bool socket_removed_ = false;
};

inline postern::util::Fd connect_to(const std::string& path) {
    postern::util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    timeval tv{5, 0};  // no test waits forever for the server
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

// Reads until the server closes (or 5 s pass: then "<timeout>" is appended).
inline std::string read_all(int fd) {
    std::string in;
    char buf[8192];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return in + "<timeout>";
        if (n <= 0) return in;
        in.append(buf, static_cast<size_t>(n));
    }
}

// Sends `bytes` as they are and returns every byte of the answer.
inline std::string raw_exchange(const std::string& path, std::string_view bytes) {
    auto fd = connect_to(path);
    while (!bytes.empty()) {
        ssize_t n = ::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may refuse before reading it all
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return read_all(fd.get());
}

inline Reply exchange(const std::string& path, const Request& req) {
    std::string bytes = raw_exchange(path, encode_request(req));
    Reply reply;
    std::string err;
    INFO("reply bytes: " << bytes);
    REQUIRE(decode_reply(bytes, &reply, &err));
    return reply;
}

}  // namespace control_test
