// Unit tests for the spool (queue/store*.cpp) in a scratch folder under /tmp:
// commit, start-up replay, what a crash leaves, update, remove, failure
// isolation, journal segments, the earlier layout brought over.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "queue/journal.hpp"
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

std::unique_ptr<Store> open_store(const TempDir& tmp, std::uint64_t segment_bytes = 8 << 20) {
    auto store = std::make_unique<Store>(tmp.path() + "/spool", segment_bytes);
    std::string error;
    REQUIRE(store->open(&error));
    CHECK(error.empty());
    return store;
}

bool commit_one(Store& store, const Store::Message& m) {
    std::vector<bool> ok;
    std::string error;
    store.commit({&m}, ok, &error);
    INFO(error);
    return ok == std::vector<bool>{true};
}

std::string hex8(unsigned n) {
    char out[9];
    std::snprintf(out, sizeof out, "%08x", n);
    return out;
}

}  // namespace

TEST_CASE("open creates the spool folders with mode 0700", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    for (const char* sub : {"", "/incoming", "/messages", "/journal"}) {
        struct stat st;
        REQUIRE(::stat((tmp.path() + "/spool" + sub).c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
    }
    std::string error;
    CHECK(store->open(&error));  // again: existing folders are fine
}

TEST_CASE("open fails on a spool path that is a file", "[store]") {
    TempDir tmp;
    write_file(tmp.path() + "/spool", "x");
    Store store(tmp.path() + "/spool");
    std::string error;
    CHECK_FALSE(store.open(&error));
    CHECK(error == tmp.path() + "/spool: not a folder");
}

TEST_CASE("a committed batch is found whole after a restart", "[store]") {
    TempDir tmp;
    std::vector<Store::Message> msgs;
    msgs.push_back(message("00000001", 1, "Subject: one\n\nbody\n"));
    msgs.push_back(message("00000002", 3, "binary \0\r\n\xff bytes\n"s));
    msgs.push_back(message("0000000a", 2, std::string(300000, 'z')));
    msgs.push_back(message("ffffffff", 1, ""));
    {
        auto store = open_store(tmp);
        std::vector<const Store::Message*> batch;
        for (const auto& m : msgs) batch.push_back(&m);
        std::vector<bool> ok;
        std::string error;
        store->commit(batch, ok, &error);
        CHECK(ok == std::vector<bool>{true, true, true, true});
        CHECK(error.empty());
        CHECK(store->commit_calls() == 1);
    }
    const std::string spool = tmp.path() + "/spool";
    CHECK(entries(spool + "/incoming").empty());
    CHECK(entries(spool + "/messages") == std::vector<std::string>{"00000001", "00000002", "0000000a", "ffffffff"});
    CHECK(entries(spool + "/journal") == std::vector<std::string>{"0000000000000001"});  // one segment, one append
    CHECK(read_file(spool + "/journal/0000000000000001").starts_with("postern-journal 1\nE "));

    auto store = open_store(tmp);  // the next process
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    CHECK(errors.empty());
    REQUIRE(loaded.size() == 7);
    std::size_t k = 0;
    for (const auto& m : msgs)
        for (const auto& e : m.envelopes) CHECK(same(loaded[k++], e));
    for (const auto& m : msgs) {
        std::string why;
        int fd = store->open_message(m.msgid, &why);
        REQUIRE(fd >= 0);
        CHECK(read_fd(fd) == m.data);
        CHECK(store->message_path(m.msgid) == spool + "/messages/" + m.msgid);
    }
}

TEST_CASE("one failing message does not hurt the rest of the batch", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    auto good1 = message("11111111", 1, "one\n");
    auto twice = message("22222222", 2, "two\n");
    twice.envelopes[1].id = twice.envelopes[0].id;
    auto stranger = message("33333333", 1, "three\n");
    stranger.envelopes[0].msgid = "44444444";
    stranger.envelopes[0].id = "4444444400000001";
    auto good2 = message("55555555", 1, "five\n");
    auto bad_id = message("../x", 1, "six\n");
    std::vector<const Store::Message*> batch{&good1, &twice, &stranger, &good2, &bad_id};

    std::vector<bool> ok;
    std::vector<std::string> errors;
    store->commit(batch, ok, errors);
    CHECK(ok == std::vector<bool>{true, false, false, true, false});
    CHECK(errors[0].empty());
    CHECK(errors[1] == "envelope 2222222200000001 given twice");
    CHECK(errors[2] == "envelope 4444444400000001 does not belong to message 33333333");
    CHECK(errors[3].empty());
    CHECK(errors[4] == "bad message id '../x'");
    CHECK(entries(tmp.path() + "/spool/messages") == std::vector<std::string>{"11111111", "55555555"});

    std::string joined;
    store->commit(batch, ok, &joined);  // the ids are taken now: the good ones fail too
    CHECK(ok == std::vector<bool>{false, false, false, false, false});
    CHECK(joined.find(tmp.path() + "/spool/messages/11111111: create: File exists") != std::string::npos);
    CHECK(read_file(store->message_path("11111111")) == "one\n");
    CHECK(store->load_all(nullptr).size() == 2);
}

TEST_CASE("open clears sessions' leftovers in incoming/", "[store]") {
    TempDir tmp;
    { auto first = open_store(tmp); }
    const std::string spool = tmp.path() + "/spool";
    fs::create_directory(spool + "/incoming/deadbeef");
    write_file(spool + "/incoming/deadbeef/message", "half");
    write_file(spool + "/incoming/stray", "x");
    auto store = open_store(tmp);
    CHECK(entries(spool + "/incoming").empty());
}

TEST_CASE("load_all drops what a crash left half made, and says so", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    auto kept = message("0badf00d", 2, "data\n");
    auto short_file = message("5407f11e", 1, "the whole message\n");
    auto no_file = message("00f11e00", 1, "gone\n");
    {
        auto store = open_store(tmp);
        REQUIRE(commit_one(*store, kept));
        REQUIRE(commit_one(*store, short_file));
        REQUIRE(commit_one(*store, no_file));
    }
    // A commit cut short: the records reached the disk, a message file did
    // not (or not whole); a file whose records never made it; a write cut
    // short at the end of the segment; a file that is not ours.
    write_file(spool + "/messages/5407f11e", "the whole");
    fs::remove(spool + "/messages/00f11e00");
    write_file(spool + "/messages/0123abcd", "orphan");
    write_file(spool + "/messages/README", "mine");
    std::string segment = spool + "/journal/0000000000000001";
    std::string text = read_file(segment);
    write_file(segment, text + "E 400 01234567 5\nversion: 1\nid: ");

    auto store = open_store(tmp);
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    REQUIRE(loaded.size() == 2);
    CHECK(same(loaded[0], kept.envelopes[0]));
    CHECK(same(loaded[1], kept.envelopes[1]));
    std::sort(errors.begin(), errors.end());
    CHECK(errors == std::vector<std::string>{
                        segment + ": offset " + std::to_string(text.size()) +
                            ": record cut short (a write cut short when its process stopped); the rest ignored",
                        spool + "/messages/00f11e00: missing or not 5 bytes long (a commit cut short, never "
                                "acknowledged): its envelopes are dropped",
                        spool + "/messages/5407f11e: missing or not 18 bytes long (a commit cut short, never "
                                "acknowledged): its envelopes are dropped",
                        spool + "/messages/README: not a message of ours, left alone",
                    });
    CHECK(entries(spool + "/messages") == std::vector<std::string>{"0badf00d", "README"});
}

TEST_CASE("a damaged record is skipped, the rest of its segment read", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    auto first = message("10000000", 1, "one\n");
    auto second = message("20000000", 1, "two\n");
    auto third = message("30000000", 1, "three\n");
    {
        auto store = open_store(tmp);
        REQUIRE(commit_one(*store, first));
        REQUIRE(commit_one(*store, second));
        REQUIRE(commit_one(*store, third));
    }
    std::string segment = spool + "/journal/0000000000000001";
    std::string text = read_file(segment);
    std::size_t at = text.find("rcpt: r0@example.org", text.find("id: 2000000000000001"));
    REQUIRE(at != std::string::npos);
    text[at + 6] = 'X';  // the second record's payload no longer matches its CRC
    write_file(segment, text);
    auto store = open_store(tmp);
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    REQUIRE(loaded.size() == 2);
    CHECK(loaded[0].id == "1000000000000001");
    CHECK(loaded[1].id == "3000000000000001");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find(segment + ": offset ") == 0);
    CHECK(errors[0].ends_with(": CRC mismatch, record skipped"));
    CHECK_FALSE(fs::exists(spool + "/messages/20000000"));  // no record names it now
}

TEST_CASE("a batch larger than the descriptor budget commits whole", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::vector<Store::Message> msgs;
    for (unsigned n = 0; n < 300; ++n)
        msgs.push_back(message(hex8(n * 7919u), 2, "message " + std::to_string(n) + "\n"));
    std::vector<const Store::Message*> batch;
    for (const auto& m : msgs) batch.push_back(&m);
    std::vector<bool> ok;
    std::vector<std::string> errors;
    std::size_t fds_before = entries("/proc/self/fd").size();
    store->commit(batch, ok, errors);  // 300 files to sync
    CHECK(std::count(ok.begin(), ok.end(), true) == 300);
    // The journal's segment and folder stay open; nothing else.
    CHECK(entries("/proc/self/fd").size() <= fds_before + 3);
    CHECK(store->load_all(nullptr).size() == 600);
    CHECK(read_file(store->message_path(msgs[299].msgid)) == "message 299\n");
}

TEST_CASE("update rewrites an envelope, the latest record wins", "[store]") {
    TempDir tmp;
    auto m = message("abcdef01", 2, "data\n");
    Envelope e = m.envelopes[1];
    e.retry = 3;
    e.last_try = 1700000400;
    e.next_try = 1700003600;
    e.errorline = "421 4.4.2 timeout\r\nfake: line";
    {
        auto store = open_store(tmp);
        REQUIRE(commit_one(*store, m));
        std::string error;
        REQUIRE(store->update(e, &error));
        CHECK(error.empty());

        Envelope gone = envelope("abcdef01", "0000000f", "z@example.org");
        CHECK_FALSE(store->update(gone, &error));
        CHECK(error == "envelope abcdef010000000f is not queued");
        Envelope bad = e;
        bad.id = "abcdef01/../../x";
        CHECK_FALSE(store->update(bad, &error));
        CHECK(error == "bad envelope id 'abcdef01/../../x' / msgid 'abcdef01'");
    }
    auto store = open_store(tmp);
    auto loaded = store->load_all(nullptr);
    REQUIRE(loaded.size() == 2);
    CHECK(same(loaded[0], m.envelopes[0]));
    CHECK(same(loaded[1], e));
}

TEST_CASE("remove deletes the message file with its last envelope", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    auto m = message("feedface", 3, "data\n");
    auto other = message("00c0ffee", 1, "other\n");
    {
        auto store = open_store(tmp);
        std::vector<bool> ok;
        store->commit({&m, &other}, ok, static_cast<std::string*>(nullptr));
        REQUIRE(ok == std::vector<bool>{true, true});
        REQUIRE(store->load_all(nullptr).size() == 4);
        std::string error;
        REQUIRE(store->remove(m.envelopes[0], &error));
        REQUIRE(store->remove(m.envelopes[2], &error));
        CHECK(fs::exists(spool + "/messages/feedface"));
        REQUIRE(store->remove(m.envelopes[1], &error));
        CHECK_FALSE(fs::exists(spool + "/messages/feedface"));
        CHECK(entries(spool + "/messages") == std::vector<std::string>{"00c0ffee"});

        CHECK_FALSE(store->remove(m.envelopes[1], &error));  // removed twice
        CHECK(error == "envelope feedface00000002 is not queued");
        CHECK_FALSE(store->remove(envelope("00c0ffee", "00000002", "q@e.org"), &error));
        CHECK(error == "envelope 00c0ffee00000002 is not queued");
        CHECK(fs::exists(spool + "/messages/00c0ffee"));
    }
    auto store = open_store(tmp);
    auto loaded = store->load_all(nullptr);
    REQUIRE(loaded.size() == 1);
    CHECK(same(loaded[0], other.envelopes[0]));
}

TEST_CASE("a process that empties its queue leaves no journal behind", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    auto m = message("0000beef", 2, "data\n");
    {
        auto store = open_store(tmp);
        REQUIRE(commit_one(*store, m));
        REQUIRE(store->load_all(nullptr).size() == 2);
        std::vector<std::string> errors;
        REQUIRE(store->remove(m.envelopes, &errors));
        CHECK_FALSE(entries(spool + "/journal").empty());
    }
    CHECK(entries(spool + "/journal").empty());
    CHECK(entries(spool + "/messages").empty());
}

TEST_CASE("journal segments: the dead go, the oldest's live envelopes are carried over", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    // 2 KiB segments: a few envelopes each.
    auto keeper = message("0000000f", 1, "stays queued\n");
    Envelope kept_version = keeper.envelopes[0];
    {
        auto store = open_store(tmp, 2048);
        REQUIRE(store->load_all(nullptr).empty());
        REQUIRE(commit_one(*store, keeper));
        for (unsigned n = 1; n <= 200; ++n) {
            auto m = message(hex8(0x100 + n), 1, "message\n");
            REQUIRE(commit_one(*store, m));
            std::vector<std::string> errors;
            REQUIRE(store->remove(m.envelopes, &errors));
            if (n == 100) {
                kept_version.retry = 7;
                REQUIRE(store->update(kept_version, nullptr));
            }
            // The journal stays a few segments long, whatever went through it.
            REQUIRE(entries(spool + "/journal").size() <= 6);
        }
        CHECK(entries(spool + "/messages") == std::vector<std::string>{"0000000f"});
    }
    auto store = open_store(tmp, 2048);
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    CHECK(errors.empty());
    REQUIRE(loaded.size() == 1);
    CHECK(same(loaded[0], kept_version));
    CHECK(entries(spool + "/journal").size() <= 6);
    CHECK_FALSE(fs::exists(spool + "/journal/0000000000000001"));  // carried over, then deleted
}

TEST_CASE("segments of a process that has not loaded the queue are left alone", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    auto old_mail = message("000001d0", 1, "old\n");
    auto new_mail = message("0000ae00", 1, "new\n");
    auto holder = open_store(tmp);
    REQUIRE(commit_one(*holder, old_mail));
    REQUIRE(holder->load_all(nullptr).size() == 1);
    {
        // A reload's successor commits before it holds the lock.
        auto successor = open_store(tmp);
        REQUIRE(commit_one(*successor, new_mail));
    }
    std::vector<std::string> errors;
    REQUIRE(holder->remove(old_mail.envelopes, &errors));
    holder.reset();  // its queue is empty: its segments go, up to the successor's
    CHECK(entries(spool + "/journal") == std::vector<std::string>{"0000000000000002", "0000000000000003"});
    auto next = open_store(tmp);
    auto loaded = next->load_all(nullptr);
    REQUIRE(loaded.size() == 1);
    CHECK(same(loaded[0], new_mail.envelopes[0]));
}

TEST_CASE("a spool of the earlier layout is brought over", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    { auto first = open_store(tmp); }
    auto m = message("12345678", 2, "from before\n");
    fs::create_directories(spool + "/queue/12345678");
    write_file(spool + "/queue/12345678/message", m.data);
    for (const auto& e : m.envelopes) write_file(spool + "/queue/12345678/" + e.id, encode(e));
    fs::create_directories(spool + "/queue/87654321");  // a message without envelopes
    write_file(spool + "/queue/87654321/message", "orphan");
    {
        auto store = open_store(tmp);
        std::vector<std::string> errors;
        auto loaded = store->load_all(&errors);
        REQUIRE(loaded.size() == 2);
        CHECK(same(loaded[0], m.envelopes[0]));
        CHECK(same(loaded[1], m.envelopes[1]));
        CHECK(errors == std::vector<std::string>{spool + "/queue/87654321: message without envelopes, left alone"});
        CHECK(entries(spool + "/queue") == std::vector<std::string>{"87654321"});
        CHECK(read_file(store->message_path("12345678")) == "from before\n");
    }
    auto store = open_store(tmp);
    CHECK(store->load_all(nullptr).size() == 2);
}

TEST_CASE("open_message refuses a bad or unknown id", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::string error;
    CHECK(store->open_message("../../etc", &error) == -1);
    CHECK(error == "bad message id '../../etc'");
    CHECK(store->open_message("01234567", &error) == -1);
    CHECK(error == tmp.path() + "/spool/messages/01234567: open: No such file or directory");
}

TEST_CASE("unused_message_id returns a fresh id", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::string id = store->unused_message_id();
    CHECK(id.size() == 8);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK_FALSE(fs::exists(store->message_path(id)));
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
    REQUIRE(commit_one(store, m));
    CHECK(read_file(store.message_path("0000abcd")) == "Received: by test\n" + rest);
    CHECK(entries(dir.path() + "/incoming").empty());
}

TEST_CASE("a large queue that stays is carried over no faster than new records come", "[store]") {
    TempDir tmp;
    const std::string spool = tmp.path() + "/spool";
    {
        auto first = open_store(tmp, 2048);  // about four envelopes a segment
        for (unsigned n = 1; n <= 40; ++n) REQUIRE(commit_one(*first, message(hex8(n), 1, "stays\n")));
    }
    std::vector<std::string> before = entries(spool + "/journal");
    REQUIRE(before.size() >= 8);
    auto store = open_store(tmp, 2048);
    REQUIRE(store->load_all(nullptr).size() == 40);
    for (unsigned n = 1; n <= 4; ++n) REQUIRE(commit_one(*store, message(hex8(0x1000 + n), 1, "new\n")));
    // Four new records are less than a segment: one old segment carried over
    // (when the first of them started a segment), not one per commit.
    std::vector<std::string> after = entries(spool + "/journal");
    std::size_t gone = 0;
    for (const auto& name : before) gone += std::find(after.begin(), after.end(), name) == after.end();
    CHECK(gone == 1);
    auto next = open_store(tmp, 2048);
    CHECK(next->load_all(nullptr).size() == 44);
}

TEST_CASE("messages kept compressed and encrypted are framed on disk and read back whole", "[store]") {
    TempDir tmp;
    AtRest both;
    both.compress = true;
    both.key.emplace();
    both.key->fill(0x5a);
    std::string rest;
    for (int i = 0; i < 20000; ++i) rest += "line " + std::to_string(i) + " of a large message\n";
    Store::Message small = message("00000001", 2, "Subject: secret plans\n\nbody\n");
    Store::Message large = message("00000002", 1, "Received: by test\n");
    {
        auto store = open_store(tmp);
        store->set_at_rest(both);
        int fd = ::open((tmp.path() + "/spool/incoming").c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        large.file = std::make_shared<postern::util::Fd>(fd);
        REQUIRE(::write(fd, rest.data(), rest.size()) == static_cast<ssize_t>(rest.size()));
        REQUIRE(commit_one(*store, small));
        REQUIRE(commit_one(*store, large));
    }
    const std::string messages = tmp.path() + "/spool/messages/";
    std::string on_disk = read_file(messages + "00000001");
    CHECK(on_disk.starts_with(kFrameMagic));
    CHECK(on_disk.find("secret plans") == std::string::npos);
    CHECK(read_file(messages + "00000002").size() < rest.size() / 3);  // compressed

    // The next process, with compression switched off: the files stay readable,
    // and the journal's sizes are those of the files on disk (nothing dropped).
    auto store = open_store(tmp);
    AtRest key_only = both;
    key_only.compress = false;
    store->set_at_rest(key_only);
    std::vector<std::string> errors;
    CHECK(store->load_all(&errors).size() == 3);
    CHECK(errors.empty());
    std::string why;
    CHECK(read_fd(store->open_message("00000001", &why)) == small.data);
    CHECK(read_fd(store->open_message("00000002", &why)) == large.data + rest);
    // Without the key, it is refused with the reason, never read garbled.
    store->set_at_rest(AtRest{});
    CHECK(store->open_message("00000001", &why) == -1);
    CHECK(why == messages + "00000001: encrypted, and no queue encryption key is set");
}

TEST_CASE("a plain message that starts like a framed file is kept framed and read back as sent", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::string data = std::string(kFrameMagic) + "\x01\x03 a client sent this\n";
    REQUIRE(commit_one(*store, message("00000003", 1, data)));
    CHECK(read_file(tmp.path() + "/spool/messages/00000003").size() == kFrameHeader + data.size());
    std::string why;
    CHECK(read_fd(store->open_message("00000003", &why)) == data);
}

TEST_CASE("message_id_free: a queued message's id is taken until its last envelope goes", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::vector<std::string> errors;
    store->load_all(&errors);  // this process holds the queue: its index is whole
    CHECK(store->message_id_free("0000abcd"));
    Store::Message m = message("0000abcd", 2, "Subject: x\n\nbody\n");
    REQUIRE(commit_one(*store, m));
    CHECK_FALSE(store->message_id_free("0000abcd"));
    CHECK(store->message_id_free("0000abce"));
    CHECK_FALSE(store->message_id_free("not-hex!"));
    std::string why;
    REQUIRE(store->remove(m.envelopes[0], &why));
    CHECK_FALSE(store->message_id_free("0000abcd"));
    REQUIRE(store->remove(m.envelopes[1], &why));
    CHECK(store->message_id_free("0000abcd"));
}

TEST_CASE("quarantine sets a message and its envelopes aside, out of the queue, and lists them", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp);
    std::vector<std::string> errors;
    store->load_all(&errors);
    Store::Message m = message("0000beef", 2, "Subject: damaged\n\nbody\n");
    REQUIRE(commit_one(*store, m));
    std::string why;
    REQUIRE(store->quarantine(m.envelopes[0], &why));
    const std::string spool = tmp.path() + "/spool";
    CHECK(read_file(spool + "/quarantine/0000beef") == m.data);
    CHECK(read_file(spool + "/messages/0000beef") == m.data);  // its other envelope is still queued
    REQUIRE(store->quarantine(m.envelopes[1], &why));
    CHECK(entries(spool + "/messages").empty());
    CHECK(entries(spool + "/quarantine") == std::vector<std::string>{"0000beef", "0000beef.envelopes"});
    auto listed = store->quarantined(&why);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].msgid == "0000beef");
    CHECK(listed[0].envelopes == 2);
    CHECK(listed[0].size == m.data.size());
    // The envelopes kept are whole journal records: they can be read back.
    std::string text = read_file(spool + "/quarantine/0000beef.envelopes");
    CHECK(text.starts_with("postern-journal 1\nE "));
    CHECK(text.find("r1@example.org") != std::string::npos);
    // Gone from the queue for the next process, and not deleted by it.
    auto next = open_store(tmp);
    CHECK(next->load_all(&errors).empty());
    CHECK(entries(spool + "/quarantine").size() == 2);
}

