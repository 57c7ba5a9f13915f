// smtpd/message_buffer.hpp — a message being received, held in memory up to
// a threshold and in a file beyond it, so that a session does not hold a
// large message in memory (the filtered message, written back by the
// filters, grows here until it is committed).
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
    static constexpr std::size_t kDefaultThreshold = 1024 * 1024;
    MessageBuffer(uv_loop_t* loop, std::string spill_dir, std::size_t threshold = kDefaultThreshold);
    ~MessageBuffer();
    MessageBuffer(const MessageBuffer&) = delete;
    MessageBuffer& operator=(const MessageBuffer&) = delete;

    void append(std::string_view bytes);
    std::uint64_t size() const { return size_; }
    bool in_file() const { return static_cast<bool>(file_); }

    // `done(ok, error)` once everything appended is written (at once when
    // in memory); nothing may be appended after.
    void finish(std::function<void(bool ok, const std::string& error)> done);

    // After finish(): the message, in memory (take_data) or in the file.
    std::string take_data() { return std::move(memory_); }
    std::shared_ptr<const util::Fd> file() const { return file_; }

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
};

}  // namespace postern::smtpd
