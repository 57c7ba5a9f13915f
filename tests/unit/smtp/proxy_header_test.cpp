// Unit tests of the PROXY protocol header parser (core/smtp/proxy_header.cpp):
// v1 TCP4, TCP6 and UNKNOWN, v2 PROXY and LOCAL over IPv4, IPv6 and UNSPEC,
// TLVs skipped, the bytes after the header left alone, every prefix of a
// good header asking for more, and every refusal with its reason.

#include <catch2/catch.hpp>

#include <string>

#include "smtp/proxy_header.hpp"

using namespace postern::smtp::proxy;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: signature, version/command, family, then `body` with its length.
std::string v2(unsigned char ver_cmd, unsigned char family, const std::string& body) {
    std::string h = kSig;
    h += static_cast<char>(ver_cmd);
    h += static_cast<char>(family);
    h += static_cast<char>(body.size() >> 8);
    h += static_cast<char>(body.size() & 0xff);
    return h + body;
}

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s += static_cast<char>(b);
    return s;
}

// 192.0.2.7:40000 -> 198.51.100.1:25
const std::string kInet4 = bytes({192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 25});

// 2001:db8::7:40000 -> 2001:db8::1:587
std::string inet6_block() {
    std::string a(16, '\0'), b(16, '\0');
    a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = static_cast<char>(0xb8), a[15] = 7;
    b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = static_cast<char>(0xb8), b[15] = 1;
    return a + b + bytes({0x9c, 0x40, 0x02, 0x4b});
}

Header ok(const std::string& input) {
    Result r = parse(input);
    INFO("reason: " << r.reason);
    REQUIRE(r.status == Status::Ok);
    return r.header;
}

std::string refused(const std::string& input) {
    Result r = parse(input);
    REQUIRE(r.status == Status::Error);
    REQUIRE(!r.reason.empty());
    return r.reason;
}

// Every proper prefix of a good header asks for more.
void prefixes_need_more(const std::string& header) {
    for (std::size_t n = 0; n < header.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK(parse(header.substr(0, n)).status == Status::NeedMore);
    }
}

}  // namespace

TEST_CASE("proxy v1: TCP4 gives the client's address and port, and the header's length") {
    const std::string line = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";
    Header h = ok(line + "EHLO x\r\n");
    CHECK(h.version == 1);
    CHECK(h.family == Family::Inet4);
    CHECK(h.src_ip == "192.0.2.7");
    CHECK(h.dst_ip == "198.51.100.1");
    CHECK(h.src_port == 40000);
    CHECK(h.dst_port == 25);
    CHECK(h.length == line.size());
    prefixes_need_more(line);
}

TEST_CASE("proxy v1: TCP6, written in any form, comes out canonical") {
    Header h = ok("PROXY TCP6 2001:DB8:0:0::7 ::1 65535 0\r\n");
    CHECK(h.family == Family::Inet6);
    CHECK(h.src_ip == "2001:db8::7");
    CHECK(h.dst_ip == "::1");
    CHECK(h.src_port == 65535);
    CHECK(h.dst_port == 0);
}

TEST_CASE("proxy v1: UNKNOWN keeps the socket's addresses, whatever follows it on the line") {
    for (const std::string line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
        Header h = ok(line);
        CHECK(h.family == Family::Unspec);
        CHECK(h.src_ip.empty());
        CHECK(h.length == line.size());
    }
}

