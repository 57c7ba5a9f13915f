// The start-up checks that need this host, shared by `posternd -n` and start-up.
//
// The parser knows the grammar; only the host knows whether a table file is
// there, a plugin is installed or an interface exists. The systemd unit runs
// `posternd -n` as ExecStartPre and trusts its "configuration OK", so start-up
// must refuse nothing that -n accepted: both call preflight(), and start-up
// stops on its errors before it binds, forks or writes the pid file.
//
// What is checked:
//   tables     each backend's plugin table-BACKEND.so loads (db, sqlite, ...
//              are refused as not supported yet until their plugin exists),
//              and each table opens through it, as the user running the check
//   listeners  each `listen on` target is an address, interface or host name
//              of this host, and each of its addresses can be bound here
//   actions    each method's plugin delivery-METHOD.so loads (lmtp is refused
//              as not supported yet until its plugin exists), and the delivery
//              agent postern-local is there to run it
//   paths      the queue path and the control socket's folder are folders or
//              can be made (nothing in their way is a file); the control
//              socket's path fits a UNIX socket address
//   host       run as root: the user _postern exists
// The pki and ca files are checked by tls/check.hpp.
//
// Nothing here binds a configured port, creates a file or needs root: -n runs
// beside a daemon that already holds port 25. Run as root (as start-up is), a
// table file readable by root only passes, as the daemon reads it as root.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "table/registry.hpp"

namespace postern::daemon {

// The user a daemon started as root serves the network as.
inline constexpr const char* kUnprivilegedUser = "_postern";

// Where start-up will look, after the defaults are applied (daemon.cpp).
struct PreflightPaths {
    std::string config;   // the config's name, for problems with a path no line names (a default)
    std::string plugins;  // the folder of table-*.so and delivery-*.so
    std::string spool;    // the queue path
    std::string control;  // the control socket
};

// Every problem found, each "FILE:LINE:COL: what is wrong; what to do"
// ("FILE: ..." for a path, which may be a default): paths, tables, listeners,
// then actions, each in the order of the file.
// The tables are opened into `tables` (set its local identity first): the
// daemon serves with them, so start-up reads each file once.
std::vector<std::string> preflight(const config::Config& cfg, const PreflightPaths& paths, table::Registry& tables);

}  // namespace postern::daemon
