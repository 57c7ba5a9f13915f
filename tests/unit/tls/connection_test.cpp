// Unit tests of tls::Connection against a real OpenSSL client over memory
// BIOs: handshake and data both ways, large writes, SNI certificate choice,
// protocol versions, client certificates, and garbage on the wire.

#include <catch2/catch.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <string>

#include "test_client.hpp"
#include "test_pki.hpp"
#include "tls/connection.hpp"
#include "tls/context.hpp"

using namespace postern::tls;
using namespace postern::tls::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// Counts the TLS records in a stream of ciphertext and checks their framing.
int count_records(const std::string& bytes, int content_type) {
    int count = 0;
    size_t pos = 0;
    while (pos + 5 <= bytes.size()) {
        auto type = static_cast<unsigned char>(bytes[pos]);
        size_t len = (static_cast<unsigned char>(bytes[pos + 3]) << 8) | static_cast<unsigned char>(bytes[pos + 4]);
        REQUIRE(len <= 16384 + 256);
        if (type == content_type) ++count;
        pos += 5 + len;
    }
    REQUIRE(pos == bytes.size());
    return count;
}

std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    return s;
}

}  // namespace

TEST_CASE("handshake completes and data flows both ways", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client({.sni = "mail.example.org"});
    CHECK_FALSE(server.handshake_done());
    CHECK(server.version().empty());

    Outcome o = pump(client, server);
    INFO("server: " << server.error() << " client: " << client.error());
    REQUIRE(o.server_ok);
    REQUIRE(o.client_ok);
    CHECK(client.verify_result() == X509_V_OK);  // chain signed by the test CA
    CHECK(server.version() == "TLSv1.3");
    CHECK(server.cipher() == "TLS_AES_256_GCM_SHA384");
    CHECK(server.bits() == 256);
    CHECK(server.sni() == "mail.example.org");
    CHECK_FALSE(server.peer_certificate());
    CHECK_FALSE(server.peer_verified());
    CHECK(server.peer_subject().empty());
    CHECK(server.peer_fingerprint().empty());

    REQUIRE(client.write("EHLO client.example.org\r\n"));
    REQUIRE(exchange(client, server));
    std::string got;
    REQUIRE(server.read(&got));
    CHECK(got == "EHLO client.example.org\r\n");
    got.clear();
    REQUIRE(server.read(&got));  // read() hands data over once
    CHECK(got.empty());

    REQUIRE(server.write("250-mail.example.org\r\n"));
    REQUIRE(server.write("250 HELP\r\n"));
    REQUIRE(exchange(client, server));
    REQUIRE(client.read(&got));
    CHECK(got == "250-mail.example.org\r\n250 HELP\r\n");
}

TEST_CASE("a 1 MB write is split into records and arrives whole", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client;
    REQUIRE(pump(client, server).server_ok);
    client.poll();  // take the session tickets

    const std::string big = pattern(1 << 20);
    REQUIRE(server.write(big));
    std::string wire = server.take_ciphertext();
    CHECK(wire.size() > big.size());
    CHECK(count_records(wire, 23) >= 64);  // application_data, at most 16 KiB each
    client.receive(wire);
    std::string got;
    REQUIRE(client.read(&got));
    CHECK(got.size() == big.size());
    CHECK(got == big);

    // And the other way: the client's records arrive in pieces of any size.
    REQUIRE(client.write(big));
    std::string up = client.take_ciphertext();
    std::string received;
    for (size_t pos = 0; pos < up.size(); pos += 10007) {
        REQUIRE(server.feed(std::string_view(up).substr(pos, 10007)));
        REQUIRE(server.read(&received));
    }
    CHECK(received == big);
}

TEST_CASE("data written before the handshake is sent after it (SMTPS banner)", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    REQUIRE(server.write("220 mail.example.org ESMTP postern\r\n"));
    CHECK(server.take_ciphertext().empty());  // nothing before the client speaks
    Client client;
    REQUIRE(pump(client, server).server_ok);
    std::string got;
    REQUIRE(client.read(&got));
    CHECK(got == "220 mail.example.org ESMTP postern\r\n");
}

