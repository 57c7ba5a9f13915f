// tests/unit/rules/fixture.hpp — a parsed config, its tables opened and its
// rules ready, for the rule truth tables. `localnames` is what `for local`
// means; `setup` may give the registry this host's identity before the
// tables open, as the daemon does.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rules/ruleset.hpp"

namespace postern::test {

struct RulesFixture {
    config::Config config;
    table::Registry tables;
    std::unique_ptr<rules::Ruleset> rules;

    explicit RulesFixture(const std::string& text, std::vector<std::string> localnames = {"localhost"},
                          const std::function<void(table::Registry&)>& setup = {}) {
        auto pr = config::parse_text(text, "test.conf");
        INFO((pr.errors.empty() ? "" : config::format(pr.errors.front())));
        REQUIRE(pr.config);
        config = std::move(*pr.config);
        if (setup) setup(tables);
        std::vector<std::string> errors;
        REQUIRE(tables.open(config, "/nonexistent", &errors));
        rules = std::make_unique<rules::Ruleset>(config, tables, std::move(localnames));
    }
};

}  // namespace postern::test
