// The serving process: every part that faces the network (SMTP sessions,
// rules, tables, queue, scheduler, control socket, metrics) on one event
// loop, as the unprivileged user. Its parent (supervisor.hpp) starts
// delivery agents and filters for it, reads ~/.forward files and reloads.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/configuration.hpp"
#include "util/fd.hpp"

namespace postern::daemon {

// What serve() gets ready-made from its parent: what needs root (or the
// start-up user's view of the file system) is opened before privileges go.
struct Prepared {
    std::string store_dir;  // the spool, relative to the working folder
    std::vector<smtpd::ListenSocket> sockets;
    util::Fd control;
    int priv_fd = -1;  // the channel to the parent (delivery/privileged.hpp)
    table::Registry* tables = nullptr;
    const TlsContexts* tls_contexts = nullptr;
    const scheduler::RelayPkis* relay_pkis = nullptr;
    queue::AtRest at_rest;            // how message files are written and read (configuration.hpp)
    util::Fd filter_channel;          // to the parent, which starts the filters
    util::Fd forward_channel;         // to the parent, which reads users' ~/.forward
    bool after_reload = false;        // started by a reload while the old process drains
    std::vector<std::string> paused;  // what the process it replaces had paused
    std::time_t started = 0;          // when the daemon started
};

// Serves until stopped; the exit status.
int serve(const config::Config& cfg, const Paths& paths, Prepared prep);

}  // namespace postern::daemon
