// The privileged delivery channel of a daemon started as root.
//
// posternd binds its sockets as root, then splits: the child drops to the
// unprivileged _postern user and does all network-facing work; the parent
// keeps root for one job only, starting delivery agents as the recipient.
// They talk over a socketpair in frames (util/frame.hpp). The parent trusts nothing
// the child sends: it checks every field, builds the message path from its
// own spool folder and a validated id, takes the action, its paths, options
// and wrapper from its own copy of the configuration (rederive.hpp), and
// looks the user up itself. The
// parent also checks system account passwords for `auth` listeners without a
// credentials table (the shadow database is root's).
//
// Reload (posternd(8)): the child passes `posternctl reload` on as a "reload"
// request; the parent, which alone can open what a config needs as root,
// checks the new configuration, starts a new child with it and answers "ok"
// or "error" with every problem. A child being replaced gets a "drain" frame:
// it stops accepting, lets its sessions and deliveries finish, and ends.
// The new child loads the queue only after a "queue-free" frame, sent once
// every child it replaced has ended: until then they may still commit mail
// to the spool, or deliver what is in it.
#pragma once

#include <uv.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/credentials.hpp"
#include "config/config.hpp"
#include "delivery/launcher.hpp"

namespace postern::delivery {

// The "deliver" request, both ways: the frame's fields the unprivileged
// process sends for a Job, and the parent's reading of them, which checks
// every field and re-derives the job from `config` (rederive.hpp)
// (tests/fuzz/fuzz_privileged.cpp feeds it any frame).
std::vector<std::string> deliver_request(unsigned long id, const Job& job);
struct DeliverRequest {
    std::string id;
    std::size_t items = 0;  // how many results the reply owes
    std::string refused;    // why the request is refused; "" when it is not
    Job job;                // when not refused: each message path made from spool_dir
};
// nullopt: no deliver request, or one too short to be answered.
std::optional<DeliverRequest> read_deliver_request(const std::vector<std::string>& fields, const config::Config& config,
                                                   const std::string& spool_dir);

// One end of the socketpair: reads frames and hands each to on_frame().
class FrameChannel {
public:
    FrameChannel(const FrameChannel&) = delete;
    FrameChannel& operator=(const FrameChannel&) = delete;

protected:
    FrameChannel() = default;
    ~FrameChannel() = default;
    void open(uv_loop_t* loop, int fd);  // start reading
    void send(const std::vector<std::string>& fields);
    void close_channel();
    bool channel_closed() const { return closed_; }

    virtual void on_frame(const std::vector<std::string>& fields) = 0;
    // The other side went away (`garbled`: it sent bytes that are no frame).
    virtual void on_lost(bool garbled) = 0;

    uv_pipe_t pipe_{};

private:
    std::string inbuf_;
    char buf_[4096];
    bool closed_ = false;
};

// In the unprivileged process: a Launcher that asks the parent.
class PrivClient final : public Launcher, private FrameChannel {
public:
    PrivClient(uv_loop_t* loop, int fd);
    void launch(const Job& job, Done done) override;
    // `auth` without a table: the parent (root) checks a system account's password.
    using AuthDone = std::function<void(auth::Check, std::string error)>;
    void check_system_account(const std::string& user, const std::string& password, AuthDone done);
    // Called once if the parent goes away: nothing can be delivered any more.
    void on_parent_lost(std::function<void(const std::string& why)> fn) { parent_lost_ = std::move(fn); }
    bool broken() const { return broken_; }
    // Ask the parent to reload the configuration: `done` gets whether it
    // did and, when not, every problem found.
    using ReloadDone = std::function<void(bool ok, std::vector<std::string> errors)>;
    void request_reload(ReloadDone done);
    // Called when the parent asks this process to drain (a newer one serves).
    void on_drain(std::function<void()> fn) { drain_ = std::move(fn); }
    // Called when the parent says that every process this one replaced
    // has ended: the spool is this one's to load.
    void on_queue_free(std::function<void()> fn) { queue_free_ = std::move(fn); }
    // Tell the parent what is paused now (posternctl pause: "mda", "mta",
    // "smtp"), so that a process started by a reload pauses the same.
    void report_paused(const std::vector<std::string>& names);
    void close();

private:
    void on_frame(const std::vector<std::string>& fields) override;
    void on_lost(bool garbled) override;
    void on_progress(const std::vector<std::string>& fields);
    void fail_all(const std::string& why);

    unsigned long next_id_ = 1;
    struct Pending {
        size_t items = 0;
        Done done;                                                 // a delivery
        AuthDone auth_done;                                        // or a password check
        ReloadDone reload_done;                                    // or a reload
        std::function<void(std::size_t, const Result&)> progress;  // its Job's
    };
    std::map<unsigned long, Pending> pending_;
    bool broken_ = false;
    std::function<void(const std::string&)> parent_lost_;
    std::function<void()> drain_, queue_free_;
};

// In the privileged parent: serve requests until the child closes the channel.
class PrivServer final : private FrameChannel {
public:
    // `lost` is called once when the unprivileged side closes the channel or
    // garbles it. `config` is the configuration the child serves with (it
    // must outlive the server): each request is checked against it and
    // rewritten from it (rederive.hpp).
    PrivServer(uv_loop_t* loop, int fd, const config::Config& config, std::string spool_dir, SpawnLauncher& launcher,
               std::function<void()> lost);
    // Serves the child's reload requests: `handler` does the reload and
    // calls its argument once with the outcome (without a handler, a
    // request is answered with an error).
    using ReloadReply = std::function<void(bool ok, const std::vector<std::string>& errors)>;
    void on_reload(std::function<void(ReloadReply)> handler) { reload_ = std::move(handler); }
    // Tell the child to drain and end (a newer child serves now).
    void drain();
    // Tell a child started by a reload that the children before it have ended.
    void queue_free();
    // Called with what the child has paused each time that changes.
    void on_paused(std::function<void(std::vector<std::string>)> fn) { paused_ = std::move(fn); }

private:
    void on_frame(const std::vector<std::string>& fields) override;
    void on_lost(bool garbled) override;
    void reply(const std::string& id, const std::vector<Result>& results);
    void check_password(const std::string& id, const std::string& user, const std::string& password);

    uv_loop_t* loop_;
    const config::Config& config_;
    std::string spool_dir_;
    SpawnLauncher& launcher_;
    std::function<void()> lost_;
    std::function<void(ReloadReply)> reload_;
    std::function<void(std::vector<std::string>)> paused_;
};

}  // namespace postern::delivery
