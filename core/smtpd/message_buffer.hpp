// smtpd/message_buffer.hpp — a message being received, held in memory up to
// a threshold and in a file beyond it, so that a session does not hold a
// large message in memory: the message as the client sends it (or, on a
// listener with data-line filters, as the last filter gives it back) grows
// here until it is committed.
//
// The threshold is small (64 KiB): below it a message costs no file, and
// above it a session holds at most a few write chunks whatever the
// message's size, so that 100 sessions each sending 10 MB at once fit in a
// few tens of MiB. backlog() says how much is waiting for the disk; the
// session stops reading its client while that is more than it wants to
// hold, and on_written() tells it when a write is done.
//
// The file is an unlinked temporary file (O_TMPFILE) in the spool's
// incoming/ folder, on the file system the queue commits to; the queue
// copies it into the message's own file at commit (queue::Store::Message::
// file). Writes go through libuv's file system requests, one at a time and
// in order, so the loop never waits for the disk; finish() says when
// everything appended is in the file. When no temporary file can be made
// the message stays in memory (and the log says why once).
//
// Depends on: util (Fd), libuv.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace postern::smtpd {

class MessageBuffer {
public:
    static constexpr std::size_t kDefaultThreshold = 64 * 1024;
    MessageBuffer(uv_loop_t* loop, std::string spill_dir, std::size_t threshold = kDefaultThreshold);
    ~MessageBuffer();
    MessageBuffer(const MessageBuffer&) = delete;
    MessageBuffer& operator=(const MessageBuffer&) = delete;

    void append(std::string_view bytes);
    // The same, taking `bytes`' memory when nothing is waiting before them
    // (no copy, and no buffer grown beyond what the caller read); `bytes` is
    // left empty, maybe with a buffer of ours to fill next.
    void take(std::string& bytes);
    std::uint64_t size() const { return size_; }
    bool in_file() const { return static_cast<bool>(file_); }
    // Bytes appended that are not in the file yet (0 while in memory).
    std::uint64_t backlog() const;
    // `fn` after each write to the file (not after the buffer is gone).
    void on_written(std::function<void()> fn) { on_written_ = std::move(fn); }

    // `done(ok, error)` once everything appended is written (at once when
    // in memory); nothing may be appended after.
    void finish(std::function<void(bool ok, const std::string& error)> done);

    // After finish(): the message, in memory (take_data) or in the file
    // (take_file; null when in memory), each taken once.
    std::string take_data() { return std::move(memory_); }
    std::shared_ptr<util::Fd> take_file() { return std::move(file_); }

private:
    struct Writer;  // the writes in flight; outlives the buffer if it must
    void spill();
    void write_more();

    uv_loop_t* loop_;
    std::string dir_;
    std::size_t threshold_;
    std::uint64_t size_ = 0;
    std::string memory_;  // the whole message, or (in a file) what is not written yet
    std::shared_ptr<util::Fd> file_;
    std::shared_ptr<Writer> writer_;
    std::function<void()> on_written_;
};

}  // namespace postern::smtpd
