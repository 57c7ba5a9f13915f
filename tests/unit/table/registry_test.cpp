// The registry's built-in tables: their default contents, what the daemon's
// identity puts in them, and opening them for a config that uses them.
#include <catch2/catch.hpp>

#include "table/registry.hpp"

using namespace postern;
using Strings = std::vector<std::string>;

TEST_CASE("registry: built-in tables hold loopback only until told more") {
    table::Registry r;
    CHECK(r.builtin("localnames") == Strings{"localhost", "127.0.0.1", "[127.0.0.1]", "::1", "[IPv6:::1]"});
    CHECK(r.builtin("localhost") == Strings{"local", "127.0.0.1", "::1"});
    CHECK(r.builtin("anyhost") == Strings{"local", "0.0.0.0/0", "::/0"});
    CHECK(r.builtin("anydestination") == Strings{"*"});
    CHECK(r.builtin("getpwnam").empty());
    CHECK(r.builtin("<localhost>").empty());
}

TEST_CASE("registry: set_local_identity fills <localnames> and <localhost>") {
    table::Registry r;
    r.set_local_identity({"mx.example.org", "", "example.org"}, {"192.0.2.10", "2001:db8::10"});
    CHECK(r.builtin("localnames") == Strings{"localhost", "mx.example.org", "example.org", "192.0.2.10", "[192.0.2.10]",
                                             "2001:db8::10", "[IPv6:2001:db8::10]"});
    CHECK(r.builtin("localhost") == Strings{"local", "192.0.2.10", "2001:db8::10"});
    CHECK(r.builtin("anyhost") == Strings{"local", "0.0.0.0/0", "::/0"});  // untouched
    CHECK(r.set_builtin("anyhost", {"0.0.0.0/0"}));
    CHECK(r.builtin("anyhost") == Strings{"0.0.0.0/0"});
    CHECK_FALSE(r.set_builtin("aliases", {"x"}));
    CHECK(r.builtin("aliases").empty());
}

TEST_CASE("registry: a config's built-in tables open in memory with the given entries") {
    auto pr = config::parse_text("action d mbox\n"
                                 "match from src <localhost> for domain <localnames> action d\n"
                                 "match from src <anyhost> for domain <anydestination> reject\n",
                                 "test.conf");
    REQUIRE(pr.config);
    table::Registry r;
    r.set_local_identity({"mx.example.org"}, {"192.0.2.10"});
    std::vector<std::string> errors;
    REQUIRE(r.open(*pr.config, "/nonexistent", &errors));  // no plugin is needed
    CHECK(errors.empty());
    std::string error;
    table::Table* names = r.find("localnames");
    REQUIRE(names);
    CHECK(names->match(table::Service::Domain, "MX.example.org", &error) == table::Result::Found);
    CHECK(names->match(table::Service::Domain, "[192.0.2.10]", &error) == table::Result::Found);
    CHECK(names->match(table::Service::Domain, "[127.0.0.1]", &error) == table::Result::NotFound);
    table::Table* hosts = r.find("localhost");
    REQUIRE(hosts);
    CHECK(hosts->match(table::Service::Netaddr, "192.0.2.10", &error) == table::Result::Found);
    CHECK(hosts->match(table::Service::Netaddr, "127.0.0.1", &error) == table::Result::NotFound);
    CHECK(hosts->match(table::Service::String, "local", &error) == table::Result::Found);
    table::Table* any = r.find("anyhost");
    REQUIRE(any);
    CHECK(any->match(table::Service::Netaddr, "203.0.113.9", &error) == table::Result::Found);
    CHECK(any->match(table::Service::Netaddr, "2001:db8::1", &error) == table::Result::Found);
    table::Table* dest = r.find("anydestination");
    REQUIRE(dest);
    CHECK(dest->match(table::Service::Domain, "any.where.test", &error) == table::Result::Found);
    CHECK(error.empty());
    // Only what the config uses is opened.
    auto few = config::parse_text("action d mbox\nmatch for domain <anydestination> action d\n", "few.conf");
    REQUIRE(few.config);
    table::Registry r2;
    REQUIRE(r2.open(*few.config, "/nonexistent", &errors));
    CHECK(r2.find("anydestination"));
    CHECK_FALSE(r2.find("localhost"));
}

TEST_CASE("registry: a builtin declaration with a name that is not built in fails to open") {
    config::Config c;
    config::TableDecl t;
    t.name = "frob";
    t.backend = "builtin";
    t.where = config::Location{"x.conf", 3, 9};
    c.tables.push_back(t);
    table::Registry r;
    std::vector<std::string> errors;
    CHECK_FALSE(r.open(c, "/nonexistent", &errors));
    CHECK(errors == Strings{"x.conf:3:9: table frob: no such built-in table"});
    CHECK_FALSE(r.find("frob"));
}
