// The envelope journal's record format (queue/journal.cpp).
//
// A journal segment is an append-only file: the line `postern-journal 1`,
// then records, each
//
//     OP LENGTH CRC SIZE LF PAYLOAD LF
//
// OP is `E` (an envelope, whole: added or rewritten; PAYLOAD is its encode()
// text, SIZE the size of its message file), `S` (the same, sealed with the
// queue key: PAYLOAD is the envelope's id, 16 hex digits, in clear, then
// seal() of its encode() text, authenticated with `S ID SIZE` so that it
// cannot be moved to another envelope or size) or `R` (an envelope removed;
// PAYLOAD is its id, SIZE 0). LENGTH is PAYLOAD's length in bytes, CRC the
// CRC-32C of `OP SIZE LF PAYLOAD` in 8 lowercase hex digits. The payload is
// delimited by its length, so no byte in it can forge a record, and the CRC
// tells a record cut short by a crash (the last one a process wrote) from a
// whole one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postern::queue::journal {

inline constexpr std::string_view kMagic = "postern-journal 1\n";
// No record of ours is bigger: an envelope is a few hundred bytes.
inline constexpr std::size_t kMaxPayload = 1 << 20;

enum class Op : char { Envelope = 'E', Sealed = 'S', Removed = 'R' };

struct Record {
    Op op = Op::Envelope;
    std::uint64_t size = 0;    // the message file's size (Envelope records)
    std::string_view payload;  // encode(envelope), ID + seal(encode(envelope)), or the removed envelope's id

    bool is_envelope() const { return op != Op::Removed; }
};

// The id of the envelope a record is about (16 hex digits), read without
// decoding or unsealing it; "" when the payload names none.
std::string_view envelope_id(const Record& record);
// What a sealed record of envelope `id` authenticates besides its payload.
std::string sealed_aad(std::string_view id, std::uint64_t size);

// Appends one record to `out`.
void append(std::string& out, Op op, std::uint64_t size, std::string_view payload);

// Reads the records of one segment's bytes, magic line included.
class Reader {
public:
    explicit Reader(std::string_view segment);

    // The next record; false at the end of the data or where no further
    // record can be found (see error()). A whole record whose CRC does not
    // match is skipped (see damaged()): its length still says where the
    // next one starts.
    bool next(Record& record);
    // The records skipped so far, each as "offset N: CRC mismatch".
    const std::vector<std::string>& damaged() const { return damaged_; }
    // Why reading stopped early ("" at a clean end): a bad magic line, a
    // malformed header, a record cut short or a CRC mismatch, with the offset.
    const std::string& error() const { return error_; }
    // True when what stopped reading is a record cut short at the very end of
    // the data: a write interrupted by a crash, not damage.
    bool cut_short() const { return cut_short_; }

private:
    bool fail(std::string why, bool cut_short = false);

    std::string_view data_;
    std::size_t pos_ = 0;
    std::string error_;
    std::vector<std::string> damaged_;
    bool cut_short_ = false;
};

std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);

}  // namespace postern::queue::journal
