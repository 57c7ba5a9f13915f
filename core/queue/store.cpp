// queue/store.cpp — the spool on disk: group commit, envelope rewrite and
// removal, the journal's segments (layout in store.hpp; start-up in
// store_load.cpp).
//
// Durability rests on these facts: a file's bytes are durable after its
// fsync (fdatasync for an append-only file); a name in a folder is durable
// after the folder's fsync; a file's size, once durable, covers bytes that
// are durable too (ext4's data=ordered and XFS write data before the size
// that exposes it), so a message file of the recorded size is whole.
#include "queue/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "queue/envelope_records.hpp"
#include "queue/journal.hpp"
#include "queue/store_files.hpp"

namespace postern::queue {
namespace {

using files::hex_value;
using files::is_lower_hex;
using files::sys_error;
using util::Fd;

constexpr mode_t kFileMode = 0600;
// commit() keeps at most this many descriptors open between writing and
// syncing; beyond it a file is closed after writing and reopened to sync, so
// a batch of 512 messages never runs into RLIMIT_NOFILE.
constexpr std::size_t kMaxHeldFds = 256;
// Threads besides the committing one that fsync a batch together.
constexpr std::size_t kSyncHelpers = 7;
// Beyond this many segments, each new one carries the oldest one's live
// envelopes over, so that the oldest can go.
constexpr std::size_t kKeepSegments = 4;

bool valid_envelope_ids(const Envelope& e, std::string* error) {
    if (!is_lower_hex(e.msgid, 8) || !is_lower_hex(e.id, 16) || e.id.compare(0, 8, e.msgid) != 0) {
        *error = "bad envelope id '" + e.id + "' / msgid '" + e.msgid + "'";
        return false;
    }
    return true;
}

bool check_message(const Store::Message& m, std::string& error) {
    if (!is_lower_hex(m.msgid, 8)) {
        error = "bad message id '" + m.msgid + "'";
        return false;
    }
    if (m.envelopes.empty()) {
        error = m.msgid + ": no envelope";
        return false;
    }
    std::unordered_set<std::string_view> seen;
    for (const Envelope& e : m.envelopes) {
        if (!valid_envelope_ids(e, &error)) return false;
        if (e.msgid != m.msgid) {
            error = "envelope " + e.id + " does not belong to message " + m.msgid;
            return false;
        }
        if (!seen.insert(e.id).second) {
            error = "envelope " + e.id + " given twice";
            return false;
        }
    }
    return true;
}

// The errors of a call, one line: "" when there is none.
std::string joined(const std::vector<std::string>& errors) {
    std::string out;
    for (const auto& e : errors) {
        if (e.empty()) continue;
        if (!out.empty()) out += "; ";
        out += e;
    }
    return out;
}

std::uint32_t msgid_key(const std::string& msgid) { return static_cast<std::uint32_t>(hex_value(msgid)); }

// One message of a batch on its way through the commit.
struct Written {
    Fd fd;  // empty once closed to spare descriptors: reopened to sync
    std::uint64_t size = 0;
    bool alive = false;  // its file is written and nothing failed yet
    std::string error;
};

}  // namespace

Store::Store(std::string dir, std::uint64_t segment_bytes)
    : dir_(std::move(dir)), journal_(dir_ + "/journal", segment_bytes) {}

Store::~Store() {
    if (!loaded_ || !where_.empty()) return;
    // Every envelope this process knew is gone: so are its segments, oldest
    // first, unless another process's comes first (a reload's successor).
    std::lock_guard lock(mutex_);
    journal_.close_current();
    for (auto& [seq, info] : segments_) info.live = 0;
    delete_dead_segments_locked();
}

bool Store::open(std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    const std::string incoming = dir_ + "/incoming";
    for (const std::string& path : {dir_, incoming, dir_ + "/messages", dir_ + "/journal"})
        if (!files::make_folder(path, error)) return false;
    Fd folder = files::open_dir(AT_FDCWD, incoming);
    std::vector<std::string> names;
    if (!folder || !files::list_dir(folder.get(), names)) {
        *error = sys_error(incoming, "open");
        return false;
    }
    for (const auto& name : names) {
        if (!files::remove_folder(folder.get(), name, error)) {
            *error = incoming + "/" + *error;
            return false;
        }
    }
    return ready(error) && check_key(error);
}

// The descriptors every operation needs, opened once (a process started by
// a reload never calls open(): the folders exist).
bool Store::ready(std::string* error) {
    if (messages_fd_) return true;
    messages_fd_ = files::open_dir(AT_FDCWD, dir_ + "/messages");
    if (!messages_fd_) {
        *error = sys_error(dir_ + "/messages", "open");
        return false;
    }
    if (!journal_.open(error)) {
        messages_fd_.reset();
        return false;
    }
    return true;
}

// --- the journal's index ---------------------------------------------------

bool Store::append_locked(const std::string& records, JournalPosition& at, std::string* error) {
    if (journal_.needs_new_segment()) {
        if (!journal_.start(error)) return false;
        segments_[journal_.current()];
        // Before this append: carried-over records must not follow newer ones.
        if (loaded_ && !carrying_) after_rotation_locked();
    }
    if (!journal_.append(records, at, error)) return false;
    segments_[at.segment->seq];
    return true;
}

void Store::add_locked(std::uint64_t evpid, std::uint32_t msgid, std::uint64_t size, std::uint64_t seq) {
    auto [it, fresh] = where_.try_emplace(evpid, seq);
    if (!fresh) {
        auto old = segments_.find(it->second);
        if (old != segments_.end() && old->second.live > 0) --old->second.live;
        it->second = seq;
    }
    ++segments_[seq].live;
    MessageInfo& info = messages_[msgid];
    info.size = size;
    if (fresh) ++info.live;
}

bool Store::remove_locked(std::uint64_t evpid, std::uint32_t msgid, bool* message_gone) {
    *message_gone = false;
    auto it = where_.find(evpid);
    if (it == where_.end()) return false;
    if (auto seg = segments_.find(it->second); seg != segments_.end() && seg->second.live > 0) --seg->second.live;
    where_.erase(it);
    auto m = messages_.find(msgid);
    if (m != messages_.end() && --m->second.live == 0) {
        messages_.erase(m);
        *message_gone = true;
    }
    return true;
}

// A segment just started: delete the dead ones at the front, and when too
// many are left, carry the oldest one's live envelopes over.
void Store::after_rotation_locked() {
    delete_dead_segments_locked();
    std::uint64_t current = journal_.current();
    std::size_t closed = 0;
    for (const auto& [seq, info] : segments_) closed += seq != current;
    if (closed + 1 > kKeepSegments && segments_.begin()->first != current) carry_over_locked(segments_.begin()->first);
}

// Oldest first, and only while the oldest in the folder is one this process
// knows: a removal record in a later segment may cancel an envelope of an
// earlier one, which must not come back.
void Store::delete_dead_segments_locked() {
    if (!loaded_) return;
    std::vector<std::uint64_t> existing;
    std::string error;
    if (!journal_.list(existing, &error)) return;
    for (std::uint64_t seq : existing) {
        auto it = segments_.find(seq);
        if (it == segments_.end() || it->second.live != 0 || seq == journal_.current()) break;
        if (!journal_.remove(seq, &error)) break;
        segments_.erase(it);
    }
}

// Re-appends the envelopes whose latest record is in segment `seq` (the
// oldest), makes them durable, then deletes that segment. Carried records fill
// the new segment, and the records that started it go to the next one
// (JournalWriter::append starts it without coming back here): so a carry-over
// happens once per segment of new records, and a large queue that stays is
// rewritten at most once for each time new records fill a segment, never in
// a burst after a restart.
void Store::carry_over_locked(std::uint64_t seq) {
    std::vector<std::uint64_t> existing;
    std::string text, error;
    int err = 0;
    if (!journal_.list(existing, &error) || existing.empty() || existing.front() != seq) return;
    if (!journal_.read(seq, text, err)) return;
    // Records are carried as they are, sealed or not: a sealed one is
    // authenticated with its id and size, not with where it lies.
    std::unordered_map<std::uint64_t, journal::Record> latest;
    journal::Reader reader(text);
    for (journal::Record r; reader.next(r);) {
        std::string_view id = journal::envelope_id(r);
        if (!r.is_envelope() || id.empty()) continue;
        std::uint64_t evpid = hex_value(id);
        auto w = where_.find(evpid);
        if (w != where_.end() && w->second == seq) latest[evpid] = r;
    }
    std::string records;
    for (const auto& [evpid, r] : latest) journal::append(records, r.op, r.size, r.payload);
    carrying_ = true;
    JournalPosition at;
    bool appended = records.empty() || append_locked(records, at, &error);
    carrying_ = false;
    if (!appended) return;
    for (const auto& [evpid, r] : latest)
        add_locked(evpid, static_cast<std::uint32_t>(evpid >> 32), r.size, at.segment->seq);
    if (!records.empty() && !journal_.sync(at, &error)) return;
    if (journal_.remove(seq, &error)) segments_.erase(seq);
}

// --- commit -------------------------------------------------------------------

void Store::commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::string* error) {
    std::vector<std::string> errors;
    commit(batch, ok, errors);
    if (error) *error = joined(errors);
}

