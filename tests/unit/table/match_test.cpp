// The pattern rules of the lookup services, and inline tables.
#include <catch2/catch.hpp>

#include "table/table.hpp"

using namespace postern::table;

TEST_CASE("domain patterns: exact, case-insensitive, '*' wildcards") {
    CHECK(domain_matches("example.org", "example.org"));
    CHECK(domain_matches("Example.ORG", "example.org"));
    CHECK(domain_matches("*.example.org", "mail.example.org"));
    CHECK(domain_matches("*.example.org", "a.b.example.org"));
    CHECK_FALSE(domain_matches("*.example.org", "example.org"));
    CHECK_FALSE(domain_matches("example.org", "example.org.evil"));
    CHECK(domain_matches("*", "anything"));
    CHECK(domain_matches("mx*.example.org", "mx1.example.org"));
    CHECK_FALSE(domain_matches("mx*.example.org", "mail.example.com"));
}

TEST_CASE("netaddr patterns: addresses and masks, one family at a time") {
    CHECK(netaddr_matches("192.0.2.1", "192.0.2.1"));
    CHECK_FALSE(netaddr_matches("192.0.2.1", "192.0.2.2"));
    CHECK(netaddr_matches("10.0.0.0/8", "10.200.3.4"));
    CHECK_FALSE(netaddr_matches("10.0.0.0/8", "11.0.0.1"));
    CHECK(netaddr_matches("192.0.2.128/25", "192.0.2.200"));
    CHECK_FALSE(netaddr_matches("192.0.2.128/25", "192.0.2.127"));
    CHECK(netaddr_matches("0.0.0.0/0", "203.0.113.9"));
    CHECK(netaddr_matches("[::1]", "::1"));
    CHECK(netaddr_matches("[2001:db8::]/32", "2001:db8:1::5"));
    CHECK(netaddr_matches("2001:db8::/32", "2001:db8:ffff::1"));
    CHECK_FALSE(netaddr_matches("2001:db8::/32", "2001:db9::1"));
    CHECK_FALSE(netaddr_matches("::/0", "127.0.0.1"));        // families never mix
    CHECK_FALSE(netaddr_matches("10.0.0.0/33", "10.0.0.1"));  // bad mask
    CHECK_FALSE(netaddr_matches("10.0.0.0/x", "10.0.0.1"));
    CHECK_FALSE(netaddr_matches("garbage", "10.0.0.1"));
    CHECK_FALSE(netaddr_matches("10.0.0.1", "not-an-ip"));
}

TEST_CASE("mailaddr patterns: user, @domain, user@domain, @") {
    CHECK(mailaddr_matches("@", "a@b.org"));
    CHECK(mailaddr_matches("@example.org", "joe@example.org"));
    CHECK_FALSE(mailaddr_matches("@example.org", "joe@example.net"));
    CHECK(mailaddr_matches("joe@example.org", "JOE@example.org"));
    CHECK(mailaddr_matches("joe", "joe@anywhere.net"));
    CHECK_FALSE(mailaddr_matches("joe", "jack@anywhere.net"));
    CHECK(mailaddr_matches("joe@*.example.org", "joe@mx.example.org"));
    // A table entry without a tag matches tagged addresses; a tagged entry only itself.
    CHECK(mailaddr_matches("joe@example.org", "joe+lists@example.org"));
    CHECK_FALSE(mailaddr_matches("joe+lists@example.org", "joe@example.org"));
    CHECK(mailaddr_matches("joe+lists@example.org", "joe+lists@example.org"));
}

TEST_CASE("inline tables: lists and maps, keys case-insensitive") {
    auto list = make_inline_table("t", {{"Example.org", ""}, {"*.example.net", ""}}, false);
    std::string value, error;
    CHECK(list->lookup(Service::Domain, "EXAMPLE.ORG", &value, &error) == Result::Found);
    CHECK(value == "example.org");
    CHECK(list->lookup(Service::Domain, "example.com", &value, &error) == Result::NotFound);
    CHECK(list->match(Service::Domain, "mx.example.net", &error) == Result::Found);
    CHECK(list->match(Service::Domain, "example.com", &error) == Result::NotFound);

    auto map = make_inline_table("m", {{"Root", "gilles"}, {"abuse", "gilles, bob"}}, true);
    CHECK(map->lookup(Service::Alias, "root", &value, &error) == Result::Found);
    CHECK(value == "gilles");
    CHECK(map->lookup(Service::Alias, "abuse", &value, &error) == Result::Found);
    CHECK(value == "gilles, bob");
}
