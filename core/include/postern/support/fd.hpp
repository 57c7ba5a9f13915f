// postern/support/fd.hpp — Fd, the owner of one POSIX file descriptor, and
// write_all. Part of the plugin SDK: header-only, C++17, no dependency but
// POSIX; the daemon uses the same header (core/util/fd.hpp forwards here).
//
// Move-only: exactly one Fd owns a descriptor and closes it when it goes out of
// scope. Never wrap a descriptor the plugin does not own in one: the
// request's message_fd belongs to the delivery agent (postern/delivery.h).
//
// Where a failed close() matters (a file just written: NFS and some quota
// setups only report the error there), call close() explicitly and check its
// result; the destructor can only ignore it.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <utility>

namespace postern::util {

class Fd {
public:
    Fd() noexcept = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() { reset(); }

    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Give up ownership without closing.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    // Close the current descriptor (if any) and own `fd` instead.
    void reset(int fd = -1) noexcept {
        int old = std::exchange(fd_, fd);
        if (old >= 0) {
            int saved = errno;  // a destructor must not disturb the caller's errno
            ::close(old);
            errno = saved;
        }
    }

    // Close now and report the result: 0, or -1 with errno set. Not retried on
    // EINTR: on Linux the descriptor is gone either way.
    int close() noexcept {
        int old = std::exchange(fd_, -1);
        return old >= 0 ? ::close(old) : 0;
    }

private:
    int fd_ = -1;
};

// Write all of `data`, going on after short writes and EINTR; false with
// errno set on the first real error.
inline bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

}  // namespace postern::util
