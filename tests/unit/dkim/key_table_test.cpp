// Unit tests of the key table (filters/dkim/key_table): the file's syntax,
// errors as FILE:LINE: what was expected, keys loaded when the table is
// read (relative paths from the table's folder), and lookups by From
// domain with the "*" default and several keys for one domain.

#include <catch2/catch.hpp>

#include <string>

#include "dkim/key_table.hpp"
#include "support.hpp"

using namespace postern::dkim;
using namespace postern::dkim::test;

namespace {

struct Keys {
    TempDir dir;
    std::string rsa = dir.write("rsa.pem", pem_traditional(rsa2048().pkey.get()));
    std::string ed = dir.write("ed.pem", pem_pkcs8(ed25519().pkey.get()));
};

std::string table_error(const Keys& k, std::string_view text) {
    auto t = KeyTable::parse(text, "dkim.keys", k.dir.path());
    REQUIRE_FALSE(t.ok());
    return t.error().text;
}

}  // namespace

TEST_CASE("key table: lines, comments, blank lines, dual keys and the default", "[dkim][key_table]") {
    Keys k;
    std::string path = k.dir.write("dkim.keys", "# DOMAIN SELECTOR KEYFILE\n"
                                                "\n"
                                                "Example.ORG   rsa2024\t" +
                                                    k.rsa +
                                                    "   # the RSA key\n"
                                                    "example.org   ed2024   ed.pem\n"
                                                    "   \t\n"
                                                    "example.net   mail     rsa.pem\r\n"
                                                    "*             default  " +
                                                    k.ed + "\n");
    auto table = KeyTable::load(path);
    REQUIRE(table.ok());
    const auto& e = table.value().entries();
    REQUIRE(e.size() == 4);
    CHECK(e[0].domain == "example.org");
    CHECK(e[0].line == 3);
    CHECK(e[0].key.algorithm == Algorithm::RsaSha256);
    CHECK(e[1].file == k.dir.path() + "/ed.pem");  // relative to the table's folder
    CHECK(e[1].key.algorithm == Algorithm::Ed25519Sha256);
    CHECK(e[2].line == 6);

    auto org = table.value().lookup("EXAMPLE.org");
    REQUIRE(org.size() == 2);
    CHECK(org[0].domain == "example.org");
    CHECK(org[0].selector == "rsa2024");
    CHECK(org[0].key == &e[0].key);
    CHECK(org[1].selector == "ed2024");
    CHECK(org[1].key->algorithm == Algorithm::Ed25519Sha256);

    auto net = table.value().lookup("example.net");
    REQUIRE(net.size() == 1);
    CHECK(net[0].selector == "mail");

    // Not listed: the default, signed as the From domain itself.
    auto other = table.value().lookup("Other.Example");
    REQUIRE(other.size() == 1);
    CHECK(other[0].domain == "other.example");
    CHECK(other[0].selector == "default");
    // A subdomain is a domain of its own.
    CHECK(table.value().lookup("sub.example.org")[0].selector == "default");
    // Nothing that could not be a d= value.
    CHECK(table.value().lookup("").empty());
    CHECK(table.value().lookup("bad domain").empty());
    CHECK(table.value().lookup("*").empty());
}

TEST_CASE("key table: without a default, unlisted domains get no key", "[dkim][key_table]") {
    Keys k;
    auto table = KeyTable::parse("example.org sel rsa.pem\n", "t", k.dir.path());
    REQUIRE(table.ok());
    CHECK(table.value().lookup("example.com").empty());
    CHECK(table.value().lookup("example.org").size() == 1);
}

TEST_CASE("key table: syntax errors name the file and line", "[dkim][key_table]") {
    Keys k;
    CHECK(table_error(k, "# keys\nexample.org sel\n") ==
          "dkim.keys:2: expected DOMAIN SELECTOR KEYFILE, found 2 fields");
    CHECK(table_error(k, "example.org\n") == "dkim.keys:1: expected DOMAIN SELECTOR KEYFILE, found 1 field");
    CHECK(table_error(k, "example.org sel rsa.pem extra\n") ==
          "dkim.keys:1: expected DOMAIN SELECTOR KEYFILE, found 4 fields");
    CHECK(table_error(k, "\n\nexa_mple..org sel rsa.pem\n") ==
          "dkim.keys:3: expected a domain name or \"*\", found \"exa_mple..org\"");
    CHECK(table_error(k, "example.org s/el rsa.pem\n") ==
          "dkim.keys:1: expected a selector (letters, digits, '-', '.'), found \"s/el\"");
    CHECK(table_error(k, "example.org sel rsa.pem\nexample.org SEL ed.pem\n") ==
          "dkim.keys:2: example.org sel is already on line 1");
    CHECK(table_error(k, "# nothing\n\n") == "dkim.keys: no keys (expected lines DOMAIN SELECTOR KEYFILE)");
}

TEST_CASE("key table: a key that does not load stops the table", "[dkim][key_table]") {
    Keys k;
    std::string missing = k.dir.path() + "/missing.pem";
    CHECK(table_error(k, "example.org a rsa.pem\nexample.org b missing.pem\n") ==
          "dkim.keys:2: " + missing + ": cannot read: No such file or directory");
    std::string shortkey = k.dir.write("short.pem", pem_pkcs8(make_rsa(512).get()));
    CHECK(table_error(k, "example.org a short.pem\n") ==
          "dkim.keys:1: " + shortkey + ": RSA key of 512 bits is too short (at least 1024)");
    std::string text = k.dir.write("text.pem", "not a key");
    CHECK(table_error(k, "* a " + text + "\n") == "dkim.keys:1: " + text + ": not a PEM private key");
}

TEST_CASE("key table: an unreadable table", "[dkim][key_table]") {
    TempDir dir;
    std::string path = dir.path() + "/none.keys";
    auto t = KeyTable::load(path);
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().text == path + ": cannot read: No such file or directory");
}
