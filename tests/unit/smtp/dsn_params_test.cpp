// Unit tests of the DSN ESMTP parameters and xtext (core/smtp/dsn_params.cpp):
// accepted forms with their exact results, every refusal with its exact
// reply code and text, and an xtext round trip over all 256 byte values.

#include <catch2/catch.hpp>

#include <string>

#include "smtp/dsn_params.hpp"

using namespace postern::smtp;

namespace {

DsnMail mail_ok(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
    DsnMail m;
    for (const auto& [k, v] : params) {
        DsnError err;
        INFO(k << "=" << v << " -> " << err.code << " " << err.text);
        REQUIRE(apply_mail_param(k, v, &m, &err));
    }
    return m;
}

DsnRcpt rcpt_ok(std::string_view key, std::string_view value) {
    DsnRcpt r;
    DsnError err;
    INFO(key << "=" << value);
    bool ok = apply_rcpt_param(key, value, &r, &err);
    INFO("refused: " << err.code << " " << err.text);
    REQUIRE(ok);
    return r;
}

// The reply a single bad parameter gets, as "CODE TEXT".
std::string mail_err(std::string_view key, std::string_view value) {
    DsnMail m;
    DsnError err;
    REQUIRE_FALSE(apply_mail_param(key, value, &m, &err));
    CHECK(m.ret == DsnRet::Unset);
    CHECK(m.envid.empty());
    return std::to_string(err.code) + " " + err.text;
}

std::string rcpt_err(std::string_view key, std::string_view value) {
    DsnRcpt r;
    DsnError err;
    REQUIRE_FALSE(apply_rcpt_param(key, value, &r, &err));
    CHECK(r.notify == NotifyUnset);
    CHECK(r.orcpt.empty());
    return std::to_string(err.code) + " " + err.text;
}

}  // namespace

TEST_CASE("RET accepts FULL and HDRS in any case") {
    CHECK(mail_ok({{"RET", "FULL"}}).ret == DsnRet::Full);
    CHECK(mail_ok({{"RET", "full"}}).ret == DsnRet::Full);
    CHECK(mail_ok({{"RET", "HDRS"}}).ret == DsnRet::Headers);
    CHECK(mail_ok({{"RET", "hDrS"}}).ret == DsnRet::Headers);
}

TEST_CASE("RET refusals") {
    CHECK(mail_err("RET", "") == "501 5.5.4 Invalid RET parameter");
    CHECK(mail_err("RET", "HEADERS") == "501 5.5.4 Invalid RET parameter");
    CHECK(mail_err("RET", "FULLX") == "501 5.5.4 Invalid RET parameter");
    CHECK(mail_err("RET", "FUL") == "501 5.5.4 Invalid RET parameter");
}

TEST_CASE("ENVID is decoded from xtext") {
    CHECK(mail_ok({{"ENVID", "QQ314159"}}).envid == "QQ314159");
    CHECK(mail_ok({{"ENVID", "a+2Bb+3Dc+20d"}}).envid == "a+b=c d");
    CHECK(mail_ok({{"ENVID", "x+2b"}}).envid == "x+");
    std::string max(100, 'e');
    CHECK(mail_ok({{"ENVID", max}}).envid == max);
    DsnMail both = mail_ok({{"RET", "HDRS"}, {"ENVID", "id-1"}});
    CHECK(both.ret == DsnRet::Headers);
    CHECK(both.envid == "id-1");
}

TEST_CASE("ENVID refusals") {
    CHECK(mail_err("ENVID", "") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a=b") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a+4") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a+") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a+G0") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a b") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a\xC3\xA9") == "501 5.5.4 Invalid ENVID parameter");
    // Decodes to a control character or an 8-bit byte: not printable ASCII.
    CHECK(mail_err("ENVID", "a+0Ab") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "a+0D+0ABcc:x") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", "+FF") == "501 5.5.4 Invalid ENVID parameter");
    CHECK(mail_err("ENVID", std::string(101, 'e')) == "501 5.5.4 ENVID parameter too long");
    // The limit is on the text as sent: 34 escapes are 102 characters.
    std::string escaped;
    for (int i = 0; i < 34; ++i) escaped += "+2B";
    CHECK(mail_err("ENVID", escaped) == "501 5.5.4 ENVID parameter too long");
}

