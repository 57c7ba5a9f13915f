// tests/unit/lmtp/lmtp_test.cpp — delivery-lmtp.so against the scripted LMTP
// server of lmtp_server.hpp: the exact dialogue, one result per recipient
// after the message (RFC 2033 4.2) with its typed fields, refusals at RCPT
// and after DATA, connection reuse with RSET, a server that stops answering
// (bounded), a UNIX socket, the LMTP recipient with and without rcpt-to, and
// configuration errors.
#include <unistd.h>

#include "lmtp_server.hpp"

using namespace lmtp_test;

namespace {

const postern::util::DeliveryPlugin& lmtp() {
    static auto p = test::load_delivery("lmtp");
    return p;
}

std::string host_name() {
    char buf[256] = "";
    if (::gethostname(buf, sizeof buf - 1) != 0 || !*buf) return "localhost";
    return buf;
}

const std::string kMessage = "Subject: hi\n\n.dot line\nbody\n";
const std::string kWire = "Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n";

struct Rcpt {
    std::string user, dest;
};

// One message to several recipients through deliver_many, as postern-local
// calls it; the results keep their typed fields.
struct Batch {
    std::vector<postern_delivery_result> results;

    Batch(const test::TempDir& dir, const std::string& path, const std::string& options, const std::vector<Rcpt>& rcpts,
          const std::string& message = kMessage) {
        auto fd = test::message_fd(dir, message);
        std::vector<test::Request> reqs(rcpts.size());
        std::vector<postern_delivery_request> raw(rcpts.size());
        std::vector<const postern_delivery_request*> req_ptrs;
        results.assign(rcpts.size(), postern_delivery_result{});
        std::vector<postern_delivery_result*> result_ptrs;
        for (size_t i = 0; i < rcpts.size(); ++i) {
            reqs[i].path = path;
            reqs[i].options = options;
            reqs[i].user = rcpts[i].user;
            reqs[i].rcpt = reqs[i].dest = rcpts[i].dest;
            raw[i] = test::request_of(reqs[i], fd.get());
            req_ptrs.push_back(&raw[i]);
            results[i].struct_size = sizeof(postern_delivery_result);
            result_ptrs.push_back(&results[i]);
        }
        auto many = postern::util::deliver_many_of(lmtp());
        REQUIRE(many);
        many(req_ptrs.data(), req_ptrs.size(), result_ptrs.data());
    }
    const postern_delivery_result& operator[](size_t i) const { return results.at(i); }
};

// Several messages (each to its recipients) in one deliver_batch call, as
// postern-local hands a batch; the results in the batch's order.
std::vector<postern_delivery_result> whole_batch(const test::TempDir& dir, const std::string& path,
                                                 const std::string& options,
                                                 const std::vector<std::vector<Rcpt>>& messages) {
    std::vector<postern::util::Fd> fds;
    std::vector<test::Request> reqs;
    for (size_t m = 0; m < messages.size(); ++m) {
        fds.push_back(test::message_fd(dir, kMessage));
        for (const Rcpt& rc : messages[m]) {
            test::Request r;
            r.path = path;
            r.options = options;
            r.user = rc.user;
            r.rcpt = r.dest = rc.dest;
            r.msgid = "message" + std::to_string(m);
            reqs.push_back(r);
        }
    }
    std::vector<postern_delivery_request> raw;
    for (size_t i = 0, m = 0, k = 0; i < reqs.size(); ++i) {
        raw.push_back(test::request_of(reqs[i], fds[m].get()));
        if (++k == messages[m].size()) ++m, k = 0;
    }
    std::vector<postern_delivery_result> results(raw.size());
    std::vector<const postern_delivery_request*> req_ptrs;
    std::vector<postern_delivery_result*> result_ptrs;
    for (size_t i = 0; i < raw.size(); ++i) {
        req_ptrs.push_back(&raw[i]);
        results[i].struct_size = sizeof(postern_delivery_result);
        result_ptrs.push_back(&results[i]);
    }
    REQUIRE(POSTERN_HAS_MEMBER(&lmtp().api(), postern_delivery_plugin, deliver_batch));
    postern_delivery_batch abi{};
    abi.struct_size = sizeof abi;
    abi.report = [](const postern_delivery_batch*, size_t) { return int{POSTERN_OK}; };
    lmtp()->deliver_batch(&abi, req_ptrs.data(), req_ptrs.size(), result_ptrs.data());
    return results;
}

// A call for another destination closes the kept connection with QUIT; a
// bad destination is the cheapest such call.
void flush(const test::TempDir& dir) { Batch(dir, "", "", {{"bob", "bob@example.com"}}); }

const std::vector<Rcpt> kTwo = {{"bob", "bob@example.com"}, {"carol", "carol@example.com"}};

std::string lhlo() { return "LHLO " + host_name() + "\r\n"; }

std::string transaction(const std::vector<std::string>& rcpts) {
    std::string out = "MAIL FROM:<alice@example.org>\r\n";
    for (const auto& r : rcpts) out += "RCPT TO:<" + r + ">\r\n";
    return out + "DATA\r\n" + kWire;
}

}  // namespace

