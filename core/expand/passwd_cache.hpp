// A short memory of the system's answers about users (getpwnam_r).
//
// Every recipient of a local action is looked up by name, and most names
// sent to a server are not users: with `passwd: files systemd` glibc then
// asks systemd's userdb too, about 60 system calls and 0.1 ms of CPU each
// time (docs/benchmarks.md, "Where the CPU per message goes"). Answers,
// found and not found, are kept a few seconds, so that a new or deleted
// account counts after that long; a failed lookup is never kept.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "expand/userbase.hpp"

namespace postern::expand {

class PasswdCache {
public:
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    using Lookup = std::function<Status(const std::string& name, UserInfo* out, std::string* error)>;

    static constexpr std::chrono::seconds kTtl{5};
    static constexpr std::size_t kMaxEntries = 4096;

    explicit PasswdCache(Lookup lookup, Clock clock = std::chrono::steady_clock::now)
        : lookup_(std::move(lookup)), clock_(std::move(clock)) {}

    // As `lookup`, from memory when it answered Ok or NotFound within kTtl.
    // Safe from several threads at once.
    Status get(const std::string& name, UserInfo* out, std::string* error);

private:
    struct Answer {
        Status status;
        UserInfo info;
        std::chrono::steady_clock::time_point until;
    };

    Lookup lookup_;
    Clock clock_;
    std::mutex mutex_;
    std::unordered_map<std::string, Answer> answers_;
};

}  // namespace postern::expand
