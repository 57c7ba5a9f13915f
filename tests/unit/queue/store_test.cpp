// Unit tests for the spool (queue/store.cpp) in a scratch folder under /tmp:
// commit, start-up scan, corrupt files, update, remove, failure isolation.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "queue/store.hpp"

using namespace postern::queue;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

// A fresh folder, deleted with everything in it at the end of the test.
class TempDir {
public:
    TempDir() {
        char name[] = "/tmp/postern-queue-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path_ = name;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

Envelope envelope(const std::string& msgid, const std::string& tail, const std::string& rcpt) {
    Envelope e;
    e.msgid = msgid;
    e.id = msgid + tail;
    e.action = "deliver";
    e.sender = "sender@example.org";
    e.rcpt = rcpt;
    e.dest = rcpt;
    e.helo = "evil\r\nversion: 2";
    e.client = "192.0.2.1";
    e.ctime = 1700000000;
    e.expire = 1700345600;
    return e;
}

Store::Message message(const std::string& msgid, int recipients, std::string data) {
    Store::Message m{msgid, std::move(data), {}, nullptr};
    for (int i = 0; i < recipients; ++i) {
        char tail[9];
        std::snprintf(tail, sizeof tail, "%08x", i + 1);
        m.envelopes.push_back(envelope(msgid, tail, "r" + std::to_string(i) + "@example.org"));
    }
    return m;
}

bool same(const Envelope& a, const Envelope& b) { return encode(a) == encode(b); }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
}

std::vector<std::string> entries(const std::string& path) {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(path)) out.push_back(entry.path().filename());
    std::sort(out.begin(), out.end());
    return out;
}

std::string read_fd(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
}

Store open_store(const TempDir& tmp) {
    Store store(tmp.path() + "/spool");
    std::string error;
    REQUIRE(store.open(&error));
    CHECK(error.empty());
    return store;
}

}  // namespace

