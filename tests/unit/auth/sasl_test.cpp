// AUTH exchanges (PLAIN, LOGIN) through auth::Exchange, every reply exact,
// and the strict base64 they rest on.
#include <catch2/catch.hpp>

#include <string>

#include "auth/sasl.hpp"

using namespace postern::auth;
using namespace std::string_literals;
using Kind = Step::Kind;

namespace {

void require_error(const Step& s, int code, const std::string& text) {
    CHECK(s.kind == Kind::Error);
    CHECK(s.code == code);
    CHECK(s.text == text);
    CHECK(s.user.empty());
    CHECK(s.password.empty());
}

void require_challenge(const Step& s, const std::string& text) {
    CHECK(s.kind == Kind::Challenge);
    CHECK(s.code == 334);
    CHECK(s.text == text);
}

void require_done(const Step& s, const std::string& user, const std::string& password) {
    CHECK(s.kind == Kind::Done);
    CHECK(s.user == user);
    CHECK(s.password == password);
}

// What one PLAIN initial response yields.
Step plain(const std::string& encoded) {
    Exchange x;
    return x.start("PLAIN " + encoded);
}

}  // namespace

TEST_CASE("base64: RFC 4648 test vectors both ways") {
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain_text, encoded] : vectors) {
        CHECK(base64_encode(plain_text) == encoded);
        auto decoded = base64_decode(encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == plain_text);
    }
    CHECK(base64_decode("AGJvYgBzZWNyZXQ=") == "\0bob\0secret"s);
    CHECK(base64_encode("\0bob\0secret"s) == "AGJvYgBzZWNyZXQ=");
    CHECK(base64_decode("+/+/") == "\xfb\xff\xbf"s);
}

TEST_CASE("base64: bad padding is refused") {
    CHECK_FALSE(base64_decode("Zg"));     // padding left out
    CHECK_FALSE(base64_decode("Zg="));    // half the padding
    CHECK_FALSE(base64_decode("Zg==="));  // too much
    CHECK_FALSE(base64_decode("Zm9v===="));
    CHECK_FALSE(base64_decode("Z==="));
    CHECK_FALSE(base64_decode("===="));
    CHECK_FALSE(base64_decode("Zg==Zm8="));  // padding in the middle
    CHECK_FALSE(base64_decode("Z=g="));
    CHECK_FALSE(base64_decode("Zh=="));  // unused bits not zero ("Zg==" is canonical)
    CHECK_FALSE(base64_decode("Zm9="));  // ("Zm8=" is canonical)
    CHECK_FALSE(base64_decode("="));
}

TEST_CASE("base64: characters outside the alphabet are refused") {
    CHECK_FALSE(base64_decode("Zm9v!A=="));
    CHECK_FALSE(base64_decode("Zm-v"));  // base64url is another alphabet
    CHECK_FALSE(base64_decode("Zm_v"));
    CHECK_FALSE(base64_decode("Zm9\x80"));
    CHECK_FALSE(base64_decode("Zm9\0"s));
    CHECK_FALSE(base64_decode("*"));
}

TEST_CASE("base64: whitespace anywhere is refused") {
    CHECK_FALSE(base64_decode("Zm9v Zm9v"));
    CHECK_FALSE(base64_decode(" Zm9v"));
    CHECK_FALSE(base64_decode("Zm9v "));
    CHECK_FALSE(base64_decode("Zm9v\r\n"));
    CHECK_FALSE(base64_decode("Zm\t9v"));
}

TEST_CASE("base64: the empty string decodes to nothing") {
    auto empty = base64_decode("");
    REQUIRE(empty.has_value());
    CHECK(empty->empty());
    CHECK(base64_encode("").empty());
}

TEST_CASE("PLAIN: empty challenge, then the response") {
    Exchange x;
    require_challenge(x.start("PLAIN"), "");
    CHECK(x.in_progress());
    require_done(x.next("AGJvYgBzZWNyZXQ="), "bob", "secret");
    CHECK_FALSE(x.in_progress());
}

