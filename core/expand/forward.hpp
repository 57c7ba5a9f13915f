// ~/.forward: where a local user sends their own mail (forward(5) as
// OpenSMTPD reads it, table-protocol.md §6).
//
// The file holds alias list elements, one or more a line, `#` comments; the
// expander treats them as that user's alias entry. It counts only when it
// is safe to act on: a regular file owned by the user, writable by nobody
// else, in a home folder that only its owner (or root) may write. A file
// that fails those checks is ignored with a log line, the mail delivered
// as if it were absent, as OpenSMTPD does. A home folder with the sticky bit
// (a shared folder) is a temporary failure: the admin has to look.
//
// Who reads it: a daemon started as root cannot read users' homes from its
// unprivileged process, so its root parent reads the file with the user's
// file-system identity (daemon/forward_channel); a daemon run by a user
// reads it itself. Both end in read_forward() below.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "expand/userbase.hpp"

namespace postern::expand {

struct ForwardFile {
    enum class Status {
        Absent,    // no file (or an empty one): deliver as usual
        Found,     // text holds the file
        Ignored,   // unsafe: why says which check failed; deliver as usual
        TempFail,  // cannot tell now (I/O error, sticky home): why says
    };
    Status status = Status::Absent;
    std::string text;
    std::string why;
};

// The largest .forward read; a longer one is ignored (a forward file lists
// a few addresses, not a mailing list).
constexpr off_t kMaxForwardBytes = 64 * 1024;

// Reads HOME/.forward for the account `uid` with the caller's privileges
// and the checks above.
ForwardFile read_forward(uid_t uid, const std::string& home);

// How the expander gets a user's .forward; empty = never read one.
using ForwardReader = std::function<ForwardFile(const UserInfo& user)>;

}  // namespace postern::expand
