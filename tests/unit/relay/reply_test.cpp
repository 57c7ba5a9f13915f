// Unit tests of the remote reply parser and the EHLO extension reader
// (postern/support/smtp_reply.hpp): accepted replies with their exact fields, refusals
// with their exact error texts, the bounds, and independence from how the
// network cuts the stream.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "postern/support/smtp_reply.hpp"

using namespace postern::relay;
using namespace std::string_literals;
using Status = ReplyParser::Status;

namespace {

struct Outcome {
    Status status = Status::NeedMore;
    std::size_t used = 0;
    int code = 0;
    std::string enhanced;
    std::vector<std::string> lines;
    std::string error;

    bool operator==(const Outcome&) const = default;
};

Outcome snapshot(const ReplyParser& p, Status s, std::size_t used) {
    return {s, used, p.reply().code, p.reply().enhanced, p.reply().lines, p.error()};
}

// Feeds `in` cut at offset `cut` (0 = in one piece), stopping once not NeedMore.
Outcome feed_cut(std::string_view in, std::size_t cut = 0) {
    ReplyParser p;
    std::size_t used = 0, total = 0;
    Status s = Status::NeedMore;
    if (cut > 0 && cut < in.size()) {
        s = p.feed(in.substr(0, cut), &used);
        total += used;
        if (s == Status::NeedMore) REQUIRE(used == cut);
    }
    if (s == Status::NeedMore) {
        s = p.feed(in.substr(total), &used);
        total += used;
    }
    return snapshot(p, s, total);
}

// The result in one piece; also checks that every cut and a byte-at-a-time
// feed give exactly the same result.
Outcome parse(std::string_view in) {
    INFO("input: " << in);
    Outcome whole = feed_cut(in);
    for (std::size_t cut = 1; cut < in.size(); ++cut) {
        INFO("cut at " << cut);
        REQUIRE(feed_cut(in, cut) == whole);
    }
    ReplyParser p;
    std::size_t total = 0, used = 0;
    Status s = Status::NeedMore;
    while (s == Status::NeedMore && total < in.size()) {
        s = p.feed(in.substr(total, 1), &used);
        REQUIRE(used == 1);
        total += used;
    }
    REQUIRE(snapshot(p, s, total) == whole);
    return whole;
}

Outcome done(std::string_view in) {
    Outcome o = parse(in);
    INFO("error: " << o.error);
    REQUIRE(o.status == Status::Done);
    REQUIRE(o.error.empty());
    return o;
}

std::string error(std::string_view in) {
    Outcome o = parse(in);
    REQUIRE(o.status == Status::Error);
    REQUIRE(o.used <= in.size());
    return o.error;
}

Reply reply_of(std::string_view in) {
    ReplyParser p;
    std::size_t used = 0;
    REQUIRE(p.feed(in, &used) == Status::Done);
    return p.reply();
}

}  // namespace

TEST_CASE("reply: single line", "[relay][reply]") {
    Outcome o = done("250 OK\r\n");
    CHECK(o.code == 250);
    CHECK(o.lines == std::vector<std::string>{"OK"});
    CHECK(o.enhanced.empty());
    CHECK(o.used == 8);
}

TEST_CASE("reply: greeting with text", "[relay][reply]") {
    Outcome o = done("220 mx.example.org ESMTP ready\r\n");
    CHECK(o.code == 220);
    CHECK(o.lines == std::vector<std::string>{"mx.example.org ESMTP ready"});
}

