// tests/unit/smtpd/message_buffer_test.cpp — a message being received: in
// memory up to the threshold, then in an unlinked file whose bytes are
// exactly what was appended and taken, in order; backlog() counts what the
// disk has not taken yet, and on_written() says when it took some.
#include <catch2/catch.hpp>

#include <uv.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "smtpd/message_buffer.hpp"

using postern::smtpd::MessageBuffer;

namespace {

struct Loop {
    uv_loop_t loop{};
    Loop() { uv_loop_init(&loop); }
    ~Loop() {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
};

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/message-buffer-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

std::string read_all(int fd) {
    std::string out;
    char buf[65536];
    off_t at = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, at);
        REQUIRE(n >= 0);
        if (n == 0) return out;
        out.append(buf, static_cast<size_t>(n));
        at += n;
    }
}

// Pieces of varied sizes, each different, as reads of a socket give them.
std::string piece(int i) {
    return std::string(static_cast<size_t>(1 + (i * 7919) % 40000), static_cast<char>('a' + i % 26));
}

}  // namespace

TEST_CASE("a message below the threshold stays in memory") {
    Loop l;
    TempDir dir;
    MessageBuffer b(&l.loop, dir.path);
    std::string taken = "body\n";
    b.append("Received: x\n");
    b.take(taken);
    CHECK(taken.empty());
    CHECK_FALSE(b.in_file());
    CHECK(b.backlog() == 0);
    bool done = false;
    b.finish([&](bool ok, const std::string&) { done = ok; });
    CHECK(done);  // at once: nothing to write
    CHECK(b.take_data() == "Received: x\nbody\n");
    CHECK(b.take_file() == nullptr);
}

TEST_CASE("beyond the threshold every byte goes to the file, in order") {
    Loop l;
    TempDir dir;
    MessageBuffer b(&l.loop, dir.path);
    int written = 0;
    b.on_written([&] { ++written; });
    std::string expected;
    for (int i = 0; expected.size() < 3 * 1024 * 1024; ++i) {
        std::string p = piece(i);
        expected += p;
        if (i % 3 == 0) {
            b.append(p);
        } else {
            b.take(p);
            CHECK(p.empty());
        }
        if (b.in_file() && i % 5 == 0) uv_run(&l.loop, UV_RUN_NOWAIT);  // the disk takes some meanwhile
    }
    CHECK(b.in_file());
    CHECK(b.size() == expected.size());
    CHECK(b.backlog() > 0);  // the loop has not written everything yet
    CHECK(b.backlog() < expected.size());
    bool done = false, ok = false;
    b.finish([&](bool success, const std::string&) { done = true, ok = success; });
    uv_run(&l.loop, UV_RUN_DEFAULT);
    REQUIRE(done);
    CHECK(ok);
    CHECK(written > 0);
    CHECK(b.backlog() == 0);
    CHECK(b.take_data().empty());
    auto file = b.take_file();
    REQUIRE(file);
    CHECK(read_all(file->get()) == expected);
    CHECK(std::filesystem::is_empty(dir.path));  // unlinked from the start
}

TEST_CASE("without a folder for the file the message stays in memory") {
    Loop l;
    MessageBuffer b(&l.loop, "", 16);
    std::string p(1000, 'x');
    b.take(p);
    CHECK_FALSE(b.in_file());
    bool done = false;
    b.finish([&](bool ok, const std::string&) { done = ok; });
    CHECK(done);
    CHECK(b.take_data() == std::string(1000, 'x'));
}

TEST_CASE("a buffer dropped while its write is in flight lets the write end") {
    Loop l;
    TempDir dir;
    {
        MessageBuffer b(&l.loop, dir.path, 16);
        std::string p(200 * 1024, 'y');
        b.take(p);
        CHECK(b.in_file());
        CHECK(b.backlog() > 0);
    }
    uv_run(&l.loop, UV_RUN_DEFAULT);  // no use of the dropped buffer (ASan would say)
}
