// Unit tests of the filter handshake state machine (core/filter/handshake.cpp):
// the handshake of ../shared/reference/filter-transcript-6.8.txt replayed
// (our lines compared with smtpd 6.8's, the filter's fed back), filter-dkimsign's
// registrations written before our config lines as libopensmtpd does, the Go
// filters' after them, the 0.6 and 0.7 config lines, and every failure with
// its reason.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "filter/handshake.hpp"

using namespace postern::filter;

namespace {

Handshake config_68(Version v = Version::V0_6) {
    Handshake h;
    h.version = v;
    h.smtpd_version = "6.8.0p2";
    h.admd = "vm";
    return h;
}

// Lines 6-40 of the transcript: a test filter that registered everything.
const std::vector<std::string> kTranscriptRegisters = {
    "register|report|smtp-in|link-connect",
    "register|report|smtp-in|link-disconnect",
    "register|report|smtp-in|link-greeting",
    "register|report|smtp-in|link-identify",
    "register|report|smtp-in|link-tls",
    "register|report|smtp-in|link-auth",
    "register|report|smtp-in|tx-reset",
    "register|report|smtp-in|tx-begin",
    "register|report|smtp-in|tx-mail",
    "register|report|smtp-in|tx-rcpt",
    "register|report|smtp-in|tx-envelope",
    "register|report|smtp-in|tx-data",
    "register|report|smtp-in|tx-commit",
    "register|report|smtp-in|tx-rollback",
    "register|report|smtp-in|protocol-client",
    "register|report|smtp-in|protocol-server",
    "register|report|smtp-in|filter-report",
    "register|report|smtp-in|filter-response",
    "register|report|smtp-in|timeout",
    "register|filter|smtp-in|connect",
    "register|filter|smtp-in|helo",
    "register|filter|smtp-in|ehlo",
    "register|filter|smtp-in|starttls",
    "register|filter|smtp-in|auth",
    "register|filter|smtp-in|mail-from",
    "register|filter|smtp-in|rcpt-to",
    "register|filter|smtp-in|data",
    "register|filter|smtp-in|data-line",
    "register|filter|smtp-in|rset",
    "register|filter|smtp-in|quit",
    "register|filter|smtp-in|noop",
    "register|filter|smtp-in|help",
    "register|filter|smtp-in|wiz",
    "register|filter|smtp-in|commit",
};

// filter-dkimsign 0.5's registrations (reference section 10), in its order.
const std::vector<std::string> kDkimsignRegisters = {
    "register|filter|smtp-in|data-line", "register|filter|smtp-in|commit",    "register|report|smtp-in|link-disconnect",
    "register|report|smtp-in|tx-begin",  "register|report|smtp-in|tx-commit", "register|report|smtp-in|tx-rollback",
};

void check_dkimsign_registrations(const Registrations& reg) {
    for (std::size_t i = 0; i < kEventCount; ++i) {
        const auto e = static_cast<Event>(i);
        const bool wanted = e == Event::LinkDisconnect || e == Event::TxBegin || e == Event::TxCommit ||
                            e == Event::TxRollback;
        INFO(event_name(e));
        CHECK(reg.wants(Subsystem::SmtpIn, e) == wanted);
        CHECK_FALSE(reg.wants(Subsystem::SmtpOut, e));
    }
    for (std::size_t i = 0; i < kPhaseCount; ++i) {
        const auto p = static_cast<Phase>(i);
        INFO(phase_name(p));
        CHECK(reg.wants(p) == (p == Phase::DataLine || p == Phase::Commit));
    }
}

// A machine that has taken dkimsign's registrations and waits for ready.
HandshakeMachine waiting_machine() {
    HandshakeMachine m("dkim", config_68());
    for (const auto& line : kDkimsignRegisters) REQUIRE(m.feed(line) == HandshakeStep::Waiting);
    REQUIRE(m.state() == HandshakeState::Waiting);
    return m;
}

}  // namespace

