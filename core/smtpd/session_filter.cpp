// The filters of a session (issue 11): opening the listener's chain, the
// connect phase, the gate each command passes before it runs, the report
// events, and the message's way through the filters' data lines; see
// session.hpp and filterhost/session_chain.hpp.
#include "queue/envelope.hpp"
#include "rules/builtin_filter.hpp"
#include "smtpd/meters.hpp"
#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

std::uint32_t msgid_number(const std::string& msgid) {
    return msgid.empty() ? 0 : static_cast<std::uint32_t>(std::stoul(msgid, nullptr, 16));
}

std::string address_text(const std::string& ip, int port) {
    return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

}  // namespace

// A listener whose filter is down refuses its sessions, so that no mail is
// taken unfiltered (unless its proc says `on-failure pass`).
bool SmtpSession::open_filters() {
    filterhost::Host* host = server_.ctx().filters;
    if (!host || !host->filtered(listener_)) return true;
    std::string why;
    chain_ = host->open(listener_, sid_, *this, &why);
    if (chain_) return true;
    meters::session_refused("filter-unavailable");
    log::warn(log::Line(id_ + " smtp disconnected").kv("reason", "filter-unavailable").kv("error", why));
    reply(421, "4.3.0 " + hostname() + " Mail filter unavailable, try again later");
    close_after_flush();
    flush();
    return false;
}

void SmtpSession::filter_connect(std::function<void()> then) {
    if (!chain_) return then();
    busy_ = true;
    when_rdns_known([this, then = std::move(then)] {
        if (state_ == State::Closing || !chain_) return;
        const std::string rdns = rdns_.empty() ? "<unknown>" : rdns_;
        // The local socket's ends are its path, as OpenSMTPD shows them.
        const std::string unix_path = "unix:" + server_.ctx().local_socket;
        filter_report(filter::LinkConnect{rdns, fcrdns_ ? filter::FcrdnsResult::Pass : filter::FcrdnsResult::Fail,
                                          listener_.socket ? unix_path : address_text(client_ip_, client_port_),
                                          listener_.socket ? unix_path : address_text(local_ip_, local_port_)});
        if (!chain_->wants(filter::Phase::Connect)) {
            busy_ = false;
            return then();
        }
        const std::string src = client_ip_.find(':') != std::string::npos ? "[" + client_ip_ + "]" : client_ip_;
        chain_->request(filter::Phase::Connect, rdns + "|" + src, [this, then](filterhost::Verdict v) {
            busy_ = false;
            using K = filterhost::Verdict::Kind;
            if (v.kind == K::Reject || v.kind == K::Disconnect) {
                log::info(log::Line(id_ + " smtp disconnected")
                              .kv("reason", "filter")
                              .kv("filter", v.filter)
                              .kv("result", std::to_string(v.code) + " " + v.text));
                reply(v.code, v.text);
                close_after_flush();
                flush();
                return;
            }
            if (v.kind == K::Junk) junk_ = true;
            then();
        });
    });
}

// The filter phase a command asks for, with its parameter, when the command
// would run (a command refused for its syntax or out of sequence is
// answered without asking the filters, as OpenSMTPD does).
bool SmtpSession::filter_gate(const smtp::Command& c, std::string_view line) {
    std::optional<filter::Phase> phase;
    std::string param;
    switch (c.verb) {
    case smtp::Verb::Helo:
    case smtp::Verb::Ehlo:
        if (c.args.empty() || !smtp::valid_helo_name(c.args)) break;
        phase = c.verb == smtp::Verb::Helo ? filter::Phase::Helo : filter::Phase::Ehlo;
        param = std::string(c.args);
        break;
    case smtp::Verb::Mail: {
        smtp::PathError err;
        auto path = state_ == State::Ready ? smtp::parse_mail_from(c.args, &err) : std::nullopt;
        if (!path) break;
        phase = filter::Phase::MailFrom;
        param = path->mailbox.str();
        break;
    }
    case smtp::Verb::Rcpt: {
        smtp::PathError err;
        auto path = state_ == State::Mail ? smtp::parse_rcpt_to(c.args, &err) : std::nullopt;
        if (!path) break;
        phase = filter::Phase::RcptTo;
        param = path->mailbox.str();
        break;
    }
    case smtp::Verb::Data:
        if (c.args.empty() && state_ == State::Mail && !tx_.rcpts.empty()) phase = filter::Phase::Data;
        break;
    case smtp::Verb::Rset:
        if (c.args.empty()) phase = filter::Phase::Rset;
        break;
    case smtp::Verb::Quit:
        if (c.args.empty()) phase = filter::Phase::Quit;
        break;
    case smtp::Verb::Noop: phase = filter::Phase::Noop; break;
    case smtp::Verb::Starttls:
        if (c.args.empty() && listener_.tls && !tls_) phase = filter::Phase::Starttls;
        break;
    case smtp::Verb::Auth:
        if (auth_offered() && !authenticated_ && state_ == State::Ready) {
            phase = filter::Phase::Auth;
            param = std::string(c.args);
        }
        break;
    default: break;
    }
    if (!phase || !chain_->wants(*phase)) return false;
    busy_ = true;
    chain_->request(*phase, param,
                    [weak = weak_from_this(), p = *phase, l = std::string(line), param](filterhost::Verdict v) {
                        auto self = weak.lock();
                        if (!self || self->state_ == State::Closing) return;
                        self->busy_ = false;
                        self->filter_verdict(p, l, param, std::move(v));
                        if (self->state_ != State::Closing) self->error_limit_reached();
                        self->process();
                        self->flush();
                        self->update_reading();
                    });
    return true;
}

