// Fuzz target: the line protocol 0.1 codec of table-proc.so
// (tables/proc/line_codec.hpp), the code that reads what a table program
// writes. Table programs are installed by the admin, but they crash, hang and
// pass on what is in their database, so their lines are untrusted input. The
// input is a program's output: the first line is cut from it as the plugin
// cuts it, then read as a registration and as a reply to each request kind.
// Invariants: nothing crashes or reads past the input; a cut line lies
// inside the input and holds no '\n'; a registration names one known service
// and is written back identically; a decoded reply's value or message is the
// end of the line, and the reply written back decodes to the same reply; a
// request made with the input as its key is one line.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "line_codec.hpp"

using namespace postern::proctable;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr std::string_view kId = "0a1b2c3d";

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

void check_register(std::string_view in) {
    auto reg = line::decode_register(in);
    if (const auto* g = std::get_if<Garbage>(&reg)) {
        check(!g->why.empty());
        return;
    }
    const auto& r = std::get<line::Registered>(reg);
    if (r.ready) {
        check(in == "register|ready");
    } else {
        check(r.service != 0 && (r.service & (r.service - 1)) == 0);  // exactly one bit
        check(in == "register|" + std::string(service_name(r.service)));
    }
}

void check_reply(std::string_view in, Op op) {
    Decoded decoded = line::decode_reply(in, op, kId);
    if (const auto* g = std::get_if<Garbage>(&decoded)) {
        check(!g->why.empty());
        return;
    }
    const Reply& reply = std::get<Reply>(decoded);
    check(in.find('\0') == std::string_view::npos);
    check(ends_with(in, reply.text));
    if (reply.status == Reply::Status::Found && (op == Op::Lookup || op == Op::Fetch)) check(!reply.text.empty());
    std::string again = line::encode_reply(op, kId, reply);
    Decoded back = line::decode_reply(again, op, kId);
    check(std::holds_alternative<Reply>(back) && std::get<Reply>(back) == reply);
    // Nothing to normalise but a check's "found|anything" and an "error|" without message.
    bool normalised = (op == Op::Check && reply.status == Reply::Status::Found) ||
                      (reply.status == Reply::Status::Error && reply.text.empty());
    if (!normalised) check(again == in);
    // The same line is no reply to another request.
    check(std::holds_alternative<Garbage>(line::decode_reply(in, op, "ffffffff")));
}

void check_request(std::string_view key) {
    if (key.find_first_of("\r\n") != std::string_view::npos) return;  // refused before encoding
    for (Op op : {Op::Update, Op::Check, Op::Lookup, Op::Fetch}) {
        std::string out = line::encode_request(op, 0x1, key, "users", kId, 1700000000, 5);
        check(out.find('\n') == out.size() - 1);
        check(out.rfind("table|0.1|1700000000.000005|users|", 0) == 0);
        if (op == Op::Check || op == Op::Lookup) check(ends_with(out, "|" + std::string(key) + "\n"));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    line::Cut cut = line::cut_line(in, 4096);
    std::string_view first = in;
    if (cut.state == line::Cut::State::Line) {
        check(cut.consumed <= in.size() && cut.length < cut.consumed && in[cut.consumed - 1] == '\n');
        first = in.substr(0, cut.length);
        check(first.find('\n') == std::string_view::npos && first.size() <= 4096);
    } else if (cut.state == line::Cut::State::NeedMore) {
        check(in.find('\n') == std::string_view::npos && in.size() <= 4096);
    }
    check_register(first);
    for (Op op : {Op::Update, Op::Check, Op::Lookup, Op::Fetch}) check_reply(first, op);
    check_request(first);
    return 0;
}
