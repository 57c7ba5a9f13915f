// The registry and a table plugin's optional members (postern/table.h):
// reload and iterate may be NULL; a table that claims to be iterable without
// an iterate is refused when opened; one that cannot be listed says so
// instead of being called. Uses tests/plugins/table_minimal.c.
#include <catch2/catch.hpp>

#include "table/registry.hpp"

using namespace postern;

namespace {

config::Config minimal_table(const std::string& source) {
    config::Config c;
    config::TableDecl t;
    t.name = "t";
    t.backend = "minimal";
    t.source = source;
    t.where = config::Location{"x.conf", 2, 7};
    c.tables.push_back(t);
    return c;
}

}  // namespace

TEST_CASE("registry: a table without reload and iterate opens, looks up and reloads") {
    table::Registry r;
    std::vector<std::string> errors;
    REQUIRE(r.open(minimal_table("the value"), POSTERN_TEST_PLUGIN_DIR, &errors));
    CHECK(errors.empty());
    table::Table* t = r.find("t");
    REQUIRE(t);
    CHECK_FALSE(t->iterable());
    std::string value, error;
    CHECK(t->lookup("KEY", &value, &error) == table::Result::Found);  // keys go lowercased to the plugin
    CHECK(value == "the value");
    CHECK(t->lookup("other", &value, &error) == table::Result::NotFound);
    // A pattern match on a table that cannot be listed is an exact lookup.
    CHECK(t->match(table::Service::Domain, "key", &error) == table::Result::Found);
    // No reload: nothing to re-read, and the content stays.
    CHECK(r.reload("t", &error));
    CHECK(t->lookup("key", &value, &error) == table::Result::Found);
    // Listing it is a temporary failure with a reason, never a call through NULL.
    bool called = false;
    CHECK(t->for_each([&](std::string_view, std::string_view) { return called = true; }, &error) ==
          table::Result::TempFail);
    CHECK_FALSE(called);
    CHECK(error == "table t: its backend cannot list entries (not an iterable table)");
}

TEST_CASE("registry: a table that says it is iterable without an iterate is refused at open") {
    table::Registry r;
    std::vector<std::string> errors;
    CHECK_FALSE(r.open(minimal_table("iterable"), POSTERN_TEST_PLUGIN_DIR, &errors));
    CHECK(errors == std::vector<std::string>{"x.conf:2:7: table t: " POSTERN_TEST_PLUGIN_DIR
                                             "/table-minimal.so: the table says it can be listed "
                                             "(POSTERN_TABLE_ITERABLE) but has no iterate"});
    CHECK_FALSE(r.find("t"));
}