TEST_CASE("proxy v1: refusals") {
    CHECK(refused("EHLO example.org\r\n") == "not a PROXY protocol header");
    CHECK(refused("proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n") == "not a PROXY protocol header");
    CHECK(refused("PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n") == "v1 header line ends in LF without CR");
    CHECK(refused("PROXY " + std::string(101, 'A')) == "v1 header without its CRLF in the first 107 bytes");
    CHECK(refused("PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n") ==
          "v1 header is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    CHECK(refused("PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n") ==
          "v1 header is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    CHECK(refused("PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n") ==
          "v1 header is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    CHECK(refused("PROXY \r\n") == "v1 header is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    CHECK(refused("PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n") == "v1 header with unknown protocol 'UDP4'");
    CHECK(refused("PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n") == "v1 header with an address that is not TCP4");
    CHECK(refused("PROXY TCP6 192.0.2.7 ::1 1 2\r\n") == "v1 header with an address that is not TCP6");
    CHECK(refused("PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n") == "v1 header with an address that is not TCP4");
    for (const char* port : {"65536", "-1", "01", "1a", "123456", "+1"})
        CHECK(refused(std::string("PROXY TCP4 192.0.2.7 198.51.100.1 ") + port + " 25\r\n") ==
              "v1 header with a bad port");
    CHECK(refused(std::string("PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n")) ==
          "v1 header with a control or non-ASCII byte");
    CHECK(refused(std::string("PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\r\n")) ==
          "v1 header with a control or non-ASCII byte");
    CHECK(refused(std::string("PROXY TCP4 192.0.2.7 198.51.100.\xc3\xa9 1 2\r\n")) ==
          "v1 header with a control or non-ASCII byte");
}

TEST_CASE("proxy v1: the longest line the specification allows is taken") {
    // TCP6 with two full-length addresses and five-digit ports: 104 bytes.
    const std::string line =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    REQUIRE(line.size() <= kMaxV1Line);
    CHECK(ok(line).length == line.size());
}

TEST_CASE("proxy v2: PROXY over IPv4 gives the client's address and port, and the header's length") {
    const std::string header = v2(0x21, 0x11, kInet4);
    Header h = ok(header + "EHLO x\r\n");
    CHECK(h.version == 2);
    CHECK(h.family == Family::Inet4);
    CHECK(h.src_ip == "192.0.2.7");
    CHECK(h.dst_ip == "198.51.100.1");
    CHECK(h.src_port == 40000);
    CHECK(h.dst_port == 25);
    CHECK(h.length == 28);
    prefixes_need_more(header);
}

TEST_CASE("proxy v2: PROXY over IPv6") {
    Header h = ok(v2(0x21, 0x21, inet6_block()));
    CHECK(h.family == Family::Inet6);
    CHECK(h.src_ip == "2001:db8::7");
    CHECK(h.dst_ip == "2001:db8::1");
    CHECK(h.src_port == 40000);
    CHECK(h.dst_port == 587);
    CHECK(h.length == 16 + 36);
}

TEST_CASE("proxy v2: TLVs after the addresses are skipped") {
    // ALPN "smtp", an empty NOOP, and an SSL TLV with a sub-TLV inside.
    const std::string tlvs = bytes({0x01, 0x00, 0x04}) + "smtp" + bytes({0x04, 0x00, 0x00}) +
                             bytes({0x20, 0x00, 0x08, 0x07, 0, 0, 0, 0, 0x21, 0x00, 0x00});
    const std::string header = v2(0x21, 0x11, kInet4 + tlvs);
    Header h = ok(header + "QUIT\r\n");
    CHECK(h.src_ip == "192.0.2.7");
    CHECK(h.length == header.size());
    prefixes_need_more(header);
}

TEST_CASE("proxy v2: LOCAL and UNSPEC keep the socket's addresses") {
    // LOCAL ignores the family and whatever the block holds.
    for (unsigned char family : {0x00, 0x11, 0x21, 0x31, 0x12, 0x77}) {
        Header h = ok(v2(0x20, family, kInet4));
        CHECK(h.family == Family::Unspec);
        CHECK(h.src_ip.empty());
        CHECK(h.length == 16 + kInet4.size());
    }
    CHECK(ok(v2(0x20, 0x00, "")).length == 16);
    Header h = ok(v2(0x21, 0x00, "anything"));
    CHECK(h.family == Family::Unspec);
    CHECK(h.length == 24);
}

TEST_CASE("proxy v2: refusals") {
    CHECK(refused(v2(0x11, 0x11, kInet4)) == "v2 header with version 1");
    CHECK(refused(v2(0x31, 0x11, kInet4)) == "v2 header with version 3");
    CHECK(refused(v2(0x22, 0x11, kInet4)) == "v2 header with unknown command 2");
    CHECK(refused(v2(0x2f, 0x11, kInet4)) == "v2 header with unknown command 15");
    CHECK(refused(v2(0x21, 0x12, kInet4)) == "v2 header for UDP: SMTP runs over TCP");
    CHECK(refused(v2(0x21, 0x22, inet6_block())) == "v2 header for UDP: SMTP runs over TCP");
    CHECK(refused(v2(0x21, 0x31, std::string(216, 'x'))) == "v2 header for a UNIX socket: no client address to take");
    CHECK(refused(v2(0x21, 0x13, kInet4)) == "v2 header with unknown family and protocol 0x13");
    CHECK(refused(v2(0x21, 0x11, kInet4.substr(0, 11))) ==
          "v2 header with an address block shorter than its family needs");
    CHECK(refused(v2(0x21, 0x21, kInet4)) == "v2 header with an address block shorter than its family needs");
    CHECK(refused(v2(0x21, 0x11, kInet4 + bytes({0x01, 0x00}))) == "v2 header with a TLV that runs past it");
    CHECK(refused(v2(0x21, 0x11, kInet4 + bytes({0x01, 0x00, 0x05}) + "smtp")) ==
          "v2 header with a TLV that runs past it");
    // Too long: refused from the fixed part alone, before the rest is read.
    std::string big = v2(0x21, 0x11, std::string(kMaxHeader - 16 + 1, '\0'));
    CHECK(refused(big.substr(0, 16)) == "v2 header of 4097 bytes, over the 4096-byte limit");
    CHECK(ok(v2(0x21, 0x00, std::string(kMaxHeader - 16, '\0'))).length == kMaxHeader);
    // A signature that goes wrong part way.
    std::string bad = kSig;
    bad[11] = 'X';
    CHECK(refused(bad) == "not a PROXY protocol header");
    CHECK(refused(std::string("\r\n\r\nQUIT")) == "not a PROXY protocol header");
    CHECK(refused(std::string("\r\nQUIT\r\n")) == "not a PROXY protocol header");
}

TEST_CASE("proxy: nothing yet, or the start of either form, asks for more") {
    CHECK(parse("").status == Status::NeedMore);
    CHECK(parse("P").status == Status::NeedMore);
    CHECK(parse("PROXY").status == Status::NeedMore);
    CHECK(parse("PROXY TCP4 192.0.2.7").status == Status::NeedMore);
    CHECK(parse("\r").status == Status::NeedMore);
    CHECK(parse("\r\n\r\n").status == Status::NeedMore);
    CHECK(parse(kSig + "\x21\x11\x00").status == Status::NeedMore);
}
