// plugins/relay/session.cpp — see session.hpp.
#include "session.hpp"

#include "postern/support/smtp_data.hpp"

namespace postern::relay_plugin {

namespace {

using Scheme = relay::RelayUrl::Scheme;

constexpr int kQuitTimeout = 5;  // seconds: a polite close must not hold the agent

std::string reply_text(const relay::Reply& r) { return std::to_string(r.code) + " " + r.text(); }

int status_for(int code) { return code >= 500 ? POSTERN_PERMFAIL : POSTERN_TEMPFAIL; }

// Envelope addresses go on a command line: no control characters, no '<' '>'.
bool valid_address(std::string_view a) {
    if (a.size() > 512) return false;
    for (char c : a)
        if (static_cast<unsigned char>(c) < ' ' || c == 0x7f || c == '<' || c == '>') return false;
    return true;
}

// An address literal is checked as an IP and sent without SNI (RFC 6066 3).
TlsPolicy tls_policy(const Settings& s, const relay::RelayUrl& url, bool verify) {
    bool ip = url.ipv6_literal || url.host.find_first_not_of("0123456789.") == std::string::npos;
    return TlsPolicy{verify, s.ca_file, url.host, ip, s.cert_pem, s.key_pem, s.ciphers, s.min_version, s.max_version};
}

// ESMTP parameters from the daemon: printable ASCII words, nothing that could
// end the command line early.
bool valid_params(std::string_view p) {
    if (p.size() > 1024) return false;
    for (char c : p)
        if (c < ' ' || c > '~') return false;
    return true;
}

bool has_8bit(std::string_view text) {
    for (unsigned char c : text)
        if (c >= 0x80) return true;
    return false;
}

}  // namespace

Failure Session::fail(int status, const std::string& why, std::string_view enhanced) const {
    Failure f(status,
              tag_ + ": " + conn_->label() + ": " + (enhanced.empty() ? "" : std::string(enhanced) + " ") + why);
    f.enhanced = enhanced;
    f.host = conn_->host();
    f.addr = conn_->address();
    return f;
}

Failure Session::replied(int status, const relay::Reply& r, const std::string& after_label) const {
    // A peer's long reply is cut in the text, which is for the log.
    Failure f(status, tag_ + ": " + conn_->label() + after_label + ": " + reply_text(r).substr(0, 512));
    f.host = conn_->host();
    f.addr = conn_->address();
    f.code = r.code;
    f.reply = r.text();
    // The reply's own code when it agrees with the outcome (Reply keeps only
    // one of the reply code's class).
    int want = status == POSTERN_OK ? 2 : status == POSTERN_TEMPFAIL ? 4 : 5;
    if (!r.enhanced.empty() && r.enhanced[0] - '0' == want) f.enhanced = r.enhanced;
    return f;
}

bool Session::expect(const relay::Reply& r, int want, Failure* f) {
    if (r.code / 100 == want) return true;
    if (r.code / 100 >= 4) *f = replied(status_for(r.code), r);
    else *f = fail(POSTERN_TEMPFAIL, "unexpected reply: " + reply_text(r));
    return false;
}

Session::Result Session::command(std::string_view line, std::string_view what, relay::Reply* r, Failure* f) {
    std::string error;
    std::string out(line);
    out += "\r\n";
    if (!conn_->send(out, &error) || !conn_->read_reply(r, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (after " + std::string(what) + ")");
        return Result::Broken;
    }
    return Result::Ok;
}

std::unique_ptr<Session> Session::open(const Settings& s, const relay::RelayUrl& target,
                                       const std::vector<Address>* addresses, Failure* f) {
    std::string error;
    auto conn = addresses ? Connection::open(target.host, *addresses, s.src, s.timeout, &error)
                          : Connection::open(target.host, target.port, s.src, s.timeout, &error);
    if (!conn) {
        *f = {POSTERN_TEMPFAIL, s.tag + ": " + error};
        return nullptr;
    }
    return start(s, std::move(conn), target, f);
}

std::unique_ptr<Session> Session::start(const Settings& s, std::unique_ptr<Connection> conn,
                                        const relay::RelayUrl& target, Failure* f) {
    auto session = std::make_unique<Session>(Key{}, std::move(conn), target, s.tag);
    if (!session->greet(s, f)) return nullptr;
    return session;
}

bool Session::greet(const Settings& s, Failure* f) {
    std::string error;
    if (url_.scheme == Scheme::Smtps && !conn_->start_tls(tls_policy(s, url_, s.verify), &error)) {
        *f = fail(POSTERN_TEMPFAIL, error);
        return false;
    }
    relay::Reply r;
    if (!conn_->read_reply(&r, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (greeting)");
        return false;
    }
    if (!expect(r, 2, f) || !hello(s, f)) return false;
    bool offered = ext_.count("STARTTLS") > 0;
    if (url_.scheme == Scheme::SmtpTls && !offered) {
        *f = fail(POSTERN_TEMPFAIL, "STARTTLS not offered");
        return false;
    }
    bool want_tls = url_.scheme == Scheme::SmtpTls ||
                    ((url_.scheme == Scheme::Smtp || url_.scheme == Scheme::Lmtp) && offered && s.opportunistic_tls);
    // Opportunistic TLS (plain smtp://) only encrypts: there is no name to trust.
    if (want_tls && !starttls(s, url_.scheme == Scheme::SmtpTls && s.verify, f)) return false;
    return !s.auth.count(url_.label) || authenticate(s, f);
}

bool Session::hello(const Settings& s, Failure* f) {
    relay::Reply r;
    // LMTP (RFC 2033) greets with LHLO and has no HELO to fall back to. One
    // recipient per transaction makes its one reply per recipient after the
    // message the same single reply as SMTP's.
    bool lmtp = url_.scheme == Scheme::Lmtp;
    if (command((lmtp ? "LHLO " : "EHLO ") + s.helo, lmtp ? "LHLO" : "EHLO", &r, f) != Result::Ok) return false;
    if (r.code / 100 == 5 && !lmtp) {
        ext_.clear();
        if (command("HELO " + s.helo, "HELO", &r, f) != Result::Ok) return false;
        return expect(r, 2, f);
    }
    if (!expect(r, 2, f)) return false;
    ext_ = relay::ehlo_extensions(r);
    return true;
}

// Never falls back to plaintext: once STARTTLS was tried, a failure ends the attempt.
bool Session::starttls(const Settings& s, bool verify, Failure* f) {
    relay::Reply r;
    if (command("STARTTLS", "STARTTLS", &r, f) != Result::Ok) return false;
    if (r.code != 220) {
        *f = fail(POSTERN_TEMPFAIL, "STARTTLS refused: " + reply_text(r));
        return false;
    }
    // Bytes sent before the handshake would be read as if they came over TLS
    // (the STARTTLS injection attacks): refuse such a server.
    if (conn_->has_pending_input()) {
        *f = fail(POSTERN_TEMPFAIL, "data after the reply to STARTTLS");
        return false;
    }
    std::string error;
    if (!conn_->start_tls(tls_policy(s, url_, verify), &error)) {
        *f = fail(POSTERN_TEMPFAIL, error);
        return false;
    }
    return hello(s, f);  // RFC 3207: forget what was learnt before TLS
}

bool Session::authenticate(const Settings& s, Failure* f) {
    auto it = ext_.find("AUTH");
    if (!conn_->tls()) {
        *f = fail(POSTERN_PERMFAIL, "config error: auth needs TLS");
        return false;
    }
    if (it == ext_.end() || (" " + it->second + " ").find(" PLAIN ") == std::string::npos) {
        *f = fail(POSTERN_TEMPFAIL, "AUTH PLAIN not offered");
        return false;
    }
    relay::Reply r;
    if (command("AUTH PLAIN " + s.auth.at(url_.label), "AUTH", &r, f) != Result::Ok) return false;
    if (r.code / 100 == 2) return true;
    // A refused login is a site configuration problem: keep the mail queued
    // while it is fixed rather than bouncing everything.
    *f = fail(POSTERN_TEMPFAIL, "authentication failed: " + reply_text(r));
    return false;
}

Session::Result Session::reset(Failure* f) {
    relay::Reply r;
    Result res = command("RSET", "RSET", &r, f);
    if (res != Result::Ok) return res;
    if (r.code == 421) {
        expect(r, 2, f);
        return Result::Broken;
    }
    return expect(r, 2, f) ? Result::Ok : Result::Failed;
}

Session::Result Session::envelope(const std::string& mail, const std::vector<Recipient*>& rcpts, bool dsn,
                                  size_t* accepted, Failure* f) {
    std::vector<std::string> lines = {mail};
    for (const Recipient* rc : rcpts)
        lines.push_back("RCPT TO:<" + std::string(rc->dest) + ">" +
                        (dsn && !rc->rcpt_params.empty() ? " " + std::string(rc->rcpt_params) : ""));
    lines.push_back("DATA");
    const bool pipelined = ext_.count("PIPELINING") > 0;
    std::string error;
    if (pipelined) {
        // RFC 2920: every command in one write, then their replies in order.
        std::string batch;
        for (const auto& line : lines) batch += line + "\r\n";
        if (!conn_->send(batch, &error)) {
            *f = fail(POSTERN_TEMPFAIL, error + " (after MAIL FROM)");
            return Result::Broken;
        }
    }
    *accepted = 0;
    bool mail_ok = false;
    relay::Reply r;
    for (size_t i = 0; i < lines.size(); ++i) {
        bool is_mail = i == 0, is_data = i + 1 == lines.size();
        const char* what = is_mail ? "MAIL FROM" : is_data ? "DATA" : "RCPT TO";
        // Without pipelining, stop at the first reply that ends the transaction.
        if (!pipelined && ((is_data && *accepted == 0) || (!is_mail && !mail_ok))) break;
        if (!pipelined) {
            Result res = command(lines[i], what, &r, f);
            if (res != Result::Ok) return res;
        } else if (!conn_->read_reply(&r, &error)) {
            *f = fail(POSTERN_TEMPFAIL, error + " (after " + std::string(what) + ")");
            return Result::Broken;
        }
        if (r.code == 421) return expect(r, 2, f), Result::Broken;
        if (is_mail) {
            mail_ok = expect(r, 2, f);
        } else if (!is_data) {
            Recipient* rc = rcpts[i - 1];
            if (mail_ok && expect(r, 2, &rc->outcome)) {
                rc->accepted = true;  // a refusal is its outcome
                ++*accepted;
            }
        } else if (mail_ok && *accepted > 0) {
            if (expect(r, 3, f)) return Result::Ok;
        }
    }
    if (pipelined && r.code == 354) {
        // A server that took DATA after refusing MAIL or every RCPT: end it empty; its answer does not matter.
        if (!conn_->send(".\r\n", &error) || !conn_->read_reply(&r, &error)) return Result::Broken;
    }
    if (mail_ok && *accepted == 0) *f = fail(POSTERN_PERMFAIL, "no recipient accepted");
    return Result::Failed;
}

// The recipients this server cannot take as they are get their own outcome
// now; the others go to the transaction.
std::vector<Session::Recipient*> Session::sendable(std::vector<Recipient>* rcpts) {
    std::vector<Recipient*> out;
    for (Recipient& rc : *rcpts) {
        rc.outcome = {POSTERN_TEMPFAIL, ""};  // "" = not decided yet
        rc.accepted = false;
        if (!valid_address(rc.dest) || rc.dest.empty())
            rc.outcome = {POSTERN_PERMFAIL, tag_ + ": invalid envelope address"};
        else if (has_8bit(rc.dest) && !ext_.count("SMTPUTF8"))
            rc.outcome = fail(POSTERN_PERMFAIL, "the server does not offer SMTPUTF8 for a non-ASCII address", "5.6.7");
        else out.push_back(&rc);
    }
    return out;
}

Session::Result Session::transaction(std::string_view sender, std::string_view message, std::string_view mail_params,
                                     std::vector<Recipient>* rcpts, Failure* f) {
    std::vector<Recipient*> to = sendable(rcpts);
    if (to.empty()) {
        *f = {POSTERN_PERMFAIL, tag_ + ": no recipient this server can take"};
        return Result::Failed;
    }
    if (!valid_address(sender)) {
        *f = {POSTERN_PERMFAIL, tag_ + ": invalid envelope address"};
        return Result::Failed;
    }
    std::string mail = "MAIL FROM:<" + std::string(sender) + ">";
    bool utf8 = has_8bit(sender);
    for (const Recipient* rc : to) utf8 = utf8 || has_8bit(rc->dest);
    if (utf8) {
        if (!ext_.count("SMTPUTF8")) {
            *f = fail(POSTERN_PERMFAIL, "the server does not offer SMTPUTF8 for a non-ASCII address", "5.6.7");
            return Result::Failed;
        }
        mail += " SMTPUTF8";
    }
    if (has_8bit(message)) {
        if (!ext_.count("8BITMIME")) {
            *f = fail(POSTERN_PERMFAIL, "the server does not offer 8BITMIME for an 8-bit message", "5.6.3");
            return Result::Failed;
        }
        mail += " BODY=8BITMIME";
    }
    std::string data = smtp::encode_data(message);
    if (ext_.count("SIZE")) mail += " SIZE=" + std::to_string(data.size());
    // DSN parameters are ours to pass on only to a server that knows them.
    bool dsn = ext_.count("DSN") && valid_params(mail_params);
    for (const Recipient* rc : to) dsn = dsn && valid_params(rc->rcpt_params);
    if (dsn && !mail_params.empty()) mail += " " + std::string(mail_params);
    size_t accepted = 0;
    Result res = envelope(mail, to, dsn, &accepted, f);
    if (res != Result::Ok) return res;
    std::string error;
    if (!conn_->send(data, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (after the message)");
        return Result::Lost;
    }
    // SMTP answers the message once; LMTP (RFC 2033 4.2) once per accepted
    // recipient, in RCPT order.
    bool lmtp = url_.scheme == Scheme::Lmtp;
    relay::Reply r;
    bool have_reply = false;
    std::string tls = conn_->tls_description();
    for (Recipient* rc : to) {
        if (!rc->accepted) continue;
        if (!have_reply || lmtp) {
            if (!conn_->read_reply(&r, &error)) {
                *f = fail(POSTERN_TEMPFAIL, error + " (after the message)");
                return Result::Lost;  // the rest stay undecided: temporary, maybe delivered
            }
            have_reply = true;
        }
        if (!expect(r, 2, &rc->outcome)) continue;
        // Where it went and what the server said, for the log and for a
        // "delivered" report; the next server reports now if it took NOTIFY.
        rc->outcome = replied(POSTERN_OK, r, tls.empty() ? "" : " " + tls);
        rc->outcome.dsn_handed_on = dsn && !rc->rcpt_params.empty();
    }
    return r.code == 421 ? Result::Broken : Result::Ok;
}

void Session::quit() {
    conn_->set_timeout(kQuitTimeout);
    relay::Reply r;
    Failure ignored;
    command("QUIT", "QUIT", &r, &ignored);
}

}  // namespace postern::relay_plugin
