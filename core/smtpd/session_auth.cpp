// SMTP AUTH (RFC 4954) in a session: PLAIN and LOGIN against the listener's
// credentials table, and the `senders` check of MAIL FROM; see session.hpp.
//
// AUTH is offered only on an `auth`/`auth-optional` listener and only once
// TLS is up: credentials never cross the network in clear. Password checks
// (crypt(3), deliberately slow) run on worker threads. A wrong password is
// answered after a fixed pause, and the third one ends the session, so that
// guessing is slow and the reply time says nothing about the account.
// Failures are also counted per client address, across sessions (smtp
// limit max-auth-failures): the pause doubles with each one, up to 16 s,
// and an address past the limit gets 421 at AUTH until 15 minutes after
// its last failure. Local clients are counted per session only.
#include <memory>

#include "auth/senders.hpp"
#include "smtpd/session.hpp"
#include "util/log.hpp"

namespace postern::smtpd {
namespace {

constexpr uint64_t kBadPasswordDelayMs = 1000;
constexpr unsigned kMaxAuthFailures = 3;

}  // namespace

bool SmtpSession::auth_offered() const {
    return (listener_.auth || listener_.auth_optional) && tls_active_ && !authenticated_;
}

void SmtpSession::cmd_auth(const smtp::Command& c) {
    if (!listener_.auth && !listener_.auth_optional) {
        reply(502, "5.5.1 Command not implemented");
        return;
    }
    if (!tls_active_) {
        reply(538, "5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    if (authenticated_) {
        reply(503, "5.5.1 Bad sequence of commands: already authenticated");
        return;
    }
    if (state_ == State::Fresh || state_ == State::Mail) {
        reply(503, "5.5.1 Bad sequence of commands: AUTH needs EHLO first and no mail transaction");
        return;
    }
    if (address_auth_blocked()) return;
    auth_step(auth_.start(c.args));
}

void SmtpSession::auth_step(auth::Step step) {
    switch (step.kind) {
    case auth::Step::Kind::Challenge: reply(334, step.text); return;
    case auth::Step::Kind::Error:
    case auth::Step::Kind::Cancelled: reply(step.code, step.text); return;
    case auth::Step::Kind::Done: break;
    }
    struct Work {
        auth::Check result = auth::Check::TempFail;
        std::string error;
    };
    busy_ = true;
    if (listener_.auth_table.empty()) {
        // No table: the system's accounts, checked by the privileged parent.
        server_.ctx().system_auth(step.user, step.password,
                                  [weak = weak_from_this(), user = step.user](auth::Check c, std::string error) {
                                      auto self = weak.lock();
                                      if (!self || self->state_ == State::Closing) return;
                                      self->auth_verified(user, c, error);
                                  });
        return;
    }
    auto work = std::make_shared<Work>();
    table::Table* table = server_.ctx().tables->find(listener_.auth_table);
    event::run_blocking(
        server_.loop(),
        [work, table, user = step.user, password = std::move(step.password)] {
            if (!table) {
                work->error = "credentials table is not open";
                return;
            }
            work->result = auth::check_credentials(table, user, password, &work->error);
        },
        [weak = weak_from_this(), work, user = step.user] {
            auto self = weak.lock();
            if (!self || self->state_ == State::Closing) return;
            self->auth_verified(user, work->result, work->error);
        });
}

void SmtpSession::auth_verified(const std::string& user, auth::Check result, const std::string& error) {
    log::info(log::Line(id_ + " smtp authentication")
                  .kv("user", user)
                  .kv("result", result == auth::Check::Ok    ? "ok"
                                : result == auth::Check::Bad ? "permfail"
                                                             : "tempfail")
                  .kv("error", error));
    filter_report(filter::LinkAuth{user, result == auth::Check::Ok    ? filter::AuthResult::Pass
                                         : result == auth::Check::Bad ? filter::AuthResult::Fail
                                                                      : filter::AuthResult::Error});
    auto resume = [this] {
        busy_ = false;
        process();
        flush();
        update_reading();
    };
    if (result == auth::Check::Ok) {
        authenticated_ = true;
        auth_user_ = user;
        reply(235, "2.7.0 Authentication successful");
        return resume();
    }
    if (result == auth::Check::TempFail) {
        reply(454, "4.7.0 Temporary authentication failure");
        return resume();
    }
    // A pause before every refusal, the session's end after a few.
    std::uint64_t delay = kBadPasswordDelayMs;
    if (!client_local_) {
        server_.auth_failed(client_ip_);
        delay <<= std::min(server_.auth_failures(client_ip_) - 1, 4u);
    }
    after(delay, [this, resume] {
        reply(535, "5.7.8 Authentication credentials invalid");
        if (++auth_failures_ >= kMaxAuthFailures) {
            reply(421, "4.7.0 " + hostname() + " Too many authentication failures, closing connection");
            close_after_flush();
        } else {
            address_auth_blocked();
        }
        resume();
    });
}

// 421 and the end of the session when the client's address has failed
// AUTH max-auth-failures times lately.
bool SmtpSession::address_auth_blocked() {
    if (client_local_ || server_.auth_failures(client_ip_) < server_.ctx().config->max_auth_failures) return false;
    log::info(
        log::Line(id_ + " smtp disconnected").kv("reason", "auth-failures-per-address").kv("address", client_ip_));
    reply(421, "4.7.0 " + hostname() + " Too many authentication failures from your address, try again later");
    close_after_flush();
    return true;
}

// `senders <t>`: an authenticated user may only send as the addresses the
// table gives it.
void SmtpSession::check_sender(std::string sender, smtp::DsnMail dsn) {
    table::Table* table = server_.ctx().tables->find(listener_.senders_table);
    struct Work {
        auth::Check result = auth::Check::TempFail;
        std::string error;
    };
    auto work = std::make_shared<Work>();
    busy_ = true;
    event::run_blocking(
        server_.loop(),
        [work, table, user = auth_user_, sender] {
            if (!table) {
                work->error = "senders table is not open";
                return;
            }
            work->result = auth::sender_allowed(table, user, sender, &work->error);
        },
        [weak = weak_from_this(), work, sender, dsn] {
            auto self = weak.lock();
            if (!self || self->state_ == State::Closing) return;
            self->busy_ = false;
            if (work->result == auth::Check::Ok) {
                self->mail_accepted(sender, dsn);
            } else if (work->result == auth::Check::Bad) {
                log::info(
                    log::Line(self->id_ + " smtp sender-rejected").kv("user", self->auth_user_).kv("sender", sender));
                self->reply(553,
                            "5.7.1 <" + sender + ">: Sender address rejected: not owned by user " + self->auth_user_);
            } else {
                log::warn(log::Line(self->id_ + " smtp senders-lookup").kv("error", work->error));
                self->reply(451, "4.3.0 Temporary lookup failure");
            }
            self->process();
            self->flush();
            self->update_reading();
        });
}

void SmtpSession::after(uint64_t ms, std::function<void()> fn) {
    delayed_ = std::move(fn);
    delay_due_ = uv_now(server_.loop()) + std::max<uint64_t>(ms, 1);  // closing the session drops it
    arm_timer();
}

}  // namespace postern::smtpd
