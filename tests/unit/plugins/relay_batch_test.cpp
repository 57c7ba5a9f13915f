// tests/unit/plugins/relay_batch_test.cpp — delivery-relay.so's
// deliver_batch against the scripted server of relay_server.hpp: a batch's
// messages follow one another on one connection, the next batch takes the
// connection up after RSET, a transaction that did not end cleanly is
// followed by RSET, and the time budget belongs to one batch.
#include "relay_server.hpp"

using namespace relay_test;

namespace {

struct Reports {
    postern_delivery_batch abi{};
    std::vector<int> counts;
    bool heard = true;  // what report() answers: false as an agent whose daemon has gone
};

int count_report(const postern_delivery_batch* b, size_t i) {
    auto* r = static_cast<Reports*>(b->agent);
    if (i < r->counts.size()) ++r->counts[i];
    return r->heard ? POSTERN_OK : POSTERN_TEMPFAIL;
}

// n messages (each its own msgid) to bob at `url`, in one deliver_batch
// call with the given time limit; each result, checked reported once
// (`heard`: the agent can still report, else only the first is).
std::vector<postern_delivery_result> batch(const test::TempDir& dir, const std::string& url, size_t n,
                                           uint64_t time_limit_ms = 0, bool heard = true) {
    REQUIRE(POSTERN_HAS_MEMBER(&relay().api(), postern_delivery_plugin, deliver_batch));
    std::vector<Fd> fds;
    std::vector<test::Request> reqs(n);
    std::vector<postern_delivery_request> raw;
    for (size_t i = 0; i < n; ++i) {
        fds.push_back(test::message_fd(dir, kMessage));
        reqs[i].path = url;
        reqs[i].options = kOptions;
        reqs[i].msgid = "message" + std::to_string(i);
        raw.push_back(test::request_of(reqs[i], fds[i].get()));
    }
    std::vector<postern_delivery_result> results(n);
    std::vector<const postern_delivery_request*> req_ptrs;
    std::vector<postern_delivery_result*> res_ptrs;
    for (size_t i = 0; i < n; ++i) {
        results[i].struct_size = sizeof results[i];
        results[i].status = -1;
        req_ptrs.push_back(&raw[i]);
        res_ptrs.push_back(&results[i]);
    }
    Reports reports;
    reports.counts.assign(n, 0);
    reports.abi.struct_size = sizeof reports.abi;
    reports.abi.time_limit_ms = time_limit_ms;
    reports.abi.report = count_report;
    reports.abi.agent = &reports;
    reports.heard = heard;
    relay()->deliver_batch(&reports.abi, req_ptrs.data(), n, res_ptrs.data());
    for (size_t i = 0; i < n; ++i) CHECK(reports.counts[i] == (heard || i == 0 ? 1 : 0));
    return results;
}

}  // namespace

TEST_CASE("relay batch: messages follow one another on one connection, the next batch takes it up after RSET") {
    test::TempDir dir;
    FakeServer server({});
    for (const auto& r : batch(dir, server.url(), 3)) {
        INFO(r.text);
        CHECK(r.status == POSTERN_OK);
    }
    for (const auto& r : batch(dir, server.url(), 1)) CHECK(r.status == POSTERN_OK);
    flush(dir);  // a call for another route closes the kept connection with QUIT
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + transaction() + transaction() +
                                         "RSET\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay batch: a transaction that did not end cleanly is followed by RSET") {
    test::TempDir dir;
    Script s;
    s.replies["MAIL"] = "451 4.3.0 not now\r\n";  // no PIPELINING offered: the transaction stops at MAIL
    FakeServer server(s);
    auto results = batch(dir, server.url(), 2);
    for (const auto& r : results) {
        CHECK(r.status == POSTERN_TEMPFAIL);
        CHECK(std::string(r.text) == "relay: 127.0.0.1 [127.0.0.1]: 451 4.3.0 not now");
    }
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nRSET\r\n"
                                     "MAIL FROM:<alice@example.org>\r\nQUIT\r\n");
}

TEST_CASE("relay batch: the time budget is the batch's own") {
    test::TempDir dir;
    FakeServer server({});
    // A daemon that gives the batch 1 ms leaves it no time for a transaction
    // (half of it is the budget): nothing is sent, the mail waits.
    for (const auto& r : batch(dir, server.url(), 2, 1)) {
        CHECK(r.status == POSTERN_TEMPFAIL);
        CHECK(std::string(r.text) == "relay: this batch's time is up; the message waits for the next attempt");
    }
    // The next batch has its own.
    for (const auto& r : batch(dir, server.url(), 1, 600000)) CHECK(r.status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay batch: once results no longer reach the daemon, no more messages are sent") {
    test::TempDir dir;
    FakeServer server({});
    auto results = batch(dir, server.url(), 3, 0, false);
    CHECK(results[0].status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "QUIT\r\n");
}

TEST_CASE("relay batch: an agent holds the connections of its batch under way, or its last, only") {
    test::TempDir dir;
    FakeServer a({}), b({});
    for (const auto& r : batch(dir, a.url(), 1)) CHECK(r.status == POSTERN_OK);
    // A batch for another route: as it starts, a's connection is closed with
    // QUIT (the connections open to a destination stay within its limit).
    for (const auto& r : batch(dir, b.url(), 1)) CHECK(r.status == POSTERN_OK);
    a.stop();
    REQUIRE(a.transcripts().size() == 1);
    CHECK(a.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "QUIT\r\n");
    flush(dir);
    b.stop();
    REQUIRE(b.transcripts().size() == 1);
    CHECK(b.transcripts()[0] == "EHLO client.test\r\n" + transaction() + "QUIT\r\n");
}
