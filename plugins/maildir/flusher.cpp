// plugins/maildir/flusher.cpp — see flusher.hpp.
#include "flusher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace postern::maildir_plugin {
namespace {

// One call's work: the next descriptor to flush, and how many are done.
struct Round {
    const std::vector<int>* fds = nullptr;
    std::vector<int>* errors = nullptr;
    std::size_t next = 0, done = 0;
};

// The helper threads and the round they help with. A destroyed pool (the
// plugin unloaded) wakes its threads and joins them.
class Pool {
public:
    Pool() = default;
    ~Pool() {
        {
            std::lock_guard<std::mutex> hold(lock_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Runs the round to its end; one round at a time (the agent calls the
    // plugin from one thread).
    void run(Round& round, std::size_t helpers) {
        // Never more than the pool's size, whatever the caller computed.
        helpers = std::min(helpers, kFlushThreads - 1);
        std::unique_lock<std::mutex> hold(lock_);
        while (threads_.size() < helpers) threads_.emplace_back([this] { help(); });
        round_ = &round;
        hold.unlock();
        wake_.notify_all();
        hold.lock();
        work(hold);
        finished_.wait(hold, [&] { return round.done == round.fds->size(); });
        round_ = nullptr;
    }

private:
    // Takes descriptors off the round until none is left; called and
    // returns with the lock held, which it drops around each fsync.
    void work(std::unique_lock<std::mutex>& hold) {
        while (round_ && round_->next < round_->fds->size()) {
            Round& r = *round_;
            std::size_t k = r.next++;
            hold.unlock();
            int err = ::fsync((*r.fds)[k]) == 0 ? 0 : errno;
            hold.lock();
            (*r.errors)[k] = err;
            if (++r.done == r.fds->size()) finished_.notify_all();
        }
    }

    void help() {
        std::unique_lock<std::mutex> hold(lock_);
        for (;;) {
            wake_.wait(hold, [&] { return stop_ || (round_ && round_->next < round_->fds->size()); });
            if (stop_) return;
            work(hold);
        }
    }

    std::mutex lock_;
    std::condition_variable wake_, finished_;
    std::vector<std::thread> threads_;
    Round* round_ = nullptr;
    bool stop_ = false;
};

}  // namespace

std::vector<int> fsync_all(const std::vector<int>& fds) {
    std::vector<int> errors(fds.size(), 0);
    // Nothing to flush (every message of the batch failed before): no round,
    // and no helper count computed from an empty batch.
    if (fds.empty()) return errors;
    if (fds.size() == 1) {
        errors[0] = ::fsync(fds[0]) == 0 ? 0 : errno;
        return errors;
    }
    // Writeback starts for every file before the first fsync waits: the
    // device gets them all at once. Only a hint (an error shows at fsync).
    for (int fd : fds) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    static Pool pool;
    Round round;
    round.fds = &fds;
    round.errors = &errors;
    std::size_t helpers = std::min(fds.size(), kFlushThreads) - 1;
    pool.run(round, helpers);
    return errors;
}

}  // namespace postern::maildir_plugin
