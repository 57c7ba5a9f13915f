// tests/unit/dkim/support.hpp — what the DKIM tests share: a temporary
// folder, keys made with OpenSSL's API (never committed), their PEM forms,
// and messages split into header fields and body lines as the filter will
// give them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dkim/crypto.hpp"
#include "dkim/headers.hpp"
#include "dkim/keys.hpp"

namespace postern::dkim::test {

// A fresh folder under $TMPDIR, removed with everything in it at the end.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    // Writes `contents` to path()/name and gives its path.
    std::string write(const std::string& name, std::string_view contents) const;

private:
    std::string path_;
};

PkeyPtr make_rsa(int bits);
PkeyPtr make_ed25519();
PkeyPtr make_ec();

std::string pem_pkcs8(EVP_PKEY* key);        // BEGIN PRIVATE KEY
std::string pem_traditional(EVP_PKEY* key);  // BEGIN RSA PRIVATE KEY
std::string pem_encrypted(EVP_PKEY* key);    // BEGIN ENCRYPTED PRIVATE KEY, passphrase "secret"
std::string pem_public(EVP_PKEY* key);       // BEGIN PUBLIC KEY

// Loaded once per run: RSA 2048 takes a while to make.
const PrivateKey& rsa2048();
const PrivateKey& ed25519();

// A message as the filter sees it: header fields, then body lines (the
// message's "\r\n"-separated lines after the empty one, the last line end
// not making an extra empty line).
struct Message {
    std::vector<HeaderField> fields;
    std::vector<std::string> body;
};
Message split_message(std::string_view text);

// The example message of RFC 6376 A.1 and RFC 8463 A.3.
std::string_view joe_message();

// `lines` (a field we made) + the message, lines joined with CRLF.
std::string prepend_field(const std::vector<std::string>& lines, std::string_view message);

// "\n" -> "\r\n", so that test texts can be written plainly.
std::string crlf(std::string_view text);

}  // namespace postern::dkim::test
