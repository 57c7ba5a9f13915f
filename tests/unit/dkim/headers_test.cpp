// Unit tests of the header section as DKIM sees it (filters/dkim/headers):
// fields collected from lines with their folding, the bottom-up selection
// of RFC 6376 5.4.2 and over-signing in the hash input, and the From domain
// through display names, comments, quoted strings and groups.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dkim/headers.hpp"

using namespace postern::dkim;

namespace {

std::vector<HeaderField> collect(const std::vector<std::string>& lines) {
    HeaderCollector c;
    for (const std::string& l : lines) c.line(l);
    return c.take();
}

std::optional<std::string> from_of(std::string value) { return from_domain({{"From", std::move(value)}}); }

}  // namespace

TEST_CASE("headers: fields from lines, folds kept with CRLF", "[dkim][headers]") {
    auto f = collect({"Subject: Is dinner", " ready?", "\tYes.", "X-Empty:", "To:a@b", "Subject : sloppy"});
    REQUIRE(f.size() == 4);
    CHECK(f[0] == HeaderField{"Subject", " Is dinner\r\n ready?\r\n\tYes."});
    CHECK(f[1] == HeaderField{"X-Empty", ""});
    CHECK(f[2] == HeaderField{"To", "a@b"});
    CHECK(f[3].name == "Subject ");
    CHECK(field_name(f[3]) == "Subject");
}

TEST_CASE("headers: a line that is no field is dropped with its continuations", "[dkim][headers]") {
    auto f = collect({" orphan continuation", "no colon here", " its continuation", "From: a@example.org", "|x: y"});
    REQUIRE(f.size() == 2);
    CHECK(f[0] == HeaderField{"From", " a@example.org"});
    CHECK(f[1] == HeaderField{"|x", " y"});
}

TEST_CASE("headers: h= picks instances bottom-up, extra names add nothing", "[dkim][headers]") {
    std::vector<HeaderField> f = {{"To", " first"}, {"From", " f"}, {"to", " second"}, {"DKIM-Signature", " old"}};
    HeaderField sig{"DKIM-Signature", " v=1; b="};
    CHECK(header_hash_input(f, {"to"}, Canon::Simple, sig) == "to: second\r\nDKIM-Signature: v=1; b=");
    CHECK(header_hash_input(f, {"To", "to", "TO", "from", "from"}, Canon::Relaxed, sig) ==
          "to:second\r\nto:first\r\nfrom:f\r\ndkim-signature:v=1; b=");
    // A verifier's own field is never picked, even if h= names it.
    CHECK(header_hash_input(f, {"dkim-signature"}, Canon::Relaxed, sig, 3) == "dkim-signature:v=1; b=");
    CHECK(header_hash_input(f, {"dkim-signature"}, Canon::Relaxed, sig) ==
          "dkim-signature:old\r\ndkim-signature:v=1; b=");
    CHECK(count_fields(f, "TO") == 2);
    CHECK(count_fields(f, "cc") == 0);
}

TEST_CASE("headers: the From domain", "[dkim][headers]") {
    CHECK(from_of(" joe@Example.ORG") == "example.org");
    CHECK(from_of(" Joe SixPack <joe@football.example.com>") == "football.example.com");
    CHECK(from_of(" \"Joe, <x@evil.example>\" <joe@example.org>") == "example.org");
    CHECK(from_of(" \"a\\\"b@c.d\" <joe@example.org> (x@evil.example)") == "example.org");
    CHECK(from_of(" (comment@evil.example) joe@example.org") == "example.org");
    CHECK(from_of(" joe@example.org (Joe)") == "example.org");
    CHECK(from_of(" \"joe@inside\"@example.org") == "example.org");
    CHECK(from_of(" Joe <joe@example.org>,\r\n Jim <jim@example.net>") == "example.org");
    CHECK(from_of(" =?utf-8?q?J=C3=B6e?= <joe@sub.example.org>") == "sub.example.org");
    CHECK(from_of(" joe@ example.org ") == "example.org");

    CHECK_FALSE(from_of(" undisclosed-recipients:;"));
    CHECK_FALSE(from_of(" joe"));
    CHECK_FALSE(from_of(" joe@[192.0.2.1]"));
    CHECK_FALSE(from_of(" joe@exa mple.org"));
    CHECK_FALSE(from_of(" joe@bücher.example"));
    CHECK_FALSE(from_of(" <>"));
    CHECK_FALSE(from_domain({{"To", " joe@example.org"}}));
    CHECK_FALSE(from_domain({{"From", " a@example.org"}, {"from", " b@example.org"}}));
}

TEST_CASE("headers: domain names", "[dkim][headers]") {
    CHECK(is_domain_name("example.org"));
    CHECK(is_domain_name("sel-2024.example.org"));
    CHECK(is_domain_name("_dmarc.example.org"));
    CHECK(is_domain_name("localhost"));
    CHECK_FALSE(is_domain_name(""));
    CHECK_FALSE(is_domain_name("example..org"));
    CHECK_FALSE(is_domain_name(".example.org"));
    CHECK_FALSE(is_domain_name("example.org."));
    CHECK_FALSE(is_domain_name("-x.example.org"));
    CHECK_FALSE(is_domain_name("x;y.example.org"));
    CHECK_FALSE(is_domain_name(std::string(64, 'a') + ".org"));
    CHECK_FALSE(
        is_domain_name(std::string(250, 'a').replace(60, 1, ".").replace(120, 1, ".").replace(180, 1, ".") + ".org"));
}
