// dkim/keys.hpp — private signing keys, loaded from files.
//
// A key file is one of:
//  - PEM, PKCS#8 ("BEGIN PRIVATE KEY": `openssl genpkey -algorithm ed25519`
//    or `-algorithm rsa`) or traditional RSA ("BEGIN RSA PRIVATE KEY":
//    `openssl genrsa`, what filter-dkimsign and opendkim users have);
//  - a bare base64 Ed25519 key, 32 bytes (the seed, as RFC 8463 A.2 prints
//    it) or 64 bytes (seed then public key, libsodium's and rspamd's form).
// The algorithm follows from the key: RSA signs rsa-sha256, Ed25519 signs
// ed25519-sha256. RSA keys under 1024 bits are refused (RFC 8301: verifiers
// must not accept them); encrypted keys are refused, since a filter started
// by the daemon has no one to ask for the passphrase.
//
// Errors are complete, user-facing lines naming the file:
//   KEYFILE: cannot read: No such file or directory
//   KEYFILE: not a PEM private key
//   KEYFILE: RSA key of 512 bits is too short (at least 1024)
//   KEYFILE: unsupported key type (use RSA or Ed25519)
//
// Depends on: dkim/crypto, dkim/result; reads the file (the core's only I/O).
#pragma once

#include <string>

#include "dkim/crypto.hpp"
#include "dkim/result.hpp"

namespace postern::dkim {

// RFC 8301 3.2: verifiers must not consider keys under 1024 bits valid.
inline constexpr int kMinRsaBits = 1024;
// A key file is a few kilobytes; anything far larger is the wrong file.
inline constexpr std::size_t kMaxKeyFile = 1 << 20;

struct PrivateKey {
    PkeyPtr pkey;  // never null in a loaded key
    Algorithm algorithm = Algorithm::RsaSha256;
    int bits = 0;  // as OpenSSL counts them (Ed25519: 253)
};

struct KeyError {
    enum class Kind {
        Unreadable,   // open/read failed (errno's text follows)
        TooLarge,     // over kMaxKeyFile
        NotPem,       // not a PEM private key nor a base64 Ed25519 key
        Encrypted,    // PEM with a passphrase
        TooShort,     // RSA under kMinRsaBits
        Unsupported,  // EC, DSA, RSA-PSS, X25519...
        Mismatch,     // a 64-byte Ed25519 key whose halves do not belong together
    };
    Kind kind = Kind::Unreadable;
    std::string text;  // "KEYFILE: why"
};

// Reads and parses `path`.
Result<PrivateKey, KeyError> load_private_key(const std::string& path);

// Parses key file contents; `path` only names the key in errors.
Result<PrivateKey, KeyError> parse_private_key(std::string_view contents, const std::string& path);

}  // namespace postern::dkim
