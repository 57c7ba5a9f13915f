// The PROXY protocol header (HAProxy's, versions 1 and 2) that a proxy in
// front of a `listen on ... proxy-v2` listener sends before anything else,
// to say which client it is relaying for.
//
// A pure function over the bytes read so far: it reads untrusted network
// input, never past `bytes.size()` or kMaxHeader, and has a fuzz target
// (tests/fuzz/fuzz_proxy_header.cpp). The session (smtpd/session_peer.cpp)
// feeds it what has arrived until it stops asking for more.
//
// What it takes (the HAProxy specification, proxy-protocol.txt):
//   v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", or "PROXY UNKNOWN...\r\n",
//       at most 107 bytes with the CRLF;
//   v2: the 12-byte signature, version 2, command LOCAL or PROXY, family
//       UNSPEC, TCP over IPv4 or TCP over IPv6, then the addresses and any
//       TLVs (walked for bounds, otherwise skipped).
// Refused (Status::Error, with a reason for the log): anything that is not
// a prefix of either form, a v1 line without its CRLF within 107 bytes, a
// v2 header longer than kMaxHeader, bad addresses or ports, a v2 version
// other than 2, an unknown command, UDP or UNIX-socket families (SMTP runs
// over TCP, and a UNIX peer has no address to put in Received:), an address
// block shorter than its family needs, a TLV that runs past the header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postern::smtp::proxy {

// A v2 header and its TLVs, at most. HAProxy's own TLVs (ALPN, authority,
// SSL details, unique id) stay far below; the 16-bit length field would
// otherwise let a client make the session hold 64 KiB before it is known.
inline constexpr std::size_t kMaxHeader = 4096;
inline constexpr std::size_t kMaxV1Line = 107;  // the specification's bound, CRLF included

enum class Status { NeedMore, Ok, Error };

// Whose addresses the session goes by. Unspec: the proxy's LOCAL command
// (its own health checks), v1 UNKNOWN or v2 UNSPEC: keep the socket's.
enum class Family { Unspec, Inet4, Inet6 };

struct Header {
    int version = 0;  // 1 or 2
    Family family = Family::Unspec;
    std::string src_ip, dst_ip;  // text ("192.0.2.7", "2001:db8::1"); "" when Unspec
    std::uint16_t src_port = 0, dst_port = 0;
    std::size_t length = 0;  // bytes the header took, TLVs included
};

struct Result {
    Status status = Status::NeedMore;
    Header header;       // when Ok
    std::string reason;  // when Error: what was wrong, for the log
};

// Reads the header at the start of `bytes`. NeedMore: what is there is a
// proper beginning and the rest has not come yet.
Result parse(std::string_view bytes);

}  // namespace postern::smtp::proxy
