// Userbase lookups: userinfo tables and the system's passwd; see userbase.hpp.
#include "expand/userbase.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <vector>

#include "expand/passwd_cache.hpp"

namespace postern::expand {
namespace {

// getpwnam_r's buffer grows on ERANGE, but never past this: a passwd entry
// larger than 1 MiB is a broken NSS source, not a user.
constexpr std::size_t kMaxPwBuffer = 1u << 20;

template <typename T>
bool parse_id(std::string_view text, T* out) {
    if (text.empty() || text.size() > 10) return false;
    unsigned long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return false;
    // (uid_t)-1 means "no change" to setuid(2) and friends: never an account.
    if (v >= static_cast<unsigned long long>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(v);
    return true;
}

Status lookup_system(const std::string& name, UserInfo* out, std::string* error) {
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 16384);
    for (;;) {
        struct passwd pw {};
        struct passwd* res = nullptr;
        int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res);
        if (rc == ERANGE && buf.size() < kMaxPwBuffer) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (rc == 0 && res) {
            *out = {pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir ? pw.pw_dir : "/"};
            return Status::Ok;
        }
        // getpwnam_r(3) lists these as the ways of saying "no such user".
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM) return Status::NotFound;
        *error = "getpwnam_r(" + name + "): " + std::strerror(rc);
        return Status::TempFail;
    }
}

// One per process: the daemon's workers share what they learn.
Status lookup_system_cached(const std::string& name, UserInfo* out, std::string* error) {
    static PasswdCache cache(lookup_system);
    return cache.get(name, out, error);
}

}  // namespace

bool parse_userinfo(std::string_view name, std::string_view value, UserInfo* out, std::string* error) {
    auto c1 = value.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : value.find(':', c1 + 1);
    UserInfo info;
    info.name = std::string(name);
    if (c2 == std::string_view::npos || !parse_id(value.substr(0, c1), &info.uid) ||
        !parse_id(value.substr(c1 + 1, c2 - c1 - 1), &info.gid)) {
        *error = "userinfo for '" + std::string(name) + "' is not uid:gid:/home";
        return false;
    }
    info.home = std::string(value.substr(c2 + 1));
    if (info.home.empty() || info.home.front() != '/') {
        *error = "userinfo for '" + std::string(name) + "' has no absolute home directory";
        return false;
    }
    *out = std::move(info);
    return true;
}

Status lookup_user(table::Table* userbase, std::string_view name, UserInfo* out, std::string* error) {
    if (name.empty() || name.find('\0') != std::string_view::npos) return Status::NotFound;
    std::string key = table::lowercase(name);
    if (!userbase) return lookup_system_cached(key, out, error);
    std::string value, why;
    switch (userbase->lookup(table::Service::Userinfo, key, &value, &why)) {
    case table::Result::NotFound: return Status::NotFound;
    case table::Result::TempFail:
        *error = "userbase <" + userbase->name() + ">: " + (why.empty() ? "lookup failed" : why);
        return Status::TempFail;
    case table::Result::Found: break;
    }
    if (!parse_userinfo(key, value, out, &why)) {
        *error = "userbase <" + userbase->name() + ">: " + why;
        return Status::Permanent;
    }
    return Status::Ok;
}

}  // namespace postern::expand
