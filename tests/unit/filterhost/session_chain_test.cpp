// The chain of one session (filterhost/session_chain) over real Connections:
// each filter is the test's end of a real socket pair, the daemon's end runs
// on a real libuv loop. The test writes the filter's lines (register|...,
// filter-result, filter-dataline) and reads what the daemon sends it; the
// session is a small recorder of what the chain tells it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "filterhost/connection.hpp"
#include "filterhost/session_chain.hpp"
#include "util/fd.hpp"

using namespace postern;
using namespace std::chrono_literals;
using filter::Event;
using filter::Phase;
using filterhost::Verdict;
using Match = filterhost::SessionEvents::Match;

namespace {

constexpr std::uint64_t kSid = 0x0123456789abcdefULL;
const std::string kSidHex = "0123456789abcdef";
const std::string kNothing = "<nothing>";

std::string hex16(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

// The token the chain gives member `member` for `phase`.
std::string token(std::size_t member, Phase phase) {
    return hex16((static_cast<std::uint64_t>(member + 1) << 8) | static_cast<std::uint64_t>(phase));
}

// A libuv loop run in small steps until a condition holds or a bounded time
// has passed; closed at the end, every handle having been closed.
class Loop {
public:
    Loop() {
        ::signal(SIGPIPE, SIG_IGN);  // as the daemon does: a closed filter is an EPIPE, not a death
        uv_loop_init(&loop_);
    }
    ~Loop() {
        for (int i = 0; i < 200 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) std::this_thread::sleep_for(1ms);
        CHECK(uv_loop_close(&loop_) == 0);
    }
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    uv_loop_t* get() { return &loop_; }

    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2s) {
        // `done` is asked once a turn: it may consume what it looks for.
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            if (done()) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            uv_run(&loop_, UV_RUN_NOWAIT);
            std::this_thread::sleep_for(1ms);
        }
    }
    void run_for(std::chrono::milliseconds t) {
        run_until([] { return false; }, t);
    }

private:
    uv_loop_t loop_{};
};

// A line the daemon wrote, its timestamp (third field) replaced by "T" once
// checked to be SECONDS.MICROSECONDS.
std::string untimed(const std::string& line) {
    const auto a = line.find('|');
    const auto b = a == std::string::npos ? a : line.find('|', a + 1);
    const auto c = b == std::string::npos ? b : line.find('|', b + 1);
    if (c == std::string::npos) return line;
    const std::string t = line.substr(b + 1, c - b - 1);
    const auto dot = t.find('.');
    const bool ok = dot != std::string::npos && dot > 0 && t.size() - dot - 1 == 6 &&
                    t.find_first_not_of("0123456789.") == std::string::npos;
    return line.substr(0, b + 1) + (ok ? "T" : "BAD-TIME:" + t) + line.substr(c);
}

