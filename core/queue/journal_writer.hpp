// The segment files of the envelope journal, DIR/journal/<16 hex digits>:
// appending to the current one, making what was appended durable, starting
// the next one, deleting old ones. The records' format is journal.hpp's;
// which segments may go is the Store's to decide.
//
// append() and the segment bookkeeping run under the Store's lock; sync()
// runs without it, from any thread, and shares one fdatasync among the
// threads that wait for it (group commit).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "util/fd.hpp"

namespace postern::queue {

struct Segment {
    std::uint64_t seq = 0;
    util::Fd fd;
    std::atomic<std::uint64_t> end{0};  // bytes written
    std::uint64_t synced = 0;           // bytes known durable (under the sync lock)
    bool name_synced = false;           // journal/ fsynced since the file was made
    std::atomic<bool> failed{false};    // a write or sync failed: never appended to again
};

// Where an append ended: durable once sync() says so.
struct JournalPosition {
    std::shared_ptr<Segment> segment;
    std::uint64_t end = 0;
};

class JournalWriter {
public:
    // Segments grow to about this size, then the next one starts.
    static constexpr std::uint64_t kDefaultSegmentBytes = 8 << 20;

    JournalWriter(std::string dir, std::uint64_t segment_bytes) : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

    bool open(std::string* error);  // the folder's descriptor (made by Store::open)

    // True when the next append needs a new segment: there is none, the
    // current one is full, or it failed.
    bool needs_new_segment() const;
    // Starts the next segment, named after every one in the folder.
    bool start(std::string* error);
    // Appends `bytes` to the current segment (starting one if needed).
    bool append(std::string_view bytes, JournalPosition& at, std::string* error);
    // Durable up to `at` on return true.
    bool sync(const JournalPosition& at, std::string* error);

    // The segment being appended to (0 when none); the next append starts
    // a new one after close_current().
    std::uint64_t current() const { return current_ ? current_->seq : 0; }
    void close_current() { current_.reset(); }

    // Every segment name in the folder, in order. False with `error`.
    bool list(std::vector<std::uint64_t>& seqs, std::string* error) const;
    // A whole segment's bytes. False with `err` (an errno value).
    bool read(std::uint64_t seq, std::string& text, int& err) const;
    // Deletes a segment and makes its removal durable before returning.
    bool remove(std::uint64_t seq, std::string* error);
    const std::string& dir() const { return dir_; }

    static std::string name(std::uint64_t seq);

private:
    std::string dir_;
    std::uint64_t segment_bytes_;
    util::Fd dirfd_;
    std::shared_ptr<Segment> current_;
    std::mutex sync_mutex_;
};

}  // namespace postern::queue
