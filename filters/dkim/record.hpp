// dkim/record.hpp — the DNS key record (RFC 6376 3.6.1, RFC 8463 4), both
// ways: the TXT value to publish for a signing key, and the public key a
// verifier reads from the TXT value it found.
//
//   RSA      v=DKIM1; k=rsa; p=BASE64(DER SubjectPublicKeyInfo)
//   Ed25519  v=DKIM1; k=ed25519; p=BASE64(the raw 32-byte public key)
//
// The DNS lookup itself (SELECTOR._domainkey.DOMAIN, TXT) is the program's.
//
// Depends on: dkim/crypto, dkim/tags, dkim/result.
#pragma once

#include <string>
#include <string_view>

#include "dkim/crypto.hpp"
#include "dkim/result.hpp"

namespace postern::dkim {

// The TXT value publishing `key`'s public half; "" for a key that is
// neither RSA nor Ed25519 (loaded keys always are).
std::string key_record(EVP_PKEY* key);

struct PublicKey {
    PkeyPtr pkey;
    Algorithm algorithm = Algorithm::RsaSha256;  // from k=
    int bits = 0;
    bool testing = false;  // t=y: the domain is testing DKIM
    bool strict = false;   // t=s: i= must be d= itself, not a subdomain
};

struct RecordError {
    enum class Kind {
        Syntax,          // not a tag list
        BadVersion,      // v= not DKIM1, or not the first tag
        NoKey,           // no p= tag
        Revoked,         // p= empty: the key was withdrawn
        UnknownKeyType,  // k= neither rsa nor ed25519
        HashNotAllowed,  // h= without sha256
        NotForEmail,     // s= without email or *
        BadKey,          // p= not base64, or not a key of type k=
        TooShort,        // RSA under 1024 bits (RFC 8301)
    };
    Kind kind = Kind::Syntax;
    std::string text;  // "key revoked (empty p=)"...
};

// `txt` is the record's value, its character-strings already joined.
Result<PublicKey, RecordError> parse_key_record(std::string_view txt);

}  // namespace postern::dkim
