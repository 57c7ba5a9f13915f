// Fuzz target: filter-dkim's reading of a message's header section
// (filters/dkim/headers.cpp), of DKIM-Signature fields (tags.cpp,
// verify.cpp's parse_signature) and of the key records found in the DNS
// (record.cpp). All of it comes from whoever sent the mail or runs the
// domain's DNS. Input: a header section, lines cut at '\n' (a CR before it
// dropped). Invariants:
//  - collected fields: a name holding no ':' and starting with no WSP; each
//    CRLF in a value starts a continuation line (SP or HTAB follows);
//  - a From domain, when one is found, is a lowercase host name;
//  - a tag list: names unique, found by name, each value inside its raw
//    part, the raw parts in order and inside the text;
//  - a signature that parses: a lowercase domain name d=, the From field
//    among h=, its b= blanked (the blanked value still parses as tags, b=
//    empty), a key name "s._domainkey.d";
//  - a key record that parses holds a key, RSA of 1024 bits or more;
//  - the header hash input over the fields with any h= list does not crash
//    and holds only fields of the section and the signature.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/headers.hpp"
#include "dkim/record.hpp"
#include "dkim/tags.hpp"
#include "dkim/verify.hpp"

using namespace postern::dkim;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

void check_tags(std::string_view text) {
    auto parsed = TagList::parse(text);
    if (!parsed) {
        check(!parsed.error().text.empty());
        return;
    }
    const auto& tags = parsed.value().tags();
    std::size_t last_end = 0;
    for (std::size_t i = 0; i < tags.size(); ++i) {
        const Tag& t = tags[i];
        check(!t.name.empty() && t.raw_begin <= t.raw_end && t.raw_end <= text.size());
        check(i == 0 || t.raw_begin > last_end);
        last_end = t.raw_end;
        check(t.value.data() >= text.data() + t.raw_begin &&
              t.value.data() + t.value.size() <= text.data() + t.raw_end);
        check(parsed.value().find(t.name) == &t);
        for (std::size_t j = 0; j < i; ++j) check(tags[j].name != t.name);
    }
}

void check_signature(std::string_view value) {
    auto parsed = parse_signature(value);
    if (!parsed) {
        check(!parsed.error().text.empty());
        return;
    }
    const Signature& s = parsed.value();
    check(is_domain_name(s.domain));
    for (char c : s.domain) check(!(c >= 'A' && c <= 'Z'));
    check(s.key_name() == s.selector + "._domainkey." + s.domain);
    bool from = false;
    for (const std::string& h : s.headers) from = from || iequal(h, "from");
    check(from);
    auto blanked = TagList::parse(s.blanked_value);
    check(blanked.ok());
    auto b = blanked.value().value("b");
    check(b.has_value() && b->empty());
}

void check_key(std::string_view txt) {
    auto parsed = parse_key_record(txt);
    if (!parsed) {
        check(!parsed.error().text.empty());
        return;
    }
    check(parsed.value().pkey != nullptr);
    if (parsed.value().algorithm == Algorithm::RsaSha256) check(parsed.value().bits >= 1024);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    HeaderCollector collector;
    std::vector<std::string_view> lines;
    for (std::string_view rest = in; !rest.empty();) {
        std::size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        collector.line(line);
        if (nl == std::string_view::npos) break;
        rest.remove_prefix(nl + 1);
    }
    const std::vector<HeaderField>& fields = collector.fields();
    for (const HeaderField& f : fields) {
        check(f.name.find(':') == std::string::npos && (f.name.empty() || !is_wsp(f.name.front())));
        for (std::size_t at = f.value.find("\r\n"); at != std::string::npos; at = f.value.find("\r\n", at + 2))
            check(at + 2 < f.value.size() && is_wsp(f.value[at + 2]));
    }
    if (auto domain = from_domain(fields)) {
        check(is_domain_name(*domain));
        for (char c : *domain) check(!(c >= 'A' && c <= 'Z'));
    }

    for (const HeaderField& f : fields) {
        check_tags(f.value);
        check_signature(f.value);
        auto sig = parse_signature(f.value);
        std::vector<std::string> names = sig ? sig.value().headers : std::vector<std::string>{"from", "subject", "x"};
        HeaderField blank{f.name, sig ? sig.value().blanked_value : f.value};
        for (Canon c : {Canon::Simple, Canon::Relaxed}) {
            std::string input = header_hash_input(fields, names, c, blank, 0);
            std::size_t most = 0;
            for (const HeaderField& g : fields) most += canon_header(Canon::Simple, g.name, g.value).size();
            check(input.size() <= most + canon_header(Canon::Simple, blank.name, blank.value).size());
        }
    }
    check_tags(in);
    check_signature(in);
    check_key(in);
    for (std::string_view line : lines) check_key(line);
    return 0;
}
