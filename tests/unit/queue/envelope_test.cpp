// Unit tests for the envelope file format (queue/envelope.cpp): exact
// encoding, exact round trip of hostile values, every refusal with its text.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "queue/envelope.hpp"

using namespace postern::queue;
using namespace std::string_literals;

namespace {

Envelope sample() {
    Envelope e;
    e.id = "0123abcd89ef4567";
    e.msgid = "0123abcd";
    e.action = "local_mail";
    e.sender = "alice@example.org";
    e.rcpt = "bob@example.org";
    e.dest = "bob@example.org";
    e.user = "bob";
    e.helo = "client.example.org";
    e.client = "127.0.0.1";
    e.hostname = "mx.example.org";
    e.tag = "IN";
    e.ctime = 1700000000;
    e.expire = 1700345600;
    e.last_try = 0;
    e.next_try = -5;
    e.retry = 4294967295u;
    e.errorline = "";
    e.method = "mda";
    e.path = "/usr/bin/procmail -a %x";
    e.account = "1001:1001:/home/bob";
    e.extension = "lists";
    e.dsn_notify = 6;
    e.dsn_ret = "hdrs";
    e.dsn_envid = "QQ314159";
    e.dsn_orcpt = "rfc822;bob@example.org";
    e.bounce = 1;
    e.warnings = 2;
    return e;
}

void require_same(const Envelope& a, const Envelope& b) {
    CHECK(a.id == b.id);
    CHECK(a.msgid == b.msgid);
    CHECK(a.action == b.action);
    CHECK(a.sender == b.sender);
    CHECK(a.rcpt == b.rcpt);
    CHECK(a.dest == b.dest);
    CHECK(a.user == b.user);
    CHECK(a.helo == b.helo);
    CHECK(a.client == b.client);
    CHECK(a.hostname == b.hostname);
    CHECK(a.tag == b.tag);
    CHECK(a.ctime == b.ctime);
    CHECK(a.expire == b.expire);
    CHECK(a.last_try == b.last_try);
    CHECK(a.next_try == b.next_try);
    CHECK(a.retry == b.retry);
    CHECK(a.errorline == b.errorline);
    CHECK(a.method == b.method);
    CHECK(a.path == b.path);
    CHECK(a.account == b.account);
    CHECK(a.extension == b.extension);
    CHECK(a.dsn_notify == b.dsn_notify);
    CHECK(a.dsn_ret == b.dsn_ret);
    CHECK(a.dsn_envid == b.dsn_envid);
    CHECK(a.dsn_orcpt == b.dsn_orcpt);
    CHECK(a.bounce == b.bounce);
    CHECK(a.warnings == b.warnings);
}

// The valid head every refusal test builds on (lines 1 to 3).
const std::string kHead = "version: 1\nid: 0123abcd89ef4567\nmsgid: 0123abcd\n";

std::string refusal(const std::string& text) {
    std::string error;
    auto e = decode(text, &error);
    CHECK_FALSE(e.has_value());
    return error;
}

}  // namespace

TEST_CASE("encode writes the exact v1 text", "[envelope]") {
    Envelope e = sample();
    e.sender = "a%b\r\nversion: 2";
    e.errorline = "450 4.2.0 \x7f\xc3\xa9t\xc3\xa9";
    CHECK(encode(e) == "version: 1\n"
                       "id: 0123abcd89ef4567\n"
                       "msgid: 0123abcd\n"
                       "action: local_mail\n"
                       "sender: a%25b%0D%0Aversion: 2\n"
                       "rcpt: bob@example.org\n"
                       "dest: bob@example.org\n"
                       "user: bob\n"
                       "helo: client.example.org\n"
                       "client: 127.0.0.1\n"
                       "hostname: mx.example.org\n"
                       "tag: IN\n"
                       "ctime: 1700000000\n"
                       "expire: 1700345600\n"
                       "last-try: 0\n"
                       "next-try: -5\n"
                       "retry: 4294967295\n"
                       "errorline: 450 4.2.0 %7F\xc3\xa9t\xc3\xa9\n"
                       "method: mda\n"
                       "path: /usr/bin/procmail -a %25x\n"
                       "account: 1001:1001:/home/bob\n"
                       "extension: lists\n"
                       "dsn-notify: 6\n"
                       "dsn-ret: hdrs\n"
                       "dsn-envid: QQ314159\n"
                       "dsn-orcpt: rfc822;bob@example.org\n"
                       "bounce: 1\n"
                       "warnings: 2\n");
}

