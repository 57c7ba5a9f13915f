// util/fd.hpp — Fd, the owner of one POSIX file descriptor, and write_all.
// They are part of the plugin SDK, so that the daemon and every plugin share
// one definition: see postern/support/fd.hpp.
#pragma once

#include "postern/support/fd.hpp"
