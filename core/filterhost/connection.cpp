// filterhost/connection.cpp — see connection.hpp.
#include "filterhost/connection.hpp"

#include <variant>

#include "util/log.hpp"

namespace postern::filterhost {

// The libuv side: the handle, the read buffer, the bytes being written. It
// lives until libuv's close callback; `owner` is cleared when the
// Connection goes first.
struct Connection::Pipe {
    uv_pipe_t handle{};
    Connection* owner = nullptr;
    std::string writing;
    uv_write_t write{};
    bool write_busy = false;
    bool closing = false;
    char buf[64 * 1024];
};

namespace {

void close_pipe(uv_pipe_t* h) {
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* handle) {
        auto* p = static_cast<Connection::Pipe*>(handle->data);
        if (!p->write_busy) delete p;  // NOLINT(cppcoreguidelines-owning-memory): else the write callback frees it
        else p->closing = true;
    });
}

void close_timer(uv_timer_t* t) {
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) {
        delete reinterpret_cast<uv_timer_t*>(h);  // NOLINT(cppcoreguidelines-owning-memory)
    });
}

}  // namespace

Connection::Connection(uv_loop_t* loop, const config::FilterProc& proc, std::size_t index, const filter::Handshake& hs,
                       util::Fd io, pid_t pid, Events events)
    : proc_(proc), index_(index), pid_(pid), events_(std::move(events)), handshake_(proc.name, hs) {
    pipe_ = new Pipe{};  // NOLINT(cppcoreguidelines-owning-memory): freed by close_pipe's callback
    pipe_->owner = this;
    pipe_->handle.data = pipe_;
    uv_pipe_init(loop, &pipe_->handle, 0);
    int fd = io.release();
    if (uv_pipe_open(&pipe_->handle, fd) != 0) ::close(fd);
    handshake_timer_ = new uv_timer_t{};  // NOLINT(cppcoreguidelines-owning-memory): freed by close_timer
    uv_timer_init(loop, handshake_timer_);
    handshake_timer_->data = this;
    uv_timer_start(
        handshake_timer_,
        [](uv_timer_t* t) {
            auto* self = static_cast<Connection*>(t->data);
            self->handshake_.timed_out();
            self->fail(self->handshake_.describe_failure());
        },
        static_cast<std::uint64_t>(proc_.timeout.count()), 0);
    // Our config lines go out at once; the filter's register lines may come
    // before, among or after them (libopensmtpd filters write theirs first).
    for (const auto& line : handshake_.lines_to_send()) send(line);
    start_reading();
    if (handshake_.state() == filter::HandshakeState::Failed) fail(handshake_.describe_failure());
}

Connection::~Connection() { close(); }

void Connection::start_reading() {
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&pipe_->handle),
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* p = static_cast<Pipe*>(h->data);
            *b = uv_buf_init(p->buf, sizeof p->buf);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
            auto* p = static_cast<Pipe*>(s->data);
            if (p->owner) p->owner->on_read(n, b);
        });
}

void Connection::pause_reading() {
    if (pauses_++ == 0 && pipe_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&pipe_->handle));
}

void Connection::resume_reading() {
    if (pauses_ > 0 && --pauses_ == 0 && pipe_ && state_ != State::Failed && state_ != State::Closed) start_reading();
}

void Connection::close() {
    if (state_ != State::Failed) state_ = State::Closed;
    clients_.clear();
    if (handshake_timer_) {
        close_timer(handshake_timer_);
        handshake_timer_ = nullptr;
    }
    if (pipe_) {
        pipe_->owner = nullptr;
        close_pipe(&pipe_->handle);
        pipe_ = nullptr;
    }
}

void Connection::fail(const std::string& why) {
    if (state_ == State::Failed || state_ == State::Closed) return;
    state_ = State::Failed;
    // Sessions first (they answer their clients), then the host (restart).
    auto clients = std::move(clients_);
    clients_.clear();
    for (auto& [sid, client] : clients) client->on_failed(*this, why);
    close();
    if (events_.failed) events_.failed(*this, why);
}

void Connection::send(std::string_view line) {
    if (state_ == State::Failed || state_ == State::Closed || !pipe_) return;
    out_.append(line);
    out_ += '\n';
    if (congested()) drain_wanted_ = true;  // whoever sees congested() waits for on_writable
    write_more();
}

