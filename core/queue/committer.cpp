// queue/committer.cpp — the group-commit thread.
//
// Sessions submit finished messages; the thread takes everything pending at
// once (up to kMaxBatch) and commits it with one Store::commit, i.e. one round
// of fsyncs. While that round runs, new submissions pile up and form the next
// batch, so the batch size follows the load by itself: one message when the
// server is idle, hundreds under a burst, with no timer adding latency.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "queue/store.hpp"

namespace postern::queue {
namespace {

// Bounds the open descriptors and the time a batch's first message waits
// for its last one to be written.
constexpr std::size_t kMaxBatch = 512;

}  // namespace

Committer::Committer(Store& store) : store_(store), thread_([this] { run(); }) {}

Committer::~Committer() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void Committer::submit(Store::Message message, Done done) {
    {
        std::lock_guard lock(mutex_);
        pending_.emplace_back(std::move(message), std::move(done));
    }
    wake_.notify_one();
}

void Committer::run() {
    std::vector<std::pair<Store::Message, Done>> batch;
    std::vector<const Store::Message*> messages;
    std::vector<bool> ok;
    std::vector<std::string> errors;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
            if (pending_.empty()) return;  // stopping, and everything is committed
            std::size_t n = std::min(pending_.size(), kMaxBatch);
            batch.clear();
            for (std::size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(pending_.front()));
                pending_.pop_front();
            }
        }
        messages.clear();
        for (const auto& item : batch) messages.push_back(&item.first);
        store_.commit(messages, ok, errors);
        for (std::size_t i = 0; i < batch.size(); ++i)
            if (batch[i].second) batch[i].second(ok[i], errors[i]);
        // Not kept until the next batch: its messages and their temporary
        // files (a hundred 10 MB messages pin a gigabyte of deleted files).
        batch.clear();
    }
}

}  // namespace postern::queue
