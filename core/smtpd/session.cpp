// One inbound SMTP session; see session.hpp.
#include "smtpd/session.hpp"

#include "smtpd/meters.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "rules/recipient.hpp"
#include "table/table.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

constexpr size_t kMaxCommandLine = 2048;  // as Postfix's line_length_limit
constexpr size_t kMaxBufferedInput = 256 * 1024;
constexpr size_t kMaxPendingOutput = 256 * 1024;
// While more of the message than this waits for the disk, the client is
// not read: what a session holds stays bounded whatever the message's size
// (one write in flight, one read waiting for it; one read is at most the
// server's read buffer, 32 KiB).
constexpr std::uint64_t kMaxWriteBacklog = 32 * 1024;
constexpr unsigned kMaxErrors = 20;  // as Postfix's smtpd_hard_error_limit
// Commands that move no mail (NOOP, VRFY, HELP, HELO/EHLO, RSET outside a transaction)
// are free up to this many a session; each one past it counts as an error,
// so that a client cannot hold a session for ever by sending them slowly.
constexpr unsigned kMaxIdleCommands = 100;

std::string new_session_id() {
    static std::mt19937_64 rng{std::random_device{}()};
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
    return buf;
}

// A command line as the filters' protocol-client event shows it: an AUTH
// initial response is a secret, so it is replaced, as OpenSMTPD does.
std::string client_line(const smtp::Command& c, std::string_view line) {
    if (c.verb != smtp::Verb::Auth || c.args.find(' ') == std::string_view::npos) return std::string(line);
    return std::string(c.name) + " " + std::string(c.args.substr(0, c.args.find(' '))) + " ********";
}

struct WriteReq {
    uv_write_t req{};
    std::string data;
    SmtpSession* session;
};

}  // namespace

SmtpSession::SmtpSession(SmtpServer& server, const config::Listener& listener)
    : server_(server), listener_(listener), id_(new_session_id()), sid_(std::stoull(id_, nullptr, 16)) {
    meters::session_opened();
}

SmtpSession::~SmtpSession() { meters::session_closed(); }

bool SmtpSession::accept(uv_stream_t* listening, Refusal refusal) {
    if (listener_.socket) uv_pipe_init(server_.loop(), &conn_.pipe, 0);
    else uv_tcp_init(server_.loop(), &conn_.tcp);
    uv_timer_init(server_.loop(), &timer_);
    conn_handle()->data = timer_.data = this;
    if (uv_accept(listening, conn()) != 0) {
        close();
        return false;
    }
    if (listener_.socket) accept_local();
    else accept_tcp(refusal == Refusal::None);
    return true;
}

void SmtpSession::start(Refusal refusal) {
    if (refusal == Refusal::None) refusal = refused_;  // for its address (accept_tcp)
    if (refusal == Refusal::None && listener_.proxy_v2) return await_proxy_header();
    if (refusal == Refusal::None && listener_.socket && local_uid_ >= 0)
        return lookup_local_user([this, refusal] { begin(refusal); });
    begin(refusal);
}

void SmtpSession::begin(Refusal refusal) {
    log::Line connected(id_ + " smtp connected");
    connected.kv("address", client_ip_);
    if (listener_.socket) connected.kv("user", local_user_).kv("uid", static_cast<long long>(local_uid_));
    log::info(connected);
    const std::string& host = hostname();
    if (refusal != Refusal::None) {
        const char* reason = "paused";
        switch (refusal) {
        case Refusal::Busy:
            reply(421, "4.7.0 " + host + " Too many connections, try again later");
            reason = "too-many-sessions";
            break;
        case Refusal::PerAddress:
            reply(421, "4.7.0 " + host + " Too many connections from your address, try again later");
            reason = "too-many-sessions-per-address";
            break;
        case Refusal::TooFast:
            reply(421, "4.7.0 " + host + " Connecting too fast, try again later");
            reason = "connection-rate";
            break;
        default: reply(421, "4.3.2 " + host + " Service paused, try again later"); break;
        }
        meters::session_refused(reason);
        log::info(log::Line(id_ + " smtp disconnected").kv("reason", reason));
        // The reply goes out now (a fresh socket takes a line) and the
        // descriptor is closed now, not after the write's callback: libuv
        // accepts every pending connection in one go, and while clients
        // keep coming, refused sessions waiting for callbacks would hold
        // descriptors until none is left.
        uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
        (void)uv_try_write(conn(), &b, 1);
        out_.clear();
        close();
        return;
    }
    if (!open_filters()) return;
    filter_connect([this] {
        if (listener_.smtps && !start_tls()) return;
        if (listener_.hostnames_table.empty()) return greet();
        greet_by_address();
    });
}

