// tables/proc/child.hpp — one running table program: started without a shell,
// its stdin (and for the line protocol its stdout) one end of a socketpair,
// stderr inherited, every other descriptor closed, signals at their defaults,
// in its own session; stopped and always reaped (no zombie outlives a stop).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <variant>

#include "config.hpp"
#include "postern/support/fd.hpp"

namespace postern::proctable {

class Child {
public:
    // Start the program of `config` as the calling process's user; or say why not.
    static std::variant<Child, std::string> spawn(const Config& config);

    Child(Child&& other) noexcept;
    Child& operator=(Child&&) = delete;
    Child(const Child&) = delete;
    ~Child();  // stop(0): killed at once unless already stopped

    int fd() const { return fd_.get(); }
    pid_t pid() const { return pid_; }

    // Close our end (a program reading its stdin then sees EOF), give it
    // `grace` to exit on its own, then SIGKILL; reap it. Returns how it ended
    // ("exited with status 1", "killed by signal 9"). Idempotent.
    std::string stop(std::chrono::milliseconds grace);

private:
    Child(pid_t pid, util::Fd fd) : pid_(pid), fd_(std::move(fd)) {}
    pid_t pid_ = -1;
    util::Fd fd_;
    std::string ended_;
};

}  // namespace postern::proctable
