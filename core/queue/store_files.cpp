// queue/store_files.cpp — see store_files.hpp.
#include "queue/store_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace postern::queue::files {

std::string sys_error(std::string_view path, std::string_view call, int err) {
    char buf[128];
    std::string out(path);
    out += ": ";
    out += call;
    out += ": ";
    out += ::strerror_r(err, buf, sizeof buf);  // GNU variant: returns the text
    return out;
}

std::string sys_error(std::string_view path, std::string_view call) { return sys_error(path, call, errno); }

bool is_lower_hex(std::string_view s, std::size_t len) {
    return s.size() == len &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::uint64_t hex_value(std::string_view s) {
    std::uint64_t v = 0;
    for (char c : s) v = v << 4 | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    return v;
}

std::string hex_text(std::uint64_t value, std::size_t digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(digits, '0');
    for (std::size_t i = digits; i-- > 0; value >>= 4) out[i] = kHex[value & 0xf];
    return out;
}

util::Fd open_dir(int parent, const std::string& name) {
    return util::Fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

bool fsync_fd(int fd) {
    while (::fsync(fd) != 0)
        if (errno != EINTR) return false;
    return true;
}

bool list_dir(int dirfd, std::vector<std::string>& names) {
    int copy = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);  // fdopendir takes ownership
    if (copy < 0) return false;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(copy), ::closedir);
    if (!dir) {
        int saved = errno;
        ::close(copy);
        errno = saved;
        return false;
    }
    ::rewinddir(dir.get());
    names.clear();
    errno = 0;
    while (dirent* entry = ::readdir(dir.get())) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
        errno = 0;
    }
    return errno == 0;
}

bool remove_folder(int parent, const std::string& name, std::string* error) {
    util::Fd folder = open_dir(parent, name);
    if (!folder) {
        if (errno == ENOENT) return true;
        if (errno == ENOTDIR) {
            if (::unlinkat(parent, name.c_str(), 0) == 0) return true;
            *error = sys_error(name, "unlink");
            return false;
        }
        *error = sys_error(name, "open");
        return false;
    }
    std::vector<std::string> names;
    if (!list_dir(folder.get(), names)) {
        *error = sys_error(name, "readdir");
        return false;
    }
    for (const auto& file : names) {
        if (::unlinkat(folder.get(), file.c_str(), 0) != 0 && errno != ENOENT) {
            *error = sys_error(name + "/" + file, "unlink");
            return false;
        }
    }
    folder.reset();
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        *error = sys_error(name, "rmdir");
        return false;
    }
    return true;
}

bool make_folder(const std::string& path, std::string* error) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        *error = sys_error(path, "mkdir");
        return false;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        *error = sys_error(path, "stat");
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        *error = path + ": not a folder";
        return false;
    }
    return true;
}

bool read_file(int dirfd, const std::string& name, std::size_t limit, std::string& out, int& err) {
    util::Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0) {
        err = errno;
        return false;
    }
    if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) > limit) {
        err = EFBIG;
        return false;
    }
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = errno;
            return false;
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return true;
}

// In the kernel when it can (copy_file_range), by read and write if not.
bool copy_from(int from, int to) {
    loff_t in = 0;
    for (;;) {
        ssize_t n = ::copy_file_range(from, &in, to, nullptr, 1 << 30, 0);
        if (n > 0) continue;
        if (n == 0) return true;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return false;
        break;
    }
    char buf[64 * 1024];
    for (;;) {
        ssize_t n = ::pread(from, buf, sizeof buf, in);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) return true;
        if (!util::write_all(to, std::string_view(buf, static_cast<std::size_t>(n)))) return false;
        in += n;
    }
}

}  // namespace postern::queue::files
