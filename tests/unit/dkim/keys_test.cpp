// Unit tests of key loading (filters/dkim/keys) and key records
// (filters/dkim/record): good keys in every accepted form, broken ones with
// their exact errors, and the TXT record each key publishes. Keys are made
// with OpenSSL's API in a temporary folder; none is committed.

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

#include "dkim/keys.hpp"
#include "dkim/record.hpp"
#include "support.hpp"

using namespace postern::dkim;
using namespace postern::dkim::test;

namespace {

std::string load_error(const std::string& path) {
    auto key = load_private_key(path);
    REQUIRE_FALSE(key.ok());
    return key.error().text;
}

std::string raw_public(EVP_PKEY* key) {
    std::string raw(32, '\0');
    std::size_t len = raw.size();
    REQUIRE(EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len) == 1);
    return raw;
}

// RFC 8463 A.2's Ed25519 key: the seed and the public key it gives.
constexpr std::string_view kRfcSeed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
constexpr std::string_view kRfcPublic = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

}  // namespace

TEST_CASE("keys: RSA in PKCS#8 and in the traditional form", "[dkim][keys]") {
    TempDir dir;
    const PrivateKey& rsa = rsa2048();
    for (const std::string& text : {pem_pkcs8(rsa.pkey.get()), pem_traditional(rsa.pkey.get())}) {
        auto key = load_private_key(dir.write("rsa.pem", text));
        REQUIRE(key.ok());
        CHECK(key.value().algorithm == Algorithm::RsaSha256);
        CHECK(key.value().bits == 2048);
        CHECK(EVP_PKEY_eq(key.value().pkey.get(), rsa.pkey.get()) == 1);
    }
    CHECK(pem_traditional(rsa.pkey.get()).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
}

TEST_CASE("keys: Ed25519 in PKCS#8, as openssl genpkey writes it", "[dkim][keys]") {
    TempDir dir;
    std::string text = pem_pkcs8(ed25519().pkey.get());
    CHECK(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    auto key = load_private_key(dir.write("ed.pem", text));
    REQUIRE(key.ok());
    CHECK(key.value().algorithm == Algorithm::Ed25519Sha256);
    CHECK(EVP_PKEY_eq(key.value().pkey.get(), ed25519().pkey.get()) == 1);
}

TEST_CASE("keys: a bare base64 Ed25519 seed (RFC 8463 A.2), and seed + public key", "[dkim][keys]") {
    TempDir dir;
    auto key = load_private_key(dir.write("seed.key", std::string(kRfcSeed) + "\n"));
    REQUIRE(key.ok());
    CHECK(key.value().algorithm == Algorithm::Ed25519Sha256);
    CHECK(base64_encode(raw_public(key.value().pkey.get())) == kRfcPublic);

    std::string both = *base64_decode(kRfcSeed) + *base64_decode(kRfcPublic);
    auto key64 = load_private_key(dir.write("both.key", base64_encode(both)));
    REQUIRE(key64.ok());
    CHECK(EVP_PKEY_eq(key64.value().pkey.get(), key.value().pkey.get()) == 1);

    std::string wrong = *base64_decode(kRfcSeed) + std::string(32, 'x');
    std::string path = dir.write("wrong.key", base64_encode(wrong));
    auto bad = load_private_key(path);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == KeyError::Kind::Mismatch);
    CHECK(bad.error().text == path + ": 64-byte Ed25519 key whose public half does not match its private half");
}

TEST_CASE("keys: a missing file, a folder, an unreadable file", "[dkim][keys]") {
    TempDir dir;
    std::string missing = dir.path() + "/nope.pem";
    CHECK(load_error(missing) == missing + ": cannot read: No such file or directory");
    CHECK(load_error(dir.path()) == dir.path() + ": cannot read: Is a directory");
    if (geteuid() != 0) {  // root reads a mode 000 file anyway
        std::string locked = dir.write("locked.pem", pem_pkcs8(ed25519().pkey.get()));
        REQUIRE(chmod(locked.c_str(), 0) == 0);
        CHECK(load_error(locked) == locked + ": cannot read: Permission denied");
    }
}

TEST_CASE("keys: files that are no private key", "[dkim][keys]") {
    TempDir dir;
    std::string text = dir.write("text.pem", "hello, I am not a key\n");
    CHECK(load_error(text) == text + ": not a PEM private key");
    std::string empty = dir.write("empty.pem", "");
    CHECK(load_error(empty) == empty + ": not a PEM private key");
    std::string pub = dir.write("pub.pem", pem_public(rsa2048().pkey.get()));
    CHECK(load_error(pub) == pub + ": not a PEM private key (it holds a public key)");
    // A PEM whose base64 was damaged (a line of its body cut out).
    std::string good = pem_pkcs8(rsa2048().pkey.get());
    std::size_t second = good.find('\n', good.find('\n') + 1);
    std::string cut = good.substr(0, good.find('\n') + 1) + good.substr(second + 1);
    std::string broken = dir.write("broken.pem", cut);
    CHECK(load_error(broken) == broken + ": not a PEM private key");
    // Base64 of neither 32 nor 64 bytes.
    std::string odd = dir.write("odd.key", base64_encode(std::string(31, 'k')));
    CHECK(load_error(odd) == odd + ": not a PEM private key");
}

TEST_CASE("keys: an RSA key under 1024 bits is too short", "[dkim][keys]") {
    TempDir dir;
    std::string path = dir.write("short.pem", pem_pkcs8(make_rsa(512).get()));
    auto key = load_private_key(path);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().kind == KeyError::Kind::TooShort);
    CHECK(key.error().text == path + ": RSA key of 512 bits is too short (at least 1024)");
    auto ok = load_private_key(dir.write("ok.pem", pem_traditional(make_rsa(1024).get())));
    CHECK(ok.ok());
}

