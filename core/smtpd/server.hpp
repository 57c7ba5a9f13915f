// The SMTP server: listening sockets, the sessions on them, and what sessions
// share (config, rules, queue, and where queued mail goes next).
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/credentials.hpp"
#include "config/config.hpp"
#include "event/loop_work.hpp"
#include "expand/forward.hpp"
#include "filterhost/host.hpp"
#include "queue/store.hpp"
#include "rules/ruleset.hpp"
#include "table/registry.hpp"
#include "tls/context.hpp"
#include "util/fd.hpp"

namespace postern::smtpd {

class SmtpSession;

// One bound socket and the `listen on` line it came from.
struct ListenSocket {
    int fd = -1;          // bound and listening, opened before privileges were dropped
    std::string address;  // for logs; "unix:PATH" for the local socket
    bool local = false;   // the UNIX socket of `listen on socket`
    const config::Listener* listener = nullptr;
};

struct SmtpContext {
    const config::Config* config = nullptr;
    const rules::Ruleset* rules = nullptr;
    table::Registry* tables = nullptr;
    queue::Store* store = nullptr;
    queue::Committer* committer = nullptr;
    // Called on the loop with the envelopes of each message once it is
    // durable (the scheduler takes them): smtpd knows nothing of what follows.
    std::function<void(const std::vector<queue::Envelope>&)> queued;
    event::LoopPost* post = nullptr;
    std::string hostname;  // server name
    // Checks a system account's password (`auth` without a table); answers on the loop.
    std::function<void(const std::string& user, const std::string& password,
                       std::function<void(auth::Check, std::string error)> done)>
        system_auth;
    // TLS contexts of the tls/smtps listeners, loaded as root before privileges were dropped.
    const std::map<const config::Listener*, std::unique_ptr<tls::ServerContext>>* tls = nullptr;
    // The filter host: the chains of filtered listeners; nullptr = no filters.
    filterhost::Host* filters = nullptr;
    // Reads users' ~/.forward during expansion (on worker threads); nullptr = never.
    const expand::ForwardReader* forward = nullptr;
    // The local enqueue socket's path (filters see "unix:PATH" as both ends
    // of its sessions, as OpenSMTPD shows them); "" when there is none.
    std::string local_socket{};
};

class SmtpServer {
public:
    SmtpServer(uv_loop_t* loop, SmtpContext ctx);
    ~SmtpServer();

    // Start accepting on sockets bound earlier; false with `error` on failure.
    bool start(const std::vector<ListenSocket>& sockets, std::string* error);
    // Stop accepting and close every session (see SmtpSession::shutdown).
    void stop(bool unavailable = false);
    // Stop accepting, and only that: the sessions go on. The listening
    // sockets are closed, not shut down: a process started by a reload may
    // accept on copies of them.
    void stop_accepting();

    uv_loop_t* loop() const { return loop_; }
    const SmtpContext& ctx() const { return ctx_; }
    char* read_buffer() { return read_buffer_.data(); }
    size_t read_buffer_size() const { return read_buffer_.size(); }

    // posternctl pause/resume smtp: while paused, new clients get 421 and are closed.
    void pause() { paused_ = true; }
    void resume() { paused_ = false; }
    bool paused() const { return paused_; }
    unsigned long long sessions_total() const { return sessions_total_; }

    void session_closed(SmtpSession* s);  // called by a session once its handles are closed
    size_t session_count() const { return sessions_.size(); }

    // Per client address (an IPv6 client by its /64): sessions at once and
    // new connections a second (`smtp limit max-sessions-per-address`,
    // `max-conn-rate`). admit() counts a new session of `address` and says
    // whether it may go on; one admitted is let go with release().
    enum class Admission { Ok, TooManySessions, TooFast };
    Admission admit(const std::string& address);
    void release(const std::string& address);
    // AUTH failures per address (`smtp limit max-auth-failures`), forgotten
    // 15 minutes after the last one: auth_failures() is how many there were.
    unsigned auth_failures(const std::string& address);
    void auth_failed(const std::string& address);

private:
    struct Listening {
        // A TCP listener, or the local socket's pipe: one of the two is
        // initialised, and both begin as a uv_stream_t.
        union {
            uv_tcp_t tcp;
            uv_pipe_t pipe;
        } handle{};
        uv_handle_t* as_handle() { return reinterpret_cast<uv_handle_t*>(&handle); }
        uv_stream_t* as_stream() { return reinterpret_cast<uv_stream_t*>(&handle); }
        SmtpServer* server = nullptr;
        const config::Listener* listener = nullptr;
        bool local = false;
        std::string address;
        // Another descriptor of the same socket. Out of descriptors, the
        // handle is closed for a second and opened again on a copy of this
        // one (reopen()): libuv would otherwise retry accept() in a loop
        // that never returns to the event loop, so that nothing could close
        // and free a descriptor. The socket stays bound meanwhile, and what
        // connects waits in its backlog.
        util::Fd spare;
        uv_timer_t resume{};
        bool resume_open = false;  // `resume` is initialised
        bool stopped = false;      // stop_accepting(): for good
    };
    static void on_connection(uv_stream_t* stream, int status);
    bool open(Listening& l, int fd, bool own, std::string* error);
    void accept_failed(Listening& l, int status);
    void reopen(Listening& l);
    static void on_resume(uv_timer_t* t);

    uv_loop_t* loop_;
    SmtpContext ctx_;
    std::vector<std::unique_ptr<Listening>> listening_;
    std::unordered_map<SmtpSession*, std::shared_ptr<SmtpSession>> sessions_;
    bool paused_ = false;
    unsigned long long sessions_total_ = 0;
    // max-sessions, or fewer when the descriptor limit holds fewer (start()).
    std::size_t max_sessions_ = 0;
    // What is known of a client address; gone once it holds no session
    // and its counts have run out (prune_clients()).
    struct Client {
        unsigned sessions = 0;
        std::uint64_t second = 0;  // the loop time the current second began
        unsigned connections = 0;  // new connections in that second
        unsigned auth_failures = 0;
        std::uint64_t auth_failed_at = 0;
    };
    std::unordered_map<std::string, Client> clients_;
    std::uint64_t pruned_at_ = 0;
    void prune_clients(std::uint64_t now);
    // accept() failures: logged at most once a second, with their count.
    std::uint64_t accept_logged_at_ = 0;
    unsigned long accept_failures_ = 0;
    // One read buffer for every session: libuv hands it back in the read
    // callback that follows the allocation, and sessions copy out at once.
    // A message comes in reads of at most this, and a session receiving
    // one holds about three reads' worth while the disk takes its file
    // (session.cpp's kMaxWriteBacklog): 32 KiB keeps 100 of them near
    // 10 MiB, for a few more reads per large message than 64 KiB.
    std::vector<char> read_buffer_ = std::vector<char>(32 * 1024);
};

}  // namespace postern::smtpd
