// See poll_channel.hpp.
#include "event/poll_channel.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace postern::event {

PollChannel::PollChannel(uv_loop_t* loop, util::Fd fd, std::function<void()> readable, bool keeps_loop_alive)
    : fd_(std::move(fd)), readable_(std::move(readable)) {
    auto poll = std::make_unique<uv_poll_t>();
    if (uv_poll_init(loop, poll.get(), fd_.get()) != 0) return;
    poll_ = poll.release();  // freed in the close callback
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* p, int, int) {
        if (p->data) static_cast<PollChannel*>(p->data)->readable_();
    });
    if (!keeps_loop_alive) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
}

void PollChannel::close() {
    if (!poll_) return;
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_),
             [](uv_handle_t* h) { std::unique_ptr<uv_poll_t> owned(reinterpret_cast<uv_poll_t*>(h)); });
    poll_ = nullptr;
}

bool seqpacket_pair(util::Fd* a, util::Fd* b, std::string* error) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        *error = std::string("socketpair: ") + std::strerror(errno);
        return false;
    }
    a->reset(sp[0]);
    b->reset(sp[1]);
    return true;
}

}  // namespace postern::event