TEST_CASE("with a queue key, the first start writes key-check and a later start with another key is refused",
          "[store]") {
    TempDir tmp;
    AtRest one, other;
    one.key.emplace();
    one.key->fill(1);
    other.key.emplace();
    other.key->fill(2);
    {
        Store store(tmp.path() + "/spool");
        store.set_at_rest(one);
        std::string error;
        REQUIRE(store.open(&error));
    }
    const std::string check = tmp.path() + "/spool/key-check";
    CHECK(read_file(check).starts_with(kFrameMagic));
    std::string why;
    CHECK(key_opens(tmp.path() + "/spool", one, &why));
    CHECK_FALSE(key_opens(tmp.path() + "/spool", other, &why));
    CHECK(why.starts_with("the queue key does not open " + check +
                          " (does not decrypt with this key (a wrong key, or the file was changed)): the queue was "
                          "written with another key."));
    Store again(tmp.path() + "/spool");
    again.set_at_rest(other);
    std::string error;
    CHECK_FALSE(again.open(&error));
    CHECK(error == why);
    // Without encryption the file is not looked at; no file, no check.
    Store plain(tmp.path() + "/spool");
    CHECK(plain.open(&error));
    CHECK(key_opens(tmp.path() + "/nowhere", other, &why));
}

namespace {

AtRest with_key(unsigned char fill) {
    AtRest how;
    how.key.emplace();
    how.key->fill(fill);
    return how;
}

// A store that seals with key 7 (with_key).
std::unique_ptr<Store> keyed_store(const TempDir& tmp, std::uint64_t segment_bytes = 8 << 20) {
    auto store = open_store(tmp, segment_bytes);
    store->set_at_rest(with_key(7));
    return store;
}

// Every journal segment's bytes, one after the other.
std::string journal_text(const TempDir& tmp) {
    std::string all;
    for (const auto& name : entries(tmp.path() + "/spool/journal"))
        all += read_file(tmp.path() + "/spool/journal/" + name);
    return all;
}

// Rewrites every segment with `change` applied to each record, each CRC made
// good again: what someone who can write the spool but lacks the key can do.
void rewrite_journal(const TempDir& tmp, const std::function<void(journal::Record&, std::string&)>& change) {
    for (const auto& name : entries(tmp.path() + "/spool/journal")) {
        const std::string path = tmp.path() + "/spool/journal/" + name;
        const std::string text = read_file(path);
        std::string out(journal::kMagic);
        journal::Reader reader(text);
        for (journal::Record r; reader.next(r);) {
            std::string payload(r.payload);
            change(r, payload);
            journal::append(out, r.op, r.size, payload);
        }
        write_file(path, out);
    }
}

}  // namespace

