// tls/check.hpp — loading and checking the files behind `pki` and `ca`.
//
// `pki NAME cert F` / `pki NAME key F` / `ca NAME cert F` name PEM files.
// The same loaders serve ServerContext::create (which needs the objects) and
// `posternd -n` (which needs every problem at once, one line each), so both
// report a bad file in the same words: "FILE: reason", e.g.
//   /etc/ssl/mail.crt: cannot read: No such file or directory
//   /etc/ssl/mail.crt: not a PEM certificate
//   /etc/ssl/private/mail.key: key does not match the certificate /etc/ssl/mail.crt
//   /etc/ssl/mail.crt: certificate expired on 2020-01-02 00:00:00 UTC
// Callers add the context ("pki mail.example.org: ...", "file:line: ...").
//
// `pki NAME dhe none|auto|legacy` needs nothing here: OpenSSL 3 negotiates
// ECDHE (and DHE with built-in, size-matched parameters), so it is accepted
// and ignored by the configuration.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tls/openssl.hpp"

namespace postern::tls {

// `pki NAME cert F` / `key F`.
struct PkiFiles {
    std::string name;
    std::string cert_file;
    std::string key_file;
};

// A certificate file: the leaf first, then any chain certificates after it.
struct CertificateChain {
    X509Ptr leaf;
    X509StackPtr chain;  // never null; may be empty
};

// Whole-file reads are bounded: no PEM file we accept is larger.
inline constexpr size_t kMaxPemFileSize = 16u << 20;

// Reads `file` whole; on failure `error` is "FILE: reason".
std::optional<std::string> read_pem_file(const std::string& file, std::string* error);

// Parses every certificate in `file`. Fails when there is none or one is damaged.
std::optional<CertificateChain> load_certificates(const std::string& file, std::string* error);

// Parses the private key in `file` (PKCS#8, or the traditional RSA/EC form).
// Encrypted keys are refused: a daemon has nobody to type a passphrase.
PkeyPtr load_private_key(const std::string& file, std::string* error);

// "KEY: key does not match the certificate CERT" when they are not a pair.
std::optional<std::string> key_mismatch(const PkiFiles& p, X509* cert, EVP_PKEY* key);

// Every problem with one pki, one line each; empty when it is usable.
// A pki without a `cert` or `key` line yields "pki NAME: no certificate file"
// / "pki NAME: no key file".
std::vector<std::string> check_pki(const PkiFiles& p);

// Every problem with a CA bundle (missing, unreadable, no certificate,
// expired or not yet valid CA certificates), one line each.
std::vector<std::string> check_ca(const std::string& ca_file);

}  // namespace postern::tls
