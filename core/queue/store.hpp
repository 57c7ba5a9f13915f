// The spool on disk, and its group commit.
//
//   DIR/messages/<msgid>       a message (LF line ends), one file each
//   DIR/journal/<seq>          the envelopes: append-only segments of records
//                              (journal.hpp), replayed in name order
//   DIR/incoming/              sessions' temporary files (smtpd/message_buffer)
//   DIR/quarantine/            messages and envelopes set aside, unreadable
//                              (store_quarantine.cpp)
//   DIR/key-check              with `queue encryption`: a file sealed with the key
//
// A batch of messages is committed in one round of flushes: each message's
// file is written, the batch's envelopes are appended to the journal as one
// write, then the message files, the journal and messages/ are synced side
// by side. Only then is the client told 250. An envelope record names its
// message's size: after a crash, a record whose message file is missing or
// shorter (a commit cut short, never acknowledged) is dropped, and a message
// file no live envelope names is deleted. Rewriting an envelope (a retry)
// appends it whole again; removing it appends a removal record, and the
// message file goes with its last envelope.
//
// Journal segments: one process appends to its own, the newest; a segment
// whose envelopes are all removed is deleted, oldest first (a removal record
// must not go before the record it cancels); when more than a few segments
// exist, each new one carries over the live envelopes of the oldest, which
// is then deleted, so the journal stays near the size of the queue.
//
// Only the process that holds the scheduler's lock loads the queue
// (load_all), rewrites and removes envelopes and deletes files; a process
// started by a reload commits new messages into its own segment before that.
//
// Every Store method blocks on disk I/O: call it from a worker thread, never
// from the event loop. Methods may be called from several threads at once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "queue/envelope.hpp"
#include "queue/journal.hpp"
#include "queue/journal_writer.hpp"
#include "queue/message_codec.hpp"
#include "queue/sync_pool.hpp"
#include "util/fd.hpp"

namespace postern::queue {

class Store {
public:
    // `segment_bytes`: how big a journal segment grows before the next one
    // starts (tests make it small).
    explicit Store(std::string dir, std::uint64_t segment_bytes = JournalWriter::kDefaultSegmentBytes);
    ~Store();  // a process that emptied its queue leaves no journal behind

    // Create the folders (mode 0700) and clear incoming/ of sessions'
    // leftovers. False with `error` on failure.
    bool open(std::string* error);

    struct Message {
        std::string msgid;
        std::string data;                 // the message, LF line ends
        std::vector<Envelope> envelopes;  // at least one
        // For a large message, what follows `data`: the contents of this
        // file from its start (a session's temporary file,
        // smtpd/message_buffer.hpp), copied into the message's own file.
        std::shared_ptr<const util::Fd> file;
    };
    // Commit several messages with one round of flushes. On return every
    // message is either durable or absent; ok[i] says which.
    void commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::string* error);
    // The same, with the reason of each failure: errors[i] is "" when ok[i].
    void commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::vector<std::string>& errors);
    // How many times commit() ran (tests check that the Committer batches).
    // Not synchronized: read it when no commit is running.
    std::uint64_t commit_calls() const { return commit_calls_; }

    // Every envelope in the spool (start-up, by the lock holder): replays
    // the journal, brings a spool of the earlier layout (queue/<msgid>/)
    // over, deletes what a crash left half made. What cannot be read is
    // skipped and named in `errors`. In id order, packed (queue::pack): a
    // million envelopes take a few hundred megabytes so, not gigabytes.
    std::vector<Packed> load_packed(std::vector<std::string>* errors);
    // The same, unpacked.
    std::vector<Envelope> load_all(std::vector<std::string>* errors);

    // Rewrite a queued envelope, durably. Refuses one that is not queued:
    // bringing back a removed envelope would deliver twice.
    bool update(const Envelope& e, std::string* error);
    // Delete envelopes whose delivery is final, durably; a message's file
    // goes with its last envelope. False when any failed; `errors` names each.
    bool remove(const std::vector<Envelope>& envelopes, std::vector<std::string>* errors);
    bool remove(const Envelope& e, std::string* error);

    // Sets an envelope whose message cannot be decoded (damaged, cut, or
    // written with another key) aside, durably, then takes it out of the
    // queue: quarantine/<msgid> (the message file, linked there) and
    // quarantine/<msgid>.envelopes (its envelope records, in the journal's
    // format). Nothing there is deleted by postern.
    bool quarantine(const Envelope& e, std::string* error);
    struct Quarantined {
        std::string msgid;
        std::size_t envelopes = 0;
        std::uint64_t size = 0;  // bytes of its message file
    };
    std::vector<Quarantined> quarantined(std::string* error) const;
    // Brings message `msgid` back from quarantine/ into the queue, durably,
    // once it decodes with the current key (set the right key again, then
    // release): its envelopes (written again with the current settings, to
    // be tried at once) go to `out`. Refused, leaving it where it is, when
    // the message or any of its envelopes still does not decode, or the id
    // is in use in the queue. By the lock holder only.
    bool release(const std::string& msgid, std::vector<Envelope>& out, std::string* error);
    // A sealed envelope record that does not open (changed, or sealed with
    // another key), found by load_packed(): set aside as it is, its id being
    // in clear, and taken out of the journal.
    struct Unreadable {
        journal::Op op = journal::Op::Sealed;
        std::uint64_t size = 0;
        std::string payload;
        std::uint64_t seq = 0;  // the segment it is in
        std::string why;
    };
    // With a queue key: the first start writes key-check, a small file
    // sealed with it; later starts check that the key opens it (key_opens).
    bool check_key(std::string* error);

    // The committed message's own bytes (decoded if it is compressed or
    // encrypted: open_plain()); -1 with `error` on failure.
    int open_message(const std::string& msgid, std::string* error) const;
    std::string message_path(const std::string& msgid) const;

    // A message id not in use in the spool.
    std::string unused_message_id() const;
    // False when a queued message has this id (8 hex digits), as far as the
    // index tells without waiting for a commit under way: it knows every
    // message once the queue is loaded. For the event loop: no I/O. A clash
    // it misses is refused by commit() (create: File exists), never merged.
    bool message_id_free(std::string_view msgid);

    const std::string& dir() const { return dir_; }
    // How new message files are written and every one is read back
    // (message_codec.hpp); set before the first commit.
    void set_at_rest(AtRest how) { at_rest_ = std::move(how); }

