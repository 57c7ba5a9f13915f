// tests/unit/proctable/codec_test.cpp — the proc table's pure parts: the line
// protocol 0.1 codec, the imsg codec (byte for byte what OpenSMTPD 6.8's
// table_proc.c sends and opensmtpd-extras' table_api.c answers) and the
// config string.
#include <catch2/catch.hpp>
#include <climits>
#include <cstring>
#include <deque>

#include "config.hpp"
#include "imsg_codec.hpp"
#include "line_codec.hpp"
#include "postern/table.h"

using namespace postern::proctable;
using Status = Reply::Status;

namespace {

Reply reply_of(const Decoded& d) {
    REQUIRE(std::holds_alternative<Reply>(d));
    return std::get<Reply>(d);
}

std::string garbage_of(const Decoded& d) {
    REQUIRE(std::holds_alternative<Garbage>(d));
    return std::get<Garbage>(d).why;
}

template <typename T>
std::string bytes_of(T v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

imsg::Frame frame_of(const std::string& bytes) {
    auto f = imsg::decode_frame(bytes);
    REQUIRE(std::holds_alternative<imsg::Frame>(f));
    return std::get<imsg::Frame>(f);
}

}  // namespace

TEST_CASE("service names match OpenSMTPD's and the ABI's bits") {
    CHECK(service_name(POSTERN_SERVICE_ALIAS) == "alias");
    CHECK(service_name(POSTERN_SERVICE_MAILADDRMAP) == "mailaddrmap");
    CHECK(service_name(POSTERN_SERVICE_RELAYHOST) == "relayhost");
    CHECK(service_name(0x3) == "");
    CHECK(service_from_name("credentials") == POSTERN_SERVICE_CREDENTIALS);
    CHECK(service_from_name("auth") == kServiceAuth);
    CHECK(!service_from_name("none"));
    CHECK(!service_from_name("Alias"));
    CHECK(is_match_service(POSTERN_SERVICE_DOMAIN));
    CHECK(is_match_service(POSTERN_SERVICE_NETADDR));
    CHECK(!is_match_service(POSTERN_SERVICE_ALIAS));
    CHECK(!is_match_service(POSTERN_SERVICE_CREDENTIALS));
}

TEST_CASE("line: the handshake and requests are written as smtpd-tables(7) says") {
    CHECK(line::encode_handshake("7.8.0-postern", "users") ==
          "config|smtpd-version|7.8.0-postern\nconfig|protocol|0.1\nconfig|tablename|users\nconfig|ready\n");
    CHECK(line::encode_request(Op::Lookup, POSTERN_SERVICE_ALIAS, "bob@example.org", "users", "0000002a", 1700000000,
                               42) == "table|0.1|1700000000.000042|users|lookup|alias|0000002a|bob@example.org\n");
    CHECK(line::encode_request(Op::Check, POSTERN_SERVICE_DOMAIN, "a|b", "t", "deadbeef", 1, 999999) ==
          "table|0.1|1.999999|t|check|domain|deadbeef|a|b\n");
    CHECK(line::encode_request(Op::Fetch, POSTERN_SERVICE_SOURCE, "ignored", "t", "00000001", 5, 0) ==
          "table|0.1|5.000000|t|fetch|source|00000001\n");
    CHECK(line::encode_request(Op::Update, 0, "", "t", "00000002", 5, 10) == "table|0.1|5.000010|t|update|00000002\n");
}

TEST_CASE("line: cut_line finds one line, strips a CR, bounds the length") {
    auto c = line::cut_line("abc\r\nrest");
    CHECK(c.state == line::Cut::State::Line);
    CHECK(c.length == 3);
    CHECK(c.consumed == 5);
    CHECK(line::cut_line("abc").state == line::Cut::State::NeedMore);
    CHECK(line::cut_line(std::string(20, 'x'), 10).state == line::Cut::State::TooLong);
    CHECK(line::cut_line(std::string(11, 'x') + "\n", 10).state == line::Cut::State::TooLong);
    CHECK(line::cut_line(std::string(10, 'x') + "\n", 10).state == line::Cut::State::Line);
    CHECK(line::cut_line("\n").length == 0);
}

TEST_CASE("line: registrations") {
    using R = line::Registered;
    CHECK(std::get<R>(line::decode_register("register|alias")) == R{false, POSTERN_SERVICE_ALIAS});
    CHECK(std::get<R>(line::decode_register("register|regex")) == R{false, kServiceRegex});
    CHECK(std::get<R>(line::decode_register("register|ready")) == R{true, 0});
    CHECK(std::holds_alternative<Garbage>(line::decode_register("register|none")));
    CHECK(std::holds_alternative<Garbage>(line::decode_register("register|bogus")));
    CHECK(std::holds_alternative<Garbage>(line::decode_register("register|")));
    CHECK(std::holds_alternative<Garbage>(line::decode_register("hello")));
    CHECK(std::holds_alternative<Garbage>(line::decode_register("register|alias|x")));
}

TEST_CASE("line: replies") {
    const std::string id = "0000abcd";
    CHECK(reply_of(line::decode_reply("lookup-result|0000abcd|found|bob, carol", Op::Lookup, id)) ==
          Reply{Status::Found, "bob, carol"});
    CHECK(reply_of(line::decode_reply("lookup-result|0000abcd|found|a|b", Op::Lookup, id)) ==
          Reply{Status::Found, "a|b"});
    CHECK(reply_of(line::decode_reply("lookup-result|0000abcd|not-found", Op::Lookup, id)) ==
          Reply{Status::NotFound, ""});
    CHECK(reply_of(line::decode_reply("lookup-result|0000abcd|error", Op::Lookup, id)) == Reply{Status::Error, ""});
    CHECK(reply_of(line::decode_reply("lookup-result|0000abcd|error|db down", Op::Lookup, id)) ==
          Reply{Status::Error, "db down"});
    CHECK(reply_of(line::decode_reply("check-result|0000abcd|found", Op::Check, id)) == Reply{Status::Found, ""});
    CHECK(reply_of(line::decode_reply("check-result|0000abcd|not-found", Op::Check, id)).status == Status::NotFound);
    CHECK(reply_of(line::decode_reply("fetch-result|0000abcd|found|192.0.2.1", Op::Fetch, id)) ==
          Reply{Status::Found, "192.0.2.1"});
    CHECK(reply_of(line::decode_reply("update-result|0000abcd|ok", Op::Update, id)).status == Status::Found);
    CHECK(reply_of(line::decode_reply("update-result|0000abcd|error|no file", Op::Update, id)) ==
          Reply{Status::Error, "no file"});

    // What OpenSMTPD treats as fatal, we as garbage (the program is restarted).
    CHECK_THAT(garbage_of(line::decode_reply("lookup-result|0000abce|found|x", Op::Lookup, id)),
               Catch::Contains("another request"));
    CHECK_THAT(garbage_of(line::decode_reply("check-result|0000abcd|found|x", Op::Lookup, id)),
               Catch::Contains("expected lookup-result"));
    // The man page's lookup-result for a fetch: the code wants fetch-result.
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("lookup-result|0000abcd|found|x", Op::Fetch, id)));
    CHECK_THAT(garbage_of(line::decode_reply("lookup-result|0000abcd|found|", Op::Lookup, id)),
               Catch::Contains("empty value"));
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("lookup-result|0000abcd|found", Op::Lookup, id)));
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("lookup-result|0000abcd|maybe", Op::Lookup, id)));
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("lookup-result|0000abcd", Op::Lookup, id)));
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("update-result|0000abcd|not-found", Op::Update, id)));
    CHECK(std::holds_alternative<Garbage>(line::decode_reply("", Op::Lookup, id)));
    CHECK_THAT(garbage_of(line::decode_reply(std::string("lookup-result|0000abcd|found|a\0b", 31), Op::Lookup, id)),
               Catch::Contains("NUL"));
}

