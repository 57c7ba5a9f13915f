// Shared helpers for the config unit tests: parse text, list its errors as
// the `file:line:col: message` lines a user would see.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace postern::config::test {

inline ParseResult parse(const std::string& text, const Macros& overrides = {}) {
    return parse_text(text, "test.conf", overrides);
}

inline std::vector<std::string> formatted(const std::vector<Diagnostic>& ds) {
    std::vector<std::string> out;
    for (const Diagnostic& d : ds) out.push_back(format(d));
    return out;
}

inline std::vector<std::string> errors_of(const std::string& text, const Macros& overrides = {}) {
    return formatted(parse(text, overrides).errors);
}

// The first error only ("" when the text parses).
inline std::string first_error(const std::string& text, const Macros& overrides = {}) {
    auto r = parse(text, overrides);
    return r.errors.empty() ? std::string() : format(r.errors.front());
}

// A config that parses needs at least one rule; tests append this one.
inline const std::string kRule = "action \"d\" mbox\nmatch for local action \"d\"\n";

// Source files of the tests (fixtures, seeds).
inline std::string source_path(const std::string& rel) { return std::string(POSTERN_SOURCE_DIR) + "/" + rel; }

}  // namespace postern::config::test