TEST_CASE("with a queue key the journal's envelopes are sealed, and read back whole with it", "[store]") {
    TempDir tmp;
    Store::Message m = message("0000c0de", 2, "Subject: x\n\nbody\n");
    {
        auto store = keyed_store(tmp);
        REQUIRE(commit_one(*store, m));
    }
    const std::string text = journal_text(tmp);
    CHECK(text.find("\nS ") != std::string::npos);
    CHECK(text.find("\nE ") == std::string::npos);
    CHECK(text.find("example.org") == std::string::npos);       // no address in clear
    CHECK(text.find("0000c0de00000001") != std::string::npos);  // the ids are
    auto store = keyed_store(tmp);
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    CHECK(errors.empty());
    REQUIRE(loaded.size() == 2);
    CHECK(same(loaded[0], m.envelopes[0]));
    CHECK(same(loaded[1], m.envelopes[1]));
    // A rewrite is sealed too, and wins.
    Envelope retried = loaded[1];
    retried.retry = 3;
    retried.errorline = "451 try later";
    std::string why;
    REQUIRE(store->update(retried, &why));
    auto next = keyed_store(tmp);
    auto again = next->load_all(&errors);
    REQUIRE(again.size() == 2);
    CHECK(same(again[1], retried));
    CHECK(journal_text(tmp).find("451 try later") == std::string::npos);
}