TEST_CASE("handshake: the 6.8 transcript's handshake reaches Ready with its registrations", "[handshake]") {
    HandshakeMachine m("all", config_68());
    CHECK(m.name() == "all");
    CHECK(m.version() == Version::V0_6);
    CHECK(m.state() == HandshakeState::Waiting);
    // Transcript lines 1-5, <VERSION> being 6.8.0p2.
    CHECK(m.lines_to_send() == std::vector<std::string>{"config|smtpd-version|6.8.0p2",
                                                        "config|smtp-session-timeout|300", "config|subsystem|smtp-in",
                                                        "config|admd|vm", "config|ready"});
    for (const auto& line : kTranscriptRegisters) {
        INFO(line);
        CHECK(m.feed(line) == HandshakeStep::Waiting);
    }
    CHECK(m.state() == HandshakeState::Waiting);
    CHECK(m.feed("register|ready") == HandshakeStep::Ready);
    CHECK(m.state() == HandshakeState::Ready);
    CHECK_FALSE(m.failure().has_value());
    CHECK(m.describe_failure().empty());
    for (std::size_t i = 0; i < kEventCount; ++i) {
        CHECK(m.registrations().wants(Subsystem::SmtpIn, static_cast<Event>(i)));
        CHECK_FALSE(m.registrations().wants(Subsystem::SmtpOut, static_cast<Event>(i)));
    }
    for (std::size_t i = 0; i < kPhaseCount; ++i) CHECK(m.registrations().wants(static_cast<Phase>(i)));
}

TEST_CASE("handshake: dkimsign registers before our config lines, Ready with exactly its registrations",
          "[handshake]") {
    // libopensmtpd writes everything, register|ready included, at start-up:
    // the host may read it all before it has written a config line.
    HandshakeMachine m("dkim", config_68());
    for (const auto& line : kDkimsignRegisters) CHECK(m.feed(line) == HandshakeStep::Waiting);
    CHECK(m.feed("register|ready") == HandshakeStep::Ready);
    CHECK(m.state() == HandshakeState::Ready);
    check_dkimsign_registrations(m.registrations());
    // The config lines are still there to be written.
    CHECK(m.lines_to_send().size() == 5);
    CHECK(m.lines_to_send().back() == "config|ready");
}

TEST_CASE("handshake: registrations interleaved before, during and after our config lines", "[handshake]") {
    HandshakeMachine m("dkim", config_68());
    const auto& out = m.lines_to_send();
    REQUIRE(out.size() == 5);
    // Two registrations before the host writes anything, one between its
    // config lines, the rest and ready after config|ready (the Go filters'
    // way); the host writes its lines one by one in between.
    std::vector<std::string> written;
    auto write_next = [&] { written.push_back(out[written.size()]); };
    CHECK(m.feed(kDkimsignRegisters[0]) == HandshakeStep::Waiting);
    CHECK(m.feed(kDkimsignRegisters[1]) == HandshakeStep::Waiting);
    write_next();
    write_next();
    CHECK(m.feed(kDkimsignRegisters[2]) == HandshakeStep::Waiting);
    write_next();
    CHECK(m.feed(kDkimsignRegisters[3]) == HandshakeStep::Waiting);
    write_next();
    write_next();
    CHECK(written == out);
    CHECK(m.state() == HandshakeState::Waiting);
    CHECK(m.feed(kDkimsignRegisters[4]) == HandshakeStep::Waiting);
    CHECK(m.feed(kDkimsignRegisters[5]) == HandshakeStep::Waiting);
    CHECK(m.feed("register|ready") == HandshakeStep::Ready);
    check_dkimsign_registrations(m.registrations());
}

TEST_CASE("handshake: a filter may register nothing, or a subsystem's every event with *", "[handshake]") {
    HandshakeMachine none("quiet", config_68());
    CHECK(none.feed("register|ready") == HandshakeStep::Ready);
    CHECK(none.registrations().empty());

    HandshakeMachine star("out", config_68());
    CHECK(star.feed("register|report|smtp-out|*") == HandshakeStep::Waiting);
    CHECK(star.feed("register|ready") == HandshakeStep::Ready);
    CHECK(star.registrations().wants(Subsystem::SmtpOut, Event::TxMail));
    CHECK_FALSE(star.registrations().wants(Subsystem::SmtpIn, Event::TxMail));
}

