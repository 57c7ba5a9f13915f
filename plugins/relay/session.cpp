// plugins/relay/session.cpp — see session.hpp.
#include "session.hpp"

#include <openssl/evp.h>

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

std::string base64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

// An address literal is checked as an IP and sent without SNI (RFC 6066 3).
TlsPolicy tls_policy(const Settings& s, bool verify) {
    bool ip = s.url.ipv6_literal || s.url.host.find_first_not_of("0123456789.") == std::string::npos;
    return TlsPolicy{verify, s.ca_file, s.url.host, ip};
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

std::unique_ptr<Session> Session::open(const Settings& s, Failure* f) {
    std::string error;
    auto conn = Connection::open(s.url.host, s.url.port, s.timeout, &error);
    if (!conn) {
        *f = {POSTERN_TEMPFAIL, "relay: " + error};
        return nullptr;
    }
    auto session = std::make_unique<Session>(Key{}, std::move(conn));
    if (!session->greet(s, f)) return nullptr;
    return session;
}

bool Session::greet(const Settings& s, Failure* f) {
    std::string error;
    if (s.url.scheme == Scheme::Smtps && !conn_->start_tls(tls_policy(s, s.verify), &error)) {
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
    if (s.url.scheme == Scheme::SmtpTls && !offered) {
        *f = fail(POSTERN_TEMPFAIL, "STARTTLS not offered");
        return false;
    }
    bool want_tls = s.url.scheme == Scheme::SmtpTls || (s.url.scheme == Scheme::Smtp && offered);
    // Opportunistic TLS (plain smtp://) only encrypts: there is no name to trust.
    if (want_tls && !starttls(s, s.url.scheme == Scheme::SmtpTls && s.verify, f)) return false;
    return !s.has_auth || authenticate(s, f);
}

bool Session::hello(const Settings& s, Failure* f) {
    relay::Reply r;
    if (command("EHLO " + s.helo, "EHLO", &r, f) != Result::Ok) return false;
    if (r.code / 100 == 5) {
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
    if (!conn_->start_tls(tls_policy(s, verify), &error)) {
        *f = fail(POSTERN_TEMPFAIL, error);
        return false;
    }
    return hello(s, f);  // RFC 3207: forget what was learnt before TLS
}

bool Session::authenticate(const Settings& s, Failure* f) {
    auto it = ext_.find("AUTH");
    if (!conn_->tls()) {
        *f = fail(POSTERN_PERMFAIL, "config error: auth= needs TLS");
        return false;
    }
    if (it == ext_.end() || (" " + it->second + " ").find(" PLAIN ") == std::string::npos) {
        *f = fail(POSTERN_TEMPFAIL, "AUTH PLAIN not offered");
        return false;
    }
    std::string token;
    token.push_back('\0');
    token += s.auth_user;
    token.push_back('\0');
    token += s.auth_password;
    relay::Reply r;
    if (command("AUTH PLAIN " + base64(token), "AUTH", &r, f) != Result::Ok) return false;
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

Session::Result Session::transaction(std::string_view sender, std::string_view dest, std::string_view message,
                                     Failure* f) {
    if (!valid_address(sender) || !valid_address(dest) || dest.empty()) {
        *f = {POSTERN_PERMFAIL, "relay: invalid envelope address"};
        return Result::Failed;
    }
    std::string data = smtp::encode_data(message);
    std::string mail = "MAIL FROM:<" + std::string(sender) + ">";
    if (ext_.count("SIZE")) mail += " SIZE=" + std::to_string(data.size());
    relay::Reply r;
    struct Step {
        std::string line;
        const char* what;
        int want;
    };
    const Step steps[] = {{mail, "MAIL FROM", 2}, {"RCPT TO:<" + std::string(dest) + ">", "RCPT TO", 2}, {"DATA", "DATA", 3}};
    for (const Step& step : steps) {
        Result res = command(step.line, step.what, &r, f);
        if (res != Result::Ok) return res;
        if (!expect(r, step.want, f)) return r.code == 421 ? Result::Broken : Result::Failed;
    }
    std::string error;
    if (!conn_->send(data, &error) || !conn_->read_reply(&r, &error)) {
        *f = fail(POSTERN_TEMPFAIL, error + " (after the message)");
        return Result::Lost;
    }
    if (!expect(r, 2, f)) return r.code == 421 ? Result::Broken : Result::Failed;
    return Result::Ok;
}

void Session::quit() {
    conn_->set_timeout(kQuitTimeout);
    relay::Reply r;
    Failure ignored;
    command("QUIT", "QUIT", &r, &ignored);
}

}  // namespace postern::relay_plugin
