// The journal's envelope records, plain (`E`) or sealed with the queue key
// (`S`, `queue encryption`): written as the spool's at-rest settings say,
// and read back whichever way each was written (journal.hpp has the format).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "queue/envelope.hpp"
#include "queue/journal.hpp"
#include "queue/message_codec.hpp"

namespace postern::queue {

// Appends `e`'s record (its message file being `size` bytes) to `out`,
// sealed when `how` encrypts. False, `out` unchanged, when sealing fails.
bool append_envelope(std::string& out, std::uint64_t size, const Envelope& e, const AtRest& how);

// The envelope an `E` or `S` record holds; nothing, with `why`, when it does
// not decode, does not unseal (no key, another key, a changed byte), or
// names another id inside than outside.
std::optional<Envelope> read_envelope(const journal::Record& record, const AtRest& how, std::string* why);

}  // namespace postern::queue