TEST_CASE("line: encode_reply is what decode_reply reads") {
    for (Op op : {Op::Update, Op::Check, Op::Lookup, Op::Fetch})
        for (const Reply& r : {Reply{Status::Found, op == Op::Lookup || op == Op::Fetch ? "v" : ""},
                               Reply{Status::Error, "oops"}, Reply{Status::Error, ""}}) {
            CHECK(reply_of(line::decode_reply(line::encode_reply(op, "01234567", r), op, "01234567")) == r);
        }
}

TEST_CASE("imsg: messages are laid out as OpenSMTPD 6.8 sends them") {
    std::string open = imsg::encode_open("users");
    // header + u32 version + char name[LINE_MAX]: table_api refuses any other size.
    REQUIRE(open.size() == 16 + 4 + LINE_MAX);
    CHECK(open.substr(0, 16) == bytes_of<uint32_t>(imsg::Open) + bytes_of<uint16_t>(16 + 4 + LINE_MAX) +
                                    bytes_of<uint16_t>(0) + bytes_of<uint32_t>(0) + bytes_of<uint32_t>(0));
    CHECK(open.substr(16, 4) == bytes_of<uint32_t>(2));
    CHECK(open.substr(20, 6) == std::string("users\0", 6));
    CHECK(open.find_first_not_of('\0', 25) == std::string::npos);

    auto q = imsg::encode_query(Op::Lookup, POSTERN_SERVICE_CREDENTIALS, "bob");
    REQUIRE(q);
    CHECK(*q == bytes_of<uint32_t>(imsg::Lookup) + bytes_of<uint16_t>(16 + 4 + 8 + 4) + std::string(10, '\0') +
                    bytes_of<int>(4) + bytes_of<std::size_t>(0) + std::string("bob\0", 4));
    auto c = imsg::encode_query(Op::Check, POSTERN_SERVICE_DOMAIN, "example.org");
    REQUIRE(c);
    CHECK(frame_of(*c).type == imsg::Check);
    CHECK(imsg::encode_fetch(POSTERN_SERVICE_SOURCE) == bytes_of<uint32_t>(imsg::Fetch) + bytes_of<uint16_t>(28) +
                                                            std::string(10, '\0') + bytes_of<int>(0x20) +
                                                            bytes_of<std::size_t>(0));
    CHECK(imsg::encode(imsg::Close, {}).size() == 16);

    // A key the imsg size cannot carry, or one with a NUL.
    CHECK(!imsg::encode_query(Op::Lookup, 1, std::string(16384, 'k')));
    CHECK(imsg::encode_query(Op::Lookup, 1, std::string(16384 - 16 - 12 - 1, 'k')));
    CHECK(!imsg::encode_query(Op::Lookup, 1, std::string("a\0b", 3)));
    CHECK(!imsg::encode_query(Op::Fetch, 1, "x"));
}

