// Unit tests of the `posternd -n` pki and ca checks: one exact line per
// problem, nothing for good files.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_pki.hpp"
#include "tls/check.hpp"

using namespace postern::tls;
using namespace postern::tls::test;
using Lines = std::vector<std::string>;

TEST_CASE("check_pki accepts a good pair", "[tls][check]") {
    const TestPki& pki = test_pki();
    CHECK(check_pki({"mail.example.org", pki.mail_cert, pki.mail_key}).empty());
    CHECK(check_pki({"other.example.net", pki.other_cert, pki.other_key}).empty());
}

TEST_CASE("check_pki names each problem file and reason", "[tls][check][bad]") {
    const TestPki& pki = test_pki();
    const std::string nope = pki.dir + "/nope.crt";

    CHECK(check_pki({"m", nope, pki.mail_key}) == Lines{nope + ": cannot read: No such file or directory"});
    CHECK(check_pki({"m", pki.mail_cert, pki.dir + "/nope.key"}) ==
          Lines{pki.dir + "/nope.key: cannot read: No such file or directory"});
    CHECK(check_pki({"m", pki.dir, pki.mail_key}) == Lines{pki.dir + ": cannot read: is a directory"});
    CHECK(check_pki({"m", pki.mail_cert, pki.other_key}) ==
          Lines{pki.other_key + ": key does not match the certificate " + pki.mail_cert});
    CHECK(check_pki({"m", pki.expired_cert, pki.expired_key}) ==
          Lines{pki.expired_cert + ": certificate expired on 2020-01-02 00:00:00 UTC"});
    CHECK(check_pki({"m", pki.future_cert, pki.future_key}) ==
          Lines{pki.future_cert + ": certificate not valid before 2099-01-01 00:00:00 UTC"});
    CHECK(check_pki({"m", pki.not_pem, pki.mail_key}) == Lines{pki.not_pem + ": not a PEM certificate"});
    CHECK(check_pki({"m", pki.mail_key, pki.mail_key}) == Lines{pki.mail_key + ": not a PEM certificate"});
    CHECK(check_pki({"m", pki.mail_cert, pki.mail_cert}) == Lines{pki.mail_cert + ": not a PEM private key"});
    CHECK(check_pki({"m", pki.mail_cert, pki.encrypted_key}) ==
          Lines{pki.encrypted_key + ": private key is encrypted (passphrases are not supported)"});
    CHECK(check_pki({"mail.example.org", "", ""}) ==
          Lines{"pki mail.example.org: no certificate file", "pki mail.example.org: no key file"});
    // Several problems at once: all reported, in file order.
    CHECK(check_pki({"m", pki.expired_cert, pki.mail_key}) ==
          Lines{pki.mail_key + ": key does not match the certificate " + pki.expired_cert,
                pki.expired_cert + ": certificate expired on 2020-01-02 00:00:00 UTC"});
}

TEST_CASE("check_pki reports a damaged certificate or key with OpenSSL's reason", "[tls][check][bad]") {
    const TestPki& pki = test_pki();
    const std::string damaged = pki.dir + "/damaged.crt";
    std::ofstream(damaged) << "-----BEGIN CERTIFICATE-----\nnot*base64*at*all\n-----END CERTIFICATE-----\n";
    auto lines = check_pki({"m", damaged, pki.mail_key});
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Matchers::StartsWith(damaged + ": bad PEM certificate: error:"));
    std::filesystem::remove(damaged);

    const std::string bad_key = pki.dir + "/damaged.key";
    std::ofstream(bad_key) << "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    lines = check_pki({"m", pki.mail_cert, bad_key});
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Matchers::StartsWith(bad_key + ": bad PEM private key: error:"));
    std::filesystem::remove(bad_key);
}

TEST_CASE("a certificate file may carry its chain", "[tls][check]") {
    const TestPki& pki = test_pki();
    const std::string chained = pki.dir + "/chained.crt";
    {
        std::ofstream out(chained);
        out << std::ifstream(pki.mail_cert).rdbuf() << std::ifstream(pki.ca_cert).rdbuf();
    }
    std::string error;
    auto certs = load_certificates(chained, &error);
    REQUIRE(certs);
    CHECK(sk_X509_num(certs->chain.get()) == 1);
    CHECK(check_pki({"m", chained, pki.mail_key}).empty());
    // And a file holding both the certificate and its key serves as both.
    {
        std::ofstream out(chained, std::ios::app);
        out << std::ifstream(pki.mail_key).rdbuf();
    }
    CHECK(check_pki({"m", chained, chained}).empty());
    std::filesystem::remove(chained);
}

TEST_CASE("check_ca", "[tls][check]") {
    const TestPki& pki = test_pki();
    CHECK(check_ca(pki.ca_cert).empty());
    CHECK(check_ca(pki.dir + "/none.pem") == Lines{pki.dir + "/none.pem: cannot read: No such file or directory"});
    CHECK(check_ca(pki.not_pem) == Lines{pki.not_pem + ": not a PEM certificate"});
    CHECK(check_ca(pki.expired_cert) ==
          Lines{pki.expired_cert +
                ": CA certificate CN=expired.example.org,O=Postern Test expired on 2020-01-02 00:00:00 UTC"});
}
