// Unit tests for message files at rest (queue/message_codec.cpp): every mix
// of compression and encryption reads back byte for byte, plain files stay
// plain, and a wrong key, a changed byte, a cut file or a lying header is
// refused with its reason.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <random>
#include <string>

#include "queue/message_codec.hpp"

using namespace postern;
using namespace postern::queue;

namespace {

util::Fd temp_file() { return util::Fd(::memfd_create("codec-test", MFD_CLOEXEC)); }

std::string contents(int fd) {
    std::string out;
    char buf[4096];
    ::lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
}

void put(int fd, const std::string& bytes) {
    REQUIRE(::ftruncate(fd, 0) == 0);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
}

AtRest with(bool compress, bool encrypt, unsigned char key_byte = 7) {
    AtRest how;
    how.compress = compress;
    if (encrypt) {
        how.key.emplace();
        how.key->fill(key_byte);
    }
    return how;
}

// Writes `message` in pieces of `piece` bytes; returns the file.
util::Fd written(const std::string& message, const AtRest& how, std::size_t piece = 1000) {
    util::Fd fd = temp_file();
    MessageWriter w(fd.get(), how, message.size());
    for (std::size_t at = 0; at < message.size(); at += piece)
        REQUIRE(w.write(std::string_view(message).substr(at, piece)));
    REQUIRE(w.finish());
    CHECK(w.file_size() == contents(fd.get()).size());
    return fd;
}

std::string read_back(util::Fd fd, const AtRest& how, std::string* why) {
    util::Fd plain = open_plain(std::move(fd), how, why);
    return plain ? contents(plain.get()) : std::string("<refused>");
}

std::string sample_message(std::size_t size) {
    std::string m = "From: a@example.org\nTo: b@example.org\nSubject: test\n\n";
    std::mt19937 rng(42);
    while (m.size() < size) m += "line " + std::to_string(rng() % 1000) + " of the body, quite repetitive\n";
    m.resize(size);
    return m;
}

}  // namespace

TEST_CASE("every mix of compression and encryption reads back exactly", "[codec]") {
    for (std::size_t size : {0, 1, 7, 8, 100, 70000, 300000}) {
        std::string message = sample_message(size);
        for (bool compress : {false, true})
            for (bool encrypt : {false, true}) {
                AtRest how = with(compress, encrypt);
                util::Fd fd = written(message, how, 777);
                std::string file = contents(fd.get());
                if (compress || encrypt) CHECK(file.compare(0, 8, kFrameMagic) == 0);
                else CHECK(file == message);  // a plain file is the message itself
                if (encrypt && size >= 100) CHECK(file.find("Subject: test") == std::string::npos);
                std::string why;
                CHECK(read_back(std::move(fd), how, &why) == message);
                CHECK(why.empty());
            }
    }
}

TEST_CASE("compression makes a typical message smaller", "[codec]") {
    std::string message = sample_message(300000);
    util::Fd fd = written(message, with(true, false));
    CHECK(contents(fd.get()).size() < message.size() / 3);
}

TEST_CASE("a plain message that starts like a frame is framed, and reads back", "[codec]") {
    std::string message = std::string(kFrameMagic) + "\x01\x01 a client sent this";
    util::Fd fd = written(message, AtRest{}, 3);
    std::string file = contents(fd.get());
    CHECK(file.size() == kFrameHeader + message.size());
    CHECK(static_cast<unsigned char>(file[9]) == 0);  // no flag
    std::string why;
    CHECK(read_back(std::move(fd), AtRest{}, &why) == message);
}

TEST_CASE("files written with other settings stay readable", "[codec]") {
    std::string message = sample_message(5000);
    std::string why;
    // Written plain, read with both options on; written with both, read with compression off.
    CHECK(read_back(written(message, AtRest{}), with(true, true), &why) == message);
    CHECK(read_back(written(message, with(true, true)), with(false, true), &why) == message);
    CHECK(read_back(written(message, with(true, false)), AtRest{}, &why) == message);
}

