// dkim/crypto.cpp — OpenSSL, wrapped for the DKIM core.

#include "dkim/crypto.hpp"

#include <openssl/err.h>

#include <array>

#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

bool is_base64_char(char c) { return util::is_alnum(c) || c == '+' || c == '/'; }
bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// What DigestSign/DigestVerify are fed: RSA hashes the input itself, Ed25519
// (RFC 8463) is given the SHA-256 digest of it and hashes nothing (md NULL).
struct Prepared {
    const EVP_MD* md = nullptr;
    std::string digest;  // Ed25519 only
};

Prepared prepare(Algorithm a, std::string_view input) {
    if (a == Algorithm::RsaSha256) return {EVP_sha256(), {}};
    return {nullptr, sha256(input)};
}

}  // namespace

std::string_view algorithm_name(Algorithm a) {
    switch (a) {
    case Algorithm::RsaSha256: return "rsa-sha256";
    case Algorithm::Ed25519Sha256: return "ed25519-sha256";
    }
    return "?";
}

std::optional<Algorithm> algorithm_from_name(std::string_view name) {
    if (util::iequals(name, "rsa-sha256")) return Algorithm::RsaSha256;
    if (util::iequals(name, "ed25519-sha256")) return Algorithm::Ed25519Sha256;
    return std::nullopt;
}

std::string_view key_type_name(Algorithm a) { return a == Algorithm::RsaSha256 ? "rsa" : "ed25519"; }

std::optional<Algorithm> algorithm_of(const EVP_PKEY* key) {
    if (key == nullptr) return std::nullopt;
    // Base id, so that an RSA key held by a provider still counts; RSA-PSS
    // keys have their own id and cannot make PKCS#1 v1.5 signatures.
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: return Algorithm::RsaSha256;
    case EVP_PKEY_ED25519: return Algorithm::Ed25519Sha256;
    default: return std::nullopt;
    }
}

std::string openssl_errors() {
    std::string text;
    // The queue is bounded by OpenSSL; the cap only guards against a library
    // that kept pushing.
    for (int i = 0; i < 64; ++i) {
        unsigned long e = ERR_get_error();
        if (e == 0) break;
        std::array<char, 256> buf{};
        ERR_error_string_n(e, buf.data(), buf.size());
        if (!text.empty()) text += "; ";
        text += buf.data();
    }
    ERR_clear_error();
    return text;
}

std::string sha256(std::string_view data) {
    std::string out(EVP_MAX_MD_SIZE, '\0');
    unsigned int len = 0;
    // EVP_Digest with SHA-256 cannot fail short of memory exhaustion; an
    // empty result then makes every comparison fail, never pass.
    if (EVP_Digest(data.data(), data.size(), bytes(out), &len, EVP_sha256(), nullptr) != 1) len = 0;
    out.resize(len);
    return out;
}

std::string base64_encode(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(bytes(out), bytes(in), static_cast<int>(in.size()));
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    std::string clean;
    clean.reserve(text.size());
    std::size_t padding = 0;
    for (char c : text) {
        if (is_fws(c)) continue;
        if (c == '=') {
            ++padding;
        } else if (!is_base64_char(c) || padding > 0) {
            return std::nullopt;  // a stranger, or data after the padding
        }
        clean += c;
    }
    if (clean.size() % 4 != 0 || padding > 2) return std::nullopt;
    if (clean.empty()) return std::string();
    std::string out(clean.size() / 4 * 3, '\0');
    // EVP_DecodeBlock counts padding as data bytes: drop them after.
    int n = EVP_DecodeBlock(bytes(out), bytes(clean), static_cast<int>(clean.size()));
    if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
    out.resize(out.size() - padding);
    return out;
}

std::optional<std::string> sign_input(Algorithm a, EVP_PKEY* key, std::string_view input, std::string* error) {
    if (algorithm_of(key) != a) {
        if (error) *error = "the key is not a " + std::string(key_type_name(a)) + " key";
        return std::nullopt;
    }
    Prepared p = prepare(a, input);
    std::string_view data = p.md ? input : std::string_view(p.digest);
    MdCtxPtr ctx(EVP_MD_CTX_new());
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, p.md, nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, bytes(data), data.size()) != 1) {
        if (error) *error = openssl_errors();
        return std::nullopt;
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), bytes(sig), &len, bytes(data), data.size()) != 1) {
        if (error) *error = openssl_errors();
        return std::nullopt;
    }
    sig.resize(len);
    return sig;
}

bool verify_input(Algorithm a, EVP_PKEY* key, std::string_view input, std::string_view signature) {
    if (algorithm_of(key) != a) return false;
    Prepared p = prepare(a, input);
    std::string_view data = p.md ? input : std::string_view(p.digest);
    MdCtxPtr ctx(EVP_MD_CTX_new());
    bool good = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, p.md, nullptr, key) == 1 &&
                EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(data), data.size()) == 1;
    // A bad signature leaves reasons on the queue; they are not news here
    // and must not leak into the next caller's error text.
    ERR_clear_error();
    return good;
}

}  // namespace postern::dkim
