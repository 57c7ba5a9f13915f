// filter/protocol.hpp — the line codec of OpenSMTPD's stdio filter protocol
// ("smtpd-filters"), as postern speaks it to filter processes.
//
// Pure code, no I/O: it turns the lines a filter writes into typed values
// (parse_filter_line) and typed events into the lines the daemon writes
// (encode_*). Both directions, for protocol versions 0.6 (what OpenSMTPD 6.8
// and Debian 12's filters speak) and 0.7 (current OpenSMTPD). It implements
// ../shared/reference/filter-protocol.md sections 2 (line format, fields,
// escaping), 3 (handshake), 4 (report stream), 5 (filter requests and
// responses), 6 (filter-originated reports), 7 (data-line dot handling) and
// the layouts of section 9; the golden lines of the unit tests come from
// filter-transcript-6.8.txt. The filter host (processes, chains, the
// handshake state machine) is built on top of it and lives elsewhere.
//
// The protocol has no escaping: a field that may contain '|' is always the
// last one. So the encoders refuse, never escape: a '|' in a field that is not
// last, and a CR, LF or NUL in any field (a CR would be eaten by the Go
// filters' line reader, an LF would split the line, a NUL would cut it in
// libopensmtpd's C strings), give an EncodeError and no line. Lines are
// handled without their terminating '\n' in both directions.
//
// Depends on: nothing but the standard library.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace postern::filter {

// The longest line, without its '\n', either side writes or accepts:
// filter-rspamd reads lines with Go's bufio.Scanner, which dies on a line
// (with its newline) over 64 KiB.
inline constexpr std::size_t kMaxLine = 64 * 1024 - 1;

// The version announced to a filter, which also picks the layout of link-auth
// (section 9). Never a two-digit minor: Go filters compare it as a string.
enum class Version { V0_6, V0_7 };
std::string_view version_name(Version v);

enum class Subsystem { SmtpIn, SmtpOut };

// Report events (section 4), in the reference's order.
enum class Event {
    LinkConnect,
    LinkGreeting,
    LinkIdentify,
    LinkTls,
    LinkAuth,
    LinkDisconnect,
    TxReset,
    TxBegin,
    TxMail,
    TxRcpt,
    TxEnvelope,
    TxData,
    TxCommit,
    TxRollback,
    ProtocolClient,
    ProtocolServer,
    FilterReport,
    FilterResponse,
    Timeout,
};
inline constexpr std::size_t kEventCount = 19;

// Filter phases (section 5); help and wiz are registrable but never sent.
enum class Phase {
    Connect,
    Helo,
    Ehlo,
    Starttls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    DataLine,
    Rset,
    Quit,
    Noop,
    Help,
    Wiz,
    Commit,
};
inline constexpr std::size_t kPhaseCount = 15;

std::string_view subsystem_name(Subsystem s);
std::string_view event_name(Event e);
std::string_view phase_name(Phase p);
std::optional<Subsystem> subsystem_from_name(std::string_view name);
std::optional<Event> event_from_name(std::string_view name);
std::optional<Phase> phase_from_name(std::string_view name);

// A session id or token as the protocol writes it: 16 lowercase hex digits.
std::string hex16(std::uint64_t id);

// SECONDS.MICROSECONDS, written with six fraction digits.
struct Timestamp {
    std::uint64_t seconds = 0;
    std::uint32_t micros = 0;  // < 1000000
    bool operator==(const Timestamp&) const = default;
};

// ---------------------------------------------------------------------------
// Lines a filter writes.

// register|report|SUBSYSTEM|EVENT, or |* for every event of the subsystem.
struct RegisterReport {
    Subsystem subsystem = Subsystem::SmtpIn;
    std::optional<Event> event;  // nullopt: "*"
    bool operator==(const RegisterReport&) const = default;
};
// register|filter|smtp-in|PHASE (there are no smtp-out phases).
struct RegisterFilter {
    Phase phase = Phase::Connect;
    bool operator==(const RegisterFilter&) const = default;
};
// register|ready: the end of the filter's side of the handshake.
struct RegisterReady {
    bool operator==(const RegisterReady&) const = default;
};

