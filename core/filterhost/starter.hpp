// filterhost/starter.hpp — how the filter host (in the process that serves
// sessions) gets a filter process started or ended.
//
// A daemon not started as root starts its filters itself (LocalStarter). A
// split daemon asks its root parent, which may switch to the filter's user,
// over a channel of its own (StarterClient here, StarterServer in the
// parent): the request names a proc by its index in the config both sides
// read at start-up, never a command, and the answer carries the filter's
// socket as SCM_RIGHTS. The channel is a SOCK_SEQPACKET socketpair: each
// message is one datagram, so there is no framing to get wrong.
//
// Depends on: filterhost/processes, util, libuv.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <string>

#include "event/poll_channel.hpp"
#include "filterhost/processes.hpp"
#include "util/fd.hpp"

namespace postern::filterhost {

class Starter {
public:
    virtual ~Starter() = default;
    // io: our end of the filter's stdin/stdout; empty with `error` when the
    // process could not be started.
    using Started = std::function<void(util::Fd io, pid_t pid, const std::string& error)>;
    // Answers are given in the order of the requests, on the loop.
    virtual void start(std::size_t proc, Started done) = 0;
    virtual void stop(std::size_t proc, pid_t pid) = 0;
    // The daemon stops: no more requests; those waiting are answered with an error.
    virtual void close() {}
};

class LocalStarter final : public Starter {
public:
    explicit LocalStarter(Processes& procs) : procs_(procs) {}
    void start(std::size_t proc, Started done) override;
    void stop(std::size_t proc, pid_t pid) override { procs_.stop(proc, pid); }

private:
    Processes& procs_;
};

// In the unprivileged process.
class StarterClient final : public Starter {
public:
    StarterClient(uv_loop_t* loop, util::Fd channel);
    ~StarterClient() override;
    void start(std::size_t proc, Started done) override;
    void stop(std::size_t proc, pid_t pid) override;
    void close() override;

private:
    void on_readable();
    void fail_all(const std::string& why);

    event::PollChannel channel_;
    std::deque<Started> pending_;
};

// In the root parent: serves the child's requests with `procs`.
class StarterServer {
public:
    StarterServer(uv_loop_t* loop, util::Fd channel, Processes& procs);
    StarterServer(const StarterServer&) = delete;
    StarterServer& operator=(const StarterServer&) = delete;

private:
    void on_readable();

    event::PollChannel channel_;
    Processes& procs_;
};

}  // namespace postern::filterhost
