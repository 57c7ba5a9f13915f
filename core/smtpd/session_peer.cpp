// Who an SMTP session's client is: its addresses, its reverse DNS name
// (forward-confirmed) on TCP, its uid and user name on the local socket.
// Part of SmtpSession (session.hpp), in a file of its own as TLS, AUTH and
// DATA are.
#include <arpa/inet.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

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
    // Behind a proxy the socket's peer is the proxy: the name to look up
    // is the client's, once the PROXY header has named it.
    if (look_up && listener_.proxy_v2) proxy_look_up_ = true;
    else if (look_up && admit_client()) lookup_rdns(peer);
    else rdns_known_ = true;
}

// Before anything is looked up: a client refused for its address costs no
// DNS query, however fast it connects.
bool SmtpSession::admit_client() {
    if (client_local_) return true;
    switch (server_.admit(client_ip_)) {
    case SmtpServer::Admission::Ok: counted_ = true; return true;
    case SmtpServer::Admission::TooManySessions: refused_ = Refusal::PerAddress; return false;
    case SmtpServer::Admission::TooFast: refused_ = Refusal::TooFast; return false;
    }
    return false;
}

// `listen on ... proxy-v2`: the connection comes from a proxy (HAProxy, a
// load balancer) that first says, in a PROXY protocol header, which client
// it relays. Until that header is read the session says nothing, not even
// its banner: the proxy expects to speak first, and a client that reached
// the port directly must not get an SMTP dialogue in which it is taken for
// the proxy. Reading is bounded (smtp/proxy_header.hpp: 4 KiB at most) and
// timed by the idle timer; anything else closes the connection with a log
// line. Sessions refused for load (421) are answered at once, header or
// not: a refusal holds no descriptor for longer than it must.
void SmtpSession::await_proxy_header() {
    proxy_pending_ = true;
    reset_idle_timer();
    update_reading();
}

void SmtpSession::proxy_input() {
    const smtp::proxy::Result r = smtp::proxy::parse(in_);
    if (r.status == smtp::proxy::Status::NeedMore) return;
    if (r.status == smtp::proxy::Status::Error) return proxy_refused(r.reason);
    proxy_pending_ = false;
    uv_read_stop(conn());  // until the banner: what follows the header waits in in_, or in the socket
    in_.erase(0, r.header.length);
    log::Line proxied(id_ + " smtp proxied");
    proxied.kv("proxy", client_ip_).kv("version", r.header.version);
    take_proxied_peer(r.header);
    proxied.kv("address", client_ip_).kv("port", client_port_);
    log::info(proxied);
    begin(refused_);
}

void SmtpSession::proxy_refused(const std::string& reason) {
    proxy_pending_ = false;
    log::info(log::Line(id_ + " smtp proxy-refused").kv("proxy", client_ip_).kv("error", reason));
    in_.clear();
    close();
}

// The client the header names; LOCAL (the proxy's own health check) and
// UNKNOWN/UNSPEC keep the socket's addresses, as the specification says.
void SmtpSession::take_proxied_peer(const smtp::proxy::Header& h) {
    sockaddr_storage peer{};
    if (h.family == smtp::proxy::Family::Unspec) {
        int len = sizeof peer;
        uv_tcp_getpeername(&conn_.tcp, reinterpret_cast<sockaddr*>(&peer), &len);
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&peer);
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&peer);
        if (h.family == smtp::proxy::Family::Inet4) {
            sin->sin_family = AF_INET;
            inet_pton(AF_INET, h.src_ip.c_str(), &sin->sin_addr);
        } else {
            sin6->sin6_family = AF_INET6;
            inet_pton(AF_INET6, h.src_ip.c_str(), &sin6->sin6_addr);
        }
        client_ip_ = h.src_ip;
        client_port_ = h.src_port;
        local_ip_ = h.dst_ip;
        local_port_ = h.dst_port;
        client_local_ = is_loopback(peer) || client_ip_ == local_ip_;
    }
    // The limits per address count the client the header names.
    const bool admitted = admit_client();
    if (proxy_look_up_ && admitted) lookup_rdns(peer);
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
//
// Forward-confirmed reverse DNS: the PTR name must resolve back to the
// client's address (filters' link-connect, the built-in fcrdns condition).
// Both lookups run in one job on the worker pool, one after the other: a
// round trip to the pool costs 13-55 us of CPU one at a time on a 2-core
// VM (futex wakes, the eventfd, a context switch each way; cpu-split.cpp's
// handoff probe), more than the lookups of a loopback client themselves
// (issue 15, tests/bench/cpu-split.sh). No
// service name is asked for: getnameinfo() would read /etc/services for it,
// 50 us of CPU per connection here. The job writes the PTR name into
// `RdnsLookup` as soon as it has it, so that a forward lookup that times out
// leaves the session with the name and no confirmation, as when the two
// lookups answered separately.
void SmtpSession::lookup_rdns(const sockaddr_storage& peer) {
    auto lookup = std::make_shared<RdnsLookup>();
    rdns_lookup_ = lookup;
    event::run_blocking(
        server_.loop(),
        [lookup, peer, client = client_ip_] {
            char host[NI_MAXHOST];
            socklen_t len = peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
            if (getnameinfo(reinterpret_cast<const sockaddr*>(&peer), len, host, sizeof host, nullptr, 0,
                            NI_NAMEREQD) != 0)
                return;
            {
                std::lock_guard lock(lookup->mutex);
                lookup->name = host;
            }
            addrinfo hints{};
            hints.ai_socktype = SOCK_STREAM;
            addrinfo* res = nullptr;
            if (getaddrinfo(host, nullptr, &hints, &res) != 0) return;
            std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> results(res, freeaddrinfo);
            bool confirmed = false;
            for (addrinfo* a = res; a; a = a->ai_next) {
                sockaddr_storage ss{};
                std::memcpy(&ss, a->ai_addr, std::min<size_t>(a->ai_addrlen, sizeof ss));
                if (ip_text(ss) == client) confirmed = true;
            }
            std::lock_guard lock(lookup->mutex);
            lookup->fcrdns = confirmed;
        },
        [weak = weak_from_this(), lookup] {
            auto self = weak.lock();
            if (!self || self->rdns_known_ || self->state_ == State::Closing) return;
            self->take_rdns();
            self->rdns_resolved();
        });
    rdns_due_ = uv_now(server_.loop()) + kRdnsTimeoutMs;  // on_timer gives up then
    arm_timer();
}

// What the lookup found so far: all of it once its job is done, the PTR
// name alone (unconfirmed) when the forward lookup has not answered in time.
void SmtpSession::take_rdns() {
    if (!rdns_lookup_) return;
    {
        std::lock_guard lock(rdns_lookup_->mutex);
        rdns_ = rdns_lookup_->name;
        fcrdns_ = rdns_lookup_->fcrdns;
    }
    rdns_lookup_.reset();
    // The name goes into Received:, the rules and the filters: one that is
    // not a host name (an NSS module, a hosts file, can answer anything)
    // counts as none, so that nothing else rides in with it.
    if (!rdns_.empty() && (rdns_.front() == '[' || !smtp::valid_helo_name(rdns_))) {
        log::info(log::Line(id_ + " smtp rdns-invalid").kv("address", client_ip_).kv("name", rdns_));
        rdns_.clear();
        fcrdns_ = false;
    }
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
