// The privileged delivery channel of a daemon started as root.
//
// posternd binds its sockets as root, then splits: the child drops to the
// unprivileged _postern user and does all network-facing work; the parent
// keeps root for one job only, starting delivery agents as the recipient.
// They talk over a socketpair in netstring frames. The parent trusts nothing
// the child sends: it checks every field, builds the message path from its
// own spool folder and a validated id, and looks the user up itself. The
// parent also checks system account passwords for `auth` listeners without a
// credentials table (the shadow database is root's).
#pragma once

#include <uv.h>

#include <map>
#include <string>
#include <vector>

#include "auth/credentials.hpp"
#include "delivery/launcher.hpp"

namespace postern::delivery {

// Netstring framing, exposed for tests: a frame is a netstring of netstrings.
std::string encode_frame(const std::vector<std::string>& fields);
// Takes one complete frame off the front of `buffer`. Returns false when more
// bytes are needed; sets `bad` when the bytes can never form a frame.
bool decode_frame(std::string& buffer, std::vector<std::string>* fields, bool* bad);

// In the unprivileged process: a Launcher that asks the parent.
class PrivClient final : public Launcher {
public:
    PrivClient(uv_loop_t* loop, int fd);
    void launch(const Job& job, Done done) override;
    // `auth` without a table: the parent (root) checks a system account's password.
    using AuthDone = std::function<void(auth::Check, std::string error)>;
    void check_system_account(const std::string& user, const std::string& password, AuthDone done);
    void close();

private:
    void on_frame(const std::vector<std::string>& fields);
    void fail_all(const std::string& why);

    uv_pipe_t pipe_{};
    std::string inbuf_;
    char buf_[4096];
    unsigned long next_id_ = 1;
    struct Pending {
        size_t items = 0;
        Done done;          // a delivery
        AuthDone auth_done; // or a password check
    };
    std::map<unsigned long, Pending> pending_;
    bool broken_ = false;
};

// In the privileged parent: serve requests until the child closes the channel.
class PrivServer {
public:
    PrivServer(uv_loop_t* loop, int fd, std::string spool_dir, SpawnLauncher& launcher);

private:
    void on_frame(const std::vector<std::string>& fields);
    void reply(const std::string& id, const std::vector<Result>& results);
    void check_password(const std::string& id, const std::string& user, const std::string& password);

    uv_loop_t* loop_;

    uv_pipe_t pipe_{};
    std::string inbuf_;
    char buf_[4096];
    std::string spool_dir_;
    SpawnLauncher& launcher_;
};

}  // namespace postern::delivery
