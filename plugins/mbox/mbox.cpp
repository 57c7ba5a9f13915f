// plugins/mbox/mbox.cpp — delivery-mbox.so, the `mbox` action.
//
// Runs inside postern-local as the recipient. request.path is the mbox file
// (the daemon passes e.g. /var/mail/USER). One delivery appends
//     From SENDER Thu Nov 24 18:22:48 1986      (MAILER-DAEMON for <>)
//     Return-Path: <sender>
//     Delivered-To: dest
//     <message, mboxrd-quoted: a line matching ^>*From  gets one more '>'>
//     <blank line>
//
// Locking, so that mail readers (mutt, dovecot, mail(1)) and other agents
// never interleave with us: a dotlock FILE.lock (skipped when the folder is
// not writable by the recipient, as in a root-owned /var/mail where only the
// fcntl lock can work), then an fcntl write lock on the file. Both waits are
// bounded; a dotlock older than 5 minutes is stale and removed.
//
// Writes are appended and fsynced; on any error the file is truncated back to
// its size before the delivery so no half message is ever left behind.
// Failures are POSTERN_TEMPFAIL except EFBIG (the message can never fit).
#include <postern/delivery.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <string>
#include <string_view>
#include <thread>

#include "postern/support/delivery_guard.hpp"
#include "postern/support/fd.hpp"

namespace {

using postern::util::Fd;
using postern::util::write_all;
using namespace std::chrono_literals;

constexpr size_t kChunk = 65536;
constexpr auto kLockPoll = 100ms;
constexpr int kLockTries = 300;  // 30 s for each of the two locks
constexpr time_t kStaleDotlock = 5 * 60;

using Failure = postern::util::DeliveryFailure;

Failure sys_failure(const std::string& what, int err) {
    int status = err == EFBIG ? POSTERN_PERMFAIL : POSTERN_TEMPFAIL;
    return {status, "mbox: " + what + ": " + std::strerror(err)};
}

// FILE.lock, held while the object lives. Not held (and not needed) when
// the folder does not let the recipient create files.
class Dotlock {
public:
    Dotlock() = default;
    Dotlock(const Dotlock&) = delete;
    Dotlock& operator=(const Dotlock&) = delete;
    ~Dotlock() {
        if (held_) ::unlink(path_.c_str());
    }

    bool acquire(const std::string& mbox, Failure* f) {
        path_ = mbox + ".lock";
        for (int i = 0; i < kLockTries; ++i) {
            Fd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
            if (fd) {
                held_ = true;
                return true;
            }
            if (errno == EACCES || errno == EPERM || errno == EROFS) return true;  // fcntl only
            if (errno != EEXIST) {
                *f = sys_failure("create " + path_, errno);
                return false;
            }
            if (remove_if_stale()) continue;
            std::this_thread::sleep_for(kLockPoll);
        }
        *f = {POSTERN_TEMPFAIL, "mbox: " + path_ + ": still locked after 30 seconds"};
        return false;
    }

private:
    bool remove_if_stale() const {
        struct stat st {};
        if (::lstat(path_.c_str(), &st) != 0) return errno == ENOENT;  // just released: retry now
        if (::time(nullptr) - st.st_mtime < kStaleDotlock) return false;
        return ::unlink(path_.c_str()) == 0;
    }

    std::string path_;
    bool held_ = false;
};

// An fcntl write lock on the whole file. F_SETLK polled rather than
// F_SETLKW: bounding F_SETLKW needs a signal handler, which a plugin must not
// install in its host. The lock goes away when the descriptor is closed.
bool lock_file(int fd, const std::string& path, Failure* f) {
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    for (int i = 0; i < kLockTries; ++i) {
        if (::fcntl(fd, F_SETLK, &l) == 0) return true;
        if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
            *f = sys_failure("lock " + path, errno);
            return false;
        }
        std::this_thread::sleep_for(kLockPoll);
    }
    *f = {POSTERN_TEMPFAIL, "mbox: " + path + ": still locked after 30 seconds"};
    return false;
}

