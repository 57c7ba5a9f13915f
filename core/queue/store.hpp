// The spool on disk, and its group commit.
//
//   DIR/incoming/<msgid>/          a message being committed (never visible to the scheduler)
//   DIR/queue/<msgid>/message      committed message (LF line ends)
//   DIR/queue/<msgid>/<evpid>      committed envelopes, one per recipient
//
// A message is committed by writing its folder under incoming/, fsyncing every
// file and the folder, renaming it into queue/ and fsyncing queue/. Only then
// is the client told 250. Messages that concurrent sessions commit at the same
// moment share one round of fsyncs (group commit, see Committer).
//
// Every Store method blocks on disk I/O: call it from a worker thread, never
// from the event loop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue/envelope.hpp"
#include "util/fd.hpp"

namespace postern::queue {

class Store {
public:
    explicit Store(std::string dir);

    // Create the folders (mode 0700) and clear leftovers of interrupted commits
    // in incoming/ (they were never acknowledged). False with `error` on failure.
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
    // Commit several messages with one round of fsyncs. On return every
    // message is either durable in queue/ or absent; ok[i] says which.
    void commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::string* error);
    // The same, with the reason of each failure: errors[i] is "" when ok[i].
    void commit(const std::vector<const Message*>& batch, std::vector<bool>& ok, std::vector<std::string>& errors);
    // How many times commit() ran (tests check that the Committer batches).
    // Not synchronized: read it when no commit is running.
    std::uint64_t commit_calls() const { return commit_calls_; }

    // Every envelope in queue/ (start-up). Corrupt files are skipped and named in `errors`.
    std::vector<Envelope> load_all(std::vector<std::string>* errors);

    // Rewrite an envelope atomically (temp file, fsync, rename, fsync folder).
    bool update(const Envelope& e, std::string* error);
    // Delete an envelope after its delivery is final; the message folder goes
    // with its last envelope. Durable (folder fsynced) on return.
    bool remove(const Envelope& e, std::string* error);
    // The same for many envelopes with one round of fsyncs: each message
    // folder synced once, queue/ once. False when any failed; `errors` names each.
    bool remove(const std::vector<Envelope>& envelopes, std::vector<std::string>* errors);

    // Open the committed message read-only; -1 with `error` on failure.
    int open_message(const std::string& msgid, std::string* error) const;
    std::string message_path(const std::string& msgid) const;

    // A message id not in use in the spool.
    std::string unused_message_id() const;

    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    std::uint64_t commit_calls_ = 0;
};

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
