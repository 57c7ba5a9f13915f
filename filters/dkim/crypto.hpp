// dkim/crypto.hpp — the DKIM core's one boundary with OpenSSL: owners for its
// objects, its error queue as text, SHA-256, base64, and the two signature
// algorithms DKIM signers may use today.
//
//   rsa-sha256      RFC 6376 3.3.1: RSASSA-PKCS1-v1_5 over SHA-256 of the
//                   header hash input.
//   ed25519-sha256  RFC 8463 3: PureEdDSA (Ed25519) over the 32-byte
//                   SHA-256 digest of the header hash input, that is, the
//                   digest is the message Ed25519 signs, not the input.
//
// rsa-sha1 is not here on purpose: RFC 8301 forbids signing with it and
// verifiers must not consider it valid.
//
// Depends on: OpenSSL 3 (libcrypto).
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace postern::dkim {

// unique_ptr deleter calling an OpenSSL *_free function.
template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const noexcept {
        Free(p);
    }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, FreeWith<EVP_MD_CTX_free>>;

enum class Algorithm { RsaSha256, Ed25519Sha256 };

// "rsa-sha256", "ed25519-sha256": the a= tag's values.
std::string_view algorithm_name(Algorithm a);
// The a= value, case-insensitive (RFC 6376 3.2: tag values are, for a=).
std::optional<Algorithm> algorithm_from_name(std::string_view name);
// "rsa", "ed25519": the key record's k= values.
std::string_view key_type_name(Algorithm a);

// Which algorithm a key signs with: RSA and Ed25519 keys only.
std::optional<Algorithm> algorithm_of(const EVP_PKEY* key);

// Drains this thread's OpenSSL error queue into one line
// ("error:1E08010C:DECODER routines::unsupported; ...", "" when empty).
std::string openssl_errors();

// The raw 32-byte SHA-256 digest.
std::string sha256(std::string_view data);

// Standard base64 with padding, no line breaks.
std::string base64_encode(std::string_view bytes);
// Base64 as DKIM writes it (RFC 6376 2.4): folding white space (SP, HTAB,
// CR, LF) may appear anywhere and is ignored. nullopt for any other
// character, a length that is not a multiple of 4, or misplaced padding.
std::optional<std::string> base64_decode(std::string_view text);

// Signs the header hash input with the key's algorithm (see above). nullopt
// with OpenSSL's reason in *error when OpenSSL fails (a key that cannot
// sign: a bug or a broken library, not bad input).
std::optional<std::string> sign_input(Algorithm a, EVP_PKEY* key, std::string_view input, std::string* error);

// True when `signature` is a's signature of `input` by `key`'s private half.
bool verify_input(Algorithm a, EVP_PKEY* key, std::string_view input, std::string_view signature);

}  // namespace postern::dkim