TEST_CASE("bytes in the same read as the client's Finished are not lost", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client;
    // Client hello, server flight, then client Finished + EHLO in one chunk.
    client.step();
    REQUIRE(exchange(client, server));
    REQUIRE(client.step());
    REQUIRE(client.write("EHLO x\r\n"));
    REQUIRE(server.feed(client.take_ciphertext()));
    CHECK(server.handshake_done());
    std::string got;
    REQUIRE(server.read(&got));
    CHECK(got == "EHLO x\r\n");
}

TEST_CASE("shutdown sends close_notify, and the peer's close_notify is seen", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client;
    REQUIRE(pump(client, server).server_ok);

    REQUIRE(SSL_shutdown(client.ssl()) == 0);  // client's close_notify
    REQUIRE(server.feed(client.take_ciphertext()));
    CHECK(server.peer_closed());
    CHECK_FALSE(server.failed());

    server.shutdown();
    client.receive(server.take_ciphertext());
    CHECK(SSL_shutdown(client.ssl()) == 1);  // both sides closed
    CHECK_FALSE(server.write("late"));
    CHECK(server.error() == "TLS write after shutdown");
}

TEST_CASE("garbage bytes fail the handshake with OpenSSL's reason", "[tls][connection][bad]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    CHECK_FALSE(server.feed("EHLO client.example.org\r\n"));
    CHECK(server.failed());
    CHECK_THAT(server.error(), StartsWith("TLS handshake failed: error:0A00010B:SSL routines::wrong version number"));
    CHECK_FALSE(server.feed("\x16\x03\x01\x00\x05hello"));  // stays failed
    std::string out;
    CHECK_FALSE(server.read(&out));
    CHECK(out.empty());
    CHECK_FALSE(server.write("x"));
    CHECK_FALSE(server.handshake_done());

    // A ClientHello-shaped record with nonsense inside.
    Connection second(*ctx);
    std::string record = std::string("\x16\x03\x01\x00\x08", 5) + std::string(8, '\xff');
    CHECK_FALSE(second.feed(record));
    CHECK_THAT(second.error(), StartsWith("TLS handshake failed: error:"));
    std::string alert = second.take_ciphertext();
    REQUIRE(alert.size() >= 7);
    CHECK(alert[0] == '\x15');  // an alert record, for the loop to send before closing
}

TEST_CASE("garbage after the handshake fails the read with an alert", "[tls][connection][bad]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client;
    REQUIRE(pump(client, server).server_ok);
    std::string forged = std::string("\x17\x03\x03\x00\x20", 5) + std::string(32, 'A');
    CHECK_FALSE(server.feed(forged));
    CHECK_THAT(server.error(), StartsWith("TLS read failed: error:"));
    CHECK_THAT(server.error(), Contains("bad record mac"));
    std::string alert = server.take_ciphertext();
    REQUIRE_FALSE(alert.empty());
    CHECK(alert[0] == '\x17');  // TLS 1.3 hides the alert inside an encrypted record
    client.receive(alert);
    std::string got;
    CHECK_FALSE(client.read(&got));
    CHECK_THAT(client.error(), Contains("bad record mac"));
}

TEST_CASE("SNI chooses the certificate, no SNI or no match gives the first", "[tls][sni]") {
    const TestPki& pki = test_pki();
    ServerOptions o;
    o.pkis.push_back({"mail.example.org", pki.mail_cert, pki.mail_key});
    o.pkis.push_back({"other.example.net", pki.other_cert, pki.other_key});
    auto ctx = make_context(o);

    struct Case {
        std::string sni, cn;
    };
    for (const Case& c :
         {Case{"mail.example.org", "mail.example.org"}, Case{"smtp.example.org", "mail.example.org"},  // SAN
          Case{"other.example.net", "other.example.net"},                                              // CN
          Case{"MX.Other.Example.NET", "other.example.net"},  // SAN wildcard, any case
          Case{"a.b.other.example.net", "mail.example.org"},  // wildcards span one label
          Case{"nowhere.example.com", "mail.example.org"}, Case{"", "mail.example.org"}}) {
        INFO("SNI " << c.sni);
        Connection server(*ctx);
        Client client({.sni = c.sni});
        REQUIRE(pump(client, server).server_ok);
        CHECK(client.peer_cn() == c.cn);
        CHECK(client.verify_result() == X509_V_OK);
        CHECK(server.sni() == c.sni);
        if (!c.sni.empty() && c.cn == "other.example.net")
            CHECK(X509_check_host(SSL_get0_peer_certificate(client.ssl()), c.sni.data(), c.sni.size(),
                                  X509_CHECK_FLAG_ALWAYS_CHECK_SUBJECT, nullptr) == 1);
    }

    // The first pki is the default, whichever it is.
    ServerOptions reversed;
    reversed.pkis = {o.pkis[1], o.pkis[0]};
    auto ctx2 = make_context(reversed);
    Connection server(*ctx2);
    Client client;
    REQUIRE(pump(client, server).server_ok);
    CHECK(client.peer_cn() == "other.example.net");
}

