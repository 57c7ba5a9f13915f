// The ~/.forward channel between the unprivileged process and its root
// parent; see forward_channel.hpp.
#include "daemon/forward_channel.hpp"

#include <poll.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

namespace postern::daemon {
namespace {

// How long a worker waits for the parent before the recipient is retried later.
constexpr int kAnswerTimeoutMs = 10'000;
// A reply holds at most the file and a few bytes of header.
constexpr std::size_t kMaxMessage = expand::kMaxForwardBytes + 64;

std::vector<std::string_view> fields(std::string_view m, std::size_t n) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < n) {
        auto nul = m.find('\0');
        if (nul == std::string_view::npos) return {};
        out.push_back(m.substr(0, nul));
        m.remove_prefix(nul + 1);
    }
    out.push_back(m);
    return out;
}

template <typename T>
bool number(std::string_view s, T* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

expand::ForwardFile temp_fail(std::string why) {
    expand::ForwardFile f;
    f.status = expand::ForwardFile::Status::TempFail;
    f.why = std::move(why);
    return f;
}

// Reads the file as `uid`/`gid` would: the parent's file-system identity
// changes for this thread only, and is root again before it returns.
expand::ForwardFile read_as(uid_t uid, gid_t gid, const std::string& home) {
    setfsgid(gid);
    setfsuid(uid);
    expand::ForwardFile f = expand::read_forward(uid, home);
    setfsuid(0);
    setfsgid(0);
    return f;
}

}  // namespace

// ---- the child's side ----

expand::ForwardFile ForwardClient::read(const expand::UserInfo& user) {
    std::lock_guard lock(mutex_);
    const std::string id = std::to_string(next_id_++);
    std::string request = id;
    for (const std::string& f : {std::to_string(user.uid), std::to_string(user.gid), user.home}) {
        request.push_back('\0');
        request += f;
    }
    if (send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0)
        return temp_fail(std::string("cannot ask for .forward: ") + std::strerror(errno));
    std::vector<char> buf(kMaxMessage);
    // Skip answers to earlier requests that timed out.
    for (int round = 0; round < 16; ++round) {
        pollfd p{fd_.get(), POLLIN, 0};
        int ready = poll(&p, 1, kAnswerTimeoutMs);
        if (ready == 0) return temp_fail("no answer about .forward from the privileged process");
        if (ready < 0 && errno == EINTR) continue;
        ssize_t n = recv(fd_.get(), buf.data(), buf.size(), 0);
        if (n <= 0) return temp_fail("the privileged process is gone");
        auto f = fields(std::string_view(buf.data(), static_cast<std::size_t>(n)), 3);
        int status = 0;
        if (f.size() != 3 || !number(f[1], &status) || status < 0 || status > 3)
            return temp_fail("garbled answer about .forward");
        if (f[0] != id) continue;
        expand::ForwardFile out;
        out.status = static_cast<expand::ForwardFile::Status>(status);
        (out.status == expand::ForwardFile::Status::Found ? out.text : out.why) = std::string(f[2]);
        return out;
    }
    return temp_fail("no answer about .forward from the privileged process");
}

// ---- the parent's side ----

ForwardServer::ForwardServer(uv_loop_t* loop, util::Fd channel)
    : channel_(
          loop, std::move(channel), [this] { on_readable(); }, false) {}

void ForwardServer::on_readable() {
    std::vector<char> buf(8192);
    while (channel_.open()) {
        ssize_t n = recv(channel_.fd(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) return channel_.close();  // the child is gone
        auto f = fields(std::string_view(buf.data(), static_cast<std::size_t>(n)), 4);
        uid_t uid = 0;
        gid_t gid = 0;
        expand::ForwardFile answer;
        if (f.size() != 4 || !number(f[1], &uid) || !number(f[2], &gid) || f[3].find('\0') != std::string_view::npos)
            answer = temp_fail("malformed .forward request");
        else answer = read_as(uid, gid, std::string(f[3]));
        std::string reply(f.empty() ? std::string_view() : f[0]);
        reply.push_back('\0');
        reply += std::to_string(static_cast<int>(answer.status));
        reply.push_back('\0');
        reply += answer.status == expand::ForwardFile::Status::Found ? answer.text : answer.why;
        if (send(channel_.fd(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
            return channel_.close();
    }
}

}  // namespace postern::daemon
