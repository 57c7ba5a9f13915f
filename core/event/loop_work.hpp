// Small bridges between the event loop and blocking work.
//
// run_blocking: a function on libuv's worker pool, then a continuation back on
//   the loop (table lookups, rule evaluation).
// LoopPost: lets any thread hand a function to the loop (the queue's commit
//   thread reporting that a message is durable).
// SerialWorker: one thread that runs tasks in order (spool updates, so two
//   envelopes of one message never race on its folder).
// WorkerPool: a few threads that run tasks at once (relay routing, whose
//   table lookups may each wait seconds on a remote backend).
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace postern::event {

void run_blocking(uv_loop_t* loop, std::function<void()> work, std::function<void()> done);

class LoopPost {
public:
    explicit LoopPost(uv_loop_t* loop);
    ~LoopPost();
    LoopPost(const LoopPost&) = delete;
    LoopPost& operator=(const LoopPost&) = delete;

    void post(std::function<void()> fn);  // thread-safe
    void close();                         // on the loop, before it stops

private:
    static void on_async(uv_async_t* handle);

    uv_async_t async_{};
    std::mutex mutex_;
    std::deque<std::function<void()>> queue_;
    bool closed_ = false;
};

class SerialWorker {
public:
    SerialWorker();
    ~SerialWorker();  // runs what is queued, then joins
    SerialWorker(const SerialWorker&) = delete;
    SerialWorker& operator=(const SerialWorker&) = delete;

    void submit(std::function<void()> task);

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::thread thread_;
};

// Apart from libuv's pool, which the SMTP sessions' lookups use, so that slow
// work given to it can never starve those. Tasks start in the order given.
class WorkerPool {
public:
    explicit WorkerPool(unsigned threads);
    ~WorkerPool();  // close(), then waits for the tasks under way
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void submit(std::function<void()> task);  // thread-safe; dropped once closed
    void close();                             // drops the tasks not started yet

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> tasks_;
    bool closed_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace postern::event
