// queue/envelope.cpp — the envelope file format, version 1.
//
//   version: 1
//   id: 0123abcd89ef4567
//   msgid: 0123abcd
//   sender: alice@example.org
//   ...
//
// One `key: value` line per field, in a fixed order, each ended by LF. String
// values are escaped: `%`, every byte below 0x20 and 0x7f become `%XX`
// (uppercase hex); all other bytes, UTF-8 included, stay as they are. So a
// value never holds a line end or a NUL and cannot forge another field,
// whatever a client put in it. decode() is strict: anything encode() cannot
// have produced is refused with the line number and the reason, because a
// spool file we do not fully understand must not be delivered on a guess.
#include "queue/envelope.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace postern::queue {
namespace {

// A field of the envelope and where it lives in the struct; exactly one of
// the member pointers is set.
struct Field {
    std::string_view key;
    std::string Envelope::*text = nullptr;
    std::int64_t Envelope::*number = nullptr;
    std::uint32_t Envelope::*count = nullptr;
};

constexpr std::array<Field, 27> kFields{{
    {"id", &Envelope::id},
    {"msgid", &Envelope::msgid},
    {"action", &Envelope::action},
    {"sender", &Envelope::sender},
    {"rcpt", &Envelope::rcpt},
    {"dest", &Envelope::dest},
    {"user", &Envelope::user},
    {"helo", &Envelope::helo},
    {"client", &Envelope::client},
    {"hostname", &Envelope::hostname},
    {"tag", &Envelope::tag},
    {"ctime", nullptr, &Envelope::ctime},
    {"expire", nullptr, &Envelope::expire},
    {"last-try", nullptr, &Envelope::last_try},
    {"next-try", nullptr, &Envelope::next_try},
    {"retry", nullptr, nullptr, &Envelope::retry},
    {"errorline", &Envelope::errorline},
    {"method", &Envelope::method},
    {"path", &Envelope::path},
    {"account", &Envelope::account},
    {"extension", &Envelope::extension},
    {"dsn-notify", nullptr, nullptr, &Envelope::dsn_notify},
    {"dsn-ret", &Envelope::dsn_ret},
    {"dsn-envid", &Envelope::dsn_envid},
    {"dsn-orcpt", &Envelope::dsn_orcpt},
    {"bounce", nullptr, nullptr, &Envelope::bounce},
    {"warnings", nullptr, nullptr, &Envelope::warnings},
}};

constexpr char kHex[] = "0123456789ABCDEF";

bool needs_escape(unsigned char c) { return c == '%' || c < 0x20 || c == 0x7f; }

void append_escaped(std::string& out, std::string_view value) {
    for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (needs_escape(c)) {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += ch;
        }
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Untrusted text quoted in an error message: escaped and cut short, so an
// error line stays one short line whatever the file holds.
std::string quoted(std::string_view text) {
    constexpr std::size_t kMax = 40;
    std::string out = "'";
    append_escaped(out, text.substr(0, kMax));
    if (text.size() > kMax) out += "...";
    out += '\'';
    return out;
}

std::string at_line(std::size_t line, std::string_view what) {
    return "line " + std::to_string(line) + ": " + std::string(what);
}

enum class Unescape { ok, bad_escape, raw_control };

Unescape unescape(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c == '%') {
            if (i + 2 >= in.size()) return Unescape::bad_escape;
            int hi = hex_value(in[i + 1]);
            int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return Unescape::bad_escape;
            out += static_cast<char>(hi << 4 | lo);
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            return Unescape::raw_control;
        } else {
            out += static_cast<char>(c);
        }
    }
    return Unescape::ok;
}

