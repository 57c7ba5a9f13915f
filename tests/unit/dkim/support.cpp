// tests/unit/dkim/support.cpp — keys, folders and messages for the DKIM tests.

#include "support.hpp"

#include <catch2/catch.hpp>

#include <openssl/pem.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace postern::dkim::test {

namespace {

using BioPtr = std::unique_ptr<BIO, FreeWith<BIO_free_all>>;

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(len));
}

template <class Write>
std::string pem(Write write) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    REQUIRE(bio);
    REQUIRE(write(bio.get()) == 1);
    return bio_text(bio.get());
}

const PrivateKey& cached(PkeyPtr (*make)(), PrivateKey& slot) {
    if (!slot.pkey) {
        PkeyPtr key = make();
        slot.algorithm = *algorithm_of(key.get());
        slot.bits = EVP_PKEY_get_bits(key.get());
        slot.pkey = std::move(key);
    }
    return slot;
}

}  // namespace

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "postern-dkim-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, std::string_view contents) const {
    std::string p = path_ + "/" + name;
    std::ofstream out(p, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    REQUIRE(out.good());
    return p;
}

PkeyPtr make_rsa(int bits) {
    PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)));
    REQUIRE(k);
    return k;
}

PkeyPtr make_ed25519() {
    PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    REQUIRE(k);
    return k;
}

PkeyPtr make_ec() {
    PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    REQUIRE(k);
    return k;
}

std::string pem_pkcs8(EVP_PKEY* key) {
    return pem([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

std::string pem_traditional(EVP_PKEY* key) {
    return pem(
        [&](BIO* b) { return PEM_write_bio_PrivateKey_traditional(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

std::string pem_encrypted(EVP_PKEY* key) {
    static char pass[] = "secret";
    return pem(
        [&](BIO* b) { return PEM_write_bio_PKCS8PrivateKey(b, key, EVP_aes_256_cbc(), nullptr, 0, nullptr, pass); });
}

std::string pem_public(EVP_PKEY* key) {
    return pem([&](BIO* b) { return PEM_write_bio_PUBKEY(b, key); });
}

const PrivateKey& rsa2048() {
    static PrivateKey key;
    return cached([] { return make_rsa(2048); }, key);
}

const PrivateKey& ed25519() {
    static PrivateKey key;
    return cached(make_ed25519, key);
}

Message split_message(std::string_view text) {
    Message m;
    HeaderCollector headers;
    bool in_body = false;
    while (!text.empty()) {
        std::size_t end = text.find("\r\n");
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 2);
        if (in_body) {
            m.body.emplace_back(line);
        } else if (line.empty()) {
            in_body = true;
        } else {
            headers.line(line);
        }
    }
    m.fields = headers.take();
    return m;
}

std::string_view joe_message() {
    static const std::string text = crlf("From: Joe SixPack <joe@football.example.com>\n"
                                         "To: Suzie Q <suzie@shopping.example.net>\n"
                                         "Subject: Is dinner ready?\n"
                                         "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
                                         "Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
                                         "\n"
                                         "Hi.\n"
                                         "\n"
                                         "We lost the game.  Are you hungry yet?\n"
                                         "\n"
                                         "Joe.\n");
    return text;
}

std::string prepend_field(const std::vector<std::string>& lines, std::string_view message) {
    std::string out;
    for (const std::string& l : lines) out += l + "\r\n";
    out.append(message);
    return out;
}

std::string crlf(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += '\r';
        out += c;
    }
    return out;
}

}  // namespace postern::dkim::test