enum class Decision { Proceed, Junk, Reject, Disconnect, Rewrite, Report };
std::string_view decision_name(Decision d);

// An SMTP reply for reject / disconnect: "CODE text", CODE 4xx or 5xx.
struct Reply {
    int code = 0;
    std::string text;  // after the space that follows the code; may be empty
    bool operator==(const Reply&) const = default;
};

// filter-result|SESSION|TOKEN|DECISION[|VALUE]
struct FilterResult {
    std::uint64_t session = 0;
    std::uint64_t token = 0;
    Decision decision = Decision::Proceed;
    Reply reply;        // Reject, Disconnect
    std::string value;  // Rewrite: the new parameter; Report: the text
    bool operator==(const FilterResult&) const = default;
};

// filter-dataline|SESSION|TOKEN|LINE, LINE still dot-stuffed; "." ends.
struct FilterDataline {
    std::uint64_t session = 0;
    std::uint64_t token = 0;
    std::string line;
    bool operator==(const FilterDataline&) const = default;
};

// report|TIMESTAMP|SUBSYSTEM|SESSION|TEXT, a report the filter makes on its
// own (section 6; no version field). OpenSMTPD dies on it; we relay it.
struct FilterOriginReport {
    Timestamp time;
    Subsystem subsystem = Subsystem::SmtpIn;
    std::uint64_t session = 0;
    std::string text;
    bool operator==(const FilterOriginReport&) const = default;
};

using FilterLine =
    std::variant<RegisterReport, RegisterFilter, RegisterReady, FilterResult, FilterDataline, FilterOriginReport>;

// Why a line from a filter is refused. Any of them is a protocol violation.
enum class ParseError {
    TooLong,           // over kMaxLine
    ControlByte,       // a NUL, CR or LF inside the line
    UnknownLine,       // first field not register / filter-result / filter-dataline / report
    MissingField,      // fewer fields than the line kind has
    ExtraField,        // more fields than the line kind has (proceed|x, register|ready|x ...)
    UnknownRegister,   // register|X with X not report / filter / ready
    UnknownSubsystem,  // not smtp-in / smtp-out
    FilterNotSmtpIn,   // register|filter on smtp-out: no such phases exist
    UnknownEvent,      // not an event of section 4 nor "*"
    UnknownPhase,      // not a phase of section 5
    BadSession,        // session id not 16 hex digits
    BadToken,          // token not 16 hex digits
    BadTimestamp,      // not SECONDS[.FRACTION] with 1-19 and 1-6 digits
    UnknownDecision,   // not proceed / junk / reject / disconnect / rewrite / report
    BadReplyCode,      // reject / disconnect text not "4xx " or "5xx "
    BadVersion,        // a daemon line's version is not 0.N with N >= 5 (older layouts are not spoken)
};
std::string_view describe(ParseError e);

using ParseResult = std::variant<FilterLine, ParseError>;

// `line` is one line without its '\n'. Never throws, reads only `line`.
ParseResult parse_filter_line(std::string_view line);

// ---------------------------------------------------------------------------
// Lines the daemon writes, and filters' lines written back (tests, built-in
// filter library). Every encoder returns the line without '\n', or nullopt
// with the reason in *err.

enum class EncodeError {
    None,
    ControlByte,  // CR, LF or NUL in a field
    PipeInField,  // '|' in a field that is not the last of its line
    TooLong,      // the line would exceed kMaxLine
    BadValue,     // a value the protocol cannot carry (see each encoder)
};
std::string_view describe(EncodeError e);

std::optional<std::string> encode_filter_line(const FilterLine& line, EncodeError* err);

