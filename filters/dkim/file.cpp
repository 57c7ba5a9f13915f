// dkim/file.cpp — bounded whole-file reads.

#include "dkim/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace postern::dkim {

namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// strerror's text without strerror's shared buffer: the program may read
// files on more than one thread. (GNU strerror_r: g++ defines _GNU_SOURCE.)
std::string errno_text(int e) {
    std::array<char, 256> buf{};
    return strerror_r(e, buf.data(), buf.size());
}

}  // namespace

std::optional<std::string> read_file(const std::string& path, std::string& out, std::size_t limit) {
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (f.get() < 0) return errno_text(errno);
    std::array<char, 4096> buf;
    out.reserve(out.size() + limit + 1);
    std::optional<std::string> why;
    while (out.size() <= limit) {
        ssize_t n = ::read(f.get(), buf.data(), std::min(buf.size(), limit + 1 - out.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) why = errno_text(errno);
        if (n <= 0) break;
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    return why;
}

}  // namespace postern::dkim
