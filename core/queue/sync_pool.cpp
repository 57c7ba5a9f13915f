// queue/sync_pool.cpp — see sync_pool.hpp.
#include "queue/sync_pool.hpp"

#include <system_error>

namespace postern::queue {

SyncPool::~SyncPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
}

void SyncPool::start() {
    for (std::size_t i = 0; i < wanted_; ++i) {
        try {
            threads_.emplace_back([this] { helper(); });
        } catch (const std::system_error&) {
            break;  // out of threads: fewer helpers, same result
        }
    }
    wanted_ = 0;
}

void SyncPool::run(std::size_t n, const std::function<void(std::size_t)>& task) {
    std::lock_guard serial(run_mutex_);
    if (wanted_ > 0 && n > 1) start();
    {
        std::lock_guard lock(mutex_);
        task_ = &task;
        n_ = n;
        next_ = 0;
        ++generation_;
    }
    // As many helpers as there are tasks besides the caller's first.
    for (std::size_t i = 1; i < n && i <= threads_.size(); ++i) wake_.notify_one();
    drain();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
    task_ = nullptr;
    n_ = 0;
}

void SyncPool::drain() {
    for (;;) {
        std::size_t i;
        const std::function<void(std::size_t)>* task;
        {
            std::lock_guard lock(mutex_);
            if (next_ >= n_) return;
            i = next_++;
            ++busy_;
            task = task_;
        }
        (*task)(i);
        {
            std::lock_guard lock(mutex_);
            --busy_;
        }
        done_.notify_all();
    }
}

void SyncPool::helper() {
    std::uint64_t seen = 0;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
        }
        drain();
    }
}

}  // namespace postern::queue
