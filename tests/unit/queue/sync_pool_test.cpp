// Unit tests for the spool's flush threads (queue/sync_pool.cpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "queue/sync_pool.hpp"

using postern::queue::SyncPool;

TEST_CASE("every task runs once, on several threads, and run returns after the last", "[sync_pool]") {
    SyncPool pool(3);
    for (std::size_t n : {0u, 1u, 2u, 5u, 64u}) {
        std::vector<std::atomic<int>> runs(n);
        std::mutex lock;
        std::set<std::thread::id> threads;
        pool.run(n, [&](std::size_t i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // long enough for the helpers to join in
            {
                std::lock_guard hold(lock);
                threads.insert(std::this_thread::get_id());
            }
            ++runs[i];
        });
        for (std::size_t i = 0; i < n; ++i) CHECK(runs[i] == 1);
        if (n >= 5) CHECK(threads.size() > 1);
        if (n == 1) CHECK(threads == std::set<std::thread::id>{std::this_thread::get_id()});
    }
}