private:
    struct MessageInfo {
        std::uint64_t size = 0;  // bytes in its file
        std::uint32_t live = 0;  // envelopes queued
    };
    struct SegmentInfo {
        std::uint32_t live = 0;  // envelopes whose latest record is here
    };

    bool ready(std::string* error);
    bool append_locked(const std::string& records, JournalPosition& at, std::string* error);
    void add_locked(std::uint64_t evpid, std::uint32_t msgid, std::uint64_t size, std::uint64_t seq);
    bool remove_locked(std::uint64_t evpid, std::uint32_t msgid, bool* message_gone);
    void after_rotation_locked();
    void carry_over_locked(std::uint64_t seq);
    void delete_dead_segments_locked();
    void withdraw(const Message& m, std::string* error);
    bool set_aside_locked(std::uint64_t evpid, const Unreadable& record, std::string* error);
    util::Fd open_quarantine(std::string* error);
    void migrate_legacy(std::vector<std::string>& errors);

    std::string dir_;
    AtRest at_rest_;
    std::uint64_t commit_calls_ = 0;
    std::mutex commit_mutex_;  // commits one at a time; load_all waits for none under way
    std::mutex mutex_;         // the index and the journal's appends
    JournalWriter journal_;
    util::Fd messages_fd_;
    std::unique_ptr<SyncPool> pool_;
    bool loaded_ = false;                                      // this process holds the lock and has read the journal
    std::unordered_map<std::uint64_t, std::uint64_t> where_;   // envelope id -> segment of its latest record
    std::unordered_map<std::uint32_t, MessageInfo> messages_;  // message id -> its file and live envelopes
    std::map<std::uint64_t, SegmentInfo> segments_;            // segments this process knows, by name
    bool carrying_ = false;                                    // carry_over under way
};

// False (with the reason and what to do) when `spool`/key-check exists and
// `how`'s key does not open it: the queue was written with another key. For
// posternd -n and the parent's start-up checks.
bool key_opens(const std::string& spool, const AtRest& how, std::string* error);

// A thread that commits what concurrent sessions hand it, in batches: while
// one batch is being synced, new messages pile up and go together next round.
class Committer {
public:
    // Called on the committer thread once the message is durable (ok) or not.
    using Done = std::function<void(bool ok, const std::string& error)>;

    explicit Committer(Store& store);
    ~Committer();  // finishes pending commits, then joins
    Committer(const Committer&) = delete;
    Committer& operator=(const Committer&) = delete;

    void submit(Store::Message message, Done done);

private:
    void run();

    Store& store_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::pair<Store::Message, Done>> pending_;
    bool stopping_ = false;
    std::thread thread_;  // last: started after everything it uses exists
};

}  // namespace postern::queue
