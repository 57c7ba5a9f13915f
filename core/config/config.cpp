// The configuration model's few behaviours: printing a diagnostic, looking
// up declared names and reading a relay URL (the parser checks them, the relay
// plugin reads them again from a `host <t>` table). The parser (parser.cpp)
// is what fills the model.
#include "config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <iterator>

namespace postern::config {

std::string format(const Diagnostic& d) {
    return d.where.file + ":" + std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " + d.message;
}

bool is_builtin_table(std::string_view name) {
    return std::find(std::begin(kBuiltinTables), std::end(kBuiltinTables), name) != std::end(kBuiltinTables);
}

const TableDecl* Config::find_table(std::string_view name) const {
    auto it = std::find_if(tables.begin(), tables.end(), [&](const TableDecl& t) { return t.name == name; });
    return it == tables.end() ? nullptr : &*it;
}

const Action* Config::find_action(std::string_view name) const {
    auto it = std::find_if(actions.begin(), actions.end(), [&](const Action& a) { return a.name == name; });
    return it == actions.end() ? nullptr : &*it;
}

const Pki* Config::find_pki(std::string_view name) const {
    auto it = std::find_if(pkis.begin(), pkis.end(), [&](const Pki& p) { return p.name == name; });
    return it == pkis.end() ? nullptr : &*it;
}

const Ca* Config::find_ca(std::string_view name) const {
    auto it = std::find_if(cas.begin(), cas.end(), [&](const Ca& c) { return c.name == name; });
    return it == cas.end() ? nullptr : &*it;
}

const FilterProc* Config::find_proc(std::string_view name) const {
    auto it = std::find_if(procs.begin(), procs.end(), [&](const FilterProc& p) { return p.name == name; });
    return it == procs.end() ? nullptr : &*it;
}

const Filter* Config::find_filter(std::string_view name) const {
    auto it = std::find_if(filters.begin(), filters.end(), [&](const Filter& f) { return f.name == name; });
    return it == filters.end() ? nullptr : &*it;
}

}  // namespace postern::config