// `hostnames <t>`: the name to go by depends on the address the client reached.
void SmtpSession::greet_by_address() {
    table::Table* table = server_.ctx().tables->find(listener_.hostnames_table);
    auto name = std::make_shared<std::string>();
    busy_ = true;
    event::run_blocking(
        server_.loop(),
        [table, name, ip = local_ip_] {
            std::string value, error;
            if (table &&
                (table->lookup(table::Service::Addrname, ip, &value, &error) == table::Result::Found ||
                 table->lookup(table::Service::Addrname, "[" + ip + "]", &value, &error) == table::Result::Found))
                *name = value;
        },
        [weak = weak_from_this(), name] {
            auto self = weak.lock();
            if (!self || self->state_ == State::Closing) return;
            self->busy_ = false;
            self->local_name_ = *name;
            self->greet();
        });
}

void SmtpSession::greet() {
    reply(220, hostname() + " ESMTP postern");
    filter_report(filter::LinkGreeting{hostname()});
    // What came after a PROXY header in the same read: the client's first
    // command, or with smtps its TLS hello, served now as if read now.
    if (!in_.empty()) {
        auto keep = shared_from_this();
        std::string early;
        early.swap(in_);
        if (tls_) {
            if (!tls_input(early)) return;
        } else {
            in_ = std::move(early);
        }
        process();
    }
    flush();
    update_reading();
    if (!tls_ || tls_active_) reset_idle_timer();  // smtps: the handshake's own deadline (start_tls)
}

// The name this session goes by: from `hostnames <t>`, else the listener's
// `hostname`, else the server's.
const std::string& SmtpSession::hostname() const {
    if (!local_name_.empty()) return local_name_;
    return listener_.hostname.empty() ? server_.ctx().hostname : listener_.hostname;
}

void SmtpSession::shutdown(bool unavailable) {
    if (state_ == State::Closing) return;
    if (proxy_pending_) return close();  // nothing is said before the PROXY header, goodbye included
    if (!unavailable) reply(421, "4.3.2 " + hostname() + " Service shutting down, closing connection");
    else if (state_ == State::Mail || state_ == State::Data || !tx_.msgid.empty())
        reply(451, "4.3.0 " + hostname() + " Mail system unavailable, transaction aborted; try again later");
    else reply(421, "4.3.0 " + hostname() + " Mail system unavailable, closing connection");
    close_after_flush();
    flush();
}

// ---- I/O ----

void SmtpSession::update_reading() {
    if (state_ == State::Closing) return;
    // While a filter is behind with the message, the client waits.
    bool want = in_.size() < kMaxBufferedInput && uv_stream_get_write_queue_size(conn()) < kMaxPendingOutput &&
                !(stream_ && stream_->to_filters && chain_ && chain_->congested()) &&
                !(stream_ && stream_->out && stream_->out->backlog() > kMaxWriteBacklog);
    auto* stream = conn();
    if (want && !uv_is_active(conn_handle())) {
        uv_read_start(
            stream,
            [](uv_handle_t* h, size_t, uv_buf_t* b) {
                auto* s = static_cast<SmtpSession*>(h->data);
                *b = uv_buf_init(s->server_.read_buffer(), static_cast<unsigned>(s->server_.read_buffer_size()));
            },
            [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) { static_cast<SmtpSession*>(st->data)->on_read(n, b); });
    } else if (!want && uv_is_active(conn_handle())) {
        uv_read_stop(stream);
    }
}

