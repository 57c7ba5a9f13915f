// Dropping root; see privileges.hpp.
#include "util/privileges.hpp"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace postern::util {

bool become(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, std::string* error) {
    const std::vector<gid_t> only = {gid};
    const std::vector<gid_t>& list = groups.empty() ? only : groups;
    if (::setgroups(list.size(), list.data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
        *error = std::string("cannot change to uid ") + std::to_string(uid) + " gid " + std::to_string(gid) + ": " +
                 std::strerror(errno);
        return false;
    }
    if (uid != 0 && ::setuid(0) == 0) std::abort();  // broken invariant: never go on able to regain root
    return true;
}

std::vector<gid_t> groups_of(const char* user, gid_t primary) {
    int n = 32;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    while (::getgrouplist(user, primary, groups.data(), &n) < 0 && n < 65536) groups.resize(static_cast<size_t>(n));
    groups.resize(static_cast<size_t>(n));
    return groups;
}

}  // namespace postern::util
