// filters/rspamd/client.hpp — an asynchronous HTTP client for rspamd on a
// libuv loop.
//
// Why asynchronous: a scan takes rspamd from milliseconds to many seconds
// (DNS lists, timeouts of its own), and one filter process serves every
// session. libcurl's multi interface runs any number of scans at once on the
// filter's own loop: curl says which sockets to watch (a uv_poll_t each) and
// when to wake it (one uv_timer_t), and we tell it what happened. Nothing
// here blocks the loop: connecting, sending and receiving wait in the loop,
// and a host name in the URL is resolved by curl's own resolver off it.
//
// Each scan ends in exactly one call of its `done`, from the loop, never
// from within scan(): a decoded Reply, or a typed Failure (rspamd not
// reachable, too slow, an HTTP error status, a reply we cannot read). A
// scan cancelled, or still running when the client is destroyed, gets no
// call. `done` may start or cancel scans; it must not destroy the client.
// The client's libuv handles are closed by its destructor and freed by their
// close callbacks: run the loop once more afterwards (as before uv_loop_close).
//
// No proxy from the environment is used (rspamd is beside us, and an
// http_proxy meant for the web must not see mail), no redirect is followed,
// and only http and https are spoken.
//
// Depends on: libcurl (multi interface), libuv, reply.hpp, request.hpp.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "reply.hpp"
#include "request.hpp"

namespace postern::rspamd {

struct ScanRequest {
    Envelope envelope;
    BodyReader body;
};

struct Failure {
    enum class Kind {
        Connect,     // no connection: refused, unreachable, name not found
        Timeout,     // no whole answer within Options::timeout
        HttpStatus,  // an answer, but not 200
        BadReply,    // a 200 whose body is not a reply we can read, or too large
        Transfer,    // the connection failed half way, or the body could not be read
    };
    Kind kind;
    std::string text;      // for the log: curl's words, the status line or the decoder's error
    long http_status = 0;  // for HttpStatus
};

std::string_view kind_name(Failure::Kind k);

using ScanResult = std::variant<Reply, Failure>;

class RspamdClient {
public:
    struct Options {
        // Where rspamd's normal worker listens; "/checkv2" is appended.
        std::string url = "http://127.0.0.1:11333";
        // Connect to this Unix socket instead of the URL's host (the URL
        // still names the Host header and the path).
        std::string unix_socket;
        // The whole scan: connect, send, rspamd's work, the answer.
        std::chrono::milliseconds timeout{30000};
        std::chrono::milliseconds connect_timeout{5000};
        // A longer answer is a BadReply.
        std::size_t max_reply = 4 * 1024 * 1024;
    };

    using ScanId = std::uint64_t;
    using Done = std::function<void(ScanResult)>;

    RspamdClient(uv_loop_t* loop, Options options);
    ~RspamdClient();
    RspamdClient(const RspamdClient&) = delete;
    RspamdClient& operator=(const RspamdClient&) = delete;

    // Starts a scan; its id serves cancel().
    ScanId scan(ScanRequest request, Done done);
    // Stops a running scan without calling its `done`; false if it is not
    // running (finished, cancelled, unknown).
    bool cancel(ScanId id);
    std::size_t running() const;

    const Options& options() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace postern::rspamd
