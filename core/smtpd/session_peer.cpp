// Who an SMTP session's client is: its addresses, its reverse DNS name
// (forward-confirmed) on TCP, its uid and user name on the local socket.
// Part of SmtpSession (session.hpp), in a file of its own as TLS, AUTH and
// DATA are.
#include <arpa/inet.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "event/loop_work.hpp"
#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

constexpr uint64_t kRdnsTimeoutMs = 5000;

bool is_loopback(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) return (ntohl(reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&a)) return a.s6_addr[12] == 127;
    }
    return false;
}

std::string ip_text(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
    return buf;
}

int port_of(const sockaddr_storage& ss) {
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
    return 0;
}

bool same_ip(const sockaddr_storage& a, const sockaddr_storage& b) { return ip_text(a) == ip_text(b); }

}  // namespace

void SmtpSession::accept_tcp(bool look_up) {
    uv_tcp_nodelay(&conn_.tcp, 1);
    sockaddr_storage peer{}, self{};
    int len = sizeof peer;
    uv_tcp_getpeername(&conn_.tcp, reinterpret_cast<sockaddr*>(&peer), &len);
    len = sizeof self;
    uv_tcp_getsockname(&conn_.tcp, reinterpret_cast<sockaddr*>(&self), &len);
    client_ip_ = ip_text(peer);
    local_ip_ = ip_text(self);
    client_port_ = port_of(peer);
    local_port_ = port_of(self);
    client_local_ = is_loopback(peer) || same_ip(peer, self);
    if (look_up) lookup_rdns(peer);
    else rdns_known_ = true;
}

// The local socket: no address to look up. The kernel recorded the
// connecting process's uid at connect(), which the client cannot forge;
// that is the submitter the Received: header and the log name (its name is
// looked up when the session starts: lookup_local_user). As in OpenSMTPD,
// the session's address is "local" and its client's name is the server's own.
void SmtpSession::accept_local() {
    client_ip_ = "local";
    local_ip_ = "local";
    client_local_ = true;
    ucred cred{};
    socklen_t len = sizeof cred;
    uv_os_fd_t fd = -1;
    if (uv_fileno(conn_handle(), &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        local_uid_ = static_cast<long>(cred.uid);
    rdns_ = hostname();
    fcrdns_ = true;
    rdns_known_ = true;
}

// The submitter's name, from the passwd database (a uid without an entry
// goes by its number), then `then`. The lookup runs on the worker pool: NSS
// may ask LDAP or sssd, which can take seconds, and the loop serves every
// other session meanwhile. The session waits for it before it says anything
// (the log's "connected" line and the rules name the user); the idle timer
// bounds the wait, and a session that ends meanwhile (the daemon stopping)
// drops the answer.
void SmtpSession::lookup_local_user(std::function<void()> then) {
    auto name = std::make_shared<std::string>();
    reset_idle_timer();
    event::run_blocking(
        server_.loop(),
        [name, uid = static_cast<uid_t>(local_uid_)] {
            long size = sysconf(_SC_GETPW_R_SIZE_MAX);
            std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
            passwd pw{}, *found = nullptr;
            int rc;
            while ((rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 20))
                buf.resize(buf.size() * 2);
            *name = rc == 0 && found ? found->pw_name : std::to_string(uid);
        },
        [weak = weak_from_this(), name, then = std::move(then)] {
            auto self = weak.lock();
            if (!self || self->state_ == State::Closing) return;
            self->local_user_ = *name;
            then();
        });
}

// The reverse DNS name runs alongside the greeting; what needs it (rules,
// the Received: header) waits for it, at most kRdnsTimeoutMs: a resolver that
// does not answer must not hold sessions up longer than that.
void SmtpSession::lookup_rdns(const sockaddr_storage& peer) {
    struct Lookup {
        uv_getnameinfo_t req{};
        std::weak_ptr<SmtpSession> session;
    };
    auto lookup = std::make_unique<Lookup>();
    lookup->req.data = lookup.get();
    // weak_from_this() is not ready before the server's shared_ptr exists; the
    // server creates the session through make_shared first, so it is here.
    lookup->session = weak_from_this();
    auto finish = [](uv_getnameinfo_t* req, int status, const char* host, const char*) {
        std::unique_ptr<Lookup> owned(static_cast<Lookup*>(req->data));
        auto self = owned->session.lock();
        if (!self || self->rdns_known_ || self->state_ == State::Closing) return;
        if (status != 0 || !host) return self->rdns_resolved();
        self->rdns_ = host;
        self->confirm_rdns();
    };
    if (uv_getnameinfo(server_.loop(), &lookup->req, finish, reinterpret_cast<const sockaddr*>(&peer), NI_NAMEREQD) !=
        0) {
        rdns_known_ = true;
        return;
    }
    (void)lookup.release();                               // reclaimed in `finish`
    rdns_due_ = uv_now(server_.loop()) + kRdnsTimeoutMs;  // on_timer gives up then
    arm_timer();
}

// Forward-confirmed reverse DNS: the PTR name must resolve back to the
// client's address (filters' link-connect, the built-in fcrdns condition).
// Bounded by the same timer as the reverse lookup.
void SmtpSession::confirm_rdns() {
    struct Lookup {
        uv_getaddrinfo_t req{};
        std::weak_ptr<SmtpSession> session;
    };
    auto lookup = std::make_unique<Lookup>();
    lookup->req.data = lookup.get();
    lookup->session = weak_from_this();
    auto finish = [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        std::unique_ptr<Lookup> owned(static_cast<Lookup*>(req->data));
        std::unique_ptr<addrinfo, decltype(&uv_freeaddrinfo)> results(res, uv_freeaddrinfo);
        auto self = owned->session.lock();
        if (!self || self->rdns_known_ || self->state_ == State::Closing) return;
        for (addrinfo* a = status == 0 ? res : nullptr; a; a = a->ai_next) {
            sockaddr_storage ss{};
            std::memcpy(&ss, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof ss));
            if (ip_text(ss) == self->client_ip_) self->fcrdns_ = true;
        }
        self->rdns_resolved();
    };
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    if (uv_getaddrinfo(server_.loop(), &lookup->req, finish, rdns_.c_str(), nullptr, &hints) != 0)
        return rdns_resolved();
    (void)lookup.release();  // reclaimed in `finish`
}

void SmtpSession::rdns_resolved() {
    if (rdns_known_) return;
    rdns_known_ = true;
    rdns_due_ = 0;  // the timer, if it wakes for it, finds nothing due
    auto waiters = std::move(rdns_waiters_);
    for (auto& fn : waiters) fn();
}

void SmtpSession::when_rdns_known(std::function<void()> fn) {
    if (rdns_known_) return fn();
    rdns_waiters_.push_back(std::move(fn));
}

}  // namespace postern::smtpd
