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
#include "utf8.hpp"

using namespace postern::config;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
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
