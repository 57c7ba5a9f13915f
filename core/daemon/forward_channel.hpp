// daemon/forward_channel.hpp — how a daemon started as root reads users'
// ~/.forward files.
//
// The unprivileged process expands recipients but cannot enter users' home
// folders (Debian makes them 0700). Its root parent can: the child asks over
// a channel of its own (a SOCK_SEQPACKET socketpair, one datagram a message,
// no framing to get wrong) with the account the userbase gave, and the
// parent reads HOME/.forward with that account's file-system uid and gid
// (setfsuid/setfsgid, per thread), so it sees exactly what the user may
// read, and answers with expand::read_forward's verdict and the text.
//
// Request:  "ID\0UID\0GID\0HOME"        Reply: "ID\0STATUS\0TEXT-OR-REASON"
// STATUS is the digit of expand::ForwardFile::Status. The parent trusts
// nothing in a request but its shape; what it reads is what that uid could.
// The channel is made with event::seqpacket_pair.
#pragma once

#include <uv.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "event/poll_channel.hpp"
#include "expand/forward.hpp"
#include "util/fd.hpp"

namespace postern::daemon {

// In the unprivileged process; read() blocks, so call it from worker
// threads only (expansion runs there). One request at a time.
class ForwardClient {
public:
    explicit ForwardClient(util::Fd channel) : fd_(std::move(channel)) {}
    expand::ForwardFile read(const expand::UserInfo& user);

private:
    std::mutex mutex_;
    util::Fd fd_;
    std::uint64_t next_id_ = 1;
};

// In the root parent: answers on the loop until the child closes its end.
class ForwardServer {
public:
    ForwardServer(uv_loop_t* loop, util::Fd channel);
    ForwardServer(const ForwardServer&) = delete;
    ForwardServer& operator=(const ForwardServer&) = delete;

private:
    void on_readable();

    event::PollChannel channel_;
};

}  // namespace postern::daemon