// The daemon's side of the handshake (section 3), in the reference's order:
// smtpd-version, protocol (0.7 only: 6.8 sent none), smtp-session-timeout,
// subsystem smtp-in / smtp-out as used, admd, then ready.
struct Handshake {
    Version version = Version::V0_6;
    std::string smtpd_version;
    unsigned session_timeout = 300;
    bool smtp_in = true;
    bool smtp_out = false;
    std::string admd;
};
std::optional<std::vector<std::string>> encode_handshake(const Handshake& h, EncodeError* err);
// One config|KEY|VALUE line; KEY must not contain '|'.
std::optional<std::string> encode_config(std::string_view key, std::string_view value, EncodeError* err);
std::string encode_config_ready();

// Report events. Their parameters, per section 4:
enum class FcrdnsResult { Pass, Fail, Error };
enum class AuthResult { Pass, Fail, Error };
enum class TxResult { Ok, Permfail, Tempfail };
enum class IdentifyVerb { Helo, Ehlo };
enum class ReportKind { Builtin, Proc };

struct LinkConnect {
    std::string rdns;  // "<unknown>" when there is no PTR
    FcrdnsResult fcrdns = FcrdnsResult::Fail;
    std::string src;  // 1.2.3.4:port, [v6]:port, unix:/path
    std::string dest;
};
struct LinkGreeting {
    std::string hostname;
};
struct LinkIdentify {
    IdentifyVerb verb = IdentifyVerb::Ehlo;
    std::string name;
};
struct LinkTls {
    std::string tls;  // VERSION:CIPHER:BITS
};
// 0.7: result|username; 0.6: username|result, so a '|' in the username
// cannot be sent in 0.6 (filter-rspamd would misread it): PipeInField.
struct LinkAuth {
    std::string username;
    AuthResult result = AuthResult::Fail;
};
struct LinkDisconnect {};
struct TxReset {
    std::uint32_t msgid = 0;
};
struct TxBegin {
    std::uint32_t msgid = 0;
};
// msgid|result|address in both 0.6 and 0.7; the address is bare, "" for <>.
struct TxMail {
    std::uint32_t msgid = 0;
    TxResult result = TxResult::Ok;
    std::string address;
};
struct TxRcpt {
    std::uint32_t msgid = 0;
    TxResult result = TxResult::Ok;
    std::string address;
};
struct TxEnvelope {
    std::uint32_t msgid = 0;
    std::uint64_t evpid = 0;
};
struct TxData {
    std::uint32_t msgid = 0;
    TxResult result = TxResult::Ok;
};
struct TxCommit {
    std::uint32_t msgid = 0;
    std::uint64_t size = 0;
};
struct TxRollback {
    std::uint32_t msgid = 0;
};
struct ProtocolClient {
    std::string line;  // AUTH secrets already replaced by ********
};
struct ProtocolServer {
    std::string line;
};
struct FilterReportEvent {
    ReportKind kind = ReportKind::Proc;
    std::string name;  // the filter's name
    std::string text;
};
// phase|decision[|param]; the connect phase is named "connected" and
// starttls "tls" here. The param follows reject / disconnect (the reply),
// rewrite (the value) and report (the text); proceed and junk have none.
struct FilterResponse {
    Phase phase = Phase::Connect;
    Decision decision = Decision::Proceed;
    std::string param;
};
struct Timeout {};

using ReportEvent = std::variant<LinkConnect, LinkGreeting, LinkIdentify, LinkTls, LinkAuth, LinkDisconnect, TxReset,
                                 TxBegin, TxMail, TxRcpt, TxEnvelope, TxData, TxCommit, TxRollback, ProtocolClient,
                                 ProtocolServer, FilterReportEvent, FilterResponse, Timeout>;
Event event_of(const ReportEvent& r);

// report|VERSION|TIMESTAMP|SUBSYSTEM|EVENT|SESSION[|params]; events without
// parameters end right after the session id.
std::optional<std::string> encode_report(Version v, Timestamp t, Subsystem s, std::uint64_t session,
                                         const ReportEvent& r, EncodeError* err);

