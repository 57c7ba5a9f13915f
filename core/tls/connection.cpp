// tls/connection.cpp — a server-side TLS session over memory BIOs.

#include "tls/connection.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <climits>

#include "tls/context.hpp"
#include "tls/openssl.hpp"

namespace postern::tls {

namespace {

// SSL_read's buffer: one TLS record's worth of plaintext.
constexpr size_t kReadChunk = 16384;

}  // namespace

void Connection::SslFree::operator()(ssl_st* ssl) const noexcept { SSL_free(ssl); }

Connection::Connection(ServerContext& ctx) : ctx_(ctx.shared_ctx()) {
    ERR_clear_error();
    ssl_.reset(SSL_new(ctx_.get()));
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    if (!ssl_ || in == nullptr || out == nullptr) {
        BIO_free(in);
        BIO_free(out);
        failed_ = true;
        error_ = "cannot create a TLS session: " + openssl_errors();
        return;
    }
    // An empty input BIO means "wait for more bytes", never end of stream:
    // the loop tells us about EOF itself.
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(ssl_.get(), in, out);  // ssl_ owns both from here
    network_in_ = in;
    network_out_ = out;
    SSL_set_accept_state(ssl_.get());
}

Connection::~Connection() = default;

bool Connection::feed(std::string_view ciphertext) {
    if (failed_) return false;
    // Chunks bounded by int (BIO_write's length); a memory BIO takes all.
    while (!ciphertext.empty()) {
        size_t n = std::min<size_t>(ciphertext.size(), INT_MAX);
        if (BIO_write(network_in_, ciphertext.data(), static_cast<int>(n)) != static_cast<int>(n))
            return fail("TLS input failed", SSL_ERROR_SSL);
        ciphertext.remove_prefix(n);
    }
    return advance();
}

// Runs the handshake as far as the bytes allow, then decrypts every complete
// record. Each SSL_read consumes input or returns WANT_READ, so the loop ends
// when the fed bytes are used up.
bool Connection::advance() {
    if (!handshake_done_) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl_.get());
        if (r != 1) {
            int e = SSL_get_error(ssl_.get(), r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
            return fail("TLS handshake failed", e);
        }
        handshake_done_ = true;
        if (!plaintext_out_.empty()) {
            std::string pending = std::move(plaintext_out_);
            plaintext_out_.clear();
            if (!write(pending)) return false;
        }
    }
    char buf[kReadChunk];
    for (;;) {
        ERR_clear_error();
        size_t n = 0;
        int r = SSL_read_ex(ssl_.get(), buf, sizeof buf, &n);
        if (r == 1) {
            plaintext_in_.append(buf, n);
            continue;
        }
        int e = SSL_get_error(ssl_.get(), r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
        if (e == SSL_ERROR_ZERO_RETURN) {
            peer_closed_ = true;
            return true;
        }
        return fail("TLS read failed", e);
    }
}

bool Connection::read(std::string* out) {
    if (!plaintext_in_.empty()) {
        out->append(plaintext_in_);
        plaintext_in_.clear();
    }
    return !failed_;
}

bool Connection::write(std::string_view plaintext) {
    if (failed_) return false;
    if (shut_down_) {
        error_ = "TLS write after shutdown";
        return false;
    }
    if (!handshake_done_) {
        plaintext_out_.append(plaintext);
        return true;
    }
    // A memory BIO never pushes back, so each SSL_write_ex takes all it is
    // given (as many records as needed); the loop is only for safety.
    while (!plaintext.empty()) {
        ERR_clear_error();
        size_t n = 0;
        int r = SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &n);
        if (r != 1 || n == 0) return fail("TLS write failed", SSL_get_error(ssl_.get(), r));
        plaintext.remove_prefix(n);
    }
    return true;
}

std::string Connection::take_ciphertext() {
    std::string out;
    if (network_out_ == nullptr) return out;
    size_t pending = BIO_ctrl_pending(network_out_);
    if (pending == 0) return out;
    out.resize(pending);
    size_t got = 0;
    if (BIO_read_ex(network_out_, out.data(), pending, &got) != 1) got = 0;
    out.resize(got);
    return out;
}

void Connection::shutdown() {
    if (!handshake_done_ || failed_ || shut_down_) return;
    shut_down_ = true;
    ERR_clear_error();
    // 0 = our close_notify is queued and the peer's not yet seen: all we want.
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
}

bool Connection::fail(std::string_view what, int ssl_error) {
    failed_ = true;
    std::string detail = openssl_errors();
    if (detail.empty()) {
        detail = ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "SSL error " + std::to_string(ssl_error);
    }
    error_ = std::string(what) + ": " + detail;
    // Say why a client certificate was refused, not only that it was.
    long verify = SSL_get_verify_result(ssl_.get());
    if (!handshake_done_ && verify != X509_V_OK)
        error_ += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
    return false;
}

std::string Connection::version() const { return handshake_done_ ? SSL_get_version(ssl_.get()) : ""; }

std::string Connection::cipher() const {
    const char* name = handshake_done_ ? SSL_get_cipher_name(ssl_.get()) : nullptr;
    return name != nullptr ? name : "";
}

int Connection::bits() const { return handshake_done_ ? SSL_get_cipher_bits(ssl_.get(), nullptr) : 0; }

std::string Connection::sni() const {
    const char* name = ssl_ ? SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name) : nullptr;
    return handshake_done_ && name != nullptr ? name : "";
}

bool Connection::peer_certificate() const {
    return handshake_done_ && SSL_get0_peer_certificate(ssl_.get()) != nullptr;
}

bool Connection::peer_verified() const { return peer_certificate() && SSL_get_verify_result(ssl_.get()) == X509_V_OK; }

std::string Connection::peer_subject() const {
    if (!peer_certificate()) return "";
    return format_name(X509_get_subject_name(SSL_get0_peer_certificate(ssl_.get())));
}

std::string Connection::peer_fingerprint() const {
    if (!peer_certificate()) return "";
    return sha256_fingerprint(SSL_get0_peer_certificate(ssl_.get()));
}

}  // namespace postern::tls
