// queue/envelope_records.cpp — envelope records, plain or sealed; see
// envelope_records.hpp.
#include "queue/envelope_records.hpp"

namespace postern::queue {

bool append_envelope(std::string& out, std::uint64_t size, const Envelope& e, const AtRest& how) {
    if (!how.encrypts()) {
        journal::append(out, journal::Op::Envelope, size, encode(e));
        return true;
    }
    std::string sealed = seal(*how.key, journal::sealed_aad(e.id, size), encode(e));
    if (sealed.empty()) return false;
    journal::append(out, journal::Op::Sealed, size, e.id + sealed);
    return true;
}

std::optional<Envelope> read_envelope(const journal::Record& record, const AtRest& how, std::string* why) {
    if (record.op == journal::Op::Envelope) return decode(record.payload, why);
    const std::string_view id = journal::envelope_id(record);
    if (record.op != journal::Op::Sealed || id.empty()) return (*why = "not an envelope record"), std::nullopt;
    if (!how.key) return (*why = "sealed, and no queue encryption key is set"), std::nullopt;
    std::string text;
    if (!unseal(*how.key, journal::sealed_aad(id, record.size), record.payload.substr(id.size()), text, why))
        return std::nullopt;
    auto e = decode(text, why);
    if (e && e->id != id) return (*why = "sealed under another envelope's id"), std::nullopt;
    return e;
}

}  // namespace postern::queue
