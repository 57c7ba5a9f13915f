// plugins/relay/session.hpp — the SMTP client dialogue with one relay host:
// greeting, EHLO (HELO when EHLO is refused), STARTTLS, AUTH PLAIN, then any
// number of transactions (MAIL, RCPT, DATA), RSET between them, QUIT.
//
// The body goes as it is: with 8-bit bytes only to a server that offers
// 8BITMIME (BODY=8BITMIME), with non-ASCII addresses only to one that offers
// SMTPUTF8. postern does not downgrade (RFC 6152 §3 allows either): such a
// message fails permanently for that server, 5.6.3 or 5.6.7, and bounces.
//
// Results follow the remote replies: 2xx delivered, 4xx temporary, 5xx
// permanent; a failure to connect, a timeout, a closed connection or a reply
// that does not parse is temporary. Every failure text is
//   "relay: HOST [ADDRESS]: <the remote reply or the local reason>"
// ("lmtp: ..." for the lmtp action: Settings::tag)
// for the log; what a bounce quotes travels beside it, typed: the server
// (host and address), its reply code and text, the enhanced status code.
//
// Depends on: connection.hpp, options.hpp, postern/support/smtp_data.hpp (encode_data).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connection.hpp"
#include "options.hpp"
#include "postern/support/delivery_guard.hpp"

namespace postern::relay_plugin {

// What became of a recipient, or why an attempt failed: the result's text
// for the log and its typed fields (postern_delivery_result).
struct Failure {
    Failure() = default;
    Failure(int s, std::string why) : status(s), reason(std::move(why)) {}

    int status = POSTERN_TEMPFAIL;
    std::string reason;      // the text: "relay: HOST [ADDRESS]: ..."
    std::string enhanced;    // RFC 3463 code of the status's class, "" = none
    std::string host, addr;  // the server talked to, "" = none
    int code = 0;            // the code of its reply to quote, 0 = none
    std::string reply;       // that reply after the code
    bool dsn_handed_on = false;
};

class Session {
public:
    // Connect to `target` (at `addresses` when given, else at its host's
    // addresses) and get ready for a transaction; nullptr with *f filled on failure.
    static std::unique_ptr<Session> open(const Settings& s, const relay::RelayUrl& target,
                                         const std::vector<Address>* addresses, Failure* f);
    // The same over a connection already made (the lmtp action's UNIX
    // socket): greeting, LHLO/EHLO, STARTTLS, AUTH as `target` says.
    static std::unique_ptr<Session> start(const Settings& s, std::unique_ptr<Connection> conn,
                                          const relay::RelayUrl& target, Failure* f);

    // Broken: the connection is unusable now, before the message went out (safe
    // to try again elsewhere); Lost: unusable after the message was sent, so
    // the relay may have it already (trying again could deliver it twice).
    enum class Result { Ok, Failed, Broken, Lost };
    // RSET before reusing the connection for another message.
    Result reset(Failure* f);
    // One recipient of a transaction, and what became of it: on success
    // `outcome` says where the message went and what the server answered,
    // "relay: mx.example.org [192.0.2.1] TLSv1.3 ...: 250 2.0.0 Ok", and
    // holds the server and its reply as fields.
    struct Recipient {
        std::string_view dest;
        std::string_view rcpt_params;  // NOTIFY/ORCPT, sent when the server offers DSN
        Failure outcome;               // status POSTERN_OK or the failure
        bool accepted = false;         // RCPT took it (set by the transaction)
    };
    // One message to its recipients: MAIL, a RCPT each, DATA (in one write
    // when the server offers PIPELINING). Each recipient's outcome is its
    // RCPT refusal or the reply to the message. With DSN offered,
    // `mail_params` (RET/ENVID) go along, and a recipient whose NOTIFY/ORCPT
    // went too has dsn_handed_on set in its success.
    // Ok: the transaction ran to its end (recipients may still have failed);
    // Failed: it stopped on a refusal, which *f holds for the recipients
    // without an outcome of their own; Broken / Lost: see above.
    Result transaction(std::string_view sender, std::string_view message, std::string_view mail_params,
                       std::vector<Recipient>* rcpts, Failure* f);
    // QUIT, waiting briefly for the 221, for a polite close.
    void quit();
    // Whether a connection kept idle between batches still looks usable
    // (Connection::quiet); RSET then tells for sure.
    bool quiet() const { return conn_->quiet(); }

    struct Key {};  // only open() makes one
    Session(Key, std::unique_ptr<Connection> c, relay::RelayUrl url, std::string tag)
        : conn_(std::move(c)), url_(std::move(url)), tag_(std::move(tag)) {}

private:
    // Send `line` (CRLF added) and read the reply. Broken on an I/O failure.
    Result command(std::string_view line, std::string_view what, relay::Reply* r, Failure* f);
    // Judge a reply: true when its class is `expect` (2 or 3); else fill *f.
    bool expect(const relay::Reply& r, int expect, Failure* f);
    bool greet(const Settings& s, Failure* f);
    bool hello(const Settings& s, Failure* f);
    bool starttls(const Settings& s, bool verify, Failure* f);
    // MAIL, the RCPTs and DATA, pipelined or one by one; `accepted` counts
    // the recipients the server took (the others have their outcome).
    Result envelope(const std::string& mail, const std::vector<Recipient*>& rcpts, bool dsn, size_t* accepted,
                    Failure* f);
    std::vector<Recipient*> sendable(std::vector<Recipient>* rcpts);
    bool authenticate(const Settings& s, Failure* f);
    // A local reason, with the server named; `enhanced` ("5.6.7") leads the reason too.
    Failure fail(int status, const std::string& why, std::string_view enhanced = "") const;
    // The server's reply (a refusal, or the acceptance of the message): the
    // reason quotes it after the label and `after_label` (the TLS in use).
    Failure replied(int status, const relay::Reply& r, const std::string& after_label = "") const;

    std::unique_ptr<Connection> conn_;
    relay::RelayUrl url_;
    std::string tag_;  // Settings::tag: "relay"
    std::map<std::string, std::string> ext_;
};

}  // namespace postern::relay_plugin
