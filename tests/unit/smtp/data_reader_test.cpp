// Unit tests of the DATA decoder and encoder (core/smtp/data_reader.cpp,
// postern/support/smtp_data.hpp): end of data, dot-stuffing, line ends, SMTP smuggling,
// limits, and independence from how the network splits the stream.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "smtp/data_reader.hpp"

using namespace postern::smtp;
using namespace std::string_literals;

namespace {

constexpr std::size_t kBig = 1 << 20;

struct Result {
    std::string message;
    std::size_t consumed = 0;
    std::size_t size = 0;
    bool done = false, too_big = false, bare = false, long_line = false;

    bool operator==(const Result&) const = default;
};

Result snapshot(DataReader& r, std::size_t consumed) {
    return {r.message(), consumed, r.size(), r.done(), r.too_big(), r.bare_newline(), r.line_too_long()};
}

// Feeds `in` in pieces cut at `cuts` (increasing offsets), stopping once done.
Result feed_cut(std::string_view in, const std::vector<std::size_t>& cuts, std::size_t max_size = kBig,
                std::size_t max_line = kBig) {
    DataReader r(max_size, max_line);
    std::size_t consumed = 0, from = 0;
    auto piece = [&](std::size_t to) {
        if (r.done() || to <= from) return;
        std::size_t n = r.feed(in.substr(from, to - from));
        REQUIRE(n <= to - from);
        consumed += n;
        if (r.done()) return;
        REQUIRE(n == to - from);  // before the end every byte is taken
        from = to;
    };
    for (std::size_t cut : cuts) piece(cut);
    piece(in.size());
    return snapshot(r, consumed);
}

Result feed_all(std::string_view in, std::size_t max_size = kBig, std::size_t max_line = kBig) {
    return feed_cut(in, {}, max_size, max_line);
}

// The message decoded from encode_data(m) must be m (with a final LF).
void check_round_trip(const std::string& m) {
    INFO("message: " << m);
    std::string wire = encode_data(m);
    Result r = feed_all(wire);
    CHECK(r.done);
    CHECK(r.consumed == wire.size());
    std::string expect = m;
    if (!expect.empty() && expect.back() != '\n') expect += '\n';
    CHECK(r.message == expect);
    CHECK(r.size == expect.size());
}

}  // namespace

TEST_CASE("DataReader: a plain message", "[smtp][data]") {
    std::string in = "Subject: hi\r\n\r\nbody line\r\n.\r\n";
    Result r = feed_all(in);
    CHECK(r.done);
    CHECK(r.message == "Subject: hi\n\nbody line\n");
    CHECK(r.consumed == in.size());
    CHECK(r.size == r.message.size());
    CHECK_FALSE(r.bare);
    CHECK_FALSE(r.too_big);
    CHECK_FALSE(r.long_line);
}

TEST_CASE("DataReader: an immediate dot is an empty message", "[smtp][data]") {
    Result r = feed_all(".\r\n");
    CHECK(r.done);
    CHECK(r.message == "");
    CHECK(r.consumed == 3);
    CHECK(r.size == 0);

    r = feed_all("\r\n.\r\n");  // one empty line
    CHECK(r.done);
    CHECK(r.message == "\n");
}

TEST_CASE("DataReader: dot-unstuffing", "[smtp][data]") {
    Result r = feed_all("..\r\n...\r\n.x\r\n.. y\r\nx.\r\n.\r\n");
    CHECK(r.done);
    CHECK(r.message == ".\n..\nx\n. y\nx.\n");
    CHECK(r.size == r.message.size());
    CHECK_FALSE(r.bare);
}

TEST_CASE("DataReader: not done until the end line", "[smtp][data]") {
    DataReader r(kBig, kBig);
    CHECK(r.feed("line one\r\n") == 10);
    CHECK_FALSE(r.done());
    CHECK(r.feed(".") == 1);
    CHECK_FALSE(r.done());
    CHECK(r.feed("\r") == 1);
    CHECK_FALSE(r.done());
    CHECK(r.feed("\n") == 1);
    CHECK(r.done());
    CHECK(r.message() == "line one\n");
}

