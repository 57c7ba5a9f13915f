// Unit tests of tls::ServerContext construction and of the `protocols` and
// `ciphers` strings: accepted forms and every refusal's exact text.

#include <catch2/catch.hpp>

#include <openssl/ssl.h>

#include <string>

#include "test_pki.hpp"
#include "tls/context.hpp"

using namespace postern::tls;
using namespace postern::tls::test;
using Catch::Matchers::StartsWith;

namespace {

std::pair<int, int> range(std::string_view text) {
    std::string error;
    auto r = parse_protocols(text, &error);
    INFO("protocols " << text << " error: " << error);
    REQUIRE(r);
    return {r->min_version, r->max_version};
}

std::string protocols_error(std::string_view text) {
    std::string error;
    CHECK_FALSE(parse_protocols(text, &error));
    return error;
}

std::string create_error(const ServerOptions& o) {
    std::string error;
    CHECK(ServerContext::create(o, &error) == nullptr);
    return error;
}

ServerOptions mail_only() {
    ServerOptions o;
    o.pkis.push_back({"mail.example.org", test_pki().mail_cert, test_pki().mail_key});
    return o;
}

}  // namespace

TEST_CASE("protocols strings in libtls form", "[tls][context]") {
    const std::pair<int, int> both{TLS1_2_VERSION, TLS1_3_VERSION};
    CHECK(range("") == both);
    CHECK(range("secure") == both);
    CHECK(range("default") == both);
    CHECK(range("all") == both);
    CHECK(range("legacy") == both);
    CHECK(range("tlsv1.2,tlsv1.3") == both);
    CHECK(range("TLSv1.2:TLSv1.3") == both);
    CHECK(range(" tlsv1.3 , tlsv1.2 ") == both);
    CHECK(range("tlsv1.2") == std::pair{TLS1_2_VERSION, TLS1_2_VERSION});
    CHECK(range("tlsv1.3") == std::pair{TLS1_3_VERSION, TLS1_3_VERSION});
    CHECK(range("all:!tlsv1.2") == std::pair{TLS1_3_VERSION, TLS1_3_VERSION});
    CHECK(range("-tlsv1.3") == std::pair{TLS1_2_VERSION, TLS1_2_VERSION});
    CHECK(range("tlsv1.0,tlsv1.1,tlsv1.2") == std::pair{TLS1_2_VERSION, TLS1_2_VERSION});
    CHECK(range("all:!tlsv1.1") == both);
}

TEST_CASE("bad protocols strings are refused with the reason", "[tls][context][bad]") {
    CHECK(protocols_error("sslv3") == "protocols \"sslv3\": unknown protocol \"sslv3\"");
    CHECK(protocols_error("tlsv1.2,tlsv9") == "protocols \"tlsv1.2,tlsv9\": unknown protocol \"tlsv9\"");
    CHECK(protocols_error("tlsv1.1") ==
          "protocols \"tlsv1.1\": no supported protocol left (TLS 1.2 and 1.3 are supported)");
    CHECK(protocols_error("all,!secure") ==
          "protocols \"all,!secure\": no supported protocol left (TLS 1.2 and 1.3 are supported)");

    ServerOptions o = mail_only();
    o.protocols = "tlsv2";
    CHECK(create_error(o) == "protocols \"tlsv2\": unknown protocol \"tlsv2\"");
}

TEST_CASE("ciphers keywords map to OpenSSL lists", "[tls][context]") {
    CHECK(cipher_list("") == "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20");
    CHECK(cipher_list("secure") == cipher_list(""));
    CHECK(cipher_list("DEFAULT") == cipher_list(""));
    CHECK(cipher_list("compat") == "HIGH:!aNULL");
    CHECK(cipher_list("legacy") == "HIGH:!aNULL");
    CHECK(cipher_list("insecure") == "ALL:!aNULL:!eNULL");
    CHECK(cipher_list("ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256");
}

TEST_CASE("create refuses bad options naming the file or option", "[tls][context][bad]") {
    const TestPki& pki = test_pki();
    SECTION("no pki") { CHECK(create_error(ServerOptions{}) == "no pki: a tls or smtps listener needs at least one"); }
    SECTION("unknown cipher") {
        ServerOptions o = mail_only();
        o.ciphers = "NO-SUCH-CIPHER";
        CHECK_THAT(create_error(o),
                   StartsWith("ciphers \"NO-SUCH-CIPHER\": error:0A0000B9:SSL routines::no cipher match"));
    }
    SECTION("missing certificate") {
        ServerOptions o;
        o.pkis.push_back({"mail.example.org", pki.dir + "/nope.crt", pki.mail_key});
        CHECK(create_error(o) == pki.dir + "/nope.crt: cannot read: No such file or directory");
    }
    SECTION("pki without a key line") {
        ServerOptions o;
        o.pkis.push_back({"mail.example.org", pki.mail_cert, ""});
        CHECK(create_error(o) == "pki mail.example.org: no key file");
    }
    SECTION("key of another certificate, in the second pki") {
        ServerOptions o = mail_only();
        o.pkis.push_back({"other.example.net", pki.other_cert, pki.mail_key});
        CHECK(create_error(o) == pki.mail_key + ": key does not match the certificate " + pki.other_cert);
    }
    SECTION("encrypted key") {
        ServerOptions o;
        o.pkis.push_back({"mail.example.org", pki.mail_cert, pki.encrypted_key});
        CHECK(create_error(o) == pki.encrypted_key + ": private key is encrypted (passphrases are not supported)");
    }
    SECTION("verify without a ca") {
        ServerOptions o = mail_only();
        o.verify_client = true;
        CHECK(create_error(o) == "verify needs a ca to check client certificates against");
    }
    SECTION("ca that is not a certificate") {
        ServerOptions o = mail_only();
        o.ca_file = pki.not_pem;
        CHECK(create_error(o) == pki.not_pem + ": not a PEM certificate");
    }
}

TEST_CASE("an expired certificate still loads (check_pki reports it)", "[tls][context]") {
    const TestPki& pki = test_pki();
    ServerOptions o;
    o.pkis.push_back({"expired.example.org", pki.expired_cert, pki.expired_key});
    std::string error;
    CHECK(ServerContext::create(o, &error) != nullptr);
    CHECK(error.empty());
}