TEST_CASE("keys: EC keys are not supported", "[dkim][keys]") {
    TempDir dir;
    std::string path = dir.write("ec.pem", pem_pkcs8(make_ec().get()));
    auto key = load_private_key(path);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().kind == KeyError::Kind::Unsupported);
    CHECK(key.error().text == path + ": unsupported key type (use RSA or Ed25519)");
}

TEST_CASE("keys: an encrypted key is refused, never prompted for", "[dkim][keys]") {
    TempDir dir;
    std::string path = dir.write("enc.pem", pem_encrypted(ed25519().pkey.get()));
    auto key = load_private_key(path);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().kind == KeyError::Kind::Encrypted);
    CHECK(key.error().text == path + ": encrypted private key (a passphrase is not supported)");
}

TEST_CASE("keys: a file over 1 MiB is not read whole", "[dkim][keys]") {
    TempDir dir;
    std::string path = dir.write("huge.pem", std::string(kMaxKeyFile + 10, 'A'));
    CHECK(load_error(path) == path + ": too large to be a key (over 1 MiB)");
}

TEST_CASE("record: the TXT value of an RSA key is its SubjectPublicKeyInfo", "[dkim][record]") {
    const PrivateKey& rsa = rsa2048();
    std::string txt = key_record(rsa.pkey.get());
    REQUIRE(txt.starts_with("v=DKIM1; k=rsa; p=MII"));
    auto pub = parse_key_record(txt);
    REQUIRE(pub.ok());
    CHECK(pub.value().algorithm == Algorithm::RsaSha256);
    CHECK(pub.value().bits == 2048);
    CHECK(EVP_PKEY_eq(pub.value().pkey.get(), rsa.pkey.get()) == 1);
}

TEST_CASE("record: the TXT value of an Ed25519 key is its raw 32 bytes (RFC 8463)", "[dkim][record]") {
    TempDir dir;
    auto key = load_private_key(dir.write("seed.key", kRfcSeed));
    REQUIRE(key.ok());
    CHECK(key_record(key.value().pkey.get()) == "v=DKIM1; k=ed25519; p=" + std::string(kRfcPublic));
    auto pub = parse_key_record("v=DKIM1; k=ed25519; p=" + std::string(kRfcPublic));
    REQUIRE(pub.ok());
    CHECK(pub.value().algorithm == Algorithm::Ed25519Sha256);
}

TEST_CASE("record: tags a verifier honours", "[dkim][record]") {
    std::string p = "p=" + key_record(rsa2048().pkey.get()).substr(std::string_view("v=DKIM1; k=rsa; p=").size());
    // No v= and no k= (rsa by default); t= flags; folded white space.
    auto plain = parse_key_record(p + ";\r\n t = y:s ;");
    REQUIRE(plain.ok());
    CHECK(plain.value().testing);
    CHECK(plain.value().strict);
    CHECK(parse_key_record("v=DKIM1; h=sha1:sha256; s=email; " + p).ok());
    CHECK(parse_key_record("v=DKIM1; s=*; n=notes here; " + p).ok());

    auto kind = [](std::string_view txt) {
        auto r = parse_key_record(txt);
        REQUIRE_FALSE(r.ok());
        return r.error().kind;
    };
    using K = RecordError::Kind;
    CHECK(kind("v=DKIM1; k=rsa; p=") == K::Revoked);
    CHECK(kind("v=DKIM1; k=rsa") == K::NoKey);
    CHECK(kind("k=rsa; v=DKIM1; " + p) == K::BadVersion);
    CHECK(kind("v=DKIM2; " + p) == K::BadVersion);
    CHECK(kind("v=DKIM1; h=sha1; " + p) == K::HashNotAllowed);
    CHECK(kind("v=DKIM1; s=tlsrpt; " + p) == K::NotForEmail);
    CHECK(kind("v=DKIM1; k=dsa; " + p) == K::UnknownKeyType);
    CHECK(kind("v=DKIM1; k=ed25519; " + p) == K::BadKey);  // an RSA key under k=ed25519
    CHECK(kind("v=DKIM1; k=rsa; p=!!!!") == K::BadKey);
    CHECK(kind("v=DKIM1; k=rsa; p=" + std::string(kRfcPublic)) == K::BadKey);
    CHECK(kind("v=DKIM1; p") == K::Syntax);
    CHECK(kind("") == K::Syntax);
    std::string short_rsa = key_record(make_rsa(512).get());
    CHECK(kind(short_rsa) == K::TooShort);
}
