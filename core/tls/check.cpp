// tls/check.cpp — PEM loading and the `posternd -n` checks for pki and ca.

#include "tls/check.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "util/fd.hpp"

namespace postern::tls {
namespace {

// Distinguishes "there is no such PEM block" from a damaged one, so that a
// key handed over as a certificate reads "not a PEM certificate" rather than
// a decoder's internal error.
bool last_error_is_no_start_line() {
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

BioPtr memory_bio(const std::string& data) {
    return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Never prompts: a daemon reading keys at start-up has no terminal to ask on.
int no_passphrase(char*, int, int, void*) { return -1; }

// True when a "-----BEGIN ...PRIVATE KEY-----" line is present (PKCS#8,
// RSA, EC, ...). OpenSSL 3's decoders report a file without one as
// "unsupported", which would not tell a user they gave the certificate.
bool has_private_key_block(const std::string& pem) {
    constexpr std::string_view begin = "-----BEGIN ";
    constexpr std::string_view label_end = "PRIVATE KEY-----";
    for (size_t pos = pem.find(begin); pos != std::string::npos; pos = pem.find(begin, pos + 1)) {
        size_t eol = pem.find('\n', pos);
        std::string_view line = std::string_view(pem).substr(pos, eol == std::string::npos ? eol : eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() >= label_end.size() && line.substr(line.size() - label_end.size()) == label_end) return true;
    }
    return false;
}

bool looks_encrypted(const std::string& pem) {
    return pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string::npos ||
           pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos;
}

// The validity window of `cert`, as a problem line or nothing.
std::optional<std::string> validity_problem(const std::string& file, const std::string& what, X509* cert) {
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    const ASN1_TIME* not_before = X509_get0_notBefore(cert);
    if (X509_cmp_current_time(not_after) < 0) return file + ": " + what + " expired on " + format_time(not_after);
    if (X509_cmp_current_time(not_before) > 0)
        return file + ": " + what + " not valid before " + format_time(not_before);
    return std::nullopt;
}

}  // namespace

std::optional<std::string> read_pem_file(const std::string& file, std::string* error) {
    util::Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        *error = file + ": cannot read: " + std::strerror(errno);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
        *error = file + ": cannot read: " + (S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        return std::nullopt;
    }
    if (static_cast<unsigned long long>(st.st_size) > kMaxPemFileSize) {
        *error = file + ": file too large for a PEM file (" + std::to_string(st.st_size) + " bytes)";
        return std::nullopt;
    }
    std::string data;
    char buf[8192];
    while (data.size() <= kMaxPemFileSize) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *error = file + ": cannot read: " + std::strerror(errno);
            return std::nullopt;
        }
        if (n == 0) return data;
        data.append(buf, static_cast<size_t>(n));
    }
    *error = file + ": file too large for a PEM file";
    return std::nullopt;
}

std::optional<CertificateChain> load_certificates(const std::string& file, std::string* error) {
    auto data = read_pem_file(file, error);
    if (!data) return std::nullopt;
    BioPtr bio = memory_bio(*data);
    CertificateChain out{nullptr, X509StackPtr(sk_X509_new_null())};
    if (!bio || !out.chain) {
        *error = file + ": " + openssl_errors();
        return std::nullopt;
    }
    ERR_clear_error();
    // Each round consumes one PEM block, so the file's size bounds the loop.
    for (;;) {
        X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
        if (!cert) break;
        if (!out.leaf) {
            out.leaf = std::move(cert);
        } else if (sk_X509_push(out.chain.get(), cert.get()) > 0) {
            cert.release();  // the stack owns it now
        }
    }
    if (last_error_is_no_start_line()) {
        ERR_clear_error();  // the normal end: no further certificate
        if (out.leaf) return out;
        *error = file + ": not a PEM certificate";
        return std::nullopt;
    }
    *error = file + ": bad PEM certificate: " + openssl_errors();
    return std::nullopt;
}

PkeyPtr load_private_key(const std::string& file, std::string* error) {
    auto data = read_pem_file(file, error);
    if (!data) return nullptr;
    if (!has_private_key_block(*data)) {
        *error = file + ": not a PEM private key";
        return nullptr;
    }
    if (looks_encrypted(*data)) {
        *error = file + ": private key is encrypted (passphrases are not supported)";
        return nullptr;
    }
    BioPtr bio = memory_bio(*data);
    ERR_clear_error();
    PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
    if (key) {
        ERR_clear_error();
        return key;
    }
    *error = file + ": bad PEM private key: " + openssl_errors();
    return nullptr;
}

std::optional<std::string> key_mismatch(const PkiFiles& p, X509* cert, EVP_PKEY* key) {
    ERR_clear_error();
    if (X509_check_private_key(cert, key) == 1) return std::nullopt;
    ERR_clear_error();  // "key values mismatch" says less than our line
    return p.key_file + ": key does not match the certificate " + p.cert_file;
}

std::vector<std::string> check_pki(const PkiFiles& p) {
    std::vector<std::string> problems;
    std::string error;
    std::optional<CertificateChain> certs;
    PkeyPtr key;
    if (p.cert_file.empty()) {
        problems.push_back("pki " + p.name + ": no certificate file");
    } else if (certs = load_certificates(p.cert_file, &error); !certs) {
        problems.push_back(error);
    }
    if (p.key_file.empty()) {
        problems.push_back("pki " + p.name + ": no key file");
    } else if (key = load_private_key(p.key_file, &error); !key) {
        problems.push_back(error);
    }
    if (certs && key) {
        if (auto m = key_mismatch(p, certs->leaf.get(), key.get())) problems.push_back(*m);
    }
    if (certs) {
        if (auto v = validity_problem(p.cert_file, "certificate", certs->leaf.get())) problems.push_back(*v);
    }
    return problems;
}

std::vector<std::string> check_ca(const std::string& ca_file) {
    std::string error;
    auto certs = load_certificates(ca_file, &error);
    if (!certs) return {error};
    std::vector<std::string> problems;
    auto check_one = [&](X509* cert) {
        std::string what = "CA certificate " + format_name(X509_get_subject_name(cert));
        if (auto v = validity_problem(ca_file, what, cert)) problems.push_back(*v);
    };
    check_one(certs->leaf.get());
    for (int i = 0; i < sk_X509_num(certs->chain.get()); ++i) check_one(sk_X509_value(certs->chain.get(), i));
    return problems;
}

}  // namespace postern::tls