TEST_CASE("hostile values round trip exactly", "[envelope]") {
    Envelope e = sample();
    e.sender = "evil\r\nid: ffffffffffffffff\r\n";
    e.rcpt = "\nversion: 2\n";
    e.dest = "nul\0inside\0"s;
    e.user = "%%41%zz%";
    e.helo = "\xff\xfe\x80 8-bit \xc3\xa9";
    e.client = ": ";
    e.hostname = std::string(100000, 'x') + "\n" + std::string(100000, '%');
    e.tag = "tab\there\x1b[0m";
    e.errorline = ""s;
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    e.action = all;
    e.ctime = INT64_MIN;
    e.expire = INT64_MAX;
    e.retry = 0;

    std::string text = encode(e);
    // One line per field plus the version: no value added a line.
    CHECK(std::count(text.begin(), text.end(), '\n') == 28);
    CHECK(text.find('\0') == std::string::npos);
    CHECK(text.find('\r') == std::string::npos);

    std::string error;
    auto back = decode(text, &error);
    REQUIRE(back.has_value());
    CHECK(error.empty());
    require_same(*back, e);
    CHECK(encode(*back) == text);
}

TEST_CASE("decode accepts fields in any order and defaults the absent ones", "[envelope]") {
    std::string error;
    auto e = decode("version: 1\nretry: 3\nmsgid: 0123abcd\nid: 0123abcd89ef4567\nsender: \n", &error);
    REQUIRE(e.has_value());
    CHECK(e->retry == 3);
    CHECK(e->sender.empty());
    CHECK(e->rcpt.empty());
    CHECK(e->ctime == 0);
}

TEST_CASE("decode accepts lowercase escapes", "[envelope]") {
    auto e = decode(kHead + "sender: a%0ab%7e\n", nullptr);
    REQUIRE(e.has_value());
    CHECK(e->sender == "a\nb~");
}

TEST_CASE("decode refuses a bad version line", "[envelope]") {
    CHECK(refusal("") == "line 1: expected 'version: 1'");
    CHECK(refusal("id: 0123abcd89ef4567\nversion: 1\n") == "line 1: expected 'version: 1'");
    CHECK(refusal("version:1\n") == "line 1: expected 'version: 1'");
    CHECK(refusal("version: 2\nid: 0123abcd89ef4567\nmsgid: 0123abcd\n") == "line 1: unsupported version 2");
    CHECK(refusal("version: one\n") == "line 1: bad version 'one'");
    CHECK(refusal("version: 1\r\n") == "line 1: bad version '1%0D'");
    CHECK(refusal("version: 1") == "line 1: no newline at end of line (truncated?)");
}

TEST_CASE("decode refuses unknown, repeated and malformed lines", "[envelope]") {
    CHECK(refusal(kHead + "foo: bar\n") == "line 4: unknown key 'foo'");
    CHECK(refusal(kHead + "Sender: a\n") == "line 4: unknown key 'Sender'");
    CHECK(refusal(kHead + "x\x01y: a\n") == "line 4: unknown key 'x%01y'");
    CHECK(refusal(kHead + "sender: a\nsender: b\n") == "line 5: repeated key 'sender'");
    CHECK(refusal(kHead + "id: 0123abcd89ef4567\n") == "line 4: repeated key 'id'");
    CHECK(refusal(kHead + "version: 1\n") == "line 4: repeated key 'version'");
    CHECK(refusal(kHead + "sender:a\n") == "line 4: expected 'key: value'");
    CHECK(refusal(kHead + "\n") == "line 4: expected 'key: value'");
    CHECK(refusal(kHead + "sender: a") == "line 4: no newline at end of line (truncated?)");
}

TEST_CASE("decode refuses bad escapes and raw control bytes", "[envelope]") {
    CHECK(refusal(kHead + "sender: a%zzb\n") == "line 4: bad escape in 'sender'");
    CHECK(refusal(kHead + "sender: a%4\n") == "line 4: bad escape in 'sender'");
    CHECK(refusal(kHead + "rcpt: 100%\n") == "line 4: bad escape in 'rcpt'");
    CHECK(refusal(kHead + "sender: a\rb\n") == "line 4: raw control byte in 'sender'");
    CHECK(refusal(kHead + "sender: a\0b\n"s) == "line 4: raw control byte in 'sender'");
    CHECK(refusal(kHead + "helo: a\x7f\n") == "line 4: raw control byte in 'helo'");
}

TEST_CASE("decode refuses malformed numbers", "[envelope]") {
    CHECK(refusal(kHead + "ctime: 12x\n") == "line 4: bad number '12x' for 'ctime'");
    CHECK(refusal(kHead + "ctime: \n") == "line 4: bad number '' for 'ctime'");
    CHECK(refusal(kHead + "ctime: +5\n") == "line 4: bad number '+5' for 'ctime'");
    CHECK(refusal(kHead + "ctime:  5\n") == "line 4: bad number ' 5' for 'ctime'");
    CHECK(refusal(kHead + "expire: 9223372036854775808\n") == "line 4: bad number '9223372036854775808' for 'expire'");
    CHECK(refusal(kHead + "retry: -1\n") == "line 4: bad number '-1' for 'retry'");
    CHECK(refusal(kHead + "retry: 4294967296\n") == "line 4: bad number '4294967296' for 'retry'");
    CHECK(refusal(kHead + "last-try: 0x10\n") == "line 4: bad number '0x10' for 'last-try'");
}