// One filter process, played by the test: the far end of the socket pair
// whose near end a Connection owns.
class Peer {
public:
    Peer(Loop& loop, std::string name, filter::Version version = filter::Version::V0_6, std::size_t index = 0)
        : loop_(loop) {
        proc_.name = std::move(name);
        proc_.command = "test";
        proc_.version = version;
        proc_.timeout = 2s;  // the handshake's
        int sp[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        end_ = util::Fd(sp[1]);
        REQUIRE(::fcntl(end_.get(), F_SETFL, ::fcntl(end_.get(), F_GETFL) | O_NONBLOCK) == 0);
        // As the host builds it: the proc's version is the one announced.
        filter::Handshake hs;
        hs.version = version;
        hs.smtpd_version = "postern-test";
        hs.admd = "mx.example.org";
        filterhost::Connection::Events events;
        events.ready = [this](filterhost::Connection&) { ++readied; };
        events.failed = [this](filterhost::Connection&, const std::string& why) { failures.push_back(why); };
        conn = std::make_unique<filterhost::Connection>(loop.get(), proc_, index, hs, util::Fd(sp[0]), -1,
                                                        std::move(events));
    }
    ~Peer() { conn.reset(); }  // before the proc it refers to
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    // Registers, says ready, waits for the connection to be ready and reads
    // our config lines.
    void start(std::initializer_list<std::string> registrations) {
        for (const auto& r : registrations) write(r);
        write("register|ready");
        REQUIRE(loop_.run_until([this] { return conn->ready(); }));
        read_config();
    }

    void read_config() {
        for (;;) {
            const std::string line = next();
            REQUIRE(line != kNothing);
            config.push_back(line);
            if (line == "config|ready") return;
        }
    }

    filterhost::Member member(bool fail_open = false, std::uint64_t timeout_ms = 60'000) {
        return filterhost::Member{proc_.name, conn.get(), nullptr, fail_open, timeout_ms};
    }

    // One line, as the filter writes it.
    void write(const std::string& line) {
        const std::string data = line + "\n";
        std::size_t done = 0;
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (done < data.size()) {
            ssize_t n = ::send(end_.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno != EAGAIN) FAIL("send: " << std::strerror(errno));
            if (std::chrono::steady_clock::now() >= deadline) FAIL("the daemon does not read what the filter writes");
            uv_run(loop_.get(), UV_RUN_NOWAIT);  // the daemon side reads
            std::this_thread::sleep_for(1ms);
        }
    }
    void result(const std::string& tok, const std::string& rest) {
        write("filter-result|" + kSidHex + "|" + tok + "|" + rest);
    }
    void dataline(const std::string& tok, const std::string& line) {
        write("filter-dataline|" + kSidHex + "|" + tok + "|" + line);
    }

    // The next line the daemon sent, without its timestamp ("<nothing>":
    // none within the bounded time).
    std::string next() {
        std::optional<std::string> line;
        loop_.run_until([&] {
            line = take();
            return line.has_value();
        });
        if (!line) return kNothing;
        if (line->starts_with("filter|") || line->starts_with("report|")) return untimed(*line);
        return *line;
    }
    // The daemon sends nothing more for a while.
    bool quiet(std::chrono::milliseconds t = 50ms) {
        loop_.run_for(t);
        fill();
        return in_.empty();
    }
    // Reads and drops what is there, counting the lines.
    void discard() {
        fill();
        auto nl = in_.rfind('\n');
        if (nl == std::string::npos) return;
        for (std::size_t i = 0; i <= nl; ++i)
            if (in_[i] == '\n') ++discarded;
        in_.erase(0, nl + 1);
    }
    bool eof() {
        fill();
        return eof_;
    }
    // The filter exits.
    void close() { end_ = util::Fd(); }

    std::unique_ptr<filterhost::Connection> conn;
    std::vector<std::string> config;    // what the daemon sent up to config|ready
    std::vector<std::string> failures;  // Connection::Events::failed
    int readied = 0;                    // Connection::Events::ready
    std::size_t discarded = 0;

private:
    void fill() {
        if (!end_) return;
        char buf[64 * 1024];
        for (;;) {
            ssize_t n = ::recv(end_.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                in_.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) eof_ = true;
            return;
        }
    }
    std::optional<std::string> take() {
        fill();
        auto nl = in_.find('\n');
        if (nl == std::string::npos) return std::nullopt;
        std::string line = in_.substr(0, nl);
        in_.erase(0, nl + 1);
        return line;
    }

    Loop& loop_;
    config::FilterProc proc_;
    util::Fd end_;
    std::string in_;
    bool eof_ = false;
};

std::unique_ptr<Peer> started(Loop& loop, const std::string& name, std::initializer_list<std::string> registrations,
                              filter::Version version = filter::Version::V0_6) {
    auto p = std::make_unique<Peer>(loop, name, version);
    p->start(registrations);
    return p;
}

// The session: records what the chain tells it; built-in filters are
// answered from `matches` (default No), on a later turn of the loop as a
// worker would.
class Session final : public filterhost::SessionEvents {
public:
    explicit Session(Loop& loop) : timer_(new uv_timer_t{}) {  // NOLINT(cppcoreguidelines-owning-memory)
        uv_timer_init(loop.get(), timer_);
        timer_->data = this;
    }
    ~Session() {
        uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) {
            delete reinterpret_cast<uv_timer_t*>(h);  // NOLINT(cppcoreguidelines-owning-memory)
        });
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void filter_failed(const std::string& filter, const std::string& why) override {
        failures.emplace_back(filter, why);
    }
    void data_output(std::string_view line) override { output.emplace_back(line); }
    void data_output_end() override { ++ends; }
    void filters_writable() override { ++writable; }
    void builtin_match(const config::BuiltinFilter& f, const std::string& param,
                       std::function<void(Match)> done) override {
        asked.emplace_back(&f, param);
        auto it = matches.find(&f);
        const Match m = it == matches.end() ? Match::No : it->second;
        pending_.emplace_back([done = std::move(done), m] { done(m); });
        uv_timer_start(
            timer_,
            [](uv_timer_t* t) {
                std::vector<std::function<void()>> pending;
                pending.swap(static_cast<Session*>(t->data)->pending_);
                for (auto& p : pending) p();
            },
            static_cast<std::uint64_t>(builtin_delay.count()), 0);
    }

    std::vector<std::pair<std::string, std::string>> failures;  // filter, why
    std::vector<std::string> failure_list() const {
        std::vector<std::string> out;
        for (const auto& [filter, why] : failures) out.push_back(filter + ": " + why);
        return out;
    }
    std::vector<std::string> output;
    int ends = 0;
    int writable = 0;
    std::map<const config::BuiltinFilter*, Match> matches;
    std::vector<std::pair<const config::BuiltinFilter*, std::string>> asked;
    // How long a built-in filter takes (a table lookup, the reverse name still being looked up...).
    std::chrono::milliseconds builtin_delay{0};

private:
    uv_timer_t* timer_;
    std::vector<std::function<void()>> pending_;
};

const std::vector<std::string> kNone;

