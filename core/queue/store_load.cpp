// queue/store_load.cpp — reading the spool back at start-up (layout in
// store.hpp): the journal replayed in segment order, each envelope checked
// against its message file, what a crash left half made deleted, and a
// spool of the earlier layout (queue/<msgid>/{message,<evpid>}) brought over.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <unordered_map>
#include <unordered_set>

#include "queue/envelope_records.hpp"
#include "queue/journal.hpp"
#include "queue/store.hpp"
#include "queue/store_files.hpp"

namespace postern::queue {
namespace {

using files::hex_value;
using files::is_lower_hex;
using files::sys_error;
using util::Fd;

// An envelope file of the earlier layout is a few hundred bytes.
constexpr std::size_t kMaxEnvelopeFile = 1 << 20;

struct Replayed {
    std::string packed;      // pack(envelope)
    std::uint64_t size = 0;  // its message file's
    std::uint64_t seq = 0;   // the segment of its latest record
};

// What a replay found: the envelopes, and the sealed records that do not
// open (changed, or sealed with another key), by envelope id.
struct Replay {
    std::unordered_map<std::uint64_t, Replayed> live;
    std::unordered_map<std::uint64_t, Store::Unreadable> unreadable;
};

// Applies one segment's records to `out`.
void replay(const std::string& name, std::uint64_t seq, std::string_view text, const AtRest& how, Replay& out,
            std::vector<std::string>& errors) {
    journal::Reader reader(text);
    for (journal::Record r; reader.next(r);) {
        const std::string_view id = journal::envelope_id(r);
        if (r.op == journal::Op::Removed) {
            if (!id.empty()) {
                out.live.erase(hex_value(id));
                out.unreadable.erase(hex_value(id));
            } else {
                errors.push_back(name + ": removal of a bad envelope id, ignored");
            }
            continue;
        }
        std::string why;
        auto e = read_envelope(r, how, &why);
        if (!e && r.op == journal::Op::Sealed && !id.empty()) {
            // Its id is known: it is set aside, not dropped (load_packed).
            out.live.erase(hex_value(id));
            out.unreadable[hex_value(id)] = {r.op, r.size, std::string(r.payload), seq, why};
            continue;
        }
        if (!e || !is_lower_hex(e->id, 16) || !is_lower_hex(e->msgid, 8) || e->id.compare(0, 8, e->msgid) != 0) {
            errors.push_back(name + ": " + (e ? "bad envelope id '" + e->id + "'" : why) + ", skipped");
            continue;
        }
        out.unreadable.erase(hex_value(e->id));
        out.live[hex_value(e->id)] = Replayed{pack(*e), r.size, seq};
    }
    for (const auto& damaged : reader.damaged()) errors.push_back(name + ": " + damaged + ", record skipped");
    if (reader.error().empty()) return;
    errors.push_back(name + ": " + reader.error() +
                     (reader.cut_short() ? " (a write cut short when its process stopped); the rest ignored"
                                         : "; the rest of the segment ignored"));
}

// Reads segments `seqs` in order into `live`.
void replay_segments(const JournalWriter& journal, const std::vector<std::uint64_t>& seqs, const AtRest& how,
                     Replay& out, std::vector<std::string>& errors) {
    for (std::uint64_t seq : seqs) {
        const std::string name = journal.dir() + "/" + JournalWriter::name(seq);
        std::string text;
        int err = 0;
        if (!journal.read(seq, text, err)) {
            errors.push_back(sys_error(name, "read", err));
            continue;
        }
        replay(name, seq, text, how, out, errors);
    }
}

// Drops the envelopes whose message file is missing or not of the size
// their record gives; `whole` remembers each message's verdict.
void check_files(int messages_fd, const std::string& messages_path, std::unordered_map<std::uint64_t, Replayed>& live,
                 std::unordered_map<std::uint32_t, bool>& whole, std::vector<std::string>& errors) {
    for (auto it = live.begin(); it != live.end();) {
        const Replayed& r = it->second;
        auto [w, fresh] = whole.try_emplace(static_cast<std::uint32_t>(it->first >> 32), false);
        const std::string msgid = files::hex_text(it->first >> 32, 8);
        struct stat st;
        if (fresh)
            w->second = ::fstatat(messages_fd, msgid.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                        static_cast<std::uint64_t>(st.st_size) == r.size;
        if (w->second) {
            ++it;
            continue;
        }
        if (fresh)
            errors.push_back(messages_path + "/" + msgid + ": missing or not " + std::to_string(r.size) +
                             " bytes long (a commit cut short, never acknowledged): its envelopes are dropped");
        it = live.erase(it);
    }
}

}  // namespace

std::vector<Envelope> Store::load_all(std::vector<std::string>* errors) {
    std::vector<Envelope> out;
    for (const auto& p : load_packed(errors)) out.push_back(unpack(p.id, p.bytes));
    return out;
}

std::vector<Packed> Store::load_packed(std::vector<std::string>* errors_out) {
    std::vector<std::string> scratch;
    std::vector<std::string>& errors = errors_out ? *errors_out : scratch;
    std::vector<Packed> out;
    std::string why;
    if (!ready(&why)) {
        errors.push_back(why);
        return out;
    }
    {
        std::lock_guard serial(commit_mutex_);
        migrate_legacy(errors);
    }
    const std::string messages_path = dir_ + "/messages";
    // 1. The segments there are now, read while sessions go on committing:
    // their commits go to a new segment meanwhile.
    std::vector<std::uint64_t> seqs;
    {
        std::lock_guard lock(mutex_);
        journal_.close_current();
        if (!journal_.list(seqs, &why)) {
            errors.push_back(why);
            return out;
        }
    }
    Replay replayed;
    auto& live = replayed.live;
    std::unordered_map<std::uint32_t, bool> whole;
    replay_segments(journal_, seqs, at_rest_, replayed, errors);
    check_files(messages_fd_.get(), messages_path, live, whole, errors);
    // 2. With commits held (a file being committed would look orphaned):
    // what they committed meanwhile, the orphans, the index.
    std::lock_guard serial(commit_mutex_);
    std::lock_guard lock(mutex_);
    std::vector<std::uint64_t> all;
    if (journal_.list(all, &why)) {
        std::vector<std::uint64_t> newer;
        std::set_difference(all.begin(), all.end(), seqs.begin(), seqs.end(), std::back_inserter(newer));
        replay_segments(journal_, newer, at_rest_, replayed, errors);
        check_files(messages_fd_.get(), messages_path, live, whole, errors);
        seqs = std::move(all);
    } else {
        errors.push_back(why);
    }
    // Set aside before the orphans go: an unreadable envelope's message may
    // have no other envelope.
    std::vector<std::pair<std::uint64_t, Unreadable*>> unreadable;
    for (auto& [evpid, u] : replayed.unreadable) unreadable.emplace_back(evpid, &u);
    std::sort(unreadable.begin(), unreadable.end());
    std::vector<std::uint64_t> set_aside;
    std::vector<std::pair<std::uint64_t, Unreadable*>> held;
    for (auto& [evpid, u] : unreadable) {
        const std::string where = journal_.dir() + "/" + JournalWriter::name(u->seq) + ": envelope " +
                                  files::hex_text(evpid, 16) + ": " + u->why;
        if (!at_rest_.key) {
            errors.push_back(where + ": left in the journal until `queue encryption` has its key again");
        } else if (set_aside_locked(evpid, *u, &why)) {
            set_aside.push_back(evpid);
            errors.push_back(where + ": set aside in " + dir_ + "/quarantine/");
            continue;
        } else {
            errors.push_back(where + ": cannot set it aside (" + why + "); left in the journal");
        }
        // Held as it is: its record and its message stay for the next start.
        held.emplace_back(evpid, u);
        whole[static_cast<std::uint32_t>(evpid >> 32)] = true;
    }
    // Files no envelope names: commits cut short, removals cut short.
    std::vector<std::string> names;
    if (files::list_dir(messages_fd_.get(), names)) {
        for (const auto& name : names) {
            bool ours = is_lower_hex(name, 8);
            if (ours && whole[static_cast<std::uint32_t>(hex_value(name))]) continue;
            if (!ours) {
                errors.push_back(messages_path + "/" + name + ": not a message of ours, left alone");
                continue;
            }
            if (::unlinkat(messages_fd_.get(), name.c_str(), 0) != 0)
                errors.push_back(sys_error(messages_path + "/" + name, "unlink"));
        }
    }
    where_.clear();
    messages_.clear();
    segments_.clear();
    for (std::uint64_t seq : seqs) segments_[seq];
    if (journal_.current()) segments_[journal_.current()];
    // In id order (the hex ids compare as their numbers), without moving
    // the envelopes around to sort them.
    std::vector<std::pair<std::uint64_t, Replayed*>> order;
    order.reserve(live.size());
    for (auto& [evpid, r] : live) order.emplace_back(evpid, &r);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out.reserve(order.size());
    for (auto& [evpid, r] : order) {
        add_locked(evpid, static_cast<std::uint32_t>(evpid >> 32), r->size, r->seq);
        out.push_back(Packed{evpid, std::move(r->packed)});
    }
    // From here on this process rewrites and removes envelopes: in a segment
    // after every one it has read.
    loaded_ = true;
    journal_.close_current();
    // Held ones count in the index (never handed to the scheduler): their
    // segment, their message file and their message id are kept, and a
    // carry-over copies their records on.
    for (auto& [evpid, u] : held) add_locked(evpid, static_cast<std::uint32_t>(evpid >> 32), u->size, u->seq);
    // What was set aside, out of the journal, so that the next start does
    // not set it aside again.
    std::string removals;
    for (std::uint64_t evpid : set_aside)
        journal::append(removals, journal::Op::Removed, 0, files::hex_text(evpid, 16));
    JournalPosition at;
    if (!removals.empty() && (!append_locked(removals, at, &why) || !journal_.sync(at, &why)))
        errors.push_back(journal_.dir() + ": " + why);
    delete_dead_segments_locked();
    return out;
}

// queue/<msgid>/message and queue/<msgid>/<evpid> (postern before the
// journal): each message's envelopes are appended to the journal and its file
// linked into messages/, durably, before the folder is deleted; a migration
// cut short is done again from the start (the link and the records exist
// already: it just deletes the folder).
void Store::migrate_legacy(std::vector<std::string>& errors) {
    const std::string queue_path = dir_ + "/queue";
    Fd queue = files::open_dir(AT_FDCWD, queue_path);
    std::vector<std::string> folders;
    if (!queue || !files::list_dir(queue.get(), folders) || folders.empty()) return;
    std::sort(folders.begin(), folders.end());
    std::lock_guard lock(mutex_);
    for (const auto& msgid : folders) {
        const std::string folder_path = queue_path + "/" + msgid;
        Fd folder = files::open_dir(queue.get(), msgid);
        std::vector<std::string> names;
        if (!is_lower_hex(msgid, 8) || !folder || !files::list_dir(folder.get(), names)) {
            errors.push_back(folder_path + ": not a message folder, left alone");
            continue;
        }
        std::string records;
        struct stat st;
        bool has_message = ::fstatat(folder.get(), "message", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
        for (const auto& name : names) {
            if (name == "message" || name.ends_with(".tmp")) continue;
            std::string text, why;
            int err = 0;
            if (!files::read_file(folder.get(), name, kMaxEnvelopeFile, text, err)) {
                errors.push_back(sys_error(folder_path + "/" + name, "read", err));
                continue;
            }
            auto e = decode(text, &why);
            if (!e || e->id != name || e->msgid != msgid) {
                errors.push_back(folder_path + "/" + name + ": " + (e ? "id does not match its file name" : why));
                continue;
            }
            if (!append_envelope(records, static_cast<std::uint64_t>(st.st_size), *e, at_rest_)) {
                errors.push_back(folder_path + "/" + name + ": cannot seal it (the random number generator failed)");
                continue;
            }
        }
        if (!has_message || records.empty()) {
            errors.push_back(folder_path + (has_message ? ": message without envelopes" : ": no message file") +
                             ", left alone");
            continue;
        }
        if (::linkat(folder.get(), "message", messages_fd_.get(), msgid.c_str(), 0) != 0 && errno != EEXIST) {
            errors.push_back(sys_error(folder_path + "/message", "link into messages/"));
            continue;
        }
        JournalPosition at;
        std::string why;
        if (!append_locked(records, at, &why) || !journal_.sync(at, &why) || !files::fsync_fd(messages_fd_.get())) {
            errors.push_back(folder_path + ": " + (why.empty() ? "cannot bring over" : why));
            continue;
        }
        folder.reset();
        if (!files::remove_folder(queue.get(), msgid, &why)) errors.push_back(queue_path + "/" + why);
    }
    files::fsync_fd(queue.get());
}

}  // namespace postern::queue
