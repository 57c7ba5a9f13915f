// A few threads kept for the lifetime of the spool, that run the fsyncs of a
// commit side by side: concurrent fsyncs share the file system's journal
// commits and the device's cache flushes, where one after another each pays
// its own. Started on first use, so a Store made only to name paths starts
// no thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace postern::queue {

class SyncPool {
public:
    explicit SyncPool(std::size_t helpers) : wanted_(helpers) {}
    ~SyncPool();
    SyncPool(const SyncPool&) = delete;
    SyncPool& operator=(const SyncPool&) = delete;

    // Calls task(i) for every i < n, on the helpers and on the calling
    // thread, and returns when every call has returned. One run at a time.
    void run(std::size_t n, const std::function<void(std::size_t)>& task);

private:
    void start();
    void helper();
    void drain();

    std::size_t wanted_;
    std::mutex run_mutex_;  // one run at a time
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(std::size_t)>* task_ = nullptr;
    std::size_t n_ = 0, next_ = 0, busy_ = 0;
    std::uint64_t generation_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace postern::queue
