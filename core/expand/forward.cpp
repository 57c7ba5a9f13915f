// Reading ~/.forward safely; see forward.hpp.
#include "expand/forward.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/fd.hpp"

namespace postern::expand {
namespace {

ForwardFile with(ForwardFile::Status status, std::string why) {
    ForwardFile f;
    f.status = status;
    f.why = std::move(why);
    return f;
}

bool writable_by_others(const struct stat& st) { return (st.st_mode & (S_IWGRP | S_IWOTH)) != 0; }

}  // namespace

ForwardFile read_forward(uid_t uid, const std::string& home) {
    using S = ForwardFile::Status;
    if (home.empty() || home.front() != '/') return with(S::Absent, {});
    const std::string path = home + (home.back() == '/' ? "" : "/") + ".forward";

    struct stat dir {};
    if (::stat(home.c_str(), &dir) != 0)
        return errno == ENOENT || errno == ENOTDIR ? with(S::Absent, {})
                                                   : with(S::TempFail, home + ": " + std::strerror(errno));
    if (dir.st_mode & S_ISVTX) return with(S::TempFail, home + ": home folder has the sticky bit (a shared folder)");
    if (writable_by_others(dir) || (dir.st_uid != uid && dir.st_uid != 0))
        return with(S::Ignored, path + " ignored: its folder " + home + " may be written by others than the user");

    // O_NOFOLLOW: a link could point at a file the user may not read.
    util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) return with(S::Absent, {});
        if (errno == ELOOP) return with(S::Ignored, path + " ignored: it is a symbolic link");
        if (errno == EACCES) return with(S::Ignored, path + " ignored: not readable by the user");
        return with(S::TempFail, path + ": " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return with(S::TempFail, path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return with(S::Ignored, path + " ignored: not a regular file");
    if (st.st_uid != uid) return with(S::Ignored, path + " ignored: not owned by the user");
    if (writable_by_others(st)) return with(S::Ignored, path + " ignored: group or world writable");
    if (st.st_size > kMaxForwardBytes) return with(S::Ignored, path + " ignored: larger than 64 KiB");

    ForwardFile f;
    f.text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < f.text.size()) {
        ssize_t n = ::read(fd.get(), f.text.data() + got, f.text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return with(S::TempFail, path + ": " + std::strerror(errno));
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    f.text.resize(got);
    f.status = f.text.find_first_not_of(" \t\r\n") == std::string::npos ? S::Absent : S::Found;
    return f;
}

}  // namespace postern::expand