void Connection::write_more() {
    if (!pipe_ || pipe_->write_busy || out_.empty()) return;
    pipe_->writing.swap(out_);
    out_.clear();
    in_flight_ = pipe_->writing.size();
    pipe_->write.data = pipe_;
    uv_buf_t b = uv_buf_init(pipe_->writing.data(), static_cast<unsigned>(pipe_->writing.size()));
    int rc = uv_write(&pipe_->write, reinterpret_cast<uv_stream_t*>(&pipe_->handle), &b, 1,
                      [](uv_write_t* w, int status) {
                          auto* p = static_cast<Pipe*>(w->data);
                          p->write_busy = false;
                          if (p->closing) {
                              delete p;  // NOLINT(cppcoreguidelines-owning-memory): closed while writing
                              return;
                          }
                          Connection* self = p->owner;
                          if (!self) return;
                          self->in_flight_ = 0;
                          if (status < 0) {
                              self->fail(std::string("write failed: ") + uv_strerror(status));
                              return;
                          }
                          self->write_more();
                          if (self->drain_wanted_ && self->queued() <= kLowWater) {
                              self->drain_wanted_ = false;
                              auto clients = self->clients_;
                              for (auto& [sid, c] : clients) c->on_writable(*self);
                          }
                      });
    if (rc != 0) {
        in_flight_ = 0;
        fail(std::string("write failed: ") + uv_strerror(rc));
        return;
    }
    pipe_->write_busy = true;
}

void Connection::on_read(ssize_t n, const uv_buf_t* buf) {
    if (n < 0) {
        if (state_ == State::Handshake) handshake_.end_of_input();
        fail(state_ == State::Handshake ? handshake_.describe_failure()
             : n == UV_EOF              ? "the filter closed its output (exited?)"
                                        : std::string("read failed: ") + uv_strerror(static_cast<int>(n)));
        return;
    }
    in_.append(buf->base, static_cast<std::size_t>(n));
    std::size_t start = 0, nl;
    while (state_ != State::Failed && state_ != State::Closed && (nl = in_.find('\n', start)) != std::string::npos) {
        take_line(std::string_view(in_).substr(start, nl - start));
        start = nl + 1;
    }
    if (state_ == State::Failed || state_ == State::Closed) return;
    in_.erase(0, start);
    if (in_.size() > filter::kMaxLine) fail("a line longer than " + std::to_string(filter::kMaxLine) + " bytes");
}

void Connection::take_line(std::string_view line) {
    if (state_ == State::Handshake) {
        switch (handshake_.feed(line)) {
        case filter::HandshakeStep::Waiting: return;
        case filter::HandshakeStep::Failed: fail(handshake_.describe_failure()); return;
        case filter::HandshakeStep::Ready:
            state_ = State::Ready;
            uv_timer_stop(handshake_timer_);
            if (events_.ready) events_.ready(*this);
            return;
        case filter::HandshakeStep::NotHandshake: break;  // cannot happen before Ready
        }
        return;
    }
    auto parsed = filter::parse_filter_line(line);
    if (auto* e = std::get_if<filter::ParseError>(&parsed)) {
        std::string quoted(line.substr(0, filter::kQuotedLine));
        for (auto& c : quoted)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
        fail("protocol violation: " + std::string(filter::describe(*e)) + ": \"" + quoted + "\"");
        return;
    }
    auto& fl = std::get<filter::FilterLine>(parsed);
    auto client_of = [this](std::uint64_t sid) -> ConnectionClient* {
        auto it = clients_.find(sid);
        return it == clients_.end() ? nullptr : it->second;
    };
    // Lines for sessions that are gone are dropped, as OpenSMTPD does.
    if (auto* r = std::get_if<filter::FilterResult>(&fl)) {
        if (auto* c = client_of(r->session)) {
            c->on_progress(*this);
            c->on_result(*this, *r);
        }
    } else if (auto* d = std::get_if<filter::FilterDataline>(&fl)) {
        if (auto* c = client_of(d->session)) {
            c->on_progress(*this);
            c->on_dataline(*this, *d);
        }
    } else if (auto* o = std::get_if<filter::FilterOriginReport>(&fl)) {
        if (auto* c = client_of(o->session)) c->on_origin_report(*this, *o);
    } else {
        fail("protocol violation: a register line after register|ready");
    }
}

}  // namespace postern::filterhost