// A decimal integer filling the whole value: no sign for unsigned types, no
// '+', no spaces, no trailing junk, in range.
template <typename T>
bool parse_number(std::string_view text, T& out) {
    if (text.empty()) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

bool is_lower_hex(std::string_view s, std::size_t len) {
    if (s.size() != len) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

const Field* find_field(std::string_view key) {
    for (const Field& f : kFields)
        if (f.key == key) return &f;
    return nullptr;
}

// Splits "key: value"; false when the line has no ": ".
bool split_line(std::string_view line, std::string_view& key, std::string_view& value) {
    auto colon = line.find(": ");
    if (colon == std::string_view::npos) return false;
    key = line.substr(0, colon);
    value = line.substr(colon + 2);
    return true;
}

bool check_version_line(std::string_view line, std::string* error) {
    std::string_view key, value;
    if (!split_line(line, key, value) || key != "version") {
        *error = at_line(1, "expected 'version: " + std::to_string(kEnvelopeVersion) + "'");
        return false;
    }
    int version = 0;
    if (!parse_number(value, version)) {
        *error = at_line(1, "bad version " + quoted(value));
        return false;
    }
    if (version != kEnvelopeVersion) {
        *error = at_line(1, "unsupported version " + std::to_string(version));
        return false;
    }
    return true;
}

// Parses one field line into `e`; `seen` marks fields already set.
bool decode_field(std::string_view line, std::size_t lineno, Envelope& e, std::array<std::size_t, kFields.size()>& seen,
                  std::string* error) {
    std::string_view key, value;
    if (!split_line(line, key, value)) {
        *error = at_line(lineno, "expected 'key: value'");
        return false;
    }
    const Field* f = find_field(key);
    if (key == "version") {
        *error = at_line(lineno, "repeated key 'version'");
        return false;
    }
    if (!f) {
        *error = at_line(lineno, "unknown key " + quoted(key));
        return false;
    }
    auto index = static_cast<std::size_t>(f - kFields.data());
    if (seen[index]) {
        *error = at_line(lineno, "repeated key " + quoted(key));
        return false;
    }
    seen[index] = lineno;
    bool ok = true;
    if (f->text) {
        switch (unescape(value, e.*(f->text))) {
        case Unescape::ok: break;
        case Unescape::bad_escape: *error = at_line(lineno, "bad escape in " + quoted(key)); return false;
        case Unescape::raw_control: *error = at_line(lineno, "raw control byte in " + quoted(key)); return false;
        }
    } else if (f->number) {
        ok = parse_number(value, e.*(f->number));
    } else {
        ok = parse_number(value, e.*(f->count));
    }
    if (!ok) *error = at_line(lineno, "bad number " + quoted(value) + " for " + quoted(key));
    return ok;
}

// id and msgid must be present and well formed: they become file names.
bool check_ids(const Envelope& e, std::size_t id_line, std::size_t msgid_line, std::string* error) {
    if (!id_line) {
        *error = "missing key 'id'";
        return false;
    }
    if (!msgid_line) {
        *error = "missing key 'msgid'";
        return false;
    }
    if (!is_lower_hex(e.msgid, 8)) {
        *error = at_line(msgid_line, "bad msgid " + quoted(e.msgid) + " (want 8 lowercase hex digits)");
        return false;
    }
    if (!is_lower_hex(e.id, 16)) {
        *error = at_line(id_line, "bad id " + quoted(e.id) + " (want 16 lowercase hex digits)");
        return false;
    }
    if (e.id.compare(0, 8, e.msgid) != 0) {
        *error = at_line(id_line, "id " + quoted(e.id) + " does not start with msgid " + quoted(e.msgid));
        return false;
    }
    return true;
}

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>(v | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}

// 0 when `in` ends inside a number (never, for what pack() wrote).
std::uint64_t get_varint(std::string_view& in) {
    std::uint64_t v = 0;
    for (unsigned shift = 0; !in.empty() && shift < 64; shift += 7) {
        auto byte = static_cast<unsigned char>(in.front());
        in.remove_prefix(1);
        v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return v;
    }
    return 0;
}

// Times can be negative in principle: zigzag keeps small magnitudes short.
std::uint64_t zigzag(std::int64_t v) {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) { return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1); }

std::string hex16(std::uint64_t value) {
    static constexpr char kLower[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, value >>= 4) out[static_cast<std::size_t>(i)] = kLower[value & 0xf];
    return out;
}

// The first two fields, id and msgid, are not packed: the key gives them.
constexpr std::size_t kFirstPacked = 2;

}  // namespace

std::string pack(const Envelope& e) {
    std::string out;
    for (std::size_t i = kFirstPacked; i < kFields.size(); ++i) {
        const Field& f = kFields[i];
        if (f.text) {
            const std::string& text = e.*(f.text);
            put_varint(out, text.size());
            out += text;
        } else if (f.number) {
            put_varint(out, zigzag(e.*(f.number)));
        } else {
            put_varint(out, e.*(f.count));
        }
    }
    out.shrink_to_fit();  // held for as long as the envelope is queued
    return out;
}

Envelope unpack(std::uint64_t id, std::string_view in) {
    Envelope e;
    e.id = hex16(id);
    e.msgid = e.id.substr(0, 8);
    for (std::size_t i = kFirstPacked; i < kFields.size(); ++i) {
        const Field& f = kFields[i];
        if (f.text) {
            std::size_t n = std::min<std::uint64_t>(get_varint(in), in.size());
            e.*(f.text) = in.substr(0, n);
            in.remove_prefix(n);
        } else if (f.number) {
            e.*(f.number) = unzigzag(get_varint(in));
        } else {
            e.*(f.count) = static_cast<std::uint32_t>(get_varint(in));
        }
    }
    return e;
}

std::string encode(const Envelope& e) {
    std::string out;
    out.reserve(256 + e.sender.size() + e.rcpt.size() + e.dest.size() + e.errorline.size());
    out += "version: ";
    out += std::to_string(kEnvelopeVersion);
    out += '\n';
    for (const Field& f : kFields) {
        out += f.key;
        out += ": ";
        if (f.text) append_escaped(out, e.*(f.text));
        else if (f.number) out += std::to_string(e.*(f.number));
        else out += std::to_string(e.*(f.count));
        out += '\n';
    }
    return out;
}

std::optional<Envelope> decode(std::string_view text, std::string* error) {
    std::string scratch;
    if (!error) error = &scratch;
    Envelope e;
    std::array<std::size_t, kFields.size()> seen{};  // line of each field, 0 = absent
    std::size_t lineno = 0;
    while (!text.empty()) {
        ++lineno;
        auto nl = text.find('\n');
        if (nl == std::string_view::npos) {
            // Every line encode() writes ends with LF: a missing one means a cut file.
            *error = at_line(lineno, "no newline at end of line (truncated?)");
            return std::nullopt;
        }
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        bool ok = lineno == 1 ? check_version_line(line, error) : decode_field(line, lineno, e, seen, error);
        if (!ok) return std::nullopt;
    }
    if (lineno == 0) {
        *error = at_line(1, "expected 'version: " + std::to_string(kEnvelopeVersion) + "'");
        return std::nullopt;
    }
    if (!check_ids(e, seen[0], seen[1], error)) return std::nullopt;
    return e;
}

}  // namespace postern::queue
