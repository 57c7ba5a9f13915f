// Accepting connections; see server.hpp.
#include "smtpd/server.hpp"

#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {

SmtpServer::SmtpServer(uv_loop_t* loop, SmtpContext ctx) : loop_(loop), ctx_(std::move(ctx)) {}

SmtpServer::~SmtpServer() = default;

bool SmtpServer::start(const std::vector<ListenSocket>& sockets, std::string* error) {
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
    session->start(self->paused_                                              ? SmtpSession::Refusal::Paused
                   : self->sessions_.size() > self->ctx_.config->max_sessions ? SmtpSession::Refusal::Busy
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
