// Changing who a process is: the one place that drops root.
//
// Both posternd (to _postern, after binding) and postern-local (to the
// recipient, after loading its plugin as root) go through become(). It sets
// the supplementary groups first (they cannot be changed once root is gone),
// then the real, effective and saved gid and uid, and finally checks that
// root cannot be taken back: a process that could would be a broken
// invariant, and it aborts rather than go on as root.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace postern::util {

// `groups` empty: the primary gid is the only group.
bool become(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, std::string* error);

// The groups of a system user (initgroups(3) without the side effect), with
// its primary group first.
std::vector<gid_t> groups_of(const char* user, gid_t primary);

}  // namespace postern::util