void Store::commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::vector<std::string>& errors) {
    std::lock_guard serial(commit_mutex_);
    ++commit_calls_;
    ok.assign(batch.size(), false);
    errors.assign(batch.size(), std::string());
    std::string why;
    if (!ready(&why)) {
        for (auto& e : errors) e = why;
        return;
    }
    const std::string messages_path = dir_ + "/messages";
    // 1. Each message's file, whole; writeback starts at once, so the data
    // streams to the disk while the rest is written.
    std::vector<Written> files(batch.size());
    std::size_t held = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const Message& m = *batch[i];
        Written& w = files[i];
        if (!check_message(m, w.error)) continue;
        const std::string path = messages_path + "/" + m.msgid;
        Fd fd(::openat(messages_fd_.get(), m.msgid.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode));
        if (!fd) {
            w.error = sys_error(path, "create");
            continue;
        }
        struct stat tail {};
        if (m.file && ::fstat(m.file->get(), &tail) != 0) tail.st_size = -1;
        MessageWriter out(fd.get(), at_rest_, m.data.size() + static_cast<std::uint64_t>(tail.st_size));
        if (tail.st_size < 0 || !out.write(m.data) || (m.file && !out.copy_from(m.file->get())) || !out.finish()) {
            w.error = path + ": write: " + (out.error().empty() ? std::strerror(errno) : out.error());
            ::unlinkat(messages_fd_.get(), m.msgid.c_str(), 0);
            continue;
        }
        ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
        w.size = out.file_size();
        if (held < kMaxHeldFds) {
            w.fd = std::move(fd);
            ++held;
        }
        w.alive = true;
    }
    // 2. The batch's envelopes, in one append.
    std::string records;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!files[i].alive) continue;
        std::string mine;
        for (const Envelope& e : batch[i]->envelopes)
            if (!append_envelope(mine, files[i].size, e, at_rest_)) {
                files[i] = Written{{}, 0, false, "cannot seal its envelope (the random number generator failed)"};
                ::unlinkat(messages_fd_.get(), batch[i]->msgid.c_str(), 0);
                break;
            }
        if (files[i].alive) records += mine;
    }
    JournalPosition at;
    if (!records.empty()) {
        std::lock_guard lock(mutex_);
        if (append_locked(records, at, &why)) {
            for (std::size_t i = 0; i < batch.size(); ++i)
                if (files[i].alive)
                    for (const Envelope& e : batch[i]->envelopes)
                        add_locked(hex_value(e.id), msgid_key(e.msgid), files[i].size, at.segment->seq);
        } else {
            for (std::size_t i = 0; i < batch.size(); ++i) {
                if (!files[i].alive) continue;
                files[i] = Written{{}, 0, false, why};
                ::unlinkat(messages_fd_.get(), batch[i]->msgid.c_str(), 0);
            }
            at = {};
        }
    }
    // 3. The files, the journal and messages/ flushed side by side.
    std::vector<std::size_t> to_sync;
    for (std::size_t i = 0; i < batch.size(); ++i)
        if (files[i].alive) to_sync.push_back(i);
    std::string journal_error, folder_error;
    if (!to_sync.empty()) {
        if (!pool_) pool_ = std::make_unique<SyncPool>(kSyncHelpers);
        pool_->run(to_sync.size() + 2, [&](std::size_t k) {
            if (k == to_sync.size()) {
                if (!journal_.sync(at, &journal_error) && journal_error.empty()) journal_error = "journal sync failed";
                return;
            }
            if (k == to_sync.size() + 1) {
                if (!files::fsync_fd(messages_fd_.get())) folder_error = sys_error(messages_path, "fsync");
                return;
            }
            Written& w = files[to_sync[k]];
            const std::string& msgid = batch[to_sync[k]]->msgid;
            Fd fd = w.fd ? std::move(w.fd) : Fd(::openat(messages_fd_.get(), msgid.c_str(), O_RDONLY | O_CLOEXEC));
            if (!fd) w.error = sys_error(messages_path + "/" + msgid, "open");
            else if (!files::fsync_fd(fd.get())) w.error = sys_error(messages_path + "/" + msgid, "fsync");
            else if (fd.close() != 0) w.error = sys_error(messages_path + "/" + msgid, "close");
        });
    }
    // 4. What failed is taken back, so that a restart cannot deliver what
    // the client saw refused.
    const std::string& common = !journal_error.empty() ? journal_error : folder_error;
    for (std::size_t i : to_sync) {
        Written& w = files[i];
        if (w.error.empty() && common.empty()) {
            ok[i] = true;
            continue;
        }
        errors[i] = w.error.empty() ? common : w.error;
        withdraw(*batch[i], nullptr);
    }
    for (std::size_t i = 0; i < batch.size(); ++i)
        if (!ok[i] && errors[i].empty()) errors[i] = std::move(files[i].error);
}

