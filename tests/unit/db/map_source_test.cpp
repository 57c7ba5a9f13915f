// tests/unit/db/map_source_test.cpp — makemap's input parser: the table file
// format with comments, continuation lines and odd spacing, sets, and the
// exact texts of its refusals.
#include "map_source.hpp"
#include "support.hpp"

using postern::dbmap::MapType;
using postern::dbmap::parse_map_source;
using postern::dbmap::Record;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs parse_ok(std::string_view text, MapType type = MapType::Plain) {
    std::vector<Record> records;
    std::string error;
    bool ok = parse_map_source(text, "src", type, nullptr, &records, &error);
    INFO(error);
    REQUIRE(ok);
    Pairs out;
    for (auto& r : records) out.emplace_back(r.key, r.value);
    return out;
}

std::string parse_error(std::string_view text, MapType type = MapType::Plain,
                        const postern::dbmap::ValueCheck& check = nullptr) {
    std::vector<Record> records;
    std::string error;
    CHECK_FALSE(parse_map_source(text, "src", type, check, &records, &error));
    return error;
}

}  // namespace

TEST_CASE("map source: every separator and odd spacing give the same entry") {
    CHECK(parse_ok("a b\n"
                   "c: d\n"
                   "e:f\n"
                   "g  :  h\n"
                   "\ti\t\tj k  \n"
                   "  l :m\r\n") == Pairs{{"a", "b"}, {"c", "d"}, {"e", "f"}, {"g", "h"}, {"i", "j k"}, {"l", "m"}});
}

TEST_CASE("map source: comments and blank lines are skipped, # inside a line is data") {
    CHECK(parse_ok("# header\n"
                   "\n"
                   "   # indented comment\n"
                   "root: alice # not a comment\n"
                   "\t \n"
                   "#x y\n") == Pairs{{"root", "alice # not a comment"}});
}

TEST_CASE("map source: a backslash at the end of a line continues it") {
    CHECK(parse_ok("list: a,\\\n"
                   "   b,\\\n"
                   "c\n"
                   "next: x\n") == Pairs{{"list", "a,   b,c"}, {"next", "x"}});
    // CRLF files continue too; two backslashes are an escaped one, no continuation.
    CHECK(parse_ok("k: v\\\r\nw\r\nbs: a\\\\\nz: y\n") == Pairs{{"k", "vw"}, {"bs", "a\\\\"}, {"z", "y"}});
    // A comment ending in a backslash does not swallow the next line.
    CHECK(parse_ok("# note \\\nroot: alice\n") == Pairs{{"root", "alice"}});
    // A continuation at the end of the file ends the entry.
    CHECK(parse_ok("a: b\\") == Pairs{{"a", "b"}});
}

TEST_CASE("map source: keys lowercased, values kept, [ipv6] keys whole") {
    CHECK(parse_ok("Postmaster@Example.COM  Alice@Example.org\n[::1]: localhost6\n[fe80::1] x\n") ==
          Pairs{{"postmaster@example.com", "Alice@Example.org"}, {"[::1]", "localhost6"}, {"[fe80::1]", "x"}});
}

TEST_CASE("map source: a set takes the whole line as the key") {
    CHECK(parse_ok("Example.org\n  one two  \n# c\n[::1]\n", MapType::Set) ==
          Pairs{{"example.org", "<set>"}, {"one two", "<set>"}, {"[::1]", "<set>"}});
}

TEST_CASE("map source: refusals name the file, the line and what was expected") {
    CHECK(parse_error("a: 1\nb: 2\n# c\nA: 3\n") ==
          "src:4: duplicate key \"a\" (first given on line 1): expected each key once");
    CHECK(parse_error("root alice\nbob\n") ==
          "src:2: expected a value after the key \"bob\" (a list of keys needs -t set)");
    CHECK(parse_error("postmaster:   \n") ==
          "src:1: expected a value after the key \"postmaster\" (a list of keys needs -t set)");
    CHECK(parse_error(": value\n") == "src:1: expected a key before ':'");
    CHECK(parse_error("[::1 x\n") == "src:1: expected ']' to end the key \"[::1 x\"");
    CHECK(parse_error("[::1]x y\n") == "src:1: expected a blank or ':' after the key \"[::1]\"");
    CHECK(parse_error(std::string("a b\nc\0d e\n", 10)) == "src:2: expected text, found a NUL byte");
    // A duplicate in a set, and the line of an entry that continues.
    CHECK(parse_error("x\nX\n", MapType::Set) ==
          "src:2: duplicate key \"x\" (first given on line 1): expected each key once");
    CHECK(parse_error("a: 1,\\\n 2\n\nb: \\\nx\nc\n") ==
          "src:6: expected a value after the key \"c\" (a list of keys needs -t set)");
}

TEST_CASE("map source: -t aliases checks each value") {
    auto check = [](std::string_view v) { return v == "bad" ? std::string("not an alias") : std::string(); };
    CHECK(parse_error("ok: fine\nx: bad\n", MapType::Aliases, check) == "src:2: invalid alias for \"x\": not an alias");
    std::vector<Record> records;
    std::string error;
    CHECK(parse_map_source("ok: fine\n", "src", MapType::Aliases, check, &records, &error));
}