TEST_CASE("repeated MAIL parameters are refused and keep the first value") {
    DsnMail m;
    DsnError err;
    REQUIRE(apply_mail_param("RET", "FULL", &m, &err));
    REQUIRE_FALSE(apply_mail_param("RET", "FULL", &m, &err));
    CHECK(err.code == 501);
    CHECK(err.text == "5.5.4 Duplicate RET parameter");
    REQUIRE_FALSE(apply_mail_param("RET", "HDRS", &m, &err));
    CHECK(m.ret == DsnRet::Full);

    REQUIRE(apply_mail_param("ENVID", "one", &m, &err));
    REQUIRE_FALSE(apply_mail_param("ENVID", "two", &m, &err));
    CHECK(err.text == "5.5.4 Duplicate ENVID parameter");
    CHECK(m.envid == "one");
}

TEST_CASE("unknown keys are refused by both functions") {
    CHECK(mail_err("SIZE", "10") == "555 5.5.4 Unsupported MAIL parameter");
    CHECK(mail_err("NOTIFY", "NEVER") == "555 5.5.4 Unsupported MAIL parameter");
    CHECK(mail_err("ret", "FULL") == "555 5.5.4 Unsupported MAIL parameter");
    CHECK(rcpt_err("RET", "FULL") == "555 5.5.4 Unsupported RCPT parameter");
    CHECK(rcpt_err("BODY", "8BITMIME") == "555 5.5.4 Unsupported RCPT parameter");
}

TEST_CASE("NOTIFY accepts NEVER alone or any non-empty subset of the others") {
    CHECK(rcpt_ok("NOTIFY", "NEVER").notify == NotifyNever);
    CHECK(rcpt_ok("NOTIFY", "never").notify == NotifyNever);
    CHECK(rcpt_ok("NOTIFY", "SUCCESS").notify == NotifySuccess);
    CHECK(rcpt_ok("NOTIFY", "FAILURE").notify == NotifyFailure);
    CHECK(rcpt_ok("NOTIFY", "DELAY").notify == NotifyDelay);
    CHECK(rcpt_ok("NOTIFY", "success,Failure").notify == (NotifySuccess | NotifyFailure));
    CHECK(rcpt_ok("NOTIFY", "DELAY,FAILURE").notify == (NotifyDelay | NotifyFailure));
    CHECK(rcpt_ok("NOTIFY", "SUCCESS,FAILURE,DELAY").notify == (NotifySuccess | NotifyFailure | NotifyDelay));
    CHECK(rcpt_ok("NOTIFY", "FAILURE,FAILURE").notify == NotifyFailure);
}

TEST_CASE("NOTIFY refusals") {
    CHECK(rcpt_err("NOTIFY", "") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", "ALWAYS") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", "SUCCESS,") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", ",SUCCESS") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", "SUCCESS,,DELAY") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", "SUCCESS FAILURE") == "501 5.5.4 Invalid NOTIFY parameter");
    CHECK(rcpt_err("NOTIFY", "NEVER,SUCCESS") == "501 5.5.4 NOTIFY=NEVER cannot be combined with other values");
    CHECK(rcpt_err("NOTIFY", "delay,never") == "501 5.5.4 NOTIFY=NEVER cannot be combined with other values");
    CHECK(rcpt_err("NOTIFY", "NEVER,NEVER,X") == "501 5.5.4 Invalid NOTIFY parameter");
}

TEST_CASE("ORCPT keeps the address type and the decoded address") {
    CHECK(rcpt_ok("ORCPT", "rfc822;alice@example.org").orcpt == "rfc822;alice@example.org");
    CHECK(rcpt_ok("ORCPT", "RFC822;Alias@Client.example").orcpt == "rfc822;Alias@Client.example");
    CHECK(rcpt_ok("ORCPT", "rfc822;a+2Bb@example.org").orcpt == "rfc822;a+b@example.org");
    CHECK(rcpt_ok("ORCPT", "rfc822;\"a+20b\"@example.org").orcpt == "rfc822;\"a b\"@example.org");
    CHECK(rcpt_ok("ORCPT", "rfc822;u@[192.0.2.1]").orcpt == "rfc822;u@[192.0.2.1]");
    std::string longest = "rfc822;" + std::string(500 - 7 - 12, 'x') + "@example.org";
    REQUIRE(longest.size() == 500);
    CHECK(rcpt_ok("ORCPT", longest).orcpt == longest);
}