// What the filters decided about one command line.
void SmtpSession::filter_verdict(filter::Phase phase, std::string line, const std::string& param,
                                 filterhost::Verdict v) {
    using K = filterhost::Verdict::Kind;
    switch (v.kind) {
    case K::Reject:
    case K::Disconnect:
        log::info(log::Line(id_ + " smtp filter-" + (v.kind == K::Reject ? "reject" : "disconnect"))
                      .kv("filter", v.filter)
                      .kv("phase", filter::phase_name(phase))
                      .kv("result", std::to_string(v.code) + " " + v.text));
        reply(v.code, v.text);
        if (phase == filter::Phase::MailFrom || phase == filter::Phase::RcptTo)
            filter_tx_result(phase == filter::Phase::RcptTo, v.code, param);
        if (v.kind == K::Disconnect) close_after_flush();
        return;
    case K::Junk:
        // Before MAIL: the whole session; at MAIL: the transaction it opens; later: this one.
        if (phase == filter::Phase::MailFrom) junk_next_ = true;
        else if (tx_.msgid.empty()) junk_ = true;
        else tx_.junk = true;
        break;
    case K::Rewrite: {
        // The value replaces the command's argument and is checked as the
        // client's own would be: for MAIL and RCPT a whole <path>.
        std::string verb = line.substr(0, line.find(' '));  // owned: a view of substr()'s result dangles
        switch (phase) {
        case filter::Phase::MailFrom: line = "MAIL FROM:" + v.text; break;
        case filter::Phase::RcptTo: line = "RCPT TO:" + v.text; break;
        case filter::Phase::Helo:
        case filter::Phase::Ehlo:
        case filter::Phase::Auth: line = std::string(verb) + " " + v.text; break;
        default: break;
        }
        log::info(
            log::Line(id_ + " smtp filter-rewrite").kv("filter", v.filter).kv("phase", filter::phase_name(phase)));
        break;
    }
    case K::Proceed: break;
    }
    dispatch(smtp::parse_command(line));
}

void SmtpSession::filter_tx_result(bool rcpt, int code, const std::string& address) {
    if (!chain_ || tx_.msgid.empty()) return;
    const auto result = code < 300   ? filter::TxResult::Ok
                        : code < 500 ? filter::TxResult::Tempfail
                                     : filter::TxResult::Permfail;
    const auto id = msgid_number(tx_.msgid);
    if (rcpt) filter_report(filter::TxRcpt{id, result, address});
    else filter_report(filter::TxMail{id, result, address});
}

void SmtpSession::filter_rollback() {
    if (!chain_ || tx_.msgid.empty()) return;
    const auto id = msgid_number(tx_.msgid);
    filter_report(filter::TxRollback{id});
    filter_report(filter::TxReset{id});
}

// ---- what the data-line filters give back ----

void SmtpSession::filters_writable() { update_reading(); }

void SmtpSession::data_output(std::string_view line) {
    if (!stream_) return;
    stream_->out->append(filter::dot_unstuff(line));
    stream_->out->append("\n");
}

void SmtpSession::data_output_end() {
    if (!stream_) return;
    if (chain_ && chain_->data_refused() && !stream_->refusal_code) {
        stream_->refusal_code = 550;
        stream_->refusal = "5.6.0 Message refused: a text line too long for the mail filters";
    }
    stream_output_end(true);
}

