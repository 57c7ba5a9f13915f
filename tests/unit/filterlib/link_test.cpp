// The filter library (filters/lib/filter.hpp) run by its own loop on one
// end of a socketpair, the test playing the daemon on the other: the lines
// it writes, the sessions it keeps, the answers in the right layout, data
// lines unstuffed for the filter and stuffed back, and how it ends.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "filter.hpp"

using namespace postern;
using namespace postern::filterlib;

namespace {

// Refuses bad@example.org, wants the sender known at rcpt-to, adds a header
// on top of each message and records what it saw.
class TestFilter : public Filter {
public:
    Registration registration() const override {
        return {{Phase::MailFrom, Phase::RcptTo, Phase::DataLine}, {Event::TxCommit}};
    }
    void on_config(std::string_view key, std::string_view value) override {
        config.push_back(std::string(key) + "=" + std::string(value));
    }
    void on_request(Session& s, Phase phase, std::string_view param, Answer answer) override {
        if (phase == Phase::MailFrom && param == "bad@example.org") return answer.reject("550 5.7.1 no");
        if (phase == Phase::RcptTo) {
            seen_user = s.user;
            if (s.mail_from != "alice@example.org") return answer.reject("451 4.3.0 sender not known");
        }
        answer.proceed();
    }
    void on_report(Session&, Event e, const std::vector<std::string_view>& params) override {
        if (e == Event::TxCommit) commits.push_back(std::string(params.at(1)));
    }
    void on_data_line(Session&, std::string_view line, DataStream& out) override {
        if (!header_sent) out.line("X-Lib: 1");
        header_sent = true;
        lines.emplace_back(line);
        out.line(line);
    }
    void on_data_end(Session&, DataStream& out) override {
        header_sent = false;
        out.end();
    }
    std::vector<std::string> config, lines, commits;
    std::string seen_user;
    bool header_sent = false;
};

// The daemon's end: write lines, read the filter's lines with a deadline.
struct Daemon {
    int fd[2] = {-1, -1};
    std::string buf;
    Daemon() {
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
        timeval tv{0, 100 * 1000};
        setsockopt(fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~Daemon() {
        if (fd[0] >= 0) close(fd[0]);
        if (fd[1] >= 0) close(fd[1]);
    }
    void send(const std::string& line) {
        std::string l = line + "\n";
        REQUIRE(::send(fd[0], l.data(), l.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(l.size()));
    }
    // The next line, or "" after 3 s.
    std::string line() {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (buf.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
            char tmp[4096];
            ssize_t n = recv(fd[0], tmp, sizeof tmp, 0);
            if (n == 0) break;
            if (n > 0) buf.append(tmp, static_cast<size_t>(n));
        }
        auto nl = buf.find('\n');
        if (nl == std::string::npos) return "";
        std::string l = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return l;
    }
    // Lines up to and including register|ready.
    std::vector<std::string> registrations() {
        std::vector<std::string> out;
        for (int i = 0; i < 40; ++i) {
            out.push_back(line());
            if (out.back() == "register|ready" || out.back().empty()) break;
        }
        return out;
    }
};

// Runs the filter on its own loop in a thread; the destructor ends it by
// closing the daemon's end.
struct Running {
    TestFilter filter;
    Daemon& daemon;
    uv_loop_t loop{};
    int status = -1;
    std::thread thread;
    explicit Running(Daemon& d) : daemon(d) {
        uv_loop_init(&loop);
        thread = std::thread([this] { status = run(filter, &loop, {"test-filter", daemon.fd[1], daemon.fd[1]}); });
    }
    int finish() {
        close(daemon.fd[0]);
        daemon.fd[0] = -1;
        thread.join();
        uv_loop_close(&loop);
        return status;
    }
    ~Running() {
        if (thread.joinable()) finish();
    }
};

const std::string kSid = "0123456789abcdef";
const std::string kTok = "0000000000000105";

}  // namespace

TEST_CASE("filterlib: registers its phases, its events and the library's, then ready") {
    Daemon d;
    Running r(d);
    auto regs = d.registrations();
    REQUIRE(regs.back() == "register|ready");
    auto has = [&](const std::string& l) { return std::find(regs.begin(), regs.end(), l) != regs.end(); };
    CHECK(has("register|filter|smtp-in|mail-from"));
    CHECK(has("register|filter|smtp-in|data-line"));
    CHECK(has("register|report|smtp-in|tx-commit"));
    CHECK(has("register|report|smtp-in|link-connect"));  // the library's bookkeeping
    CHECK(has("register|report|smtp-in|link-disconnect"));
    CHECK_FALSE(has("register|filter|smtp-in|connect"));
    CHECK(r.finish() == 0);
}

TEST_CASE("filterlib: answers requests in the session|token order, with the session's facts") {
    Daemon d;
    Running r(d);
    d.registrations();
    d.send("config|smtpd-version|6.8.0p2");
    d.send("config|ready");
    d.send("report|0.6|1.000000|smtp-in|link-connect|" + kSid + "|mx.example.org|pass|192.0.2.1:4000|192.0.2.2:25");
    d.send("filter|0.6|1.000000|smtp-in|mail-from|" + kSid + "|" + kTok + "|bad@example.org");
    CHECK(d.line() == "filter-result|" + kSid + "|" + kTok + "|reject|550 5.7.1 no");
    d.send("report|0.7|1.000000|smtp-in|link-auth|" + kSid + "|pass|us|er");
    d.send("report|0.6|1.000000|smtp-in|tx-begin|" + kSid + "|0badcafe");
    d.send("report|0.6|1.000000|smtp-in|tx-mail|" + kSid + "|0badcafe|ok|alice@example.org");
    d.send("filter|0.6|1.000000|smtp-in|rcpt-to|" + kSid + "|0000000000000106|bob@example.org");
    CHECK(d.line() == "filter-result|" + kSid + "|0000000000000106|proceed");
    d.send("report|0.6|1.000000|smtp-in|tx-reset|" + kSid + "|0badcafe");
    d.send("filter|0.6|1.000000|smtp-in|rcpt-to|" + kSid + "|0000000000000106|bob@example.org");
    CHECK(d.line() == "filter-result|" + kSid + "|0000000000000106|reject|451 4.3.0 sender not known");
    CHECK(r.finish() == 0);
    CHECK(r.filter.config == std::vector<std::string>{"smtpd-version=6.8.0p2"});
    CHECK(r.filter.seen_user == "us|er");  // 0.7: result first, the user takes the rest
}

TEST_CASE("filterlib: data lines are unstuffed for the filter and stuffed back, '.' ends") {
    Daemon d;
    Running r(d);
    d.registrations();
    d.send("config|ready");
    const std::string head = "filter|0.6|1.000000|smtp-in|data-line|" + kSid + "|0000000000000108|";
    const std::string out = "filter-dataline|" + kSid + "|0000000000000108|";
    d.send(head + "Subject: hi");
    d.send(head);
    d.send(head + "..a dot line");
    d.send(head + "a | pipe");
    d.send(head + ".");
    CHECK(d.line() == out + "X-Lib: 1");
    CHECK(d.line() == out + "Subject: hi");
    CHECK(d.line() == out);
    CHECK(d.line() == out + "..a dot line");
    CHECK(d.line() == out + "a | pipe");
    CHECK(d.line() == out + ".");
    d.send("report|0.6|1.000000|smtp-in|tx-commit|" + kSid + "|0badcafe|1234");
    CHECK(r.finish() == 0);
    CHECK(r.filter.lines == std::vector<std::string>{"Subject: hi", "", ".a dot line", "a | pipe"});
    CHECK(r.filter.commits == std::vector<std::string>{"1234"});
}

TEST_CASE("filterlib: a line it cannot read ends it with status 1") {
    for (std::string bad : {"report|1.0|1.000000|smtp-in|link-connect|" + kSid + "|a|pass|b|c",
                            "report|0.4|1.000000|smtp-in|tx-begin|" + kSid + "|0badcafe", std::string("hello")}) {
        Daemon d;
        Running r(d);
        d.registrations();
        d.send(bad);
        r.thread.join();
        CHECK(r.status == 1);
        close(d.fd[0]);
        d.fd[0] = -1;
        uv_loop_close(&r.loop);
    }
}

TEST_CASE("filterlib: a regular file or /dev/null as input is refused with status 1, not an abort") {
    for (const char* path : {"/dev/null", "/etc/hostname"}) {
        int fd = open(path, O_RDONLY);
        REQUIRE(fd >= 0);
        TestFilter f;
        uv_loop_t loop{};
        uv_loop_init(&loop);
        CHECK(run(f, &loop, {"test-filter", fd, fd}) == 1);
        uv_loop_close(&loop);
        close(fd);
    }
}
