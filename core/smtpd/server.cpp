// Accepting connections; see server.hpp.
#include "smtpd/server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>

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
        int rc;
        if (s.local) {
            uv_pipe_init(loop_, &l->handle.pipe, 0);
            rc = uv_pipe_open(&l->handle.pipe, s.fd);
        } else {
            uv_tcp_init(loop_, &l->handle.tcp);
            rc = uv_tcp_open(&l->handle.tcp, s.fd);
        }
        l->as_handle()->data = l.get();
        if (rc == 0) rc = uv_listen(l->as_stream(), 511, &SmtpServer::on_connection);
        if (rc != 0) {
            *error = "listen on " + s.address + ": " + uv_strerror(rc);
            uv_close(l->as_handle(), nullptr);
            listening_.push_back(std::move(l));  // freed with the server, after the close
            return false;
        }
        log::info(log::Line("smtp listening").kv("address", s.address));
        listening_.push_back(std::move(l));
    }
    return true;
}

void SmtpServer::on_connection(uv_stream_t* stream, int status) {
    auto* l = static_cast<Listening*>(stream->data);
    SmtpServer* self = l->server;
    if (status < 0) {
        log::warn(log::Line("smtp accept-failed").kv("error", uv_strerror(status)));
        return;
    }
    auto session = std::make_shared<SmtpSession>(*self, *l->listener);
    self->sessions_.emplace(session.get(), session);
    if (!session->accept(stream)) return;  // closes itself, then leaves sessions_
    ++self->sessions_total_;
    session->start(self->paused_                                  ? SmtpSession::Refusal::Paused
                   : self->sessions_.size() > self->max_sessions_ ? SmtpSession::Refusal::Busy
                                                                  : SmtpSession::Refusal::None);
}

void SmtpServer::session_closed(SmtpSession* s) { sessions_.erase(s); }

void SmtpServer::stop_accepting() {
    for (auto& l : listening_)
        if (!uv_is_closing(l->as_handle())) uv_close(l->as_handle(), nullptr);
}

void SmtpServer::stop(bool unavailable) {
    stop_accepting();
    std::vector<std::shared_ptr<SmtpSession>> live;
    for (auto& [raw, s] : sessions_) live.push_back(s);
    for (auto& s : live) s->shutdown(unavailable);
}

}  // namespace postern::smtpd
