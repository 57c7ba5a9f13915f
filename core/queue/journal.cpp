// queue/journal.cpp — the journal record format (layout in journal.hpp).
#include "queue/journal.hpp"

#include <array>
#include <charconv>

namespace postern::queue::journal {
namespace {

// Reflected CRC-32C (Castagnoli) table, computed once at compile time.
constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr auto kTable = make_table();

constexpr char kHex[] = "0123456789abcdef";

std::uint32_t record_crc(Op op, std::string_view size_digits, std::string_view payload) {
    char head[2] = {static_cast<char>(op), ' '};
    std::uint32_t crc = crc32c(std::string_view(head, 2));
    crc = crc32c(size_digits, crc);
    crc = crc32c("\n", crc);
    return crc32c(payload, crc);
}

// A decimal number without sign or leading zeros (but "0").
bool parse_number(std::string_view text, std::uint64_t& out) {
    if (text.empty() || text.size() > 19 || (text.size() > 1 && text[0] == '0')) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

bool parse_hex32(std::string_view text, std::uint32_t& out) {
    if (text.size() != 8) return false;
    out = 0;
    for (char c : text) {
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return false;
        out = out << 4 | static_cast<std::uint32_t>(v);
    }
    return true;
}

// Splits off the text up to the next space.
std::string_view take_word(std::string_view& line) {
    std::size_t sp = line.find(' ');
    std::string_view word = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    return word;
}

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t crc) {
    crc = ~crc;
    for (unsigned char c : data) crc = kTable[(crc ^ c) & 0xff] ^ (crc >> 8);
    return ~crc;
}

std::string_view envelope_id(const Record& record) {
    std::string_view id;
    switch (record.op) {
    case Op::Removed: id = record.payload; break;
    case Op::Sealed: id = record.payload.substr(0, 16); break;
    case Op::Envelope: {
        // encode() starts "version: 1\nid: <16 hex>\n".
        std::size_t at = record.payload.find("\nid: ");
        if (at != std::string_view::npos) id = record.payload.substr(at + 5, 16);
        break;
    }
    }
    bool hex = id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
    return hex ? id : std::string_view();
}

std::string sealed_aad(std::string_view id, std::uint64_t size) {
    return "S " + std::string(id) + " " + std::to_string(size);
}

void append(std::string& out, Op op, std::uint64_t size, std::string_view payload) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, size);
    std::string_view size_text(digits, static_cast<std::size_t>(end - digits));
    std::uint32_t crc = record_crc(op, size_text, payload);
    out += static_cast<char>(op);
    out += ' ';
    out += std::to_string(payload.size());
    out += ' ';
    for (int shift = 28; shift >= 0; shift -= 4) out += kHex[(crc >> shift) & 0xf];
    out += ' ';
    out += size_text;
    out += '\n';
    out += payload;
    out += '\n';
}

Reader::Reader(std::string_view segment) : data_(segment) {
    if (data_.substr(0, kMagic.size()) == kMagic) pos_ = kMagic.size();
    else if (kMagic.substr(0, data_.size()) == data_) fail("header cut short", true);
    else fail("not a journal segment (no 'postern-journal 1' line)");
}

bool Reader::fail(std::string why, bool cut_short) {
    error_ = "offset " + std::to_string(pos_) + ": " + std::move(why);
    cut_short_ = cut_short;
    pos_ = data_.size();
    return false;
}

bool Reader::next(Record& record) {
    while (error_.empty() && pos_ < data_.size()) {
        std::string_view rest = data_.substr(pos_);
        // OP, LENGTH, CRC and SIZE fit in 64 bytes with room to spare.
        std::size_t eol = rest.substr(0, 64).find('\n');
        if (eol == std::string_view::npos)
            return rest.size() < 64 ? fail("record header cut short", true) : fail("record header too long");
        std::string_view line = rest.substr(0, eol);
        std::string_view op = take_word(line), length = take_word(line), crc_text = take_word(line), size = line;
        std::uint64_t payload_size = 0, message_size = 0;
        std::uint32_t crc = 0;
        if (op.size() != 1 || (op[0] != static_cast<char>(Op::Envelope) && op[0] != static_cast<char>(Op::Sealed) &&
                               op[0] != static_cast<char>(Op::Removed)))
            return fail("unknown record type");
        if (!parse_number(length, payload_size) || payload_size > kMaxPayload || !parse_hex32(crc_text, crc) ||
            !parse_number(size, message_size))
            return fail("malformed record header");
        std::size_t whole = eol + 1 + payload_size + 1;
        if (rest.size() < whole) return fail("record cut short", true);
        std::string_view payload = rest.substr(eol + 1, payload_size);
        if (rest[whole - 1] != '\n') return fail("record not ended by a line feed");
        Op kind = static_cast<Op>(op[0]);
        if (record_crc(kind, size, payload) != crc) {
            // At the very end: the torn last write of a process that stopped.
            if (whole == rest.size()) return fail("CRC mismatch", true);
            damaged_.push_back("offset " + std::to_string(pos_) + ": CRC mismatch");
            pos_ += whole;
            continue;
        }
        record = Record{kind, message_size, payload};
        pos_ += whole;
        return true;
    }
    return false;
}

}  // namespace postern::queue::journal