TEST_CASE("reply: multi-line", "[relay][reply]") {
    Outcome o = done("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
    CHECK(o.code == 250);
    CHECK(o.lines == std::vector<std::string>{"mx.example.org", "PIPELINING", "SIZE 10240000", "8BITMIME"});
    CHECK(reply_of("250-a\r\n250-b c\r\n250 d\r\n").text() == "a b c d");
}

TEST_CASE("reply: text() of a single line is the line", "[relay][reply]") {
    CHECK(reply_of("554 5.7.1 Relay access denied\r\n").text() == "5.7.1 Relay access denied");
}

TEST_CASE("reply: a bare code is read as code and space", "[relay][reply]") {
    Outcome o = done("250\r\n");
    CHECK(o.code == 250);
    CHECK(o.lines == std::vector<std::string>{""});
    Outcome m = done("250-first\r\n250\r\n");
    CHECK(m.lines == std::vector<std::string>{"first", ""});
}

TEST_CASE("reply: empty text after the separator", "[relay][reply]") {
    Outcome o = done("354 \r\n");
    CHECK(o.code == 354);
    CHECK(o.lines == std::vector<std::string>{""});
    CHECK(done("250-\r\n250 x\r\n").lines == std::vector<std::string>{"", "x"});
}

TEST_CASE("reply: LF-only line ends", "[relay][reply]") {
    Outcome o = done("250-one\n250-two\r\n250 three\n");
    CHECK(o.lines == std::vector<std::string>{"one", "two", "three"});
    CHECK(o.used == 27);
}

TEST_CASE("reply: bytes after the reply are left for the next one", "[relay][reply]") {
    std::string in = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n";
    ReplyParser p;
    std::size_t used = 0;
    REQUIRE(p.feed(in, &used) == Status::Done);
    CHECK(used == 14);
    CHECK(p.reply().enhanced == "2.1.0");
    // Done: nothing more is taken until reset.
    std::size_t again = 99;
    CHECK(p.feed(in.substr(used), &again) == Status::Done);
    CHECK(again == 0);
    p.reset();
    REQUIRE(p.feed(std::string_view(in).substr(14), &used) == Status::Done);
    CHECK(used == 14);
    CHECK(p.reply().text() == "2.1.5 Ok");
    p.reset();
    REQUIRE(p.feed(std::string_view(in).substr(28), &used) == Status::Done);
    CHECK(p.reply().code == 354);
    CHECK(p.reply().enhanced.empty());
}

TEST_CASE("reply: incomplete input needs more", "[relay][reply]") {
    for (std::string in : {""s, "2"s, "25"s, "250"s, "250 "s, "250 OK"s, "250 OK\r"s, "250-a\r\n"s, "250-a\r\n250"s}) {
        INFO(in);
        ReplyParser p;
        std::size_t used = 99;
        CHECK(p.feed(in, &used) == Status::NeedMore);
        CHECK(used == in.size());
        CHECK(p.error().empty());
    }
}

TEST_CASE("reply: reset clears a finished reply and an error", "[relay][reply]") {
    ReplyParser p;
    std::size_t used = 0;
    REQUIRE(p.feed("xyz\r\n", &used) == Status::Error);
    p.reset();
    CHECK(p.error().empty());
    CHECK(p.reply().lines.empty());
    CHECK(p.status() == Status::NeedMore);
    REQUIRE(p.feed("221 bye\r\n", &used) == Status::Done);
    CHECK(p.reply().code == 221);
    CHECK(p.reply().lines == std::vector<std::string>{"bye"});
}

TEST_CASE("reply: every class and the limits of the code", "[relay][reply]") {
    CHECK(done("200 x\r\n").code == 200);
    CHECK(done("334 VXNlcm5hbWU6\r\n").code == 334);
    CHECK(done("421 4.3.2 closing\r\n").code == 421);
    CHECK(done("559 x\r\n").code == 559);
    CHECK(done("250 x\r\n").code == 250);
}

TEST_CASE("reply: enhanced code on the first line", "[relay][reply]") {
    CHECK(done("550 5.1.1 <bob@example.org>: user unknown\r\n").enhanced == "5.1.1");
    CHECK(done("250 2.0.0 Ok: queued as 4XYZ\r\n").enhanced == "2.0.0");
    CHECK(done("451 4.7.1 try later\r\n").enhanced == "4.7.1");
    CHECK(done("552 5.3.4\r\n").enhanced == "5.3.4");  // code and nothing else
    CHECK(done("550 5.123.999 three digits\r\n").enhanced == "5.123.999");
}

TEST_CASE("reply: enhanced code kept in the text of every line", "[relay][reply]") {
    Outcome o = done("550-5.7.1 first\r\n550 5.7.1 second\r\n");
    CHECK(o.enhanced == "5.7.1");
    CHECK(o.lines == std::vector<std::string>{"5.7.1 first", "5.7.1 second"});
}

TEST_CASE("reply: enhanced code of another class is ignored", "[relay][reply]") {
    CHECK(done("250 5.1.1 odd\r\n").enhanced.empty());
    CHECK(done("550 2.0.0 odd\r\n").enhanced.empty());
    CHECK(done("451 5.0.0 odd\r\n").enhanced.empty());
    CHECK(done("354 3.0.0 no class 3\r\n").enhanced.empty());
}

TEST_CASE("reply: malformed enhanced codes are ignored", "[relay][reply]") {
    for (const char* in : {"550 5.1\r\n", "550 5.1.\r\n", "550 5..1 x\r\n", "550 5.1.1x y\r\n", "550 5.1234.1 x\r\n",
                           "550 5.1.1234 x\r\n", "550 55.1.1 x\r\n", "550 5,1,1 x\r\n", "550  5.1.1 leading space\r\n",
                           "550 x 5.1.1\r\n", "550 5.1.1\tx\r\n", "550 .1.1 x\r\n"}) {
        INFO(in);
        CHECK(done(in).enhanced.empty());
    }
}

TEST_CASE("reply: the enhanced code comes from the first line only", "[relay][reply]") {
    CHECK(done("550-no code here\r\n550 5.1.1 late\r\n").enhanced.empty());
}

TEST_CASE("reply: mixed codes in a multi-line reply", "[relay][reply]") {
    CHECK(error("250-a\r\n251 b\r\n") == "reply code changed within a multi-line reply");
    CHECK(error("250-a\r\n550-b\r\n") == "reply code changed within a multi-line reply");
    Outcome o = parse("250-a\r\n251 b\r\n");
    CHECK(o.used == 10);  // stopped at the third digit of the second code
}

TEST_CASE("reply: malformed codes", "[relay][reply]") {
    for (const char* in : {"150 x\r\n", "600 x\r\n", "260 x\r\n", "2a0 x\r\n", "25x x\r\n", "x\r\n", "\r\n", "\n",
                           "25\r\n", "2\n", " 250 x\r\n", "-250 x\r\n", "+OK ready\r\n", "HTTP/1.1 400 Bad Request\r\n",
                           "250-a\r\n\r\n", "250-a\r\n25\r\n"}) {
        INFO(in);
        CHECK(error(in) == "malformed reply code");
    }
}

TEST_CASE("reply: malformed separators", "[relay][reply]") {
    for (const char* in : {"250_x\r\n", "250x\r\n", "2500 x\r\n", "250\tx\r\n", "250-a\r\n250=b\r\n"}) {
        INFO(in);
        CHECK(error(in) == "malformed separator after reply code");
    }
}

TEST_CASE("reply: errors stop at the first offending byte", "[relay][reply]") {
    CHECK(parse("HTTP/1.1 400 Bad Request\r\n").used == 1);
    CHECK(parse("250_x\r\n250 ok\r\n").used == 4);
    CHECK(parse("25\r\n").used == 4);
}

TEST_CASE("reply: NUL bytes", "[relay][reply]") {
    CHECK(error("250 o\0k\r\n"s) == "NUL byte in reply");
    CHECK(error("\0"s) == "NUL byte in reply");
    CHECK(error("250-a\r\n250 b\0\r\n"s) == "NUL byte in reply");
    CHECK(parse("250 o\0k\r\n"s).used == 6);
}

TEST_CASE("reply: bare CR", "[relay][reply]") {
    CHECK(error("250 a\rb\r\n") == "bare CR in reply");
    CHECK(error("250 a\r\r\n") == "bare CR in reply");
    CHECK(error("250-a\r250 b\r\n") == "bare CR in reply");
}

TEST_CASE("reply: a line of 4096 bytes is accepted, 4097 is not", "[relay][reply]") {
    std::string ok = "250 " + std::string(kMaxReplyLine - 4, 'x') + "\r\n";
    Outcome o = done(ok);
    CHECK(o.lines.front().size() == kMaxReplyLine - 4);
    std::string lf = "250 " + std::string(kMaxReplyLine - 4, 'x') + "\n";
    CHECK(done(lf).lines.front().size() == kMaxReplyLine - 4);

    std::string over = "250 " + std::string(kMaxReplyLine - 3, 'x') + "\r\n";
    CHECK(error(over) == "reply line over 4096 bytes");
    CHECK(parse(over).used == kMaxReplyLine + 1);
}

TEST_CASE("reply: an endless line is cut at the bound, not buffered", "[relay][reply]") {
    ReplyParser p;
    std::string chunk(1000, 'y');
    std::size_t used = 0;
    REQUIRE(p.feed("250-", &used) == Status::NeedMore);
    Status s = Status::NeedMore;
    int rounds = 0;
    for (; rounds < 100 && s == Status::NeedMore; ++rounds) s = p.feed(chunk, &used);
    CHECK(s == Status::Error);
    CHECK(rounds == 5);
    CHECK(used == 93);  // 4 + 4000 + 92 = 4096 bytes: the fifth chunk's 93rd byte is one too many
    CHECK(p.error() == "reply line over 4096 bytes");
}

TEST_CASE("reply: 100 lines are accepted, 101 are not", "[relay][reply]") {
    std::string hundred;
    for (int i = 0; i < 99; ++i) hundred += "250-line " + std::to_string(i) + "\r\n";
    hundred += "250 last\r\n";
    Outcome o = done(hundred);
    CHECK(o.lines.size() == kMaxReplyLines);
    CHECK(o.lines.back() == "last");

    std::string many;
    for (int i = 0; i < 100; ++i) many += "250-line " + std::to_string(i) + "\r\n";
    many += "250 last\r\n";
    CHECK(error(many) == "more than 100 lines in one reply");
    std::size_t prefix = many.size() - std::string("250 last\r\n").size();
    CHECK(parse(many).used == prefix + 1);
}

TEST_CASE("reply: garbage", "[relay][reply]") {
    CHECK(error("\x16\x03\x01\x02\x00") == "malformed reply code");  // a TLS ClientHello
    CHECK(error("\xff\xfe\r\n") == "malformed reply code");
    CHECK(error("SSH-2.0-OpenSSH_9.2\r\n") == "malformed reply code");
    CHECK(error("250-a\r\nxyz\r\n") == "malformed reply code");
}

TEST_CASE("reply: 8-bit and control bytes in the text are kept", "[relay][reply]") {
    // Only the line structure is checked here; quoting the text in a DSN or a
    // log is the writer's business.
    Outcome o = done("550 5.1.1 Empf\xc3\xa4nger \x1b unbekannt\r\n");
    CHECK(o.lines.front() == "5.1.1 Empf\xc3\xa4nger \x1b unbekannt");
    CHECK(o.enhanced == "5.1.1");
}

TEST_CASE("reply: a partial reply is visible before the end", "[relay][reply]") {
    ReplyParser p;
    std::size_t used = 0;
    REQUIRE(p.feed("450-first\r\n450-sec", &used) == Status::NeedMore);
    CHECK(p.reply().code == 450);
    CHECK(p.reply().lines == std::vector<std::string>{"first"});
    REQUIRE(p.feed("ond\r\n450 4.2.0 third\r\n", &used) == Status::Done);
    CHECK(p.reply().lines == std::vector<std::string>{"first", "second", "4.2.0 third"});
    CHECK(p.reply().enhanced.empty());  // the first line carries none
}

TEST_CASE("reply: feed with a null used pointer", "[relay][reply]") {
    ReplyParser p;
    CHECK(p.feed("250 ok\r\n", nullptr) == Status::Done);
    CHECK(p.reply().code == 250);
}

TEST_CASE("ehlo_extensions: a typical EHLO reply", "[relay][reply][ehlo]") {
    Reply r = reply_of("250-mx.example.org Hello client.example [192.0.2.1]\r\n"
                       "250-PIPELINING\r\n"
                       "250-SIZE 35882577\r\n"
                       "250-auth PLAIN   LOGIN\r\n"
                       "250-8BITMIME\r\n"
                       "250-ENHANCEDSTATUSCODES\r\n"
                       "250-SMTPUTF8\r\n"
                       "250-DSN\r\n"
                       "250 STARTTLS\r\n");
    auto ext = ehlo_extensions(r);
    std::map<std::string, std::string> want{{"PIPELINING", ""},
                                            {"SIZE", "35882577"},
                                            {"AUTH", "PLAIN LOGIN"},
                                            {"8BITMIME", ""},
                                            {"ENHANCEDSTATUSCODES", ""},
                                            {"SMTPUTF8", ""},
                                            {"DSN", ""},
                                            {"STARTTLS", ""}};
    CHECK(ext == want);
}

TEST_CASE("ehlo_extensions: the greeting line is not an extension", "[relay][reply][ehlo]") {
    CHECK(ehlo_extensions(reply_of("250 mx.example.org\r\n")).empty());
    CHECK(ehlo_extensions(reply_of("250 PIPELINING\r\n")).empty());
}

TEST_CASE("ehlo_extensions: odd lines skipped, first of a repeated keyword kept", "[relay][reply][ehlo]") {
    Reply r = reply_of("250-mx\r\n"
                       "250-AUTH=LOGIN\r\n"        // the pre-standard form
                       "250-\r\n"                  // empty
                       "250- \t SIZE\t 1000 \r\n"  // leading whitespace
                       "250--BAD\r\n"
                       "250-X-EXPS GSSAPI\r\n"
                       "250-auth LOGIN\r\n"
                       "250 AUTH PLAIN\r\n");
    std::map<std::string, std::string> want{{"SIZE", "1000"}, {"X-EXPS", "GSSAPI"}, {"AUTH", "LOGIN"}};
    CHECK(ehlo_extensions(r) == want);
}

TEST_CASE("ehlo_extensions: only a 250 reply offers extensions", "[relay][reply][ehlo]") {
    CHECK(ehlo_extensions(reply_of("550-no\r\n550 PIPELINING\r\n")).empty());
    CHECK(ehlo_extensions(reply_of("251-x\r\n251 PIPELINING\r\n")).empty());
    CHECK(ehlo_extensions(Reply{}).empty());
}