TEST_CASE("a sealed envelope changed on disk is set aside at start-up, once, and the rest loaded", "[store]") {
    TempDir tmp;
    Store::Message good = message("00000aaa", 1, "Subject: good\n\nbody\n");
    Store::Message bad = message("00000bbb", 1, "Subject: bad\n\nbody\n");
    {
        auto store = keyed_store(tmp);
        REQUIRE(commit_one(*store, good));
        REQUIRE(commit_one(*store, bad));
    }
    SECTION("a byte of its sealed text") {
        rewrite_journal(tmp, [](journal::Record& r, std::string& payload) {
            if (journal::envelope_id(r) == "00000bbb00000001") payload[30] ^= 1;
        });
    }
    SECTION("its size, to pass another file off as its message") {
        rewrite_journal(tmp, [](journal::Record& r, std::string&) {
            if (journal::envelope_id(r) == "00000bbb00000001") r.size += 1;
        });
    }
    SECTION("another envelope's sealed text under its id") {
        std::string stolen;
        rewrite_journal(tmp, [&](journal::Record& r, std::string& payload) {
            if (journal::envelope_id(r) == "00000aaa00000001") stolen = payload.substr(16);
            else payload = "00000bbb00000001" + stolen;
        });
    }
    const std::string spool = tmp.path() + "/spool";
    auto store = keyed_store(tmp);
    std::vector<std::string> errors;
    auto loaded = store->load_all(&errors);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].id == "00000aaa00000001");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("envelope 00000bbb00000001: ") != std::string::npos);
    CHECK(errors[0].ends_with(": set aside in " + spool + "/quarantine/"));
    CHECK(entries(spool + "/quarantine") == std::vector<std::string>{"00000bbb", "00000bbb.envelopes"});
    std::string why;
    postern::util::Fd set_aside(::open((spool + "/quarantine/00000bbb").c_str(), O_RDONLY | O_CLOEXEC));
    postern::util::Fd plain = open_plain(std::move(set_aside), with_key(7), &why);
    REQUIRE(plain);
    CHECK(read_fd(plain.release()) == bad.data);
    CHECK(entries(spool + "/messages") == std::vector<std::string>{"00000aaa"});
    auto listed = store->quarantined(&why);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].envelopes == 1);
    // Out of the journal: the next start does not set it aside again.
    auto next = keyed_store(tmp);
    errors.clear();
    CHECK(next->load_all(&errors).size() == 1);
    CHECK(errors.empty());
    CHECK(next->quarantined(&why).at(0).envelopes == 1);
}

