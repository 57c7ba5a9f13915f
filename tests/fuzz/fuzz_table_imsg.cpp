// Fuzz target: the imsg codec of table-proc.so (tables/proc/imsg_codec.hpp),
// the code that reads the binary replies of OpenSMTPD <= 7.5 table programs
// (Debian's opensmtpd-extras). Their replies carry what is in a database or
// a directory, and a crashing program writes anything, so the bytes are
// untrusted input. The input is a program's output stream: it is cut into
// messages as the plugin cuts it, each read as a reply to each request kind.
// Invariants: nothing crashes or reads past the input; a message lies inside
// the input and inside the imsg size limits; a decoded value holds no NUL;
// the reply written back decodes to the same reply; a query made with the
// input as its key carries it whole, or is refused for its size or a NUL.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "imsg_codec.hpp"

using namespace postern::proctable;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void check_frame(const imsg::Frame& f, std::string_view rest) {
    check(f.size >= imsg::kHeaderSize && f.size <= imsg::kMaxMessage && f.size <= rest.size());
    check(f.payload.size() == f.size - imsg::kHeaderSize);
    check(f.payload.data() == rest.data() + imsg::kHeaderSize);
    for (Op op : {Op::Open, Op::Update, Op::Check, Op::Lookup, Op::Fetch}) {
        Decoded d = imsg::decode_reply(op, f);
        if (const auto* g = std::get_if<Garbage>(&d)) {
            check(!g->why.empty());
            continue;
        }
        const Reply& r = std::get<Reply>(d);
        check(f.type == imsg::Ok);
        check(r.text.find('\0') == std::string::npos);
        std::string again = imsg::encode_reply(op, r);
        auto back = imsg::decode_frame(again);
        check(std::holds_alternative<imsg::Frame>(back));
        Decoded redecoded = imsg::decode_reply(op, std::get<imsg::Frame>(back));
        check(std::holds_alternative<Reply>(redecoded) && std::get<Reply>(redecoded) == r);
        // Lookups and fetches have one form on the wire: written back, the same bytes.
        if (op == Op::Lookup || op == Op::Fetch) check(again.substr(imsg::kHeaderSize) == f.payload);
    }
}

void check_query(std::string_view key) {
    auto q = imsg::encode_query(Op::Lookup, 0x4, key);
    bool fits = key.find('\0') == std::string_view::npos &&
                imsg::kHeaderSize + 12 + key.size() + 1 <= imsg::kMaxMessage;
    check(q.has_value() == fits);
    if (!q) return;
    auto f = imsg::decode_frame(*q);
    check(std::holds_alternative<imsg::Frame>(f));
    const auto& frame = std::get<imsg::Frame>(f);
    check(frame.type == imsg::Lookup && frame.size == q->size());
    check(frame.payload.substr(12) == std::string(key) + std::string(1, '\0'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string_view rest = in;
    for (int n = 0; n < 64; ++n) {
        auto f = imsg::decode_frame(rest);
        if (std::holds_alternative<imsg::NeedMore>(f)) break;
        if (const auto* g = std::get_if<Garbage>(&f)) {
            check(!g->why.empty() && rest.size() >= imsg::kHeaderSize);
            break;
        }
        const auto& frame = std::get<imsg::Frame>(f);
        check_frame(frame, rest);
        rest.remove_prefix(frame.size);
    }
    check_query(in);
    return 0;
}
