// tests/unit/plugins/maildir_batch_test.cpp — delivery-maildir.so's
// deliver_batch: a batch to one maildir lands byte-exact, each result is
// reported once, and a delivery that fails (too large for its limit, a
// folder it may not write, a bad path) fails alone.
#include <signal.h>
#include <sys/resource.h>

#include <set>

#include "support.hpp"

namespace {

const postern::util::DeliveryPlugin& maildir() {
    static auto p = test::load_delivery("maildir");
    return p;
}

// What a batch call gave back: each result, and how often each was reported.
struct BatchOutcome {
    std::vector<postern_delivery_result> results;
    std::vector<int> reports;
};

struct Reports {
    postern_delivery_batch abi{};
    std::vector<int>* counts;
    bool heard = true;  // what report() answers: false as an agent whose daemon has gone
};

int count_report(const postern_delivery_batch* b, size_t i) {
    auto* r = static_cast<Reports*>(b->agent);
    if (i < r->counts->size()) ++(*r->counts)[i];
    return r->heard ? POSTERN_OK : POSTERN_TEMPFAIL;
}

// Each message on a descriptor of its own, as the agent passes them.
std::vector<postern::util::Fd> message_fds(const test::TempDir& dir, const std::vector<std::string>& messages) {
    std::vector<postern::util::Fd> fds;
    for (const auto& m : messages) fds.push_back(test::message_fd(dir, m));
    return fds;
}

// Runs `requests` (each with its message) through deliver_batch in one call.
BatchOutcome deliver_batch(const std::vector<test::Request>& requests, const std::vector<postern::util::Fd>& fds,
                           bool heard = true) {
    auto batch = maildir()->deliver_batch;
    REQUIRE(POSTERN_HAS_MEMBER(&maildir().api(), postern_delivery_plugin, deliver_batch));
    REQUIRE(batch);
    std::vector<postern_delivery_request> reqs;
    for (size_t i = 0; i < requests.size(); ++i) reqs.push_back(test::request_of(requests[i], fds[i].get()));
    BatchOutcome out;
    out.results.resize(reqs.size());
    out.reports.assign(reqs.size(), 0);
    std::vector<const postern_delivery_request*> req_ptrs;
    std::vector<postern_delivery_result*> res_ptrs;
    for (size_t i = 0; i < reqs.size(); ++i) {
        out.results[i].struct_size = sizeof out.results[i];
        out.results[i].status = -1;  // as the agent prepares it: no status
        req_ptrs.push_back(&reqs[i]);
        res_ptrs.push_back(&out.results[i]);
    }
    Reports reports;
    reports.abi.struct_size = sizeof reports.abi;
    reports.abi.time_limit_ms = 600000;
    reports.abi.report = count_report;
    reports.abi.agent = &reports;
    reports.counts = &out.reports;
    reports.heard = heard;
    batch(&reports.abi, req_ptrs.data(), req_ptrs.size(), res_ptrs.data());
    return out;
}

std::string header_for(const test::Request& r) {
    return "Return-Path: <" + r.sender + ">\nDelivered-To: " + r.dest + "\n";
}

// The files of DIR/new, as a multiset of their contents.
std::multiset<std::string> contents(const std::string& maildir) {
    std::multiset<std::string> out;
    for (const auto& name : test::list_dir(maildir + "/new")) out.insert(test::read_file(maildir + "/new/" + name));
    return out;
}

// "STATUS TEXT" of each result, one per line, for a child to bring back.
std::string summary(const BatchOutcome& o) {
    std::string out;
    for (size_t i = 0; i < o.results.size(); ++i)
        out += std::to_string(o.results[i].status) + " " + std::to_string(o.reports[i]) + " " + o.results[i].text +
               "\n";
    return out;
}

}  // namespace

TEST_CASE("maildir batch: every message of a batch to one maildir lands byte-exact, each reported once") {
    test::TempDir dir;
    std::vector<test::Request> reqs;
    std::vector<std::string> messages;
    std::multiset<std::string> want;
    for (int i = 0; i < 24; ++i) {
        test::Request r;
        r.path = dir / "Maildir";
        r.sender = i % 5 == 0 ? "" : "sender" + std::to_string(i) + "@example.org";
        r.dest = "rcpt" + std::to_string(i) + "@example.com";
        std::string m = "Subject: message " + std::to_string(i) + "\n\n";
        if (i == 7)
            while (m.size() < 300000) m += "a long body line of message seven, " + std::to_string(m.size()) + "\n";
        else if (i == 8) m = "Subject: no body";
        else m += "body of " + std::to_string(i) + "\n";
        want.insert(header_for(r) + m);
        reqs.push_back(r);
        messages.push_back(m);
    }
    auto out = deliver_batch(reqs, message_fds(dir, messages));
    for (size_t i = 0; i < reqs.size(); ++i) {
        INFO("delivery " << i << ": " << out.results[i].text);
        CHECK(out.results[i].status == POSTERN_OK);
        CHECK(out.reports[i] == 1);
    }
    CHECK(contents(dir / "Maildir") == want);
    CHECK(test::list_dir(dir / "Maildir/tmp").empty());
    CHECK(test::list_dir(dir / "Maildir/cur").empty());
}

