// posternd's parent process. It keeps the rights it started with (root on
// a real host) for the jobs that need them, and runs one serving process
// (serve.hpp) that does everything else:
//
// - it starts delivery agents as their recipient (delivery/privileged.hpp),
//   filter processes as their configured user (filterhost/starter.hpp), and
//   reads users' ~/.forward files (forward_channel.hpp), for the serving
//   process, each over a channel of its own;
// - it reloads: on SIGHUP or `posternctl reload` it reads and checks the
//   whole configuration as start-up does, and if nothing fails starts a new
//   serving process with it while the old one drains.
#pragma once

#include <pwd.h>

#include <memory>

#include "daemon/configuration.hpp"
#include "daemon/daemon.hpp"
#include "util/fd.hpp"

namespace postern::daemon {

// Serve `first` (a configuration loaded and opened by start-up) through
// serving processes running as `unpriv` (its own user when not `root`),
// reloading on demand, until stopped; the exit status. `control` is the
// control socket, bound by the caller and kept here across reloads.
int supervise(const Options& o, const passwd& unpriv, bool root, util::Fd control, std::unique_ptr<Loaded> first);

}  // namespace postern::daemon
