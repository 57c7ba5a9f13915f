// A descriptor watched on the loop for input: the channels between
// posternd's parent and its serving process (filter starts, ~/.forward
// reads), and a socketpair to make one.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "util/fd.hpp"

namespace postern::event {

class PollChannel {
public:
    // Owns `fd` from now on and calls `readable` on the loop each time it
    // has input or the other end has closed. A channel that is not
    // `keeps_loop_alive` lets the loop end while it is open.
    PollChannel(uv_loop_t* loop, util::Fd fd, std::function<void()> readable, bool keeps_loop_alive);
    ~PollChannel() { close(); }
    PollChannel(const PollChannel&) = delete;
    PollChannel& operator=(const PollChannel&) = delete;

    int fd() const { return fd_.get(); }
    bool open() const { return poll_ != nullptr; }
    // Stops watching; the descriptor stays until the channel is destroyed,
    // so that what was already read can still be answered. The libuv
    // handle is freed by libuv once closed, so the channel may go at once.
    void close();

private:
    util::Fd fd_;
    uv_poll_t* poll_ = nullptr;
    std::function<void()> readable_;
};

// A SOCK_SEQPACKET socketpair (close-on-exec): [0] in `a`, [1] in `b`.
bool seqpacket_pair(util::Fd* a, util::Fd* b, std::string* error);

}  // namespace postern::event
