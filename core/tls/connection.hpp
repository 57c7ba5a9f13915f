// tls/connection.hpp — Connection: one server-side TLS session, driven by
// bytes rather than by a socket.
//
// The event loop owns the socket. It hands every chunk it reads to feed(),
// takes decrypted data with read(), encrypts replies with write(), and sends
// whatever take_ciphertext() returns. OpenSSL sits between two memory BIOs,
// so nothing here ever blocks or touches a file descriptor, and the same
// object serves STARTTLS (created after "220 Ready to start TLS") and SMTPS
// (created at accept).
//
// Usage, per read from the network:
//     if (!tls.feed(bytes)) { send(tls.take_ciphertext()); log(tls.error()); close(); }
//     tls.read(&line_buffer);  ...  tls.write(reply);
//     send(tls.take_ciphertext());
// write() before the handshake has finished is kept and sent once it has
// (the SMTPS banner). A Connection is used by one thread at a time; the
// ServerContext it came from may be destroyed before it.
//
// Depends on OpenSSL 3 (libssl).
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

namespace postern::tls {

class ServerContext;

class Connection {
public:
    explicit Connection(ServerContext& ctx);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Bytes read from the network: advances the handshake and decrypts what
    // it can. False on a fatal TLS error: error() says why, and
    // take_ciphertext() may hold an alert to send before closing.
    bool feed(std::string_view ciphertext);
    // Decrypted application data now available, appended to `out`. False once
    // the connection has failed.
    bool read(std::string* out);
    // Encrypts application data for sending (kept until the handshake is
    // done). False on a fatal error or after shutdown().
    bool write(std::string_view plaintext);
    // Everything to send to the network now: handshake messages, records, alerts.
    std::string take_ciphertext();

    bool handshake_done() const { return handshake_done_; }
    bool failed() const { return failed_; }
    // The peer sent close_notify: no more data will come.
    bool peer_closed() const { return peer_closed_; }
    // Queues a close_notify (after the handshake; nothing before it).
    void shutdown();
    // The last error, OpenSSL's own text included:
    // "TLS handshake failed: error:0A000102:SSL routines::unsupported protocol".
    std::string error() const { return error_; }

    // After the handshake ("" / 0 / false before it):
    std::string version() const;           // "TLSv1.3"
    std::string cipher() const;            // "TLS_AES_256_GCM_SHA384"
    int bits() const;                      // 256
    std::string sni() const;               // the name the client asked for, "" if none
    bool peer_certificate() const;         // the client sent a certificate
    bool peer_verified() const;            // ... and it verified against the ca
    std::string peer_subject() const;      // RFC 2253: "CN=client.example.org,O=Example"
    std::string peer_fingerprint() const;  // "SHA256:" + 64 lowercase hex digits

private:
    bool advance();
    bool fail(std::string_view what, int ssl_error);

    std::shared_ptr<ssl_ctx_st> ctx_;  // keeps the context alive as long as we are
    struct SslFree {
        void operator()(ssl_st* ssl) const noexcept;
    };
    std::unique_ptr<ssl_st, SslFree> ssl_;
    bio_st* network_in_ = nullptr;   // owned by ssl_: bytes fed, for OpenSSL to read
    bio_st* network_out_ = nullptr;  // owned by ssl_: bytes OpenSSL wrote, to send
    std::string plaintext_in_;       // decrypted, not yet read()
    std::string plaintext_out_;      // written before the handshake finished
    bool handshake_done_ = false;
    bool failed_ = false;
    bool peer_closed_ = false;
    bool shut_down_ = false;
    std::string error_;
};

}  // namespace postern::tls