void SmtpSession::stream_output_end(bool resume) {
    if (!stream_->refusal_code) return filter_commit();
    const int code = stream_->refusal_code;
    const std::string text = stream_->refusal;
    stream_.reset();
    busy_ = false;
    meters::message_refused(code);
    log::info(log::Line(id_ + " smtp message-refused").kv("result", std::to_string(code) + " " + text));
    filter_rollback();
    tx_ = {};
    reply(code, text);
    if (!resume) return;
    process();
    flush();
    update_reading();
}

// The commit phase (with filters that want it), then the queue.
void SmtpSession::filter_commit() {
    auto done = [this](filterhost::Verdict v) {
        std::shared_ptr<MessageBuffer> out = std::move(stream_->out);
        stream_.reset();
        busy_ = false;
        using K = filterhost::Verdict::Kind;
        if (v.kind == K::Reject || v.kind == K::Disconnect) {
            meters::message_refused(v.code);
            log::info(log::Line(id_ + " smtp message-refused")
                          .kv("filter", v.filter)
                          .kv("result", std::to_string(v.code) + " " + v.text));
            filter_rollback();
            tx_ = {};
            reply(v.code, v.text);
            if (v.kind == K::Disconnect) close_after_flush();
        } else {
            return commit_buffer(std::move(out));
        }
        process();
        flush();
        update_reading();
    };
    busy_ = true;
    if (!chain_ || !chain_->wants(filter::Phase::Commit)) return done({});
    chain_->request(filter::Phase::Commit, "", done);
}

// The filtered message to the queue, once its file (if large) is written.
void SmtpSession::commit_buffer(std::shared_ptr<MessageBuffer> out) {
    busy_ = true;
    out->finish([weak = weak_from_this(), out](bool ok, const std::string& error) {
        auto self = weak.lock();
        if (!self || self->state_ == State::Closing) return;
        if (ok) {
            const std::uint64_t file_size = out->in_file() ? out->size() : 0;
            return self->commit_message(out->take_data(), out->take_file(), file_size);
        }
        log::error(log::Line(self->id_ + " queue commit-failed").kv("error", "cannot write the message: " + error));
        self->busy_ = false;
        self->filter_rollback();
        self->tx_ = {};
        self->reply(451, "4.3.0 Temporary queue failure, try again later");
        self->process();
        self->flush();
        self->update_reading();
    });
}

// ---- filterhost::SessionEvents ----

void SmtpSession::filter_failed(const std::string& filter, const std::string& why) {
    log::warn(log::Line(id_ + " smtp filter-failed").kv("filter", filter).kv("error", why).kv("result", "tempfail"));
    stream_.reset();
    chain_.reset();  // the chain is of no use any more; nothing more to report
    shutdown(true);
}

// What the rules would see of this session now.
rules::Subject SmtpSession::subject() const {
    rules::Subject s;
    s.from_socket = listener_.socket;
    s.from_local = client_local_;
    s.client_ip = listener_.socket ? "" : client_ip_;
    s.rdns = rdns_;
    s.fcrdns = fcrdns_;
    s.helo = helo_;
    s.sender = tx_.sender;
    s.tag = listener_.tag;
    s.tls = tls_active_;  // `match tls`
    s.authenticated = authenticated_;
    // The local socket counts as authenticated (ruleset.hpp), as its user.
    s.auth_user = authenticated_ ? auth_user_ : local_user_;
    return s;
}

// A built-in filter's condition is a `match` criterion under another name
// (rules/builtin_filter.hpp), tested on a worker: a table may block.
void SmtpSession::builtin_match(const config::BuiltinFilter& f, const std::string& param,
                                std::function<void(Match)> done) {
    // The reverse name must be known for rdns conditions, as for the rules.
    when_rdns_known([this, &f, param, done = std::move(done)] {
        auto result = std::make_shared<rules::Ruleset::Verdict>(rules::Ruleset::Verdict::No);
        event::run_blocking(
            server_.loop(),
            [&f, param, result, s = subject(), rules = server_.ctx().rules] {
                std::string error;
                *result = rules::test_builtin(*rules, f, s, param, &error);
            },
            [weak = weak_from_this(), result, done] {
                auto self = weak.lock();
                if (!self || self->state_ == State::Closing) return;
                if (*result == rules::Ruleset::Verdict::TempFail) return done(Match::TempFail);
                done(*result == rules::Ruleset::Verdict::Yes ? Match::Yes : Match::No);
            });
    });
}

}  // namespace postern::smtpd