TEST_CASE("decode refuses missing or malformed ids", "[envelope]") {
    CHECK(refusal("version: 1\nmsgid: 0123abcd\n") == "missing key 'id'");
    CHECK(refusal("version: 1\nid: 0123abcd89ef4567\n") == "missing key 'msgid'");
    CHECK(refusal("version: 1\n") == "missing key 'id'");
    CHECK(refusal("version: 1\nid: 0123abcd89ef4567\nmsgid: 0123ABCD\n") ==
          "line 3: bad msgid '0123ABCD' (want 8 lowercase hex digits)");
    CHECK(refusal("version: 1\nid: 0123abcd89ef4567\nmsgid: 0123abc\n") ==
          "line 3: bad msgid '0123abc' (want 8 lowercase hex digits)");
    CHECK(refusal("version: 1\nid: 0123abcd89ef456\nmsgid: 0123abcd\n") ==
          "line 2: bad id '0123abcd89ef456' (want 16 lowercase hex digits)");
    CHECK(refusal("version: 1\nid: ../../etc/passwd\nmsgid: 0123abcd\n") ==
          "line 2: bad id '../../etc/passwd' (want 16 lowercase hex digits)");
    CHECK(refusal("version: 1\nid: ffffffff89ef4567\nmsgid: 0123abcd\n") ==
          "line 2: id 'ffffffff89ef4567' does not start with msgid '0123abcd'");
}

TEST_CASE("long untrusted text is cut short in errors", "[envelope]") {
    CHECK(refusal(kHead + std::string(100, 'k') + ": v\n") == "line 4: unknown key '" + std::string(40, 'k') + "...'");
}

TEST_CASE("new ids are lowercase hex of the right length and differ", "[envelope]") {
    std::string m = new_message_id();
    std::string e = new_envelope_id(m);
    CHECK(m.size() == 8);
    CHECK(e.size() == 16);
    CHECK(e.compare(0, 8, m) == 0);
    CHECK(m.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(e.find_first_not_of("0123456789abcdef") == std::string::npos);
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) seen.insert(new_envelope_id(m));
    CHECK(seen.size() >= 99);  // 32 random bits: a clash in 100 is ~1e-6
}

TEST_CASE("the fuzz seeds are what their names say", "[envelope]") {
    const std::string dir = POSTERN_SOURCE_DIR "/tests/fuzz/corpus/fuzz_envelope/";
    auto load = [&](const char* name) {
        std::ifstream in(dir + name, std::ios::binary);
        REQUIRE(in);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    for (const char* name : {"valid_full", "valid_minimal", "valid_escaped"}) {
        INFO(name);
        std::string error;
        CHECK(decode(load(name), &error).has_value());
        CHECK(error.empty());
    }
    CHECK(refusal(load("bad_version")) == "line 1: unsupported version 2");
    CHECK(refusal(load("bad_crlf")) == "line 1: bad version '1%0D'");
    CHECK(refusal(load("bad_escape")) == "line 5: bad escape in 'sender'");
    CHECK(refusal(load("bad_repeated")) == "line 19: repeated key 'rcpt'");
    CHECK(refusal(load("bad_truncated")) == "line 18: no newline at end of line (truncated?)");
    CHECK(refusal(load("bad_number")) == "line 17: bad number '-1' for 'retry'");
    CHECK(refusal(load("bad_id")) == "line 2: id 'ffffffff89ef4567' does not start with msgid '0123abcd'");
}

TEST_CASE("pack and unpack keep every field, the ids from the key", "[envelope]") {
    Envelope e = sample();
    e.sender = "evil\r\nid: ffffffffffffffff\r\n";
    e.dest = "nul\0inside\0"s;
    e.hostname = std::string(70000, 'x');  // a length that takes three varint bytes
    e.ctime = INT64_MIN;
    e.expire = INT64_MAX;
    e.next_try = -5;
    std::string packed = pack(e);
    Envelope back = unpack(0x0123abcd89ef4567u, packed);
    require_same(back, e);
    CHECK(encode(back) == encode(e));
}

TEST_CASE("a packed envelope is much smaller than its text", "[envelope]") {
    Envelope e = sample();
    std::string packed = pack(e);
    // Each string costs its bytes and one length byte; the ids are not packed.
    CHECK(packed.size() < encode(e).size() / 2);
    CHECK(packed.find("0123abcd") == std::string::npos);
    CHECK(unpack(0xffffffff00000001u, packed).id == "ffffffff00000001");
    CHECK(unpack(0xffffffff00000001u, packed).msgid == "ffffffff");
}
