// Unit tests of DKIM canonicalization (filters/dkim/canon): RFC 6376 3.4.5's
// example, header and body, both forms; empty bodies (errata 1384);
// trailing empty lines; WSP at line ends; l= limits; long bodies streamed.
// Expected digests were computed apart (Python's hashlib) from the
// canonical texts the RFC gives.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dkim/canon.hpp"

using namespace postern::dkim;

namespace {

std::string b64sha(std::string_view canonical) { return base64_encode(sha256(canonical)); }

BodyHash hash_lines(Canon c, const std::vector<std::string>& lines) {
    BodyHasher h(c);
    for (const std::string& l : lines) h.line(l);
    return h.finish();
}

// The body of RFC 6376 3.4.5's example, as lines.
const std::vector<std::string> kExampleBody = {" C ", "D \t E", "", ""};

}  // namespace

TEST_CASE("canon: RFC 6376 3.4.5 example headers, relaxed", "[dkim][canon]") {
    // A <SP> X <CRLF>
    // B <SP> : <SP> Y <HTAB><CRLF>
    //                 <HTAB> Z <SP><SP><CRLF>
    CHECK(canon_header(Canon::Relaxed, "A", " X") == "a:X\r\n");
    CHECK(canon_header(Canon::Relaxed, "B ", " Y\t\r\n\tZ  ") == "b:Y Z\r\n");
}

TEST_CASE("canon: RFC 6376 3.4.5 example headers, simple", "[dkim][canon]") {
    CHECK(canon_header(Canon::Simple, "A", " X") == "A: X\r\n");
    CHECK(canon_header(Canon::Simple, "B ", " Y\t\r\n\tZ  ") == "B : Y\t\r\n\tZ  \r\n");
}

TEST_CASE("canon: RFC 6376 3.4.5 example body, relaxed", "[dkim][canon]") {
    BodyHash h = hash_lines(Canon::Relaxed, kExampleBody);
    CHECK(h.canon == Canon::Relaxed);
    CHECK(h.base64 == b64sha(" C\r\nD E\r\n"));
    CHECK(h.base64 == "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo=");
    CHECK(h.length == 9);
}

TEST_CASE("canon: RFC 6376 3.4.5 example body, simple", "[dkim][canon]") {
    BodyHash h = hash_lines(Canon::Simple, kExampleBody);
    CHECK(h.base64 == b64sha(" C \r\nD \t E\r\n"));
    CHECK(h.base64 == "NOeivbQlDH9TmNKJUw7D53wZfsk8YMZ/hTuVVwTgi8s=");
}

TEST_CASE("canon: relaxed headers lowercase the name and trim, simple keeps all", "[dkim][canon]") {
    CHECK(canon_header(Canon::Relaxed, "SubJect", "  A \r\n\t B  ") == "subject:A B\r\n");
    CHECK(canon_header(Canon::Relaxed, "X-Empty", "") == "x-empty:\r\n");
    CHECK(canon_header(Canon::Relaxed, "X-Blank", " \t ") == "x-blank:\r\n");
    CHECK(canon_header(Canon::Relaxed, "To", " a,\r\n  b,\r\n\tc") == "to:a, b, c\r\n");
    CHECK(canon_header(Canon::Simple, "SubJect", "  A \r\n\t B  ") == "SubJect:  A \r\n\t B  \r\n");
}

