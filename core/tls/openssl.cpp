// tls/openssl.cpp — error text and small formatters over OpenSSL objects.

#include "tls/openssl.hpp"

#include <openssl/err.h>

#include <ctime>

namespace postern::tls {

std::string openssl_errors() {
    std::string text;
    // The queue is bounded by OpenSSL (ERR_NUM_ERRORS); the cap only guards
    // against a library that kept pushing.
    for (int i = 0; i < 64; ++i) {
        unsigned long e = ERR_get_error();
        if (e == 0) break;
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!text.empty()) text += "; ";
        text += buf;
    }
    ERR_clear_error();
    return text;
}

std::string format_time(const ASN1_TIME* t) {
    struct tm tm {};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
    char buf[64];
    if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) return "?";
    return buf;
}

std::string format_name(const X509_NAME* name) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || name == nullptr) return "";
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::string sha256_fingerprint(const X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "SHA256:";
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

}  // namespace postern::tls
