// dkim/record.cpp — DKIM key records, made and read.

#include "dkim/record.hpp"

#include <openssl/x509.h>

#include "dkim/keys.hpp"
#include "dkim/tags.hpp"
#include "postern/support/ascii.hpp"

namespace postern::dkim {

namespace {

RecordError fail(RecordError::Kind kind, std::string text) { return RecordError{kind, std::move(text)}; }

// True when the colon list `value` holds `want` (case-insensitive).
bool list_has(std::string_view value, std::string_view want) {
    for (std::string_view item : split_colons(value))
        if (util::iequals(item, want)) return true;
    return false;
}

std::string rsa_public_der(EVP_PKEY* key) {
    int len = i2d_PUBKEY(key, nullptr);
    if (len <= 0) return "";
    std::string der(static_cast<std::size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_PUBKEY(key, &p) != len) return "";
    return der;
}

std::string ed25519_public_raw(EVP_PKEY* key) {
    std::string raw(32, '\0');
    std::size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1) return "";
    raw.resize(len);
    return raw;
}

// RFC 6376 asks for a SubjectPublicKeyInfo; some publish the bare PKCS#1
// RSAPublicKey, and common verifiers accept it, so this one does too.
PkeyPtr rsa_from_der(std::string_view der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    if (!key) {
        p = reinterpret_cast<const unsigned char*>(der.data());
        key.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(der.size())));
    }
    openssl_errors();
    return key;
}

PkeyPtr ed25519_from_raw(std::string_view raw) {
    if (raw.size() != 32) return nullptr;
    PkeyPtr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                            reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
    openssl_errors();
    return key;
}

// The checks of the record's tags other than p=; the algorithm from k=.
Result<Algorithm, RecordError> check_tags(const TagList& tags) {
    if (auto v = tags.value("v"); v && (*v != "DKIM1" || tags.tags().front().name != "v"))
        return fail(RecordError::Kind::BadVersion, "not a DKIM1 key record (v= must be DKIM1 and come first)");
    if (auto h = tags.value("h"); h && !list_has(*h, "sha256"))
        return fail(RecordError::Kind::HashNotAllowed, "the key is not for sha256 (h=" + std::string(*h) + ")");
    if (auto s = tags.value("s"); s && !list_has(*s, "email") && !list_has(*s, "*"))
        return fail(RecordError::Kind::NotForEmail, "the key is not for email (s=" + std::string(*s) + ")");
    std::string_view k = tags.value("k").value_or("rsa");
    if (util::iequals(k, "rsa")) return Algorithm::RsaSha256;
    if (util::iequals(k, "ed25519")) return Algorithm::Ed25519Sha256;
    return fail(RecordError::Kind::UnknownKeyType, "unknown key type k=" + std::string(k));
}

}  // namespace

std::string key_record(EVP_PKEY* key) {
    std::optional<Algorithm> alg = algorithm_of(key);
    if (!alg) return "";
    std::string pub = *alg == Algorithm::RsaSha256 ? rsa_public_der(key) : ed25519_public_raw(key);
    if (pub.empty()) return "";
    return "v=DKIM1; k=" + std::string(key_type_name(*alg)) + "; p=" + base64_encode(pub);
}

Result<PublicKey, RecordError> parse_key_record(std::string_view txt) {
    auto tags = TagList::parse(txt);
    if (!tags) return fail(RecordError::Kind::Syntax, "malformed key record: " + tags.error().text);
    auto alg = check_tags(tags.value());
    if (!alg) return alg.error();
    std::optional<std::string_view> p = tags.value().value("p");
    if (!p) return fail(RecordError::Kind::NoKey, "key record without p=");
    if (p->empty()) return fail(RecordError::Kind::Revoked, "key revoked (empty p=)");
    std::optional<std::string> der = base64_decode(*p);
    if (!der) return fail(RecordError::Kind::BadKey, "p= is not base64");
    PkeyPtr key = alg.value() == Algorithm::RsaSha256 ? rsa_from_der(*der) : ed25519_from_raw(*der);
    if (!key || algorithm_of(key.get()) != alg.value())
        return fail(RecordError::Kind::BadKey,
                    "p= is not a " + std::string(key_type_name(alg.value())) + " public key");
    PublicKey out;
    out.bits = EVP_PKEY_get_bits(key.get());
    if (alg.value() == Algorithm::RsaSha256 && out.bits < kMinRsaBits)
        return fail(RecordError::Kind::TooShort, "RSA key of " + std::to_string(out.bits) + " bits is too short");
    out.pkey = std::move(key);
    out.algorithm = alg.value();
    if (auto t = tags.value().value("t")) {
        out.testing = list_has(*t, "y");
        out.strict = list_has(*t, "s");
    }
    return out;
}

}  // namespace postern::dkim
