// Fuzz target: the PROXY protocol header (core/smtp/proxy_header.cpp), the
// first bytes a `listen on ... proxy-v2` listener reads from the network.
// Whatever the bytes, the parser stays within them and within its bounds;
// a header it takes is taken the same from every longer input, and every
// shorter prefix of it only asks for more; an error says why.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/proxy_header.hpp"

using namespace postern::smtp::proxy;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool same(const Header& a, const Header& b) {
    return a.version == b.version && a.family == b.family && a.src_ip == b.src_ip && a.dst_ip == b.dst_ip &&
           a.src_port == b.src_port && a.dst_port == b.dst_port && a.length == b.length;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const Result r = parse(input);
    switch (r.status) {
    case Status::Error: check(!r.reason.empty()); break;
    case Status::NeedMore: check(size < kMaxHeader); break;
    case Status::Ok: {
        const Header& h = r.header;
        check(h.version == 1 || h.version == 2);
        check(h.length > 0 && h.length <= size && h.length <= kMaxHeader);
        check(h.version != 1 || h.length <= kMaxV1Line);
        check((h.family == Family::Unspec) == h.src_ip.empty());
        check((h.family == Family::Unspec) == h.dst_ip.empty());
        // The header alone gives the same answer, and its prefixes ask for more.
        const Result alone = parse(input.substr(0, h.length));
        check(alone.status == Status::Ok && same(alone.header, h));
        for (std::size_t n = 0; n < h.length; n += 1 + n / 8)
            check(parse(input.substr(0, n)).status == Status::NeedMore);
        break;
    }
    }
    return 0;
}