TEST_CASE("DataReader: bytes after the end are not consumed", "[smtp][data]") {
    std::string in = "a\r\n.\r\nMAIL FROM:<x@y>\r\n";
    DataReader r(kBig, kBig);
    CHECK(r.feed(in) == 6);
    CHECK(r.done());
    CHECK(r.message() == "a\n");
    CHECK(r.feed("more") == 0);
    CHECK(r.message() == "a\n");

    DataReader e(kBig, kBig);
    CHECK(e.feed(".\r\nQUIT\r\n") == 3);
    CHECK(e.done());
}

TEST_CASE("DataReader: splitting the stream never changes the result", "[smtp][data]") {
    const std::string samples[] = {
        "Subject: x\r\n\r\n..stuffed\r\n.\r\nline\r\n\r\n.\r\nTAIL",
        ".\r\nNEXT",
        "a\rb\r\r\n.\r\r\n\n.\n\r.\r..\r\n.\r\n",
        "x\r\n.\r.\r\n.\r\n",
        "bare\nlf\n.\n.\r\nstill\r\n.\r\n",
        "ends in cr\r",
    };
    for (const auto& in : samples) {
        INFO("sample: " << in);
        Result whole = feed_all(in);
        for (std::size_t cut = 0; cut <= in.size(); ++cut) {
            INFO("cut at " << cut);
            REQUIRE(feed_cut(in, {cut}) == whole);
        }
        std::vector<std::size_t> every;
        for (std::size_t i = 1; i < in.size(); ++i) every.push_back(i);
        REQUIRE(feed_cut(in, every) == whole);  // byte by byte
        for (std::size_t a = 0; a <= in.size(); ++a)
            for (std::size_t b = a; b <= in.size(); ++b) REQUIRE(feed_cut(in, {a, b}) == whole);
    }
    CHECK(feed_all(samples[0]).message == "Subject: x\n\n.stuffed\n");
    CHECK(feed_all(samples[0]).consumed == samples[0].find("line"));
}

TEST_CASE("DataReader: splits with limits give the same flags", "[smtp][data]") {
    std::string in = "123456789\r\n..345\r\n12\r3\r\nabcdefghijklmnop\r\n.\r\n";
    Result whole = feed_all(in, 20, 5);
    CHECK(whole.done);
    CHECK(whole.too_big);
    CHECK(whole.long_line);
    for (std::size_t cut = 0; cut <= in.size(); ++cut) REQUIRE(feed_cut(in, {cut}, 20, 5) == whole);
}

TEST_CASE("DataReader: bare line ends never end the message (smuggling)", "[smtp][data]") {
    const std::string variants[] = {
        "\n.\n",   "\n.\r\n",  "\r.\r",       "\r\n.\n",     "\r.\r\n",   "\n.\r",
        "\r\n.\r", "\r\n.\rX", "\r\n.\r\r\n", "\r\n.\n\r\n", "\r\r.\r\n",
    };
    for (const auto& v : variants) {
        std::string smuggled = "MAIL FROM:<evil@example.com>\r\n";
        std::string in = "Subject: x\r\n\r\nhi" + v + smuggled + ".\r\n";
        INFO("variant: " << v);
        Result r = feed_all(in);
        CHECK(r.done);
        CHECK(r.consumed == in.size());  // only the real end ends it
        CHECK(r.bare);
        CHECK(r.message.find("MAIL FROM:<evil@example.com>\n") != std::string::npos);

        // Without the real end, the stream is still open.
        std::string open = "Subject: x\r\n\r\nhi" + v + smuggled;
        Result o = feed_all(open);
        CHECK_FALSE(o.done);
        CHECK(o.consumed == open.size());
    }

    // Bare ends right at the start of the data as well.
    for (const std::string& v : {"\n.\n"s, ".\n"s, ".\r.\r\n"s, "\r.\r\n"s}) {
        INFO("start variant: " << v);
        Result r = feed_all(v);
        CHECK_FALSE(r.done);
        CHECK(r.bare);
    }
}