TEST_CASE("ORCPT refusals") {
    const std::string bad = "501 5.5.4 Invalid ORCPT parameter";
    CHECK(rcpt_err("ORCPT", "") == bad);
    CHECK(rcpt_err("ORCPT", "alice@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "utf-8;alice@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "x400;alice@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;alice") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;alice@") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;alice@exa..mple") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;alice@example.org.") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;<alice@example.org>") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a+20b@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a@b+0ABcc:+20x@y") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a+00@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a=b@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a+Z1@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a@ex_ample.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;\"unterminated@example.org") == bad);
    CHECK(rcpt_err("ORCPT", "rfc822;a@[]") == bad);
    std::string too_long = "rfc822;" + std::string(501 - 7 - 12, 'x') + "@example.org";
    CHECK(rcpt_err("ORCPT", too_long) == "501 5.5.4 ORCPT parameter too long");
}

TEST_CASE("repeated RCPT parameters are refused and keep the first value") {
    DsnRcpt r;
    DsnError err;
    REQUIRE(apply_rcpt_param("NOTIFY", "DELAY", &r, &err));
    REQUIRE_FALSE(apply_rcpt_param("NOTIFY", "FAILURE", &r, &err));
    CHECK(err.code == 501);
    CHECK(err.text == "5.5.4 Duplicate NOTIFY parameter");
    CHECK(r.notify == NotifyDelay);

    REQUIRE(apply_rcpt_param("ORCPT", "rfc822;a@b.example", &r, &err));
    REQUIRE_FALSE(apply_rcpt_param("ORCPT", "rfc822;c@d.example", &r, &err));
    CHECK(err.text == "5.5.4 Duplicate ORCPT parameter");
    CHECK(r.orcpt == "rfc822;a@b.example");
}

TEST_CASE("xtext encodes exactly the bytes RFC 3461 requires") {
    CHECK(xtext_encode("") == "");
    CHECK(xtext_encode("abc!~") == "abc!~");
    CHECK(xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(xtext_encode(std::string("\0\r\n\x7f\x80\xff", 6)) == "+00+0D+0A+7F+80+FF");
}

TEST_CASE("xtext round trip over all 256 byte values") {
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    std::string enc = xtext_encode(all);
    for (char c : enc) {
        INFO("byte " << static_cast<int>(static_cast<unsigned char>(c)));
        CHECK((c >= 33 && c <= 126 && c != '='));
    }
    // 94 printable characters minus '+' and '=' stand for themselves.
    CHECK(enc.size() == 92 + 3 * (256 - 92));
    auto dec = xtext_decode(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == all);
    for (int c = 0; c < 256; ++c) {
        std::string one(1, static_cast<char>(c));
        auto back = xtext_decode(xtext_encode(one));
        REQUIRE(back.has_value());
        CHECK(*back == one);
    }
}

TEST_CASE("xtext_decode refusals") {
    CHECK_FALSE(xtext_decode("+").has_value());
    CHECK_FALSE(xtext_decode("+4").has_value());
    CHECK_FALSE(xtext_decode("ab+4").has_value());
    CHECK_FALSE(xtext_decode("+4G").has_value());
    CHECK_FALSE(xtext_decode("+-1").has_value());
    CHECK_FALSE(xtext_decode("a=b").has_value());
    CHECK_FALSE(xtext_decode("a b").has_value());
    CHECK_FALSE(xtext_decode(std::string("a\0b", 3)).has_value());
    CHECK_FALSE(xtext_decode("a\x7f").has_value());
    CHECK_FALSE(xtext_decode("\xc3\xa9").has_value());
    CHECK(xtext_decode("").value() == "");
    CHECK(xtext_decode("+41+6a").value() == "Aj");
}