TEST_CASE("open creates the spool folders with mode 0700", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    for (const char* sub : {"", "/incoming", "/queue"}) {
        struct stat st;
        REQUIRE(::stat((tmp.path() + "/spool" + sub).c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
    }
    std::string error;
    CHECK(store.open(&error));  // again: existing folders are fine
}

TEST_CASE("open fails on a spool path that is a file", "[store]") {
    TempDir tmp;
    write_file(tmp.path() + "/spool", "x");
    Store store(tmp.path() + "/spool");
    std::string error;
    CHECK_FALSE(store.open(&error));
    CHECK(error == tmp.path() + "/spool: not a folder");
}

TEST_CASE("a committed batch is found whole by load_all", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    std::vector<Store::Message> msgs;
    msgs.push_back(message("00000001", 1, "Subject: one\n\nbody\n"));
    msgs.push_back(message("00000002", 3, "binary \0\r\n\xff bytes\n"s));
    msgs.push_back(message("0000000a", 2, std::string(300000, 'z')));
    msgs.push_back(message("ffffffff", 1, ""));
    std::vector<const Store::Message*> batch;
    for (const auto& m : msgs) batch.push_back(&m);

    std::vector<bool> ok;
    std::string error;
    store.commit(batch, ok, &error);
    CHECK(ok == std::vector<bool>{true, true, true, true});
    CHECK(error.empty());
    CHECK(store.commit_calls() == 1);
    CHECK(entries(tmp.path() + "/spool/incoming").empty());
    CHECK(entries(tmp.path() + "/spool/queue") ==
          std::vector<std::string>{"00000001", "00000002", "0000000a", "ffffffff"});
    CHECK(entries(tmp.path() + "/spool/queue/00000002") ==
          std::vector<std::string>{"0000000200000001", "0000000200000002", "0000000200000003", "message"});
    struct stat st;
    REQUIRE(::stat((tmp.path() + "/spool/queue/00000002").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);

    std::vector<std::string> errors;
    auto loaded = store.load_all(&errors);
    CHECK(errors.empty());
    REQUIRE(loaded.size() == 7);
    std::size_t k = 0;
    for (const auto& m : msgs)
        for (const auto& e : m.envelopes) CHECK(same(loaded[k++], e));

    for (const auto& m : msgs) {
        std::string why;
        int fd = store.open_message(m.msgid, &why);
        REQUIRE(fd >= 0);
        CHECK(read_fd(fd) == m.data);
        CHECK(store.message_path(m.msgid) == tmp.path() + "/spool/queue/" + m.msgid + "/message");
    }
}

TEST_CASE("one failing message does not hurt the rest of the batch", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    auto good1 = message("11111111", 1, "one\n");
    auto twice = message("22222222", 2, "two\n");
    twice.envelopes[1].id = twice.envelopes[0].id;  // second create of the same file fails
    auto stranger = message("33333333", 1, "three\n");
    stranger.envelopes[0].msgid = "44444444";
    stranger.envelopes[0].id = "4444444400000001";
    auto good2 = message("55555555", 1, "five\n");
    auto bad_id = message("../x", 1, "six\n");
    std::vector<const Store::Message*> batch{&good1, &twice, &stranger, &good2, &bad_id};

    std::vector<bool> ok;
    std::vector<std::string> errors;
    store.commit(batch, ok, errors);
    CHECK(ok == std::vector<bool>{true, false, false, true, false});
    CHECK(errors[0].empty());
    CHECK(errors[1] == "incoming/22222222/2222222200000001: create: File exists");
    CHECK(errors[2] == "envelope 4444444400000001 does not belong to message 33333333");
    CHECK(errors[3].empty());
    CHECK(errors[4] == "bad message id '../x'");
    CHECK(entries(tmp.path() + "/spool/incoming").empty());
    CHECK(entries(tmp.path() + "/spool/queue") == std::vector<std::string>{"11111111", "55555555"});

    std::string joined;
    store.commit(batch, ok, &joined);  // the ids are taken now: the good ones fail too
    CHECK(ok == std::vector<bool>{false, false, false, false, false});
    CHECK(joined.find("incoming/11111111: rename to queue/: File exists") != std::string::npos);
    CHECK(entries(tmp.path() + "/spool/incoming").empty());
    CHECK(read_file(store.message_path("11111111")) == "one\n");
}

TEST_CASE("open clears leftovers of interrupted commits", "[store]") {
    TempDir tmp;
    { Store first = open_store(tmp); }
    const std::string spool = tmp.path() + "/spool";
    fs::create_directory(spool + "/incoming/deadbeef");
    write_file(spool + "/incoming/deadbeef/message", "half");
    write_file(spool + "/incoming/deadbeef/deadbeef00000001", "version: 1\n");
    write_file(spool + "/incoming/stray", "x");
    fs::create_directory(spool + "/queue/cafebabe");
    write_file(spool + "/queue/cafebabe/message", "kept");

    Store store = open_store(tmp);
    CHECK(entries(spool + "/incoming").empty());
    CHECK(entries(spool + "/queue") == std::vector<std::string>{"cafebabe"});
    CHECK(read_file(spool + "/queue/cafebabe/message") == "kept");
}

TEST_CASE("load_all reports and skips what it cannot read", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    auto m = message("0badf00d", 2, "data\n");
    std::vector<bool> ok;
    store.commit({&m}, ok, static_cast<std::string*>(nullptr));
    REQUIRE(ok == std::vector<bool>{true});
    const std::string q = tmp.path() + "/spool/queue";
    write_file(q + "/0badf00d/0badf00d00000002", "garbage\n");
    write_file(q + "/0badf00d/0badf00d00000001.tmp", "half written");  // ignored
    auto moved = envelope("0badf00d", "00000003", "x@example.org");
    write_file(q + "/0badf00d/0badf00d00000009", encode(moved));  // name and id differ
    fs::create_directory(q + "/12345678");                        // envelopes, no message
    write_file(q + "/12345678/1234567800000001", encode(envelope("12345678", "00000001", "y@e.org")));
    fs::create_directory(q + "/not-an-id");
    fs::create_directory(q + "/87654321");  // message, no envelopes
    write_file(q + "/87654321/message", "orphan");

    std::vector<std::string> errors;
    auto loaded = store.load_all(&errors);
    REQUIRE(loaded.size() == 1);
    CHECK(same(loaded[0], m.envelopes[0]));
    CHECK(errors == std::vector<std::string>{
                        q + "/0badf00d/0badf00d00000002: line 1: expected 'version: 1'",
                        q + "/0badf00d/0badf00d00000009: envelope id 0badf00d00000003 does not match its file name",
                        q + "/12345678: envelopes without a message file, skipped",
                        q + "/87654321: message without envelopes, left alone",
                        q + "/not-an-id: not a message id, skipped",
                    });
    // Reported, never deleted: the administrator decides.
    CHECK(fs::exists(q + "/12345678/1234567800000001"));
    CHECK(fs::exists(q + "/0badf00d/0badf00d00000002"));
    CHECK(fs::exists(q + "/87654321/message"));
}

TEST_CASE("a batch larger than the descriptor budget commits whole", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    std::vector<Store::Message> msgs;
    for (unsigned n = 0; n < 300; ++n) {
        char msgid[9];
        std::snprintf(msgid, sizeof msgid, "%08x", n * 7919u);
        msgs.push_back(message(msgid, 2, "message " + std::to_string(n) + "\n"));
    }
    std::vector<const Store::Message*> batch;
    for (const auto& m : msgs) batch.push_back(&m);
    std::vector<bool> ok;
    std::vector<std::string> errors;
    std::size_t fds_before = entries("/proc/self/fd").size();
    store.commit(batch, ok, errors);                       // 900 files and folders to sync
    CHECK(entries("/proc/self/fd").size() == fds_before);  // nothing leaked
    CHECK(std::count(ok.begin(), ok.end(), true) == 300);
    CHECK(store.load_all(nullptr).size() == 600);
    CHECK(read_file(store.message_path(msgs[299].msgid)) == "message 299\n");
    CHECK(entries(tmp.path() + "/spool/incoming").empty());
}

TEST_CASE("update rewrites an envelope atomically", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    auto m = message("abcdef01", 2, "data\n");
    std::vector<bool> ok;
    store.commit({&m}, ok, static_cast<std::string*>(nullptr));
    REQUIRE(ok[0]);

    Envelope e = m.envelopes[1];
    e.retry = 3;
    e.last_try = 1700000400;
    e.next_try = 1700003600;
    e.errorline = "421 4.4.2 timeout\r\nfake: line";
    std::string error;
    REQUIRE(store.update(e, &error));
    CHECK(error.empty());
    auto loaded = store.load_all(nullptr);
    REQUIRE(loaded.size() == 2);
    CHECK(same(loaded[0], m.envelopes[0]));
    CHECK(same(loaded[1], e));
    CHECK(entries(tmp.path() + "/spool/queue/abcdef01") ==
          std::vector<std::string>{"abcdef0100000001", "abcdef0100000002", "message"});

    Envelope gone = envelope("abcdef01", "0000000f", "z@example.org");
    CHECK_FALSE(store.update(gone, &error));
    CHECK(error == tmp.path() + "/spool/queue/abcdef01/abcdef010000000f: stat: No such file or directory");
    Envelope bad = e;
    bad.id = "abcdef01/../../x";
    CHECK_FALSE(store.update(bad, &error));
    CHECK(error == "bad envelope id 'abcdef01/../../x' / msgid 'abcdef01'");
}

TEST_CASE("remove deletes the folder with its last envelope", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    auto m = message("feedface", 3, "data\n");
    auto other = message("00c0ffee", 1, "other\n");
    std::vector<bool> ok;
    store.commit({&m, &other}, ok, static_cast<std::string*>(nullptr));
    REQUIRE(ok == std::vector<bool>{true, true});
    const std::string folder = tmp.path() + "/spool/queue/feedface";
    write_file(folder + "/feedface00000001.tmp", "stale temp");

    std::string error;
    REQUIRE(store.remove(m.envelopes[0], &error));
    CHECK(entries(folder) ==
          std::vector<std::string>{"feedface00000001.tmp", "feedface00000002", "feedface00000003", "message"});
    REQUIRE(store.remove(m.envelopes[2], &error));
    CHECK(fs::exists(folder + "/message"));
    REQUIRE(store.remove(m.envelopes[1], &error));
    CHECK_FALSE(fs::exists(folder));
    CHECK(entries(tmp.path() + "/spool/queue") == std::vector<std::string>{"00c0ffee"});
    auto loaded = store.load_all(nullptr);
    REQUIRE(loaded.size() == 1);
    CHECK(same(loaded[0], other.envelopes[0]));

    CHECK_FALSE(store.remove(m.envelopes[1], &error));
    CHECK(error == folder + ": open: No such file or directory");
    CHECK_FALSE(store.remove(envelope("00c0ffee", "00000002", "q@e.org"), &error));
    CHECK(error == tmp.path() + "/spool/queue/00c0ffee/00c0ffee00000002: unlink: No such file or directory");
    CHECK(fs::exists(tmp.path() + "/spool/queue/00c0ffee/message"));
}

TEST_CASE("open_message refuses a bad or unknown id", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    std::string error;
    CHECK(store.open_message("../../etc", &error) == -1);
    CHECK(error == "bad message id '../../etc'");
    CHECK(store.open_message("01234567", &error) == -1);
    CHECK(error == tmp.path() + "/spool/queue/01234567/message: open: No such file or directory");
}

TEST_CASE("unused_message_id returns a fresh id", "[store]") {
    TempDir tmp;
    Store store = open_store(tmp);
    std::string id = store.unused_message_id();
    CHECK(id.size() == 8);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK_FALSE(fs::exists(tmp.path() + "/spool/queue/" + id));
}

TEST_CASE("store: a message whose rest is in a file is committed whole, the file read from its start") {
    TempDir dir;
    Store store(dir.path());
    std::string error;
    REQUIRE(store.open(&error));
    // An unlinked temporary file in incoming/, as a session's MessageBuffer makes it.
    int fd = ::open((dir.path() + "/incoming").c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    auto file = std::make_shared<postern::util::Fd>(fd);
    std::string rest;
    for (int i = 0; i < 20000; ++i) rest += "line " + std::to_string(i) + " of a large message\n";
    REQUIRE(::write(fd, rest.data(), rest.size()) == static_cast<ssize_t>(rest.size()));  // its offset is now the end
    Store::Message m = message("0000abcd", 1, "Received: by test\n");
    m.file = file;
    std::vector<bool> ok;
    store.commit({&m}, ok, &error);
    REQUIRE(ok == std::vector<bool>{true});
    CHECK(read_file(store.message_path("0000abcd")) == "Received: by test\n" + rest);
    CHECK(entries(dir.path() + "/incoming").empty());
}
