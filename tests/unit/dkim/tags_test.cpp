// Unit tests of the small pieces under the DKIM core: tag lists (RFC 6376
// 3.2, filters/dkim/tags), base64 with folding white space
// (filters/dkim/crypto) and the layout of the fields we write
// (filters/dkim/fold).

#include <catch2/catch.hpp>

#include <string>

#include "dkim/crypto.hpp"
#include "dkim/fold.hpp"
#include "dkim/tags.hpp"

using namespace postern::dkim;

TEST_CASE("tags: names, values, folding white space, raw spans", "[dkim][tags]") {
    std::string_view text = " v=1; a = rsa-sha256 ;\r\n\tb=AB\r\n CD ;h=from : to;";
    auto t = TagList::parse(text);
    REQUIRE(t.ok());
    REQUIRE(t.value().tags().size() == 4);
    CHECK(t.value().value("v") == "1");
    CHECK(t.value().value("a") == "rsa-sha256");
    CHECK(t.value().value("b") == "AB\r\n CD");
    CHECK(t.value().value("h") == "from : to");
    CHECK_FALSE(t.value().value("B"));  // names are case-sensitive
    const Tag& b = *t.value().find("b");
    CHECK(text.substr(b.raw_begin, b.raw_end - b.raw_begin) == "AB\r\n CD ");
    CHECK(split_colons(*t.value().value("h")) == std::vector<std::string_view>{"from", "to"});
    CHECK(split_colons("") == std::vector<std::string_view>{""});

    auto empty_value = TagList::parse("p=; k=rsa");
    REQUIRE(empty_value.ok());
    CHECK(empty_value.value().value("p") == "");
}

TEST_CASE("tags: malformed lists", "[dkim][tags]") {
    auto kind = [](std::string_view text) {
        auto t = TagList::parse(text);
        REQUIRE_FALSE(t.ok());
        return t.error().kind;
    };
    using K = TagError::Kind;
    CHECK(kind("v=1; a") == K::NoEquals);
    CHECK(kind("1v=1") == K::BadName);
    CHECK(kind("=1") == K::BadName);
    CHECK(kind("v-x=1") == K::BadName);
    CHECK(kind("v=1;;a=2") == K::EmptySpec);
    CHECK(kind(";v=1") == K::EmptySpec);
    CHECK(kind("") == K::EmptySpec);
    CHECK(kind("v=1; v=2") == K::Duplicate);
    CHECK(kind("v=a\x01"
               "b") == K::BadValue);
    CHECK(kind("v=caf\xc3\xa9") == K::BadValue);
    auto dup = TagList::parse("b=1; b=2");
    CHECK(dup.error().text == "duplicate tag \"b\"");
}

TEST_CASE("crypto: base64 both ways, folding white space ignored", "[dkim][crypto]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_decode("Zm9v\r\n\tYmFy") == "foobar");
    CHECK(base64_decode(" Zg = = ") == "f");
    CHECK(base64_decode("Zm8=") == "fo");
    CHECK(base64_decode("") == "");
    CHECK_FALSE(base64_decode("Zm9"));       // not a multiple of 4
    CHECK_FALSE(base64_decode("Zg=a"));      // data after padding
    CHECK_FALSE(base64_decode("Z==="));      // too much padding
    CHECK_FALSE(base64_decode("Zm9v!mFy"));  // a stranger
    CHECK(algorithm_from_name("ED25519-SHA256") == Algorithm::Ed25519Sha256);
    CHECK_FALSE(algorithm_from_name("rsa-sha1"));
}

TEST_CASE("fold: words, breakable text, the width", "[dkim][fold]") {
    Folder f("X-Test");
    f.word("a;");
    f.word(std::string(66, 'b'));  // 77 columns after "X-Test: a;": too many
    f.word("c", false);
    f.breakable(std::string(150, 'd'));  // fills each line to 76 columns
    std::string d(150, 'd');
    std::vector<std::string> expected = {"X-Test: a;", "\t" + std::string(66, 'b') + "c" + d.substr(0, 1),
                                         "\t" + d.substr(0, 68), "\t" + d.substr(0, 68), "\t" + d.substr(0, 13)};
    CHECK(f.lines() == expected);
    CHECK(f.value() == " a;\r\n" + expected[1] + "\r\n" + expected[2] + "\r\n" + expected[3] + "\r\n" + expected[4]);

    Folder big("X-Big");
    big.word(std::string(100, 'z'));  // longer than a line: whole, on its own line
    CHECK(big.lines() == std::vector<std::string>{"X-Big:", "\t" + std::string(100, 'z')});
}
