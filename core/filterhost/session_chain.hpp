// filterhost/session_chain.hpp — the filters of one SMTP session: the chain
// of its listener, walked for each filtered phase, fed the report events,
// and streamed the message's data lines.
//
// Walking a phase (../shared/reference/filter-protocol.md sections 5 and 8):
// the request goes to the first member registered for the phase; `proceed`
// moves on to the next, the end of the chain is `proceed`. `junk`, `reject`,
// `disconnect` and `rewrite` end the walk with that verdict; a filter's
// `report` decision becomes a filter-report event and the walk goes on with
// the parameter unchanged. Built-in members are asked through the session
// (SessionEvents::builtin_match), at their place in the chain.
//
// Data lines flow through the members that registered data-line, each
// member's output being the next one's input; the last one's output goes to
// the session. Report events go to every member that registered them.
//
// A member that fails (exits, breaks the protocol, does not answer within
// its proc's timeout) fails the session (SessionEvents::filter_failed: a
// temporary failure), unless its proc says `on-failure pass`: then the
// member is dropped for the rest of the session and the walk goes on. Lines
// for the session are matched by session id and token; the token names the
// member and the phase, so an answer nobody asked for is a protocol
// violation of its filter.
//
// Depends on: filterhost/connection, filter, config, libuv.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "filter/protocol.hpp"
#include "filterhost/connection.hpp"

namespace postern::filterhost {

// What a walk decided.
struct Verdict {
    enum class Kind { Proceed, Junk, Reject, Disconnect, Rewrite };
    Kind kind = Kind::Proceed;
    int code = 0;  // Reject, Disconnect: 4xx or 5xx (421 always disconnects)
    std::string
        text;  // Reject, Disconnect: the reply after the code, an enhanced status code first; Rewrite: the value
    std::string filter;  // who decided (for logs); "" for Proceed
};

class SessionEvents {
public:
    // A filter of this session failed: answer the client with a temporary failure.
    virtual void filter_failed(const std::string& filter, const std::string& why) = 0;
    // A line of the filtered message (still dot-stuffed), and its end.
    virtual void data_output(std::string_view line) = 0;
    virtual void data_output_end() = 0;
    // The filters have taken what was waiting for them: read the client again.
    virtual void filters_writable() = 0;
    // Does the built-in filter's condition hold for this session now, the
    // phase's parameter being `param`? (A table that cannot be read: TempFail.)
    enum class Match { Yes, No, TempFail };
    virtual void builtin_match(const config::BuiltinFilter& f, const std::string& param,
                               std::function<void(Match)> done) = 0;

protected:
    ~SessionEvents() = default;
};

// One member of a session's chain.
struct Member {
    std::string name;                                // the filter's name
    Connection* conn = nullptr;                      // process filter: nullptr once dropped (on-failure pass)
    const config::BuiltinFilter* builtin = nullptr;  // built-in filter
    bool fail_open = false;                          // its proc says `on-failure pass`
    std::uint64_t timeout_ms = 60'000;
};

class SessionChain final : private ConnectionClient {
public:
    SessionChain(uv_loop_t* loop, std::uint64_t session, std::vector<Member> members, SessionEvents& events);
    ~SessionChain();
    SessionChain(const SessionChain&) = delete;
    SessionChain& operator=(const SessionChain&) = delete;

    std::uint64_t session() const { return session_; }
    // Some member would be asked for this phase.
    bool wants(filter::Phase p) const;
    // Some member registered this report event.
    bool wants(filter::Event e) const;
    // To every member registered for the event. Events the protocol cannot
    // carry (a '|' in a 0.6 username...) are left out.
    void report(const filter::ReportEvent& e);
    // Walks the chain for one phase. `done` is called once, on the loop,
    // unless the session fails first (filter_failed) or the chain is destroyed.
    void request(filter::Phase phase, std::string param, std::function<void(Verdict)> done);

    // Data lines. data_line takes one line as the client sent it (dot-stuffed,
    // without CRLF); "." ends the stream. A line the protocol cannot carry
    // (longer than a filter accepts) is not sent and makes data_refused() true.
    bool data_filtered() const;
    void data_begin();
    void data_line(std::string_view line);
    bool data_refused() const { return data_refused_; }
    // Some filter is behind: stop reading the client until filters_writable().
    bool congested() const;

private:
    struct Walk {
        filter::Phase phase;
        std::string param;
        std::function<void(Verdict)> done;
        std::size_t member = 0;  // the member asked, while waiting
        bool waiting = false;
    };

    // ConnectionClient
    void on_result(Connection& c, const filter::FilterResult& r) override;
    void on_dataline(Connection& c, const filter::FilterDataline& d) override;
    void on_origin_report(Connection& c, const filter::FilterOriginReport& r) override;
    void on_progress(Connection& c) override;
    void on_failed(Connection& c, const std::string& why) override;
    void on_writable(Connection& c) override;

    void step(std::size_t from);
    void finish(Verdict v);
    void builtin_decided(std::size_t index, SessionEvents::Match matched);
    void emit_response(filter::Phase phase, filter::Decision d, const std::string& param);
    void emit_filter_report(filter::ReportKind kind, const std::string& name, const std::string& text);
    void send_data(std::size_t position, std::string_view line);
    std::optional<std::size_t> member_of(const Connection& c) const;
    void arm_timer(std::size_t member);
    void disarm_timer();
    void violation(Connection& c, const std::string& what);
    static std::uint64_t token(std::size_t member, filter::Phase phase);

    uv_loop_t* loop_;
    std::uint64_t session_;
    std::vector<Member> members_;
    SessionEvents& events_;
    std::optional<Walk> walk_;
    // The data stream: the members it passes, in order; where "." has got to.
    std::vector<std::size_t> data_path_;
    // Members whose reading this session paused: the next one on the data path was behind.
    std::vector<std::size_t> paused_;
    void resume_upstream(bool all);
    bool data_open_ = false;
    bool data_refused_ = false;
    uv_timer_t* timer_ = nullptr;
    std::size_t timer_member_ = std::numeric_limits<std::size_t>::max();
    // Set by the destructor's callers' guard: a callback may destroy the chain.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The reply of a reject or disconnect, as the client gets it: the filter's
// text with an enhanced status code put in front when it has none (x.7.1,
// "delivery not authorized": the code OpenSMTPD's own refusals use).
std::string with_enhanced_code(int code, std::string_view text);

filter::Timestamp now_timestamp();

}  // namespace postern::filterhost