TEST_CASE("canon: an empty body is CRLF simple, nothing relaxed (errata 1384)", "[dkim][canon]") {
    CHECK(hash_lines(Canon::Simple, {}).base64 == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
    CHECK(hash_lines(Canon::Relaxed, {}).base64 == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    // Only empty lines is an empty body too.
    CHECK(hash_lines(Canon::Simple, {"", "", ""}).base64 == b64sha("\r\n"));
    CHECK(hash_lines(Canon::Relaxed, {"", "", ""}).base64 == b64sha(""));
    // Relaxed: lines of WSP alone are empty lines, simple keeps them.
    CHECK(hash_lines(Canon::Relaxed, {" ", "\t", " \t "}).base64 == b64sha(""));
    CHECK(hash_lines(Canon::Relaxed, {" ", "\t", " \t "}).length == 0);
    CHECK(hash_lines(Canon::Simple, {" ", "\t"}).base64 == b64sha(" \r\n\t\r\n"));
}

TEST_CASE("canon: trailing empty lines are dropped, inner ones kept", "[dkim][canon]") {
    std::vector<std::string> body = {"a", "", "", "b", "", "", ""};
    CHECK(hash_lines(Canon::Simple, body).base64 == b64sha("a\r\n\r\n\r\nb\r\n"));
    CHECK(hash_lines(Canon::Relaxed, body).base64 == b64sha("a\r\n\r\n\r\nb\r\n"));
    // A relaxed line that only held WSP is an inner empty line when text follows.
    CHECK(hash_lines(Canon::Relaxed, {"a", "  ", "b", " "}).base64 == b64sha("a\r\n\r\nb\r\n"));
}

TEST_CASE("canon: a lone CR or LF is kept, in headers and bodies", "[dkim][canon]") {
    // Not line ends (the only CRLFs in a value are folds): kept, as dkimpy
    // keeps them (checked with its canonicalization module), so that the
    // hashes agree.
    CHECK(canon_header(Canon::Relaxed, "X", " a\rb\nc \r\n d") == "x:a\rb\nc d\r\n");
    CHECK(hash_lines(Canon::Relaxed, {"a\rb \r"}).base64 == b64sha("a\rb \r\r\n"));
    CHECK(hash_lines(Canon::Simple, {"a\rb"}).base64 == b64sha("a\rb\r\n"));
}

TEST_CASE("canon: WSP at line ends and inside lines", "[dkim][canon]") {
    std::vector<std::string> body = {"a  b\t\tc \t", "\t lead", "end   "};
    CHECK(hash_lines(Canon::Relaxed, body).base64 == b64sha("a b c\r\n lead\r\nend\r\n"));
    CHECK(hash_lines(Canon::Simple, body).base64 == b64sha("a  b\t\tc \t\r\n\t lead\r\nend   \r\n"));
}

TEST_CASE("canon: the RFC 8463 example body gives its bh= values", "[dkim][canon]") {
    std::vector<std::string> body = {"Hi.", "", "We lost the game.  Are you hungry yet?", "", "Joe.", ""};
    CHECK(hash_lines(Canon::Relaxed, body).base64 == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    CHECK(hash_lines(Canon::Simple, body).base64 == "4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=");
}

TEST_CASE("canon: an l= limit hashes only the first bytes", "[dkim][canon]") {
    BodyHasher h(Canon::Simple, 6);
    h.line("abc");
    h.line("defgh");
    BodyHash out = h.finish();
    CHECK(out.base64 == b64sha("abc\r\nd"));
    CHECK(out.length == 12);  // the whole canonical body
    CHECK(h.hashed() == 6);

    // Pending empty lines count against the limit when they are flushed.
    BodyHasher e(Canon::Relaxed, 4);
    for (std::string_view l : {"a", "", "", "b"}) e.line(l);
    CHECK(e.finish().base64 == b64sha("a\r\n\r"));

    BodyHasher zero(Canon::Simple, 0);
    zero.line("x");
    CHECK(zero.finish().base64 == b64sha(""));
}

TEST_CASE("canon: a long body streams in lines", "[dkim][canon]") {
    // 2 MB of lines and a long run of empty lines (hashed in blocks).
    std::string expected;
    BodyHasher h(Canon::Relaxed);
    const std::string line(78, 'x');
    for (int i = 0; i < 25000; ++i) {
        h.line(line);
        expected += line + "\r\n";
    }
    for (int i = 0; i < 1000; ++i) h.line("");
    h.line("end");
    expected += std::string(2000, ' ');
    for (std::size_t i = expected.size() - 2000; i < expected.size(); i += 2) {
        expected[i] = '\r';
        expected[i + 1] = '\n';
    }
    expected += "end\r\n";
    BodyHash out = h.finish();
    CHECK(out.base64 == b64sha(expected));
    CHECK(out.length == expected.size());
}

TEST_CASE("canon: finish twice and lines after finish change nothing", "[dkim][canon]") {
    BodyHasher h(Canon::Relaxed);
    h.line("a");
    BodyHash first = h.finish();
    h.line("b");
    CHECK(first.base64 == b64sha("a\r\n"));
    CHECK(h.finish().base64.empty());
}

TEST_CASE("canon: names", "[dkim][canon]") {
    CHECK(canon_name(Canon::Simple) == "simple");
    CHECK(canon_name(Canon::Relaxed) == "relaxed");
    CHECK(canon_from_name("Relaxed") == Canon::Relaxed);
    CHECK(canon_from_name("simple") == Canon::Simple);
    CHECK_FALSE(canon_from_name("nowsp"));
}
