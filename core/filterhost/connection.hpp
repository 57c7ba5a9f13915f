// filterhost/connection.hpp — one running filter process, as the serving
// process sees it: its socket, the handshake, and the lines to and from the
// sessions it filters.
//
// Lines the filter writes are split, checked (filter/protocol.hpp) and
// handed to the session they name; a line that breaks the protocol fails the
// filter, and so does the end of its output. A failed connection tells every
// session attached to it and its host, then closes: the host restarts the
// process. Writes are batched (one write in flight, the rest appended) and
// counted, so that a session can stop reading its client while a filter is
// behind (back-pressure).
//
// Depends on: filter (protocol, handshake), config, util, libuv.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "filter/handshake.hpp"
#include "filter/protocol.hpp"
#include "util/fd.hpp"

namespace postern::filterhost {

// Above this many bytes waiting to be written to a filter, the sessions
// writing to it stop reading their clients; below kLowWater they go on.
inline constexpr std::size_t kHighWater = 1024 * 1024;
inline constexpr std::size_t kLowWater = 256 * 1024;

class Connection;

// A session's side of a connection (the chain runner, session_chain.hpp).
class ConnectionClient {
public:
    virtual void on_result(Connection& c, const filter::FilterResult& r) = 0;
    virtual void on_dataline(Connection& c, const filter::FilterDataline& d) = 0;
    virtual void on_origin_report(Connection& c, const filter::FilterOriginReport& r) = 0;
    // Any line from the filter for this session: it is alive (timeouts).
    virtual void on_progress(Connection& c) = 0;
    virtual void on_failed(Connection& c, const std::string& why) = 0;
    virtual void on_writable(Connection& c) = 0;

protected:
    ~ConnectionClient() = default;
};

class Connection {
public:
    // Called from inside the connection's own callbacks: they must not
    // destroy it (the host replaces a failed one later, from a timer).
    struct Events {
        std::function<void(Connection&)> ready;
        std::function<void(Connection&, const std::string& why)> failed;
    };
    Connection(uv_loop_t* loop, const config::FilterProc& proc, std::size_t index, const filter::Handshake& hs,
               util::Fd io, pid_t pid, Events events);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const std::string& name() const { return proc_.name; }
    const config::FilterProc& proc() const { return proc_; }
    std::size_t index() const { return index_; }
    pid_t pid() const { return pid_; }
    filter::Version version() const { return proc_.version; }
    bool ready() const { return state_ == State::Ready; }
    bool failed() const { return state_ == State::Failed; }
    const filter::Registrations& registrations() const { return handshake_.registrations(); }
    bool wants(filter::Phase p) const { return registrations().wants(p); }
    bool wants(filter::Event e) const { return registrations().wants(filter::Subsystem::SmtpIn, e); }

    void attach(std::uint64_t session, ConnectionClient* client) { clients_[session] = client; }
    void detach(std::uint64_t session) { clients_.erase(session); }

    // One line, without its '\n'. Nothing happens once failed.
    void send(std::string_view line);
    std::size_t queued() const { return out_.size() + in_flight_; }
    bool congested() const { return queued() > kHighWater; }

    // Stop reading what the filter writes while a filter after it in some
    // session's chain is behind; reading starts again when every pause has
    // been resumed.
    void pause_reading();
    void resume_reading();

    // Counts the filter as failed (protocol violation, timeout, exit): tells
    // the sessions and the host, closes the socket. Once only.
    void fail(const std::string& why);

    // The socket is closed without counting as a failure: the daemon stops.
    void close();

    struct Pipe;  // the libuv handle, which may outlive this object until closed

private:
    enum class State { Handshake, Ready, Failed, Closed };
    void start_reading();
    void on_read(ssize_t n, const uv_buf_t* buf);
    void take_line(std::string_view line);
    void write_more();

    const config::FilterProc& proc_;
    std::size_t index_;
    pid_t pid_;
    Events events_;
    filter::HandshakeMachine handshake_;
    State state_ = State::Handshake;
    Pipe* pipe_ = nullptr;
    uv_timer_t* handshake_timer_ = nullptr;
    std::string in_;
    std::string out_;
    std::size_t in_flight_ = 0;
    bool drain_wanted_ = false;
    int pauses_ = 0;  // went over kHighWater: tell the clients when below kLowWater
    std::map<std::uint64_t, ConnectionClient*> clients_;
};

}  // namespace postern::filterhost
