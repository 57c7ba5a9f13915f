// delivery/agent_spawn.hpp — starting postern-local for a batch: its
// command line, environment and descriptors, and uv_spawn.
//
// The agent gets each message of its first (or only) batch on a descriptor
// of its own (3, 4, ...), the batch's envelopes in a sealed memory file
// after them (--batch-fd, delivery/agent_batch.hpp), the secret option words
// on a pipe after that (--secret-fd): argv is public in /proc, so it holds
// no address, path or command; and its result descriptor last (--result-fd): a pipe libuv makes for an agent run
// once (agent_run.hpp), the agent's end of its channel for one that lives
// on (agent_pool.hpp). Its stdin and stdout are closed (it points stdout at
// its stderr), its stderr is a pipe the caller reads.
//
// A root daemon starts it as root and it becomes the recipient itself (--as)
// once its plugin is loaded: the binaries and plugins may sit where only
// root can reach them. It runs in a session of its own, so that a stop
// signal sent to the daemon's process group (Ctrl-C, kill -TERM -PGID)
// does not cut a delivery short, which the daemon waits for before it ends.
#pragma once

#include <uv.h>

#include <string>

#include "delivery/batch.hpp"
#include "delivery/launcher.hpp"

namespace postern::delivery {

struct AgentHandles {
    uv_process_t* process;  // not yet initialised; uv_spawn does, even when it fails
    uv_pipe_t* err;         // initialised, not yet open: the agent's stderr
    uv_exit_cb on_exit;
};

// The read end of a pipe that holds the batch's secret, for --secret-fd
// (an empty Fd when there is none). False with *why when it cannot be made.
bool secret_pipe(const Batch& batch, util::Fd* out, std::string* why);

// Starts the agent (calls uv_spawn: the handles must be closed afterwards
// whatever it returns, process included). Returns 0 or a libuv error, with
// *why saying what failed.
int spawn_agent(uv_loop_t* loop, const SpawnOptions& options, const Batch& batch, const util::Fd& secret,
                uv_stdio_container_t result, const AgentHandles& handles, std::string* why);

}  // namespace postern::delivery
