// daemon/spool_lock.cpp — see spool_lock.hpp.
#include "daemon/spool_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "util/log.hpp"

namespace postern::daemon {
namespace {

constexpr uint64_t kPollMs = 100;
constexpr uint64_t kReportMs = 30 * 1000;  // how often a long wait is logged again

}  // namespace

SpoolLock::SpoolLock(uv_loop_t* loop) : loop_(loop) {}

SpoolLock::~SpoolLock() { cancel(); }

void SpoolLock::cancel() {
    locked_ = nullptr;
    if (!timer_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { std::unique_ptr<uv_timer_t> done(reinterpret_cast<uv_timer_t*>(h)); });
    timer_ = nullptr;
}

bool SpoolLock::try_lock() {
    int rc;
    do rc = flock(fd_.get(), LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    held_ = rc == 0;
    return held_;
}

bool SpoolLock::acquire(const std::string& dir, std::function<void()> locked, std::string* error) {
    std::string path = dir + "/scheduler.lock";
    // Close-on-exec: a delivery agent this process starts must not keep the
    // lock after the process has ended.
    fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd_) {
        *error = path + ": " + std::strerror(errno);
        return false;
    }
    if (try_lock()) {
        locked();
        return true;
    }
    log::info("queue held by the previous serving process; deliveries start once it has ended");
    locked_ = std::move(locked);
    auto timer = std::make_unique<uv_timer_t>();
    uv_timer_init(loop_, timer.get());
    timer_ = timer.release();  // reclaimed in the close callback (cancel)
    waiting_since_ = uv_now(loop_);
    timer_->data = this;
    uv_timer_start(
        timer_, [](uv_timer_t* t) { static_cast<SpoolLock*>(t->data)->poll(); }, kPollMs, kPollMs);
    // The wait must not keep a stopping process alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
    return true;
}

void SpoolLock::poll() {
    if (!try_lock()) {
        uint64_t now = uv_now(loop_);
        if (now - waiting_since_ >= kReportMs) {
            waiting_since_ = now;
            log::warn("queue still held by the previous serving process; deliveries wait");
        }
        return;
    }
    auto fn = std::move(locked_);
    cancel();
    log::info("queue taken over from the previous serving process");
    if (fn) fn();
}

}  // namespace postern::daemon
