// filterhost/session_chain.cpp — see session_chain.hpp.
#include "filterhost/session_chain.hpp"

#include "metrics/registry.hpp"

#include <time.h>

#include <algorithm>

#include "util/log.hpp"

namespace postern::filterhost {
namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }

// "5.7.1 " or "4.2.10 ": class, subject, detail (RFC 3463).
bool starts_with_enhanced_code(std::string_view t) {
    std::size_t i = 0;
    if (t.size() < 6 || (t[0] != '4' && t[0] != '5' && t[0] != '2') || t[1] != '.') return false;
    i = 2;
    std::size_t n = 0;
    while (i < t.size() && digit(t[i]) && n < 3) ++i, ++n;
    if (n == 0 || i >= t.size() || t[i] != '.') return false;
    ++i;
    n = 0;
    while (i < t.size() && digit(t[i]) && n < 3) ++i, ++n;
    return n > 0 && (i == t.size() || t[i] == ' ');
}

}  // namespace

std::string with_enhanced_code(int code, std::string_view text) {
    if (starts_with_enhanced_code(text)) return std::string(text);
    return std::string(code >= 500 ? "5.7.1" : "4.7.1") + (text.empty() ? "" : " ") + std::string(text);
}

filter::Timestamp now_timestamp() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return {static_cast<std::uint64_t>(ts.tv_sec), static_cast<std::uint32_t>(ts.tv_nsec / 1000)};
}

SessionChain::SessionChain(uv_loop_t* loop, std::uint64_t session, std::vector<Member> members, SessionEvents& events)
    : loop_(loop), session_(session), members_(std::move(members)), events_(events) {
    for (auto& m : members_)
        if (m.conn) m.conn->attach(session_, this);
    timer_ = new uv_timer_t{};  // NOLINT(cppcoreguidelines-owning-memory): freed in its close callback
    uv_timer_init(loop_, timer_);
    timer_->data = this;
}

SessionChain::~SessionChain() {
    *alive_ = false;
    resume_upstream(true);
    for (auto& m : members_)
        if (m.conn) m.conn->detach(session_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) {
        delete reinterpret_cast<uv_timer_t*>(h);  // NOLINT(cppcoreguidelines-owning-memory)
    });
}

std::uint64_t SessionChain::token(std::size_t member, filter::Phase phase) {
    return (static_cast<std::uint64_t>(member + 1) << 8) | static_cast<std::uint64_t>(phase);
}

std::optional<std::size_t> SessionChain::member_of(const Connection& c) const {
    for (std::size_t i = 0; i < members_.size(); ++i)
        if (members_[i].conn == &c) return i;
    return std::nullopt;
}

bool SessionChain::wants(filter::Phase p) const {
    for (const auto& m : members_) {
        if (m.conn && m.conn->wants(p)) return true;
        if (m.builtin && m.builtin->phase == p) return true;
    }
    return false;
}

bool SessionChain::wants(filter::Event e) const {
    for (const auto& m : members_)
        if (m.conn && m.conn->wants(e)) return true;
    return false;
}

void SessionChain::report(const filter::ReportEvent& e) {
    const filter::Event event = filter::event_of(e);
    const filter::Timestamp t = now_timestamp();
    for (auto& m : members_) {
        if (!m.conn || !m.conn->wants(event)) continue;
        filter::EncodeError err{};
        if (auto line = filter::encode_report(m.conn->version(), t, filter::Subsystem::SmtpIn, session_, e, &err))
            m.conn->send(*line);
    }
}

// ---- walking a phase ----

void SessionChain::request(filter::Phase phase, std::string param, std::function<void(Verdict)> done) {
    walk_ = Walk{phase, std::move(param), std::move(done)};
    step(0);
}

void SessionChain::step(std::size_t from) {
    Walk& w = *walk_;
    for (std::size_t i = from; i < members_.size(); ++i) {
        Member& m = members_[i];
        if (m.builtin) {
            if (m.builtin->phase != w.phase) continue;
            disarm_timer();  // the process filter before it has answered
            w.member = i;
            w.waiting = true;
            auto alive = alive_;
            events_.builtin_match(*m.builtin, w.param, [this, alive, i](SessionEvents::Match matched) {
                if (*alive) builtin_decided(i, matched);
            });
            return;
        }
        if (!m.conn || !m.conn->wants(w.phase)) continue;
        filter::FilterRequest req;
        if (w.phase == filter::Phase::Connect) {
            // The connect parameter is rdns|src, given by the session as one value.
            auto bar = w.param.find('|');
            req = filter::ConnectRequest{w.param.substr(0, bar),
                                         bar == std::string::npos ? "" : w.param.substr(bar + 1)};
        } else {
            req = filter::PhaseRequest{w.phase, w.param};
        }
        filter::EncodeError err{};
        auto line = filter::encode_filter_request(m.conn->version(), now_timestamp(), session_, token(i, w.phase), req,
                                                  &err);
        if (!line) {
            // A parameter the protocol cannot carry ('|' where it may not
            // be, a control byte): refuse the command rather than skip a filter.
            finish({Verdict::Kind::Reject, 501, "5.5.4 Syntax error: a parameter the filters cannot carry", m.name});
            return;
        }
        w.member = i;
        w.waiting = true;
        metrics::process()
            .counter("postern_filter_requests_total", "Filter phase requests sent, by filter", {{"filter", m.name}})
            .inc();
        m.conn->send(*line);
        arm_timer(i);
        return;
    }
    finish({});
}

