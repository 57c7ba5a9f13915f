// Config parser on hostile input: random bytes and random mixes of grammar
// words must give diagnostics, never a crash, a hang or a model with errors.
#include <catch2/catch.hpp>

#include <random>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

namespace {

void check_consistent(const std::string& text) {
    auto r = parse(text);
    CHECK(r.config.has_value() == r.errors.empty());
    for (const Diagnostic& d : r.errors) {
        CHECK(d.where.file == "test.conf");
        CHECK(d.where.line >= 1);
        CHECK(d.where.column >= 1);
        CHECK_FALSE(d.message.empty());
    }
}

}  // namespace

TEST_CASE("hostile: random bytes") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 300; ++round) {
        std::string text(rng() % 400, '\0');
        for (char& c : text) c = static_cast<char>(rng() % 256);
        check_consistent(text);
    }
}

TEST_CASE("hostile: random mixes of grammar words") {
    static const char* pieces[] = {
        "table",   "listen",   "on",     "action", "match",    "from",    "for",
        "any",     "local",    "socket", "src",    "domain",   "rcpt-to", "mail-from",
        "tag",     "regex",    "reject", "mbox",   "maildir",  "junk",    "alias",
        "virtual", "userbase", "user",   "ttl",    "4d",       "port",    "25",
        "99999",   "smtp",     "queue",  "limit",  "max-rcpt", "include", "\"/nonexistent\"",
        "{",       "}",        "<",      ">",      "!",        "=",       "=>",
        ",",       "$m",       "$",      "\"q\"",  "'",        "\"",      "\\\n",
        "\n",      "\n",       "#",      "x",      "t",        "d",       "file:/x",
        "pki",     "accept",   "\r\n",
    };
    std::mt19937 rng(777);
    for (int round = 0; round < 2000; ++round) {
        std::string text = "m = x\ntable t { a }\naction d mbox\n";
        const int n = static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) {
            text += pieces[rng() % (sizeof pieces / sizeof *pieces)];
            text += ' ';
        }
        check_consistent(text);
    }
}

TEST_CASE("hostile: pathological shapes stay bounded") {
    check_consistent(std::string(100000, '{'));
    check_consistent(std::string(100000, '}'));
    check_consistent(std::string(100000, '\n'));
    check_consistent(std::string(50000, '\\'));
    std::string many_bad;
    for (int i = 0; i < 5000; ++i) many_bad += "frob\n";
    auto r = parse(many_bad);
    CHECK(r.errors.size() == 201);  // capped, with a closing "too many errors"
    CHECK(format(r.errors[200]) == "test.conf:200:1: too many errors, giving up");
    std::string many_macros;
    for (int i = 0; i < 1000; ++i) many_macros += "m" + std::to_string(i) + " = \"$m\"\n";
    check_consistent(many_macros);
}
