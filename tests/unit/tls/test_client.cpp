// tests/unit/tls/test_client.cpp — the OpenSSL client the TLS tests talk to.

#include "test_client.hpp"

#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "test_pki.hpp"

namespace postern::tls::test {

Client::Client(const ClientOptions& o) {
    const TestPki& pki = test_pki();
    ctx_ = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx_ != nullptr);
    if (o.security_level >= 0) SSL_CTX_set_security_level(ctx_, o.security_level);
    if (o.min_version) REQUIRE(SSL_CTX_set_min_proto_version(ctx_, o.min_version) == 1);
    if (o.max_version) REQUIRE(SSL_CTX_set_max_proto_version(ctx_, o.max_version) == 1);
    if (!o.ciphers.empty()) REQUIRE(SSL_CTX_set_cipher_list(ctx_, o.ciphers.c_str()) == 1);
    // The client checks the server's chain against the test CA, so a test
    // also sees that the server sent a chain the CA signed.
    REQUIRE(SSL_CTX_load_verify_file(ctx_, pki.ca_cert.c_str()) == 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (!o.cert.empty()) {
        REQUIRE(SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    ssl_ = SSL_new(ctx_);
    REQUIRE(ssl_ != nullptr);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    if (!o.sni.empty()) REQUIRE(SSL_set_tlsext_host_name(ssl_, o.sni.c_str()) == 1);
    SSL_set_connect_state(ssl_);
}

Client::~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
}

void Client::fail() {
    failed_ = true;
    char buf[256];
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        error_ += buf;
        error_ += "; ";
    }
}

bool Client::step() {
    if (done_ || failed_) return done_;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) return done_ = true;
    int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail();
    return false;
}

void Client::receive(const std::string& ciphertext) {
    if (!ciphertext.empty()) REQUIRE(BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size())) > 0);
}

std::string Client::take_ciphertext() {
    std::string out(BIO_ctrl_pending(out_), '\0');
    if (!out.empty()) REQUIRE(BIO_read(out_, out.data(), static_cast<int>(out.size())) == static_cast<int>(out.size()));
    return out;
}

bool Client::write(const std::string& plaintext) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n) != 1 || n != plaintext.size()) {
        fail();
        return false;
    }
    return true;
}

bool Client::read(std::string* out) {
    bool ok = poll();
    out->append(inbox_);
    inbox_.clear();
    return ok;
}

bool Client::poll() {
    char buf[16384];
    for (int i = 0; i < 100000; ++i) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
        if (r == 1) {
            inbox_.append(buf, n);
            ++records_;
            continue;
        }
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_ZERO_RETURN) return true;
        fail();
        return false;
    }
    return true;
}

std::string Client::peer_cn() const {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    return cn;
}

bool exchange(Client& client, Connection& server) {
    bool ok = server.feed(client.take_ciphertext());
    client.receive(server.take_ciphertext());
    return ok;
}

Outcome pump(Client& client, Connection& server) {
    for (int round = 0; round < 20; ++round) {
        client.step();
        bool server_ok = exchange(client, server);
        // TLS 1.3 clients finish before the server has seen their Finished
        // (or refused their certificate); a read shows any alert.
        if (client.done() && !client.failed()) client.poll();
        if (!server_ok || client.failed()) {
            exchange(client, server);
            if (client.done()) client.poll();
            else client.step();
            break;
        }
        if (client.done() && server.handshake_done()) break;
    }
    return {server.handshake_done() && !server.failed(), client.done() && !client.failed()};
}

std::unique_ptr<ServerContext> make_context(const ServerOptions& o) {
    std::string error;
    auto ctx = ServerContext::create(o, &error);
    INFO("error: " << error);
    REQUIRE(ctx);
    return ctx;
}

ServerOptions default_options() {
    const TestPki& pki = test_pki();
    ServerOptions o;
    o.pkis.push_back({"mail.example.org", pki.mail_cert, pki.mail_key});
    return o;
}

}  // namespace postern::tls::test
