// Fuzz target: the YAML form of the configuration (core/config/
// yaml_reader.cpp over yaml-cpp), which turns a document into the lines the
// smtpd.conf parser reads. Invariants: nothing crashes and no exception
// leaves the reader (a malformed document is an error, not a throw); a
// refusal has errors, each with a message and the document's name; a model
// given printed back as YAML (print_yaml) reads to the same model and
// prints the same text, and printed as smtpd.conf it reads to the same model
// too (the canonical form of tests/unit/config_yaml).
// An input naming `include` is skipped: it would read files of this host.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "config/printer.hpp"
#include "config/yaml_reader.hpp"
#include "config_yaml/canonical.hpp"

using namespace postern::config;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

// Whether `s` is UTF-8. YAML is UTF-8 only: a byte of another encoding (a
// Latin-1 path) is read as it is but written as U+FFFD by yaml-cpp's
// emitter, so such a model does not survive print_yaml. Reported as a
// finding of this target (issue 17); until the reader refuses such bytes or
// the printer keeps them, the YAML round trip is checked on UTF-8 only.
bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range (RFC 3629's table)
        if (c < 0x80) n = 0;
        else if (c >= 0xc2 && c <= 0xdf) n = 1;
        else if (c >= 0xe0 && c <= 0xef) n = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4) n = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else return false;
        if (s.size() - i <= n) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
        }
        i += n + 1;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 16384) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    if (in.find("include") != std::string_view::npos) return 0;
    ParseResult r = read_yaml_text(in, "fuzz.yaml");
    check(r.config.has_value() == r.errors.empty());
    for (const Diagnostic& d : r.errors) check(!d.message.empty() && !d.where.file.empty());
    if (!r.config || !valid_utf8(in)) return 0;

    using postern::config::test::canonical;
    const Config want = canonical(*r.config);
    const std::string yaml = print_yaml(*r.config);
    ParseResult from_yaml = read_yaml_text(yaml, "printed.yaml");
    check(from_yaml.errors.empty());
    check(canonical(*from_yaml.config) == want);
    check(print_yaml(*from_yaml.config) == yaml);

    const std::string conf = print_conf(*r.config);
    ParseResult from_conf = parse_text(conf, "printed.conf");
    check(from_conf.errors.empty());
    check(canonical(*from_conf.config) == want);
    return 0;
}
