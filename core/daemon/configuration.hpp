// One configuration, read and checked as start-up does, with what serving
// it needs opened as root: its tables, TLS contexts, relay certificates,
// filter commands and listening sockets. Start-up makes one; a reload makes
// another beside the running one and keeps it only if nothing failed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/daemon.hpp"
#include "filterhost/processes.hpp"
#include "queue/message_codec.hpp"
#include "scheduler/relay_route.hpp"
#include "smtpd/server.hpp"
#include "table/registry.hpp"
#include "tls/context.hpp"

namespace postern::daemon {

// Where things are, with the defaults filled in.
struct Paths {
    std::string spool, plugins, mbox, pid_file, control, hostname;
    std::string local_socket;  // `listen on socket`: next to the control socket
};

using TlsContexts = std::map<const config::Listener*, std::unique_ptr<tls::ServerContext>>;

// On the heap and never moved: the TLS contexts are keyed by the addresses
// of the config's listeners.
struct Loaded {
    config::ParseResult pr;
    Paths paths;
    table::Registry tables;
    TlsContexts tls;
    scheduler::RelayPkis relay_pkis;
    std::vector<filterhost::ProcSpec> filter_specs;
    std::vector<smtpd::ListenSocket> sockets;  // the network listeners and the local socket
    queue::AtRest at_rest;                     // `queue compression`, `queue encryption`'s key
    const config::Config& cfg() const { return *pr.config; }
    Loaded() = default;
    Loaded(const Loaded&) = delete;
    Loaded& operator=(const Loaded&) = delete;
    ~Loaded();
};

// The file given with -f, or the embedded default (its state in ./state).
config::ParseResult load_config(const Options& o);

// The host checks of start-up and -n (preflight, filters, pki files):
// `host_problems` stop the daemon; `tls_problems` are warnings at start-up
// when the contexts load anyway. Fills in l.paths, l.tables, l.filter_specs,
// l.at_rest (the queue key file is read here, as root).
void check_host(const Options& o, bool root, Loaded& l, std::vector<std::string>* host_problems,
                std::vector<std::string>* tls_problems);

// One TLS context per tls/smtps listener. Loaded as root, before privileges
// are dropped: private keys are usually readable by root only.
bool load_tls(const config::Config& cfg, TlsContexts* out, std::vector<std::string>* errors);

// The names this host answers to (`for local`, <localnames>).
std::vector<std::string> server_names(const config::Config& cfg, const Paths& p);
std::vector<std::string> localnames(const config::Config& cfg, const Paths& p);

}  // namespace postern::daemon