TEST_CASE("without the key, sealed envelopes are left in the journal, never set aside", "[store]") {
    TempDir tmp;
    {
        auto store = keyed_store(tmp);
        REQUIRE(commit_one(*store, message("00000ccc", 2, "Subject: x\n\nbody\n")));
    }
    const std::string spool = tmp.path() + "/spool";
    {
        Store store(spool);
        std::string error;
        REQUIRE(store.open(&error));
        std::vector<std::string> errors;
        CHECK(store.load_all(&errors).empty());
        REQUIRE(errors.size() == 2);
        CHECK(errors[0].ends_with(": left in the journal until `queue encryption` has its key again"));
        CHECK_FALSE(fs::exists(spool + "/quarantine"));
        CHECK(entries(spool + "/messages") == std::vector<std::string>{"00000ccc"});  // kept for them
        CHECK_FALSE(store.message_id_free("00000ccc"));
    }
    auto store = keyed_store(tmp);
    std::vector<std::string> errors;
    CHECK(store->load_all(&errors).size() == 2);
    CHECK(errors.empty());
}

TEST_CASE("encryption switched off: old sealed envelopes read with the key, new ones written plain", "[store]") {
    TempDir tmp;
    Store::Message old_one = message("00000ddd", 1, "Subject: old\n\nbody\n");
    Store::Message new_one = message("00000eee", 1, "Subject: new\n\nbody\n");
    {
        auto store = keyed_store(tmp);
        REQUIRE(commit_one(*store, old_one));
    }
    AtRest reading = with_key(7);
    reading.key_reads_only = true;
    auto store = open_store(tmp);
    store->set_at_rest(reading);
    std::vector<std::string> errors;
    CHECK(store->load_all(&errors).size() == 1);
    REQUIRE(commit_one(*store, new_one));
    CHECK(read_file(tmp.path() + "/spool/messages/00000eee") == new_one.data);
    CHECK(journal_text(tmp).find("r0@example.org") != std::string::npos);  // the new envelope, plain
    std::string why;
    CHECK(read_fd(store->open_message("00000ddd", &why)) == old_one.data);
    auto next = open_store(tmp);
    next->set_at_rest(reading);
    CHECK(next->load_all(&errors).size() == 2);
    CHECK(errors.empty());
}