TEST_CASE("imsg: frames") {
    CHECK(std::holds_alternative<imsg::NeedMore>(imsg::decode_frame("")));
    std::string ok = imsg::encode(imsg::Ok, bytes_of<int>(0));
    CHECK(std::holds_alternative<imsg::NeedMore>(imsg::decode_frame(ok.substr(0, 15))));
    CHECK(std::holds_alternative<imsg::NeedMore>(imsg::decode_frame(ok.substr(0, 19))));
    const std::string two = ok + "next";  // the frame points into it
    auto f = frame_of(two);
    CHECK(f.type == imsg::Ok);
    CHECK(f.size == 20);
    CHECK(f.payload == bytes_of<int>(0));
    std::string short_len = ok;
    short_len[4] = 15;
    short_len[5] = 0;
    CHECK(std::holds_alternative<Garbage>(imsg::decode_frame(short_len)));
    std::string long_len = ok;
    uint16_t big = 16385;
    std::memcpy(long_len.data() + 4, &big, 2);
    CHECK(std::holds_alternative<Garbage>(imsg::decode_frame(long_len)));
    // Text where a header should be (a line-protocol program): its length is out of range.
    CHECK(std::holds_alternative<Garbage>(imsg::decode_frame("register|alias\nregister|ready\n")));
}

