// control/server.cpp — the control socket's listener and connections; see
// server.hpp for the contract and protocol.hpp for the bytes.
#include "control/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "util/fd.hpp"
#include "util/log.hpp"

namespace postern::control {
namespace {

uv_handle_t* as_handle(auto* h) { return reinterpret_cast<uv_handle_t*>(h); }
uv_stream_t* as_stream(auto* h) { return reinterpret_cast<uv_stream_t*>(h); }

std::string errno_text(const std::string& what) { return what + ": " + uv_strerror(-errno); }

// A socket file left by a daemon that died is removed; a live one (someone
// answers on it) or anything that is not a socket is left alone.
bool remove_stale(const std::string& path, std::string* error) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return true;
        *error = errno_text(path);
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *error = path + " exists and is not a socket";
        return false;
    }
    util::Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0) {
        *error = "another posternd is already listening on " + path;
        return false;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        *error = errno_text("remove stale socket " + path);
        return false;
    }
    return true;
}

}  // namespace

// ---- listener ----

struct Server::Listener {
    uv_pipe_t pipe{};
    Server* server = nullptr;
    std::string path;
    bool bound = false;
    dev_t dev = 0;
    ino_t ino = 0;
    std::shared_ptr<Listener> self;  // released in the close callback

    void close() {
        if (uv_is_closing(as_handle(&pipe))) return;
        // Remove the file only if it is still ours: a newer daemon may have
        // replaced it already.
        struct stat st {};
        if (bound && ::lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) ::unlink(path.c_str());
        uv_close(as_handle(&pipe),
                 [](uv_handle_t* h) { auto keep = std::move(static_cast<Listener*>(h->data)->self); });
    }
};

// ---- one client ----

class Server::Connection : public std::enable_shared_from_this<Connection> {
public:
    struct Timeouts {
        std::chrono::milliseconds request, reply;
    };

    static std::shared_ptr<Connection> create(uv_loop_t* loop, Handler* handler, Timeouts t) {
        auto c = std::make_shared<Connection>(handler, t);
        uv_pipe_init(loop, &c->pipe_, 0);
        uv_timer_init(loop, &c->timer_);
        c->pipe_.data = c.get();
        c->timer_.data = c.get();
        c->self_ = c;
        return c;
    }

    Connection(Handler* handler, Timeouts t) : handler_(handler), timeouts_(t) {}

    uv_stream_t* stream() { return as_stream(&pipe_); }

    bool peer_uid(uid_t* uid) {
        uv_os_fd_t fd;
        if (uv_fileno(as_handle(&pipe_), &fd) != 0) return false;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
        *uid = cred.uid;
        return true;
    }

    // Read the request, then answer it; or, when `refusal` is set, answer that
    // instead. Reading first even when refusing means the client is never cut
    // off mid-send (EPIPE) and its bytes are not left unread (ECONNRESET).
    void start(uid_t uid, std::string refusal = {}) {
        uid_ = uid;
        refusal_ = std::move(refusal);
        arm_timer(timeouts_.request);
        int rc = uv_read_start(stream(), &Connection::on_alloc, &Connection::on_read);
        if (rc != 0) close();
    }

    // An error reply, then close (refusals that never reach the handler).
    void refuse(std::string text) {
        Reply r;
        r.ok = false;
        r.error = std::move(text);
        send(r);
    }

    void send(const Reply& reply) {
        if (answered_ || closing_) return;
        answered_ = true;
        struct Write {
            uv_write_t req{};
            std::string data;
        };
        auto w = std::make_unique<Write>();
        w->data = encode_reply(reply);
        if (w->data.size() > kMaxReply) w->data = encode_reply(Reply{false, "reply too large", {}});
        w->req.data = w.get();
        uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
        arm_timer(timeouts_.reply);
        int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int) {
            std::unique_ptr<Write> done(static_cast<Write*>(req->data));
            static_cast<Connection*>(req->handle->data)->close();
        });
        if (rc == 0) (void)w.release();
        else close();
    }

    void close() {
        if (closing_) return;
        closing_ = true;
        auto on_close = [](uv_handle_t* h) {
            auto* c = static_cast<Connection*>(h->data);
            if (--c->open_handles_ == 0) {
                auto keep = std::move(c->self_);  // frees c on leaving this scope
            }
        };
        uv_close(as_handle(&pipe_), on_close);
        uv_close(as_handle(&timer_), on_close);
    }

    bool closing() const { return closing_; }