// A walk's outcome, set by the chain's callback.
struct Outcome {
    std::optional<Verdict> verdict;
    int calls = 0;
    std::function<void(Verdict)> done() {
        return [this](Verdict v) {
            verdict = std::move(v);
            ++calls;
        };
    }
};

std::vector<filterhost::Member> members(std::initializer_list<filterhost::Member> m) { return m; }

config::BuiltinFilter builtin(Phase phase, config::BuiltinFilter::Decision d, std::string value = "") {
    config::BuiltinFilter b;
    b.phase = phase;
    b.decision = d;
    b.value = std::move(value);
    return b;
}

std::string request(const std::string& version, const std::string& phase, const std::string& tok,
                    const std::string& param) {
    return "filter|" + version + "|T|smtp-in|" + phase + "|" + kSidHex + "|" + tok + "|" + param;
}

std::string report(const std::string& version, const std::string& event, const std::string& rest) {
    return "report|" + version + "|T|smtp-in|" + event + "|" + kSidHex + "|" + rest;
}

}  // namespace

TEST_CASE("connection: a connection is ready after register|ready, our config lines sent at once") {
    const auto version = GENERATE(filter::Version::V0_6, filter::Version::V0_7);
    INFO("protocol " << filter::version_name(version));
    Loop loop;
    Peer p(loop, "f", version);
    p.write("register|filter|smtp-in|mail-from");
    p.write("register|report|smtp-in|tx-mail");
    loop.run_for(30ms);
    CHECK_FALSE(p.conn->ready());
    CHECK_FALSE(p.conn->failed());
    p.read_config();
    std::vector<std::string> expected = {"config|smtpd-version|postern-test", "config|smtp-session-timeout|300",
                                         "config|subsystem|smtp-in", "config|admd|mx.example.org", "config|ready"};
    if (version == filter::Version::V0_7) expected.insert(expected.begin() + 1, "config|protocol|0.7");
    CHECK(p.config == expected);

    p.write("register|ready");
    REQUIRE(loop.run_until([&] { return p.conn->ready(); }));
    CHECK(p.readied == 1);
    CHECK(p.failures.empty());
    CHECK(p.conn->version() == version);
    CHECK(p.conn->wants(Phase::MailFrom));
    CHECK_FALSE(p.conn->wants(Phase::RcptTo));
    CHECK(p.conn->wants(Event::TxMail));
    CHECK_FALSE(p.conn->wants(Event::TxRcpt));
    CHECK(p.quiet());  // nothing more until a session asks
}

TEST_CASE("connection: a filter that exits before register|ready fails its handshake") {
    Loop loop;
    Peer p(loop, "f");
    p.write("register|filter|smtp-in|mail-from");
    p.close();
    REQUIRE(loop.run_until([&] { return !p.failures.empty(); }));
    CHECK(p.failures.front().find("end of input before register|ready") != std::string::npos);
    CHECK(p.conn->failed());
    CHECK(p.readied == 0);
}

