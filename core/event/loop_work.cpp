// See loop_work.hpp.
#include "event/loop_work.hpp"

#include <memory>

namespace postern::event {
namespace {

struct BlockingJob {
    uv_work_t req{};
    std::function<void()> work;
    std::function<void()> done;
};

}  // namespace

void run_blocking(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
    auto job = std::make_unique<BlockingJob>();
    job->work = std::move(work);
    job->done = std::move(done);
    job->req.data = job.get();
    int rc = uv_queue_work(
        loop, &job->req, [](uv_work_t* req) { static_cast<BlockingJob*>(req->data)->work(); },
        [](uv_work_t* req, int) {
            std::unique_ptr<BlockingJob> owned(static_cast<BlockingJob*>(req->data));
            owned->done();
        });
    if (rc == 0) {
        (void)job.release();  // libuv holds it until the after-work callback
    } else {
        job->work();  // cannot happen with a live loop; stay correct anyway
        job->done();
    }
}

LoopPost::LoopPost(uv_loop_t* loop) {
    uv_async_init(loop, &async_, &LoopPost::on_async);
    async_.data = this;
}

LoopPost::~LoopPost() = default;

void LoopPost::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

void LoopPost::post(std::function<void()> fn) {
    // The wake-up is sent under the lock: close() takes it too, so no thread
    // can touch the handle once it is closing (libuv aborts on that).
    std::lock_guard lock(mutex_);
    if (closed_) return;
    queue_.push_back(std::move(fn));
    uv_async_send(&async_);
}

void LoopPost::on_async(uv_async_t* handle) {
    auto* self = static_cast<LoopPost*>(handle->data);
    std::deque<std::function<void()>> batch;
    {
        std::lock_guard lock(self->mutex_);
        batch.swap(self->queue_);
    }
    for (auto& fn : batch) fn();
}

SerialWorker::SerialWorker() : thread_([this] { run(); }) {}

SerialWorker::~SerialWorker() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void SerialWorker::submit(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
}

void SerialWorker::run() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping and drained
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

WorkerPool::WorkerPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() {
    close();
    for (auto& t : threads_) t.join();
}

void WorkerPool::submit(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        if (closed_) return;
        tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
}

void WorkerPool::close() {
    std::deque<std::function<void()>> dropped;  // destroyed outside the lock
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        dropped.swap(tasks_);
    }
    wake_.notify_all();
}

void WorkerPool::run() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return closed_ || !tasks_.empty(); });
            if (closed_) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

}  // namespace postern::event
