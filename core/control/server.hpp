// control/server.hpp — the control socket on the daemon's event loop.
//
// posternd listens on a UNIX socket (default /run/postern/control.sock) for
// posternctl(8). Each connection carries one request and one reply (framing in
// control/protocol.hpp): the server reads the request (at most kMaxRequest
// bytes, within the request timeout, 10 s), refuses a malformed or unknown
// command itself, hands a valid one to the Handler, writes the Handler's
// reply and closes. Many clients may be connected at once (up to
// kMaxClients); none of them can block the loop.
//
// Access control, two layers:
//  - the socket file is created mode 0660 (the daemon chowns it to
//    root:_postern), so only root and the daemon's group can connect at all;
//  - each peer's credentials are read with SO_PEERCRED and only uid 0 and the
//    server's own effective uid are served; anyone else gets the error reply
//    "permission denied" (once its request is read) and the connection is
//    closed. The handler never sees such a request.
//
// Lifetime: every libuv handle is owned by a small object that frees itself
// in its close callback, so the Server may be destroyed right after close();
// the loop must still run afterwards for those callbacks to fire. All calls,
// including the Handler's `done`, happen on the loop's thread.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/protocol.hpp"
#include "util/fd.hpp"

namespace postern::control {

// Implemented by the daemon. handle() runs on the loop and must call `done`
// exactly once, now or later (on the loop too). A `done` called after the
// client went away or the server closed is harmless; later calls are ignored.
class Handler {
public:
    virtual ~Handler() = default;
    virtual void handle(const Request& req, uid_t peer_uid, std::function<void(Reply)> done) = 0;
};

// The bind half of listen(): PATH made a socket of mode 0660, a stale one
// removed first (only if it is a socket nobody answers on).
bool bind_socket(const std::string& path, util::Fd* out, std::string* error);

class Server {
public:
    static constexpr size_t kMaxClients = 64;

    Server(uv_loop_t* loop, Handler& handler);
    ~Server();  // closes what is still open
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Bind PATH, mode 0660, and start accepting. A stale socket file is removed
    // first (only if it is a socket, and only if nobody answers on it).
    // False with *error on failure.
    bool listen(const std::string& path, std::string* error);
    // Start accepting on a socket bind_socket() made (a root daemon binds it
    // before dropping privileges, since its folder may be root's). With
    // `keep_file`, close() leaves the socket file to whoever bound it: a
    // daemon that reloads hands the same socket to each process that serves
    // in turn, and one that ends must not take the file from the next.
    bool listen_on(util::Fd fd, const std::string& path, std::string* error, bool keep_file = false);

    // Stop accepting; the connections under way get their answers.
    void stop_listening();
    // Stop accepting, drop every connection, remove the socket file we made.
    void close();

    // How long a client may take to send its request, and how long writing the
    // reply may take (tests shorten these).
    void set_timeouts(std::chrono::milliseconds request, std::chrono::milliseconds reply);

    size_t connection_count() const;

    class Connection;  // one client; defined in server.cpp
    struct Listener;

private:
    static void on_connection(uv_stream_t* stream, int status);
    void accept(uv_stream_t* stream);
    void prune();

    uv_loop_t* loop_;
    Handler& handler_;
    std::chrono::milliseconds request_timeout_{10'000};
    std::chrono::milliseconds reply_timeout_{60'000};
    std::vector<std::weak_ptr<Listener>> listeners_;
    std::vector<std::weak_ptr<Connection>> connections_;
};

}  // namespace postern::control
