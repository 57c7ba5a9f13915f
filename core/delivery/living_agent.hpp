// delivery/living_agent.hpp — one delivery agent that serves batch after
// batch, one at a time, for one identity (delivery/batch.hpp); the pool
// that keeps them is agent_pool.hpp.
//
// It is started as any agent (agent_spawn.hpp) with its first batch in its
// argv, its result descriptor being its end of a SOCK_SEQPACKET socketpair;
// later batches go on that channel (agent_channel.hpp) and every result
// comes back on it (agent_results.hpp, checked as from any agent). Its
// stderr is read all its life; the last line written during a batch is the
// reason that batch's unreported deliveries fail with.
//
// The agent ends when the parent closes the channel (end(): idle too long,
// too many idle, the launcher retires) and it sees EOF; one that does not
// exit then is killed. An agent that exits or crashes, closes its channel,
// sends what is no result or overruns its batch's time limit is killed by
// its PID (SIGKILL) and ends: the deliveries of its batch without a result
// fail temporarily, and the pool starts another for the next batch.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "delivery/agent_results.hpp"
#include "delivery/batch.hpp"
#include "delivery/launcher.hpp"
#include "delivery/uv_owned.hpp"
#include "util/fd.hpp"

namespace postern::delivery {

// How long an agent without a batch lives on. A start costs about a
// millisecond of CPU (the loader's relocations, libc's set-up, page faults);
// an idle agent costs only memory, mostly pages it shares. While mail flows
// to an account its batches come milliseconds apart; a few seconds without
// one means the flow has stopped, and its agent (running as the recipient,
// holding their plugin's state) need not stay.
inline constexpr std::chrono::milliseconds kAgentIdleTime{5000};

class LivingAgent {
public:
    struct Hooks {
        std::function<void(LivingAgent&)> idle;  // it has reported its batch and waits for another
        // It has ended: destroy it. Called last from one of its own
        // callbacks, which touch nothing of it afterwards.
        std::function<void(LivingAgent&)> ended;
    };
    // `options` must outlive the agent (the launcher's own).
    LivingAgent(uv_loop_t* loop, const SpawnOptions& options, std::string identity, Hooks hooks);
    // Closes the channel: an idle agent exits at once, a busy one after its
    // batch, whose `done` is then never called (the launcher is going away).
    ~LivingAgent() = default;
    LivingAgent(const LivingAgent&) = delete;
    LivingAgent& operator=(const LivingAgent&) = delete;

    // Starts the agent with `batch` (whose identity is this agent's).
    // When it cannot start, `done` gets the failure and `ended` is called,
    // both before this returns.
    void start(Batch batch, BatchDone done);
    // Gives an idle agent its next batch. False (the batch and `done`
    // untouched) when it cannot take it: the batch does not fit in one
    // packet, or the channel failed (the agent is then ending).
    bool give(Batch& batch, BatchDone& done);
    // Closes the channel of an agent that is not ending yet; it exits.
    void end();

    bool idle() const { return state_ == State::Idle; }
    uint64_t idle_since() const { return idle_since_; }
    const std::string& identity() const { return identity_; }
    // The path of its last batch's first delivery: for a relay, the route
    // whose connection the agent may still hold open (agent_pool.hpp).
    const std::string& last_route() const { return last_route_; }
    long pid() const { return pid_; }
    unsigned long batches() const { return batches_; }  // given to it so far

private:
    enum class State { Busy, Idle, Ending };

    bool open_channel(util::Fd* agent_end, std::string* why);
    void begin_batch(const Batch& batch, BatchDone done);
    void on_readable();
    bool read_packet();
    void batch_done();
    void fail();
    void kill();
    void close_channel();
    void on_exit(int64_t status, int term_signal);
    void read_err();
    void keep_err(std::string_view text);
    void start_timer(uint64_t ms);
    void on_timer();
    void stop_reading_err();
    void settle();
    void finish();

    uv_loop_t* loop_;
    const SpawnOptions& options_;
    std::string identity_;
    std::string last_route_;
    Hooks hooks_;
    State state_ = State::Busy;
    util::Fd channel_;
    UvOwned<uv_process_t> process_;
    UvOwned<uv_pipe_t> err_;
    UvOwned<uv_poll_t> poll_;
    UvOwned<uv_timer_t> timer_;
    long pid_ = 0;
    bool exited_ = false, err_open_ = false;
    AgentEnd end_;
    std::string inbuf_;  // result bytes not yet a whole frame
    std::optional<BatchResults> results_;
    BatchDone done_;
    std::function<void(std::size_t, const Result&)> progress_;  // the batch's (Batch::progress)
    uint64_t idle_since_ = 0;
    unsigned long batches_ = 0;
    char err_buf_[4096];
};

}  // namespace postern::delivery
