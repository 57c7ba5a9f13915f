// filterhost/host.hpp — the filter host of the serving process: the filter
// processes the listeners use, kept running, and the chains sessions get.
//
// At start each proc a listener uses is started (through a Starter) and
// shaken hands with; start() reports once every one is ready or has failed
// its first try, so that the daemon opens its listeners only then. A filter
// that fails, at start or later, is logged with the reason, ended and
// started again with backoff (kFirstBackoffMs doubling up to kMaxBackoffMs,
// back to the first once it has stayed up kStableMs). While one of a
// listener's procs is down, open() refuses that listener's sessions (the
// daemon answers 421 4.3.0) unless the proc says `on-failure pass`, in which
// case the session goes on without it and that is logged.
//
// Depends on: filterhost (connection, session_chain, starter), config, libuv.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "filterhost/connection.hpp"
#include "filterhost/session_chain.hpp"
#include "filterhost/starter.hpp"

namespace postern::filterhost {

inline constexpr std::uint64_t kFirstBackoffMs = 1000;
inline constexpr std::uint64_t kMaxBackoffMs = 60'000;
inline constexpr std::uint64_t kStableMs = 60'000;

class Host {
public:
    // `smtpd_version` and `admd` go to the filters in the handshake; the
    // config's `admd` directive, when given, wins over this `admd`.
    Host(uv_loop_t* loop, const config::Config& cfg, Starter& starter, std::string admd);
    ~Host();
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    // Starts the procs the listeners use; `settled` is called once, when
    // each of them is ready or has failed once (at once when there are none).
    void start(std::function<void()> settled);
    // Ends every filter connection (the filters see the end of their input).
    void stop();

    bool filtered(const config::Listener& l) const { return chains_.count(&l) != 0; }
    // The chain for a new session of listener `l`, or nullptr with `*why`
    // when one of its procs is down and fails closed.
    std::unique_ptr<SessionChain> open(const config::Listener& l, std::uint64_t session, SessionEvents& events,
                                       std::string* why);

    // What `posternctl show status` reports of a filter process (read-only;
    // the handler of the control socket asks on the loop).
    struct ProcStatus {
        enum class State { Starting, Running, Restarting, Down };
        State state = State::Down;
        pid_t pid = -1;                   // the process, while Starting or Running
        std::uint64_t restart_in_ms = 0;  // while Restarting: the backoff left
    };
    // The state of the proc named `proc_name` (a Config::procs name); Down
    // for one no listener uses (never started) and after stop().
    ProcStatus proc_status(const std::string& proc_name) const;
    // The names of the filters in listener `l`'s chain, in order; empty when
    // it is not filtered.
    std::vector<std::string> chain_names(const config::Listener& l) const;

private:
    struct Slot {
        Host* host = nullptr;
        std::size_t index = 0;  // in cfg.procs, as the Starter knows it
        const config::FilterProc* proc = nullptr;
        std::unique_ptr<Connection> conn;  // the current one (ready, in handshake, or failed)
        pid_t pid = -1;
        bool starting = false;
        bool settled = false;  // ready, or failed, at least once
        std::uint64_t backoff = kFirstBackoffMs;
        std::uint64_t up_since = 0;
        uv_timer_t* timer = nullptr;
    };
    struct ChainMember {
        std::string name;
        Slot* slot = nullptr;                            // process filter
        const config::BuiltinFilter* builtin = nullptr;  // built-in filter
    };

    void launch(Slot& s);
    void started(Slot& s, util::Fd io, pid_t pid, const std::string& error);
    void failed(Slot& s, const std::string& why);
    void settle(Slot& s);
    Slot* slot_of(const std::string& proc_name);

    uv_loop_t* loop_;
    const config::Config& cfg_;
    Starter& starter_;
    filter::Handshake handshake_;
    std::vector<std::unique_ptr<Slot>> slots_;
    std::map<const config::Listener*, std::vector<ChainMember>> chains_;
    std::function<void()> settled_;
    bool stopped_ = false;
};

// The version postern gives as smtpd-version in the handshake.
std::string smtpd_version();

}  // namespace postern::filterhost
