// tests/unit/plugins/relay_tls_test.cpp — delivery-relay.so's TLS against the
// scripted server of relay_server.hpp: STARTTLS with a self-signed or trusted
// certificate, verification unless no-verify, protocols and ciphers, and
// smtp+tls:// refusing a server without STARTTLS.
#include "relay_server.hpp"

using namespace relay_test;

TEST_CASE("relay: smtp+tls:// uses STARTTLS and sends the transaction encrypted") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify");
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.3 TLS_", 0) == 0);  // the log names the TLS used
    CHECK(o.error.find(": 250 2.0.0 queued as 42") != std::string::npos);
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          "EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\nEHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: protocols and ciphers limit the TLS of the connection") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"),
                  kOptions + " tls=no-verify tls-versions=771:771 ciphers=ECDHE-RSA-AES128-GCM-SHA256");
    CHECK(o.status == POSTERN_OK);
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256: 250 ", 0) == 0);
    flush(dir);
    o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify ciphers=NO-SUCH-CIPHER");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS setup failed: no usable cipher in \"NO-SUCH-CIPHER\"");
    o = send(dir, server.url("smtp+tls"), kOptions + " tls-versions=772:771");
    CHECK(o.error == "relay: config error: tls-versions= must be MIN:MAX");
    flush(dir);
    server.stop();
}

TEST_CASE("relay: smtp+tls:// checks the certificate unless tls=no-verify") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions);
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS handshake failed: certificate: self-signed certificate");
    // Trusting the certificate as a CA: the chain passes, the name (127.0.0.1 vs CN=localhost) does not.
    o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + s.cert);
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: TLS handshake failed: certificate: IP address mismatch");
    o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + dir / "missing.pem");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: cannot load CA certificates from " + dir / "missing.pem");
}

TEST_CASE("relay: smtp+tls:// with a trusted certificate naming the host delivers") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s, "IP:127.0.0.1");
    FakeServer server(s);
    auto o = send(dir, server.url("smtp+tls"), kOptions + " ca=" + s.cert);
    CHECK(o.error.rfind("relay: 127.0.0.1 [127.0.0.1] TLSv1.3 TLS_", 0) == 0);  // the log names the TLS used
    CHECK(o.error.find(": 250 2.0.0 queued as 42") != std::string::npos);
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          "EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\nEHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay: plain smtp:// uses STARTTLS when offered, without checking the certificate") {
    test::TempDir dir;
    Script s;
    s.offer_starttls = true;
    make_cert(dir, &s);
    FakeServer server(s);
    auto o = send(dir, server.url("smtp"));
    CHECK(o.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0].rfind("EHLO client.test\r\nSTARTTLS\r\n<TLS>\r\n", 0) == 0);
}

TEST_CASE("relay: smtp+tls:// to a server without STARTTLS is temporary and sends no mail") {
    test::TempDir dir;
    FakeServer server({});
    auto o = send(dir, server.url("smtp+tls"), kOptions + " tls=no-verify");
    CHECK(o.status == POSTERN_TEMPFAIL);
    CHECK(o.error == "relay: 127.0.0.1 [127.0.0.1]: STARTTLS not offered");
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n");
}