TEST_CASE("session chain: a walk asks each member registered for the phase in turn") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    auto w = started(loop, "watch", {"register|report|smtp-in|filter-response"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), b->member(), w->member()}), session);
    CHECK(chain.session() == kSid);
    Outcome out;
    chain.request(Phase::MailFrom, "alice@example.org", out.done());

    CHECK(a->next() == request("0.6", "mail-from", token(0, Phase::MailFrom), "alice@example.org"));
    CHECK(b->quiet());  // one at a time
    a->result(token(0, Phase::MailFrom), "proceed");
    CHECK(b->next() == request("0.6", "mail-from", token(1, Phase::MailFrom), "alice@example.org"));
    CHECK(token(0, Phase::MailFrom) != token(1, Phase::MailFrom));
    CHECK_FALSE(out.verdict);
    b->result(token(1, Phase::MailFrom), "reject|550 nope");
    REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
    CHECK(out.calls == 1);
    CHECK(out.verdict->kind == Verdict::Kind::Reject);
    CHECK(out.verdict->code == 550);
    CHECK(out.verdict->text == "5.7.1 nope");
    CHECK(out.verdict->filter == "b");
    // The decision is reported to those that asked for filter-response.
    CHECK(w->next() == report("0.6", "filter-response", "mail-from|reject|550 5.7.1 nope"));
    CHECK(a->quiet());
    CHECK(b->quiet());
    CHECK(w->quiet());
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: decisions that end the walk, and report that does not") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    auto w = started(loop, "watch",
                     {"register|report|smtp-in|filter-response", "register|report|smtp-in|filter-report"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), b->member(), w->member()}), session);
    Outcome out;
    chain.request(Phase::MailFrom, "alice@example.org", out.done());
    REQUIRE(a->next() == request("0.6", "mail-from", token(0, Phase::MailFrom), "alice@example.org"));
    const std::string tok = token(0, Phase::MailFrom);
    auto verdict = [&] {
        REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
        return *out.verdict;
    };

    SECTION("junk: the second filter is never asked") {
        a->result(tok, "junk");
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Junk);
        CHECK(v.filter == "a");
        CHECK(w->next() == report("0.6", "filter-response", "mail-from|junk"));
        CHECK(b->quiet());
    }
    SECTION("rewrite: the new value") {
        a->result(tok, "rewrite|bob@example.org");
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Rewrite);
        CHECK(v.text == "bob@example.org");
        CHECK(v.filter == "a");
        CHECK(w->next() == report("0.6", "filter-response", "mail-from|rewrite|bob@example.org"));
        CHECK(b->quiet());
    }
    SECTION("report: a filter-report, then the next filter with the parameter unchanged") {
        a->result(tok, "report|looked at it|twice");
        CHECK(w->next() == report("0.6", "filter-report", "proc|a|looked at it|twice"));
        CHECK(b->next() == request("0.6", "mail-from", token(1, Phase::MailFrom), "alice@example.org"));
        CHECK_FALSE(out.verdict);
        b->result(token(1, Phase::MailFrom), "proceed");
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Proceed);
        CHECK(v.filter.empty());
        CHECK(w->next() == report("0.6", "filter-response", "mail-from|proceed"));
    }
    SECTION("disconnect keeps an enhanced code given") {
        a->result(tok, "disconnect|451 4.3.0 come back later");
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Disconnect);
        CHECK(v.code == 451);
        CHECK(v.text == "4.3.0 come back later");
        CHECK(w->next() == report("0.6", "filter-response", "mail-from|disconnect|451 4.3.0 come back later"));
        CHECK(b->quiet());
    }
    SECTION("a 421 reject disconnects") {
        a->result(tok, "reject|421 busy");
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Disconnect);
        CHECK(v.code == 421);
        CHECK(v.text == "4.7.1 busy");
        CHECK(w->next() == report("0.6", "filter-response", "mail-from|disconnect|421 4.7.1 busy"));
        CHECK(b->quiet());
    }
    CHECK(out.calls == 1);
    CHECK(session.failure_list() == kNone);
    CHECK(a->quiet());
    CHECK(w->quiet());
}