// Streams the message through mboxrd quoting. A line is held back only
// while it could still turn out to be ">*From ".
class Quoter {
public:
    void feed(std::string_view in, std::string* out) {
        for (char c : in) {
            if (!at_line_start_) {
                *out += c;
                if (c == '\n') start_line();
            } else if (matched_ == 0 && c == '>') {
                ++quotes_;
            } else if (c == kFrom[matched_]) {
                if (++matched_ == kFrom.size()) {
                    out->append(quotes_ + 1, '>').append(kFrom);
                    at_line_start_ = false;
                }
            } else {
                flush(out);
                *out += c;
                if (c == '\n') start_line();
            }
        }
    }

    // End of message: emit anything held back.
    void finish(std::string* out) {
        if (at_line_start_) flush(out);
    }

private:
    static constexpr std::string_view kFrom = "From ";

    void start_line() {
        at_line_start_ = true;
        quotes_ = 0;
        matched_ = 0;
    }
    void flush(std::string* out) {
        out->append(quotes_, '>').append(kFrom.substr(0, matched_));
        at_line_start_ = false;
    }

    bool at_line_start_ = true;
    size_t quotes_ = 0;
    size_t matched_ = 0;
};

// Envelope fields go into header lines: keep each on one line.
std::string one_line(const char* s, bool no_space) {
    std::string out = s ? s : "";
    for (char& c : out)
        if (c == '\n' || c == '\r' || (no_space && (c == ' ' || c == '\t'))) c = '_';
    return out;
}

std::string from_line(const postern_delivery_request& req) {
    std::string sender = one_line(req.sender, true);
    time_t now = ::time(nullptr);
    struct tm tm {};
    ::localtime_r(&now, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);  // asctime() layout
    return "From " + (sender.empty() ? std::string("MAILER-DAEMON") : sender) + " " + date + "\n";
}

// Append the whole delivery at the end of the locked file.
bool append(int out, const postern_delivery_request& req, const std::string& path, Failure* f) {
    std::string buf = from_line(req) + "Return-Path: <" + one_line(req.sender, false) +
                      ">\nDelivered-To: " + one_line(req.dest, false) + "\n";
    Quoter quoter;
    char in[kChunk];
    char last = '\n';
    for (;;) {
        ssize_t n = ::read(req.message_fd, in, sizeof in);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *f = sys_failure("read message", errno);
            return false;
        }
        if (n == 0) break;
        last = in[n - 1];
        quoter.feed(std::string_view(in, static_cast<size_t>(n)), &buf);
        if (buf.size() >= kChunk) {
            if (!write_all(out, buf)) {
                *f = sys_failure("write " + path, errno);
                return false;
            }
            buf.clear();
        }
    }
    quoter.finish(&buf);
    buf += last == '\n' ? "\n" : "\n\n";  // the blank line that ends a message
    if (!write_all(out, buf) || ::fsync(out) != 0) {
        *f = sys_failure("write " + path, errno);
        return false;
    }
    return true;
}

bool fsync_parent(const std::string& path) {
    size_t slash = path.rfind('/');
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fd && ::fsync(fd.get()) == 0;
}

bool run(const postern_delivery_request& req, Failure* f) {
    std::string path = req.path ? req.path : "";
    if (path.empty() || path.front() != '/' || path.back() == '/') {
        *f = {POSTERN_TEMPFAIL, "mbox: file \"" + path + "\" is not an absolute file path"};
        return false;
    }
    Dotlock dotlock;
    if (!dotlock.acquire(path, f)) return false;

    bool existed = ::access(path.c_str(), F_OK) == 0;
    Fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
        *f = sys_failure("open " + path, errno);
        return false;
    }
    if (!lock_file(fd.get(), path, f)) return false;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        *f = {POSTERN_TEMPFAIL, "mbox: " + path + ": not a regular file"};
        return false;
    }
    if (!append(fd.get(), req, path, f)) {
        // Take the half-written message back out; best effort, the error
        // being reported already.
        if (::ftruncate(fd.get(), st.st_size) == 0) ::fsync(fd.get());
        return false;
    }
    if (!existed && !fsync_parent(path)) {
        *f = sys_failure("fsync folder of " + path, errno);
        if (::ftruncate(fd.get(), st.st_size) == 0) ::fsync(fd.get());
        return false;
    }
    return true;  // fd closes (dropping the fcntl lock) before the dotlock goes
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    return postern::util::guarded_deliver("mbox", req, err, errlen, run);
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "mbox", deliver, nullptr,  // one recipient at a time
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
