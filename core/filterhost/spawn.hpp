// filterhost/spawn.hpp — starting one filter process, as OpenSMTPD starts
// its `proc` and `proc-exec` filters (../shared/reference/filter-protocol.md
// section 1), and finding its command.
//
// The command is the admin's string from smtpd.conf, run as
// `/bin/sh -c "exec COMMAND"`: nothing from a session ever reaches it. The
// filter gets one end of a socketpair as both stdin and stdout
// (libopensmtpd filters use epoll, which refuses pipes' files no more than
// sockets, but does refuse regular files), a pipe as stderr, a session of
// its own, default signal dispositions, no other descriptors, and the
// configured user and group (switched in the child between fork and exec,
// with only async-signal-safe calls there).
//
// Depends on: util (Fd).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/fd.hpp"

namespace postern::filterhost {

// Where a command that does not start with '/' is looked for, in order:
// OpenSMTPD's libexec folder on Debian (so that configs written for it work
// as they are), then postern's own.
std::vector<std::string> command_folders();

// The shell command for `command` as written: a relative first word gets the
// first folder of `folders` that holds it as an executable. nullopt with
// `*error` when it is found nowhere, or an absolute one is not executable.
// Under `chroot` the command is looked for inside that folder.
std::optional<std::string> resolve_command(const std::string& command, const std::vector<std::string>& folders,
                                           const std::string& chroot, std::string* error);

// Everything the forked child needs, resolved before fork (a lookup of the
// user's groups is not async-signal-safe).
struct ProcSpec {
    std::string name;     // the proc's name, for logs
    std::string command;  // resolved (resolve_command)
    bool switch_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::string chroot;  // "" = none
    // A folder the filter must not see: the spool, when the filter runs as
    // its owner (the default user) and not chrooted. An empty folder nobody
    // may enter is mounted over it in a mount namespace of the filter's
    // own; "" = none.
    std::string hide;
};

struct Spawned {
    pid_t pid = -1;
    util::Fd io;   // our end of the filter's stdin/stdout socketpair
    util::Fd err;  // the read end of the filter's stderr
};

// The ProcSpec of each cfg.procs entry, in the same order (the index is how
// the serving process names a proc to the one that starts it). Problems
// (a command not found, a user that does not exist, a `user` that needs
// root) go to *problems as "file:line:col: proc NAME: ...". `root`: the
// daemon runs as root and switches to each filter's user (default
// `default_user`); otherwise filters run as the daemon's own user. A
// filter that runs as `default_user`, which owns the spool, gets `spool`
// to hide (ProcSpec::hide).
std::vector<ProcSpec> proc_specs(const config::Config& cfg, const std::string& default_user, bool root,
                                 std::vector<std::string>* problems, const std::string& spool = "");

// Forks and executes the filter. nullopt with `*error` if it could not be
// started at all (a failure after fork, such as a chroot that does not
// exist, shows as the process exiting with status 127 and a line on stderr).
std::optional<Spawned> spawn_filter(const ProcSpec& spec, std::string* error);

}  // namespace postern::filterhost