void SmtpSession::on_read(ssize_t nread, const uv_buf_t* buf) {
    if (nread < 0 && proxy_pending_) {
        proxy_refused(nread != UV_EOF ? std::string("io-error: ") + uv_strerror(static_cast<int>(nread))
                      : in_.empty()   ? "connection closed before a PROXY header"
                                      : "connection closed within the PROXY header");
        return;
    }
    if (nread < 0) {
        log::info(log::Line(id_ + " smtp disconnected")
                      .kv("reason", nread == UV_EOF
                                        ? "disconnect"
                                        : std::string("io-error: ") + uv_strerror(static_cast<int>(nread))));
        close();
        return;
    }
    if (nread == 0 || state_ == State::Closing) return;
    if (state_ == State::Data) data_progress(static_cast<std::size_t>(nread));
    auto keep = shared_from_this();  // a command may close the session under us
    std::string_view bytes(buf->base, static_cast<size_t>(nread));
    if (proxy_pending_) {
        in_.append(bytes);
        proxy_input();
        return;
    }
    if (tls_) {
        if (!tls_input(bytes)) return;
    } else if (state_ == State::Data && !busy_ && in_.empty()) {
        // The message goes from the read buffer to the reader, not through in_.
        bytes.remove_prefix(data_->feed(bytes));
        in_.append(bytes);  // what follows its end
        data_fed();
    } else {
        in_.append(bytes);
    }
    process();
    flush();
    // An idle session holds no input buffer: what the read needed goes back
    // now (one allocation per read is cheap beside the read itself).
    if (in_.empty() && in_.capacity() > std::string().capacity()) std::string().swap(in_);
    update_reading();
}

void SmtpSession::process() {
    while (!busy_ && state_ != State::Closing) {
        if (state_ == State::Data) {
            in_.erase(0, data_->feed(in_));  // before data_fed(), which may come back here
            data_fed();
            if (state_ == State::Data) return;  // needs more bytes
            continue;
        }
        auto nl = in_.find('\n');
        // An AUTH exchange carries base64 lines longer than commands (RFC 4954).
        size_t max_line = auth_.in_progress() ? auth::kMaxLine + 2 : kMaxCommandLine;
        if ((nl == std::string::npos && in_.size() > max_line) || (nl != std::string::npos && nl + 1 > max_line)) {
            log::info(log::Line(id_ + " smtp bad-input").kv("result", "500 5.5.2 Line too long"));
            reply(500, "5.5.2 Line too long");
            close_after_flush();
            return;
        }
        if (nl == std::string::npos) return;
        std::string line = in_.substr(0, nl);
        in_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (auth_.in_progress()) auth_step(auth_.next(line));
        else handle_line(line);
    }
}

void SmtpSession::reply(int code, std::string_view text) {
    if (log::verbose()) log::debug(log::Line(id_ + " smtp reply").kv("code", code).kv("text", text));
    if (chain_ && chain_->wants(filter::Event::ProtocolServer))
        filter_report(filter::ProtocolServer{std::to_string(code) + " " + std::string(text)});
    out_ += std::to_string(code);
    out_ += ' ';
    out_ += text;
    out_ += "\r\n";
    if (code >= 500 && state_ != State::Closing) ++errors_;
    if (!tls_ || tls_active_) reset_idle_timer();
}

void SmtpSession::reply_lines(int code, const std::vector<std::string>& lines) {
    for (size_t i = 0; i < lines.size(); ++i) {
        if (chain_ && chain_->wants(filter::Event::ProtocolServer))
            filter_report(filter::ProtocolServer{std::to_string(code) + (i + 1 < lines.size() ? "-" : " ") + lines[i]});
        out_ += std::to_string(code);
        out_ += i + 1 < lines.size() ? '-' : ' ';
        out_ += lines[i];
        out_ += "\r\n";
    }
    if (!tls_ || tls_active_) reset_idle_timer();
}

void SmtpSession::flush() {
    // With TLS, replies go through the engine (held until the handshake is
    // done) and what it produces goes out: records, handshake, alerts.
    std::string wire;
    if (tls_) {
        if (!out_.empty() && !tls_->write(out_))
            log::info(log::Line(id_ + " smtp tls-error").kv("error", tls_->error()));
        out_.clear();
        wire = tls_->take_ciphertext();
    } else {
        wire.swap(out_);
    }
    if (wire.empty() || uv_is_closing(conn_handle())) {
        if (close_when_flushed_ && writes_pending_ == 0) close();
        return;
    }
    // Replies are short and the socket's buffer nearly always takes them at
    // once: written now, they cost one write(2). A uv_write costs a request
    // on the heap, a callback on the next loop turn and, once the write
    // queue drains, an epoll_ctl that libuv makes whatever the events:
    // seven a message at one reply per command (issue 15). What the socket
    // does not take goes the queued way, after what it took. uv_try_write
    // refuses while earlier writes are queued, so the order holds.
    if (writes_pending_ == 0) {
        uv_buf_t now = uv_buf_init(wire.data(), static_cast<unsigned>(wire.size()));
        int n = uv_try_write(conn(), &now, 1);
        if (n > 0) wire.erase(0, static_cast<size_t>(n));
        else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            close();
            return;
        }
        if (wire.empty()) {
            if (close_when_flushed_) close();
            return;
        }
    }
    auto w = std::make_unique<WriteReq>();
    w->data.swap(wire);
    w->session = this;
    w->req.data = w.get();
    uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, conn(), &b, 1, [](uv_write_t* req, int status) {
        std::unique_ptr<WriteReq> done(static_cast<WriteReq*>(req->data));
        SmtpSession* s = done->session;
        --s->writes_pending_;
        if (status < 0 || (s->close_when_flushed_ && s->writes_pending_ == 0)) {
            s->close();
            return;
        }
        s->update_reading();
    });
    if (rc != 0) {
        close();
        return;
    }
    (void)w.release();  // reclaimed in the write callback
    ++writes_pending_;
}

