// filters/lib/filter.hpp — writing a filter for OpenSMTPD's stdio filter
// protocol, as postern's own filters (filter-dkim, filter-rspamd) do.
//
// A filter derives from Filter, says what it wants (registration()), and
// answers: each request through an Answer, each message's data lines
// through a DataStream. Both are handles that may be kept and used later,
// from the same loop: a filter that waits for a network answer (rspamd)
// does not hold up other sessions. run() speaks the protocol on stdin and
// stdout with a libuv loop the filter may share (timers, sockets): the
// handshake (register lines written at once, config lines taken as they
// come), one line in, typed calls out, answers in the layout of the
// version each line carries (0.5 and later), and the per-session facts the
// reports give (Session), kept from link-connect to link-disconnect.
//
// Lines are unstuffed on the way in and stuffed on the way out: a filter
// sees the message's lines as they are, and "." ending the stream is not
// one of them (on_data_end is).
//
// Depends on: core/filter (the line codec), libuv.
#pragma once

#include <uv.h>

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "filter/protocol.hpp"

namespace postern::filterlib {

using filter::Event;
using filter::Phase;

// What the reports told about one session.
struct Session {
    std::uint64_t id = 0;
    std::string rdns;  // "<unknown>" when the client has no PTR name
    bool fcrdns = false;
    std::string src, dest;  // "1.2.3.4:port", "[v6]:port", "unix:..."
    std::string helo;
    bool tls = false;
    std::string user;  // authenticated user, "" if none
    // The transaction (tx-begin to tx-reset).
    std::uint32_t msgid = 0;
    std::string mail_from;             // accepted sender, "" for <>
    std::vector<std::string> rcpt_to;  // accepted recipients
    // The filter's own state for this session, as it likes.
    std::any data;
};

class Link;

// The answer to one filter request; call exactly one method, once. A copy
// refers to the same request. An Answer outliving its session is harmless.
class Answer {
public:
    void proceed();
    void junk();
    void reject(std::string_view reply);      // "550 5.7.1 text": 4xx or 5xx
    void disconnect(std::string_view reply);  // likewise; ends the session
    void rewrite(std::string_view value);
    void report(std::string_view text);  // postern: a filter-report event, then the chain goes on
    bool answered() const { return *done_; }

private:
    friend class Link;
    Answer(std::shared_ptr<Link> link, std::uint64_t session, std::uint64_t token);
    void send(filter::FilterResult r);
    std::weak_ptr<Link> link_;
    std::uint64_t session_, token_;
    std::shared_ptr<bool> done_ = std::make_shared<bool>(false);
};

// The filtered message of one transaction, as the filter writes it back:
// any number of lines (added, changed, dropped), then end().
class DataStream {
public:
    void line(std::string_view text);  // one message line, without line end, unstuffed
    void end();                        // the message is complete
    bool ended() const { return *ended_; }

private:
    friend class Link;
    DataStream(std::shared_ptr<Link> link, std::uint64_t session, std::uint64_t token);
    std::weak_ptr<Link> link_;
    std::uint64_t session_, token_;
    std::shared_ptr<bool> ended_ = std::make_shared<bool>(false);
};

struct Registration {
    std::set<Phase> phases;
    std::set<Event> events;  // the library adds what it needs for Session
};

class Filter {
public:
    virtual ~Filter() = default;
    virtual Registration registration() const = 0;
    // Each config|KEY|VALUE line, then on_ready() after config|ready.
    virtual void on_config(std::string_view key, std::string_view value) {}
    virtual void on_ready() {}
    // A request; `answer` may be kept and used later. The default proceeds.
    virtual void on_request(Session& s, Phase phase, std::string_view param, Answer answer) { answer.proceed(); }
    // A report the filter registered (after the library's own bookkeeping);
    // `params` are split as the event's layout says.
    virtual void on_report(Session& s, Event event, const std::vector<std::string_view>& params) {}
    // Data lines; the defaults pass the message through unchanged.
    virtual void on_data_line(Session& s, std::string_view line, DataStream& out) { out.line(line); }
    virtual void on_data_end(Session& s, DataStream& out) { out.end(); }
    // The session is gone (link-disconnect).
    virtual void on_session_end(Session& s) {}
};

struct RunOptions {
    std::string name = "filter";  // for messages on stderr
    int in_fd = 0, out_fd = 1;
};

// Runs `f` until the daemon closes the filter's input (exit status 0) or
// speaks in a way the filter cannot follow (status 1, with the reason on
// stderr). Runs `loop` (uv_default_loop() when null).
int run(Filter& f, uv_loop_t* loop = nullptr, const RunOptions& options = {});

}  // namespace postern::filterlib
