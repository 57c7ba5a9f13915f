// The PROXY protocol header; see proxy_header.hpp.
#include "smtp/proxy_header.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cstdio>

namespace postern::smtp::proxy {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kV2Fixed = 16;  // signature, version and command, family, length

Result need_more() { return Result{}; }

Result error(std::string reason) {
    Result r;
    r.status = Status::Error;
    r.reason = std::move(reason);
    return r;
}

Result ok(Header h) {
    Result r;
    r.status = Status::Ok;
    r.header = std::move(h);
    return r;
}

// `bytes` and `form` agree over the length of the shorter.
bool agrees(std::string_view bytes, std::string_view form) {
    const std::size_t n = bytes.size() < form.size() ? bytes.size() : form.size();
    return bytes.substr(0, n) == form.substr(0, n);
}

std::string hex_byte(unsigned char b) {
    char buf[5];
    std::snprintf(buf, sizeof buf, "0x%02x", b);
    return buf;
}

// The address in its canonical text form, or "" when `text` is not one of
// `family` (AF_INET: dotted quad only, as inet_pton takes it).
std::string canonical_ip(int family, const std::string& text) {
    std::array<unsigned char, 16> raw{};
    if (inet_pton(family, text.c_str(), raw.data()) != 1) return {};
    char buf[INET6_ADDRSTRLEN] = "";
    inet_ntop(family, raw.data(), buf, sizeof buf);
    return buf;
}

std::string ip_from_bytes(int family, const unsigned char* raw) {
    char buf[INET6_ADDRSTRLEN] = "";
    inet_ntop(family, raw, buf, sizeof buf);
    return buf;
}

// A v1 port: decimal, 0-65535, no leading zero (the specification's form).
bool v1_port(std::string_view s, std::uint16_t& out) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
    unsigned long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

// The line's fields, split on single spaces; false on an empty field.
bool split_fields(std::string_view line, std::array<std::string_view, 5>& out, std::size_t& count) {
    count = 0;
    while (true) {
        const std::size_t sp = line.find(' ');
        const std::string_view field = line.substr(0, sp);
        if (field.empty() || count == out.size()) return false;
        out[count++] = field;
        if (sp == std::string_view::npos) return true;
        line.remove_prefix(sp + 1);
    }
}

Result parse_v1(std::string_view bytes) {
    const std::string_view window = bytes.substr(0, kMaxV1Line);
    const std::size_t lf = window.find('\n');
    if (lf == std::string_view::npos) {
        if (bytes.size() >= kMaxV1Line) return error("v1 header without its CRLF in the first 107 bytes");
        return need_more();
    }
    if (lf == 0 || window[lf - 1] != '\r') return error("v1 header line ends in LF without CR");
    Header h;
    h.version = 1;
    h.length = lf + 1;
    const std::string_view line = window.substr(kV1Prefix.size(), lf - 1 - kV1Prefix.size());
    for (char c : line)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
            return error("v1 header with a control or non-ASCII byte");
    if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return ok(h);  // the proxy's own address is all we get
    std::array<std::string_view, 5> f;
    std::size_t n = 0;
    if (!split_fields(line, f, n) || n != 5) return error("v1 header is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
    int family = 0;
    if (f[0] == "TCP4") {
        family = AF_INET;
        h.family = Family::Inet4;
    } else if (f[0] == "TCP6") {
        family = AF_INET6;
        h.family = Family::Inet6;
    } else {
        return error("v1 header with unknown protocol '" + std::string(f[0]) + "'");
    }
    h.src_ip = canonical_ip(family, std::string(f[1]));
    h.dst_ip = canonical_ip(family, std::string(f[2]));
    if (h.src_ip.empty() || h.dst_ip.empty())
        return error("v1 header with an address that is not " + std::string(f[0]));
    if (!v1_port(f[3], h.src_port) || !v1_port(f[4], h.dst_port)) return error("v1 header with a bad port");
    return ok(h);
}

// Type, 16-bit length, value; each must end within the header.
bool tlvs_fit(std::string_view tlvs) {
    while (!tlvs.empty()) {
        if (tlvs.size() < 3) return false;
        const std::size_t len = static_cast<std::size_t>(static_cast<unsigned char>(tlvs[1])) << 8 |
                                static_cast<unsigned char>(tlvs[2]);
        if (tlvs.size() - 3 < len) return false;
        tlvs.remove_prefix(3 + len);
    }
    return true;
}

Result parse_v2(std::string_view bytes) {
    if (bytes.size() < kV2Fixed) return need_more();
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    if ((b[12] >> 4) != 2) return error("v2 header with version " + std::to_string(b[12] >> 4));
    const unsigned command = b[12] & 0x0f;
    if (command > 1) return error("v2 header with unknown command " + std::to_string(command));
    const std::size_t len = static_cast<std::size_t>(b[14]) << 8 | b[15];
    if (kV2Fixed + len > kMaxHeader)
        return error("v2 header of " + std::to_string(kV2Fixed + len) + " bytes, over the " +
                     std::to_string(kMaxHeader) + "-byte limit");
    if (bytes.size() < kV2Fixed + len) return need_more();
    Header h;
    h.version = 2;
    h.length = kV2Fixed + len;
    if (command == 0) return ok(h);  // LOCAL: the proxy speaks for itself; whatever follows is ignored
    std::size_t need = 0;
    switch (b[13]) {
    case 0x00: return ok(h);  // UNSPEC: no address to take
    case 0x11:
        h.family = Family::Inet4;
        need = 12;
        break;
    case 0x21:
        h.family = Family::Inet6;
        need = 36;
        break;
    case 0x12:
    case 0x22: return error("v2 header for UDP: SMTP runs over TCP");
    case 0x31:
    case 0x32: return error("v2 header for a UNIX socket: no client address to take");
    default: return error("v2 header with unknown family and protocol " + hex_byte(b[13]));
    }
    if (len < need) return error("v2 header with an address block shorter than its family needs");
    const unsigned char* a = b + kV2Fixed;
    const int family = h.family == Family::Inet4 ? AF_INET : AF_INET6;
    const std::size_t ip_len = h.family == Family::Inet4 ? 4 : 16;
    h.src_ip = ip_from_bytes(family, a);
    h.dst_ip = ip_from_bytes(family, a + ip_len);
    h.src_port = static_cast<std::uint16_t>(a[2 * ip_len] << 8 | a[2 * ip_len + 1]);
    h.dst_port = static_cast<std::uint16_t>(a[2 * ip_len + 2] << 8 | a[2 * ip_len + 3]);
    if (!tlvs_fit(bytes.substr(kV2Fixed + need, len - need))) return error("v2 header with a TLV that runs past it");
    return ok(h);
}

}  // namespace

Result parse(std::string_view bytes) {
    if (bytes.empty()) return need_more();
    if (agrees(bytes, kV1Prefix)) return bytes.size() < kV1Prefix.size() ? need_more() : parse_v1(bytes);
    if (agrees(bytes, kV2Signature)) return bytes.size() < kV2Signature.size() ? need_more() : parse_v2(bytes);
    return error("not a PROXY protocol header");
}

}  // namespace postern::smtp::proxy