TEST_CASE("DataReader: what a bare line end stores", "[smtp][data]") {
    Result r = feed_all("a\nb\r\n.\r\n");
    CHECK(r.done);
    CHECK(r.bare);
    CHECK(r.message == "a\nb\n");

    r = feed_all("a\rb\r\n.\r\n");
    CHECK(r.bare);
    CHECK(r.message == "a\rb\n");

    // After a bare LF no line starts: the dot is data, not stuffing.
    r = feed_all("a\n..b\r\n.\r\n");
    CHECK(r.message == "a\n..b\n");

    r = feed_all("x\r\n.\rX\r\n.\r\n");  // the dot is unstuffed, the CR kept
    CHECK(r.message == "x\n\rX\n");
    CHECK(r.size == 5);
}

TEST_CASE("DataReader: too big", "[smtp][data]") {
    std::string in = "0123456789\r\n0123456789\r\n.\r\n";  // 22 bytes stored
    Result r = feed_all(in, 21);
    CHECK(r.done);
    CHECK(r.too_big);
    CHECK(r.message.empty());
    CHECK(r.size == 22);
    CHECK(r.consumed == in.size());

    r = feed_all(in, 22);
    CHECK_FALSE(r.too_big);
    CHECK(r.message == "0123456789\n0123456789\n");

    DataReader big(5, kBig);
    big.feed(std::string(1000, 'x'));
    CHECK(big.too_big());
    CHECK(big.message().capacity() < 1000);  // storage was given back
    CHECK(big.feed("\r\n.\r\nNEXT") == 5);
    CHECK(big.done());
    CHECK(big.size() == 1001);
}

TEST_CASE("DataReader: line too long", "[smtp][data]") {
    Result r = feed_all("12345\r\n.\r\n", kBig, 5);
    CHECK_FALSE(r.long_line);

    r = feed_all("123456\r\n.\r\n", kBig, 5);
    CHECK(r.long_line);
    CHECK(r.done);
    CHECK(r.message == "123456\n");  // still stored: the session decides

    r = feed_all("..2345\r\n.\r\n", kBig, 5);  // six bytes sent, the stuffing dot counts
    CHECK(r.long_line);

    r = feed_all("1234\r\n1234\r\n.\r\n", kBig, 5);  // lengths do not add up across lines
    CHECK_FALSE(r.long_line);

    r = feed_all("1234\r5\r\n.\r\n", kBig, 5);  // a bare CR is a byte of the line
    CHECK(r.long_line);
}

TEST_CASE("encode_data: exact bytes", "[smtp][data]") {
    CHECK(encode_data("") == ".\r\n");
    CHECK(encode_data("x") == "x\r\n.\r\n");
    CHECK(encode_data("a\n\nb\n") == "a\r\n\r\nb\r\n.\r\n");
    CHECK(encode_data(".\n..\n.x\nx.\n") == "..\r\n...\r\n..x\r\nx.\r\n.\r\n");
    CHECK(encode_data("\n") == "\r\n.\r\n");
}

TEST_CASE("encode_data / DataReader round trip over hostile messages", "[smtp][data]") {
    const std::string messages[] = {
        "",
        "\n",
        ".",
        "..",
        ".\n",
        "..\n",
        ".\n.\n.\n",
        "a\n.\nb\n",
        "\n.\n",
        ".\r\n",
        "a\r\n.\r\n",
        "x\r",
        "\r\n.\r\n",
        "line\rwith\rcr\n",
        "no final newline",
        "Subject: s\n\n.hidden\n...\n",
        std::string(5000, '.'),
        "\0.\0\n"s,
        "8bit \xff\xfe\n",
        "a\n\n\n\n.",
        ".\r.\r\n.\n",
    };
    for (const auto& m : messages) check_round_trip(m);
}