TEST_CASE("sealed envelopes are carried over to new segments as they are", "[store]") {
    TempDir tmp;
    std::vector<Store::Message> batch;
    for (unsigned i = 1; i <= 60; ++i) batch.push_back(message(hex8(0x100 + i), 1, "Subject: x\n\nbody\n"));
    {
        auto store = keyed_store(tmp, 2048);
        std::vector<std::string> errors;
        store->load_all(&errors);
        for (const auto& m : batch) REQUIRE(commit_one(*store, m));
        std::string why;
        for (std::size_t i = 0; i < batch.size(); i += 2) REQUIRE(store->remove(batch[i].envelopes[0], &why));
        for (unsigned i = 1; i <= 60; ++i)
            REQUIRE(commit_one(*store, message(hex8(0x200 + i), 1, "Subject: y\n\nb\n")));
    }
    CHECK(journal_text(tmp).find("\nE ") == std::string::npos);
    auto store = keyed_store(tmp, 2048);
    std::vector<std::string> errors;
    CHECK(store->load_all(&errors).size() == 90);
    CHECK(errors.empty());
}

TEST_CASE("release brings a message back from quarantine once it decodes, refuses it before", "[store]") {
    TempDir tmp;
    auto store = keyed_store(tmp);
    std::vector<std::string> errors;
    store->load_all(&errors);
    Store::Message m = message("0000f00d", 2, "Subject: back\n\nbody\n");
    REQUIRE(commit_one(*store, m));
    const std::string spool = tmp.path() + "/spool";
    const std::string good = read_file(spool + "/messages/0000f00d");
    std::string why;
    REQUIRE(store->quarantine(m.envelopes[0], &why));
    REQUIRE(store->quarantine(m.envelopes[1], &why));
    std::vector<Envelope> back;
    // Changed on disk: refused, left where it is.
    std::string changed = good;
    changed[changed.size() / 2] ^= 1;
    write_file(spool + "/quarantine/0000f00d", changed);
    CHECK_FALSE(store->release("0000f00d", back, &why));
    CHECK(why == spool + "/quarantine/0000f00d: does not decrypt with this key (a wrong key, or the file was changed); "
                         "left in quarantine");
    CHECK(back.empty());
    CHECK(store->quarantined(&why).size() == 1);
    CHECK_FALSE(store->release("0000beef", back, &why));
    CHECK(why == "no message 0000beef in quarantine");
    CHECK_FALSE(store->release("../x", back, &why));
    // Its bytes restored: back in the queue with both envelopes, out of quarantine/.
    write_file(spool + "/quarantine/0000f00d", good);
    REQUIRE(store->release("0000f00d", back, &why));
    REQUIRE(back.size() == 2);
    CHECK(back[0].id == m.envelopes[0].id);
    CHECK(back[1].rcpt == m.envelopes[1].rcpt);
    CHECK(entries(spool + "/quarantine").empty());
    CHECK(store->quarantined(&why).empty());
    CHECK_FALSE(store->message_id_free("0000f00d"));
    CHECK(read_fd(store->open_message("0000f00d", &why)) == m.data);
    auto next = keyed_store(tmp);
    CHECK(next->load_all(&errors).size() == 2);
    CHECK(errors.empty());
}

TEST_CASE("release refuses a message whose envelope does not decode, and an id in use", "[store]") {
    TempDir tmp;
    auto store = keyed_store(tmp);
    std::vector<std::string> errors;
    store->load_all(&errors);
    Store::Message m = message("0000abba", 1, "Subject: x\n\nbody\n");
    REQUIRE(commit_one(*store, m));
    std::string why;
    REQUIRE(store->quarantine(m.envelopes[0], &why));
    std::vector<Envelope> back;
    SECTION("an envelope sealed with another key") {
        store->set_at_rest(with_key(8));
        CHECK_FALSE(store->release("0000abba", back, &why));
        CHECK(
            why.ends_with(".envelopes: envelope 0000abba00000001: does not decrypt (another key, or changed); left in "
                          "quarantine"));
    }
    SECTION("a message of that id queued meanwhile") {
        REQUIRE(commit_one(*store, message("0000abba", 1, "Subject: another\n\nbody\n")));
        CHECK_FALSE(store->release("0000abba", back, &why));
        CHECK(why == "message id 0000abba is in use in the queue; left in quarantine");
    }
    CHECK(back.empty());
    CHECK(store->quarantined(&why).size() == 1);
}