TEST_CASE("PLAIN: initial response, mechanism in any case, extra blanks") {
    require_done(plain("AGJvYgBzZWNyZXQ="), "bob", "secret");
    Exchange x;
    require_done(x.start("plain AGJvYgBzZWNyZXQ="), "bob", "secret");
    require_done(x.start("  PlAiN   AGJvYgBzZWNyZXQ=  "), "bob", "secret");
    // Case is kept: user names are folded by the table, passwords never.
    require_done(plain("AEJvYgBTZWNyZXQ="), "Bob", "Secret");
    require_done(plain("AGJvYgB4"), "bob", "x");  // one-character passwords are fine
}

TEST_CASE("PLAIN: authorization identity empty or the user itself") {
    require_done(plain("Ym9iAGJvYgBzZWNyZXQ="), "bob", "secret");  // "bob\0bob\0secret"
    require_done(plain("Qk9CAGJvYgBz"), "bob", "s");               // "BOB\0bob\0s"
    require_error(plain("ZXZlAGJvYgBzZWNyZXQ="), 501,              // "eve\0bob\0secret"
                  "5.5.2 Syntax error: authorization identity differs from user name");
}

TEST_CASE("PLAIN: malformed responses, each with its reply") {
    require_error(plain("AGJvYgBzZWNyZXQ"), 501, "5.5.2 Syntax error: invalid base64");
    require_error(plain("not base64!"), 501, "5.5.4 Invalid command arguments: too many parameters");
    require_error(plain("not_base64"), 501, "5.5.2 Syntax error: invalid base64");
    require_error(plain("*"), 501, "5.5.2 Syntax error: invalid base64");  // "*" cancels responses only
    require_error(plain("Ym9iAHNlY3JldA=="), 501, "5.5.2 Syntax error: malformed PLAIN response");  // one NUL
    require_error(plain("c2VjcmV0"), 501, "5.5.2 Syntax error: malformed PLAIN response");          // no NUL
    require_error(plain("AGJvYgBzZWMAcmV0"), 501, "5.5.2 Syntax error: malformed PLAIN response");  // three NULs
    require_error(plain("AABzZWNyZXQ="), 501, "5.5.2 Syntax error: empty user name");
    require_error(plain("AGJvYgA="), 501, "5.5.2 Syntax error: empty password");
    require_error(plain("AGJvYgBwYXNzDQp3b3Jk"), 501,  // "\0bob\0pass\r\nword"
                  "5.5.2 Syntax error: control character in user name or password");
}

TEST_CASE("PLAIN: '=' is an empty initial response, and empty is malformed") {
    require_error(plain("="), 501, "5.5.2 Syntax error: malformed PLAIN response");
    Exchange x;
    require_challenge(x.start("PLAIN"), "");
    require_error(x.next(""), 501, "5.5.2 Syntax error: malformed PLAIN response");
    require_challenge(x.start("PLAIN"), "");
    require_error(x.next("="), 501, "5.5.2 Syntax error: malformed PLAIN response");
}

TEST_CASE("PLAIN: user names and passwords of 255 bytes pass, 256 do not") {
    std::string u255(255, 'u'), p255(255, 'p');
    require_done(plain(base64_encode("\0"s + u255 + "\0"s + p255)), u255, p255);
    require_error(plain(base64_encode("\0"s + std::string(256, 'u') + "\0pw"s)), 501,
                  "5.5.2 Syntax error: user name or password too long");
    require_error(plain(base64_encode("\0bob\0"s + std::string(256, 'p'))), 501,
                  "5.5.2 Syntax error: user name or password too long");
    require_error(plain(base64_encode(std::string(256, 'a') + "\0bob\0pw"s)), 501,
                  "5.5.2 Syntax error: user name or password too long");
}

TEST_CASE("LOGIN: user name and password challenges") {
    Exchange x;
    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_challenge(x.next("Ym9i"), "UGFzc3dvcmQ6");
    require_done(x.next("c2VjcmV0"), "bob", "secret");
    CHECK_FALSE(x.in_progress());
}

TEST_CASE("LOGIN: the user name as initial response") {
    Exchange x;
    require_challenge(x.start("login Ym9i"), "UGFzc3dvcmQ6");
    require_done(x.next("c2VjcmV0"), "bob", "secret");
}