TEST_CASE("session chain: members not registered for a phase are skipped, and what the chain wants") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from", "register|report|smtp-in|tx-mail"});
    auto b = started(loop, "b", {"register|filter|smtp-in|rcpt-to"});
    const auto helo = builtin(Phase::Helo, config::BuiltinFilter::Decision::Reject, "550 no");
    filterhost::SessionChain chain(loop.get(), kSid,
                                   members({a->member(), {"bi", nullptr, &helo, false, 60'000}, b->member()}), session);
    CHECK(chain.wants(Phase::MailFrom));
    CHECK(chain.wants(Phase::RcptTo));
    CHECK(chain.wants(Phase::Helo));  // the built-in filter
    CHECK_FALSE(chain.wants(Phase::Connect));
    CHECK_FALSE(chain.wants(Phase::Ehlo));
    CHECK_FALSE(chain.wants(Phase::Data));
    CHECK_FALSE(chain.wants(Phase::DataLine));
    CHECK_FALSE(chain.data_filtered());
    CHECK(chain.wants(Event::TxMail));
    CHECK_FALSE(chain.wants(Event::LinkAuth));
    CHECK_FALSE(chain.wants(Event::FilterResponse));

    Outcome out;
    chain.request(Phase::RcptTo, "bob@example.org", out.done());
    CHECK(b->next() == request("0.6", "rcpt-to", token(2, Phase::RcptTo), "bob@example.org"));
    CHECK(a->quiet());
    b->result(token(2, Phase::RcptTo), "proceed");
    REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
    CHECK(out.verdict->kind == Verdict::Kind::Proceed);
    CHECK(session.asked.empty());  // the helo filter has no say at rcpt-to

    // A phase nobody registered: Proceed at once, nobody asked.
    Outcome none;
    chain.request(Phase::Data, "", none.done());
    REQUIRE(loop.run_until([&] { return none.verdict.has_value(); }));
    CHECK(none.verdict->kind == Verdict::Kind::Proceed);
    CHECK(a->quiet());
    CHECK(b->quiet());
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: the connect request carries rdns and src, a parameter the protocol cannot carry is refused") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|connect", "register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member()}), session);
    Outcome out;

    SECTION("connect: rdns|src") {
        chain.request(Phase::Connect, "mx.example.net|192.0.2.1", out.done());
        CHECK(a->next() == request("0.6", "connect", token(0, Phase::Connect), "mx.example.net|192.0.2.1"));
        a->result(token(0, Phase::Connect), "proceed");
        REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
        CHECK(out.verdict->kind == Verdict::Kind::Proceed);
    }
    SECTION("a CR in the parameter: refused, no filter asked") {
        chain.request(Phase::MailFrom, "alice@example.org\rX", out.done());
        REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
        CHECK(out.verdict->kind == Verdict::Kind::Reject);
        CHECK(out.verdict->code == 501);
        CHECK(out.verdict->text.starts_with("5.5.4 "));
        CHECK(a->quiet());
    }
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: built-in filters at their place between process filters") {
    using D = config::BuiltinFilter::Decision;
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    auto w = started(loop, "watch", {"register|report|smtp-in|filter-report"});
    const auto reject = builtin(Phase::MailFrom, D::Reject, "550 no spam here");
    const auto later = builtin(Phase::RcptTo, D::Reject, "550 not now");
    const auto note = builtin(Phase::MailFrom, D::Report, "seen");
    const auto bypass = builtin(Phase::MailFrom, D::Bypass);
    auto bi = [](const char* name, const config::BuiltinFilter& f) {
        return filterhost::Member{name, nullptr, &f, false, 60'000};
    };
    // Members: 0 a, 1 reject, 2 later, 3 note, 4 bypass, 5 b, 6 watch.
    filterhost::SessionChain chain(loop.get(), kSid,
                                   members({a->member(), bi("reject", reject), bi("later", later), bi("note", note),
                                            bi("bypass", bypass), b->member(), w->member()}),
                                   session);
    Outcome out;
    auto walk = [&] {
        chain.request(Phase::MailFrom, "alice@example.org", out.done());
        REQUIRE(a->next() == request("0.6", "mail-from", token(0, Phase::MailFrom), "alice@example.org"));
        CHECK(session.asked.empty());  // a first
        a->result(token(0, Phase::MailFrom), "proceed");
    };
    auto verdict = [&] {
        REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
        return *out.verdict;
    };
    using Asked = std::vector<std::pair<const config::BuiltinFilter*, std::string>>;

    SECTION("a matched reject stops the walk") {
        session.matches[&reject] = Match::Yes;
        walk();
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Reject);
        CHECK(v.code == 550);
        CHECK(v.text == "5.7.1 no spam here");
        CHECK(v.filter == "reject");
        CHECK(session.asked == Asked{{&reject, "alice@example.org"}});
        CHECK(b->quiet());
    }
    SECTION("unmatched built-ins let the walk go on") {
        walk();
        CHECK(b->next() == request("0.6", "mail-from", token(5, Phase::MailFrom), "alice@example.org"));
        CHECK(session.asked ==
              Asked{{&reject, "alice@example.org"}, {&note, "alice@example.org"}, {&bypass, "alice@example.org"}});
        b->result(token(5, Phase::MailFrom), "proceed");
        CHECK(verdict().kind == Verdict::Kind::Proceed);
        CHECK(w->quiet());
    }
    SECTION("a matched report is a filter-report and the walk goes on") {
        session.matches[&note] = Match::Yes;
        walk();
        CHECK(w->next() == report("0.6", "filter-report", "builtin|note|seen"));
        CHECK(b->next() == request("0.6", "mail-from", token(5, Phase::MailFrom), "alice@example.org"));
        b->result(token(5, Phase::MailFrom), "proceed");
        CHECK(verdict().kind == Verdict::Kind::Proceed);
    }
    SECTION("bypass lets the command through without asking the rest") {
        session.matches[&bypass] = Match::Yes;
        walk();
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Proceed);
        CHECK(b->quiet());
    }
    SECTION("a table that cannot be read is a temporary failure") {
        session.matches[&reject] = Match::TempFail;
        walk();
        const Verdict v = verdict();
        CHECK(v.kind == Verdict::Kind::Reject);
        CHECK(v.code == 451);
        CHECK(v.text == "4.3.0 Temporary lookup failure");
        CHECK(v.filter == "reject");
        CHECK(b->quiet());
    }
    CHECK(out.calls == 1);
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: an answer nobody asked for is a protocol violation") {
    Loop loop;
    Session session(loop);
    auto a = started(
        loop, "a",
        {"register|filter|smtp-in|mail-from", "register|filter|smtp-in|data-line", "register|filter|smtp-in|commit"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), b->member()}), session);
    Outcome out;

    SECTION("the token of another member") {
        chain.request(Phase::MailFrom, "alice@example.org", out.done());
        REQUIRE(a->next() != kNothing);
        a->result(token(1, Phase::MailFrom), "proceed");
    }
    SECTION("the token of another phase") {
        chain.request(Phase::MailFrom, "alice@example.org", out.done());
        REQUIRE(a->next() != kNothing);
        a->result(token(0, Phase::RcptTo), "proceed");
    }
    SECTION("a filter-result when nothing was asked") { a->result(token(0, Phase::MailFrom), "proceed"); }
    SECTION("a second answer to one request") {
        chain.request(Phase::MailFrom, "alice@example.org", out.done());
        REQUIRE(a->next() != kNothing);
        a->result(token(0, Phase::MailFrom), "proceed");
        a->result(token(0, Phase::MailFrom), "proceed");
    }
    SECTION("a filter-dataline with no message streaming") { a->dataline(token(0, Phase::DataLine), "hello"); }
    SECTION("a line that does not parse") { a->write("filter-result|" + kSidHex + "|nonsense|proceed"); }
    SECTION("junk at commit, when the message can no longer be marked") {
        chain.request(Phase::Commit, "", out.done());
        REQUIRE(a->next() == request("0.6", "commit", token(0, Phase::Commit), ""));
        a->result(token(0, Phase::Commit), "junk");
    }

    REQUIRE(loop.run_until([&] { return !session.failures.empty(); }));
    REQUIRE(session.failures.size() == 1);
    CHECK(session.failures[0].first == "a");
    CHECK(session.failures[0].second.find("protocol violation") != std::string::npos);
    CHECK(a->conn->failed());
    REQUIRE(a->failures.size() == 1);  // the host is told too, to restart it
    CHECK(a->failures[0] == session.failures[0].second);
    CHECK(loop.run_until([&] { return a->eof(); }));  // its socket is closed
    CHECK_FALSE(out.verdict);
}