TEST_CASE("handshake: 0.6 sends no protocol line, 0.7 announces config|protocol|0.7", "[handshake]") {
    HandshakeMachine v6("a", config_68(Version::V0_6));
    CHECK(v6.version() == Version::V0_6);
    CHECK(v6.lines_to_send() == std::vector<std::string>{"config|smtpd-version|6.8.0p2",
                                                         "config|smtp-session-timeout|300", "config|subsystem|smtp-in",
                                                         "config|admd|vm", "config|ready"});

    HandshakeMachine v7("b", config_68(Version::V0_7));
    CHECK(v7.version() == Version::V0_7);
    CHECK(v7.lines_to_send() == std::vector<std::string>{"config|smtpd-version|6.8.0p2", "config|protocol|0.7",
                                                         "config|smtp-session-timeout|300", "config|subsystem|smtp-in",
                                                         "config|admd|vm", "config|ready"});
    CHECK(v7.feed("register|ready") == HandshakeStep::Ready);

    // A default-constructed config is 0.6 too: Debian 12's filters' layout.
    Handshake def;
    def.smtpd_version = "x";
    def.admd = "y";
    CHECK(HandshakeMachine("c", def).version() == Version::V0_6);
}

TEST_CASE("handshake: a line that does not parse fails it, naming the line and the error", "[handshake]") {
    struct Case {
        std::string line;
        ParseError error;
        std::string text;
    };
    const std::vector<Case> cases = {
        {"hello", ParseError::UnknownLine,
         "line \"hello\": unknown line (register, filter-result, filter-dataline or report expected)"},
        {"", ParseError::UnknownLine,
         "line \"\": unknown line (register, filter-result, filter-dataline or report expected)"},
        {"register|report|smtp-in|link-nope", ParseError::UnknownEvent,
         "line \"register|report|smtp-in|link-nope\": unknown report event"},
        {"register|filter|smtp-in|mail", ParseError::UnknownPhase,
         "line \"register|filter|smtp-in|mail\": unknown filter phase"},
        {"register|filter|smtp-out|connect", ParseError::FilterNotSmtpIn,
         "line \"register|filter|smtp-out|connect\": filter phases exist only for smtp-in"},
        {"register|report|lmtp|tx-mail", ParseError::UnknownSubsystem,
         "line \"register|report|lmtp|tx-mail\": unknown subsystem (smtp-in or smtp-out expected)"},
        {"register|later", ParseError::UnknownRegister,
         "line \"register|later\": register: report, filter or ready expected"},
        {"register|ready|now", ParseError::ExtraField, "line \"register|ready|now\": unexpected extra field"},
        {"register|report|smtp-in", ParseError::MissingField, "line \"register|report|smtp-in\": missing field"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        HandshakeMachine m = waiting_machine();
        CHECK(m.feed(c.line) == HandshakeStep::Failed);
        CHECK(m.state() == HandshakeState::Failed);
        REQUIRE(m.failure().has_value());
        CHECK(m.failure()->kind == HandshakeFailure::BadLine);
        CHECK(m.failure()->parse == c.error);
        CHECK(m.failure()->text() == c.text);
        CHECK(m.describe_failure() == "filter \"dkim\": handshake failed: " + c.text);
    }
}

TEST_CASE("handshake: a result, data line or report before ready fails it", "[handshake]") {
    const std::vector<std::string> lines = {
        "filter-result|7641df9771b4ed00|0123456789abcdef|proceed",
        "filter-dataline|7641df9771b4ed00|0123456789abcdef|.",
        "report|1700000000.123456|smtp-in|7641df9771b4ed00|hello",
    };
    for (const auto& line : lines) {
        INFO(line);
        HandshakeMachine m = waiting_machine();
        CHECK(m.feed(line) == HandshakeStep::Failed);
        REQUIRE(m.failure().has_value());
        CHECK(m.failure()->kind == HandshakeFailure::NotRegister);
        CHECK_FALSE(m.failure()->parse.has_value());
        CHECK(m.failure()->text() == "line \"" + line + "\": not a register line before register|ready");
    }
}

TEST_CASE("handshake: a register line after ready, a second ready included, fails it", "[handshake]") {
    for (const std::string line : {"register|ready", "register|report|smtp-in|tx-mail", "register|bogus"}) {
        INFO(line);
        HandshakeMachine m = waiting_machine();
        REQUIRE(m.feed("register|ready") == HandshakeStep::Ready);
        CHECK(m.feed(line) == HandshakeStep::Failed);
        CHECK(m.state() == HandshakeState::Failed);
        REQUIRE(m.failure().has_value());
        CHECK(m.failure()->kind == HandshakeFailure::LateRegister);
        CHECK(m.failure()->text() == "line \"" + line + "\": register line after register|ready");
    }
}

TEST_CASE("handshake: after ready, other lines are the session layer's", "[handshake]") {
    HandshakeMachine m = waiting_machine();
    REQUIRE(m.feed("register|ready") == HandshakeStep::Ready);
    CHECK(m.feed("filter-result|7641df9771b4ed00|0123456789abcdef|proceed") == HandshakeStep::NotHandshake);
    CHECK(m.feed("garbage, the host's to refuse") == HandshakeStep::NotHandshake);
    CHECK(m.feed("registered|x") == HandshakeStep::NotHandshake);
    CHECK(m.state() == HandshakeState::Ready);
    // Neither the end of input nor the timer is the handshake's business now.
    m.end_of_input();
    m.timed_out();
    CHECK(m.state() == HandshakeState::Ready);
    CHECK_FALSE(m.failure().has_value());
    check_dkimsign_registrations(m.registrations());
}

TEST_CASE("handshake: end of input before ready fails it", "[handshake]") {
    HandshakeMachine fresh("dkim", config_68());
    fresh.end_of_input();
    CHECK(fresh.state() == HandshakeState::Failed);
    REQUIRE(fresh.failure().has_value());
    CHECK(fresh.failure()->kind == HandshakeFailure::EndOfInput);
    CHECK(fresh.failure()->text() == "end of input before register|ready");
    CHECK(fresh.describe_failure() == "filter \"dkim\": handshake failed: end of input before register|ready");

    HandshakeMachine half = waiting_machine();
    half.end_of_input();
    REQUIRE(half.failure().has_value());
    CHECK(half.failure()->kind == HandshakeFailure::EndOfInput);
}

TEST_CASE("handshake: the host's timer fails it with \"timed out\" unless Ready", "[handshake]") {
    HandshakeMachine m = waiting_machine();
    m.timed_out();
    CHECK(m.state() == HandshakeState::Failed);
    REQUIRE(m.failure().has_value());
    CHECK(m.failure()->kind == HandshakeFailure::TimedOut);
    CHECK(m.failure()->text() == "timed out");
    CHECK(m.describe_failure() == "filter \"dkim\": handshake failed: timed out");
}

TEST_CASE("handshake: once failed, the first reason stays and nothing moves it", "[handshake]") {
    HandshakeMachine m = waiting_machine();
    CHECK(m.feed("nonsense") == HandshakeStep::Failed);
    const HandshakeError first = *m.failure();
    CHECK(m.feed("register|ready") == HandshakeStep::Failed);
    CHECK(m.feed("register|report|smtp-in|tx-mail") == HandshakeStep::Failed);
    m.timed_out();
    m.end_of_input();
    CHECK(m.state() == HandshakeState::Failed);
    CHECK(*m.failure() == first);
    CHECK_FALSE(m.registrations().wants(Subsystem::SmtpIn, Event::TxMail));
}

TEST_CASE("handshake: the quoted line is made printable and cut", "[handshake]") {
    HandshakeMachine ctl = waiting_machine();
    CHECK(ctl.feed(std::string("register|ready\r", 15)) == HandshakeStep::Failed);
    CHECK(ctl.failure()->parse == ParseError::ControlByte);
    CHECK(ctl.failure()->line == "register|ready\\x0d");

    HandshakeMachine nul = waiting_machine();
    CHECK(nul.feed(std::string("x\0\xff", 3)) == HandshakeStep::Failed);
    CHECK(nul.failure()->line == "x\\x00\\xff");

    HandshakeMachine big = waiting_machine();
    const std::string huge(kMaxLine + 1, 'a');
    CHECK(big.feed(huge) == HandshakeStep::Failed);
    CHECK(big.failure()->parse == ParseError::TooLong);
    CHECK(big.failure()->line == std::string(kQuotedLine, 'a') + "...");
}

TEST_CASE("handshake: config lines we cannot encode fail it at once, with nothing to send", "[handshake]") {
    Handshake h = config_68();
    h.admd = "vm\r\nconfig|ready";
    HandshakeMachine m("dkim", h);
    CHECK(m.state() == HandshakeState::Failed);
    CHECK(m.lines_to_send().empty());
    REQUIRE(m.failure().has_value());
    CHECK(m.failure()->kind == HandshakeFailure::BadConfig);
    CHECK(m.failure()->encode == EncodeError::ControlByte);
    CHECK(m.failure()->text() == "our config lines cannot be sent: CR, LF or NUL in a field");
    CHECK(m.feed("register|ready") == HandshakeStep::Failed);
}
