// delivery/agent_run.hpp — a delivery agent started for one batch, which
// ends with it: for the methods whose plugins cannot serve several batches
// in one process (launcher.cpp says which), for a batch whose agent must
// stay root (a mailbox to make), and for a launcher that keeps no agents.
//
// Its results come on a pipe of their own (agent_results.hpp), read until
// the agent has exited and closed it and its stderr; a process it left
// behind holding them (an mda command's daemon) is not waited for long.
// The agent is killed (SIGKILL) at the batch's time limit.
#pragma once

#include <uv.h>

#include "delivery/batch.hpp"
#include "delivery/launcher.hpp"

namespace postern::delivery {

// Runs `batch` in an agent of its own; `done` is called once, on the loop
// (at once when the agent cannot be started).
void run_once(uv_loop_t* loop, const SpawnOptions& options, Batch batch, BatchDone done);

}  // namespace postern::delivery
