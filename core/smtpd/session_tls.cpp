// TLS in a session: STARTTLS (RFC 3207) and implicit TLS (smtps); see session.hpp.
//
// The TLS engine (tls/connection.hpp) sits between the socket and the
// session's buffers: what the socket reads is fed to it and the plaintext it
// gives back lands in the command buffer; replies are encrypted on the way
// out. Nothing blocks the loop: a handshake advances with each read.
//
// STARTTLS is done the safe way: whatever the client sent after the STARTTLS
// line in clear is thrown away (the CVE-2011-0411 class of command
// injection), and the session forgets its EHLO, so the client must greet
// again over TLS.
#include "smtpd/meters.hpp"
#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {

bool SmtpSession::start_tls() {
    const auto* contexts = server_.ctx().tls;
    auto it = contexts ? contexts->find(&listener_) : decltype(contexts->end()){};
    if (!contexts || it == contexts->end() || !it->second) {
        log::error(log::Line(id_ + " smtp tls-unavailable").kv("listener", listener_.on));
        reply(454, "4.7.0 TLS not available due to local problem");
        return false;
    }
    tls_ = std::make_unique<tls::Connection>(*it->second);
    // The handshake has a deadline of its own (smtp limit tls-timeout):
    // one that trickles in holds a descriptor no longer than that.
    idle_due_ = uv_now(server_.loop()) + std::uint64_t{server_.ctx().config->tls_timeout} * 1000;
    arm_timer();
    return true;
}

void SmtpSession::cmd_starttls(const smtp::Command& c) {
    if (!listener_.tls) {
        reply(502, "5.5.1 Command not implemented");
        return;
    }
    if (tls_) {
        reply(503, "5.5.1 Bad sequence of commands: TLS is already active");
        return;
    }
    if (!c.args.empty()) {
        reply(501, "5.5.4 Syntax error: STARTTLS takes no arguments");
        return;
    }
    if (state_ == State::Fresh || state_ == State::Mail) {
        reply(503, "5.5.1 Bad sequence of commands: STARTTLS needs EHLO first and no mail transaction");
        return;
    }
    reply(220, "2.0.0 Ready to start TLS");
    flush();  // in clear, before the engine takes over the socket
    if (!in_.empty())
        log::info(log::Line(id_ + " smtp starttls-discarded").kv("bytes", static_cast<long long>(in_.size())));
    in_.clear();
    if (!start_tls()) return;
    // A new start: the client greets again, over TLS (RFC 3207 4.2).
    state_ = State::Fresh;
    helo_.clear();
    esmtp_ = false;
    tx_ = {};
}

// Ciphertext from the socket. False when the session is over.
bool SmtpSession::tls_input(std::string_view ciphertext) {
    bool ok = tls_->feed(ciphertext) && tls_->read(&in_);
    if (!ok) {
        log::info(log::Line(id_ + " smtp tls-failed").kv("error", tls_->error()));
        flush();  // the alert, if there is one
        close_after_flush();
        flush();
        return false;
    }
    if (!tls_active_ && tls_->handshake_done()) {
        tls_active_ = true;
        reset_idle_timer();
        meters::tls_established(tls_->version());
        filter_report(filter::LinkTls{tls_->version() + ":" + tls_->cipher() + ":" + std::to_string(tls_->bits())});
        log::info(log::Line(id_ + " smtp tls")
                      .kv("ciphers", tls_->version() + ":" + tls_->cipher() + ":" + std::to_string(tls_->bits()))
                      .kv("sni", tls_->sni()));
        if (tls_->peer_certificate())
            log::info(log::Line(id_ + " smtp cert-check")
                          .kv("result", tls_->peer_verified() ? "verified" : "unchecked")
                          .kv("subject", tls_->peer_subject())
                          .kv("fingerprint", tls_->peer_fingerprint()));
    }
    if (tls_->peer_closed()) {
        log::info(log::Line(id_ + " smtp disconnected").kv("reason", "tls-close"));
        close_after_flush();
    }
    // Handshake messages to answer, even when no plaintext came.
    flush();
    return true;
}

}  // namespace postern::smtpd
