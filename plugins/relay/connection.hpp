// plugins/relay/connection.hpp — one outbound SMTP connection of the relay
// plugin: a TCP socket to one address of the relay host (or, for the lmtp
// action, a UNIX socket), optionally wrapped in TLS, that sends bytes and
// reads whole replies.
//
// The plugin runs in postern-local, a process of its own, so the socket may
// block the caller; still every wait is a poll() bounded by the timeout given
// to open(), counted per operation (one send, one reply, one handshake), as
// RFC 5321 4.5.3.2 counts its timeouts per command. Replies are read with
// postern::relay::ReplyParser, which never takes a byte past one reply.
//
// Depends on: OpenSSL 3 (TLS client), postern/support/{smtp_reply,fd}.hpp, resolver.hpp (Address).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "postern/support/fd.hpp"
#include "postern/support/smtp_reply.hpp"
#include "resolver.hpp"

namespace postern::relay_plugin {

struct SslCtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

// How to check the server's certificate when TLS starts.
struct TlsPolicy {
    bool verify = true;                    // chain and name; false: encrypt only (opportunistic, no-verify)
    std::string ca_file;                   // "" = the system store
    std::string host;                      // the name to check and send as SNI
    bool host_is_ip = false;               // an address literal: checked as an IP, no SNI
    std::string cert_pem, key_pem;         // a client certificate (relay pki); "" = none
    std::string ciphers;                   // "" = OpenSSL's default
    int min_version = 0, max_version = 0;  // 0 = TLS 1.2 .. the newest
};

class Connection {
public:
    // Resolve `host` (A and AAAA) and connect to each address in turn until
    // one answers, from the source address `src` ("" = any). On failure
    // return nullptr with *error = the reason.
    static std::unique_ptr<Connection> open(const std::string& host, int port, const std::string& src,
                                            int timeout_seconds, std::string* error);
    // The same with addresses already looked up (MX routing); `host` names them in logs.
    static std::unique_ptr<Connection> open(const std::string& host, const std::vector<Address>& addresses,
                                            const std::string& src, int timeout_seconds, std::string* error);

    // A UNIX stream socket (the lmtp action's "/path"): the path is the
    // label; host and address are "" (a result names no server by them: a
    // report's Remote-MTA is a host name).
    static std::unique_ptr<Connection> open_unix(const std::string& path, int timeout_seconds, std::string* error);

    // "mx.example.org [192.0.2.1]" (a socket: its path): the prefix of every error text.
    const std::string& label() const { return label_; }
    // The host as the route named it, and the address connected to.
    const std::string& host() const { return host_; }
    const std::string& address() const { return address_; }
    bool tls() const { return ssl_ != nullptr; }
    // "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, "" before.
    std::string tls_description() const;
    void set_timeout(int seconds) { timeout_ms_ = seconds * 1000; }

    // The TLS handshake (STARTTLS after its 220, or at once for smtps).
    bool start_tls(const TlsPolicy& policy, std::string* error);
    bool send(std::string_view bytes, std::string* error);
    bool read_reply(relay::Reply* reply, std::string* error);
    // Bytes received but not yet parsed: after a 220 to STARTTLS there must be none.
    bool has_pending_input() const { return !inbuf_.empty(); }
    // Whether a connection kept idle may still serve: nothing came from the
    // server meanwhile (a server that closes an idle connection says 421,
    // or just closes it). Looks without waiting.
    bool quiet() const;

    // Only open() makes one (the key is private): a Connection is always connected.
    struct Key {};
    // `label` "" = "HOST [ADDRESS]".
    Connection(Key, util::Fd fd, std::string host, std::string address, std::string label = "")
        : fd_(std::move(fd)), label_(label.empty() ? host + " [" + address + "]" : std::move(label)),
          host_(std::move(host)), address_(std::move(address)) {}

private:
    // Wait until the socket is ready for `events`, at most until the deadline.
    bool wait(short events, long long deadline_ms, std::string* error);
    // Read at least one byte into inbuf_; false on EOF, error or timeout.
    bool fill(long long deadline_ms, std::string* error);

    util::Fd fd_;
    std::string label_;
    std::string host_, address_;
    int timeout_ms_ = 300000;
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
    std::unique_ptr<SSL, SslFree> ssl_;
    std::string inbuf_;
};

}  // namespace postern::relay_plugin