TEST_CASE("a wrong or missing key, a changed byte, a cut file are refused", "[codec]") {
    std::string message = sample_message(5000);
    std::string why;
    CHECK(read_back(written(message, with(true, true, 7)), with(true, true, 8), &why) == "<refused>");
    CHECK(why == "does not decrypt with this key (a wrong key, or the file was changed)");
    CHECK(read_back(written(message, with(false, true)), AtRest{}, &why) == "<refused>");
    CHECK(why == "encrypted, and no queue encryption key is set");

    util::Fd fd = written(message, with(true, true));
    std::string file = contents(fd.get());
    for (std::size_t at : {std::size_t{9}, std::size_t{12}, std::size_t{20}, file.size() / 2, file.size() - 1}) {
        std::string changed = file;
        changed[at] ^= 1;
        util::Fd f = temp_file();
        put(f.get(), changed);
        why.clear();
        CHECK(read_back(std::move(f), with(true, true), &why) == "<refused>");
        CHECK_FALSE(why.empty());
    }
    for (std::size_t keep : {std::size_t{10}, std::size_t{20}, file.size() - 1}) {
        util::Fd f = temp_file();
        put(f.get(), file.substr(0, keep));
        why.clear();
        CHECK(read_back(std::move(f), with(true, true), &why) == "<refused>");
        CHECK_FALSE(why.empty());
    }
}

TEST_CASE("a compressed file that inflates beyond its header's size is refused", "[codec]") {
    std::string message(200000, 'a');
    util::Fd fd = written(message, with(true, false));
    std::string file = contents(fd.get());
    file[10] = 100;  // the size, little-endian: now 100 + the upper bytes
    file[11] = 0;
    file[12] = 0;
    util::Fd f = temp_file();
    put(f.get(), file);
    std::string why;
    CHECK(read_back(std::move(f), with(true, false), &why) == "<refused>");
    CHECK(why == "holds more than the size its header gives");
}

TEST_CASE("the writer refuses a message of another size than announced", "[codec]") {
    util::Fd fd = temp_file();
    MessageWriter w(fd.get(), with(true, true), 10);
    CHECK(w.write("12345"));
    CHECK_FALSE(w.finish());
    CHECK(w.error() == "message size changed while it was written");
}

TEST_CASE("the decoded message cannot be changed by its reader", "[codec]") {
    util::Fd fd = written(sample_message(1000), with(true, false));
    std::string why;
    util::Fd plain = open_plain(std::move(fd), with(true, false), &why);
    REQUIRE(plain);
    CHECK(::write(plain.get(), "x", 1) < 0);
    CHECK(::ftruncate(plain.get(), 0) < 0);
}

TEST_CASE("seal and unseal: a fresh nonce each time, the tag and the authenticated data checked", "[codec]") {
    std::array<unsigned char, 32> key{}, other{};
    key.fill(3);
    other.fill(4);
    const std::string text = "version: 1\nid: 0123456789abcdef\nsender: a@example.org\n";
    std::string a = seal(key, "S 0123456789abcdef 10", text), b = seal(key, "S 0123456789abcdef 10", text);
    REQUIRE(a.size() == text.size() + 28);
    CHECK(a != b);  // nonces differ
    CHECK(a.find("example.org") == std::string::npos);
    std::string plain, why;
    CHECK(unseal(key, "S 0123456789abcdef 10", a, plain, &why));
    CHECK(plain == text);
    CHECK_FALSE(unseal(other, "S 0123456789abcdef 10", a, plain, &why));
    CHECK(plain.empty());
    CHECK(why == "does not decrypt (another key, or changed)");
    CHECK_FALSE(unseal(key, "S 0123456789abcdef 11", a, plain, &why));
    std::string changed = a;
    changed[20] ^= 0x40;
    CHECK_FALSE(unseal(key, "S 0123456789abcdef 10", changed, plain, &why));
    CHECK_FALSE(unseal(key, "S 0123456789abcdef 10", a.substr(0, 27), plain, &why));
    CHECK(why == "cut short");
    CHECK(unseal(key, "x", seal(key, "x", ""), plain, &why));
    CHECK(plain.empty());
}
