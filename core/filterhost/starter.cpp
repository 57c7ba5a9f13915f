// filterhost/starter.cpp — see starter.hpp.
//
// Messages (text, one datagram each):
//   child -> parent   start INDEX            stop INDEX PID
//   parent -> child   started PID + the fd   failed REASON
#include "filterhost/starter.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "util/log.hpp"

namespace postern::filterhost {
namespace {

constexpr std::size_t kMaxMessage = 512;

bool send_message(int fd, std::string_view text, int pass_fd = -1) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (pass_fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n;
    do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(text.size());
}

// One message; false at the end of the channel or on an error (EAGAIN: `*again`).
bool receive_message(int fd, std::string* text, util::Fd* passed, bool* again) {
    char buf[kMaxMessage];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    *again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (n <= 0) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int got = -1;
            std::memcpy(&got, CMSG_DATA(c), sizeof(int));
            passed->reset(got);
        }
    text->assign(buf, static_cast<std::size_t>(n));
    return true;
}

template <typename T>
bool number(std::string_view s, T* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size();
}

// "WORD REST" -> WORD, REST
std::pair<std::string_view, std::string_view> split(std::string_view s) {
    std::size_t sp = s.find(' ');
    if (sp == std::string_view::npos) return {s, {}};
    return {s.substr(0, sp), s.substr(sp + 1)};
}

}  // namespace

void LocalStarter::start(std::size_t proc, Started done) {
    pid_t pid = -1;
    std::string error;
    util::Fd io = procs_.start(proc, &pid, &error);
    done(std::move(io), pid, error);
}

// ---- the child's side ----

StarterClient::StarterClient(uv_loop_t* loop, util::Fd channel)
    : channel_(
          loop, std::move(channel), [this] { on_readable(); }, false) {}

StarterClient::~StarterClient() { close(); }

void StarterClient::close() {
    if (!channel_.open()) return;
    channel_.close();
    fail_all("the daemon is stopping");
}

void StarterClient::start(std::size_t proc, Started done) {
    if (!channel_.open() || !send_message(channel_.fd(), "start " + std::to_string(proc))) {
        done({}, -1, "the privileged process is gone");
        return;
    }
    pending_.push_back(std::move(done));
}

void StarterClient::stop(std::size_t proc, pid_t pid) {
    if (channel_.open()) send_message(channel_.fd(), "stop " + std::to_string(proc) + " " + std::to_string(pid));
}

void StarterClient::fail_all(const std::string& why) {
    auto pending = std::move(pending_);
    for (auto& done : pending) done({}, -1, why);
}

void StarterClient::on_readable() {
    while (channel_.open()) {
        std::string text;
        util::Fd passed;
        bool again = false;
        if (!receive_message(channel_.fd(), &text, &passed, &again)) {
            if (again) return;
            // The parent is gone: the delivery channel says so to the daemon;
            // here, no filter can be started any more.
            channel_.close();
            fail_all("the privileged process is gone");
            return;
        }
        if (pending_.empty()) continue;
        Started done = std::move(pending_.front());
        pending_.pop_front();
        auto [word, rest] = split(text);
        pid_t pid = -1;
        if (word == "started" && number(rest, &pid) && passed) done(std::move(passed), pid, "");
        else done({}, -1, word == "failed" ? std::string(rest) : "bad answer from the privileged process");
    }
}

// ---- the parent's side ----

StarterServer::StarterServer(uv_loop_t* loop, util::Fd channel, Processes& procs)
    : channel_(
          loop, std::move(channel), [this] { on_readable(); }, false),
      procs_(procs) {}

// The child is not trusted: a request names a proc of the parent's own
// config by index, and a stop names the pid the parent itself started.
void StarterServer::on_readable() {
    while (channel_.open()) {
        std::string text;
        util::Fd passed;
        bool again = false;
        if (!receive_message(channel_.fd(), &text, &passed, &again)) {
            if (!again) channel_.close();
            return;
        }
        auto [word, rest] = split(text);
        std::size_t index = 0;
        if (word == "start") {  // always answered: the child matches answers to requests in order
            pid_t pid = -1;
            std::string error = "no such filter process";
            util::Fd io;
            if (number(rest, &index) && index < procs_.size()) io = procs_.start(index, &pid, &error);
            if (io) send_message(channel_.fd(), "started " + std::to_string(pid), io.get());
            else send_message(channel_.fd(), "failed " + error.substr(0, kMaxMessage - 16));
            continue;
        }
        auto [index_text, pid_text] = split(rest);
        pid_t pid = -1;
        if (word == "stop" && number(index_text, &index) && number(pid_text, &pid)) {
            procs_.stop(index, pid);
            continue;
        }
        log::warn(
            log::Line("filter channel: bad request from the unprivileged process").kv("request", text.substr(0, 64)));
    }
}

}  // namespace postern::filterhost
