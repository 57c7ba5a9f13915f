// filterhost/processes.hpp — the filter processes of one daemon, on the side
// that starts them: the root parent of a split daemon, or the one process of
// a daemon not started as root.
//
// It starts a proc on request, logs every line the filter writes to stderr
// under the filter's name, reaps it and logs how it ended, and ends it on
// request (SIGTERM, then SIGKILL if it is still there kKillGraceMs later).
// Deciding when to start or restart a filter is the filter host's
// (host.hpp), which talks to this through a Starter (starter.hpp).
//
// Depends on: filterhost/spawn, util, libuv.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>
#include <vector>

#include "filterhost/spawn.hpp"

namespace postern::filterhost {

inline constexpr std::uint64_t kKillGraceMs = 5000;

class Processes {
public:
    Processes(uv_loop_t* loop, std::vector<ProcSpec> specs);
    ~Processes();
    Processes(const Processes&) = delete;
    Processes& operator=(const Processes&) = delete;

    std::size_t size() const { return procs_.size(); }
    const ProcSpec& spec(std::size_t index) const { return procs_[index].spec; }

    // Starts proc `index` (a running one of the same index is ended first).
    // Returns our end of its stdin/stdout and sets *pid, or an empty Fd and
    // *error.
    util::Fd start(std::size_t index, pid_t* pid, std::string* error);
    // Ends proc `index` if `pid` is the one running for it (an old pid is
    // ignored: that process is already gone or being ended).
    void stop(std::size_t index, pid_t pid);
    // Ends every running filter and stops watching: the daemon is stopping.
    void stop_all();

private:
    struct Proc {
        ProcSpec spec;
        pid_t pid = -1;
    };
    // A process told to end: SIGKILL if it is still there at `deadline`.
    struct Ending {
        pid_t pid;
        std::uint64_t deadline;
        std::string name;
    };
    void watch_stderr(const std::string& name, util::Fd err);
    void reap();
    void kill_late();

    uv_loop_t* loop_;
    std::vector<Proc> procs_;
    std::vector<Ending> ending_;
    uv_signal_t sigchld_{};
    uv_timer_t kill_timer_{};
    bool closed_ = false;
};

}  // namespace postern::filterhost