TEST_CASE("LOGIN: malformed responses, each with its reply") {
    Exchange x;
    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_error(x.next("Ym9i="), 501, "5.5.2 Syntax error: invalid base64");
    CHECK_FALSE(x.in_progress());

    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_error(x.next(""), 501, "5.5.2 Syntax error: empty user name");
    require_error(x.start("LOGIN ="), 501, "5.5.2 Syntax error: empty user name");

    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_challenge(x.next("Ym9i"), "UGFzc3dvcmQ6");
    require_error(x.next("="), 501, "5.5.2 Syntax error: empty password");

    require_challenge(x.start("LOGIN Ym9i"), "UGFzc3dvcmQ6");
    require_error(x.next(base64_encode("pass\nword")), 501,
                  "5.5.2 Syntax error: control character in user name or password");
    require_error(x.start("LOGIN " + base64_encode("b\0b"s)), 501,
                  "5.5.2 Syntax error: control character in user name or password");
    require_error(x.start("LOGIN " + base64_encode(std::string(256, 'u'))), 501,
                  "5.5.2 Syntax error: user name or password too long");
}

TEST_CASE("cancel: '*' ends either mechanism at any step") {
    Exchange x;
    require_challenge(x.start("PLAIN"), "");
    Step s = x.next("*");
    CHECK(s.kind == Kind::Cancelled);
    CHECK(s.code == 501);
    CHECK(s.text == "5.7.0 Authentication cancelled");
    CHECK_FALSE(x.in_progress());

    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_challenge(x.next("Ym9i"), "UGFzc3dvcmQ6");
    s = x.next("*");
    CHECK(s.kind == Kind::Cancelled);
    CHECK(s.text == "5.7.0 Authentication cancelled");
    // The exchange is over: nothing more is accepted until a new AUTH.
    require_error(x.next("c2VjcmV0"), 503, "5.5.1 Invalid command: no authentication exchange in progress");
}

TEST_CASE("over-long lines: 12288 bytes pass the length check, 12289 do not") {
    Exchange x;
    require_challenge(x.start("PLAIN"), "");
    require_error(x.next(std::string(12289, 'A')), 500, "5.5.6 Authentication exchange line is too long");
    CHECK_FALSE(x.in_progress());
    require_challenge(x.start("PLAIN"), "");
    // 12288 bytes of valid base64 get as far as the PLAIN parser.
    require_error(x.next(std::string(12288, 'A')), 501, "5.5.2 Syntax error: malformed PLAIN response");
    require_error(x.start("PLAIN " + std::string(12288, 'A')), 500, "5.5.6 Authentication exchange line is too long");
    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_error(x.next(std::string(20000, '*')), 500, "5.5.6 Authentication exchange line is too long");
}

TEST_CASE("AUTH arguments: missing, unknown or too many") {
    Exchange x;
    require_error(x.start(""), 501, "5.5.4 Invalid command arguments: No parameters given");
    require_error(x.start("   "), 501, "5.5.4 Invalid command arguments: No parameters given");
    require_error(x.start("CRAM-MD5"), 504, "5.5.4 Unrecognized authentication type");
    require_error(x.start("XOAUTH2 dG9rZW4="), 504, "5.5.4 Unrecognized authentication type");
    require_error(x.start("PLAINX"), 504, "5.5.4 Unrecognized authentication type");
    require_error(x.start("PLAIN AGJvYgBzZWNyZXQ= extra"), 501, "5.5.4 Invalid command arguments: too many parameters");
    CHECK_FALSE(x.in_progress());
}

TEST_CASE("next() without an exchange, and start() dropping an unfinished one") {
    Exchange x;
    require_error(x.next("AGJvYgBzZWNyZXQ="), 503, "5.5.1 Invalid command: no authentication exchange in progress");
    require_challenge(x.start("LOGIN"), "VXNlcm5hbWU6");
    require_challenge(x.next("Ym9i"), "UGFzc3dvcmQ6");
    // A new AUTH forgets "bob": PLAIN's response is read as PLAIN.
    require_challenge(x.start("PLAIN"), "");
    require_done(x.next("AGFsaWNlAHB3"), "alice", "pw");
    require_error(x.next("AGJvYgBzZWNyZXQ="), 503, "5.5.1 Invalid command: no authentication exchange in progress");
}

TEST_CASE("EHLO advertises exactly the mechanisms start() knows") {
    CHECK(kMechanisms == "PLAIN LOGIN");
    Exchange x;
    CHECK(x.start("PLAIN").kind == Kind::Challenge);
    CHECK(x.start("LOGIN").kind == Kind::Challenge);
}
