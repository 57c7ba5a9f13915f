// Fuzz target: the reply parser of the outbound client (postern/support/smtp_reply.hpp),
// the code that reads what a remote server sends (CVE-2020-8794 was a hole in
// such a parser). The first byte of the input chooses how the rest is cut
// into pieces; the stream is read as a sequence of replies, as a pipelining
// client would. The result must not depend on the cuts, every feed must stay
// within its piece and the bounds, and a parsed reply written back in wire
// form must parse to the same reply.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "postern/support/smtp_reply.hpp"

using namespace postern::relay;
using Status = ReplyParser::Status;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

struct Outcome {
    Status status = Status::NeedMore;
    std::size_t consumed = 0;
    int code = 0;
    std::string enhanced, error;
    std::vector<std::string> lines;
    bool operator==(const Outcome&) const = default;
};

// One reply from the front of `in`, fed in pieces of 1..16 bytes taken from
// `cuts` (cycled), or whole when `cuts` is empty.
Outcome read_one(std::string_view in, std::string_view cuts, std::size_t* k) {
    ReplyParser p;
    Outcome o;
    std::size_t pos = 0;
    while (pos < in.size() && o.status == Status::NeedMore) {
        std::size_t len = cuts.empty() ? in.size() : 1 + static_cast<unsigned char>(cuts[(*k)++ % cuts.size()]) % 16;
        std::string_view piece = in.substr(pos, len);
        std::size_t used = piece.size() + 1;
        o.status = p.feed(piece, &used);
        check(used <= piece.size());
        check(o.status != Status::NeedMore || used == piece.size());
        check(o.status == Status::NeedMore || used > 0);
        pos += used;
    }
    if (o.status != Status::NeedMore) {  // finished: nothing more is taken
        std::size_t after = 1;
        check(p.feed("250 x\r\n", &after) == o.status && after == 0);
    }
    o.consumed = pos;
    o.code = p.reply().code;
    o.enhanced = p.reply().enhanced;
    o.lines = p.reply().lines;
    o.error = p.error();
    return o;
}

bool clean(std::string_view s) { return s.find_first_of(std::string_view("\0\r\n", 3)) == std::string_view::npos; }

void check_reply(const Outcome& o) {
    check(o.lines.size() <= kMaxReplyLines);
    for (const auto& line : o.lines) check(line.size() <= kMaxReplyLine - 4 && clean(line));
    if (o.status == Status::Error) {
        check(!o.error.empty());
        return;
    }
    check(o.error.empty());
    if (o.status != Status::Done) return;
    check(!o.lines.empty());
    check(o.code >= 200 && o.code <= 559 && (o.code / 10) % 10 <= 5);
    if (!o.enhanced.empty()) {
        check(o.code / 100 != 3 && o.enhanced[0] == char('0' + o.code / 100));
        check(o.lines[0].compare(0, o.enhanced.size(), o.enhanced) == 0);
        check(o.enhanced.size() >= 5 && o.enhanced.size() <= 9);
    }
}

// The reply written back on the wire must read as the same reply.
void check_round_trip(const Outcome& o) {
    std::string wire;
    for (std::size_t i = 0; i < o.lines.size(); ++i)
        wire += std::to_string(o.code) + (i + 1 < o.lines.size() ? "-" : " ") + o.lines[i] + "\r\n";
    std::size_t k = 0;
    Outcome again = read_one(wire, {}, &k);
    check(again.status == Status::Done && again.consumed == wire.size());
    check(again.code == o.code && again.lines == o.lines && again.enhanced == o.enhanced);
}

void check_extensions(const Outcome& o) {
    Reply r;
    r.code = o.code;
    r.lines = o.lines;
    for (const auto& [key, value] : ehlo_extensions(r)) {
        check(!key.empty() && key[0] != '-');
        for (char c : key) check((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-');
        check(value.empty() || (value.front() != ' ' && value.back() != ' '));
        check(value.find("  ") == std::string::npos && value.find('\t') == std::string::npos);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    std::size_t ncuts = data[0] % 8;
    if (size < 1 + ncuts) return 0;
    std::string_view cuts(reinterpret_cast<const char*>(data) + 1, ncuts);
    std::string_view in(reinterpret_cast<const char*>(data) + 1 + ncuts, size - 1 - ncuts);

    // Bounded: each round consumes at least one byte or stops.
    std::size_t k_whole = 0, k_cut = 0;
    while (!in.empty()) {
        Outcome whole = read_one(in, {}, &k_whole);
        Outcome pieces = read_one(in, cuts, &k_cut);
        check(whole == pieces);
        check_reply(whole);
        if (whole.status != Status::Done) break;
        check_round_trip(whole);
        check_extensions(whole);
        in.remove_prefix(whole.consumed);
    }
    return 0;
}
