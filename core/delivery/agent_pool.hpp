// delivery/agent_pool.hpp — the delivery agents that live on: one process
// serves many batches, one at a time, for one identity (delivery/batch.hpp),
// instead of a process started per batch, whose start-up (the loader's
// relocations, libc's set-up, page faults) cost more CPU than a maildir
// batch's writes.
//
// A batch goes to an idle agent of exactly its identity, preferably one
// whose last batch went to the same route (a relay agent keeps its
// connection to it open a few seconds: plugins/relay/scache.hpp), or, when
// every such agent is busy, to a new one (the scheduler bounds how many
// batches run at once). An agent runs as its recipient: a batch for user B never
// reaches user A's agent. Each agent is a LivingAgent (living_agent.hpp):
// it ends after kAgentIdleTime without a batch, when more than
// kMaxIdleAgents are idle (the longest idle first), after kMaxAgentBatches
// batches, when the launcher
// retires (its serving process drains or has gone: a reload replaced it, or
// the daemon stops), and when it fails (it is killed and its batch's
// unreported deliveries fail temporarily; the next batch gets a new agent).
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "delivery/batch.hpp"
#include "delivery/launcher.hpp"
#include "delivery/living_agent.hpp"

namespace postern::delivery {

// As many as the scheduler runs local batches at once (kMaxLocalRuns in
// scheduler.cpp): a steady flow to one account keeps every agent it needs.
inline constexpr std::size_t kMaxIdleAgents = 32;

// Batches one agent serves at most, then it ends once idle: whatever a
// plugin leaks (memory, descriptors) over a long life stays bounded, as
// Postfix's max_use bounds its processes'. One start per thousand batches
// costs nothing worth measuring.
inline constexpr unsigned long kMaxAgentBatches = 1000;

class AgentPool {
public:
    // `options` must outlive the pool (the launcher's own).
    AgentPool(uv_loop_t* loop, const SpawnOptions& options) : loop_(loop), options_(options) {}
    // Every agent's channel closes: idle agents exit at once, busy ones
    // after their batch (whose results nobody takes any more).
    ~AgentPool() = default;
    AgentPool(const AgentPool&) = delete;
    AgentPool& operator=(const AgentPool&) = delete;

    // Runs `batch` in an agent of its identity; `done` is called once.
    void run(Batch batch, BatchDone done);
    // No more batches will come: idle agents end now, busy ones once idle.
    void retire();

    std::size_t agents() const { return agents_.size(); }
    std::size_t idle_agents() const;

private:
    void became_idle(LivingAgent& agent);
    void ended(LivingAgent& agent);

    uv_loop_t* loop_;
    const SpawnOptions& options_;
    bool retired_ = false;
    // A few dozen at most (the scheduler's bound plus the idle ones): a
    // scan is cheaper than keeping an index in step.
    std::vector<std::unique_ptr<LivingAgent>> agents_;
};

}  // namespace postern::delivery
