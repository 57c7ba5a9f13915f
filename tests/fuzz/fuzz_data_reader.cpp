// Fuzz target: the DATA decoder (core/smtp/data_reader.cpp). The first bytes
// of the input choose the limits and how the rest is cut into pieces; the
// result must not depend on the cuts, every feed must stay within its piece,
// and a complete message must survive encode_data and a second decoding.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/data_reader.hpp"

using namespace postern::smtp;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct Outcome {
    std::string message;
    std::size_t consumed = 0;
    std::size_t size = 0;
    bool done = false, too_big = false, bare = false, long_line = false;
    bool operator==(const Outcome&) const = default;
};

// Feeds `in` in pieces whose lengths come from `cuts` (cycled), 1..16 bytes each.
Outcome run(std::string_view in, std::string_view cuts, std::size_t max_size, std::size_t max_line) {
    DataReader r(max_size, max_line);
    Outcome o;
    std::size_t pos = 0, k = 0;
    while (pos < in.size() && !r.done()) {
        std::size_t len = cuts.empty() ? in.size() : 1 + (static_cast<unsigned char>(cuts[k++ % cuts.size()]) % 16);
        std::string_view piece = in.substr(pos, len);
        std::size_t n = r.feed(piece);
        check(n <= piece.size());
        check(r.done() || n == piece.size());
        pos += n;
    }
    if (r.done()) check(r.feed(in.substr(pos)) == 0);
    o.consumed = pos;
    o.message = r.message();
    o.size = r.size();
    o.done = r.done();
    o.too_big = r.too_big();
    o.bare = r.bare_newline();
    o.long_line = r.line_too_long();
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    // Small limits half of the time, so that too_big / line_too_long are reached.
    std::size_t max_size = data[0] < 128 ? data[0] : std::size_t(1) << 20;
    std::size_t max_line = data[1] < 128 ? data[1] % 32 : std::size_t(1) << 20;
    std::size_t ncuts = data[2] % 8;
    if (size < 3 + ncuts) return 0;
    std::string_view cuts(reinterpret_cast<const char*>(data) + 3, ncuts);
    std::string_view in(reinterpret_cast<const char*>(data) + 3 + ncuts, size - 3 - ncuts);

    Outcome whole = run(in, {}, max_size, max_line);
    Outcome pieces = run(in, cuts, max_size, max_line);
    check(whole == pieces);
    check(whole.consumed <= in.size());
    check(whole.done || whole.consumed == in.size());
    check(!whole.too_big || whole.message.empty());
    check(whole.too_big || whole.size == whole.message.size());

    if (whole.done && !whole.too_big) {
        check(whole.message.empty() || whole.message.back() == '\n');
        std::string wire = encode_data(whole.message);
        Outcome again = run(wire, {}, std::size_t(1) << 30, std::size_t(1) << 30);
        check(again.done && again.consumed == wire.size());
        check(again.message == whole.message);
        check(!again.bare || whole.bare);  // encoding adds no bare line end
    }
    return 0;
}
