// queue/store_quarantine.cpp — messages set aside (layout in store.hpp):
// a message the spool cannot decode (damaged, cut, or written with another
// queue key) is never delivered garbled and never retried for ever; its
// file and its envelopes move to quarantine/, where nothing deletes them,
// so that an administrator can look, or bring them back with the right key.
// Also the queue key's check file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "queue/envelope_records.hpp"
#include "queue/journal.hpp"
#include "queue/store.hpp"
#include "queue/store_files.hpp"

namespace postern::queue {
namespace {

using files::is_lower_hex;
using files::sys_error;
using util::Fd;

constexpr std::string_view kEnvelopesSuffix = ".envelopes";
constexpr std::string_view kKeyCheckText = "postern queue key check\n";

bool append_durably(int dirfd, const std::string& name, const std::string& records, const std::string& path,
                    std::string* error) {
    Fd fd(::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) return (*error = sys_error(path, "open")), false;
    std::string out = st.st_size == 0 ? std::string(journal::kMagic) + records : records;
    if (!util::write_all(fd.get(), out) || !files::fsync_fd(fd.get()))
        return (*error = sys_error(path, "write")), false;
    return true;
}

}  // namespace

// quarantine/, made if need be.
Fd Store::open_quarantine(std::string* error) {
    const std::string qpath = dir_ + "/quarantine";
    if (!files::make_folder(qpath, error)) return Fd();
    Fd q = files::open_dir(AT_FDCWD, qpath);
    if (!q) *error = sys_error(qpath, "open");
    return q;
}

bool Store::quarantine(const Envelope& e, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    if (!ready(error)) return false;
    if (!is_lower_hex(e.msgid, 8)) return (*error = "bad message id '" + e.msgid + "'"), false;
    const std::string qpath = dir_ + "/quarantine";
    Fd q = open_quarantine(error);
    if (!q) return false;
    // The message first: its envelopes are worth nothing without it.
    if (::linkat(messages_fd_.get(), e.msgid.c_str(), q.get(), e.msgid.c_str(), 0) != 0 && errno != EEXIST)
        return (*error = sys_error(message_path(e.msgid), "link into quarantine/")), false;
    struct stat st {};
    if (::fstatat(q.get(), e.msgid.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return (*error = sys_error(qpath + "/" + e.msgid, "stat")), false;
    std::string records;
    if (!append_envelope(records, static_cast<std::uint64_t>(st.st_size), e, at_rest_))
        return (*error = "envelope " + e.id + ": cannot seal it (the random number generator failed)"), false;
    const std::string name = e.msgid + std::string(kEnvelopesSuffix);
    if (!append_durably(q.get(), name, records, qpath + "/" + name, error)) return false;
    if (!files::fsync_fd(q.get())) return (*error = sys_error(qpath, "fsync")), false;
    // Only now out of the queue: a crash before this point leaves it queued
    // (and set aside again at its next attempt), never lost.
    return remove(e, error);
}

bool Store::set_aside_locked(std::uint64_t evpid, const Unreadable& record, std::string* error) {
    const std::string msgid = files::hex_text(evpid >> 32, 8), qpath = dir_ + "/quarantine";
    Fd q = open_quarantine(error);
    if (!q) return false;
    // Its message, when it is there (a commit cut short leaves none).
    if (::linkat(messages_fd_.get(), msgid.c_str(), q.get(), msgid.c_str(), 0) != 0 && errno != EEXIST &&
        errno != ENOENT)
        return (*error = sys_error(message_path(msgid), "link into quarantine/")), false;
    std::string records;
    journal::append(records, record.op, record.size, record.payload);
    const std::string name = msgid + std::string(kEnvelopesSuffix);
    if (!append_durably(q.get(), name, records, qpath + "/" + name, error)) return false;
    return files::fsync_fd(q.get()) || ((*error = sys_error(qpath, "fsync")), false);
}

namespace {

// The envelopes of a quarantine/<msgid>.envelopes file, the latest record
// of each; false with `why` when one does not decode.
bool read_set_aside(const std::string& text, const AtRest& how, std::vector<Envelope>& out, std::string* why) {
    journal::Reader reader(text);
    for (journal::Record r; reader.next(r);) {
        if (!r.is_envelope()) continue;
        std::string problem;
        auto e = read_envelope(r, how, &problem);
        if (!e) return (*why = "envelope " + std::string(journal::envelope_id(r)) + ": " + problem), false;
        auto same = std::find_if(out.begin(), out.end(), [&](const Envelope& o) { return o.id == e->id; });
        if (same != out.end()) *same = std::move(*e);
        else out.push_back(std::move(*e));
    }
    if (!reader.error().empty() || !reader.damaged().empty())
        return (*why = "damaged: " + (reader.error().empty() ? reader.damaged().front() : reader.error())), false;
    return !out.empty() || ((*why = "no envelope"), false);
}

}  // namespace

bool Store::release(const std::string& msgid, std::vector<Envelope>& out, std::string* error) {
    if (!is_lower_hex(msgid, 8)) return (*error = "expected a message id (8 hex digits), got '" + msgid + "'"), false;
    if (!ready(error)) return false;
    const std::string qpath = dir_ + "/quarantine", name = msgid + std::string(kEnvelopesSuffix);
    Fd q = files::open_dir(AT_FDCWD, qpath);
    std::string text;
    int err = 0;
    if (!q || !files::read_file(q.get(), name, journal::kMaxPayload * 16, text, err))
        return (*error = "no message " + msgid + " in quarantine"), false;
    std::vector<Envelope> envelopes;
    std::string why;
    if (!read_set_aside(text, at_rest_, envelopes, &why))
        return (*error = qpath + "/" + name + ": " + why + "; left in quarantine"), false;
    Fd message(::openat(q.get(), msgid.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st {};
    if (!message || ::fstat(message.get(), &st) != 0) return (*error = sys_error(qpath + "/" + msgid, "open")), false;
    if (!open_plain(std::move(message), at_rest_, &why))
        return (*error = qpath + "/" + msgid + ": " + why + "; left in quarantine"), false;
    for (Envelope& e : envelopes) {
        if (e.msgid != msgid)
            return (*error = qpath + "/" + name + ": envelope " + e.id + " is not of " + msgid), false;
        e.next_try = 0;
    }
    std::lock_guard serial(commit_mutex_);
    std::lock_guard lock(mutex_);
    if (messages_.contains(static_cast<std::uint32_t>(files::hex_value(msgid))))
        return (*error = "message id " + msgid + " is in use in the queue; left in quarantine"), false;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::string records;
    for (const Envelope& e : envelopes)
        if (!append_envelope(records, size, e, at_rest_))
            return (*error = "envelope " + e.id + ": cannot seal it (the random number generator failed)"), false;
    if (::linkat(q.get(), msgid.c_str(), messages_fd_.get(), msgid.c_str(), 0) != 0)
        return (*error = sys_error(message_path(msgid), "link from quarantine/")), false;
    JournalPosition at;
    if (!files::fsync_fd(messages_fd_.get()) || !append_locked(records, at, error) || !journal_.sync(at, error)) {
        if (error->empty()) *error = sys_error(dir_ + "/messages", "fsync");
        ::unlinkat(messages_fd_.get(), msgid.c_str(), 0);
        return false;
    }
    for (const Envelope& e : envelopes)
        add_locked(files::hex_value(e.id), static_cast<std::uint32_t>(files::hex_value(msgid)), size, at.segment->seq);
    // Queued again: quarantine/ lets go of it (its envelopes first, so that
    // a crash in between leaves a message file there no listing names).
    ::unlinkat(q.get(), name.c_str(), 0);
    ::unlinkat(q.get(), msgid.c_str(), 0);
    files::fsync_fd(q.get());
    out = std::move(envelopes);
    return true;
}

std::vector<Store::Quarantined> Store::quarantined(std::string* error) const {
    std::vector<Quarantined> out;
    const std::string qpath = dir_ + "/quarantine";
    Fd q = files::open_dir(AT_FDCWD, qpath);
    std::vector<std::string> names;
    if (!q) {
        if (errno != ENOENT && error) *error = sys_error(qpath, "open");
        return out;
    }
    if (!files::list_dir(q.get(), names)) {
        if (error) *error = sys_error(qpath, "list");
        return out;
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        if (!name.ends_with(kEnvelopesSuffix)) continue;
        std::string msgid = name.substr(0, name.size() - kEnvelopesSuffix.size());
        if (!is_lower_hex(msgid, 8)) continue;
        Quarantined item{msgid, 0, 0};
        std::string text;
        int err = 0;
        if (files::read_file(q.get(), name, journal::kMaxPayload * 16, text, err)) {
            journal::Reader reader(text);
            for (journal::Record r; reader.next(r);) item.envelopes += r.is_envelope();
        }
        struct stat st {};
        if (::fstatat(q.get(), msgid.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
            item.size = static_cast<std::uint64_t>(st.st_size);
        out.push_back(std::move(item));
    }
    return out;
}

bool Store::check_key(std::string* error) {
    if (!at_rest_.key) return true;
    const std::string path = dir_ + "/key-check";
    if (::access(path.c_str(), F_OK) != 0) {
        // The first start with this key: the file every later start checks it against.
        const std::string tmp = path + ".tmp";
        Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
        AtRest sealed{false, at_rest_.key};
        MessageWriter w(fd.get(), sealed, kKeyCheckText.size());
        if (!fd || !w.write(kKeyCheckText) || !w.finish() || !files::fsync_fd(fd.get()) ||
            ::rename(tmp.c_str(), path.c_str()) != 0)
            return (*error = sys_error(path, "write")), false;
        Fd dir = files::open_dir(AT_FDCWD, dir_);
        return !dir || files::fsync_fd(dir.get()) || ((*error = sys_error(dir_, "fsync")), false);
    }
    return key_opens(dir_, at_rest_, error);
}

bool key_opens(const std::string& spool, const AtRest& how, std::string* error) {
    const std::string path = spool + "/key-check";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return errno == ENOENT || ((*error = sys_error(path, "open")), false);
    std::string why;
    Fd plain = open_plain(std::move(fd), how, &why);
    if (plain) return true;
    *error = "the queue key does not open " + path + " (" + why +
             "): the queue was written with another key. Set that key again; or, if no message written with it "
             "is left (quarantine/ holds those that could not be read), delete " +
             path;
    return false;
}

}  // namespace postern::queue
