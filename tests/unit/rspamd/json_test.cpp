// rspamd/json: the strict JSON parser — what RFC 8259 allows parses to the
// right tree, what it does not is refused at the right offset with a reason,
// and the limits hold.
#include <catch2/catch.hpp>

#include <string>

#include "rspamd/json.hpp"

using namespace postern::rspamd::json;

namespace {

Value ok(std::string_view text, const Limits& limits = {}) {
    ParseResult r = parse(text, limits);
    if (auto* e = std::get_if<ParseError>(&r)) FAIL("refused: " << describe(*e) << " in " << text);
    return std::get<Value>(r);
}

ParseError refused(std::string_view text, const Limits& limits = {}) {
    ParseResult r = parse(text, limits);
    if (std::holds_alternative<Value>(r)) FAIL("accepted: " << text);
    return std::get<ParseError>(r);
}

std::string str(std::string_view text) {
    Value v = ok(text);
    REQUIRE(v.as_string());
    return *v.as_string();
}

}  // namespace

TEST_CASE("json: scalars at the top level") {
    CHECK(ok("null").is_null());
    CHECK(*ok("true").as_bool() == true);
    CHECK(*ok("false").as_bool() == false);
    CHECK(*ok("0").as_number() == 0);
    CHECK(*ok("-0").as_number() == 0);
    CHECK(*ok("61.199999").as_number() == Approx(61.199999));
    CHECK(*ok("-12.5e2").as_number() == -1250);
    CHECK(*ok("1E+2").as_number() == 100);
    CHECK(*ok("2e-3").as_number() == Approx(0.002));
    CHECK(*ok("\"x\"").as_string() == "x");
    CHECK(*ok(" \t\r\n 7 \n").as_number() == 7);
}

TEST_CASE("json: arrays and objects, members in document order") {
    Value v = ok(R"({"b": [1, "two", null, {"c": false}], "a": {}, "z": []})");
    const Object* o = v.as_object();
    REQUIRE(o);
    REQUIRE(o->size() == 3);
    CHECK((*o)[0].first == "b");
    CHECK((*o)[1].first == "a");
    CHECK((*o)[2].first == "z");
    const Array* b = v.find("b")->as_array();
    REQUIRE(b);
    REQUIRE(b->size() == 4);
    CHECK(*(*b)[0].as_number() == 1);
    CHECK(*(*b)[1].as_string() == "two");
    CHECK((*b)[2].is_null());
    CHECK(*(*b)[3].find("c")->as_bool() == false);
    CHECK(v.find("a")->as_object()->empty());
    CHECK(v.find("z")->as_array()->empty());
    CHECK(v.find("missing") == nullptr);
    CHECK(v.find("b")->find("x") == nullptr);  // not an object
    CHECK(v.find("b")->type() == Type::Array);
}

TEST_CASE("json: escapes") {
    CHECK(str(R"("a\"b\\c\/d")") == "a\"b\\c/d");
    CHECK(str(R"("\b\f\n\r\t")") == "\b\f\n\r\t");
    CHECK(str(R"("\u0041\u00e9\u20AC")") == "A\xC3\xA9\xE2\x82\xAC");
    CHECK(str(R"("\u0000")") == std::string(1, '\0'));
    // A surrogate pair is one code point, four bytes of UTF-8 (U+1F4A9).
    CHECK(str(R"("\uD83D\uDCA9")") == "\xF0\x9F\x92\xA9");
    CHECK(str(R"("\udbff\udfff")") == "\xF4\x8F\xBF\xBF");
    // Raw UTF-8 passes as it is.
    CHECK(str("\"\xC3\xA9t\xC3\xA9 \xF0\x9F\x92\xA9\"") == "\xC3\xA9t\xC3\xA9 \xF0\x9F\x92\xA9");
    // rspamd's folded header values.
    CHECK(str(R"("mx.example.net;\r\n\tdkim=none")") == "mx.example.net;\r\n\tdkim=none");
}

