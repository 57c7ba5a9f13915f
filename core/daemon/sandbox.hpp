// daemon/sandbox.hpp — what the network-facing process gives up once it
// has dropped root (supervisor.cpp, child_main): it can gain no privilege
// again, and it can reach only the part of the file system it needs.
//
//   - PR_SET_NO_NEW_PRIVS: no exec of it (a table program it restarts) ever
//     gains a privilege: setuid and setgid bits and file capabilities are
//     ignored. Always, where the kernel has it (Linux 3.5).
//   - Landlock (Linux 5.13, when the kernel was built with it and the LSM is
//     on): the process may write, make and remove files only beneath its
//     spool and its tables' folders (and write /dev/null); it may read only the system's folders (/etc, /usr,
//     /lib..., /proc, /sys, /run, /dev, /var/lib), the folders of its
//     configuration, tables, plugins and programs, and the spool. Users'
//     homes, /root, /tmp and /srv are out of its reach (a user's ~/.forward
//     is read by the parent for it: forward_channel.hpp). A kernel without
//     Landlock is skipped quietly: confine() says so and the daemon runs as
//     before. Raw system calls: glibc has no wrappers.
//
// Inherited across exec by everything the process starts, both are for good:
// so a configuration with a table program (`proc` tables), which the
// serving process starts and restarts and which may write files of its
// own anywhere, gets no-new-privs only.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace postern::daemon {

struct Confinement {
    std::vector<std::string> writable;  // read, write, make and remove beneath
    std::vector<std::string> readable;  // read and run beneath (a missing one is skipped)
    // "" to apply Landlock; else why not (it is inherited by every program
    // the process starts: a table program, which may keep files of its own).
    std::string no_landlock;
};

// The folders the serving process keeps: the spool and the folders of
// `tables` (table files and databases: sqlite in WAL mode writes beside its
// database even to read it) writable; the system's folders and `extra` (its
// configuration, plugins, agent) readable. A file stands for its folder.
Confinement serving_confinement(const std::string& spool, const std::vector<std::string>& extra,
                                const std::vector<std::string>& tables = {});

// The files a configuration's tables read: each table's source (the first
// word: a program's arguments follow it), and a sqlite table's database
// (its `dbpath` line).
std::vector<std::string> table_files(const config::Config& cfg);

struct Confined {
    bool no_new_privs = false;
    int landlock_abi = 0;  // 0: not applied (the kernel lacks it, or it failed: `why`)
    std::string why;
};

// Applies both to the calling process (and its threads made after this).
Confined confine(const Confinement& c);

}  // namespace postern::daemon
