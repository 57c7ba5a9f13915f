// tests/unit/tls/test_pki.cpp — building the test CA, server and client
// certificates with OpenSSL's X509 API.

#include "test_pki.hpp"

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

namespace postern::tls::test {
namespace {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept {
        Free(p);
    }
};
using Key = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, FreeWith<X509_free>>;
using Bio = std::unique_ptr<BIO, FreeWith<BIO_free_all>>;

Key make_key(bool ed25519 = false) {
    Key k(ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                  : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    REQUIRE(k);
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    REQUIRE(ext != nullptr);
    REQUIRE(X509_add_ext(cert, ext, -1) == 1);
    X509_EXTENSION_free(ext);
}

struct CertSpec {
    std::string cn;
    std::string san;  // "DNS:a,DNS:b" or ""
    bool ca = false;
    const char* usage = "";            // extendedKeyUsage, "" for none
    const char* not_before = nullptr;  // "YYYYMMDDHHMMSSZ"; null = an hour ago
    const char* not_after = nullptr;   // null = in 30 days
};

// Signed by (issuer, issuer_key), or self-signed when issuer is null.
Cert make_cert(const CertSpec& s, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    static long serial = 1;
    Cert c(X509_new());
    REQUIRE(c);
    X509* x = c.get();
    REQUIRE(X509_set_version(x, 2) == 1);  // v3
    REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) == 1);
    if (s.not_before) REQUIRE(ASN1_TIME_set_string_X509(X509_getm_notBefore(x), s.not_before) == 1);
    else REQUIRE(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nullptr);
    if (s.not_after) REQUIRE(ASN1_TIME_set_string_X509(X509_getm_notAfter(x), s.not_after) == 1);
    else REQUIRE(X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) != nullptr);
    X509_NAME* name = X509_get_subject_name(x);
    REQUIRE(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Postern Test"),
                                       -1, -1, 0) == 1);
    REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(s.cn.c_str()),
                                       -1, -1, 0) == 1);
    REQUIRE(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1);
    REQUIRE(X509_set_pubkey(x, key) == 1);
    X509* signer = issuer ? issuer : x;
    add_ext(x, signer, NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, signer, NID_key_usage, s.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (*s.usage) add_ext(x, signer, NID_ext_key_usage, s.usage);
    if (!s.san.empty()) add_ext(x, signer, NID_subject_alt_name, s.san.c_str());
    REQUIRE(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

void write_cert(const std::string& path, X509* cert) {
    Bio bio(BIO_new_file(path.c_str(), "w"));
    REQUIRE(bio);
    REQUIRE(PEM_write_bio_X509(bio.get(), cert) == 1);
}

void write_key(const std::string& path, EVP_PKEY* key, const char* passphrase = nullptr) {
    Bio bio(BIO_new_file(path.c_str(), "w"));
    REQUIRE(bio);
    if (passphrase) {
        REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key, EVP_aes_128_cbc(),
                                         reinterpret_cast<const unsigned char*>(passphrase),
                                         static_cast<int>(strlen(passphrase)), nullptr, nullptr) == 1);
    } else {
        REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
    }
}

std::string fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    REQUIRE(X509_digest(cert, EVP_sha256(), md, &len) == 1);
    char hex[3];
    std::string out = "SHA256:";
    for (unsigned i = 0; i < len; ++i) {
        snprintf(hex, sizeof hex, "%02x", md[i]);
        out += hex;
    }
    return out;
}

// Removes the folder when the test program exits.
struct Cleanup {
    std::string dir;
    ~Cleanup() {
        std::error_code ec;
        if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
};

TestPki generate() {
    static Cleanup cleanup;
    std::string tmpl = (std::filesystem::temp_directory_path() / "postern-tls-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    TestPki p;
    p.dir = buf.data();
    cleanup.dir = p.dir;
    auto path = [&](const char* name) { return p.dir + "/" + name; };

    Key ca_key = make_key();
    Cert ca = make_cert({"Postern Test CA", "", true}, ca_key.get(), nullptr, nullptr);
    p.ca_cert = path("ca.crt"), p.ca_key = path("ca.key");
    write_cert(p.ca_cert, ca.get());
    write_key(p.ca_key, ca_key.get());

    auto issue = [&](const CertSpec& spec, std::string* cert_path, std::string* key_path, const char* base,
                     bool self_signed = false, bool ed25519 = false) {
        Key k = make_key(ed25519);
        Cert c = self_signed ? make_cert(spec, k.get(), nullptr, nullptr)
                             : make_cert(spec, k.get(), ca.get(), ca_key.get());
        *cert_path = path((std::string(base) + ".crt").c_str());
        *key_path = path((std::string(base) + ".key").c_str());
        write_cert(*cert_path, c.get());
        write_key(*key_path, k.get());
        return std::make_pair(std::move(c), std::move(k));
    };
    auto mail = issue({"mail.example.org", "DNS:mail.example.org,DNS:smtp.example.org", false, "serverAuth"},
                      &p.mail_cert, &p.mail_key, "mail");
    // Another key type than mail's: choosing it by SNI must replace the
    // default certificate, not sit beside it.
    issue({"other.example.net", "DNS:*.other.example.net", false, "serverAuth"}, &p.other_cert, &p.other_key, "other",
          false, true);
    issue({"expired.example.org", "DNS:expired.example.org", false, "serverAuth", "20200101000000Z", "20200102000000Z"},
          &p.expired_cert, &p.expired_key, "expired");
    issue({"future.example.org", "DNS:future.example.org", false, "serverAuth", "20990101000000Z", "20991231000000Z"},
          &p.future_cert, &p.future_key, "future");
    auto client = issue({"client.example.org", "", false, "clientAuth"}, &p.client_cert, &p.client_key, "client");
    p.client_fingerprint = fingerprint(client.first.get());
    issue({"rogue.example.com", "", false, "clientAuth"}, &p.selfsigned_cert, &p.selfsigned_key, "rogue", true);

    p.encrypted_key = path("encrypted.key");
    write_key(p.encrypted_key, mail.second.get(), "secret");
    p.not_pem = path("notes.txt");
    std::ofstream(p.not_pem) << "this is not a certificate\n";
    return p;
}

}  // namespace

const TestPki& test_pki() {
    static const TestPki pki = generate();
    return pki;
}

}  // namespace postern::tls::test
