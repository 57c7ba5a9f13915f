// Comparing configuration models across forms: what a printed file cannot
// keep (see config/printer.hpp) is set aside, the rest compared with the
// model's operator==.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "config/config.hpp"
#include "config/printer.hpp"

namespace postern::config::test {

inline std::string source_path(const std::string& rel) { return std::string(POSTERN_SOURCE_DIR) + "/" + rel; }

// The model with its locations cleared, anonymous tables and chains named by
// the order of their use ("<anon#0>", ...), a rule's criteria in one order (a
// rule is their conjunction), and the tables and filters sorted by name.
inline Config canonical(Config c) {
    for (Rule& r : c.rules) {
        std::stable_sort(r.criteria.begin(), r.criteria.end(), [](const Criterion& a, const Criterion& b) {
            return std::tuple(a.kind, a.negated) < std::tuple(b.kind, b.negated);
        });
        r.where = {};
        for (Criterion& cr : r.criteria) cr.where = {};
    }
    std::map<std::string, std::string> names;
    auto rename = [&](std::string& name) {
        if (!is_anonymous(name)) return;
        auto it = names.find(name);
        if (it == names.end()) it = names.emplace(name, "<anon#" + std::to_string(names.size()) + ">").first;
        name = it->second;
    };
    for (Listener& l : c.listeners) {
        for (std::string* t : {&l.hostnames_table, &l.auth_table, &l.senders_table, &l.filter}) rename(*t);
        l.where = {};
    }
    for (Action& a : c.actions) {
        Relay& r = a.relay;
        for (std::string* t : {&r.host_table, &r.domain_table, &r.helo_src_table, &r.src_table, &r.auth_table})
            rename(*t);
        a.where = {};
    }
    for (Filter& f : c.filters) {
        rename(f.builtin.condition.table);
        f.where = {};
    }
    for (Rule& r : c.rules)
        for (Criterion& cr : r.criteria) rename(cr.table);
    for (TableDecl& t : c.tables) {
        rename(t.name);
        t.where = {};
    }
    for (Filter& f : c.filters) rename(f.name);
    for (Pki& p : c.pkis) p.where = {};
    for (Ca& ca : c.cas) ca.where = {};
    for (FilterProc& p : c.procs) p.where = {};
    auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
    std::sort(c.tables.begin(), c.tables.end(), by_name);
    std::sort(c.filters.begin(), c.filters.end(), by_name);
    // Only whether a relay asked for srs, and whether metrics are on, count.
    c.srs_where = c.srs_where.file.empty() ? Location{} : Location{"set", 0, 0};
    c.metrics_where = {};
    c.queue_encryption_where = {};
    return c;
}

}  // namespace postern::config::test