void SmtpSession::close_after_flush() {
    close_when_flushed_ = true;
    if (state_ != State::Closing) state_ = State::Closing;
}

void SmtpSession::close() {
    if (open_handles_ < 0) return;
    auto* tcp = conn_handle();
    auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
    if (uv_is_closing(tcp)) return;
    if (counted_) server_.release(client_ip_);
    counted_ = false;
    if (chain_) {
        if (!tx_.msgid.empty()) filter_rollback();
        filter_report(filter::LinkDisconnect{});
        chain_.reset();  // no filter line reaches a closing session
    }
    state_ = State::Closing;
    open_handles_ = 2;
    auto on_closed = [](uv_handle_t* h) {
        auto* s = static_cast<SmtpSession*>(h->data);
        if (--s->open_handles_ == 0) {
            s->open_handles_ = -1;
            s->server_.session_closed(s);  // may destroy *s
        }
    };
    uv_close(tcp, on_closed);
    uv_close(timer, on_closed);
}

// Every read pushes the idle deadline back. The timer is not moved for it
// while it is armed: it then wakes no later than the new deadline (the
// deadlines only grow, or go), and on_timer arms it again for what is
// really due. A timer moved on each read cost a heap removal and insertion
// per command (issue 15); now a session's timer is armed about twice.
void SmtpSession::reset_idle_timer() {
    const bool armed = idle_due_ != 0 && uv_is_active(reinterpret_cast<uv_handle_t*>(&timer_));
    idle_due_ = uv_now(server_.loop()) + std::uint64_t{server_.ctx().config->command_timeout} * 1000;
    if (!armed) arm_timer();
}

// As Postfix's smtpd_min_data_rate: a message may take longer than the
// timeout, if it keeps coming at the rate; one trickled a byte at a time
// may not.
void SmtpSession::data_progress(std::size_t bytes) {
    if (!idle_due_) return;
    const config::Config& cfg = *server_.ctx().config;
    const std::uint64_t cap = uv_now(server_.loop()) + std::uint64_t{cfg.command_timeout} * 1000;
    idle_due_ = std::min(cap, idle_due_ + std::uint64_t{bytes} * 1000 / cfg.min_data_rate);
}

void SmtpSession::arm_timer() {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) return;
    std::uint64_t due = 0;
    for (std::uint64_t d : {idle_due_, rdns_due_, delay_due_})
        if (d && (!due || d < due)) due = d;
    if (!due) {
        uv_timer_stop(&timer_);
        return;
    }
    const std::uint64_t now = uv_now(server_.loop());
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<SmtpSession*>(t->data)->on_timer(); }, due > now ? due - now : 0, 0);
}

