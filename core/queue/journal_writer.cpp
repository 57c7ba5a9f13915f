// queue/journal_writer.cpp — see journal_writer.hpp.
#include "queue/journal_writer.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "queue/journal.hpp"
#include "queue/store_files.hpp"

namespace postern::queue {
namespace {

using files::sys_error;

bool retry_eintr(int rc) { return rc == 0 || errno != EINTR; }

}  // namespace

std::string JournalWriter::name(std::uint64_t seq) { return files::hex_text(seq, 16); }

bool JournalWriter::open(std::string* error) {
    dirfd_ = util::Fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirfd_) return true;
    *error = sys_error(dir_, "open");
    return false;
}

bool JournalWriter::list(std::vector<std::uint64_t>& seqs, std::string* error) const {
    seqs.clear();
    int copy = ::fcntl(dirfd_.get(), F_DUPFD_CLOEXEC, 0);  // fdopendir takes it over
    std::unique_ptr<DIR, int (*)(DIR*)> dir(copy >= 0 ? ::fdopendir(copy) : nullptr, ::closedir);
    if (!dir) {
        if (copy >= 0) ::close(copy);
        *error = sys_error(dir_, "open");
        return false;
    }
    ::rewinddir(dir.get());
    errno = 0;
    while (dirent* entry = ::readdir(dir.get())) {
        if (files::is_lower_hex(entry->d_name, 16)) seqs.push_back(files::hex_value(entry->d_name));
        errno = 0;
    }
    if (errno != 0) {
        *error = sys_error(dir_, "readdir");
        return false;
    }
    std::sort(seqs.begin(), seqs.end());
    return true;
}

// A new segment after every one in the folder, whoever made it: a process
// started by a reload appends to its own segments while the one it replaces
// still appends to its, and replay order is name order.
bool JournalWriter::start(std::string* error) {
    std::vector<std::uint64_t> seqs;
    if (!list(seqs, error)) return false;
    std::uint64_t seq = seqs.empty() ? 1 : seqs.back() + 1;
    for (int attempt = 0; attempt < 100; ++attempt, ++seq) {
        std::string file = name(seq);
        util::Fd fd(::openat(dirfd_.get(), file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
        if (!fd && errno == EEXIST) continue;  // another process took that name just now
        if (!fd || !util::write_all(fd.get(), journal::kMagic)) {
            *error = sys_error(dir_ + "/" + file, fd ? "write" : "create");
            if (fd) ::unlinkat(dirfd_.get(), file.c_str(), 0);
            return false;
        }
        auto segment = std::make_shared<Segment>();
        segment->seq = seq;
        segment->fd = std::move(fd);
        segment->end = journal::kMagic.size();
        current_ = std::move(segment);
        return true;
    }
    *error = dir_ + ": no free segment name";
    return false;
}

bool JournalWriter::needs_new_segment() const {
    return !current_ || current_->failed || current_->end >= segment_bytes_;
}

bool JournalWriter::append(std::string_view bytes, JournalPosition& at, std::string* error) {
    if (needs_new_segment() && !start(error)) return false;
    Segment& s = *current_;
    if (!util::write_all(s.fd.get(), bytes)) {
        *error = sys_error(dir_ + "/" + name(s.seq), "write");
        // Part of it may be there: the next record must not follow it.
        s.failed = true;
        return false;
    }
    s.end += bytes.size();
    at = JournalPosition{current_, s.end};
    return true;
}

bool JournalWriter::sync(const JournalPosition& at, std::string* error) {
    if (!at.segment) return true;  // nothing was appended
    std::lock_guard lock(sync_mutex_);
    Segment& s = *at.segment;
    const std::string path = dir_ + "/" + name(s.seq);
    if (s.failed) {
        *error = path + ": an earlier write or sync failed";
        return false;
    }
    if (s.synced < at.end) {
        std::uint64_t upto = s.end;  // whatever other threads appended meanwhile goes too
        int rc;
        do rc = ::fdatasync(s.fd.get());
        while (!retry_eintr(rc));
        if (rc != 0) {
            *error = sys_error(path, "fdatasync");
            s.failed = true;
            return false;
        }
        s.synced = upto;
    }
    if (!s.name_synced) {
        int rc;
        do rc = ::fsync(dirfd_.get());
        while (!retry_eintr(rc));
        if (rc != 0) {
            *error = sys_error(dir_, "fsync");
            return false;
        }
        s.name_synced = true;
    }
    return true;
}

bool JournalWriter::read(std::uint64_t seq, std::string& text, int& err) const {
    // Read whole; ours stay near their size limit (a few MiB), and this
    // bound only keeps a stray huge file from being taken in.
    constexpr std::size_t kMaxSegmentFile = std::size_t{1} << 34;
    return files::read_file(dirfd_.get(), name(seq), kMaxSegmentFile, text, err);
}

bool JournalWriter::remove(std::uint64_t seq, std::string* error) {
    std::string file = name(seq);
    if (::unlinkat(dirfd_.get(), file.c_str(), 0) != 0 && errno != ENOENT) {
        *error = sys_error(dir_ + "/" + file, "unlink");
        return false;
    }
    if (current_ && current_->seq == seq) current_.reset();
    if (::fsync(dirfd_.get()) != 0) {
        *error = sys_error(dir_, "fsync");
        return false;
    }
    return true;
}

}  // namespace postern::queue