TEST_CASE("session chain: lines for another session are dropped") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member()}), session);
    Outcome out;
    chain.request(Phase::MailFrom, "alice@example.org", out.done());
    REQUIRE(a->next() != kNothing);
    a->write("filter-result|" + hex16(kSid + 1) + "|" + token(0, Phase::MailFrom) + "|reject|550 not you");
    CHECK(a->quiet());
    CHECK_FALSE(out.verdict);
    a->result(token(0, Phase::MailFrom), "proceed");
    REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
    CHECK(out.verdict->kind == Verdict::Kind::Proceed);
    CHECK(session.failure_list() == kNone);
    CHECK_FALSE(a->conn->failed());
}

TEST_CASE("session chain: a filter that does not answer within its timeout fails") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(false, 100)}), session);
    Outcome out;
    const auto asked = std::chrono::steady_clock::now();
    chain.request(Phase::MailFrom, "alice@example.org", out.done());
    REQUIRE(a->next() != kNothing);
    REQUIRE(loop.run_until([&] { return !session.failures.empty(); }));
    CHECK(std::chrono::steady_clock::now() - asked >= 90ms);
    CHECK(session.failures[0].first == "a");
    CHECK(session.failures[0].second.find("no answer within") != std::string::npos);
    CHECK(a->conn->failed());
    CHECK_FALSE(out.verdict);
}

TEST_CASE("session chain: a filter that answered is not timed out while a built-in filter after it decides") {
    Loop loop;
    Session session(loop);
    session.builtin_delay = 300ms;  // e.g. waiting for the client's reverse name
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    const auto rdns = builtin(Phase::MailFrom, config::BuiltinFilter::Decision::Reject, "550 no");
    filterhost::SessionChain chain(
        loop.get(), kSid, members({a->member(false, 100), {"rdns", nullptr, &rdns, false, 60'000}, b->member()}),
        session);
    Outcome out;
    chain.request(Phase::MailFrom, "alice@example.org", out.done());
    REQUIRE(a->next() != kNothing);
    a->result(token(0, Phase::MailFrom), "proceed");
    // a has answered: its 100 ms are over, however long what comes after it takes.
    loop.run_for(400ms);
    REQUIRE(session.failure_list() == kNone);
    CHECK_FALSE(a->conn->failed());
    CHECK(b->next() == request("0.6", "mail-from", token(2, Phase::MailFrom), "alice@example.org"));
    b->result(token(2, Phase::MailFrom), "proceed");
    REQUIRE(loop.run_until([&] { return out.verdict.has_value() || !session.failures.empty(); }));
    CHECK(session.failure_list() == kNone);
    CHECK(out.verdict.has_value());
}

TEST_CASE("session chain: a filter that fails while asked") {
    Loop loop;
    Session session(loop);
    const bool fail_open = GENERATE(false, true);
    INFO("on-failure " << (fail_open ? "pass" : "tempfail"));
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(fail_open), b->member()}), session);
    Outcome out;
    chain.request(Phase::MailFrom, "alice@example.org", out.done());
    REQUIRE(a->next() != kNothing);
    a->close();
    REQUIRE(loop.run_until([&] { return !a->failures.empty(); }));
    CHECK(a->failures[0].find("closed its output") != std::string::npos);
    if (fail_open) {
        // on-failure pass: the walk goes on without it.
        CHECK(b->next() == request("0.6", "mail-from", token(1, Phase::MailFrom), "alice@example.org"));
        b->result(token(1, Phase::MailFrom), "proceed");
        REQUIRE(loop.run_until([&] { return out.verdict.has_value(); }));
        CHECK(out.verdict->kind == Verdict::Kind::Proceed);
        CHECK(session.failure_list() == kNone);
        // ... and for the rest of the session.
        Outcome again;
        chain.request(Phase::MailFrom, "carol@example.org", again.done());
        CHECK(b->next() == request("0.6", "mail-from", token(1, Phase::MailFrom), "carol@example.org"));
        b->result(token(1, Phase::MailFrom), "proceed");
        REQUIRE(loop.run_until([&] { return again.verdict.has_value(); }));
        CHECK(session.failure_list() == kNone);
    } else {
        REQUIRE(session.failures.size() == 1);
        CHECK(session.failures[0].first == "a");
        CHECK(session.failures[0].second == a->failures[0]);
        CHECK(b->quiet());
        CHECK_FALSE(out.verdict);
    }
}

