// Round trips over every configuration file under tests/config (seeds,
// include fixtures, the YAML fixtures): read it, print it as smtpd.conf and
// as YAML, read each print back, and compare the models. A file the parser
// refuses is read without the lines it refuses (a seed past its unsupported
// `queue compression`), so what it holds besides is still round-tripped.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "canonical.hpp"
#include "config/printer.hpp"
#include "config/yaml_reader.hpp"

using namespace postern::config;
using postern::config::test::canonical;
using postern::config::test::source_path;

namespace {

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The file's model; for smtpd.conf, with the lines it refuses blanked and,
// for a fragment without any rule, a rule added (as often as that makes
// progress). nullopt when nothing of it can be read.
std::optional<Config> read_leniently(const std::filesystem::path& path, int* dropped) {
    *dropped = 0;
    if (is_yaml_name(path.string())) {
        auto r = parse_file(path.string());
        return r.config;
    }
    std::vector<std::string> lines;
    std::istringstream in(read_text(path));
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    for (int round = 0; round < 10; ++round) {
        std::string text;
        for (const std::string& l : lines) text += l + "\n";
        auto r = parse_text(text, path.string());
        if (r.config) return r.config;
        bool progress = false;
        for (const Diagnostic& d : r.errors)
            if (d.message.starts_with("no 'match' rule")) {  // a fragment: give it a rule
                lines.push_back("action \"round-trip\" mbox");
                lines.push_back("match for local action \"round-trip\"");
                progress = true;
            } else if (d.where.file == path.string() && d.where.line >= 1 &&
                       d.where.line <= static_cast<int>(lines.size()) && !lines[d.where.line - 1].empty()) {
                lines[d.where.line - 1].clear();
                progress = true;
                ++*dropped;
            }
        if (!progress) return std::nullopt;
    }
    return std::nullopt;
}

std::vector<std::filesystem::path> config_files() {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(source_path("tests/config")))
        if (e.is_regular_file() && (e.path().extension() == ".conf" || is_yaml_name(e.path().string())))
            out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

// The fixtures nothing can be read of, on purpose: their error is in the
// file they include (a broken file, an include loop), not in a line of theirs.
const std::set<std::string> kUnreadable = {"include/bad_outer.conf", "include/loop_a.conf", "include/loop_b.conf"};

void round_trip(const Config& model, const std::string& label) {
    const Config want = canonical(model);
    INFO(label);

    const std::string conf = print_conf(model);
    INFO("printed conf:\n" << conf);
    auto from_conf = parse_text(conf, "printed.conf");
    REQUIRE(from_conf.errors.empty());
    CHECK(print_conf(canonical(*from_conf.config)) == print_conf(want));
    CHECK(canonical(*from_conf.config) == want);
    CHECK(print_conf(*from_conf.config) == conf);  // printing is stable

    const std::string yaml = print_yaml(model);
    INFO("printed yaml:\n" << yaml);
    auto from_yaml = read_yaml_text(yaml, "printed.yaml");
    REQUIRE(from_yaml.errors.empty());
    CHECK(print_conf(canonical(*from_yaml.config)) == print_conf(want));
    CHECK(canonical(*from_yaml.config) == want);
    CHECK(print_yaml(*from_yaml.config) == yaml);
}

}  // namespace

TEST_CASE("round trip: every config under tests/config reads back the same from its conf and its yaml print") {
    const std::string root = source_path("tests/config") + "/";
    std::set<std::string> unreadable;
    int round_tripped = 0;
    for (const auto& path : config_files()) {
        const std::string rel = path.string().substr(root.size());
        int dropped = 0;
        auto model = read_leniently(path, &dropped);
        if (!model) {
            unreadable.insert(rel);
            continue;
        }
        round_trip(*model, rel + (dropped ? " (" + std::to_string(dropped) + " refused lines left out)" : ""));
        ++round_tripped;
    }
    CHECK(unreadable == kUnreadable);
    CHECK(round_tripped >= 18);
}

TEST_CASE("round trip: the comparison sees a change (canonical keeps what a file says)") {
    auto r = parse_file(source_path("tests/config/yaml/every_option.conf"));
    REQUIRE(r.config);
    const Config base = canonical(*r.config);
    Config changed = *r.config;
    changed.listeners[1].port = 26;
    CHECK_FALSE(canonical(changed) == base);
    changed = *r.config;
    for (TableDecl& t : changed.tables)
        if (t.name == "srcs") t.entries.back().first = "192.0.2.22";
    CHECK_FALSE(canonical(changed) == base);
    changed = *r.config;
    changed.rules[2].criteria[2].negated = false;
    CHECK_FALSE(canonical(changed) == base);
    changed = *r.config;
    std::swap(changed.rules[0], changed.rules[1]);  // the first match wins: order counts
    CHECK_FALSE(canonical(changed) == base);
}
