// Unit tests for the group-commit thread (queue/committer.cpp): every
// submission answered once, concurrent submissions share batches, the
// destructor drains.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "queue/store.hpp"

using namespace postern::queue;
namespace fs = std::filesystem;

namespace {

class TempSpool {
public:
    TempSpool() {
        char name[] = "/tmp/postern-commit-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path_ = name;
    }
    ~TempSpool() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string spool() const { return path_ + "/spool"; }

private:
    std::string path_;
};

Store::Message numbered(unsigned n) {
    char msgid[9];
    std::snprintf(msgid, sizeof msgid, "%08x", n);
    Envelope e;
    e.msgid = msgid;
    e.id = std::string(msgid) + "00000001";
    e.rcpt = "user" + std::to_string(n) + "@example.org";
    return Store::Message{msgid, "message " + std::to_string(n) + "\n", {e}, nullptr};
}

}  // namespace

TEST_CASE("200 submissions from 8 threads: each answered once, in fewer batches", "[committer]") {
    TempSpool tmp;
    Store store(tmp.spool());
    std::string error;
    REQUIRE(store.open(&error));

    constexpr unsigned kThreads = 8, kEach = 25, kTotal = kThreads * kEach;
    std::array<std::atomic<int>, kTotal> calls{};
    std::array<std::atomic<int>, kTotal> oks{};
    std::atomic<bool> on_committer_thread{true};
    std::atomic<unsigned> submitted{0};
    std::mutex mutex;
    std::condition_variable all_in;
    {
        Committer committer(store);
        std::thread::id caller = std::this_thread::get_id();
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                for (unsigned i = 0; i < kEach; ++i) {
                    unsigned n = t * kEach + i;
                    committer.submit(numbered(n), [&, n, caller](bool ok, const std::string& why) {
                        if (std::this_thread::get_id() == caller) on_committer_thread = false;
                        ++calls[n];
                        if (ok && why.empty()) ++oks[n];
                        // Hold the first batch until all are submitted (bounded):
                        // then everything else is pending together.
                        std::unique_lock lock(mutex);
                        all_in.wait_for(lock, std::chrono::seconds(10), [&] { return submitted.load() == kTotal; });
                    });
                    if (++submitted == kTotal) {
                        std::lock_guard lock(mutex);
                        all_in.notify_all();
                    }
                }
            });
        }
        for (auto& thread : threads) thread.join();
    }  // the destructor drains and joins

    for (unsigned n = 0; n < kTotal; ++n) {
        INFO("message " << n);
        CHECK(calls[n] == 1);
        CHECK(oks[n] == 1);
    }
    CHECK(on_committer_thread);
    CHECK(store.commit_calls() < kTotal);
    CHECK(store.commit_calls() <= 3);  // the first few, then all the rest at once

    std::vector<std::string> errors;
    auto loaded = store.load_all(&errors);
    CHECK(errors.empty());
    REQUIRE(loaded.size() == kTotal);
    std::set<std::string> rcpts;
    for (const auto& e : loaded) rcpts.insert(e.rcpt);
    CHECK(rcpts.size() == kTotal);
}

TEST_CASE("the committer reports a failed message with its reason", "[committer]") {
    TempSpool tmp;
    Store store(tmp.spool());
    REQUIRE(store.open(nullptr));
    std::vector<std::pair<bool, std::string>> results;
    {
        Committer committer(store);
        auto bad = numbered(7);
        bad.msgid = "NOTHEX!!";
        committer.submit(std::move(bad), [&](bool ok, const std::string& why) { results.emplace_back(ok, why); });
        committer.submit(numbered(8), [&](bool ok, const std::string& why) { results.emplace_back(ok, why); });
    }
    REQUIRE(results.size() == 2);
    CHECK(results[0] == std::make_pair(false, std::string("bad message id 'NOTHEX!!'")));
    CHECK(results[1] == std::make_pair(true, std::string()));
    CHECK(fs::exists(store.message_path("00000008")));
}

TEST_CASE("destroying the committer right after submitting still commits", "[committer]") {
    TempSpool tmp;
    Store store(tmp.spool());
    REQUIRE(store.open(nullptr));
    int done = 0;
    {
        Committer committer(store);
        for (unsigned n = 0; n < 50; ++n)
            committer.submit(numbered(n), [&](bool ok, const std::string&) { done += ok; });
    }
    CHECK(done == 50);
    CHECK(store.load_all(nullptr).size() == 50);
}