// Whatever is due: the reverse lookup gives up, a delayed step runs, the
// idle client is told goodbye. Each may close the session, whose handles
// then close after this returns.
void SmtpSession::on_timer() {
    const std::uint64_t now = uv_now(server_.loop());
    if (rdns_due_ && rdns_due_ <= now) {
        rdns_due_ = 0;
        log::info(log::Line(id_ + " smtp rdns-timeout").kv("address", client_ip_));
        take_rdns();
        rdns_resolved();
    }
    if (delay_due_ && delay_due_ <= now && state_ != State::Closing) {
        delay_due_ = 0;
        auto fn = std::move(delayed_);
        fn();
    }
    if (idle_due_ && idle_due_ <= now && state_ != State::Closing && proxy_pending_) {
        idle_due_ = 0;
        proxy_refused("no PROXY header in time");  // nothing said before it, not even goodbye
    }
    // A handshake not done in time, or a goodbye the client does not read:
    // nothing more can be said, the connection is closed.
    if (idle_due_ && idle_due_ <= now && (state_ == State::Closing || writes_pending_ > 0 || (tls_ && !tls_active_))) {
        idle_due_ = 0;
        const char* reason = state_ == State::Closing ? "timeout-closing"
                             : writes_pending_ > 0    ? "timeout-not-reading"
                                                      : "tls-timeout";
        if (state_ != State::Closing) log::info(log::Line(id_ + " smtp disconnected").kv("reason", reason));
        if (state_ != State::Closing) filter_report(filter::Timeout{});
        close();
    }
    if (idle_due_ && idle_due_ <= now && state_ != State::Closing) {
        idle_due_ = 0;
        log::info(log::Line(id_ + " smtp disconnected").kv("reason", "timeout"));
        filter_report(filter::Timeout{});
        reply(421, "4.4.2 " + hostname() + " Timeout exceeded, closing connection");
        close_after_flush();
        flush();
        if (writes_pending_ > 0) close();  // the goodbye cannot go out: the client does not read
    }
    arm_timer();
}

bool SmtpSession::error_limit_reached() {
    if (errors_ < kMaxErrors) return false;
    reply(421, "4.7.0 " + hostname() + " Too many errors, closing connection");
    log::info(log::Line(id_ + " smtp disconnected").kv("reason", "too-many-errors"));
    close_after_flush();
    return true;
}

// ---- commands ----

void SmtpSession::handle_line(std::string_view line) {
    smtp::Command c = smtp::parse_command(line);
    if (log::verbose())  // -v: the dialogue, secrets left out
        log::debug(log::Line(id_ + " smtp command")
                       .kv("line", c.verb == smtp::Verb::Auth ? std::string(c.name) + " ..." : std::string(line)));
    if (chain_) {
        if (chain_->wants(filter::Event::ProtocolClient)) filter_report(filter::ProtocolClient{client_line(c, line)});
        if (filter_gate(c, line)) return;
    }
    dispatch(c);
}

