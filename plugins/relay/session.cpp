// plugins/relay/session.cpp — see session.hpp.
#include "session.hpp"

#include "smtp/data_reader.hpp"

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

Failure Session::fail(int status, const std::string& why) const {
    return {status, "relay: " + conn_->label() + ": " + why};
}

bool Session::expect(const relay::Reply& r, int want, Failure* f) {
    if (r.code / 100 == want) return true;
    *f = fail(r.code / 100 >= 4 ? status_for(r.code) : POSTERN_TEMPFAIL,
              r.code / 100 >= 4 ? reply_text(r) : "unexpected reply: " + reply_text(r));
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
        *f = {POSTERN_TEMPFAIL, "relay: " + error};
        return nullptr;
    }
    auto session = std::make_unique<Session>(Key{}, std::move(conn), target);
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
    bool want_tls = url_.scheme == Scheme::SmtpTls || ((url_.scheme == Scheme::Smtp || url_.scheme == Scheme::Lmtp) && offered);
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

Session::Result Session::envelope(const std::string& mail, const std::string& rcpt, Failure* f) {
    struct Step {
        std::string line;
        const char* what;
        int want;
    };
    const Step steps[] = {{mail, "MAIL FROM", 2}, {rcpt, "RCPT TO", 2}, {"DATA", "DATA", 3}};
    relay::Reply r;
    std::string error;
    if (!ext_.count("PIPELINING")) {
        for (const Step& step : steps) {
            Result res = command(step.line, step.what, &r, f);
            if (res != Result::Ok) return res;
            if (!expect(r, step.want, f)) return r.code == 421 ? Result::Broken : Result::Failed;
        }
        return Result::Ok;
    }
    // RFC 2920: the three commands in one write, then their replies in order.
    std::string batch;
    for (const Step& step : steps) batch += step.line + "\r\n";
    if (!conn_->send(batch, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (after MAIL FROM)");
        return Result::Broken;
    }
    bool failed = false;
    for (const Step& step : steps) {
        if (!conn_->read_reply(&r, &error)) {
            *f = fail(POSTERN_TEMPFAIL, error + " (after " + std::string(step.what) + ")");
            return Result::Broken;
        }
        if (r.code == 421) return expect(r, 2, f), Result::Broken;
        if (failed) continue;  // the first refusal is the one to report
        failed = !expect(r, step.want, f);
    }
    if (failed && r.code == 354) {
        // A server that took DATA after refusing MAIL or RCPT: end it empty; its answer does not matter.
        if (!conn_->send(".\r\n", &error) || !conn_->read_reply(&r, &error)) return Result::Broken;
    }
    return failed ? Result::Failed : Result::Ok;
}

Session::Result Session::transaction(std::string_view sender, std::string_view dest, std::string_view message,
                                     std::string_view mail_params, std::string_view rcpt_params, std::string* done,
                                     Failure* f) {
    if (!valid_address(sender) || !valid_address(dest) || dest.empty()) {
        *f = {POSTERN_PERMFAIL, "relay: invalid envelope address"};
        return Result::Failed;
    }
    std::string mail = "MAIL FROM:<" + std::string(sender) + ">";
    if (has_8bit(sender) || has_8bit(dest)) {
        if (!ext_.count("SMTPUTF8")) {
            *f = fail(POSTERN_PERMFAIL, "5.6.7 the server does not offer SMTPUTF8 for a non-ASCII address");
            return Result::Failed;
        }
        mail += " SMTPUTF8";
    }
    if (has_8bit(message)) {
        if (!ext_.count("8BITMIME")) {
            *f = fail(POSTERN_PERMFAIL, "5.6.3 the server does not offer 8BITMIME for an 8-bit message");
            return Result::Failed;
        }
        mail += " BODY=8BITMIME";
    }
    std::string data = smtp::encode_data(message);
    if (ext_.count("SIZE")) mail += " SIZE=" + std::to_string(data.size());
    std::string rcpt = "RCPT TO:<" + std::string(dest) + ">";
    // DSN parameters are ours to pass on only to a server that knows them.
    bool dsn = ext_.count("DSN") && valid_params(mail_params) && valid_params(rcpt_params);
    if (dsn && !mail_params.empty()) mail += " " + std::string(mail_params);
    if (dsn && !rcpt_params.empty()) rcpt += " " + std::string(rcpt_params);
    Result res = envelope(mail, rcpt, f);
    if (res != Result::Ok) return res;
    relay::Reply r;
    std::string error;
    if (!conn_->send(data, &error) || !conn_->read_reply(&r, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (after the message)");
        return Result::Lost;
    }
    if (!expect(r, 2, f)) return r.code == 421 ? Result::Broken : Result::Failed;
    std::string tls = conn_->tls_description();
    *done = "relay: " + conn_->label() + (tls.empty() ? "" : " " + tls) + ": " + reply_text(r);
    if (dsn && !rcpt_params.empty()) *done += " (DSN handed on)";
    return Result::Ok;
}

void Session::quit() {
    conn_->set_timeout(kQuitTimeout);
    relay::Reply r;
    Failure ignored;
    command("QUIT", "QUIT", &r, &ignored);
}

}  // namespace postern::relay_plugin
