// rspamd/request: the envelope as rspamd's HTTP headers, the client address
// from the filter protocol's src, and the held message (memory, then an
// unlinked temporary file) read back by independent readers.
#include <catch2/catch.hpp>

#include <dirent.h>

#include <string>
#include <vector>

#include "rspamd/request.hpp"

using namespace postern::rspamd;
using Lines = std::vector<std::string>;

namespace {

std::string read_all(BodyReader r) {
    std::string out;
    char buf[777];  // an odd size, so reads end mid-line
    for (;;) {
        long n = r.read(buf, sizeof buf);
        REQUIRE(n >= 0);
        if (n == 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

std::size_t entries(const std::string& dir) {
    std::size_t n = 0;
    DIR* d = opendir(dir.c_str());
    REQUIRE(d);
    while (dirent* e = readdir(d)) n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
    closedir(d);
    return n;
}

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = "/tmp/rspamd-request-test.XXXXXX";
        REQUIRE(mkdtemp(t.data()));
        path = t;
    }
    ~TempDir() { rmdir(path.c_str()); }
};

}  // namespace

TEST_CASE("request: the envelope as rspamd's headers, one Rcpt per recipient") {
    Envelope e;
    e.mail_from = "alice@example.org";
    e.rcpts = {"bob@example.net", "carol@example.net"};
    e.ip = "203.0.113.5";
    e.hostname = "mail.example.org";
    e.helo = "mail.example.org";
    e.user = "alice";
    e.queue_id = "0123456789abcdef";
    e.mta_name = "mx.example.net";
    CHECK(request_headers(e) == Lines{
                                    "From: alice@example.org",
                                    "Rcpt: bob@example.net",
                                    "Rcpt: carol@example.net",
                                    "IP: 203.0.113.5",
                                    "Hostname: mail.example.org",
                                    "Helo: mail.example.org",
                                    "User: alice",
                                    "Queue-Id: 0123456789abcdef",
                                    "MTA-Name: mx.example.net",
                                });
    e.settings_id = "outbound";
    CHECK(request_headers(e).back() == "Settings-ID: outbound");
}

TEST_CASE("request: the null sender is <>, empty and unknown fields are left out") {
    Envelope e;
    e.rcpts = {"postmaster@example.net"};
    e.hostname = "<unknown>";
    CHECK(request_headers(e) == Lines{"From: <>", "Rcpt: postmaster@example.net"});
}

TEST_CASE("request: control bytes cannot start a header of their own") {
    Envelope e;
    e.mail_from = "a@b";
    e.helo = "evil\r\nPass: all";
    e.user = std::string("u\0v", 3);
    Lines h = request_headers(e);
    CHECK(h == Lines{"From: a@b", "Helo: evilPass: all", "User: uv"});
}

TEST_CASE("request: the client's address from the filter protocol's src") {
    CHECK(client_ip("203.0.113.5:40112") == "203.0.113.5");
    CHECK(client_ip("203.0.113.5") == "203.0.113.5");
    CHECK(client_ip("[2001:db8::1]:25") == "2001:db8::1");
    CHECK(client_ip("[::ffff:192.0.2.1]:25") == "::ffff:192.0.2.1");
    CHECK(client_ip("[IPv6:2001:db8::2]:25") == "2001:db8::2");
    CHECK(client_ip("unix:/var/run/smtpd.sock") == "127.0.0.1");
    CHECK_FALSE(client_ip(""));
    CHECK_FALSE(client_ip("[]:25"));
    CHECK_FALSE(client_ip("[2001:db8::1"));
    CHECK_FALSE(client_ip("[2001:db8::1]x"));
    CHECK_FALSE(client_ip("host.example:25"));
    CHECK_FALSE(client_ip("[a b]:1"));
}

TEST_CASE("request: a small message stays in memory and reads back whole") {
    MessageBuffer buf;
    REQUIRE_FALSE(buf.append_line("Subject: hi"));
    REQUIRE_FALSE(buf.append_line(""));
    REQUIRE_FALSE(buf.append("body\r\n"));
    CHECK(buf.size() == 21);
    CHECK_FALSE(buf.in_file());
    CHECK(read_all(buf.reader()) == "Subject: hi\r\n\r\nbody\r\n");
    CHECK(read_all(BodyReader()) == "");
}

TEST_CASE("request: a large message moves to an unlinked file, readers are independent") {
    TempDir dir;
    MessageBuffer::Options o;
    o.spill_threshold = 1000;
    o.temp_dir = dir.path;
    MessageBuffer buf(o);
    std::string expect;
    for (int i = 0; i < 5000; ++i) {
        std::string line = "line " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 90), 'x');
        REQUIRE_FALSE(buf.append_line(line));
        expect += line + "\r\n";
        if (i == 3) {
            CHECK_FALSE(buf.in_file());
        }
    }
    CHECK(buf.in_file());
    CHECK(buf.size() == expect.size());
    // Nobody else can open it: the folder is empty.
    CHECK(entries(dir.path) == 0);

    BodyReader a = buf.reader();
    BodyReader b = buf.reader();
    char first[10];
    REQUIRE(a.read(first, sizeof first) == 10);
    CHECK(std::string(first, 10) == expect.substr(0, 10));
    CHECK(read_all(b) == expect);  // b from its own start
    CHECK(a.offset() == 10);
    a.rewind();
    CHECK(read_all(a) == expect);

    // A reader sees what the buffer held when it was made.
    BodyReader before = buf.reader();
    REQUIRE_FALSE(buf.append_line("one more"));
    CHECK(read_all(before) == expect);
    CHECK(read_all(buf.reader()) == expect + "one more\r\n");
}

TEST_CASE("request: a buffer that cannot make its file says why and keeps what it had") {
    MessageBuffer::Options o;
    o.spill_threshold = 4;
    o.temp_dir = "/nonexistent/folder";
    MessageBuffer buf(o);
    REQUIRE_FALSE(buf.append("abc"));
    auto err = buf.append("defgh");
    REQUIRE(err);
    CHECK(err->find("cannot make a temporary file in /nonexistent/folder: ") == 0);
    CHECK(buf.size() == 3);
    CHECK(read_all(buf.reader()) == "abc");
}
