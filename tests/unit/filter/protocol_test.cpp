// Unit tests of the filter protocol's line codec (core/filter/protocol.cpp):
// every line a filter writes parsed and written back, every line the daemon
// writes compared field for field with OpenSMTPD 6.8's lines recorded in
// ../shared/reference/filter-transcript-6.8.txt (copied here with the
// placeholders filled in: timestamps fixed, ids chosen), both versions'
// layouts, and every refusal with its error.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "filter/protocol.hpp"

using namespace postern::filter;
using namespace std::string_literals;

namespace {

constexpr Timestamp kTs{1700000000, 123456};
constexpr const char* kTsText = "1700000000.123456";
constexpr std::uint64_t kSid = 0x7641df9771b4ed00;
constexpr std::uint64_t kTok = 0x0123456789abcdef;
constexpr std::uint32_t kMsg = 0x1a2b3c4d;

// A transcript line with its placeholders filled in the way the tests fix them.
std::string fill(std::string line) {
    const std::vector<std::pair<std::string, std::string>> subst = {
        {"<TS>", kTsText},
        {"<ID1>", "7641df9771b4ed00"},
        {"<TOK>", "0123456789abcdef"},
        {"<MSG1>", "1a2b3c4d"},
        {"<ID8>", "1a2b3c4d00000001"},
        {"<SIZE>", "512"},
        {"<PORT1>", "41234"},
        {"<PORT2>", "25"},
    };
    for (const auto& [from, to] : subst)
        for (std::size_t at = line.find(from); at != std::string::npos; at = line.find(from, at + to.size()))
            line.replace(at, from.size(), to);
    return line;
}

std::vector<std::string> fields(std::string_view line) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t bar; (bar = line.find('|', start)) != std::string_view::npos; start = bar + 1)
        out.emplace_back(line.substr(start, bar - start));
    out.emplace_back(line.substr(start));
    return out;
}

// Field for field first (a clearer failure), then byte for byte.
void same_line(const std::optional<std::string>& got, const std::string& want) {
    REQUIRE(got.has_value());
    CHECK(fields(*got) == fields(want));
    CHECK(*got == want);
}

std::string report(Version v, const ReportEvent& r) {
    EncodeError err = EncodeError::BadValue;
    auto line = encode_report(v, kTs, Subsystem::SmtpIn, kSid, r, &err);
    INFO(describe(err));
    REQUIRE(line.has_value());
    CHECK(err == EncodeError::None);
    return *line;
}

std::string request(Version v, const FilterRequest& r) {
    EncodeError err = EncodeError::BadValue;
    auto line = encode_filter_request(v, kTs, kSid, kTok, r, &err);
    INFO(describe(err));
    REQUIRE(line.has_value());
    return *line;
}

EncodeError report_error(Version v, const ReportEvent& r) {
    EncodeError err = EncodeError::None;
    CHECK_FALSE(encode_report(v, kTs, Subsystem::SmtpIn, kSid, r, &err).has_value());
    return err;
}

EncodeError request_error(const FilterRequest& r) {
    EncodeError err = EncodeError::None;
    CHECK_FALSE(encode_filter_request(Version::V0_6, kTs, kSid, kTok, r, &err).has_value());
    return err;
}

FilterLine parsed(std::string_view line) {
    ParseResult r = parse_filter_line(line);
    if (const auto* e = std::get_if<ParseError>(&r)) FAIL("refused: " << line << ": " << describe(*e));
    return std::get<FilterLine>(r);
}

ParseError refused(std::string_view line) {
    ParseResult r = parse_filter_line(line);
    INFO("line: " << line);
    REQUIRE(std::holds_alternative<ParseError>(r));
    return std::get<ParseError>(r);
}

// Parses, writes back, parses again: same value, and here the same text.
template <typename T>
T round_trip(std::string_view line) {
    FilterLine l = parsed(line);
    REQUIRE(std::holds_alternative<T>(l));
    EncodeError err = EncodeError::BadValue;
    auto again = encode_filter_line(l, &err);
    REQUIRE(again.has_value());
    CHECK(err == EncodeError::None);
    CHECK(*again == line);
    CHECK(parsed(*again) == l);
    return std::get<T>(l);
}

}  // namespace

