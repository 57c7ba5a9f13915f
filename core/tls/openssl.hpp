// tls/openssl.hpp — RAII owners for the OpenSSL objects the TLS layer holds,
// and the one way it turns OpenSSL's error queue into text.
//
// Internal to core/tls: the public headers (context.hpp, connection.hpp) only
// forward-declare OpenSSL types, so the rest of the daemon does not pull in
// <openssl/*.h>.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace postern::tls {

// unique_ptr deleter calling an OpenSSL *_free function.
template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept {
        Free(p);
    }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, FreeWith<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, FreeWith<SSL_free>>;

struct X509StackFree {
    void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

// Drains this thread's OpenSSL error queue into one line:
// "error:0A00010B:SSL routines::wrong version number; ..." ("" when empty).
std::string openssl_errors();

// "YYYY-MM-DD HH:MM:SS UTC" for a certificate time ("?" if unreadable).
std::string format_time(const ASN1_TIME* t);

// A name in RFC 2253 form: "CN=mail.example.org,O=Example".
std::string format_name(const X509_NAME* name);

// "SHA256:" + lowercase hex of the DER encoding's SHA-256.
std::string sha256_fingerprint(const X509* cert);

}  // namespace postern::tls
