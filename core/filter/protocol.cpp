// filter/protocol.cpp — the filter protocol's line codec (see protocol.hpp
// and ../shared/reference/filter-protocol.md sections 2-7 and 9).
#include "filter/protocol.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "util/ascii.hpp"

namespace postern::filter {

namespace {

using namespace std::string_view_literals;

constexpr std::array<std::string_view, kEventCount> kEventNames = {
    "link-connect",    "link-greeting", "link-identify",   "link-tls",    "link-auth",
    "link-disconnect", "tx-reset",      "tx-begin",        "tx-mail",     "tx-rcpt",
    "tx-envelope",     "tx-data",       "tx-commit",       "tx-rollback", "protocol-client",
    "protocol-server", "filter-report", "filter-response", "timeout",
};

constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {
    "connect",   "helo", "ehlo", "starttls", "auth", "mail-from", "rcpt-to", "data",
    "data-line", "rset", "quit", "noop",     "help", "wiz",       "commit",
};

constexpr std::array<std::string_view, 6> kDecisionNames = {"proceed",    "junk",    "reject",
                                                            "disconnect", "rewrite", "report"};

template <typename Enum, std::size_t N>
std::optional<Enum> lookup(const std::array<std::string_view, N>& names, std::string_view name) {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == name) return static_cast<Enum>(i);
    return std::nullopt;
}

template <typename... F>
struct Overloaded : F... {
    using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

// Fields of one line, split on '|' from the left; the last field of a line
// kind that ends in free text is taken whole with rest(), '|' and all.
class Fields {
public:
    explicit Fields(std::string_view line) : rest_(line) {}
    bool next(std::string_view* f) {
        if (done_) return false;
        std::size_t bar = rest_.find('|');
        if (bar == std::string_view::npos) {
            *f = rest_;
            done_ = true;
        } else {
            *f = rest_.substr(0, bar);
            rest_.remove_prefix(bar + 1);
        }
        return true;
    }
    bool rest(std::string_view* f) {
        if (done_) return false;
        *f = rest_;
        done_ = true;
        return true;
    }
    bool at_end() const { return done_; }

private:
    std::string_view rest_;
    bool done_ = false;
};

bool has_control(std::string_view s) { return s.find_first_of("\r\n\0"sv) != std::string_view::npos; }

int hex_value(char c) {
    if (util::is_digit(c)) return c - '0';
    char l = util::to_lower(c);
    if (l >= 'a' && l <= 'f') return l - 'a' + 10;
    return -1;
}

// Ids are what we sent: exactly 16 hex digits (either case reads the same).
std::optional<std::uint64_t> parse_id(std::string_view s) {
    if (s.size() != 16) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        int d = hex_value(c);
        if (d < 0) return std::nullopt;
        v = (v << 4) | static_cast<std::uint64_t>(d);
    }
    return v;
}

std::optional<std::uint64_t> parse_digits(std::string_view s, std::size_t max_digits) {
    if (s.empty() || s.size() > max_digits) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (!util::is_digit(c)) return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

// SECONDS[.FRACTION]: what a filter writes may have fewer than six fraction
// digits (a script printing a float), so the fraction is scaled, not copied.
std::optional<Timestamp> parse_timestamp(std::string_view s) {
    std::size_t dot = s.find('.');
    auto seconds = parse_digits(s.substr(0, dot), 19);
    if (!seconds) return std::nullopt;
    Timestamp t{*seconds, 0};
    if (dot == std::string_view::npos) return t;
    std::string_view frac = s.substr(dot + 1);
    auto micros = parse_digits(frac, 6);
    if (!micros) return std::nullopt;
    for (std::size_t i = frac.size(); i < 6; ++i) *micros *= 10;
    t.micros = static_cast<std::uint32_t>(*micros);
    return t;
}

// "4xx text" / "5xx text": smtpd's own check (^[45][0-9][0-9] ), so a
// filter cannot make a reject look like success or a continuation line.
std::optional<Reply> parse_reply(std::string_view s) {
    if (s.size() < 4 || (s[0] != '4' && s[0] != '5') || !util::is_digit(s[1]) || !util::is_digit(s[2]) || s[3] != ' ')
        return std::nullopt;
    return Reply{(s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0'), std::string(s.substr(4))};
}

ParseResult parse_register(Fields& f) {
    std::string_view what, sub, name;
    if (!f.next(&what)) return ParseError::MissingField;
    if (what == "ready") {
        if (!f.at_end()) return ParseError::ExtraField;
        return FilterLine{RegisterReady{}};
    }
    if (what != "report" && what != "filter") return ParseError::UnknownRegister;
    if (!f.next(&sub) || !f.next(&name)) return ParseError::MissingField;
    if (!f.at_end()) return ParseError::ExtraField;
    auto subsystem = subsystem_from_name(sub);
    if (!subsystem) return ParseError::UnknownSubsystem;
    if (what == "filter") {
        if (*subsystem != Subsystem::SmtpIn) return ParseError::FilterNotSmtpIn;
        auto phase = phase_from_name(name);
        if (!phase) return ParseError::UnknownPhase;
        return FilterLine{RegisterFilter{*phase}};
    }
    if (name == "*") return FilterLine{RegisterReport{*subsystem, std::nullopt}};
    auto event = event_from_name(name);
    if (!event) return ParseError::UnknownEvent;
    return FilterLine{RegisterReport{*subsystem, *event}};
}

// SESSION|TOKEN, common to filter-result and filter-dataline.
std::optional<ParseError> parse_ids(Fields& f, std::uint64_t* session, std::uint64_t* token) {
    std::string_view s, t;
    if (!f.next(&s) || !f.next(&t)) return ParseError::MissingField;
    auto sid = parse_id(s);
    if (!sid) return ParseError::BadSession;
    auto tok = parse_id(t);
    if (!tok) return ParseError::BadToken;
    *session = *sid;
    *token = *tok;
    return std::nullopt;
}

ParseResult parse_result(Fields& f) {
    FilterResult r;
    if (auto e = parse_ids(f, &r.session, &r.token)) return *e;
    std::string_view name, value;
    if (!f.next(&name)) return ParseError::MissingField;
    auto decision = lookup<Decision>(kDecisionNames, name);
    if (!decision) return ParseError::UnknownDecision;
    r.decision = *decision;
    if (r.decision == Decision::Proceed || r.decision == Decision::Junk) {
        if (!f.at_end()) return ParseError::ExtraField;  // 6.8's strictness
        return FilterLine{std::move(r)};
    }
    if (!f.rest(&value)) return ParseError::MissingField;
    if (r.decision == Decision::Reject || r.decision == Decision::Disconnect) {
        auto reply = parse_reply(value);
        if (!reply) return ParseError::BadReplyCode;
        r.reply = std::move(*reply);
    } else {
        r.value = std::string(value);
    }
    return FilterLine{std::move(r)};
}

ParseResult parse_dataline(Fields& f) {
    FilterDataline d;
    if (auto e = parse_ids(f, &d.session, &d.token)) return *e;
    std::string_view line;
    if (!f.rest(&line)) return ParseError::MissingField;
    d.line = std::string(line);
    return FilterLine{std::move(d)};
}

ParseResult parse_origin_report(Fields& f) {
    std::string_view ts, sub, sid, text;
    if (!f.next(&ts) || !f.next(&sub) || !f.next(&sid)) return ParseError::MissingField;
    FilterOriginReport r;
    auto t = parse_timestamp(ts);
    if (!t) return ParseError::BadTimestamp;
    auto s = subsystem_from_name(sub);
    if (!s) return ParseError::UnknownSubsystem;
    auto id = parse_id(sid);
    if (!id) return ParseError::BadSession;
    if (!f.rest(&text)) return ParseError::MissingField;
    r.time = *t;
    r.subsystem = *s;
    r.session = *id;
    r.text = std::string(text);
    return FilterLine{std::move(r)};
}

// --- encoding ---------------------------------------------------------------

std::string hex(std::uint64_t v, int digits) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 0xf];
    return out;
}

// Out-of-range micros are refused by the callers; the text stays well formed.
std::string timestamp_text(Timestamp t) {
    std::string frac = std::to_string(t.micros);
    return std::to_string(t.seconds) + "." + std::string(6 - std::min<std::size_t>(frac.size(), 6), '0') + frac;
}

// Builds a line field by field, remembering the first reason it cannot be
// sent; fields that are not last may not hold '|'.
class LineWriter {
public:
    explicit LineWriter(std::string_view first) : out_(first) {}
    LineWriter& field(std::string_view v) {
        if (v.find('|') != std::string_view::npos) fail(EncodeError::PipeInField);
        return append(v);
    }
    LineWriter& last(std::string_view v) { return append(v); }
    void fail(EncodeError e) {
        if (error_ == EncodeError::None) error_ = e;
    }
    std::optional<std::string> finish(EncodeError* err) {
        if (out_.size() > kMaxLine) fail(EncodeError::TooLong);
        if (err) *err = error_;
        if (error_ != EncodeError::None) return std::nullopt;
        return std::move(out_);
    }

private:
    LineWriter& append(std::string_view v) {
        if (has_control(v)) fail(EncodeError::ControlByte);
        out_ += '|';
        out_ += v;
        return *this;
    }
    std::string out_;
    EncodeError error_ = EncodeError::None;
};

std::string_view fcrdns_name(FcrdnsResult r) {
    constexpr std::array<std::string_view, 3> names = {"pass", "fail", "error"};
    return names[static_cast<std::size_t>(r)];
}
std::string_view auth_name(AuthResult r) {
    constexpr std::array<std::string_view, 3> names = {"pass", "fail", "error"};
    return names[static_cast<std::size_t>(r)];
}
std::string_view tx_name(TxResult r) {
    constexpr std::array<std::string_view, 3> names = {"ok", "permfail", "tempfail"};
    return names[static_cast<std::size_t>(r)];
}
// filter-response names two phases differently from the requests.
std::string_view response_phase_name(Phase p) {
    if (p == Phase::Connect) return "connected";
    if (p == Phase::Starttls) return "tls";
    return phase_name(p);
}
bool decision_has_param(Decision d) { return d != Decision::Proceed && d != Decision::Junk; }
bool reply_code_ok(int code) { return code >= 400 && code <= 599; }
std::string reply_text(const Reply& r) { return std::to_string(r.code) + " " + r.text; }

void write_event(LineWriter& w, Version v, const ReportEvent& r) {
    std::visit(
        Overloaded{
            [&](const LinkConnect& e) { w.field(e.rdns).field(fcrdns_name(e.fcrdns)).field(e.src).last(e.dest); },
            [&](const LinkGreeting& e) { w.last(e.hostname); },
            [&](const LinkIdentify& e) { w.field(e.verb == IdentifyVerb::Helo ? "HELO" : "EHLO").last(e.name); },
            [&](const LinkTls& e) { w.last(e.tls); },
            [&](const LinkAuth& e) {
                if (v == Version::V0_6) w.field(e.username).last(auth_name(e.result));
                else w.field(auth_name(e.result)).last(e.username);
            },
            [&](const LinkDisconnect&) {},
            [&](const TxReset& e) { w.last(hex(e.msgid, 8)); },
            [&](const TxBegin& e) { w.last(hex(e.msgid, 8)); },
            [&](const TxMail& e) { w.field(hex(e.msgid, 8)).field(tx_name(e.result)).last(e.address); },
            [&](const TxRcpt& e) { w.field(hex(e.msgid, 8)).field(tx_name(e.result)).last(e.address); },
            [&](const TxEnvelope& e) { w.field(hex(e.msgid, 8)).last(hex(e.evpid, 16)); },
            [&](const TxData& e) { w.field(hex(e.msgid, 8)).last(tx_name(e.result)); },
            [&](const TxCommit& e) { w.field(hex(e.msgid, 8)).last(std::to_string(e.size)); },
            [&](const TxRollback& e) { w.last(hex(e.msgid, 8)); },
            [&](const ProtocolClient& e) { w.last(e.line); },
            [&](const ProtocolServer& e) { w.last(e.line); },
            [&](const FilterReportEvent& e) {
                w.field(e.kind == ReportKind::Builtin ? "builtin" : "proc").field(e.name).last(e.text);
            },
            [&](const FilterResponse& e) {
                w.field(response_phase_name(e.phase));
                if (decision_has_param(e.decision)) {
                    w.field(decision_name(e.decision)).last(e.param);
                } else {
                    if (!e.param.empty()) w.fail(EncodeError::BadValue);
                    w.last(decision_name(e.decision));
                }
            },
            [&](const Timeout&) {},
        },
        r);
}

bool parameterless(Phase p) {
    return p == Phase::Starttls || p == Phase::Data || p == Phase::Rset || p == Phase::Quit || p == Phase::Noop ||
           p == Phase::Commit;
}

LineWriter request_head(Version v, Timestamp t, Phase p, std::uint64_t session, std::uint64_t token) {
    LineWriter w("filter");
    w.field(version_name(v)).field(timestamp_text(t)).field("smtp-in").field(phase_name(p));
    w.field(hex(session, 16)).field(hex(token, 16));
    if (t.micros >= 1000000) w.fail(EncodeError::BadValue);
    return w;
}

}  // namespace

std::string_view version_name(Version v) { return v == Version::V0_6 ? "0.6" : "0.7"; }
std::string_view subsystem_name(Subsystem s) { return s == Subsystem::SmtpIn ? "smtp-in" : "smtp-out"; }
std::string_view event_name(Event e) { return kEventNames[static_cast<std::size_t>(e)]; }
std::string_view phase_name(Phase p) { return kPhaseNames[static_cast<std::size_t>(p)]; }
std::string_view decision_name(Decision d) { return kDecisionNames[static_cast<std::size_t>(d)]; }

std::optional<Subsystem> subsystem_from_name(std::string_view name) {
    if (name == "smtp-in") return Subsystem::SmtpIn;
    if (name == "smtp-out") return Subsystem::SmtpOut;
    return std::nullopt;
}
std::optional<Event> event_from_name(std::string_view name) { return lookup<Event>(kEventNames, name); }
std::optional<Phase> phase_from_name(std::string_view name) { return lookup<Phase>(kPhaseNames, name); }

std::string_view describe(ParseError e) {
    switch (e) {
    case ParseError::TooLong: return "line too long";
    case ParseError::ControlByte: return "NUL, CR or LF inside the line";
    case ParseError::UnknownLine: return "unknown line (register, filter-result, filter-dataline or report expected)";
    case ParseError::MissingField: return "missing field";
    case ParseError::ExtraField: return "unexpected extra field";
    case ParseError::UnknownRegister: return "register: report, filter or ready expected";
    case ParseError::UnknownSubsystem: return "unknown subsystem (smtp-in or smtp-out expected)";
    case ParseError::FilterNotSmtpIn: return "filter phases exist only for smtp-in";
    case ParseError::UnknownEvent: return "unknown report event";
    case ParseError::UnknownPhase: return "unknown filter phase";
    case ParseError::BadSession: return "session id is not 16 hex digits";
    case ParseError::BadToken: return "token is not 16 hex digits";
    case ParseError::BadTimestamp: return "bad timestamp (SECONDS.MICROSECONDS expected)";
    case ParseError::UnknownDecision: return "unknown decision";
    case ParseError::BadReplyCode: return "reply must start with a 4xx or 5xx code and a space";
    case ParseError::BadVersion: return "unsupported protocol version (0.5 or later expected)";
    }
    return "unknown error";
}

std::string_view describe(EncodeError e) {
    switch (e) {
    case EncodeError::None: return "no error";
    case EncodeError::ControlByte: return "CR, LF or NUL in a field";
    case EncodeError::PipeInField: return "'|' in a field that is not the last";
    case EncodeError::TooLong: return "line too long";
    case EncodeError::BadValue: return "value the protocol cannot carry";
    }
    return "unknown error";
}

ParseResult parse_filter_line(std::string_view line) {
    if (line.size() > kMaxLine) return ParseError::TooLong;
    if (has_control(line)) return ParseError::ControlByte;
    Fields f(line);
    std::string_view kind;
    f.next(&kind);
    if (kind == "register") return parse_register(f);
    if (kind == "filter-result") return parse_result(f);
    if (kind == "filter-dataline") return parse_dataline(f);
    if (kind == "report") return parse_origin_report(f);
    return ParseError::UnknownLine;
}

namespace {

// "0.N", N >= 5: the layouts this code speaks (0.5 put the session before
// the token in answers). Go filters compare versions as strings; we read N.
std::optional<int> parse_version(std::string_view v) {
    if (v.size() < 3 || v.substr(0, 2) != "0.") return std::nullopt;
    auto minor = parse_digits(v.substr(2), 4);
    if (!minor || *minor < 5) return std::nullopt;
    return static_cast<int>(*minor);
}

DaemonParseResult parse_config(Fields& f) {
    std::string_view key, value;
    if (!f.next(&key)) return ParseError::MissingField;
    ConfigLine c{std::string(key), {}};
    if (f.rest(&value)) c.value = std::string(value);
    else if (!c.ready()) return ParseError::MissingField;
    return DaemonLine{std::move(c)};
}

// VERSION|TIMESTAMP|SUBSYSTEM|NAME, the head of reports and requests.
struct Head {
    int minor = 0;
    Timestamp time;
    Subsystem subsystem = Subsystem::SmtpIn;
    std::string_view name;
};

std::optional<ParseError> parse_head(Fields& f, Head* h) {
    std::string_view v, ts, sub;
    if (!f.next(&v) || !f.next(&ts) || !f.next(&sub) || !f.next(&h->name)) return ParseError::MissingField;
    auto minor = parse_version(v);
    if (!minor) return ParseError::BadVersion;
    auto t = parse_timestamp(ts);
    if (!t) return ParseError::BadTimestamp;
    auto s = subsystem_from_name(sub);
    if (!s) return ParseError::UnknownSubsystem;
    h->minor = *minor;
    h->time = *t;
    h->subsystem = *s;
    return std::nullopt;
}

DaemonParseResult parse_report(Fields& f) {
    Head h;
    if (auto e = parse_head(f, &h)) return *e;
    auto event = event_from_name(h.name);
    if (!event) return ParseError::UnknownEvent;
    std::string_view sid, params;
    if (!f.next(&sid)) return ParseError::MissingField;
    auto id = parse_id(sid);
    if (!id) return ParseError::BadSession;
    DaemonReport r{h.minor, h.time, h.subsystem, *event, *id, {}};
    if (f.rest(&params)) r.params = std::string(params);
    return DaemonLine{std::move(r)};
}

DaemonParseResult parse_request(Fields& f) {
    Head h;
    if (auto e = parse_head(f, &h)) return *e;
    if (h.subsystem != Subsystem::SmtpIn) return ParseError::FilterNotSmtpIn;
    auto phase = phase_from_name(h.name);
    if (!phase) return ParseError::UnknownPhase;
    DaemonRequest r{h.minor, h.time, *phase, 0, 0, {}};
    if (auto e = parse_ids(f, &r.session, &r.token)) return *e;
    std::string_view param;
    if (!f.rest(&param)) return ParseError::MissingField;  // parameterless phases still end with '|'
    r.param = std::string(param);
    return DaemonLine{std::move(r)};
}

}  // namespace

DaemonParseResult parse_daemon_line(std::string_view line) {
    if (line.size() > kMaxLine) return ParseError::TooLong;
    if (has_control(line)) return ParseError::ControlByte;
    Fields f(line);
    std::string_view kind;
    f.next(&kind);
    if (kind == "config") return parse_config(f);
    if (kind == "report") return parse_report(f);
    if (kind == "filter") return parse_request(f);
    return ParseError::UnknownLine;
}

std::vector<std::string_view> split_params(std::string_view params, std::size_t count) {
    std::vector<std::string_view> out;
    Fields f(params);
    std::string_view field;
    while (out.size() + 1 < count && f.next(&field)) out.push_back(field);
    if (f.rest(&field)) out.push_back(field);
    return out;
}

std::optional<std::string> encode_filter_line(const FilterLine& line, EncodeError* err) {
    return std::visit(
        Overloaded{
            [&](const RegisterReport& r) {
                LineWriter w("register");
                w.field("report").field(subsystem_name(r.subsystem)).last(r.event ? event_name(*r.event) : "*");
                return w.finish(err);
            },
            [&](const RegisterFilter& r) {
                LineWriter w("register");
                w.field("filter").field("smtp-in").last(phase_name(r.phase));
                return w.finish(err);
            },
            [&](const RegisterReady&) { return LineWriter("register").last("ready").finish(err); },
            [&](const FilterResult& r) {
                LineWriter w("filter-result");
                w.field(hex(r.session, 16)).field(hex(r.token, 16)).field(decision_name(r.decision));
                if (r.decision == Decision::Reject || r.decision == Decision::Disconnect) {
                    if (!reply_code_ok(r.reply.code)) w.fail(EncodeError::BadValue);
                    w.last(reply_text(r.reply));
                } else if (r.decision == Decision::Rewrite || r.decision == Decision::Report) {
                    w.last(r.value);
                }
                return w.finish(err);
            },
            [&](const FilterDataline& d) {
                LineWriter w("filter-dataline");
                w.field(hex(d.session, 16)).field(hex(d.token, 16)).last(d.line);
                return w.finish(err);
            },
            [&](const FilterOriginReport& r) {
                LineWriter w("report");
                if (r.time.micros >= 1000000) w.fail(EncodeError::BadValue);
                w.field(timestamp_text(r.time)).field(subsystem_name(r.subsystem)).field(hex(r.session, 16));
                w.last(r.text);
                return w.finish(err);
            },
        },
        line);
}

std::optional<std::string> encode_config(std::string_view key, std::string_view value, EncodeError* err) {
    LineWriter w("config");
    w.field(key).last(value);
    return w.finish(err);
}

std::string encode_config_ready() { return "config|ready"; }

std::optional<std::vector<std::string>> encode_handshake(const Handshake& h, EncodeError* err) {
    std::vector<std::pair<std::string_view, std::string>> pairs;
    pairs.emplace_back("smtpd-version", h.smtpd_version);
    if (h.version == Version::V0_7) pairs.emplace_back("protocol", std::string(version_name(h.version)));
    pairs.emplace_back("smtp-session-timeout", std::to_string(h.session_timeout));
    if (h.smtp_in) pairs.emplace_back("subsystem", "smtp-in");
    if (h.smtp_out) pairs.emplace_back("subsystem", "smtp-out");
    pairs.emplace_back("admd", h.admd);
    std::vector<std::string> lines;
    for (const auto& [key, value] : pairs) {
        auto line = encode_config(key, value, err);
        if (!line) return std::nullopt;
        lines.push_back(std::move(*line));
    }
    lines.push_back(encode_config_ready());
    if (err) *err = EncodeError::None;
    return lines;
}

// The alternatives of ReportEvent are declared in the order of Event.
static_assert(std::variant_size_v<ReportEvent> == kEventCount);
Event event_of(const ReportEvent& r) { return static_cast<Event>(r.index()); }

std::optional<std::string> encode_report(Version v, Timestamp t, Subsystem s, std::uint64_t session,
                                         const ReportEvent& r, EncodeError* err) {
    LineWriter w("report");
    if (t.micros >= 1000000) w.fail(EncodeError::BadValue);
    w.field(version_name(v)).field(timestamp_text(t)).field(subsystem_name(s)).field(event_name(event_of(r)));
    w.field(hex(session, 16));
    write_event(w, v, r);
    return w.finish(err);
}

std::optional<std::string> encode_filter_request(Version v, Timestamp t, std::uint64_t session, std::uint64_t token,
                                                 const FilterRequest& r, EncodeError* err) {
    if (const auto* c = std::get_if<ConnectRequest>(&r)) {
        LineWriter w = request_head(v, t, Phase::Connect, session, token);
        w.field(c->rdns).last(c->src);
        return w.finish(err);
    }
    const auto& p = std::get<PhaseRequest>(r);
    LineWriter w = request_head(v, t, p.phase, session, token);
    if (p.phase == Phase::Connect || p.phase == Phase::Help || p.phase == Phase::Wiz) w.fail(EncodeError::BadValue);
    if (parameterless(p.phase) && !p.param.empty()) w.fail(EncodeError::BadValue);
    w.last(p.param);  // empty for the parameterless phases: the trailing '|' stays
    return w.finish(err);
}

std::optional<std::string> encode_data_line(Version v, Timestamp t, std::uint64_t session, std::uint64_t token,
                                            std::string_view line, EncodeError* err) {
    LineWriter w = request_head(v, t, Phase::DataLine, session, token);
    w.last(line);
    return w.finish(err);
}

std::string dot_stuff(std::string_view line) {
    if (!line.empty() && line.front() == '.') return "." + std::string(line);
    return std::string(line);
}

std::string_view dot_unstuff(std::string_view line) {
    if (!line.empty() && line.front() == '.') line.remove_prefix(1);
    return line;
}

std::optional<ParseError> Registrations::add_line(std::string_view line) {
    ParseResult parsed = parse_filter_line(line);
    if (const auto* e = std::get_if<ParseError>(&parsed)) return *e;
    const auto& l = std::get<FilterLine>(parsed);
    if (const auto* r = std::get_if<RegisterReport>(&l)) {
        add(*r);
        return std::nullopt;
    }
    if (const auto* r = std::get_if<RegisterFilter>(&l)) {
        add(*r);
        return std::nullopt;
    }
    return std::holds_alternative<RegisterReady>(l) ? ParseError::UnknownRegister : ParseError::UnknownLine;
}

void Registrations::add(const RegisterReport& r) {
    auto& set = r.subsystem == Subsystem::SmtpIn ? smtp_in_ : smtp_out_;
    if (r.event) set.set(static_cast<std::size_t>(*r.event));
    else set.set();
}

void Registrations::add(const RegisterFilter& r) { phases_.set(static_cast<std::size_t>(r.phase)); }

bool Registrations::wants(Subsystem s, Event e) const {
    return (s == Subsystem::SmtpIn ? smtp_in_ : smtp_out_).test(static_cast<std::size_t>(e));
}

bool Registrations::wants(Phase p) const { return phases_.test(static_cast<std::size_t>(p)); }

bool Registrations::empty() const { return smtp_in_.none() && smtp_out_.none() && phases_.none(); }

std::string hex16(std::uint64_t id) { return hex(id, 16); }

}  // namespace postern::filter