TEST_CASE("handshake as OpenSMTPD 6.8 sends it (0.6) and as 7.6+ (0.7)") {
    Handshake h;
    h.smtpd_version = "6.8.0p2";
    h.admd = "vm";
    EncodeError err = EncodeError::BadValue;
    auto lines = encode_handshake(h, &err);
    REQUIRE(lines.has_value());
    CHECK(err == EncodeError::None);
    CHECK(*lines == std::vector<std::string>{"config|smtpd-version|6.8.0p2", "config|smtp-session-timeout|300",
                                             "config|subsystem|smtp-in", "config|admd|vm", "config|ready"});

    h.version = Version::V0_7;
    h.smtpd_version = "7.8.0-portable";
    h.smtp_out = true;
    lines = encode_handshake(h, &err);
    REQUIRE(lines.has_value());
    CHECK(*lines == std::vector<std::string>{"config|smtpd-version|7.8.0-portable", "config|protocol|0.7",
                                             "config|smtp-session-timeout|300", "config|subsystem|smtp-in",
                                             "config|subsystem|smtp-out", "config|admd|vm", "config|ready"});

    h.admd = "bad\nname";
    CHECK_FALSE(encode_handshake(h, &err).has_value());
    CHECK(err == EncodeError::ControlByte);
    CHECK_FALSE(encode_config("a|b", "v", &err).has_value());
    CHECK(err == EncodeError::PipeInField);
    CHECK(encode_config("admd", "a|b", &err) == "config|admd|a|b");  // last field: '|' allowed
}

TEST_CASE("register lines of the transcript fill a registration set with every event and phase") {
    const std::vector<std::string> events = {"link-connect",  "link-disconnect", "link-greeting",   "link-identify",
                                             "link-tls",      "link-auth",       "tx-reset",        "tx-begin",
                                             "tx-mail",       "tx-rcpt",         "tx-envelope",     "tx-data",
                                             "tx-commit",     "tx-rollback",     "protocol-client", "protocol-server",
                                             "filter-report", "filter-response", "timeout"};
    const std::vector<std::string> phases = {"connect",   "helo",    "ehlo", "starttls",  "auth",
                                             "mail-from", "rcpt-to", "data", "data-line", "rset",
                                             "quit",      "noop",    "help", "wiz",       "commit"};
    Registrations reg;
    CHECK(reg.empty());
    for (const auto& e : events) {
        auto r = round_trip<RegisterReport>("register|report|smtp-in|" + e);
        CHECK(r.subsystem == Subsystem::SmtpIn);
        REQUIRE(r.event.has_value());
        CHECK(event_name(*r.event) == e);
        CHECK_FALSE(reg.add_line("register|report|smtp-in|" + e).has_value());
    }
    for (const auto& p : phases) {
        auto r = round_trip<RegisterFilter>("register|filter|smtp-in|" + p);
        CHECK(phase_name(r.phase) == p);
        CHECK_FALSE(reg.add_line("register|filter|smtp-in|" + p).has_value());
    }
    for (std::size_t i = 0; i < kEventCount; ++i) {
        CHECK(reg.wants(Subsystem::SmtpIn, static_cast<Event>(i)));
        CHECK_FALSE(reg.wants(Subsystem::SmtpOut, static_cast<Event>(i)));
    }
    for (std::size_t i = 0; i < kPhaseCount; ++i) CHECK(reg.wants(static_cast<Phase>(i)));
    round_trip<RegisterReady>("register|ready");
}

TEST_CASE("registration set: only what was registered, '*' for all, unknown names refused") {
    Registrations reg;
    CHECK_FALSE(reg.add_line("register|report|smtp-in|tx-begin").has_value());
    CHECK_FALSE(reg.add_line("register|filter|smtp-in|data-line").has_value());
    CHECK(reg.wants(Subsystem::SmtpIn, Event::TxBegin));
    CHECK_FALSE(reg.wants(Subsystem::SmtpIn, Event::TxCommit));
    CHECK(reg.wants(Phase::DataLine));
    CHECK_FALSE(reg.wants(Phase::Commit));

    auto all = round_trip<RegisterReport>("register|report|smtp-out|*");
    CHECK(all.subsystem == Subsystem::SmtpOut);
    CHECK_FALSE(all.event.has_value());
    CHECK_FALSE(reg.add_line("register|report|smtp-out|*").has_value());
    CHECK(reg.wants(Subsystem::SmtpOut, Event::Timeout));
    CHECK(reg.wants(Subsystem::SmtpOut, Event::LinkConnect));

    CHECK(reg.add_line("register|report|smtp-in|link-bogus") == ParseError::UnknownEvent);
    CHECK(reg.add_line("register|filter|smtp-in|vrfy") == ParseError::UnknownPhase);
    CHECK(reg.add_line("register|filter|smtp-out|connect") == ParseError::FilterNotSmtpIn);
    CHECK(reg.add_line("register|report|lmtp|tx-begin") == ParseError::UnknownSubsystem);
    CHECK(reg.add_line("register|ready") == ParseError::UnknownRegister);
    CHECK(reg.add_line("filter-result|7641df9771b4ed00|0123456789abcdef|proceed") == ParseError::UnknownLine);
    CHECK(reg.add_line("register|report|smtp-in|Tx-Begin") == ParseError::UnknownEvent);  // names are exact
}

