// Fuzz target: filter-dkim's canonicalization (filters/dkim/canon.cpp), what
// a header field and the body of any message passing the filter are reduced
// to before hashing; the message is anyone's. Input: one byte choosing the
// canonicalization and an l= limit, then the body, its lines cut at '\n'
// (a CR before it dropped). Invariants:
//  - simple header form: the field byte for byte, then CRLF; relaxed: a
//    lowercase name without WSP, no WSP run, no WSP at either end of the
//    value; relaxing a relaxed field changes nothing;
//  - the body hash ignores trailing empty lines (and, relaxed, WSP at the
//    end of lines, and the length of WSP runs): the same body written so
//    hashes the same, with the same canonical length;
//  - under an l= limit no more than the limit is hashed, and a limit at or
//    above the body's length gives the unlimited hash.

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/canon.hpp"

using namespace postern::dkim;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string> lines_of(std::string_view in) {
    std::vector<std::string> out;
    while (!in.empty()) {
        std::size_t nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        out.emplace_back(line);
        if (nl == std::string_view::npos) break;
        in.remove_prefix(nl + 1);
    }
    return out;
}

BodyHash hash(Canon c, const std::vector<std::string>& lines, std::optional<std::uint64_t> limit = std::nullopt,
              std::uint64_t* hashed = nullptr) {
    BodyHasher h(c, limit);
    for (const std::string& l : lines) h.line(l);
    BodyHash out = h.finish();
    if (hashed) *hashed = h.hashed();
    return out;
}

void check_header(std::string_view field) {
    std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view name = field.substr(0, colon), value = field.substr(colon + 1);

    check(canon_header(Canon::Simple, name, value) == std::string(name) + ":" + std::string(value) + "\r\n");

    std::string relaxed = canon_header(Canon::Relaxed, name, value);
    check(relaxed.size() >= 3 && relaxed.ends_with("\r\n"));
    std::size_t c2 = relaxed.find(':');
    check(c2 != std::string::npos);
    std::string_view rname = std::string_view(relaxed).substr(0, c2);
    std::string_view rvalue = std::string_view(relaxed).substr(c2 + 1, relaxed.size() - c2 - 3);
    for (char c : rname) check(!is_wsp(c) && !(c >= 'A' && c <= 'Z'));
    check(rvalue.empty() || (!is_wsp(rvalue.front()) && !is_wsp(rvalue.back())));
    for (std::size_t i = 1; i < rvalue.size(); ++i) check(!(is_wsp(rvalue[i]) && is_wsp(rvalue[i - 1])));
    check(rvalue.find('\t') == std::string_view::npos);
    // Relaxing again changes nothing, for a value as a message holds one: a
    // lone LF (never in a line, so never in a collected field) can meet a
    // CR left before it and make a CRLF that the second pass unfolds.
    bool lone_lf = false;
    for (std::size_t i = 0; i < value.size(); ++i)
        lone_lf = lone_lf || (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'));
    if (!lone_lf) check(canon_header(Canon::Relaxed, rname, rvalue) == relaxed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const Canon canon = data[0] & 1 ? Canon::Relaxed : Canon::Simple;
    const std::uint64_t limit = data[0] >> 1;
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::vector<std::string> lines = lines_of(body);

    const BodyHash plain = hash(canon, lines);
    check(plain.canon == canon && !plain.base64.empty());
    check(canon == Canon::Relaxed || plain.length >= 2);

    // Trailing empty lines (relaxed: lines of WSP too) do not count.
    std::vector<std::string> padded = lines;
    padded.insert(padded.end(), {"", canon == Canon::Relaxed ? " \t" : ""});
    check(hash(canon, padded) == plain);

    if (canon == Canon::Relaxed) {
        // WSP at the end of a line, and the length of a WSP run, do not count.
        std::vector<std::string> spaced;
        for (const std::string& l : lines) {
            std::string s;
            for (char c : l) s += is_wsp(c) ? std::string(" \t") : std::string(1, c);
            spaced.push_back(s + "\t ");
        }
        check(hash(canon, spaced) == plain);
    }

    std::uint64_t hashed = 0;
    BodyHash cut = hash(canon, lines, limit, &hashed);
    check(hashed <= limit && hashed <= plain.length && cut.length == plain.length);
    if (limit >= plain.length) check(cut == plain);
    BodyHash whole = hash(canon, lines, plain.length, &hashed);
    check(whole == plain && hashed == plain.length);

    for (const std::string& l : lines) check_header(l);
    check_header(body);
    return 0;
}
