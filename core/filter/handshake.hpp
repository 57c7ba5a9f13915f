// filter/handshake.hpp — the start of one filter process: the state machine
// of the protocol's handshake (../shared/reference/filter-protocol.md
// section 3), as the filter host runs it for each filter it starts.
//
// Pure code, no I/O and no clock: the host writes lines_to_send() to the
// filter, feeds every line the filter writes to feed(), and calls
// end_of_input() when the filter's output ends and timed_out() when its own
// timer fires. The machine says when the filter is Ready (with what it
// registered) or why it Failed; restarting, logging and timers are the
// host's.
//
// Order is not enforced between the two sides: libopensmtpd filters
// (filter-dkimsign) write all their register| lines, register|ready included,
// at start-up before reading any config| line, while the Go filters wait for
// config|ready. So register| lines are taken before, during and after our
// config lines, and the filter may be Ready before the host has written
// them; the host writes them all the same.
//
// Depends on: filter/protocol (the line codec).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filter/protocol.hpp"

namespace postern::filter {

enum class HandshakeState {
    Waiting,  // register|ready not seen yet
    Ready,    // register|ready seen; registrations() is final
    Failed,   // failure() says why; the filter must be restarted
};
std::string_view handshake_state_name(HandshakeState s);

enum class HandshakeFailure {
    BadConfig,     // our own config lines cannot be encoded (a CR in admd...): the host's error, not the filter's
    BadLine,       // a line that does not parse, e.g. a registration of an unknown event or phase
    NotRegister,   // a filter-result, filter-dataline or report line before register|ready
    LateRegister,  // a register| line after register|ready, a second register|ready included
    EndOfInput,    // the filter's output ended before register|ready
    TimedOut,      // the host's timer fired before register|ready
};

// Why a handshake failed, with the offending line when there is one.
struct HandshakeError {
    HandshakeFailure kind = HandshakeFailure::BadLine;
    std::optional<ParseError> parse;    // BadLine: what the codec refused
    std::optional<EncodeError> encode;  // BadConfig: what the codec refused
    // The filter's line, made printable (bytes outside 0x20-0x7e as \xNN) and
    // cut to kQuotedLine bytes: it is untrusted and goes to the log.
    std::string line;
    // One line for the log: `timed out`, `end of input before register|ready`,
    // `line "register|report|smtp-in|nope": unknown report event`...
    std::string text() const;
    bool operator==(const HandshakeError&) const = default;
};
inline constexpr std::size_t kQuotedLine = 80;

// What one fed line did.
enum class HandshakeStep {
    Waiting,       // taken; register|ready still to come
    Ready,         // this line was register|ready
    Failed,        // the handshake has failed (by this line or before it)
    NotHandshake,  // after Ready: not a register| line, so the session layer's to handle
};

class HandshakeMachine {
public:
    // `config` is what we announce, its version included (0.6 by default,
    // the layout Debian 12's filters expect; 0.7 adds config|protocol|0.7).
    HandshakeMachine(std::string name, const Handshake& config);

    const std::string& name() const { return name_; }
    Version version() const { return version_; }

    // The config| lines then config|ready, without '\n'; empty when the
    // config cannot be encoded (then the state is Failed, BadConfig).
    const std::vector<std::string>& lines_to_send() const { return to_send_; }

    // One line the filter wrote, without its '\n'. After Ready the host may
    // stop feeding; if it goes on, a register| line still fails the filter (a
    // registration after ready is a protocol violation) and every other line
    // is NotHandshake and changes nothing. After Failed nothing changes.
    HandshakeStep feed(std::string_view line);
    // The filter closed its output (or exited). A failure unless Ready.
    void end_of_input();
    // The host's handshake timer fired. A failure unless Ready.
    void timed_out();

    HandshakeState state() const { return state_; }
    // What the filter registered; complete once Ready.
    const Registrations& registrations() const { return registrations_; }
    // Set exactly when the state is Failed; the first failure is kept.
    const std::optional<HandshakeError>& failure() const { return failure_; }
    // `filter "NAME": handshake failed: REASON`, or "" when not Failed.
    std::string describe_failure() const;

private:
    HandshakeStep take(const FilterLine& line, std::string_view text);
    HandshakeStep fail(HandshakeError e);

    std::string name_;
    Version version_;
    std::vector<std::string> to_send_;
    HandshakeState state_ = HandshakeState::Waiting;
    Registrations registrations_;
    std::optional<HandshakeError> failure_;
};

}  // namespace postern::filter