TEST_CASE("SNI also matches a pki's NAME (6.8 configurations)", "[tls][sni]") {
    const TestPki& pki = test_pki();
    ServerOptions o;
    o.pkis.push_back({"mail.example.org", pki.mail_cert, pki.mail_key});
    o.pkis.push_back({"legacy.example.com", pki.other_cert, pki.other_key});
    auto ctx = make_context(o);
    Connection server(*ctx);
    Client client({.sni = "legacy.example.com"});
    REQUIRE(pump(client, server).server_ok);
    CHECK(client.peer_cn() == "other.example.net");
}

TEST_CASE("TLS 1.2 and 1.3 are accepted by default, TLS 1.1 is refused", "[tls][protocols]") {
    auto ctx = make_context(default_options());
    SECTION("TLS 1.1") {
        Connection server(*ctx);
        Client client({.min_version = TLS1_1_VERSION, .max_version = TLS1_1_VERSION, .security_level = 0});
        Outcome o = pump(client, server);
        CHECK_FALSE(o.server_ok);
        CHECK_FALSE(o.client_ok);
        CHECK(server.error() == "TLS handshake failed: error:0A000102:SSL routines::unsupported protocol");
        CHECK_THAT(client.error(), Contains("alert protocol version"));  // the server's alert reached it
    }
    SECTION("TLS 1.2") {
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.version() == "TLSv1.2");
        CHECK(server.cipher() == "ECDHE-ECDSA-AES256-GCM-SHA384");
        CHECK(server.bits() == 256);
    }
    SECTION("TLS 1.3") {
        Connection server(*ctx);
        Client client({.min_version = TLS1_3_VERSION});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.version() == "TLSv1.3");
    }
    SECTION("a TLS 1.2 client offering only CBC suites finds none of the defaults") {
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-SHA"});
        CHECK_FALSE(pump(client, server).server_ok);
        CHECK_THAT(server.error(), Contains("no shared cipher"));
    }
}

TEST_CASE("protocols and ciphers options restrict the handshake", "[tls][protocols]") {
    SECTION("protocols tlsv1.3 refuses a TLS 1.2-only client") {
        ServerOptions o = default_options();
        o.protocols = "tlsv1.3";
        auto ctx = make_context(o);
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION});
        CHECK_FALSE(pump(client, server).server_ok);
        CHECK(server.error() == "TLS handshake failed: error:0A000102:SSL routines::unsupported protocol");
    }
    SECTION("protocols tlsv1.2 holds a TLS 1.3 client to 1.2") {
        ServerOptions o = default_options();
        o.protocols = "tlsv1.2";
        auto ctx = make_context(o);
        Connection server(*ctx);
        Client client;
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.version() == "TLSv1.2");
    }
    SECTION("ciphers picks the TLS 1.2 suite") {
        ServerOptions o = default_options();
        o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
        auto ctx = make_context(o);
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.cipher() == "ECDHE-ECDSA-AES128-GCM-SHA256");
        CHECK(server.bits() == 128);
    }
    SECTION("ciphers compat lets the CBC client in") {
        ServerOptions o = default_options();
        o.ciphers = "compat";
        auto ctx = make_context(o);
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-SHA"});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.cipher() == "ECDHE-ECDSA-AES128-SHA");
    }
}