TEST_CASE("json: refusals say where and why") {
    struct Case {
        std::string text;
        std::size_t offset;
        std::string message;
    };
    const Case cases[] = {
        {"", 0, "unexpected end of input, expected a value"},
        {"   ", 3, "unexpected end of input, expected a value"},
        {"nul", 0, "expected a value"},
        {"True", 0, "expected a value"},
        {"{\"a\":1,}", 7, "expected a member name"},
        {"[1,]", 3, "expected a value"},
        {"[1 2]", 3, "expected ',' or ']'"},
        {"{\"a\" 1}", 5, "expected ':' after the member name"},
        {"{'a':1}", 1, "expected a member name"},
        {"{a:1}", 1, "expected a member name"},
        {"[1", 2, "unexpected end of input, expected ',' or ']'"},
        {"{\"a\":1", 6, "unexpected end of input, expected ',' or '}'"},
        {"\"abc", 0, "unterminated string"},
        {"\"a\tb\"", 2, "control character in a string"},
        {"\"a\nb\"", 2, "control character in a string"},
        {R"("\x")", 1, "invalid escape"},
        {R"("\u12G4")", 5, "expected a hex digit in a \\u escape"},
        {R"("\u12")", 3, "unexpected end of input in a \\u escape"},
        {R"("\uDC00")", 1, "a low surrogate without a high one"},
        {R"("\uD800")", 1, "a high surrogate without a low one"},
        {R"("\uD800\u0041")", 1, "a high surrogate without a low one"},
        {R"("a\uD800b")", 2, "a high surrogate without a low one"},
        {"01", 1, "a leading zero"},
        {"-", 1, "unexpected end of input, expected a digit"},
        {"-a", 1, "expected a digit"},
        {"1.", 2, "unexpected end of input, expected a digit after '.'"},
        {"1.e3", 2, "expected a digit after '.'"},
        {"1e", 2, "unexpected end of input, expected a digit in the exponent"},
        {"+1", 0, "expected a value"},
        {".5", 0, "expected a value"},
        {"1e400", 0, "number out of range"},
        {"-1e400", 0, "number out of range"},
        {"NaN", 0, "expected a value"},
        {"Infinity", 0, "expected a value"},
        {"{} {}", 3, "data after the value"},
        {"1 // comment", 2, "data after the value"},
        {"\xEF\xBB\xBF{}", 0, "expected a value"},  // a BOM
        {"{\"a\":1,\"b\":2,\"a\":3}", 0, "duplicate member name \"a\""},
        {"[{\"x\":1}, {\"k\":1, \"k\":1}]", 10, "duplicate member name \"k\""},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        ParseError e = refused(c.text);
        CHECK(e.message == c.message);
        CHECK(e.offset == c.offset);
    }
    CHECK(describe(refused("[1 2]")) == "offset 3: expected ',' or ']'");
}

TEST_CASE("json: strings must be well-formed UTF-8") {
    const std::string bad[] = {
        "\"\x80\"",              // a lone continuation byte
        "\"\xC3\"",              // a truncated sequence
        "\"\xC0\xAF\"",          // overlong '/'
        "\"\xE0\x80\xAF\"",      // overlong, three bytes
        "\"\xED\xA0\x80\"",      // a UTF-16 surrogate encoded as UTF-8
        "\"\xF4\x90\x80\x80\"",  // above U+10FFFF
        "\"\xF5\x80\x80\x80\"",  // not a lead byte
        "\"\xFF\"",
    };
    for (const auto& text : bad) {
        INFO(text);
        ParseError e = refused(text);
        CHECK(e.message == "invalid UTF-8");
        CHECK(e.offset == 1);
    }
    CHECK(str("\"\xF4\x8F\xBF\xBF\"") == "\xF4\x8F\xBF\xBF");  // U+10FFFF itself
    CHECK(str("\"\xEF\xBF\xBF\"") == "\xEF\xBF\xBF");          // U+FFFF
}

TEST_CASE("json: limits on depth, size and the number of values") {
    Limits l;
    l.max_depth = 3;
    ok("[[[1]]]", l);
    ok("{\"a\":{\"b\":[1]}}", l);
    ParseError deep = refused("[[[[1]]]]", l);
    CHECK(deep.message == "nested deeper than 3");
    CHECK(deep.offset == 3);

    // The default depth stops a pathological nest well before the stack does.
    std::string nest(100000, '[');
    ParseError e = refused(nest);
    CHECK(e.message == "nested deeper than 64");
    CHECK(e.offset == 64);
    ok(std::string(64, '[') + std::string(64, ']'));

    l = Limits{};
    l.max_size = 10;
    ok("[1,2,3,4]", l);
    ParseError big = refused("[1,2,3,4,5]", l);
    CHECK(big.message == "input larger than 10 bytes");

    l = Limits{};
    l.max_values = 4;
    ok("[1,2,3]", l);  // the array and three numbers
    ParseError many = refused("[1,2,3,4]", l);
    CHECK(many.message == "more than 4 values");
    CHECK(many.offset == 7);
}

TEST_CASE("json: values compare by content") {
    CHECK(ok("{\"a\": [1, 2.0, \"x\"]}") == ok("{ \"a\" : [ 1 , 2 , \"\\u0078\" ] }"));
    CHECK_FALSE(ok("{\"a\": 1, \"b\": 2}") == ok("{\"b\": 2, \"a\": 1}"));  // order is kept
}