TEST_CASE("lmtp: two recipients in one transaction, RCPT the local user, a result each") {
    test::TempDir dir;
    LmtpServer server({});
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_OK);
    CHECK(std::string(b[0].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <bob> saved");
    CHECK(std::string(b[0].enhanced) == "2.0.0");
    CHECK(std::string(b[0].remote_host) == "127.0.0.1");
    CHECK(std::string(b[0].remote_addr) == "127.0.0.1");
    CHECK(b[0].remote_code == 250);
    CHECK(std::string(b[0].remote_reply) == "2.0.0 <bob> saved");
    CHECK(b[0].flags == 0u);  // no DSN handed on: the LMTP server is the last stop
    CHECK(b[1].status == POSTERN_OK);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <carol> saved");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"bob", "carol"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: rcpt-to sends the address after expansion instead of the user") {
    test::TempDir dir;
    LmtpServer server({});
    Batch b(dir, server.destination(), "rcpt-to", {{"vmail", "bob@example.com"}, {"vmail", "carol@example.com"}});
    CHECK(b[0].status == POSTERN_OK);
    CHECK(b[1].status == POSTERN_OK);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <carol@example.com> saved");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"bob@example.com", "carol@example.com"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: recipients that come to the same LMTP address go once and share the result") {
    test::TempDir dir;
    LmtpServer server({});
    Batch b(dir, server.destination(), "", {{"vmail", "bob@example.com"}, {"vmail", "carol@example.com"}});
    CHECK(b[0].status == POSTERN_OK);
    CHECK(b[1].status == POSTERN_OK);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <vmail> saved");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"vmail"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: a 452 after the message tempfails that recipient alone") {
    test::TempDir dir;
    Script s;
    s.eom["carol"] = "452 4.2.2 <carol> Mailbox is full\r\n";
    LmtpServer server(s);
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_OK);
    CHECK(b[1].status == POSTERN_TEMPFAIL);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 452 4.2.2 <carol> Mailbox is full");
    CHECK(std::string(b[1].enhanced) == "4.2.2");
    CHECK(b[1].remote_code == 452);
    CHECK(std::string(b[1].remote_reply) == "4.2.2 <carol> Mailbox is full");
    CHECK(std::string(b[1].remote_host) == "127.0.0.1");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"bob", "carol"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: a 550 after the message permfails that recipient alone") {
    test::TempDir dir;
    Script s;
    s.eom["bob"] = "550 5.2.0 <bob> Sieve rejected it\r\n";
    LmtpServer server(s);
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_PERMFAIL);
    CHECK(std::string(b[0].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 550 5.2.0 <bob> Sieve rejected it");
    CHECK(std::string(b[0].enhanced) == "5.2.0");
    CHECK(b[0].remote_code == 550);
    CHECK(b[1].status == POSTERN_OK);
    flush(dir);
    server.stop();
}

TEST_CASE("lmtp: a 550 at RCPT permfails that recipient, the other gets the message and one reply after it") {
    test::TempDir dir;
    Script s;
    s.rcpt["bob"] = "550 5.1.1 <bob> User doesn't exist: bob\r\n";
    LmtpServer server(s);
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_PERMFAIL);
    CHECK(std::string(b[0].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 550 5.1.1 <bob> User doesn't exist: bob");
    CHECK(std::string(b[0].enhanced) == "5.1.1");
    CHECK(b[0].remote_code == 550);
    CHECK(std::string(b[0].remote_reply) == "5.1.1 <bob> User doesn't exist: bob");
    CHECK(b[1].status == POSTERN_OK);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <carol> saved");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"bob", "carol"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: every recipient refused at RCPT: no message is sent") {
    test::TempDir dir;
    Script s;
    s.rcpt["bob"] = "550 5.1.1 <bob> User doesn't exist: bob\r\n";
    s.rcpt["carol"] = "451 4.3.0 <carol> Temporary internal error\r\n";
    LmtpServer server(s);
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_PERMFAIL);
    CHECK(b[1].status == POSTERN_TEMPFAIL);
    CHECK(std::string(b[1].text) == "lmtp: 127.0.0.1 [127.0.0.1]: 451 4.3.0 <carol> Temporary internal error");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    // Pipelined: DATA went with the RCPTs and was refused; the message never did.
    CHECK(server.transcripts()[0] == lhlo() + "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob>\r\nRCPT TO:<carol>\r\n"
                                              "DATA\r\nQUIT\r\n");
}

TEST_CASE("lmtp: the messages of a batch share one connection, RSET between them") {
    test::TempDir dir;
    LmtpServer server({});
    Batch first(dir, server.destination(), "", kTwo);
    Batch second(dir, server.destination(), "", {{"dave", "dave@example.com"}});
    CHECK(first[0].status == POSTERN_OK);
    CHECK(first[1].status == POSTERN_OK);
    CHECK(second[0].status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] ==
          lhlo() + transaction({"bob", "carol"}) + "RSET\r\n" + transaction({"dave"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: a server that stops answering costs one bounded wait, then the batch fails at once") {
    test::TempDir dir;
    Script s;
    s.hang_on = ".";  // takes the message, never answers it
    LmtpServer server(s);
    // Two messages in one batch: the first waits out the timeout, the
    // second fails at once with the same reason.
    auto t0 = std::chrono::steady_clock::now();
    auto results = whole_batch(dir, server.destination(), "timeout=1", {kTwo, {{"dave", "dave@example.com"}}});
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 900ms);
    CHECK(waited < 1900ms);
    REQUIRE(results.size() == 3);
    for (const auto& r : results) {
        CHECK(r.status == POSTERN_TEMPFAIL);
        CHECK(std::string(r.text) == "lmtp: 127.0.0.1 [127.0.0.1]: no reply: timed out (after the message)");
    }
    // That was the batch's alone: the next batch tries the server again, on
    // a new connection (the scripted server, still hung on the first one,
    // does not even greet it).
    t0 = std::chrono::steady_clock::now();
    auto next = whole_batch(dir, server.destination(), "timeout=1", {{{"erin", "erin@example.com"}}});
    CHECK(std::chrono::steady_clock::now() - t0 >= 900ms);
    REQUIRE(next.size() == 1);
    CHECK(next[0].status == POSTERN_TEMPFAIL);
    CHECK(std::string(next[0].text) == "lmtp: 127.0.0.1 [127.0.0.1]: no reply: timed out (greeting)");
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
}

TEST_CASE("lmtp: a server that never answers LHLO times out before any message goes") {
    test::TempDir dir;
    Script s;
    s.hang_on = "LHLO";
    LmtpServer server(s);
    Batch b(dir, server.destination(), "timeout=1", {{"bob", "bob@example.com"}});
    CHECK(b[0].status == POSTERN_TEMPFAIL);
    CHECK(std::string(b[0].text) == "lmtp: 127.0.0.1 [127.0.0.1]: no reply: timed out (after LHLO)");
    flush(dir);
    server.stop();
}

TEST_CASE("lmtp: a UNIX socket") {
    test::TempDir dir;
    LmtpServer server({}, dir / "lmtp.sock");
    Batch b(dir, server.destination(), "", kTwo);
    CHECK(b[0].status == POSTERN_OK);
    CHECK(std::string(b[0].text) == "lmtp: " + dir / "lmtp.sock" + ": 250 2.0.0 <bob> saved");
    CHECK(std::string(b[0].remote_host).empty());  // no host name for a report's Remote-MTA
    CHECK(b[0].remote_code == 250);
    CHECK(std::string(b[0].remote_addr).empty());
    CHECK(b[1].status == POSTERN_OK);
    flush(dir);
    server.stop();
    REQUIRE(server.transcripts().size() == 1);
    CHECK(server.transcripts()[0] == lhlo() + transaction({"bob", "carol"}) + "QUIT\r\n");
}

TEST_CASE("lmtp: no server at the socket or the port is a temporary failure naming it") {
    test::TempDir dir;
    Batch b(dir, dir / "missing.sock", "", kTwo);
    CHECK(b[0].status == POSTERN_TEMPFAIL);
    CHECK(std::string(b[0].text) == "lmtp: " + dir / "missing.sock" + ": connect: No such file or directory");
    CHECK(b[1].status == POSTERN_TEMPFAIL);
    int port = 0;
    {
        LmtpServer closed({});  // a port that was just free
        port = std::stoi(closed.destination().substr(10));
    }
    Batch tcp(dir, "127.0.0.1:" + std::to_string(port), "", kTwo);
    CHECK(tcp[0].status == POSTERN_TEMPFAIL);
    CHECK(std::string(tcp[0].text) ==
          "lmtp: 127.0.0.1 [127.0.0.1]: connect to port " + std::to_string(port) + ": Connection refused");
}

TEST_CASE("lmtp: the deliver entry point gives the same result as text") {
    test::TempDir dir;
    LmtpServer server({});
    test::Request r;
    r.path = server.destination();
    auto fd = test::message_fd(dir, kMessage);
    auto o = test::deliver(lmtp(), r, fd.get());
    CHECK(o.status == POSTERN_OK);
    CHECK(o.error == "lmtp: 127.0.0.1 [127.0.0.1]: 250 2.0.0 <bob> saved");
    flush(dir);
    server.stop();
}

TEST_CASE("lmtp: a bad destination or option is a configuration error that keeps the mail") {
    test::TempDir dir;
    auto text = [&](const std::string& path, const std::string& options) {
        Batch b(dir, path, options, {{"bob", "bob@example.com"}});
        CHECK(b[0].status == POSTERN_TEMPFAIL);
        return std::string(b[0].text);
    };
    CHECK(text("", "") == "lmtp: config error: no LMTP server");
    CHECK(text("127.0.0.1", "") == "lmtp: config error: \"127.0.0.1\": lmtp:// requires a port");
    CHECK(text("lmtp://127.0.0.1:24", "") ==
          "lmtp: config error: \"lmtp://127.0.0.1:24\": not a socket path or HOST:PORT");
    CHECK(text("/run/lmtp", "junk") == "lmtp: config error: unknown option \"junk\"");
    CHECK(text("/run/lmtp", "rcpt-to rcpt-to") == "lmtp: config error: option rcpt-to given twice");
    CHECK(text("/run/lmtp", "timeout=0") == "lmtp: config error: timeout= must be 1 to 3600 seconds");
}
