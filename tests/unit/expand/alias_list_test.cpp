// Alias value syntax: splitting on commas, quotes, backslashes; element kinds;
// the logical lines of :include: files.
#include <catch2/catch.hpp>

#include "fixtures.hpp"

using namespace expand_test;
using expand::classify_element;
using expand::Element;
using expand::include_lines;
using expand::split_alias_list;

TEST_CASE("split: commas separate, blanks are trimmed, empty items dropped") {
    CHECK(split_alias_list("bob, alice ,\tcarol") == Strings{"bob", "alice", "carol"});
    CHECK(split_alias_list(" a,,b, ,c,") == Strings{"a", "b", "c"});
    CHECK(split_alias_list("") == Strings{});
    CHECK(split_alias_list(" , ,, ") == Strings{});
    CHECK(split_alias_list("a b, c") == Strings{"a b", "c"});  // inner blanks stay: classification refuses them
}

TEST_CASE("split: a leading quote protects commas and blanks and is removed") {
    CHECK(split_alias_list(R"("|/usr/bin/filter -a, -b", bob)") == Strings{"|/usr/bin/filter -a, -b", "bob"});
    CHECK(split_alias_list("'x, y' , z") == Strings{"x, y", "z"});
    CHECK(split_alias_list(R"(" padded ")") == Strings{" padded "});
    CHECK(split_alias_list(R"("", bob)") == Strings{"bob"});  // an empty quoted item is still empty
    // A quote inside an element is an ordinary character.
    CHECK(split_alias_list("o'brien@example.org, bob") == Strings{"o'brien@example.org", "bob"});
}

TEST_CASE("split: a backslash takes the next character literally") {
    CHECK(split_alias_list(R"(a\,b, c)") == Strings{"a,b", "c"});
    CHECK(split_alias_list(R"(\"quoted\", x)") == Strings{"\"quoted\"", "x"});
    CHECK(split_alias_list(R"(a\ , b)") == Strings{"a ", "b"});  // an escaped blank survives trimming
    CHECK(split_alias_list(R"(\\x)") == Strings{"\\x"});
}

TEST_CASE("split: strict form refuses unterminated quotes and trailing backslashes") {
    std::vector<std::string> out;
    std::string why;
    CHECK_FALSE(split_alias_list(R"(bob, "|cmd, x)", &out, &why));
    CHECK(why == "unterminated quote");
    CHECK_FALSE(split_alias_list(R"(bob\)", &out, &why));
    CHECK(why == "trailing backslash");
    REQUIRE(split_alias_list(R"(bob, "a,b")", &out, &why));
    CHECK(out == Strings{"bob", "a,b"});
    // The lenient form keeps going.
    CHECK(split_alias_list(R"(bob, "|cmd, x)") == Strings{"bob", "|cmd, x"});
    CHECK(split_alias_list(R"(bob\)") == Strings{"bob\\"});
}

TEST_CASE("classify: each element kind, and what is invalid") {
    using K = Element::Kind;
    struct Row {
        std::string text;
        K kind;
        std::string value;
        int code;
    };
    const std::vector<Row> rows = {
        {"Bob", K::User, "bob", 0},
        {"bob+lists", K::User, "bob+lists", 0},
        {"first.last-x_y", K::User, "first.last-x_y", 0},
        {"Bob@Example.ORG", K::Address, "Bob@example.org", 0},
        {"o'brien+x@example.org", K::Address, "o'brien+x@example.org", 0},
        {"/var/mail/archive", K::File, "/var/mail/archive", 0},
        {"|/usr/bin/procmail -f-", K::Command, "/usr/bin/procmail -f-", 0},
        {"| spaced", K::Command, "spaced", 0},
        {":include:/etc/mail/staff", K::Include, "/etc/mail/staff", 0},
        {"include: /etc/mail/staff", K::Include, "/etc/mail/staff", 0},
        {"error:550 5.1.1 no such list", K::Error, "5.1.1 no such list", 550},
        {":error:451 try later", K::Error, "try later", 451},
        {"ERROR:554 gone", K::Error, "gone", 554},
        {"error:250 fine", K::Invalid, "error: needs a 4xx or 5xx code, a space and a text", 0},
        {"error:55 short", K::Invalid, "error: needs a 4xx or 5xx code, a space and a text", 0},
        {"error:550  two spaces", K::Invalid, "error: needs a 4xx or 5xx code, a space and a text", 0},
        {":include:relative", K::Invalid, ":include: needs an absolute path", 0},
        {"|", K::Invalid, "empty command", 0},
        {"bob@", K::Invalid, "'bob@' is not a valid address", 0},
        {"@example.org", K::Invalid, "'@example.org' is not a valid address", 0},
        {"bob@exa_mple.org", K::Invalid, "'bob@exa_mple.org' is not a valid address", 0},
        {"bob smith", K::Invalid, "'bob smith' is not a user name, address, path or command", 0},
        {"bob\nx", K::Invalid, "control character in element", 0},
        {"   ", K::Invalid, "empty element", 0},
    };
    for (const auto& r : rows) {
        INFO(r.text);
        Element e = classify_element(r.text);
        CHECK(e.kind == r.kind);
        CHECK(e.value == r.value);
        CHECK(e.code == r.code);
    }
    // Another sub-address delimiter is allowed in user names.
    CHECK(classify_element("bob-x", '-').kind == K::User);
    CHECK(classify_element("bob=x", '=').kind == K::User);
    CHECK(classify_element("bob=x").kind == K::Invalid);
}

TEST_CASE("include_lines: comments, blank lines, continuations, CRLF") {
    const char* text = "# staff list\n"
                       "bob, alice\r\n"
                       "\n"
                       "   # indented comment\n"
                       "carol, \\\n"
                       "  dave@example.org\n"
                       "eve # not a comment here\n"
                       "last\\";
    CHECK(include_lines(text) ==
          Strings{"bob, alice", "carol,   dave@example.org", "eve # not a comment here", "last"});
    CHECK(include_lines("") == Strings{});
    CHECK(include_lines("\n\n#x\n") == Strings{});
}
