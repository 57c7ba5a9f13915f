// Accepting connections; see server.hpp.
#include "daemon/server.hpp"

#include "daemon/session.hpp"
#include "util/log.hpp"

namespace postern::daemon {

Server::Server(uv_loop_t* loop, ServerContext ctx) : loop_(loop), ctx_(std::move(ctx)) {}

Server::~Server() = default;

bool Server::start(const std::vector<ListenSocket>& sockets, std::string* error) {
    for (const auto& s : sockets) {
        auto l = std::make_unique<Listening>();
        l->server = this;
        l->listener = s.listener;
        uv_tcp_init(loop_, &l->tcp);
        l->tcp.data = l.get();
        int rc = uv_tcp_open(&l->tcp, s.fd);
        if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 511, &Server::on_connection);
        if (rc != 0) {
            *error = "listen on " + s.address + ": " + uv_strerror(rc);
            uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
            listening_.push_back(std::move(l));  // freed with the server, after the close
            return false;
        }
        log::info(log::Line("smtp listening").kv("address", s.address));
        listening_.push_back(std::move(l));
    }
    return true;
}

void Server::on_connection(uv_stream_t* stream, int status) {
    auto* l = static_cast<Listening*>(stream->data);
    Server* self = l->server;
    if (status < 0) {
        log::warn(log::Line("smtp accept-failed").kv("error", uv_strerror(status)));
        return;
    }
    auto session = std::make_shared<Session>(*self, *l->listener);
    self->sessions_.emplace(session.get(), session);
    if (!session->accept(stream)) return;  // closes itself, then leaves sessions_
    ++self->sessions_total_;
    session->start(self->paused_ ? Session::Refusal::Paused
                   : self->sessions_.size() > self->ctx_.config->max_sessions ? Session::Refusal::Busy
                                                                                : Session::Refusal::None);
}

void Server::session_closed(Session* s) {
    sessions_.erase(s);
}

void Server::stop(bool unavailable) {
    for (auto& l : listening_)
        if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->tcp)))
            uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
    std::vector<std::shared_ptr<Session>> live;
    for (auto& [raw, s] : sessions_) live.push_back(s);
    for (auto& s : live) s->shutdown(unavailable);
}

}  // namespace postern::daemon