TEST_CASE("session chain: on-failure pass does not save a message streaming through the filter") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|data-line"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(true)}), session);
    chain.data_begin();
    chain.data_line("Subject: hi");
    REQUIRE(a->next() != kNothing);
    a->close();
    REQUIRE(loop.run_until([&] { return !session.failures.empty(); }));
    CHECK(session.failures[0].first == "a");
    CHECK(session.ends == 0);
}

TEST_CASE("session chain: on-failure pass drops a filter the message does not stream through") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|data-line"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(true), b->member()}), session);
    chain.data_begin();
    chain.data_line("Subject: hi");
    const std::string tb = token(1, Phase::DataLine);
    CHECK(b->next() == request("0.6", "data-line", tb, "Subject: hi"));
    // a has no part in the message: its failure does not make it incomplete.
    a->close();
    REQUIRE(loop.run_until([&] { return !a->failures.empty(); }));
    REQUIRE(session.failure_list() == kNone);
    chain.data_line(".");
    CHECK(b->next() == request("0.6", "data-line", tb, "."));
    b->dataline(tb, "Subject: hi");
    b->dataline(tb, ".");
    REQUIRE(loop.run_until([&] { return session.ends > 0 || !session.failures.empty(); }));
    CHECK(session.failure_list() == kNone);
    CHECK(session.output == std::vector<std::string>{"Subject: hi"});
    CHECK(session.ends == 1);
}

TEST_CASE("session chain: data lines through a chain of two data-line filters") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|data-line"});
    auto m = started(loop, "m", {"register|filter|smtp-in|mail-from"});
    auto b = started(loop, "b", {"register|filter|smtp-in|data-line"}, filter::Version::V0_7);
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), m->member(), b->member()}), session);
    CHECK(chain.data_filtered());
    chain.data_begin();
    const std::vector<std::string> message = {"Subject: hi", "", "body", "..starts with a dot", "."};
    for (const auto& l : message) chain.data_line(l);
    CHECK_FALSE(chain.data_refused());

    const std::string ta = token(0, Phase::DataLine), tb = token(2, Phase::DataLine);
    for (const auto& l : message) CHECK(a->next() == request("0.6", "data-line", ta, l));
    // The first filter adds a header, then gives the message back as it came.
    a->dataline(ta, "X-A: 1");
    for (const auto& l : message) a->dataline(ta, l);
    std::vector<std::string> expected = {"X-A: 1"};
    expected.insert(expected.end(), message.begin(), message.end());
    for (const auto& l : expected) CHECK(b->next() == request("0.7", "data-line", tb, l));
    CHECK(m->quiet());
    CHECK(session.output.empty());  // the second filter has not answered
    CHECK(session.ends == 0);

    for (const auto& l : expected) b->dataline(tb, l);
    REQUIRE(loop.run_until([&] { return session.ends > 0; }));
    CHECK(session.output == std::vector<std::string>(expected.begin(), expected.end() - 1));
    CHECK(session.ends == 1);
    CHECK(session.failure_list() == kNone);
    // The stream is over: another line from a filter is one nobody asked for.
    b->dataline(tb, "late");
    REQUIRE(loop.run_until([&] { return !session.failures.empty(); }));
    CHECK(session.failures[0].first == "b");
    CHECK(session.failures[0].second.find("protocol violation") != std::string::npos);
}

TEST_CASE("session chain: with no data-line filter the message goes straight to the session") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|mail-from"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member()}), session);
    CHECK_FALSE(chain.data_filtered());
    chain.data_begin();
    for (const char* l : {"Subject: x", "", "..dot", "."}) chain.data_line(l);
    CHECK(session.output == std::vector<std::string>{"Subject: x", "", "..dot"});
    CHECK(session.ends == 1);
    CHECK(a->quiet());
}

TEST_CASE("session chain: a data line too long for the protocol is refused, not sent") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|data-line"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member()}), session);
    const std::string ta = token(0, Phase::DataLine);
    chain.data_begin();
    const std::string fits(filter::kMaxLine - 200, 'f');
    chain.data_line(fits);
    CHECK_FALSE(chain.data_refused());
    chain.data_line(std::string(filter::kMaxLine, 'x'));
    CHECK(chain.data_refused());
    chain.data_line("after");
    chain.data_line(".");
    CHECK(a->next() == request("0.6", "data-line", ta, fits));
    CHECK(a->next() == request("0.6", "data-line", ta, "after"));
    CHECK(a->next() == request("0.6", "data-line", ta, "."));
    CHECK(a->quiet());
    CHECK(chain.data_refused());
    CHECK(session.failure_list() == kNone);
    // The next message starts afresh.
    a->dataline(ta, ".");
    REQUIRE(loop.run_until([&] { return session.ends == 1; }));
    chain.data_begin();
    CHECK_FALSE(chain.data_refused());
}

