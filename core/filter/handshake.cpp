// filter/handshake.cpp — the handshake state machine of one filter process;
// see handshake.hpp.

#include "filter/handshake.hpp"

#include <cstdio>
#include <utility>
#include <variant>

namespace postern::filter {

namespace {

// The line as it may appear in a log: the filter wrote it, so it may hold
// control bytes or be 64 KiB long.
std::string quote_line(std::string_view line) {
    std::string out;
    for (char c : line.substr(0, kQuotedLine)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f) {
            out += c;
            continue;
        }
        char hex[5];
        std::snprintf(hex, sizeof hex, "\\x%02x", byte);
        out += hex;
    }
    if (line.size() > kQuotedLine) out += "...";
    return out;
}

// Cheaper than a parse: after Ready the host may feed every line through
// here, data lines included, and only the first field matters.
bool is_register_line(std::string_view line) { return line == "register" || line.starts_with("register|"); }

HandshakeError line_error(HandshakeFailure kind, std::string_view line) {
    HandshakeError e;
    e.kind = kind;
    e.line = quote_line(line);
    return e;
}

}  // namespace

std::string_view handshake_state_name(HandshakeState s) {
    switch (s) {
    case HandshakeState::Waiting: return "waiting";
    case HandshakeState::Ready: return "ready";
    case HandshakeState::Failed: return "failed";
    }
    return "unknown";
}

std::string HandshakeError::text() const {
    const std::string quoted = "line \"" + line + "\": ";
    switch (kind) {
    case HandshakeFailure::BadConfig:
        return "our config lines cannot be sent: " + std::string(describe(encode.value_or(EncodeError::BadValue)));
    case HandshakeFailure::BadLine: return quoted + std::string(describe(parse.value_or(ParseError::UnknownLine)));
    case HandshakeFailure::NotRegister: return quoted + "not a register line before register|ready";
    case HandshakeFailure::LateRegister: return quoted + "register line after register|ready";
    case HandshakeFailure::EndOfInput: return "end of input before register|ready";
    case HandshakeFailure::TimedOut: return "timed out";
    }
    return "unknown failure";
}

HandshakeMachine::HandshakeMachine(std::string name, const Handshake& config)
    : name_(std::move(name)), version_(config.version) {
    EncodeError err = EncodeError::None;
    auto lines = encode_handshake(config, &err);
    if (!lines) {
        HandshakeError e;
        e.kind = HandshakeFailure::BadConfig;
        e.encode = err;
        fail(std::move(e));
        return;
    }
    to_send_ = std::move(*lines);
}

HandshakeStep HandshakeMachine::feed(std::string_view line) {
    if (state_ == HandshakeState::Failed) return HandshakeStep::Failed;
    if (state_ == HandshakeState::Ready) {
        if (is_register_line(line)) return fail(line_error(HandshakeFailure::LateRegister, line));
        return HandshakeStep::NotHandshake;
    }
    ParseResult parsed = parse_filter_line(line);
    if (const auto* perr = std::get_if<ParseError>(&parsed)) {
        HandshakeError e = line_error(HandshakeFailure::BadLine, line);
        e.parse = *perr;
        return fail(std::move(e));
    }
    return take(std::get<FilterLine>(parsed), line);
}

HandshakeStep HandshakeMachine::take(const FilterLine& line, std::string_view text) {
    if (const auto* r = std::get_if<RegisterReport>(&line)) {
        registrations_.add(*r);
        return HandshakeStep::Waiting;
    }
    if (const auto* f = std::get_if<RegisterFilter>(&line)) {
        registrations_.add(*f);
        return HandshakeStep::Waiting;
    }
    if (std::holds_alternative<RegisterReady>(line)) {
        state_ = HandshakeState::Ready;
        return HandshakeStep::Ready;
    }
    // A decision or a report before ready: OpenSMTPD dies on it, and the
    // filter cannot have been sent a request to answer yet.
    return fail(line_error(HandshakeFailure::NotRegister, text));
}

void HandshakeMachine::end_of_input() {
    if (state_ != HandshakeState::Waiting) return;
    HandshakeError e;
    e.kind = HandshakeFailure::EndOfInput;
    fail(std::move(e));
}

void HandshakeMachine::timed_out() {
    if (state_ != HandshakeState::Waiting) return;
    HandshakeError e;
    e.kind = HandshakeFailure::TimedOut;
    fail(std::move(e));
}

HandshakeStep HandshakeMachine::fail(HandshakeError e) {
    state_ = HandshakeState::Failed;
    failure_ = std::move(e);
    return HandshakeStep::Failed;
}

std::string HandshakeMachine::describe_failure() const {
    if (!failure_) return "";
    return "filter \"" + name_ + "\": handshake failed: " + failure_->text();
}

}  // namespace postern::filter
