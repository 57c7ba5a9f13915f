// smtpd/message_buffer.cpp — see message_buffer.hpp.
#include "smtpd/message_buffer.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "util/log.hpp"

namespace postern::smtpd {
namespace {
// Below this, appended bytes wait for more before a write is started (a
// client that sends a few bytes at a time does not cost a write each);
// while a write is in flight, what comes waits for it.
constexpr std::size_t kWriteChunk = 16 * 1024;
}  // namespace

// The file's writes, in order, one in flight. Shared with the request in
// flight, so that a buffer dropped mid-write (the session closed) leaves
// the write to end on its own.
struct MessageBuffer::Writer {
    std::shared_ptr<util::Fd> file;
    std::int64_t offset = 0;
    uv_fs_t req{};
    std::string writing;  // the bytes of the request in flight
    bool busy = false;
    bool failed = false;
    std::string error;
    MessageBuffer* owner = nullptr;
    std::shared_ptr<Writer> self;  // set while a request is in flight
    std::function<void(bool, const std::string&)> done;
};

MessageBuffer::MessageBuffer(uv_loop_t* loop, std::string spill_dir, std::size_t threshold)
    : loop_(loop), dir_(std::move(spill_dir)), threshold_(threshold) {}

MessageBuffer::~MessageBuffer() {
    if (writer_) {
        writer_->owner = nullptr;
        writer_->done = nullptr;
    }
}

std::uint64_t MessageBuffer::backlog() const {
    if (!file_ || writer_->failed) return 0;
    return memory_.size() + (writer_->busy ? writer_->writing.size() : 0);
}

void MessageBuffer::append(std::string_view bytes) {
    size_ += bytes.size();
    if (writer_ && writer_->failed) return;  // finish() fails the message: nothing more is worth holding
    memory_.append(bytes);
    if (!file_ && memory_.size() > threshold_) spill();
    if (file_ && memory_.size() >= kWriteChunk) write_more();
}

void MessageBuffer::take(std::string& bytes) {
    if (bytes.empty()) return;
    if (!file_ && memory_.size() + bytes.size() > threshold_) {
        spill();
        if (file_) write_more();  // what memory holds goes first, and memory_ is free
    }
    if (!memory_.empty() || !file_ || writer_->failed) {
        append(bytes);
        bytes.clear();
        return;
    }
    size_ += bytes.size();
    memory_.swap(bytes);
    bytes.clear();
    if (memory_.size() >= kWriteChunk) write_more();
}

// Moves to a file: what memory holds becomes the first write.
void MessageBuffer::spill() {
    if (dir_.empty()) {
        threshold_ = SIZE_MAX;
        return;
    }
    int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        log::warn(log::Line("cannot hold a large message in a file; it stays in memory")
                      .kv("folder", dir_)
                      .kv("error", std::strerror(errno)));
        threshold_ = SIZE_MAX;  // do not try again for this message
        return;
    }
    file_ = std::make_shared<util::Fd>(fd);
    writer_ = std::make_shared<Writer>();
    writer_->file = file_;
    writer_->owner = this;
}

void MessageBuffer::write_more() {
    Writer& w = *writer_;
    if (w.busy || w.failed || memory_.empty()) return;
    w.writing.swap(memory_);
    memory_.clear();
    w.busy = true;
    w.self = writer_;
    w.req.data = &w;
    uv_buf_t buf = uv_buf_init(w.writing.data(), static_cast<unsigned>(w.writing.size()));
    int rc = uv_fs_write(loop_, &w.req, w.file->get(), &buf, 1, w.offset, [](uv_fs_t* req) {
        auto* w = static_cast<Writer*>(req->data);
        std::shared_ptr<Writer> keep = std::move(w->self);
        const ssize_t n = req->result;
        uv_fs_req_cleanup(req);
        w->busy = false;
        if (n < 0 || static_cast<std::size_t>(n) > w->writing.size()) {
            w->failed = true;
            w->error = n < 0 ? uv_strerror(static_cast<int>(n)) : "short write";
            if (w->owner) std::string().swap(w->owner->memory_);
        } else {
            w->offset += n;
            // A short write: the rest goes first next time.
            if (static_cast<std::size_t>(n) < w->writing.size() && w->owner)
                w->owner->memory_.insert(0, w->writing, static_cast<std::size_t>(n));
        }
        w->writing.clear();
        if (!w->owner) return;
        MessageBuffer& b = *w->owner;
        if (!w->failed && (b.memory_.size() >= kWriteChunk || (w->done && !b.memory_.empty()))) b.write_more();
        if (w->done && !w->busy && (w->failed || b.memory_.empty())) {
            auto done = std::move(w->done);
            w->done = nullptr;
            return done(!w->failed, w->error);  // may drop the buffer
        }
        if (b.on_written_) b.on_written_();
    });
    if (rc != 0) {
        w.busy = false;
        w.self.reset();
        w.failed = true;
        w.error = uv_strerror(rc);
        std::string().swap(w.writing);
    }
}

void MessageBuffer::finish(std::function<void(bool ok, const std::string& error)> done) {
    if (!file_) return done(true, "");
    Writer& w = *writer_;
    if (w.failed) return done(false, w.error);
    w.done = std::move(done);
    if (!w.busy && memory_.empty()) {
        auto d = std::move(w.done);
        w.done = nullptr;
        return d(true, "");
    }
    write_more();
    if (w.failed && w.done) {  // the write could not even start
        auto d = std::move(w.done);
        w.done = nullptr;
        d(false, w.error);
    }
}

}  // namespace postern::smtpd
