// The userbase: where a local user name becomes an account (uid, gid, home).
//
// An action's `userbase <t>` names a table of `name uid:gid:/home` entries
// (the userinfo service, table-protocol.md §4); without one, the system's
// users are asked with getpwnam_r(3). Both may block (NSS can go to the
// network, a table plugin to a database): call from a worker thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "table/table.hpp"

namespace postern::expand {

struct UserInfo {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
};

// NotFound: unknown user. TempFail: the table or NSS could not answer now.
// Permanent: a bad expansion, a too deep one, one that yields nothing, an
// `error:` entry, or (here) a userbase entry that is not `uid:gid:/home`.
enum class Status { Ok, NotFound, TempFail, Permanent };

// Looks `name` up in `userbase`, or in the system's users when it is nullptr.
// The name is looked up lowercased, as OpenSMTPD's tables do.
Status lookup_user(table::Table* userbase, std::string_view name, UserInfo* out, std::string* error);

// Reads a userinfo value `uid:gid:/home`; false (with the reason) if it is not one.
bool parse_userinfo(std::string_view name, std::string_view value, UserInfo* out, std::string* error);

}  // namespace postern::expand