void SessionChain::finish(Verdict v) {
    disarm_timer();
    Walk w = std::move(*walk_);
    walk_.reset();
    static constexpr filter::Decision kDecision[] = {filter::Decision::Proceed, filter::Decision::Junk,
                                                     filter::Decision::Reject, filter::Decision::Disconnect,
                                                     filter::Decision::Rewrite};
    const filter::Decision d = kDecision[static_cast<int>(v.kind)];
    std::string param;
    if (v.kind == Verdict::Kind::Reject || v.kind == Verdict::Kind::Disconnect)
        param = std::to_string(v.code) + " " + v.text;
    else if (v.kind == Verdict::Kind::Rewrite) param = v.text;
    emit_response(w.phase, d, param);
    w.done(std::move(v));
}

void SessionChain::builtin_decided(std::size_t index, SessionEvents::Match matched) {
    if (!walk_ || !walk_->waiting || walk_->member != index) return;
    walk_->waiting = false;
    const Member& m = members_[index];
    const config::BuiltinFilter& b = *m.builtin;
    if (matched == SessionEvents::Match::TempFail)
        return finish({Verdict::Kind::Reject, 451, "4.3.0 Temporary lookup failure", m.name});
    if (matched == SessionEvents::Match::No) return step(index + 1);
    using D = config::BuiltinFilter::Decision;
    switch (b.decision) {
    case D::Bypass: return finish({});
    case D::Junk: return finish({Verdict::Kind::Junk, 0, "", m.name});
    case D::Rewrite: return finish({Verdict::Kind::Rewrite, 0, b.value, m.name});
    case D::Report: emit_filter_report(filter::ReportKind::Builtin, m.name, b.value); return step(index + 1);
    case D::Reject:
    case D::Disconnect: {
        int code = std::atoi(b.value.c_str());
        std::string text = b.value.size() > 4 ? b.value.substr(4) : "";
        auto kind = b.decision == D::Disconnect || code == 421 ? Verdict::Kind::Disconnect : Verdict::Kind::Reject;
        return finish({kind, code, with_enhanced_code(code, text), m.name});
    }
    }
}

void SessionChain::on_result(Connection& c, const filter::FilterResult& r) {
    auto idx = member_of(c);
    if (!idx) return;
    if (!walk_ || !walk_->waiting || walk_->member != *idx || r.token != token(*idx, walk_->phase))
        return violation(c, "filter-result for a request not made");
    walk_->waiting = false;
    const std::string& name = members_[*idx].name;
    switch (r.decision) {
    case filter::Decision::Proceed: return step(*idx + 1);
    case filter::Decision::Junk:
        if (walk_->phase == filter::Phase::Commit) return violation(c, "junk at commit");
        return finish({Verdict::Kind::Junk, 0, "", name});
    case filter::Decision::Rewrite: return finish({Verdict::Kind::Rewrite, 0, r.value, name});
    case filter::Decision::Report: emit_filter_report(filter::ReportKind::Proc, name, r.value); return step(*idx + 1);
    case filter::Decision::Reject:
    case filter::Decision::Disconnect: {
        auto kind = r.decision == filter::Decision::Disconnect || r.reply.code == 421 ? Verdict::Kind::Disconnect
                                                                                      : Verdict::Kind::Reject;
        return finish({kind, r.reply.code, with_enhanced_code(r.reply.code, r.reply.text), name});
    }
    }
}

void SessionChain::emit_response(filter::Phase phase, filter::Decision d, const std::string& param) {
    report(filter::FilterResponse{phase, d, param});
}

void SessionChain::emit_filter_report(filter::ReportKind kind, const std::string& name, const std::string& text) {
    report(filter::FilterReportEvent{kind, name, text});
}

void SessionChain::on_origin_report(Connection& c, const filter::FilterOriginReport& r) {
    // OpenSMTPD 6.8 dies on these; they are relayed as filter-report events.
    emit_filter_report(filter::ReportKind::Proc, c.name(), r.text);
}

// ---- data lines ----

bool SessionChain::data_filtered() const {
    for (const auto& m : members_)
        if (m.conn && m.conn->wants(filter::Phase::DataLine)) return true;
    return false;
}

void SessionChain::data_begin() {
    data_path_.clear();
    for (std::size_t i = 0; i < members_.size(); ++i)
        if (members_[i].conn && members_[i].conn->wants(filter::Phase::DataLine)) data_path_.push_back(i);
    data_open_ = true;
    data_refused_ = false;
}