// Filter requests (section 5). connect carries rdns|src (src without port:
// 1.2.3.4, [v6] or local); every other phase one parameter, empty for
// starttls, data, rset, quit, noop and commit, which still end with '|'.
struct ConnectRequest {
    std::string rdns;
    std::string src;
};
struct PhaseRequest {
    Phase phase = Phase::Helo;  // not Connect (ConnectRequest), Help nor Wiz (never sent): BadValue
    std::string param;          // must be empty for the parameterless phases: BadValue
};
using FilterRequest = std::variant<ConnectRequest, PhaseRequest>;

// filter|VERSION|TIMESTAMP|smtp-in|PHASE|SESSION|TOKEN|param
std::optional<std::string> encode_filter_request(Version v, Timestamp t, std::uint64_t session, std::uint64_t token,
                                                 const FilterRequest& r, EncodeError* err);

// Data lines (section 7). The stream a filter sees is the message as the
// client sent it with CRLF removed and the dot-stuffing kept, then a line
// holding only "."; the filter's output keeps the same convention. So `line`
// here is already stuffed (see dot_stuff) and sent verbatim.
std::optional<std::string> encode_data_line(Version v, Timestamp t, std::uint64_t session, std::uint64_t token,
                                            std::string_view line, EncodeError* err);
inline constexpr std::string_view kDataEnd = ".";
// "." alone: the end of the stream, in both directions.
constexpr bool is_data_end(std::string_view line) { return line == kDataEnd; }
// A message line as stored -> as sent on the stream: a leading '.' doubled.
std::string dot_stuff(std::string_view line);
// A stream line (not the end) -> the message line: one leading '.' removed.
std::string_view dot_unstuff(std::string_view line);

// ---------------------------------------------------------------------------
// Lines the daemon writes, as a filter reads them (filters/lib, tests): the
// mirror of the encoders above, for filters written with postern's library.

// config|KEY|VALUE, and config|ready (key "ready", no value).
struct ConfigLine {
    std::string key;
    std::string value;
    bool ready() const { return key == "ready"; }
};
// report|VERSION|TIMESTAMP|SUBSYSTEM|EVENT|SESSION[|params]; the params are
// left whole (their layout depends on the event and the version).
struct DaemonReport {
    int minor = 6;  // VERSION is 0.minor
    Timestamp time;
    Subsystem subsystem = Subsystem::SmtpIn;
    Event event = Event::LinkConnect;
    std::uint64_t session = 0;
    std::string params;
};
// filter|VERSION|TIMESTAMP|smtp-in|PHASE|SESSION|TOKEN|param
struct DaemonRequest {
    int minor = 6;
    Timestamp time;
    Phase phase = Phase::Connect;
    std::uint64_t session = 0;
    std::uint64_t token = 0;
    std::string param;  // connect: rdns|src; data-line: the line, still dot-stuffed
};
using DaemonLine = std::variant<ConfigLine, DaemonReport, DaemonRequest>;
using DaemonParseResult = std::variant<DaemonLine, ParseError>;
// `line` without its '\n'. Versions 0.5 and later (the session|token answer
// order); a major other than 0 or an older minor is BadVersion.
DaemonParseResult parse_daemon_line(std::string_view line);

// Splits report parameters on '|', the last one taking the rest ('|' and all).
std::vector<std::string_view> split_params(std::string_view params, std::size_t count);

// ---------------------------------------------------------------------------
// What a filter registered: which report events (per subsystem) and which
// phases it is sent.
class Registrations {
public:
    // Adds one register|report or register|filter line; register|ready and
    // every other line are refused (UnknownRegister / the parse error).
    std::optional<ParseError> add_line(std::string_view line);
    void add(const RegisterReport& r);
    void add(const RegisterFilter& r);

    bool wants(Subsystem s, Event e) const;
    bool wants(Phase p) const;
    bool empty() const;

private:
    std::bitset<kEventCount> smtp_in_;
    std::bitset<kEventCount> smtp_out_;
    std::bitset<kPhaseCount> phases_;
};

}  // namespace postern::filter
