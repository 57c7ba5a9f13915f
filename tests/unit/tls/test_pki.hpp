// tests/unit/tls/test_pki.hpp — certificates and keys for the TLS tests,
// made with OpenSSL's API in a temporary folder once per test run (EC P-256
// and Ed25519, so it takes milliseconds) and removed at exit. No key is ever committed.
#pragma once

#include <string>

namespace postern::tls::test {

struct TestPki {
    std::string dir;
    std::string ca_cert, ca_key;            // "Postern Test CA", CA:TRUE
    std::string mail_cert, mail_key;        // CN=mail.example.org, SAN mail.example.org + smtp.example.org, by the CA
    std::string other_cert, other_key;      // CN=other.example.net, SAN *.other.example.net, Ed25519, by the CA
    std::string expired_cert, expired_key;  // valid 2020-01-01 .. 2020-01-02, by the CA
    std::string future_cert, future_key;    // valid from 2099-01-01, by the CA
    std::string client_cert, client_key;    // CN=client.example.org, O=Postern Test, by the CA
    std::string selfsigned_cert, selfsigned_key;  // CN=rogue.example.com, self-signed
    std::string encrypted_key;                    // mail_key's key, PEM with a passphrase
    std::string not_pem;                          // a text file
    std::string client_fingerprint;               // "SHA256:..." of client_cert, computed apart
};

// Generated on first use; REQUIREs success.
const TestPki& test_pki();

}  // namespace postern::tls::test