TEST_CASE("imsg: replies") {
    // Each frame points into its bytes: they are kept until the end of the test.
    std::deque<std::string> kept;
    auto ok = [&kept](std::string payload) { return frame_of(kept.emplace_back(imsg::encode(imsg::Ok, payload))); };
    CHECK(reply_of(imsg::decode_reply(Op::Open, ok(""))).status == Status::Found);
    CHECK(std::holds_alternative<Garbage>(imsg::decode_reply(Op::Open, ok("x"))));
    CHECK(reply_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(1) + std::string("bob:$6$x\0", 9)))) ==
          Reply{Status::Found, "bob:$6$x"});
    CHECK(reply_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(0)))).status == Status::NotFound);
    CHECK(reply_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(-1)))).status == Status::Error);
    CHECK(reply_of(imsg::decode_reply(Op::Check, ok(bytes_of<int>(1)))).status == Status::Found);
    CHECK(reply_of(imsg::decode_reply(Op::Fetch, ok(bytes_of<int>(1) + std::string("192.0.2.7\0", 10)))) ==
          Reply{Status::Found, "192.0.2.7"});
    CHECK(reply_of(imsg::decode_reply(Op::Update, ok(bytes_of<int>(1)))).status == Status::Found);
    CHECK(reply_of(imsg::decode_reply(Op::Update, ok(bytes_of<int>(0)))).status == Status::Error);
    // An empty value is what OpenSMTPD 6.8 passes on too.
    CHECK(reply_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(1) + std::string(1, '\0')))) ==
          Reply{Status::Found, ""});

    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, frame_of(imsg::encode(imsg::Fail, bytes_of<int>(0))))),
               Catch::Contains("type 1"));
    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, ok("ab"))), Catch::Contains("no result"));
    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(2)))), Catch::Contains("result 2"));
    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(1)))), Catch::Contains("NUL-terminated"));
    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(1) + "abc"))),
               Catch::Contains("NUL-terminated"));
    CHECK_THAT(garbage_of(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(1) + std::string("a\0b\0", 4)))),
               Catch::Contains("inside"));
    CHECK(std::holds_alternative<Garbage>(imsg::decode_reply(Op::Lookup, ok(bytes_of<int>(0) + "x"))));
    CHECK(std::holds_alternative<Garbage>(imsg::decode_reply(Op::Check, ok(bytes_of<int>(1) + std::string(1, '\0')))));
    CHECK(std::holds_alternative<Garbage>(imsg::decode_reply(Op::Update, ok(bytes_of<int>(1) + "x"))));
}

TEST_CASE("imsg: encode_reply is what decode_reply reads") {
    for (Op op : {Op::Check, Op::Lookup, Op::Fetch})
        for (const Reply& r : {Reply{Status::Found, op == Op::Check ? "" : "value"}, Reply{Status::NotFound, ""},
                               Reply{Status::Error, ""}})
            CHECK(reply_of(imsg::decode_reply(op, frame_of(imsg::encode_reply(op, r)))) == r);
}

TEST_CASE("config: program, options and the one argument") {
    auto ok = [](std::string_view text) {
        auto c = parse_config(text);
        if (auto* e = std::get_if<std::string>(&c)) FAIL(*e);
        return std::get<Config>(c);
    };
    auto refused = [](std::string_view text) {
        auto c = parse_config(text);
        REQUIRE(std::holds_alternative<std::string>(c));
        return std::get<std::string>(c);
    };

    Config c = ok("/usr/libexec/opensmtpd/table-passwd /etc/mail/passwd");
    CHECK(c.program == "/usr/libexec/opensmtpd/table-passwd");
    CHECK(c.argument == "/etc/mail/passwd");
    CHECK(c.name == "table-passwd");
    CHECK(c.protocol == Protocol::Imsg);  // Debian's OpenSMTPD 6.8 programs
    CHECK(c.timeout_seconds == 5);

    c = ok("/opt/tables/table-x");
    CHECK(c.argument.empty());
    CHECK(c.protocol == Protocol::Line);

    c = ok("/opt/t  protocol=imsg name=users timeout=2   /etc/t.conf with spaces ");
    CHECK(c.protocol == Protocol::Imsg);
    CHECK(c.name == "users");
    CHECK(c.timeout_seconds == 2);
    CHECK(c.argument == "/etc/t.conf with spaces");

    c = ok("/usr/libexec/opensmtpd/table-ldap protocol=line /etc/ldap.conf");
    CHECK(c.protocol == Protocol::Line);
    // Options come only before the argument.
    c = ok("/opt/t /etc/conf name=x");
    CHECK(c.argument == "/etc/conf name=x");
    CHECK(c.name == "t");

    CHECK_THAT(refused(""), Catch::Contains("no program"));
    CHECK_THAT(refused("table-passwd /etc/passwd"), Catch::Contains("absolute path"));
    CHECK_THAT(refused("/opt/t protocol=http"), Catch::Contains("protocol=imsg or protocol=line"));
    CHECK_THAT(refused("/opt/t timeout=0"), Catch::Contains("1 to 300"));
    CHECK_THAT(refused("/opt/t timeout=5s"), Catch::Contains("1 to 300"));
    CHECK_THAT(refused("/opt/t name=a|b"), Catch::Contains("name="));
    CHECK_THAT(refused("/opt/t name="), Catch::Contains("name="));
    CHECK_THAT(refused("/opt/"), Catch::Contains("folder"));
    CHECK_THAT(refused("/opt/t\n/etc/x"), Catch::Contains("line break"));
}
