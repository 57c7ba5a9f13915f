// dkim/keys.cpp — private signing keys from PEM or base64 Ed25519 files.

#include "dkim/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include <cstring>

#include "dkim/file.hpp"

namespace postern::dkim {

namespace {

using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free_all>>;

// The key's bytes pass through this buffer: wiped when it goes, so that a
// freed heap block does not keep a private key for the next allocation.
struct SecretText {
    std::string text;
    SecretText() = default;
    SecretText(const SecretText&) = delete;
    SecretText& operator=(const SecretText&) = delete;
    ~SecretText() { OPENSSL_cleanse(text.data(), text.size()); }
};

KeyError error(KeyError::Kind kind, const std::string& path, std::string_view why) {
    return KeyError{kind, path + ": " + std::string(why)};
}

// PEM_read_bio_PrivateKey asks for a passphrase on the terminal unless it is
// given a callback: ours refuses, and remembers it was asked.
int no_passphrase(char*, int, int, void* asked) {
    *static_cast<bool*>(asked) = true;
    return -1;
}

Result<PrivateKey, KeyError> check_key(PkeyPtr pkey, const std::string& path) {
    std::optional<Algorithm> alg = algorithm_of(pkey.get());
    if (!alg) return error(KeyError::Kind::Unsupported, path, "unsupported key type (use RSA or Ed25519)");
    int bits = EVP_PKEY_get_bits(pkey.get());
    if (*alg == Algorithm::RsaSha256 && bits < kMinRsaBits)
        return error(KeyError::Kind::TooShort, path,
                     "RSA key of " + std::to_string(bits) + " bits is too short (at least " +
                         std::to_string(kMinRsaBits) + ")");
    return PrivateKey{std::move(pkey), *alg, bits};
}

Result<PrivateKey, KeyError> parse_pem(std::string_view contents, const std::string& path) {
    BioPtr bio(BIO_new_mem_buf(contents.data(), static_cast<int>(contents.size())));
    bool asked = false;
    PkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, &asked) : nullptr);
    std::string why = openssl_errors();  // drained either way
    if (pkey) return check_key(std::move(pkey), path);
    if (asked) return error(KeyError::Kind::Encrypted, path, "encrypted private key (a passphrase is not supported)");
    // OpenSSL 3's decoders know EC, DSA, X25519... keys; a PEM private key
    // it could decode but we cannot use would have come back above.
    if (contents.find("PUBLIC KEY-----") != std::string_view::npos &&
        contents.find("PRIVATE KEY-----") == std::string_view::npos)
        return error(KeyError::Kind::NotPem, path, "not a PEM private key (it holds a public key)");
    return error(KeyError::Kind::NotPem, path, "not a PEM private key");
}

// A bare base64 Ed25519 key: 32 bytes of seed, or 64 of seed + public key.
std::optional<Result<PrivateKey, KeyError>> parse_raw_ed25519(std::string_view contents, const std::string& path) {
    std::optional<std::string> raw = base64_decode(contents);
    if (!raw) return std::nullopt;
    SecretText secret;
    secret.text = std::move(*raw);
    if (secret.text.size() != 32 && secret.text.size() != 64) return std::nullopt;
    const auto* seed = reinterpret_cast<const unsigned char*>(secret.text.data());
    PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, 32));
    openssl_errors();
    if (!pkey) return std::nullopt;
    if (secret.text.size() == 64) {
        unsigned char pub[32];
        std::size_t len = sizeof pub;
        if (EVP_PKEY_get_raw_public_key(pkey.get(), pub, &len) != 1 || len != 32 ||
            std::memcmp(pub, secret.text.data() + 32, 32) != 0)
            return error(KeyError::Kind::Mismatch, path,
                         "64-byte Ed25519 key whose public half does not match its private half");
    }
    return check_key(std::move(pkey), path);
}

}  // namespace

Result<PrivateKey, KeyError> parse_private_key(std::string_view contents, const std::string& path) {
    if (contents.find("-----BEGIN") != std::string_view::npos) return parse_pem(contents, path);
    if (auto raw = parse_raw_ed25519(contents, path)) return std::move(*raw);
    return error(KeyError::Kind::NotPem, path, "not a PEM private key");
}

Result<PrivateKey, KeyError> load_private_key(const std::string& path) {
    SecretText file;
    if (auto why = read_file(path, file.text, kMaxKeyFile))
        return error(KeyError::Kind::Unreadable, path, "cannot read: " + *why);
    if (file.text.size() > kMaxKeyFile)
        return error(KeyError::Kind::TooLarge, path, "too large to be a key (over 1 MiB)");
    return parse_private_key(file.text, path);
}

}  // namespace postern::dkim
