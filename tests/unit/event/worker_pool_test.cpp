// event::WorkerPool: tasks run on its threads, several at once, and close()
// drops what has not started.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "event/loop_work.hpp"

using postern::event::WorkerPool;
using namespace std::chrono_literals;

namespace {

// A gate the test opens; tasks wait on it (bounded, so a bug fails rather than hangs).
struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    int waiting = 0;
    bool wait() {
        std::unique_lock lock(m);
        ++waiting;
        cv.notify_all();
        return cv.wait_for(lock, 10s, [this] { return open; });
    }
    bool wait_for_waiters(int n) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, 10s, [&] { return waiting >= n; });
    }
    void release() {
        std::lock_guard lock(m);
        open = true;
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("a worker pool runs every task, off the calling thread") {
    std::atomic<int> ran{0};
    std::atomic<bool> elsewhere{true};
    auto caller = std::this_thread::get_id();
    {
        WorkerPool pool(3);
        for (int i = 0; i < 100; ++i)
            pool.submit([&] {
                if (std::this_thread::get_id() == caller) elsewhere = false;
                ++ran;
            });
        for (int i = 0; i < 1000 && ran < 100; ++i) std::this_thread::sleep_for(10ms);
    }
    CHECK(ran == 100);
    CHECK(elsewhere);
}

TEST_CASE("a worker pool runs as many tasks at once as it has threads") {
    Gate gate;
    WorkerPool pool(3);
    for (int i = 0; i < 3; ++i) pool.submit([&] { gate.wait(); });
    CHECK(gate.wait_for_waiters(3));  // one slow task does not hold the others back
    gate.release();
}

TEST_CASE("closing a worker pool drops the tasks not started and refuses new ones") {
    Gate gate;
    std::atomic<int> ran{0};
    {
        WorkerPool pool(1);
        pool.submit([&] {
            gate.wait();
            ++ran;
        });
        REQUIRE(gate.wait_for_waiters(1));
        pool.submit([&] { ++ran; });  // queued behind the running one
        pool.close();
        pool.submit([&] { ++ran; });  // after close
        gate.release();
    }  // the destructor waits for the task under way
    CHECK(ran == 1);
}
