// tests/unit/plugins/mbox_test.cpp — delivery-mbox.so: exact bytes with
// mboxrd quoting, locking (dotlock and fcntl) and rollback on failure.
#include <sys/resource.h>
#include <sys/time.h>

#include <chrono>
#include <csignal>
#include <regex>
#include <thread>

#include "support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const postern::util::DeliveryPlugin& mbox() {
    static auto p = test::load_delivery("mbox");
    return p;
}

test::Outcome deliver(const test::TempDir& dir, const test::Request& r, const std::string& message) {
    auto fd = test::message_fd(dir, message);
    return test::deliver(mbox(), r, fd.get());
}

// Replace the date of every "From " separator line with DATE after checking
// it has asctime()'s layout, so the rest can be compared byte for byte.
std::string normalise_dates(const std::string& mbox) {
    static const std::regex from_line(
        R"(^From (\S+) [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$)",
        std::regex::multiline);
    return std::regex_replace(mbox, from_line, "From $1 DATE");
}

std::string header(const std::string& sender, const std::string& dest = "bob@example.com") {
    return "From " + (sender.empty() ? "MAILER-DAEMON" : sender) + " DATE\nReturn-Path: <" + sender +
           ">\nDelivered-To: " + dest + "\n";
}

}  // namespace

TEST_CASE("mbox: two deliveries appended with exact bytes and mboxrd quoting") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    std::string first = "Subject: one\n\nFrom me to you\n>From quoted\n>>From twice\nFromage\n"
                        " From indented\nFrom\n>From\n>x\n";
    std::string second = "Subject: two\n\nno newline at the end";
    REQUIRE(deliver(dir, r, first).status == POSTERN_OK);
    r.sender = "";
    r.dest = "carol@example.net";
    REQUIRE(deliver(dir, r, second).status == POSTERN_OK);

    CHECK(normalise_dates(test::read_file(r.path)) ==
          header("alice@example.org") +
              "Subject: one\n\n>From me to you\n>>From quoted\n>>>From twice\nFromage\n"
              " From indented\nFrom\n>From\n>x\n\n" +
              header("", "carol@example.net") + "Subject: two\n\nno newline at the end\n\n");
    struct stat st {};
    REQUIRE(::stat(r.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(::access((r.path + ".lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: a From line split across read chunks is still quoted") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    std::string message = "Subject: chunks\n\n";
    message += std::string(65536 - message.size() - 3, 'x') + "\n";  // next line starts at 65534
    message += ">From the boundary\n";
    message += std::string(70000, 'y') + "\nFrom the end";
    REQUIRE(deliver(dir, r, message).status == POSTERN_OK);

    std::string expected = message;
    expected.replace(expected.find(">From the boundary"), 1, ">>");
    expected.replace(expected.rfind("From the end"), 0, ">");
    CHECK(normalise_dates(test::read_file(r.path)) == header("alice@example.org") + expected + "\n\n");
}

TEST_CASE("mbox: a held fcntl lock makes the delivery wait, then succeed") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    test::write_file(r.path, "");
    // An open-file-description lock conflicts with the plugin's POSIX lock
    // even inside this one process, as a mail reader's lock would.
    postern::util::Fd reader(::open(r.path.c_str(), O_RDWR | O_CLOEXEC));
    REQUIRE(reader);
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    REQUIRE(::fcntl(reader.get(), F_OFD_SETLK, &l) == 0);
    std::thread release([&] {
        std::this_thread::sleep_for(400ms);
        struct flock u {};
        u.l_type = F_UNLCK;
        u.l_whence = SEEK_SET;
        ::fcntl(reader.get(), F_OFD_SETLK, &u);
    });
    auto start = Clock::now();
    auto out = deliver(dir, r, "Subject: waited\n\nbody\n");
    auto waited = Clock::now() - start;
    release.join();
    INFO(out.error);
    CHECK(out.status == POSTERN_OK);
    CHECK(waited >= 350ms);
    CHECK(waited < 5s);
    CHECK(normalise_dates(test::read_file(r.path)) == header("alice@example.org") + "Subject: waited\n\nbody\n\n");
    CHECK(::access((r.path + ".lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: a dotlock held by another agent is waited for, a stale one removed") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    std::string lock = r.path + ".lock";

    test::write_file(lock, "");
    std::thread release([&] {
        std::this_thread::sleep_for(300ms);
        ::unlink(lock.c_str());
    });
    auto start = Clock::now();
    auto out = deliver(dir, r, "Subject: one\n\n");
    release.join();
    CHECK(out.status == POSTERN_OK);
    CHECK(Clock::now() - start >= 250ms);

    test::write_file(lock, "");
    struct timeval old[2] = {{::time(nullptr) - 600, 0}, {::time(nullptr) - 600, 0}};
    REQUIRE(::utimes(lock.c_str(), old) == 0);
    start = Clock::now();
    out = deliver(dir, r, "Subject: two\n\n");
    CHECK(out.status == POSTERN_OK);
    CHECK(Clock::now() - start < 2s);
    CHECK(::access(lock.c_str(), F_OK) != 0);
    CHECK(normalise_dates(test::read_file(r.path)) ==
          header("alice@example.org") + "Subject: one\n\n\n" + header("alice@example.org") + "Subject: two\n\n\n");
}

TEST_CASE("mbox: null sender gives a MAILER-DAEMON From line") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    r.sender = "";
    REQUIRE(deliver(dir, r, "Subject: bounce\n\n").status == POSTERN_OK);
    std::string text = test::read_file(r.path);
    CHECK(text.starts_with("From MAILER-DAEMON "));
    CHECK(normalise_dates(text) == header("") + "Subject: bounce\n\n\n");
}

TEST_CASE("mbox: a failed write leaves the file as it was") {
    test::TempDir dir;
    test::Request r;
    r.path = dir / "bob";
    std::string before = "From old DATE\n\nold message\n\n";
    test::write_file(r.path, before);
    std::string big = "Subject: big\n\n" + std::string(200000, 'z') + "\n";
    auto fd = test::message_fd(dir, big);
    // A file size limit makes the append fail half way (EFBIG).
    auto out = test::in_child([&] {
        std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {100000, 100000};
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return test::Outcome{-2, "setrlimit"};
        return test::deliver(mbox(), r, fd.get());
    });
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mbox: write " + r.path + ": File too large");
    CHECK(test::read_file(r.path) == before);
    CHECK(::access((r.path + ".lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: bad paths are refused with a reason") {
    test::TempDir dir;
    test::Request r;
    for (std::string bad : {"", "var/mail/bob", "/var/mail/"}) {
        r.path = bad;
        auto out = deliver(dir, r, "Subject: x\n\n");
        CHECK(out.status == POSTERN_TEMPFAIL);
        CHECK(out.error == "mbox: file \"" + bad + "\" is not an absolute file path");
    }
    r.path = dir / "missing/bob";
    auto out = deliver(dir, r, "Subject: x\n\n");
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "mbox: create " + r.path + ".lock: No such file or directory");

    std::string target = dir / "target";
    test::write_file(target, "");
    r.path = dir / "link";
    REQUIRE(::symlink(target.c_str(), r.path.c_str()) == 0);
    out = deliver(dir, r, "Subject: x\n\n");
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "mbox: open " + r.path + ": Too many levels of symbolic links");
    CHECK(test::read_file(target).empty());
}