TEST_CASE("renegotiation is refused", "[tls][protocols]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    Client client({.max_version = TLS1_2_VERSION});
    REQUIRE(pump(client, server).server_ok);
    REQUIRE(SSL_renegotiate(client.ssl()) == 1);
    client.step();
    SSL_do_handshake(client.ssl());
    // The server answers a renegotiation request with a no_renegotiation
    // warning (or drops it): it never starts a second handshake.
    bool ok = server.feed(client.take_ciphertext());
    std::string reply = server.take_ciphertext();
    CHECK(ok);
    REQUIRE(reply.size() >= 5);
    CHECK(reply[0] == '\x15');  // an alert record, not a ServerHello (0x16)
}

TEST_CASE("verify requires a client certificate signed by the ca", "[tls][verify]") {
    const TestPki& pki = test_pki();
    ServerOptions o = default_options();
    o.ca_file = pki.ca_cert;
    o.verify_client = true;
    auto ctx = make_context(o);

    SECTION("no certificate") {
        Connection server(*ctx);
        Client client;
        CHECK_FALSE(pump(client, server).server_ok);
        CHECK(server.error() == "TLS handshake failed: error:0A0000C7:SSL routines::peer did not return a certificate");
        CHECK_THAT(client.error(), Contains("certificate required"));
    }
    SECTION("self-signed certificate") {
        Connection server(*ctx);
        Client client({.cert = pki.selfsigned_cert, .key = pki.selfsigned_key});
        CHECK_FALSE(pump(client, server).server_ok);
        CHECK(server.error() == "TLS handshake failed: error:0A000086:SSL routines::certificate verify failed "
                                "(certificate: self-signed certificate)");
        CHECK_FALSE(server.peer_verified());
    }
    SECTION("certificate signed by the CA") {
        Connection server(*ctx);
        Client client({.cert = pki.client_cert, .key = pki.client_key});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.peer_certificate());
        CHECK(server.peer_verified());
        CHECK(server.peer_subject() == "CN=client.example.org,O=Postern Test");
        CHECK(server.peer_fingerprint() == pki.client_fingerprint);
        CHECK(server.peer_fingerprint().size() == 7 + 64);
    }
    SECTION("over TLS 1.2 too") {
        Connection server(*ctx);
        Client client({.max_version = TLS1_2_VERSION, .cert = pki.selfsigned_cert, .key = pki.selfsigned_key});
        CHECK_FALSE(pump(client, server).server_ok);
        CHECK_THAT(server.error(), Contains("certificate verify failed"));
        CHECK_THAT(client.error(), Contains("unknown ca"));
    }
}

TEST_CASE("a ca without verify asks for a certificate but lets anyone in", "[tls][verify]") {
    const TestPki& pki = test_pki();
    ServerOptions o = default_options();
    o.ca_file = pki.ca_cert;
    auto ctx = make_context(o);

    SECTION("none") {
        Connection server(*ctx);
        Client client;
        REQUIRE(pump(client, server).server_ok);
        CHECK_FALSE(server.peer_certificate());
        CHECK_FALSE(server.peer_verified());
    }
    SECTION("self-signed: in, but not verified") {
        Connection server(*ctx);
        Client client({.cert = pki.selfsigned_cert, .key = pki.selfsigned_key});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.peer_certificate());
        CHECK_FALSE(server.peer_verified());
        CHECK(server.peer_subject() == "CN=rogue.example.com,O=Postern Test");
    }
    SECTION("CA-signed: verified") {
        Connection server(*ctx);
        Client client({.cert = pki.client_cert, .key = pki.client_key});
        REQUIRE(pump(client, server).server_ok);
        CHECK(server.peer_verified());
    }
}

TEST_CASE("a connection outlives its context", "[tls][connection]") {
    auto ctx = make_context(default_options());
    Connection server(*ctx);
    ctx.reset();  // a reload dropped the listener's context
    Client client;
    REQUIRE(pump(client, server).server_ok);
    REQUIRE(server.write("220 ok\r\n"));
    client.receive(server.take_ciphertext());
    std::string got;
    REQUIRE(client.read(&got));
    CHECK(got == "220 ok\r\n");
}