private:
    void arm_timer(std::chrono::milliseconds ms) {
        uv_timer_start(
            &timer_, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->close(); },
            static_cast<uint64_t>(ms.count()), 0);
    }

    static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* c = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(c->buf_.data(), static_cast<unsigned>(c->buf_.size()));
    }

    static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Connection*>(s->data);
        if (n < 0) {  // EOF before a whole request, or an error: nothing to answer
            c->close();
            return;
        }
        c->in_.append(buf->base, static_cast<size_t>(n));
        c->on_bytes();
    }

    void on_bytes() {
        std::string err;
        switch (scan_frame(in_, kMaxRequest, &err)) {
        case FrameState::Incomplete: return;
        case FrameState::Bad:
            uv_read_stop(stream());
            refuse(refusal_.empty() ? "malformed request: " + err : refusal_);
            return;
        case FrameState::Complete:
            uv_read_stop(stream());
            dispatch();
            return;
        }
    }

    void dispatch() {
        if (!refusal_.empty()) return refuse(refusal_);
        Request req;
        std::string err;
        if (!decode_request(in_, &req, &err)) return refuse("malformed request: " + err);
        in_.clear();
        if (auto why = validate_request(req); !why.empty()) return refuse(why);
        log::debug(log::Line("control request").kv("uid", static_cast<long long>(uid_)).kv("command", req.words[0]));
        std::weak_ptr<Connection> weak = weak_from_this();
        handler_->handle(req, uid_, [weak](Reply reply) {
            if (auto c = weak.lock()) c->send(reply);
        });
    }

    uv_pipe_t pipe_{};
    uv_timer_t timer_{};
    int open_handles_ = 2;
    std::shared_ptr<Connection> self_;  // released when both handles are closed
    Handler* handler_;
    Timeouts timeouts_;
    uid_t uid_ = 0;
    std::string in_;
    std::string refusal_;
    bool answered_ = false;
    bool closing_ = false;
    std::array<char, 4096> buf_{};
};

// ---- server ----

Server::Server(uv_loop_t* loop, Handler& handler) : loop_(loop), handler_(handler) {}

Server::~Server() { close(); }

void Server::set_timeouts(std::chrono::milliseconds request, std::chrono::milliseconds reply) {
    request_timeout_ = request;
    reply_timeout_ = reply;
}

bool bind_socket(const std::string& path, util::Fd* out, std::string* error) {
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
        *error = "control socket path too long (max " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                 " bytes): " + path;
        return false;
    }
    if (!remove_stale(path, error)) return false;
    // bind() ourselves rather than with uv_pipe_bind, which reports a missing
    // folder as "permission denied". The umask closes the window between
    // bind() and chmod() in which the socket would carry a looser mode.
    util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    mode_t old_mask = ::umask(0117);
    int rc = fd ? ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) : -1;
    int saved = errno;
    ::umask(old_mask);
    if (rc != 0) {
        *error = "bind " + path + ": " + uv_strerror(-saved);
        return false;
    }
    if (::chmod(path.c_str(), 0660) != 0) {
        *error = errno_text("chmod " + path);
        ::unlink(path.c_str());
        return false;
    }
    *out = std::move(fd);
    return true;
}

bool Server::listen(const std::string& path, std::string* error) {
    util::Fd fd;
    return bind_socket(path, &fd, error) && listen_on(std::move(fd), path, error);
}

bool Server::listen_on(util::Fd fd, const std::string& path, std::string* error, bool keep_file) {
    auto l = std::make_shared<Listener>();
    l->self = l;
    l->server = this;
    l->path = path;
    uv_pipe_init(loop_, &l->pipe, 0);
    l->pipe.data = l.get();
    listeners_.push_back(l);
    int rc = uv_pipe_open(&l->pipe, fd.get());
    if (rc != 0) {
        *error = "listen on " + path + ": " + uv_strerror(rc);
        l->close();
        return false;
    }
    (void)fd.release();  // the pipe handle owns it now
    // Remember the file so that close() removes it only while it is ours.
    // A daemon that dropped root may not even see it (a 0700 folder): then
    // whoever bound it removes it.
    struct stat st {};
    if (!keep_file && ::lstat(path.c_str(), &st) == 0) {
        l->bound = true;
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    rc = uv_listen(as_stream(&l->pipe), 64, &Server::on_connection);
    if (rc != 0) {
        *error = "listen on " + path + ": " + uv_strerror(rc);
        l->close();
        return false;
    }
    log::info(log::Line("control listening").kv("path", path));
    return true;
}

void Server::on_connection(uv_stream_t* stream, int status) {
    auto* l = static_cast<Listener*>(stream->data);
    if (status < 0) {
        log::warn(log::Line("control accept-failed").kv("error", uv_strerror(status)));
        return;
    }
    l->server->accept(stream);
}

void Server::accept(uv_stream_t* stream) {
    prune();
    auto conn = Connection::create(loop_, &handler_, {request_timeout_, reply_timeout_});
    connections_.push_back(conn);
    if (uv_accept(stream, conn->stream()) != 0) return conn->close();
    uid_t uid = 0;
    if (!conn->peer_uid(&uid)) {
        log::warn(log::Line("control refused").kv("reason", "no peer credentials"));
        return conn->close();
    }
    if (uid != 0 && uid != ::geteuid()) {
        log::warn(
            log::Line("control refused").kv("uid", static_cast<long long>(uid)).kv("reason", "permission denied"));
        return conn->start(uid, "permission denied");
    }
    if (connection_count() > kMaxClients) return conn->start(uid, "too many control clients; try again");
    conn->start(uid);
}

void Server::prune() {
    std::erase_if(connections_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
}

size_t Server::connection_count() const {
    size_t n = 0;
    for (const auto& w : connections_)
        if (auto c = w.lock(); c && !c->closing()) ++n;
    return n;
}

void Server::stop_listening() {
    for (auto& w : listeners_)
        if (auto l = w.lock()) l->close();
    listeners_.clear();
}

void Server::close() {
    stop_listening();
    for (auto& w : connections_)
        if (auto c = w.lock()) c->close();
    connections_.clear();
}

}  // namespace postern::control