TEST_CASE("session chain: report events go to the members that registered them, in their version's layout") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|report|smtp-in|link-auth"});
    auto b = started(loop, "b", {"register|report|smtp-in|link-auth", "register|report|smtp-in|tx-mail"},
                     filter::Version::V0_7);
    auto c = started(loop, "c", {"register|filter|smtp-in|mail-from"});
    auto all = started(loop, "all", {"register|report|smtp-in|*"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), b->member(), c->member(), all->member()}),
                                   session);
    CHECK(chain.wants(Event::LinkAuth));
    CHECK(chain.wants(Event::Timeout));  // "all"

    chain.report(filter::LinkAuth{"alice", filter::AuthResult::Pass});
    CHECK(a->next() == report("0.6", "link-auth", "alice|pass"));
    CHECK(b->next() == report("0.7", "link-auth", "pass|alice"));
    CHECK(all->next() == report("0.6", "link-auth", "alice|pass"));

    chain.report(filter::TxMail{0x1234, filter::TxResult::Ok, "alice@example.org"});
    CHECK(b->next() == report("0.7", "tx-mail", "00001234|ok|alice@example.org"));
    CHECK(all->next() == report("0.6", "tx-mail", "00001234|ok|alice@example.org"));

    // A '|' in the username cannot be carried in 0.6, where it is not last.
    chain.report(filter::LinkAuth{"we|ird", filter::AuthResult::Fail});
    CHECK(b->next() == report("0.7", "link-auth", "fail|we|ird"));

    chain.report(filter::LinkDisconnect{});
    CHECK(all->next() == "report|0.6|T|smtp-in|link-disconnect|" + kSidHex);  // no parameters, no trailing '|'

    CHECK(a->quiet());
    CHECK(b->quiet());
    CHECK(c->quiet());
    CHECK(all->quiet());
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: back-pressure: a filter behind congests the chain until it drains") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|data-line"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member()}), session);
    chain.data_begin();
    CHECK_FALSE(chain.congested());
    const std::string body(1000, 'x');
    std::size_t sent = 0;
    while (!chain.congested() && sent < 10'000) {
        chain.data_line(body);
        ++sent;
    }
    REQUIRE(chain.congested());
    CHECK(a->conn->congested());
    CHECK(a->conn->queued() > filterhost::kHighWater);
    CHECK(sent < 2'000);
    // The session would stop reading its client here; a few more lines come
    // all the same (what it had read already).
    for (int i = 0; i < 500; ++i, ++sent) chain.data_line(body);

    // The filter does not read: still congested, nobody told to go on.
    loop.run_for(100ms);
    CHECK(chain.congested());
    CHECK(session.writable == 0);

    // It reads: the queue drains and the session is told once.
    REQUIRE(loop.run_until([&] {
        a->discard();
        return session.writable > 0;
    }));
    CHECK_FALSE(chain.congested());
    CHECK(a->conn->queued() <= filterhost::kLowWater);
    REQUIRE(loop.run_until([&] {
        a->discard();
        return a->discarded == sent;
    }));
    CHECK(a->conn->queued() == 0);
    CHECK(session.writable == 1);
    CHECK(session.failure_list() == kNone);
}

TEST_CASE("session chain: back-pressure: a filter whose successor is behind is not read until it catches up") {
    Loop loop;
    Session session(loop);
    auto a = started(loop, "a", {"register|filter|smtp-in|data-line"});
    auto b = started(loop, "b", {"register|filter|smtp-in|data-line"});
    filterhost::SessionChain chain(loop.get(), kSid, members({a->member(), b->member()}), session);
    const std::string ta = token(0, Phase::DataLine);
    chain.data_begin();
    const std::string body(1000, 'y');
    // a writes lines (as a filter adding to the message may); b does not read them.
    std::size_t written = 0;
    while (!b->conn->congested() && written < 5'000) {
        a->dataline(ta, body);
        if (++written % 10 == 0) loop.run_for(1ms);
    }
    REQUIRE(b->conn->congested());
    CHECK(chain.congested());
    loop.run_for(50ms);
    const std::size_t held = b->conn->queued();
    // What a writes now stays in its socket: the chain does not read it.
    for (int i = 0; i < 20; ++i, ++written) a->dataline(ta, body);
    loop.run_for(100ms);
    CHECK(b->conn->queued() == held);
    CHECK(session.writable == 0);

    // b reads: a is read again, and everything a wrote reaches b in the end.
    REQUIRE(loop.run_until(
        [&] {
            b->discard();
            return b->discarded == written;
        },
        5s));
    REQUIRE(loop.run_until([&] { return !chain.congested() && session.writable > 0; }));
    CHECK(session.output.empty());  // b has given nothing back yet
    CHECK(session.failure_list() == kNone);
}