void SessionChain::data_line(std::string_view line) {
    if (!data_open_) return;
    if (data_path_.empty()) {
        if (filter::is_data_end(line)) {
            data_open_ = false;
            events_.data_output_end();
        } else {
            events_.data_output(line);
        }
        return;
    }
    send_data(0, line);
}

// Sends `line` to the `position`th member of the data path.
void SessionChain::send_data(std::size_t position, std::string_view line) {
    const std::size_t idx = data_path_[position];
    Member& m = members_[idx];
    filter::EncodeError err{};
    auto encoded = filter::encode_data_line(m.conn->version(), now_timestamp(), session_,
                                            token(idx, filter::Phase::DataLine), line, &err);
    if (!encoded) {
        data_refused_ = true;  // the session refuses the message at its end
        return;
    }
    m.conn->send(*encoded);
    if (filter::is_data_end(line)) arm_timer(idx);
}

void SessionChain::on_dataline(Connection& c, const filter::FilterDataline& d) {
    auto idx = member_of(c);
    if (!idx) return;
    std::size_t position = 0;
    while (position < data_path_.size() && data_path_[position] != *idx) ++position;
    if (!data_open_ || position == data_path_.size() || d.token != token(*idx, filter::Phase::DataLine))
        return violation(c, "filter-dataline for a stream not sent");
    const bool end = filter::is_data_end(d.line);
    if (end && timer_member_ == *idx) disarm_timer();
    if (position + 1 < data_path_.size()) {
        send_data(position + 1, d.line);
        // The next filter is behind: hold this one's output until it catches up.
        const Member& next = members_[data_path_[position + 1]];
        if (next.conn && next.conn->congested() && std::find(paused_.begin(), paused_.end(), *idx) == paused_.end()) {
            c.pause_reading();
            paused_.push_back(*idx);
        }
        return;
    }
    if (!end) return events_.data_output(d.line);
    data_open_ = false;
    events_.data_output_end();
}

bool SessionChain::congested() const {
    for (const auto& m : members_)
        if (m.conn && m.conn->congested()) return true;
    return false;
}

void SessionChain::on_writable(Connection&) {
    resume_upstream(false);
    if (!congested()) events_.filters_writable();
}

// Resumes the members paused for a downstream that is no longer behind (all: every one).
void SessionChain::resume_upstream(bool all) {
    for (std::size_t i = 0; i < paused_.size();) {
        const std::size_t idx = paused_[i];
        std::size_t pos = 0;
        while (pos < data_path_.size() && data_path_[pos] != idx) ++pos;
        const Member* next = pos + 1 < data_path_.size() ? &members_[data_path_[pos + 1]] : nullptr;
        if (all || !next || !next->conn || !next->conn->congested()) {
            if (members_[idx].conn) members_[idx].conn->resume_reading();
            paused_.erase(paused_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
}

// ---- failures and timeouts ----

void SessionChain::arm_timer(std::size_t member) {
    timer_member_ = member;
    uv_timer_start(
        timer_,
        [](uv_timer_t* t) {
            auto* self = static_cast<SessionChain*>(t->data);
            Member& m = self->members_[self->timer_member_];
            const std::string within = m.timeout_ms % 1000 == 0 ? std::to_string(m.timeout_ms / 1000) + "s"
                                                                : std::to_string(m.timeout_ms) + "ms";
            if (m.conn) m.conn->fail("no answer within " + within + " (its proc's timeout)");
        },
        members_[member].timeout_ms, 0);
}

void SessionChain::disarm_timer() {
    uv_timer_stop(timer_);
    timer_member_ = std::numeric_limits<std::size_t>::max();
}

void SessionChain::on_progress(Connection& c) {
    auto idx = member_of(c);
    if (idx && *idx == timer_member_) arm_timer(*idx);
}

void SessionChain::violation(Connection& c, const std::string& what) { c.fail("protocol violation: " + what); }

void SessionChain::on_failed(Connection& c, const std::string& why) {
    auto idx = member_of(c);
    if (!idx) return;
    resume_upstream(true);
    Member& m = members_[*idx];
    m.conn = nullptr;  // the connection is closing; never touch it again
    // A message streaming through the failed filter is incomplete, whatever on-failure says.
    const bool in_data = data_open_ && std::find(data_path_.begin(), data_path_.end(), *idx) != data_path_.end();
    if (!m.fail_open || in_data) {
        disarm_timer();
        walk_.reset();
        data_open_ = false;
        events_.filter_failed(m.name, why);
        return;
    }
    log::warn(log::Line("filter failed; session goes on unfiltered by it (on-failure pass)")
                  .kv("filter", m.name)
                  .kv("session", filter::hex16(session_)));
    if (timer_member_ == *idx) disarm_timer();
    if (walk_ && walk_->waiting && walk_->member == *idx) {
        walk_->waiting = false;
        step(*idx + 1);
    }
}

}  // namespace postern::filterhost