void Store::withdraw(const Message& m, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    std::string records;
    JournalPosition at;
    {
        std::lock_guard lock(mutex_);
        for (const Envelope& e : m.envelopes) {
            bool gone = false;
            if (remove_locked(hex_value(e.id), msgid_key(e.msgid), &gone))
                journal::append(records, journal::Op::Removed, 0, e.id);
        }
        if (!records.empty() && !append_locked(records, at, error)) at = {};
    }
    if (at.segment) journal_.sync(at, error);
    ::unlinkat(messages_fd_.get(), m.msgid.c_str(), 0);
}

// --- rewrite and removal -------------------------------------------------------

bool Store::update(const Envelope& e, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    if (!valid_envelope_ids(e, error) || !ready(error)) return false;
    JournalPosition at;
    {
        std::lock_guard lock(mutex_);
        const std::uint64_t evpid = hex_value(e.id);
        const std::uint32_t msgid = msgid_key(e.msgid);
        auto info = messages_.find(msgid);
        if (!where_.contains(evpid) || info == messages_.end()) {
            *error = "envelope " + e.id + " is not queued";
            return false;
        }
        const std::uint64_t size = info->second.size;
        std::string record;
        if (!append_envelope(record, size, e, at_rest_))
            return (*error = "envelope " + e.id + ": cannot seal it (the random number generator failed)"), false;
        if (!append_locked(record, at, error)) return false;
        // A carry-over in append_locked may have moved it: still queued.
        add_locked(evpid, msgid, size, at.segment->seq);
    }
    return journal_.sync(at, error);
}

