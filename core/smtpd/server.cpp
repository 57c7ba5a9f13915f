// Accepting connections; see server.hpp.
#include "smtpd/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

// How many sessions the descriptor limit leaves room for. Each session is
// a socket; the rest of the serving process needs descriptors too (the
// queue's commit opens up to 512 message files at once, a session with a
// large message its file, filters and tables theirs): a quarter of the
// limit, at most 1024, is kept for them. Past this a client gets the 421
// of max-sessions, not a connection closed unanswered when accept() fails.
std::size_t sessions_that_fit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
    return static_cast<std::size_t>(r.rlim_cur - std::min<rlim_t>(1024, r.rlim_cur / 4));
}

// How long an address's AUTH failures are remembered after the last one.
constexpr std::uint64_t kAuthFailureMemoryMs = 15 * 60 * 1000;

// The key an address is counted under: itself, or for IPv6 its /64 (one
// host commonly has a whole /64 to draw addresses from).
std::string client_key(const std::string& address) {
    in6_addr a{};
    if (address.find(':') == std::string::npos || inet_pton(AF_INET6, address.c_str(), &a) != 1) return address;
    if (IN6_IS_ADDR_V4MAPPED(&a)) return address.substr(address.rfind(':') + 1);
    char buf[INET6_ADDRSTRLEN] = "";
    std::memset(a.s6_addr + 8, 0, 8);
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
    return std::string(buf) + "/64";
}

}  // namespace

SmtpServer::SmtpServer(uv_loop_t* loop, SmtpContext ctx) : loop_(loop), ctx_(std::move(ctx)) {}

SmtpServer::~SmtpServer() = default;

bool SmtpServer::start(const std::vector<ListenSocket>& sockets, std::string* error) {
    const std::size_t fit = sessions_that_fit();
    max_sessions_ = std::min<std::size_t>(ctx_.config->max_sessions, fit);
    if (max_sessions_ < ctx_.config->max_sessions) {
        rlimit r{};
        getrlimit(RLIMIT_NOFILE, &r);
        log::warn(log::Line("smtp sessions-limited")
                      .kv("max-sessions", static_cast<long long>(ctx_.config->max_sessions))
                      .kv("descriptors", static_cast<long long>(r.rlim_cur))
                      .kv("sessions", static_cast<long long>(max_sessions_))
                      .kv("detail", "the descriptor limit holds fewer sessions than max-sessions"));
    }
    for (const auto& s : sockets) {
        auto l = std::make_unique<Listening>();
        l->server = this;
        l->listener = s.listener;
        l->local = s.local;
        l->address = s.address;
        l->spare = util::Fd(fcntl(s.fd, F_DUPFD_CLOEXEC, 0));  // none: libuv's own EMFILE handling only
        bool ok = open(*l, s.fd, false, error);
        listening_.push_back(std::move(l));  // freed with the server, after its handle's close
        if (!ok) return false;
        log::info(log::Line("smtp listening").kv("address", s.address));
    }
    return true;
}

// The listener's handle on `fd`, accepting. `own`: close `fd` if the
// handle cannot take it (once it has, closing the handle closes it).
bool SmtpServer::open(Listening& l, int fd, bool own, std::string* error) {
    int rc;
    if (l.local) {
        uv_pipe_init(loop_, &l.handle.pipe, 0);
        rc = uv_pipe_open(&l.handle.pipe, fd);
    } else {
        uv_tcp_init(loop_, &l.handle.tcp);
        rc = uv_tcp_open(&l.handle.tcp, fd);
    }
    l.as_handle()->data = &l;
    if (rc != 0 && own) ::close(fd);
    if (rc == 0) rc = uv_listen(l.as_stream(), 511, &SmtpServer::on_connection);
    if (rc == 0) return true;
    *error = "listen on " + l.address + ": " + uv_strerror(rc);
    uv_close(l.as_handle(), nullptr);
    return false;
}

void SmtpServer::on_connection(uv_stream_t* stream, int status) {
    auto* l = static_cast<Listening*>(stream->data);
    SmtpServer* self = l->server;
    if (status < 0) return self->accept_failed(*l, status);
    // Decided before the accept: a session to be refused looks nothing up.
    const auto refusal = self->paused_                                   ? SmtpSession::Refusal::Paused
                         : self->sessions_.size() >= self->max_sessions_ ? SmtpSession::Refusal::Busy
                                                                         : SmtpSession::Refusal::None;
    auto session = std::make_shared<SmtpSession>(*self, *l->listener);
    self->sessions_.emplace(session.get(), session);
    if (!session->accept(stream, refusal)) return;  // closes itself, then leaves sessions_
    ++self->sessions_total_;
    session->start(refusal);
}