void SmtpSession::dispatch(const smtp::Command& c) {
    auto no_args = [&](std::string_view verb) {
        if (c.args.empty()) return true;
        reply(501, "5.5.4 Syntax error: " + std::string(verb) + " takes no arguments");
        return false;
    };
    const bool idle = c.verb == smtp::Verb::Noop || c.verb == smtp::Verb::Vrfy || c.verb == smtp::Verb::Help ||
                      c.verb == smtp::Verb::Helo || c.verb == smtp::Verb::Ehlo ||
                      (c.verb == smtp::Verb::Rset && state_ != State::Mail);
    if (idle && ++idle_commands_ > kMaxIdleCommands) ++errors_;
    switch (c.verb) {
    case smtp::Verb::Helo: cmd_helo(c, false); break;
    case smtp::Verb::Ehlo: cmd_helo(c, true); break;
    case smtp::Verb::Mail: cmd_mail(c); break;
    case smtp::Verb::Rcpt: cmd_rcpt(c); break;
    case smtp::Verb::Data: cmd_data(c); break;
    case smtp::Verb::Rset: cmd_rset(c); break;
    case smtp::Verb::Noop: reply(250, "2.0.0 Ok"); break;
    case smtp::Verb::Quit:
        if (!no_args("QUIT")) break;
        reply(221, "2.0.0 Bye");
        log::info(log::Line(id_ + " smtp disconnected").kv("reason", "quit"));
        close_after_flush();
        break;
    case smtp::Verb::Vrfy:
        // RFC 5321 4.1.1.6: VRFY names whom to verify; without a name there
        // is nothing to promise delivery to.
        if (c.args.empty()) reply(501, "5.5.4 Syntax error: VRFY requires a user name or address");
        else reply(252, "2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case smtp::Verb::Help:
        reply(214, "2.0.0 See RFC 5321; commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
        break;
    case smtp::Verb::Auth: cmd_auth(c); break;
    case smtp::Verb::Starttls: cmd_starttls(c); break;
    case smtp::Verb::Expn:
    case smtp::Verb::Bdat: reply(502, "5.5.1 Command not implemented"); break;
    case smtp::Verb::Unknown: reply(500, "5.5.1 Command unrecognized"); break;
    }
    if (state_ != State::Closing) error_limit_reached();
}

void SmtpSession::cmd_helo(const smtp::Command& c, bool extended) {
    std::string_view verb = extended ? "EHLO" : "HELO";
    if (c.args.empty()) {
        reply(501, "5.5.4 Syntax error: " + std::string(verb) + " requires a domain name");
        return;
    }
    if (!smtp::valid_helo_name(c.args)) {
        reply(501, "5.5.4 Syntax error: invalid domain name");
        return;
    }
    // A new greeting is a reset (RFC 5321 4.1.4).
    filter_rollback();
    tx_ = {};
    helo_ = std::string(c.args);
    esmtp_ = extended;
    state_ = State::Ready;
    filter_report(filter::LinkIdentify{extended ? filter::IdentifyVerb::Ehlo : filter::IdentifyVerb::Helo, helo_});
    const std::string& host = hostname();
    std::string hello = host + " Hello " + helo_ + " [" + client_ip_ + "], pleased to meet you";
    if (!extended) {
        reply(250, hello);
        return;
    }
    std::vector<std::string> caps = {hello, "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING"};
    if (!listener_.no_dsn) caps.push_back("DSN");
    caps.push_back("SIZE " + std::to_string(server_.ctx().config->max_message_size));
    if (listener_.tls && !tls_) caps.push_back("STARTTLS");
    if (auth_offered()) caps.push_back("AUTH " + std::string(auth::kMechanisms));
    caps.push_back("HELP");
    reply_lines(250, caps);
}

void SmtpSession::cmd_rset(const smtp::Command& c) {
    if (!c.args.empty()) {
        reply(501, "5.5.4 Syntax error: RSET takes no arguments");
        return;
    }
    if (!tx_.msgid.empty()) filter_rollback();
    tx_ = {};
    if (state_ == State::Mail) state_ = State::Ready;
    reply(250, "2.0.0 Reset state");
}

void SmtpSession::cmd_mail(const smtp::Command& c) {
    const config::Config& cfg = *server_.ctx().config;
    if (state_ == State::Fresh) {
        reply(503, "5.5.1 Bad sequence of commands: send HELO/EHLO first");
        return;
    }
    if (state_ != State::Ready) {
        reply(503, "5.5.1 Bad sequence of commands: nested MAIL command");
        return;
    }
    if (messages_ >= cfg.max_mails) {
        reply(452, "4.5.3 Too many messages in this session");
        return;
    }
    if (listener_.tls_require && !tls_active_) {
        reply(530, "5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (listener_.auth && !authenticated_) {
        reply(530, "5.7.0 Authentication required");
        return;
    }
    smtp::PathError err;
    auto path = smtp::parse_mail_from(c.args, &err);
    if (!path) {
        reply(501, err.text);
        return;
    }
    if (!path->params.empty() && !esmtp_) {
        reply(501, "5.5.4 Syntax error: parameters need EHLO");
        return;
    }
    smtp::DsnMail dsn;
    for (const auto& p : path->params) {
        if (p.key == "SIZE" && p.has_value && !p.value.empty() && p.value.size() <= 20 &&
            p.value.find_first_not_of("0123456789") == std::string::npos) {
            if (std::stoull(p.value) > cfg.max_message_size) {
                reply(552, "5.3.4 Message size exceeds fixed maximum message size");
                return;
            }
        } else if (p.key == "BODY" && p.has_value &&
                   (table::lowercase(p.value) == "7bit" || table::lowercase(p.value) == "8bitmime")) {
            // Both are stored as they come: we never convert.
        } else if ((p.key == "RET" || p.key == "ENVID") && !listener_.no_dsn) {
            smtp::DsnError derr;
            if (!smtp::apply_mail_param(p.key, p.value, &dsn, &derr)) {
                reply(derr.code, derr.text);
                return;
            }
        } else {
            reply(555, "5.5.4 Unsupported parameter " + p.key);
            return;
        }
    }
    if (!path->mailbox.empty() && path->mailbox.domain.empty()) path->mailbox.domain = server_.ctx().hostname;
    if (authenticated_ && !listener_.senders_table.empty()) return check_sender(path->mailbox.str(), dsn);
    mail_accepted(path->mailbox.str(), dsn);
}

// Random, and not the id of a queued message: with a large queue a random
// draw clashes now and then (one in 43,000 with 100,000 messages queued),
// and the commit would refuse it with a 451.
std::string SmtpSession::fresh_message_id() const {
    queue::Store* store = server_.ctx().store;
    std::string id = queue::new_message_id();
    for (int tries = 1; store && tries < 8 && !store->message_id_free(id); ++tries) id = queue::new_message_id();
    return id;
}

void SmtpSession::mail_accepted(std::string sender, smtp::DsnMail dsn) {
    tx_ = {};
    tx_.msgid = fresh_message_id();
    tx_.junk = junk_ || junk_next_;
    junk_next_ = false;
    tx_.sender = std::move(sender);
    tx_.dsn = std::move(dsn);
    state_ = State::Mail;
    reply(250, "2.1.0 Ok");
    if (chain_) {
        const auto msgid = static_cast<std::uint32_t>(std::stoul(tx_.msgid, nullptr, 16));
        filter_report(filter::TxBegin{msgid});
        filter_report(filter::TxMail{msgid, filter::TxResult::Ok, tx_.sender});
    }
}

void SmtpSession::cmd_rcpt(const smtp::Command& c) {
    const SmtpContext& ctx = server_.ctx();
    if (state_ != State::Mail) {
        reply(503, "5.5.1 Bad sequence of commands: send MAIL first");
        return;
    }
    if (tx_.rcpts.size() >= ctx.config->max_rcpt) {
        reply(452, "4.5.3 Too many recipients");
        return;
    }
    smtp::PathError err;
    auto path = smtp::parse_rcpt_to(c.args, &err);
    if (!path) {
        reply(501, err.text);
        return;
    }
    smtp::DsnRcpt dsn;
    for (const auto& p : path->params) {
        smtp::DsnError derr;
        if ((p.key != "NOTIFY" && p.key != "ORCPT") || listener_.no_dsn) {
            reply(555, "5.5.4 Unsupported parameter " + p.key);
            return;
        }
        if (!smtp::apply_rcpt_param(p.key, p.value, &dsn, &derr)) {
            reply(derr.code, derr.text);
            return;
        }
    }
    if (path->mailbox.domain.empty()) path->mailbox.domain = ctx.hostname;

    struct Work {
        rules::Subject subject;
        std::string local;
        rules::Resolution resolution;
    };
    auto work = std::make_shared<Work>();
    work->subject = subject();
    work->subject.rcpt = path->mailbox.str();
    work->subject.rcpt_domain = path->mailbox.domain;
    work->local = path->mailbox.local;

    busy_ = true;
    // Rules may look at the client's name: wait for the reverse lookup first.
    when_rdns_known([this, work, dsn] {
        work->subject.rdns = rdns_;
        work->subject.fcrdns = fcrdns_;
        const SmtpContext& ctx = server_.ctx();
        event::run_blocking(
            server_.loop(),
            [work, config = ctx.config, rules = ctx.rules, tables = ctx.tables, forward = ctx.forward] {
                work->resolution = rules::resolve_recipient(*config, *rules, *tables, work->subject, work->local, 10,
                                                            forward);
            },
            [weak = weak_from_this(), work, dsn] {
                auto self = weak.lock();
                if (!self || self->state_ == State::Closing) return;
                self->busy_ = false;
                self->rcpt_resolved(work->subject.rcpt, dsn, std::move(work->resolution));
                self->error_limit_reached();
                self->process();
                self->flush();
                self->update_reading();
            });
    });
}

void SmtpSession::rcpt_resolved(const std::string& rcpt, const smtp::DsnRcpt& dsn, rules::Resolution r) {
    for (const auto& w : r.warnings)
        log::warn(log::Line(id_ + " smtp expand-warning").kv("rcpt", rcpt).kv("detail", w));
    if (!r.accepted()) {
        meters::recipient_refused(r.code);
        log::info(log::Line(id_ + " smtp failed-rcpt")
                      .kv("rcpt", rcpt)
                      .kv("result", std::to_string(r.code) + " " + r.text)
                      .kv("detail", r.log));
        reply(r.code, r.text);
        filter_tx_result(true, r.code, rcpt);
        return;
    }
    bool dup = std::any_of(tx_.rcpts.begin(), tx_.rcpts.end(), [&](const Recipient& x) { return x.rcpt == rcpt; });
    if (!dup) tx_.rcpts.push_back({rcpt, dsn, std::move(r.deliveries)});
    reply(250, "2.1.5 Destination address valid: Recipient ok");
    filter_tx_result(true, 250, rcpt);
}

}  // namespace postern::smtpd
