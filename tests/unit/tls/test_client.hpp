// tests/unit/tls/test_client.hpp — a real OpenSSL client on its own memory
// BIOs, and the pump that carries bytes between it and a server Connection,
// as the event loop would.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "tls/connection.hpp"
#include "tls/context.hpp"

namespace postern::tls::test {

struct ClientOptions {
    std::string sni{};    // "" = send no SNI
    int min_version = 0;  // 0 = OpenSSL's default
    int max_version = 0;
    int security_level = -1;    // -1 = default; 0 lets a client offer TLS 1.1
    std::string cert{}, key{};  // client certificate, if any
    std::string ciphers{};      // TLS 1.2 cipher list, "" = default
};

class Client {
public:
    explicit Client(const ClientOptions& o = {});
    ~Client();
    SSL* ssl() const { return ssl_; }

    // One handshake step; true when done, false when still going or failed.
    bool step();
    bool failed() const { return failed_; }
    bool done() const { return done_; }
    const std::string& error() const { return error_; }

    void receive(const std::string& ciphertext);  // bytes from the server
    std::string take_ciphertext();                // bytes to the server
    bool write(const std::string& plaintext);
    // Decrypts what has arrived into an inbox; false (error() set) on a fatal error.
    bool poll();
    // poll(), then hands over the inbox.
    bool read(std::string* out);
    int records_read() const { return records_; }  // SSL_read results so far

    // The server certificate's subject CN, "" when none.
    std::string peer_cn() const;
    long verify_result() const { return SSL_get_verify_result(ssl_); }

private:
    void fail();
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    BIO* in_ = nullptr;
    BIO* out_ = nullptr;
    bool done_ = false;
    bool failed_ = false;
    std::string error_;
    std::string inbox_;
    int records_ = 0;
};

struct Outcome {
    bool server_ok = false;  // server handshake done, no failure
    bool client_ok = false;
};

// Carries bytes both ways until both sides finish or one fails (at most 20
// rounds). After a failure, the last bytes (alerts) are still delivered.
Outcome pump(Client& client, Connection& server);

// Moves the bytes pending in both directions once; returns server.feed's result.
bool exchange(Client& client, Connection& server);

// Builds a context or fails the test showing the error.
std::unique_ptr<ServerContext> make_context(const ServerOptions& o);
ServerOptions default_options();  // pki mail.example.org only

}  // namespace postern::tls::test