TEST_CASE("maildir batch: junk goes to .Junk within the batch, other folders get theirs") {
    test::TempDir dir;
    test::Request inbox, junk, other;
    inbox.path = junk.path = dir / "Maildir";
    inbox.options = junk.options = "junk";
    other.path = dir / "Other";
    const std::string ham = "Subject: hi\n\nhello\n", spam = "Subject: buy\nX-Spam: yes\n\nnow\n";
    auto out = deliver_batch({inbox, junk, other, inbox}, message_fds(dir, {ham, spam, ham, ham}));
    for (const auto& r : out.results) CHECK(r.status == POSTERN_OK);
    CHECK(contents(dir / "Maildir") == std::multiset<std::string>{header_for(inbox) + ham, header_for(inbox) + ham});
    CHECK(contents(dir / "Maildir/.Junk") == std::multiset<std::string>{header_for(junk) + spam});
    CHECK(contents(dir / "Other") == std::multiset<std::string>{header_for(other) + ham});
}

TEST_CASE("maildir batch: a delivery that fails fails alone, with its own reason") {
    test::TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    std::string md = dir / "Maildir", locked = dir / "locked";
    for (const char* sub : {"", "/cur", "/new", "/tmp"}) REQUIRE(::mkdir((md + sub).c_str(), 0700) == 0);
    REQUIRE(::mkdir(locked.c_str(), 0555) == 0);
    // The maildir belongs to the user the child becomes; `locked` does not.
    const struct passwd* pw = ::getpwnam("nobody");
    uid_t uid = pw ? pw->pw_uid : 65534;
    gid_t gid = pw ? pw->pw_gid : 65534;
    if (::geteuid() == 0)
        for (const char* sub : {"", "/cur", "/new", "/tmp"}) REQUIRE(::chown((md + sub).c_str(), uid, gid) == 0);

    test::Request ok, denied, relative;
    ok.path = md;
    denied.path = locked + "/Maildir";
    relative.path = "relative/Maildir";
    std::string small = "Subject: small\n\nfits\n";
    std::string big = "Subject: big\n\n" + std::string(200000, 'x') + "\n";  // over the child's file size limit
    std::vector<test::Request> reqs = {ok, ok, denied, ok, relative, ok};
    std::vector<std::string> messages = {small, big, small, small, small, small};
    maildir();  // loaded as root: the build tree may be a checkout under a 0700 home
    auto fds = message_fds(dir, messages);
    auto child = test::in_child([&] {
        if (!test::drop_privileges()) return test::Outcome{-2, "cannot drop privileges"};
        ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
        rlimit limit{100000, 100000};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return test::Outcome{-2, "cannot set RLIMIT_FSIZE"};
        return test::Outcome{0, summary(deliver_batch(reqs, fds))};
    });
    REQUIRE(child.status == 0);
    std::vector<std::string> lines;
    std::istringstream in(child.error);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    REQUIRE(lines.size() == 6);
    // status, times reported, text
    CHECK(lines[0] == "0 1 ");
    CHECK(lines[1].starts_with("3 1 maildir: write " + md + "/tmp/"));  // EFBIG: it never fits, a bounce
    CHECK(lines[1].ends_with(": File too large"));
    CHECK(lines[2] == "2 1 maildir: mkdir " + locked + "/Maildir: Permission denied");
    CHECK(lines[3] == "0 1 ");
    CHECK(lines[4] == "2 1 maildir: folder \"relative/Maildir\" is not an absolute path");
    CHECK(lines[5] == "0 1 ");
    std::string h = header_for(ok);
    CHECK(contents(md) == std::multiset<std::string>{h + small, h + small, h + small});
    CHECK(test::list_dir(md + "/tmp").empty());  // the failed one's file was taken back
    CHECK(test::list_dir(locked).empty());
}

TEST_CASE("maildir batch: once results no longer reach the daemon, nothing more is published") {
    test::TempDir dir;
    test::Request bad, good;
    bad.path = "relative/Maildir";  // fails at once, and its report is refused
    good.path = dir / "Maildir";
    auto out = deliver_batch({bad, good, good}, message_fds(dir, {"a\n", "b\n", "c\n"}), false);
    CHECK(out.results[0].status == POSTERN_TEMPFAIL);
    CHECK(out.reports[0] == 1);
    // The others were written, then taken back: a delivery nobody hears of
    // would be made again on the next attempt.
    for (size_t i = 1; i < 3; ++i) CHECK(out.reports[i] == 0);
    CHECK(test::list_dir(dir / "Maildir/new").empty());
    CHECK(test::list_dir(dir / "Maildir/tmp").empty());
}

namespace {

// Threads of this process now, and the most the plugin's flush adds
// (plugins/maildir/flusher.hpp: up to 4 at once, the caller's among them).
size_t threads() { return test::list_dir("/proc/self/task").size(); }
constexpr size_t kPoolThreads = 3;

}  // namespace

TEST_CASE("maildir batch: the flush uses a few threads that live on, however the batch went") {
    test::TempDir dir;
    size_t before = threads();
    test::Request bad, good;
    bad.path = "relative/Maildir";
    good.path = dir / "Maildir";
    // Every message failing before the flush: nothing to flush, no thread.
    auto out = deliver_batch({bad, bad, bad}, message_fds(dir, {"a\n", "b\n", "c\n"}));
    for (const auto& r : out.results) CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK(threads() <= before + kPoolThreads);
    // Big batches, again and again: the same few threads.
    for (int round = 0; round < 3; ++round) {
        std::vector<test::Request> reqs(40, good);
        std::vector<std::string> messages(40, "Subject: x\n\ny\n");
        for (const auto& r : deliver_batch(reqs, message_fds(dir, messages)).results) CHECK(r.status == POSTERN_OK);
        CHECK(threads() <= before + kPoolThreads);
    }
    CHECK(test::list_dir(dir / "Maildir/new").size() == 120);
}
