// Config lexer: tokens, their kinds and their file:line:column.
#include <catch2/catch.hpp>

#include "config/lexer.hpp"

using namespace postern::config;
using K = Token::Kind;

namespace {

struct Lexed {
    std::vector<Line> lines;
    std::vector<std::string> errors;
};

Lexed lex(const std::string& text, const Macros& macros = {}) {
    Lexer lexer(text, "t.conf");
    Lexed out;
    std::vector<Diagnostic> errors;
    Line line;
    for (int guard = 0; guard < 1000; ++guard) {
        auto st = lexer.next_line(macros, line, errors);
        if (st == Lexer::Status::End) break;
        if (st == Lexer::Status::Line) out.lines.push_back(line);
    }
    for (const Diagnostic& d : errors) out.errors.push_back(format(d));
    return out;
}

std::string kinds(const Line& line) {
    std::string s;
    for (const Token& t : line)
        s += t.kind == K::Word ? 'w' : t.kind == K::String ? 's' : t.kind == K::Number ? 'n' : 'p';
    return s;
}

}  // namespace

TEST_CASE("lexer: token kinds and punctuation") {
    auto l = lex("table x { a = 1, b => \"c d\" } <t> !from -5 25m - 192.0.2.1 ( )\n");
    REQUIRE(l.errors.empty());
    REQUIRE(l.lines.size() == 1);
    const Line& t = l.lines[0];
    CHECK(kinds(t) == "wwpwpnpwpsppwppwnwwwpp");
    CHECK(t[4].text == "=");
    CHECK(t[8].text == "=>");
    CHECK(t[9].text == "c d");
    CHECK(t[14].text == "!");
    CHECK(t[15].text == "from");
    CHECK(t[16].text == "-5");
    CHECK(t[17].text == "25m");  // digits then letters: a word, not a number
    CHECK(t[18].text == "-");
}

TEST_CASE("lexer: columns, lines and continuation") {
    auto l = lex("\n  listen on\tlo \\\n     port 25\n# comment\nmatch\n");
    REQUIRE(l.lines.size() == 2);
    const Line& a = l.lines[0];
    REQUIRE(a.size() == 5);
    CHECK(a[0].where.line == 2);
    CHECK(a[0].where.column == 3);
    CHECK(a[2].where.column == 13);  // a tab counts as one byte
    CHECK(a[3].text == "port");
    CHECK(a[3].where.line == 3);
    CHECK(a[3].where.column == 6);
    CHECK(a[4].kind == K::Number);
    CHECK(a[0].where.file == "t.conf");
    CHECK(l.lines[1][0].where.line == 5);
}

TEST_CASE("lexer: quoting and escapes") {
    auto l = lex("x \"a\\\"b\" 'it\\'s' \"back\\slash\" \"sp\\ ace\" \"join\\\ned\" \"# not a comment\"\n");
    REQUIRE(l.errors.empty());
    const Line& t = l.lines[0];
    REQUIRE(t.size() == 7);
    CHECK(t[1].text == "a\"b");
    CHECK(t[2].text == "it's");
    CHECK(t[3].text == "back\\slash");  // only the quote, space and tab are escaped
    CHECK(t[4].text == "sp ace");
    CHECK(t[5].text == "joined");  // `\`+newline inside quotes vanishes
    CHECK(t[6].text == "# not a comment");
    CHECK(t[6].kind == K::String);
    CHECK(t[1].length == 6);
}

TEST_CASE("lexer: newlines inside braces do not end the line") {
    auto l = lex("table t {\n a,\n\n b # c\n}\nnext\n");
    REQUIRE(l.lines.size() == 2);
    CHECK(kinds(l.lines[0]) == "wwpwpwp");
    CHECK(l.lines[1][0].text == "next");
}

TEST_CASE("lexer: macros expand at the start of unquoted words only") {
    Macros m{{"a", "one two"}, {"n", "25"}};
    auto l = lex("x $a \"$a\" b$a $n $a.c\n", m);
    REQUIRE(l.errors.empty());
    const Line& t = l.lines[0];
    REQUIRE(t.size() == 8);
    CHECK(t[1].text == "one");
    CHECK(t[1].where.column == 3);
    CHECK(t[2].text == "two");
    CHECK(t[2].where.column == 3);  // every token of the value points at the `$`
    CHECK(t[3].text == "$a");
    CHECK(t[4].text == "b$a");
    CHECK(t[5].kind == K::Number);
    CHECK(t[6].text == "one");
    CHECK(t[7].text == "two.c");
}

TEST_CASE("lexer: errors skip to the end of the logical line") {
    auto l = lex("a \"open\nb $undef c \\\n d\nc\n");
    CHECK(l.errors == std::vector<std::string>{"t.conf:1:3: unterminated quoted string: missing closing \"",
                                               "t.conf:2:3: undefined macro '$undef'"});
    REQUIRE(l.lines.size() == 1);
    CHECK(l.lines[0][0].text == "c");
    CHECK(l.lines[0][0].where.line == 4);
}