bool Store::remove(const std::vector<Envelope>& envelopes, std::vector<std::string>* errors) {
    std::string why;
    if (!ready(&why)) {
        errors->push_back(why);
        return false;
    }
    std::string records;
    std::vector<std::string> gone_messages;
    JournalPosition at;
    {
        std::lock_guard lock(mutex_);
        for (const Envelope& e : envelopes) {
            if (!valid_envelope_ids(e, &why)) {
                errors->push_back(why);
                continue;
            }
            bool gone = false;
            if (!remove_locked(hex_value(e.id), msgid_key(e.msgid), &gone)) {
                errors->push_back("envelope " + e.id + " is not queued");
                continue;
            }
            journal::append(records, journal::Op::Removed, 0, e.id);
            if (gone) gone_messages.push_back(e.msgid);
        }
        if (!records.empty() && !append_locked(records, at, &why)) {
            errors->push_back(why);
            return false;
        }
    }
    if (at.segment && !journal_.sync(at, &why)) {
        errors->push_back(why);
        return false;
    }
    // After the removal records are durable: a crash in between leaves a
    // file no envelope names, which the next start-up deletes.
    for (const auto& msgid : gone_messages)
        if (::unlinkat(messages_fd_.get(), msgid.c_str(), 0) != 0 && errno != ENOENT)
            errors->push_back(sys_error(dir_ + "/messages/" + msgid, "unlink"));
    return errors->empty();
}

bool Store::remove(const Envelope& e, std::string* error) {
    std::vector<std::string> errors;
    if (remove({e}, &errors)) return true;
    if (error) *error = joined(errors);
    return false;
}

// --- reading --------------------------------------------------------------------

int Store::open_message(const std::string& msgid, std::string* error) const {
    if (!is_lower_hex(msgid, 8)) {
        if (error) *error = "bad message id '" + msgid + "'";
        return -1;
    }
    const std::string path = message_path(msgid);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    std::string why;
    if (!fd) why = sys_error(path, "open");
    else if (!(fd = open_plain(std::move(fd), at_rest_, &why))) why = path + ": " + why;
    if (!fd && error) *error = why;
    return fd.release();
}

bool Store::message_id_free(std::string_view msgid) {
    if (!is_lower_hex(msgid, 8)) return false;
    std::unique_lock lock(mutex_, std::try_to_lock);
    return !lock.owns_lock() || !messages_.count(static_cast<std::uint32_t>(hex_value(msgid)));
}

std::string Store::message_path(const std::string& msgid) const { return dir_ + "/messages/" + msgid; }

std::string Store::unused_message_id() const {
    // 2^32 ids against a spool of at most a few million: a clash is rare and
    // a handful of draws settles it; the bound only guards a broken RNG.
    std::string id;
    for (int attempt = 0; attempt < 1000; ++attempt) {
        id = new_message_id();
        struct stat st;
        if (::stat(message_path(id).c_str(), &st) != 0 && errno == ENOENT &&
            ::stat((dir_ + "/queue/" + id).c_str(), &st) != 0 && errno == ENOENT)
            return id;
    }
    return id;  // commit() refuses it safely if it does clash
}

}  // namespace postern::queue
