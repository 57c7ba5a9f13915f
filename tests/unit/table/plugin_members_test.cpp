// The registry and a table plugin's optional members (postern/table.h):
// reload and iterate may be NULL; a table that claims to be iterable without
// an iterate is refused when opened; one that cannot be listed says so
// instead of being called. Uses tests/plugins/table_minimal.c.
#include <catch2/catch.hpp>

#include "table/registry.hpp"

using namespace postern;

namespace {

config::Config minimal_table(const std::string& source, const std::string& backend = "minimal") {
    config::Config c;
    config::TableDecl t;
    t.name = "t";
    t.backend = backend;
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
    CHECK(t->lookup(table::Service::Alias, "KEY", &value, &error) ==
          table::Result::Found);  // keys go lowercased to the plugin
    CHECK(value == "the value");
    CHECK(t->lookup(table::Service::Alias, "other", &value, &error) == table::Result::NotFound);
    // A pattern match on a table that cannot be listed is an exact lookup.
    CHECK(t->match(table::Service::Domain, "key", &error) == table::Result::Found);
    // No reload: nothing to re-read, and the content stays.
    CHECK(r.reload("t", &error));
    CHECK(t->lookup(table::Service::Alias, "key", &value, &error) == table::Result::Found);
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

TEST_CASE("registry: a table with a query per service is asked with the service, and fetched in turn") {
    table::Registry r;
    std::vector<std::string> errors;
    // It answers userinfo (0x10), domain (0x2) and source (0x20).
    REQUIRE(r.open(minimal_table("0x32", "services"), POSTERN_TEST_PLUGIN_DIR, &errors));
    table::Table* t = r.find("t");
    REQUIRE(t);
    std::string value, error;
    CHECK(t->lookup(table::Service::Userinfo, "Joe", &value, &error) == table::Result::Found);
    CHECK(value == "10:joe");  // lookup_service, not the plain lookup; the key lowercased
    CHECK(t->lookup(table::Service::Userinfo, "missing", &value, &error) == table::Result::NotFound);
    // A match on a table that cannot be listed goes to the backend with its service.
    CHECK(t->match(table::Service::Domain, "Example.ORG", &error) == table::Result::Found);
    CHECK(t->match(table::Service::Domain, "missing", &error) == table::Result::NotFound);
    // What it cannot answer it says, and the reason reaches the caller.
    CHECK(t->supports(table::Service::Userinfo));
    CHECK_FALSE(t->supports(table::Service::Credentials));
    CHECK(t->lookup(table::Service::Credentials, "joe", &value, &error) == table::Result::TempFail);
    CHECK(error == "table t: no query for service 0x4");
    // Rotating values come from fetch.
    CHECK(t->fetch(table::Service::Source, &value, &error) == table::Result::Found);
    CHECK(value == "10.0.0.1");
    CHECK(t->fetch(table::Service::Source, &value, &error) == table::Result::Found);
    CHECK(value == "10.0.0.2");
}

TEST_CASE("registry: a table without lookup_service answers every service from its one map") {
    table::Registry r;
    std::vector<std::string> errors;
    REQUIRE(r.open(minimal_table("v"), POSTERN_TEST_PLUGIN_DIR, &errors));
    table::Table* t = r.find("t");
    std::string value, error;
    for (auto s : {table::Service::Userinfo, table::Service::Credentials, table::Service::Alias}) {
        CHECK(t->supports(s));
        CHECK(t->lookup(s, "key", &value, &error) == table::Result::Found);
        CHECK(value == "v");
    }
    CHECK(t->fetch(table::Service::Source, &value, &error) == table::Result::NotFound);
}
