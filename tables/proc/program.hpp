// tables/proc/program.hpp — one table program as the plugin sees it: started
// on the first request (never in open(), which runs as root before the
// daemon forks), asked one request at a time, stopped and restarted when it
// dies, hangs or answers garbage.
//
// Restart rule: a failure (no start, death, no reply within the timeout,
// garbage) stops the program and fails the request in progress with
// TEMPFAIL; no new start is tried for a backoff of 1 s, doubling with each
// failure in a row up to 60 s, and requests inside that window fail at once
// ("restarting"). A good reply resets the backoff. A program found dead
// while idle (it exited between requests) is restarted at once, without
// backoff: the request that finds it never reached it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "child.hpp"
#include "config.hpp"
#include "protocol.hpp"

namespace postern::proctable {

// A request's result: status is POSTERN_OK (text = the value), POSTERN_NOTFOUND
// or POSTERN_TEMPFAIL (text = why).
struct Outcome {
    int status = 0;
    std::string text;
};

class Program {
public:
    explicit Program(Config config);
    ~Program();
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;

    // One request; thread-safe (requests are serialised: the programs are
    // synchronous). `service` is a POSTERN_SERVICE_* bit; Check answers the
    // key itself as the value when found.
    Outcome request(Op op, uint32_t service, std::string_view key = {});

    // Ask a running program to re-read its data (`update`); one that is not
    // running has nothing to re-read: its next start reads afresh.
    Outcome update();

    // The services the program registered (line protocol), once it has run;
    // every service before that and for imsg programs, which register none.
    uint32_t services() const { return services_.load(); }

    // Stop the program politely (imsg CLOSE, or EOF on its stdin) and reap it.
    void shutdown();

    const Config& config() const { return config_; }

private:
    using Clock = std::chrono::steady_clock;

    Outcome locked_request(Op op, uint32_t service, std::string_view key);
    std::optional<std::string> ensure_running();
    std::optional<std::string> start();
    std::optional<std::string> handshake(Clock::time_point deadline);
    std::optional<std::string> idle_check();
    std::variant<Reply, std::string> exchange(Op op, uint32_t service, std::string_view key);
    std::optional<std::string> send_all(std::string_view bytes, Clock::time_point deadline);
    std::optional<std::string> read_more(Clock::time_point deadline);
    // Read until a whole line (line protocol) or message (imsg) is buffered:
    // nullopt then, else why not.
    std::optional<std::string> read_line(Clock::time_point deadline, std::string* line);
    std::optional<std::string> read_frame(Clock::time_point deadline, Reply* reply, Op op);
    Outcome fail(const std::string& why);
    std::string restarting() const;
    std::string next_id();

    Config config_;
    std::mutex mutex_;
    std::optional<Child> child_;
    std::string in_;  // bytes read from the program, not yet decoded
    std::atomic<uint32_t> services_;
    std::chrono::seconds backoff_{0};
    Clock::time_point retry_at_{};
    std::string last_failure_;
    uint32_t next_id_;
};

}  // namespace postern::proctable
