// tests/unit/config/legacy_helpers.hpp — what the pre-6.4 grammar's tests
// share: the declarations the old lines use, reading them, and comparing the
// model they give with the model of their current lines.
#pragma once

#include <catch2/catch.hpp>

#include "helpers.hpp"

namespace postern::config::legacy_test {

using namespace postern::config::test;
using Errors = std::vector<std::string>;
using Kind = Criterion::Kind;

// Tables and a pki for the old lines (lines 1-7); the old line is line 8.
inline const std::string kDecls = "table a { x = y }\n"
                                  "table s { lbl = \"user:secret\" }\n"
                                  "table n { 192.0.2.1 = out.example.org }\n"
                                  "table src { 192.0.2.1 }\n"
                                  "table u { x = y }\n"
                                  "table v { x = y }\n"
                                  "pki mx cert \"/c\" key \"/k\"\n";

// The comment a translation shows when an old rule's source gave it `auth`
// criteria (before 6.4 an authenticated session counted as local).
inline const std::string kNote = "# before 6.4 an authenticated session's source was \"local\", whatever its address";

// The warning an old line at LINE:1 gives, showing these current lines.
inline std::string warning(int line, const std::vector<std::string>& lines) {
    std::string w = "test.conf:" + std::to_string(line) + ":1: pre-6.4 grammar; the same in current syntax:";
    for (const std::string& l : lines) w += "\n    " + l;
    return w;
}

struct Read {
    Config config;
    Errors warnings;
};

inline Read read(const std::string& text) {
    auto r = parse(text);
    INFO("errors: " << (r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return Read{*r.config, formatted(r.warnings)};
}

// One old line after kDecls: its config, which must hold `rules` rules (two
// for an old rule that took `local`: itself, and any authenticated session).
inline Read one(const std::string& old_line, std::size_t rules = 1) {
    Read r = read(kDecls + old_line + "\n");
    REQUIRE(r.config.rules.size() == rules);
    return r;
}

// The criteria of rule `i`, as (kind, negated) pairs: what each line tests.
inline std::vector<std::pair<Kind, bool>> shape(const Config& c, std::size_t i) {
    std::vector<std::pair<Kind, bool>> out;
    for (const Criterion& k : c.rules.at(i).criteria) out.emplace_back(k.kind, k.negated);
    return out;
}

inline void check_criterion(const Criterion& c, Kind kind, bool negated, const std::string& value,
                            const std::string& table) {
    CHECK(c.kind == kind);
    CHECK(c.negated == negated);
    CHECK_FALSE(c.regex);
    CHECK(c.value == value);
    CHECK(c.table == table);
}

// Everything of two models but locations, anonymous table names and action
// names (rules are compared through the actions they name).
inline void check_same_model(const Config& got, const Config& want) {
    REQUIRE(got.tables.size() == want.tables.size());
    for (std::size_t i = 0; i < got.tables.size(); ++i) {
        CHECK(got.tables[i].name == want.tables[i].name);
        CHECK(got.tables[i].backend == want.tables[i].backend);
        CHECK(got.tables[i].source == want.tables[i].source);
        CHECK(got.tables[i].entries == want.tables[i].entries);
    }
    REQUIRE(got.actions.size() == want.actions.size());
    for (std::size_t i = 0; i < got.actions.size(); ++i) {
        const Action& g = got.actions[i];
        const Action& w = want.actions[i];
        INFO("action " << w.name);
        CHECK(g.method == w.method);
        CHECK(g.path == w.path);
        CHECK(g.junk == w.junk);
        CHECK(g.lmtp_rcpt_to == w.lmtp_rcpt_to);
        CHECK(g.alias_table == w.alias_table);
        CHECK(g.virtual_table == w.virtual_table);
        CHECK(g.userbase_table == w.userbase_table);
        CHECK(g.user == w.user);
        CHECK(g.ttl == w.ttl);
        const Relay& gr = g.relay;
        const Relay& wr = w.relay;
        CHECK(gr.host == wr.host);
        REQUIRE(gr.url.has_value() == wr.url.has_value());
        if (gr.url) {
            CHECK(gr.url->scheme == wr.url->scheme);
            CHECK(gr.url->label == wr.url->label);
            CHECK(gr.url->host == wr.url->host);
            CHECK(gr.url->port == wr.url->port);
        }
        CHECK(gr.host_table == wr.host_table);
        CHECK(gr.domain_table == wr.domain_table);
        CHECK(gr.backup == wr.backup);
        CHECK(gr.backup_mx == wr.backup_mx);
        CHECK(gr.helo == wr.helo);
        CHECK(gr.helo_src_table == wr.helo_src_table);
        CHECK(gr.src == wr.src);
        CHECK(gr.src_table == wr.src_table);
        CHECK(gr.auth_table == wr.auth_table);
        CHECK(gr.tls == wr.tls);
        CHECK(gr.tls_no_verify == wr.tls_no_verify);
        CHECK(gr.pki == wr.pki);
        CHECK(gr.ca == wr.ca);
        CHECK(gr.mail_from == wr.mail_from);
        CHECK(gr.srs == wr.srs);
    }
    auto action_index = [](const Config& c, const std::string& name) {
        for (std::size_t i = 0; i < c.actions.size(); ++i)
            if (c.actions[i].name == name) return static_cast<int>(i);
        return -1;
    };
    REQUIRE(got.rules.size() == want.rules.size());
    for (std::size_t i = 0; i < got.rules.size(); ++i) {
        const Rule& g = got.rules[i];
        const Rule& w = want.rules[i];
        INFO("rule " << i);
        CHECK(g.reject == w.reject);
        CHECK(action_index(got, g.action) == action_index(want, w.action));
        REQUIRE(g.criteria.size() == w.criteria.size());
        for (std::size_t j = 0; j < g.criteria.size(); ++j) {
            CHECK(g.criteria[j].kind == w.criteria[j].kind);
            CHECK(g.criteria[j].negated == w.criteria[j].negated);
            CHECK(g.criteria[j].regex == w.criteria[j].regex);
            CHECK(g.criteria[j].value == w.criteria[j].value);
            CHECK(g.criteria[j].table == w.criteria[j].table);
        }
    }
    CHECK(got.listeners.size() == want.listeners.size());
}

}  // namespace postern::config::legacy_test
