// parse_daemon_line, the filter side's reader of what the daemon writes:
// every line the daemon's encoders make reads back to the same values, and
// what a filter cannot follow is refused by name.
#include <catch2/catch.hpp>

#include <variant>

#include "filter/protocol.hpp"

using namespace postern::filter;

namespace {

DaemonLine parsed(const std::string& line) {
    auto r = parse_daemon_line(line);
    INFO(line);
    REQUIRE(std::holds_alternative<DaemonLine>(r));
    return std::get<DaemonLine>(r);
}

ParseError refused(const std::string& line) {
    auto r = parse_daemon_line(line);
    INFO(line);
    REQUIRE(std::holds_alternative<ParseError>(r));
    return std::get<ParseError>(r);
}

const Timestamp kTime{1700000000, 42};
constexpr std::uint64_t kSid = 0x0123456789abcdefULL;

}  // namespace

TEST_CASE("daemon lines: the handshake reads back") {
    Handshake h;
    h.version = Version::V0_7;
    h.smtpd_version = "postern-0.1.0";
    h.admd = "mx.example.org";
    EncodeError err{};
    auto lines = encode_handshake(h, &err);
    REQUIRE(lines);
    auto first = std::get<ConfigLine>(parsed(lines->front()));
    CHECK(first.key == "smtpd-version");
    CHECK(first.value == "postern-0.1.0");
    CHECK(std::get<ConfigLine>(parsed(lines->at(1))).value == "0.7");
    CHECK(std::get<ConfigLine>(parsed(lines->back())).ready());
    CHECK(refused("config|smtp-session-timeout") == ParseError::MissingField);
}

TEST_CASE("daemon lines: reports read back with their parameters whole") {
    EncodeError err{};
    for (Version v : {Version::V0_6, Version::V0_7}) {
        auto line = encode_report(v, kTime, Subsystem::SmtpIn, kSid,
                                  TxMail{0x0badcafe, TxResult::Ok, "a|b@example.org"}, &err);
        REQUIRE(line);
        auto r = std::get<DaemonReport>(parsed(*line));
        CHECK(r.minor == (v == Version::V0_6 ? 6 : 7));
        CHECK(r.time == kTime);
        CHECK(r.event == Event::TxMail);
        CHECK(r.session == kSid);
        CHECK(r.params == "0badcafe|ok|a|b@example.org");
        CHECK(split_params(r.params, 3) == std::vector<std::string_view>{"0badcafe", "ok", "a|b@example.org"});
    }
    auto bye = std::get<DaemonReport>(
        parsed(*encode_report(Version::V0_6, kTime, Subsystem::SmtpIn, kSid, LinkDisconnect{}, &err)));
    CHECK(bye.event == Event::LinkDisconnect);
    CHECK(bye.params.empty());
}

TEST_CASE("daemon lines: requests read back, data lines still stuffed, empty parameters kept") {
    EncodeError err{};
    auto req = std::get<DaemonRequest>(
        parsed(*encode_filter_request(Version::V0_6, kTime, kSid, 0x105, PhaseRequest{Phase::MailFrom, "a@b"}, &err)));
    CHECK(req.phase == Phase::MailFrom);
    CHECK(req.token == 0x105);
    CHECK(req.param == "a@b");
    auto connect = std::get<DaemonRequest>(
        parsed(*encode_filter_request(Version::V0_6, kTime, kSid, 1, ConnectRequest{"<unknown>", "[::1]"}, &err)));
    CHECK(connect.param == "<unknown>|[::1]");
    auto data = std::get<DaemonRequest>(
        parsed(*encode_data_line(Version::V0_6, kTime, kSid, 0x108, dot_stuff(".x | y"), &err)));
    CHECK(data.param == "..x | y");
    auto empty = std::get<DaemonRequest>(
        parsed(*encode_filter_request(Version::V0_6, kTime, kSid, 2, PhaseRequest{Phase::Data, ""}, &err)));
    CHECK(empty.param.empty());
}

TEST_CASE("daemon lines: what a filter cannot follow") {
    const std::string sid = "0123456789abcdef";
    CHECK(refused("report|1.0|1.0|smtp-in|tx-begin|" + sid + "|00000001") == ParseError::BadVersion);
    CHECK(refused("report|0.4|1.0|smtp-in|tx-begin|" + sid + "|00000001") == ParseError::BadVersion);
    CHECK(refused("report|0.6|x|smtp-in|tx-begin|" + sid + "|00000001") == ParseError::BadTimestamp);
    CHECK(refused("report|0.6|1.0|smtp-in|no-such-event|" + sid) == ParseError::UnknownEvent);
    CHECK(refused("report|0.6|1.0|smtp-in|tx-begin|xyz|00000001") == ParseError::BadSession);
    CHECK(refused("filter|0.6|1.0|smtp-out|mail-from|" + sid + "|0000000000000001|a") == ParseError::FilterNotSmtpIn);
    CHECK(refused("filter|0.6|1.0|smtp-in|mail-from|" + sid + "|0000000000000001") == ParseError::MissingField);
    CHECK(refused("filter|0.6|1.0|smtp-in|no-phase|" + sid + "|0000000000000001|") == ParseError::UnknownPhase);
    CHECK(refused("hello") == ParseError::UnknownLine);
    CHECK(refused(std::string("config|a|b\rc")) == ParseError::ControlByte);
}
