// plugins/relay/relay.cpp — delivery-relay.so, the `relay host URL` action:
// hands one message for one recipient to a smarthost over SMTP.
//
// Runs inside postern-local, started by the daemon as the unprivileged user
// with `--method relay`. request.path is the relay URL (smtp://, smtp+tls://,
// smtp+notls://, smtps://; no scheme = smtp), request.options the words of
// options.hpp, request.sender the envelope sender ("" = <>), request.dest the
// recipient, request.message_fd the spooled message with LF line ends.
//
// TLS: smtps:// starts it at once; smtp+tls:// requires STARTTLS; smtp://
// uses STARTTLS when offered, without checking the certificate
// (opportunistic), and never falls back to plaintext after a failed
// handshake; smtp+notls:// never uses TLS. smtp+tls:// and smtps:// check the
// certificate chain and the host name unless tls=no-verify.
//
// Connection reuse: postern-local calls deliver() for each message of a batch
// in one process, so the last connection is kept open between calls with the
// same URL and options (RSET between messages; a kept connection found dead
// at RSET or MAIL is replaced once). A call for another URL or other options
// closes it with QUIT, as does the end of the process.
//
// Results: see session.hpp. A bad URL or bad options are permanent
// ("relay: config error: ...").
//
// Depends on: session.hpp, relay/url.hpp, util/delivery_guard.hpp.
#include <postern/delivery.h>

#include <openssl/ssl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

#include "options.hpp"
#include "session.hpp"
#include "util/delivery_guard.hpp"
#include "util/sigpipe_guard.hpp"

namespace {

using postern::util::SigpipeGuard;
using postern::relay_plugin::Failure;
using postern::relay_plugin::Session;
using postern::relay_plugin::Settings;

constexpr size_t kMaxMessage = size_t{1} << 30;  // what we agree to hold in memory


// The one kept connection. OpenSSL is initialised before this object is
// complete, so its own exit cleanup is registered first and runs after our
// destructor's QUIT.
struct Cache {
    Cache() { OPENSSL_init_ssl(0, nullptr); }
    ~Cache() { close(); }
    void close() {
        if (!session) return;
        SigpipeGuard guard;
        session->quit();
        session.reset();
        key.clear();
    }
    std::string key;
    std::unique_ptr<Session> session;
};

Cache& cache() {
    static Cache c;
    return c;
}

bool read_message(int fd, std::string* out, Failure* f) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) out->reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            *f = {POSTERN_TEMPFAIL, std::string("relay: cannot read the message: ") + std::strerror(errno)};
            return false;
        }
        if (out->size() + static_cast<size_t>(n) > kMaxMessage) {
            *f = {POSTERN_PERMFAIL, "relay: message too large"};
            return false;
        }
        out->append(buf, static_cast<size_t>(n));
    }
}

// One attempt on the kept connection, then (if it was found dead before the
// message went out) one on a fresh one. A connection lost after the message
// was sent is not retried here: the queue's next attempt decides, as for any
// temporary failure.
bool send_one(const Settings& s, const postern_delivery_request& req, const std::string& message, Failure* f) {
    using Result = Session::Result;
    Cache& c = cache();
    if (c.session) {
        // Any trouble at RSET (closed, timed out, refused) means a fresh connection.
        Result r = c.session->reset(f);
        if (r == Result::Ok) {
            r = c.session->transaction(req.sender, req.dest, message, f);
            if (r == Result::Ok || r == Result::Failed) return r == Result::Ok;
            if (r == Result::Lost) {
                c.session.reset();  // dead: no QUIT to send
                return false;
            }
        }
        c.session.reset();
    }
    c.session = Session::open(s, f);
    if (!c.session) return false;
    Result r = c.session->transaction(req.sender, req.dest, message, f);
    if (r == Result::Broken || r == Result::Lost) c.session.reset();
    return r == Result::Ok;
}

bool run(const postern_delivery_request& req, Failure* f) {
    SigpipeGuard guard;
    Cache& c = cache();
    std::string key = std::string(req.path ? req.path : "") + '\n' + (req.options ? req.options : "");
    if (c.key != key) c.close();
    Settings s;
    std::string error;
    if (!postern::relay_plugin::parse_settings(req.path ? req.path : "", req.options ? req.options : "", &s, &error)) {
        *f = {POSTERN_PERMFAIL, "relay: config error: " + error};
        return false;
    }
    std::string message;
    if (!read_message(req.message_fd, &message, f)) return false;
    bool ok = send_one(s, req, message, f);
    if (c.session) c.key = key;
    return ok;
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    return postern::util::guarded_deliver("relay", req, err, errlen, run);
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "relay", deliver,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) {
    return &plugin;
}
