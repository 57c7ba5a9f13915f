// Fuzz target: the envelope journal's records (core/queue/journal.cpp), read
// back at start-up from a spool a crash may have left torn. Every record the
// reader accepts must re-encode to exactly the bytes it was read from, with
// a payload within bounds; whatever stops it early must say why. A sealed
// record (`queue encryption`) that opens holds the envelope its clear id names.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/envelope_records.hpp"
#include "queue/journal.hpp"

using namespace postern::queue::journal;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

const postern::queue::AtRest how = [] {
    postern::queue::AtRest h;
    h.key.emplace();
    h.key->fill(0x42);
    return h;
}();

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string input(kMagic);
    input.append(reinterpret_cast<const char*>(data), size);
    Reader reader(input);
    std::string rebuilt(kMagic);
    std::size_t records = 0;
    for (Record r; reader.next(r);) {
        check(r.payload.size() <= kMaxPayload);
        check(r.op == Op::Envelope || r.op == Op::Sealed || r.op == Op::Removed);
        std::string_view id = envelope_id(r);
        check(id.empty() || id.size() == 16);
        // Unsealing what an attacker wrote: refused, never a crash; what
        // opens is the envelope its clear id names.
        std::string why;
        if (auto e = postern::queue::read_envelope(r, how, &why); e && r.op == Op::Sealed) check(e->id == id);
        std::string one;
        append(one, r.op, r.size, r.payload);
        // The payload points into the input, right after its header line.
        std::size_t at = static_cast<std::size_t>(r.payload.data() - input.data());
        check(at >= one.size() - r.payload.size() - 1);
        check(input.compare(at - (one.size() - r.payload.size() - 1), one.size(), one) == 0);
        ++records;
    }
    check(reader.cut_short() ? !reader.error().empty() : true);
    for (const auto& d : reader.damaged()) check(d.find("CRC mismatch") != std::string::npos);
    (void)records;
    return 0;
}