TEST_CASE("report events match the 6.8 transcript field for field") {
    const auto v = Version::V0_6;
    same_line(report(v, LinkConnect{"localhost", FcrdnsResult::Pass, "127.0.0.1:41234", "127.0.0.1:25"}),
              fill("report|0.6|<TS>|smtp-in|link-connect|<ID1>|localhost|pass|127.0.0.1:<PORT1>|127.0.0.1:<PORT2>"));
    same_line(report(v, FilterResponse{Phase::Connect, Decision::Proceed, ""}),
              fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|connected|proceed"));
    same_line(report(v, ProtocolServer{"220 vm ESMTP OpenSMTPD"}),
              fill("report|0.6|<TS>|smtp-in|protocol-server|<ID1>|220 vm ESMTP OpenSMTPD"));
    same_line(report(v, LinkGreeting{"vm"}), fill("report|0.6|<TS>|smtp-in|link-greeting|<ID1>|vm"));
    same_line(report(v, ProtocolClient{"ehlo client.example.test"}),
              fill("report|0.6|<TS>|smtp-in|protocol-client|<ID1>|ehlo client.example.test"));
    same_line(report(v, FilterResponse{Phase::Ehlo, Decision::Proceed, ""}),
              fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|ehlo|proceed"));
    same_line(report(v, LinkIdentify{IdentifyVerb::Ehlo, "client.example.test"}),
              fill("report|0.6|<TS>|smtp-in|link-identify|<ID1>|EHLO|client.example.test"));
    same_line(report(v, FilterResponse{Phase::MailFrom, Decision::Reject,
                                       "550 5.7.1 sender blocked by heldout proto_filter"}),
              fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|mail-from|reject|550 5.7.1 sender blocked by "
                   "heldout proto_filter"));
    same_line(report(v, TxBegin{kMsg}), fill("report|0.6|<TS>|smtp-in|tx-begin|<ID1>|<MSG1>"));
    same_line(report(v, TxMail{kMsg, TxResult::Ok, "alice@example.test"}),
              fill("report|0.6|<TS>|smtp-in|tx-mail|<ID1>|<MSG1>|ok|alice@example.test"));
    same_line(report(v, TxEnvelope{kMsg, 0x1a2b3c4d00000001}),
              fill("report|0.6|<TS>|smtp-in|tx-envelope|<ID1>|<MSG1>|<ID8>"));
    same_line(report(v, TxRcpt{kMsg, TxResult::Ok, "bob@example.test"}),
              fill("report|0.6|<TS>|smtp-in|tx-rcpt|<ID1>|<MSG1>|ok|bob@example.test"));
    same_line(report(v, ProtocolServer{"354 Enter mail, end with \".\" on a line by itself"}),
              fill("report|0.6|<TS>|smtp-in|protocol-server|<ID1>|354 Enter mail, end with \".\" on a line by "
                   "itself"));
    same_line(report(v, TxData{kMsg, TxResult::Ok}), fill("report|0.6|<TS>|smtp-in|tx-data|<ID1>|<MSG1>|ok"));
    same_line(report(v, ProtocolClient{"."}), fill("report|0.6|<TS>|smtp-in|protocol-client|<ID1>|."));
    same_line(report(v, FilterResponse{Phase::Commit, Decision::Proceed, ""}),
              fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|commit|proceed"));
    same_line(report(v, TxCommit{kMsg, 512}), fill("report|0.6|<TS>|smtp-in|tx-commit|<ID1>|<MSG1>|<SIZE>"));
    same_line(report(v, TxReset{kMsg}), fill("report|0.6|<TS>|smtp-in|tx-reset|<ID1>|<MSG1>"));
    same_line(report(v, LinkDisconnect{}), fill("report|0.6|<TS>|smtp-in|link-disconnect|<ID1>"));
}

TEST_CASE("report events the transcript does not show, laid out as section 4 says") {
    const auto v = Version::V0_6;
    CHECK(report(v, LinkTls{"TLSv1.3:TLS_AES_256_GCM_SHA384:256"}) ==
          fill("report|0.6|<TS>|smtp-in|link-tls|<ID1>|TLSv1.3:TLS_AES_256_GCM_SHA384:256"));
    CHECK(report(v, TxRollback{kMsg}) == fill("report|0.6|<TS>|smtp-in|tx-rollback|<ID1>|<MSG1>"));
    CHECK(report(v, Timeout{}) == fill("report|0.6|<TS>|smtp-in|timeout|<ID1>"));
    CHECK(report(v, FilterReportEvent{ReportKind::Proc, "dkim", "signed | ok"}) ==
          fill("report|0.6|<TS>|smtp-in|filter-report|<ID1>|proc|dkim|signed | ok"));
    CHECK(report(v, FilterReportEvent{ReportKind::Builtin, "norelay", "hit"}) ==
          fill("report|0.6|<TS>|smtp-in|filter-report|<ID1>|builtin|norelay|hit"));
    CHECK(report(v, FilterResponse{Phase::Starttls, Decision::Junk, ""}) ==
          fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|tls|junk"));
    CHECK(report(v, FilterResponse{Phase::Helo, Decision::Rewrite, "other.example"}) ==
          fill("report|0.6|<TS>|smtp-in|filter-response|<ID1>|helo|rewrite|other.example"));
    CHECK(report(v, LinkIdentify{IdentifyVerb::Helo, "x"}) ==
          fill("report|0.6|<TS>|smtp-in|link-identify|<ID1>|HELO|x"));
    CHECK(report(v, TxMail{0, TxResult::Tempfail, ""}) ==
          fill("report|0.6|<TS>|smtp-in|tx-mail|<ID1>|00000000|tempfail|"));  // null sender
    CHECK(report(v, TxRcpt{kMsg, TxResult::Permfail, "a|b@example.test"}) ==
          fill("report|0.6|<TS>|smtp-in|tx-rcpt|<ID1>|<MSG1>|permfail|a|b@example.test"));
    CHECK(report(v, LinkConnect{"<unknown>", FcrdnsResult::Error, "unix:/var/run/smtpd.sock",
                                "unix:/var/run/smtpd.sock"}) ==
          fill("report|0.6|<TS>|smtp-in|link-connect|<ID1>|<unknown>|error|unix:/var/run/smtpd.sock|unix:/var/run/"
               "smtpd.sock"));
    CHECK(encode_report(v, kTs, Subsystem::SmtpOut, kSid, LinkDisconnect{}, nullptr) ==
          fill("report|0.6|<TS>|smtp-out|link-disconnect|<ID1>"));
    CHECK(report(v, TxBegin{1}).find("|00000001") != std::string::npos);  // 8 hex digits, zero padded
    CHECK(report(v, LinkGreeting{"h"}).find("|0000000000000001|") == std::string::npos);
    CHECK(encode_report(v, {5, 7}, Subsystem::SmtpIn, 1, LinkDisconnect{}, nullptr) ==
          "report|0.6|5.000007|smtp-in|link-disconnect|0000000000000001");
}

TEST_CASE("versions: 0.7 says 0.7 and puts link-auth's result first, tx-mail/tx-rcpt are the same in both") {
    CHECK(report(Version::V0_6, LinkAuth{"alice", AuthResult::Pass}) ==
          fill("report|0.6|<TS>|smtp-in|link-auth|<ID1>|alice|pass"));
    CHECK(report(Version::V0_7, LinkAuth{"alice", AuthResult::Pass}) ==
          fill("report|0.7|<TS>|smtp-in|link-auth|<ID1>|pass|alice"));
    CHECK(report(Version::V0_7, LinkAuth{"a|b", AuthResult::Fail}) ==
          fill("report|0.7|<TS>|smtp-in|link-auth|<ID1>|fail|a|b"));
    // 0.6 cannot carry a '|' in the username: filter-rspamd would die on it.
    CHECK(report_error(Version::V0_6, LinkAuth{"a|b", AuthResult::Error}) == EncodeError::PipeInField);
    CHECK(report(Version::V0_7, TxMail{kMsg, TxResult::Ok, "alice@example.test"}) ==
          fill("report|0.7|<TS>|smtp-in|tx-mail|<ID1>|<MSG1>|ok|alice@example.test"));
    CHECK(report(Version::V0_7, TxRcpt{kMsg, TxResult::Tempfail, "bob@example.test"}) ==
          fill("report|0.7|<TS>|smtp-in|tx-rcpt|<ID1>|<MSG1>|tempfail|bob@example.test"));
    CHECK(request(Version::V0_7, PhaseRequest{Phase::Quit, ""}) ==
          "filter|0.7|"s + kTsText + "|smtp-in|quit|7641df9771b4ed00|0123456789abcdef|");
    CHECK(version_name(Version::V0_6) == "0.6");
    CHECK(version_name(Version::V0_7) == "0.7");
}

TEST_CASE("filter requests match the 6.8 transcript, parameterless ones keep their trailing '|'") {
    const auto v = Version::V0_6;
    const std::string head = fill("filter|0.6|<TS>|smtp-in|");
    const std::string ids = "7641df9771b4ed00|0123456789abcdef|";
    same_line(request(v, ConnectRequest{"localhost", "127.0.0.1"}), head + "connect|" + ids + "localhost|127.0.0.1");
    same_line(request(v, PhaseRequest{Phase::Ehlo, "client.example.test"}),
              head + "ehlo|" + ids + "client.example.test");
    same_line(request(v, PhaseRequest{Phase::Noop, ""}), head + "noop|" + ids);
    same_line(request(v, PhaseRequest{Phase::MailFrom, "blocked@example.test"}),
              head + "mail-from|" + ids + "blocked@example.test");
    same_line(request(v, PhaseRequest{Phase::Rset, ""}), head + "rset|" + ids);
    same_line(request(v, PhaseRequest{Phase::RcptTo, "bob@example.test"}),
              head + "rcpt-to|" + ids + "bob@example.test");
    same_line(request(v, PhaseRequest{Phase::Data, ""}), head + "data|" + ids);
    same_line(request(v, PhaseRequest{Phase::Commit, ""}), head + "commit|" + ids);
    same_line(request(v, PhaseRequest{Phase::Quit, ""}), head + "quit|" + ids);
    // Not in the transcript; section 5's layouts.
    CHECK(request(v, PhaseRequest{Phase::Helo, "x.example"}) == head + "helo|" + ids + "x.example");
    CHECK(request(v, PhaseRequest{Phase::Starttls, ""}) == head + "starttls|" + ids);
    CHECK(request(v, PhaseRequest{Phase::Auth, "PLAIN dGVzdAB0ZXN0AHRlc3Q="}) ==
          head + "auth|" + ids + "PLAIN dGVzdAB0ZXN0AHRlc3Q=");
    CHECK(request(v, ConnectRequest{"<unknown>", "[2001:db8::1]"}) ==
          head + "connect|" + ids + "<unknown>|[2001:db8::1]");
    CHECK(request(v, PhaseRequest{Phase::MailFrom, ""}) == head + "mail-from|" + ids);  // null sender
}

TEST_CASE("data lines stay dot-stuffed, '.' ends the stream, '|' and empty lines pass as the transcript shows") {
    const std::string head = fill("filter|0.6|<TS>|smtp-in|data-line|<ID1>|0123456789abcdef|");
    const std::vector<std::string> lines = {"Received: from client.example.test (localhost [127.0.0.1])",
                                            "\tby vm (OpenSMTPD) with ESMTP id 1a2b3c4d",
                                            "From: Alice <alice@example.test>",
                                            "",
                                            "first body line",
                                            "..a line that starts with a dot",
                                            "a line with a | pipe",
                                            "."};
    for (const auto& l : lines) {
        same_line(encode_data_line(Version::V0_6, kTs, kSid, kTok, l, nullptr), head + l);
        CHECK(request(Version::V0_6, PhaseRequest{Phase::DataLine, l}) == head + l);
        // The filter's echo, as recorded.
        auto echo = round_trip<FilterDataline>("filter-dataline|7641df9771b4ed00|0123456789abcdef|" + l);
        CHECK(echo.session == kSid);
        CHECK(echo.token == kTok);
        CHECK(echo.line == l);
    }
    CHECK(is_data_end("."));
    CHECK_FALSE(is_data_end(".."));
    CHECK_FALSE(is_data_end(""));
    CHECK(dot_stuff(".a line that starts with a dot") == "..a line that starts with a dot");
    CHECK(dot_stuff(".") == "..");
    CHECK(dot_stuff("no dot") == "no dot");
    CHECK(dot_stuff("") == "");
    CHECK(dot_unstuff("..a line that starts with a dot") == ".a line that starts with a dot");
    CHECK(dot_unstuff("..") == ".");
    CHECK(dot_unstuff("plain") == "plain");
    CHECK(dot_unstuff(dot_stuff(".x")) == ".x");

    EncodeError err = EncodeError::None;
    CHECK_FALSE(encode_data_line(Version::V0_6, kTs, kSid, kTok, "bare\rcr", &err).has_value());
    CHECK(err == EncodeError::ControlByte);
    CHECK_FALSE(encode_data_line(Version::V0_6, kTs, kSid, kTok, std::string(kMaxLine, 'a'), &err).has_value());
    CHECK(err == EncodeError::TooLong);
}

TEST_CASE("filter-result decisions, as the transcript and section 5 write them") {
    auto r = round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|proceed");
    CHECK(r.session == kSid);
    CHECK(r.token == kTok);
    CHECK(r.decision == Decision::Proceed);
    CHECK(round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|junk").decision == Decision::Junk);

    r = round_trip<FilterResult>(
        "filter-result|7641df9771b4ed00|0123456789abcdef|reject|550 5.7.1 sender blocked by heldout proto_filter");
    CHECK(r.decision == Decision::Reject);
    CHECK(r.reply == Reply{550, "5.7.1 sender blocked by heldout proto_filter"});

    r = round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|disconnect|421 try | later");
    CHECK(r.decision == Decision::Disconnect);
    CHECK(r.reply == Reply{421, "try | later"});
    CHECK(round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|reject|451 ").reply ==
          Reply{451, ""});

    r = round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|rewrite|<new@example.test>");
    CHECK(r.decision == Decision::Rewrite);
    CHECK(r.value == "<new@example.test>");
    r = round_trip<FilterResult>("filter-result|7641df9771b4ed00|0123456789abcdef|report|seen it | twice");
    CHECK(r.decision == Decision::Report);
    CHECK(r.value == "seen it | twice");

    // Upper-case hex reads as the same ids; they are written back in lower case.
    auto upper = parsed("filter-result|7641DF9771B4ED00|0123456789ABCDEF|proceed");
    CHECK(std::get<FilterResult>(upper) == FilterResult{kSid, kTok, Decision::Proceed, {}, {}});
}

TEST_CASE("filter-originated report lines (section 6) parse and are written back") {
    auto r = round_trip<FilterOriginReport>("report|1700000000.123456|smtp-in|7641df9771b4ed00|spam score 3 | high");
    CHECK(r.time == kTs);
    CHECK(r.subsystem == Subsystem::SmtpIn);
    CHECK(r.session == kSid);
    CHECK(r.text == "spam score 3 | high");
    CHECK(round_trip<FilterOriginReport>("report|1.000000|smtp-out|0000000000000001|").text.empty());
    // A shorter fraction or none reads as the same instant.
    auto short_frac = std::get<FilterOriginReport>(parsed("report|1700000000.5|smtp-in|7641df9771b4ed00|x"));
    CHECK(short_frac.time == Timestamp{1700000000, 500000});
    CHECK(encode_filter_line(short_frac, nullptr) == "report|1700000000.500000|smtp-in|7641df9771b4ed00|x");
    CHECK(std::get<FilterOriginReport>(parsed("report|42|smtp-in|7641df9771b4ed00|x")).time == Timestamp{42, 0});
}

TEST_CASE("every refusal of a filter's line names what is wrong") {
    const std::string ids = "7641df9771b4ed00|0123456789abcdef";
    CHECK(refused(std::string(kMaxLine + 1, 'a')) == ParseError::TooLong);
    CHECK(refused("filter-dataline|" + ids + "|" + std::string(kMaxLine, 'a')) == ParseError::TooLong);
    CHECK(refused("register|ready\r") == ParseError::ControlByte);
    CHECK(refused("filter-dataline|" + ids + "|a\nb") == ParseError::ControlByte);
    CHECK(refused("filter-dataline|" + ids + "|a\0b"s) == ParseError::ControlByte);
    CHECK(refused("") == ParseError::UnknownLine);
    CHECK(refused("config|ready") == ParseError::UnknownLine);
    CHECK(refused("REGISTER|ready") == ParseError::UnknownLine);
    CHECK(refused("filter|0.6|1.0|smtp-in|connect|" + ids + "|x") == ParseError::UnknownLine);

    CHECK(refused("register") == ParseError::MissingField);
    CHECK(refused("register|report|smtp-in") == ParseError::MissingField);
    CHECK(refused("register|filter") == ParseError::MissingField);
    CHECK(refused("register|ready|now") == ParseError::ExtraField);
    CHECK(refused("register|ready|") == ParseError::ExtraField);
    CHECK(refused("register|report|smtp-in|tx-begin|x") == ParseError::ExtraField);
    CHECK(refused("register|bogus|smtp-in|tx-begin") == ParseError::UnknownRegister);
    CHECK(refused("register|report|smtp|tx-begin") == ParseError::UnknownSubsystem);
    CHECK(refused("register|filter|smtp-out|connect") == ParseError::FilterNotSmtpIn);
    CHECK(refused("register|report|smtp-in|link-bogus") == ParseError::UnknownEvent);
    CHECK(refused("register|report|smtp-in|") == ParseError::UnknownEvent);
    CHECK(refused("register|filter|smtp-in|connected") == ParseError::UnknownPhase);
    CHECK(refused("register|filter|smtp-in|*") == ParseError::UnknownPhase);

    CHECK(refused("filter-result") == ParseError::MissingField);
    CHECK(refused("filter-result|7641df9771b4ed00") == ParseError::MissingField);
    CHECK(refused("filter-result|" + ids) == ParseError::MissingField);
    CHECK(refused("filter-result|" + ids + "|reject") == ParseError::MissingField);
    CHECK(refused("filter-result|" + ids + "|rewrite") == ParseError::MissingField);
    CHECK(refused("filter-result|" + ids + "|proceed|x") == ParseError::ExtraField);
    CHECK(refused("filter-result|" + ids + "|junk|") == ParseError::ExtraField);
    CHECK(refused("filter-result|7641df9771b4ed0|0123456789abcdef|proceed") == ParseError::BadSession);
    CHECK(refused("filter-result|7641df9771b4ed000|0123456789abcdef|proceed") == ParseError::BadSession);
    CHECK(refused("filter-result|0x41df9771b4ed00|0123456789abcdef|proceed") == ParseError::BadSession);
    CHECK(refused("filter-result|7641df9771b4ed00|0123456789abcdeg|proceed") == ParseError::BadToken);
    CHECK(refused("filter-result|7641df9771b4ed00||proceed") == ParseError::BadToken);
    CHECK(refused("filter-result|" + ids + "|accept") == ParseError::UnknownDecision);
    CHECK(refused("filter-result|" + ids + "|Proceed") == ParseError::UnknownDecision);
    CHECK(refused("filter-result|" + ids + "|reject|250 ok") == ParseError::BadReplyCode);
    CHECK(refused("filter-result|" + ids + "|reject|354 go on") == ParseError::BadReplyCode);
    CHECK(refused("filter-result|" + ids + "|reject|550-more") == ParseError::BadReplyCode);
    CHECK(refused("filter-result|" + ids + "|reject|550") == ParseError::BadReplyCode);
    CHECK(refused("filter-result|" + ids + "|disconnect|go away") == ParseError::BadReplyCode);
    CHECK(refused("filter-result|" + ids + "|disconnect|5x0 no") == ParseError::BadReplyCode);

    CHECK(refused("filter-dataline|" + ids) == ParseError::MissingField);
    CHECK(refused("filter-dataline|zz|0123456789abcdef|x") == ParseError::BadSession);

    CHECK(refused("report|1.0|smtp-in") == ParseError::MissingField);
    CHECK(refused("report|1.0|smtp-in|7641df9771b4ed00") == ParseError::MissingField);
    CHECK(refused("report|0.6|1700000000.1|smtp-in|7641df9771b4ed00|x") == ParseError::UnknownSubsystem);
    CHECK(refused("report|x.5|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|1.|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|.5|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|1.1234567|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|12345678901234567890|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|-1.0|smtp-in|7641df9771b4ed00|t") == ParseError::BadTimestamp);
    CHECK(refused("report|1.0|smtp-in|nothex|t") == ParseError::BadSession);

    for (auto e :
         {ParseError::TooLong, ParseError::ControlByte, ParseError::UnknownLine, ParseError::MissingField,
          ParseError::ExtraField, ParseError::UnknownRegister, ParseError::UnknownSubsystem,
          ParseError::FilterNotSmtpIn, ParseError::UnknownEvent, ParseError::UnknownPhase, ParseError::BadSession,
          ParseError::BadToken, ParseError::BadTimestamp, ParseError::UnknownDecision, ParseError::BadReplyCode})
        CHECK_FALSE(describe(e).empty());
}

TEST_CASE("every refusal of the encoders: control bytes, '|' not last, values the protocol cannot carry") {
    CHECK(report_error(Version::V0_6, LinkConnect{"a|b", FcrdnsResult::Pass, "1.2.3.4:1", "1.2.3.4:2"}) ==
          EncodeError::PipeInField);
    CHECK(report_error(Version::V0_6, LinkConnect{"h", FcrdnsResult::Pass, "1.2.3.4:1", "x\r"}) ==
          EncodeError::ControlByte);
    CHECK(report_error(Version::V0_6, ProtocolClient{"a\nb"}) == EncodeError::ControlByte);
    CHECK(report_error(Version::V0_6, ProtocolServer{"a\0b"s}) == EncodeError::ControlByte);
    CHECK(report_error(Version::V0_6, FilterReportEvent{ReportKind::Proc, "na|me", "t"}) == EncodeError::PipeInField);
    CHECK(report_error(Version::V0_6, FilterResponse{Phase::Helo, Decision::Proceed, "param"}) ==
          EncodeError::BadValue);
    CHECK(report_error(Version::V0_6, ProtocolClient{std::string(kMaxLine, 'x')}) == EncodeError::TooLong);
    EncodeError err = EncodeError::None;
    CHECK_FALSE(encode_report(Version::V0_6, {1, 1000000}, Subsystem::SmtpIn, kSid, Timeout{}, &err).has_value());
    CHECK(err == EncodeError::BadValue);

    CHECK(request_error(ConnectRequest{"a|b", "1.2.3.4"}) == EncodeError::PipeInField);
    CHECK(request_error(ConnectRequest{"h", "1.2.3.4\n"}) == EncodeError::ControlByte);
    CHECK(request_error(PhaseRequest{Phase::Connect, "x"}) == EncodeError::BadValue);
    CHECK(request_error(PhaseRequest{Phase::Help, ""}) == EncodeError::BadValue);
    CHECK(request_error(PhaseRequest{Phase::Wiz, ""}) == EncodeError::BadValue);
    CHECK(request_error(PhaseRequest{Phase::Data, "x"}) == EncodeError::BadValue);
    CHECK(request_error(PhaseRequest{Phase::Commit, "x"}) == EncodeError::BadValue);
    CHECK(request_error(PhaseRequest{Phase::Helo, "a\r\nQUIT"}) == EncodeError::ControlByte);

    CHECK_FALSE(encode_filter_line(FilterResult{kSid, kTok, Decision::Reject, {250, "ok"}, {}}, &err).has_value());
    CHECK(err == EncodeError::BadValue);
    CHECK_FALSE(encode_filter_line(FilterResult{kSid, kTok, Decision::Disconnect, {600, "x"}, {}}, &err).has_value());
    CHECK(err == EncodeError::BadValue);
    CHECK_FALSE(encode_filter_line(FilterDataline{kSid, kTok, "a\nb"}, &err).has_value());
    CHECK(err == EncodeError::ControlByte);
    CHECK_FALSE(encode_filter_line(FilterOriginReport{{1, 1000000}, Subsystem::SmtpIn, kSid, "x"}, &err).has_value());
    CHECK(err == EncodeError::BadValue);

    for (auto e : {EncodeError::None, EncodeError::ControlByte, EncodeError::PipeInField, EncodeError::TooLong,
                   EncodeError::BadValue})
        CHECK_FALSE(describe(e).empty());
}

TEST_CASE("names: every event and phase maps both ways, nothing else does") {
    for (std::size_t i = 0; i < kEventCount; ++i)
        CHECK(event_from_name(event_name(static_cast<Event>(i))) == static_cast<Event>(i));
    for (std::size_t i = 0; i < kPhaseCount; ++i)
        CHECK(phase_from_name(phase_name(static_cast<Phase>(i))) == static_cast<Phase>(i));
    CHECK_FALSE(event_from_name("*").has_value());
    CHECK_FALSE(phase_from_name("").has_value());
    CHECK(event_of(ReportEvent{Timeout{}}) == Event::Timeout);
    CHECK(event_of(ReportEvent{LinkConnect{}}) == Event::LinkConnect);
    CHECK(event_of(ReportEvent{FilterResponse{}}) == Event::FilterResponse);
}