// Logged once a second at most: a client that keeps connecting must not
// fill the disk with the same line. Out of descriptors, the listener rests
// (Listening::spare).
void SmtpServer::accept_failed(Listening& l, int status) {
    ++accept_failures_;
    const std::uint64_t now = uv_now(loop_);
    const bool out_of_descriptors = status == UV_EMFILE || status == UV_ENFILE;
    if (accept_logged_at_ == 0 || now - accept_logged_at_ >= 1000) {
        log::warn(log::Line("smtp accept-failed")
                      .kv("error", uv_strerror(status))
                      .kv("count", static_cast<long long>(accept_failures_))
                      .kv("address", l.address)
                      .kv("action", out_of_descriptors && l.spare ? "pause 1 s" : "none"));
        accept_logged_at_ = now;
        accept_failures_ = 0;
    }
    if (!out_of_descriptors || !l.spare || l.stopped || uv_is_closing(l.as_handle())) return;
    uv_close(l.as_handle(), [](uv_handle_t* h) {
        auto* l = static_cast<Listening*>(h->data);
        if (l->stopped) return;
        if (!l->resume_open) {
            uv_timer_init(l->server->loop_, &l->resume);
            l->resume.data = l;
            l->resume_open = true;
        }
        uv_timer_start(&l->resume, on_resume, 1000, 0);
    });
}

void SmtpServer::reopen(Listening& l) {
    if (l.stopped) return;
    const int fd = fcntl(l.spare.get(), F_DUPFD_CLOEXEC, 0);
    std::string error = fd < 0 ? std::string("dup: ") + std::strerror(errno) : "";
    if (fd >= 0 && open(l, fd, true, &error)) {
        log::info(log::Line("smtp accepting-again").kv("address", l.address));
        return;
    }
    log::warn(log::Line("smtp accept-paused").kv("address", l.address).kv("error", error));
    uv_timer_start(&l.resume, on_resume, 1000, 0);  // the handle, if opened, is closed by then
}

void SmtpServer::on_resume(uv_timer_t* t) {
    auto* l = static_cast<Listening*>(t->data);
    l->server->reopen(*l);
}

void SmtpServer::session_closed(SmtpSession* s) { sessions_.erase(s); }

SmtpServer::Admission SmtpServer::admit(const std::string& address) {
    const std::uint64_t now = uv_now(loop_);
    prune_clients(now);
    Client& c = clients_[client_key(address)];
    if (c.connections == 0 || now - c.second >= 1000) {
        c.second = now;
        c.connections = 0;
    }
    // Refused connections count too: a client that keeps hammering stays refused.
    if (++c.connections > ctx_.config->max_conn_rate) return Admission::TooFast;
    if (c.sessions >= ctx_.config->max_sessions_per_address) return Admission::TooManySessions;
    ++c.sessions;
    return Admission::Ok;
}

void SmtpServer::release(const std::string& address) {
    auto it = clients_.find(client_key(address));
    if (it != clients_.end() && it->second.sessions > 0) --it->second.sessions;
}

unsigned SmtpServer::auth_failures(const std::string& address) {
    auto it = clients_.find(client_key(address));
    if (it == clients_.end()) return 0;
    if (uv_now(loop_) - it->second.auth_failed_at >= kAuthFailureMemoryMs) it->second.auth_failures = 0;
    return it->second.auth_failures;
}

void SmtpServer::auth_failed(const std::string& address) {
    Client& c = clients_[client_key(address)];
    if (uv_now(loop_) - c.auth_failed_at >= kAuthFailureMemoryMs) c.auth_failures = 0;
    ++c.auth_failures;
    c.auth_failed_at = uv_now(loop_);
}

// Every ten seconds at most: what the table holds is then bounded by the
// sessions open, the connections of the last seconds and the addresses that
// failed AUTH in the last 15 minutes (each of which cost a session).
void SmtpServer::prune_clients(std::uint64_t now) {
    if (now - pruned_at_ < 10'000) return;
    pruned_at_ = now;
    std::erase_if(clients_, [now](const auto& kv) {
        const Client& c = kv.second;
        return c.sessions == 0 && now - c.second >= 1000 &&
               (c.auth_failures == 0 || now - c.auth_failed_at >= kAuthFailureMemoryMs);
    });
}

void SmtpServer::stop_accepting() {
    for (auto& l : listening_) {
        l->stopped = true;
        if (!uv_is_closing(l->as_handle())) uv_close(l->as_handle(), nullptr);
        if (l->resume_open && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->resume)))
            uv_close(reinterpret_cast<uv_handle_t*>(&l->resume), nullptr);
        l->spare.reset();
    }
}

void SmtpServer::stop(bool unavailable) {
    stop_accepting();
    std::vector<std::shared_ptr<SmtpSession>> live;
    for (auto& [raw, s] : sessions_) live.push_back(s);
    for (auto& s : live) s->shutdown(unavailable);
}

}  // namespace postern::smtpd
