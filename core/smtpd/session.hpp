// One inbound SMTP session: a state machine fed by the socket.
//
// Commands are handled strictly in order. A step that needs an answer from
// elsewhere (rule evaluation and table lookups on the worker pool, the queue's
// commit) marks the session busy; input keeps arriving into the buffer but is
// not parsed until the answer is in. Replies produced while working through
// one read are written together. That is what makes PIPELINING correct:
// MAIL, RCPT, RCPT, DATA in one packet get their replies in order.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "auth/credentials.hpp"
#include "auth/sasl.hpp"
#include "filterhost/session_chain.hpp"
#include "rules/recipient.hpp"
#include "smtp/command.hpp"
#include "smtp/data_reader.hpp"
#include "smtp/dsn_params.hpp"
#include "smtp/proxy_header.hpp"
#include "smtpd/message_buffer.hpp"
#include "smtpd/server.hpp"
#include "tls/connection.hpp"

namespace postern::smtpd {

class SmtpSession : public std::enable_shared_from_this<SmtpSession>, private filterhost::SessionEvents {
public:
    SmtpSession(SmtpServer& server, const config::Listener& listener);
    ~SmtpSession();

    // Busy: max-sessions; Paused: posternctl pause; PerAddress and TooFast:
    // the client's address has too many sessions or connects too often.
    enum class Refusal { None, Busy, Paused, PerAddress, TooFast };
    // Accept from `listening`; false if accept failed (the session is then
    // closed). A session to be refused looks nothing up.
    bool accept(uv_stream_t* listening, Refusal refusal);
    void start(Refusal refusal);
    // Say goodbye and close: the daemon is stopping (421 4.3.2), or a part
    // of it is gone and no mail may be acknowledged (`unavailable`: 451
    // 4.3.0 to a transaction in progress, 421 4.3.0 otherwise).
    void shutdown(bool unavailable = false);

private:
    enum class State { Fresh, Ready, Mail, Data, Closing };

    struct Recipient {
        std::string rcpt;  // as given
        smtp::DsnRcpt dsn;
        std::vector<rules::PlannedDelivery> deliveries;
    };
    struct Transaction {
        std::string msgid;  // given when MAIL is accepted (filters see it from tx-begin on)
        bool junk = false;  // a filter said junk: X-Spam: Yes
        std::string sender;
        smtp::DsnMail dsn;
        std::vector<Recipient> rcpts;
    };

    // I/O
    void greet();
    void greet_by_address();
    void on_read(ssize_t nread, const uv_buf_t* buf);
    void process();
    void handle_line(std::string_view line);
    void reply(int code, std::string_view text);
    void reply_lines(int code, const std::vector<std::string>& lines);
    void flush();
    void close_after_flush();
    void close();
    // The client's turn begins (a reply, a line taken): it has the command
    // timeout for its next command. Reads alone do not push it back: a
    // client that trickles a byte at a time still has to finish in time.
    void reset_idle_timer();
    // Bytes of a message came: the deadline moves by what min-data-rate
    // allows for them, never past the command timeout from now.
    void data_progress(std::size_t bytes);
    // The session's one timer serves three deadlines: the idle timeout,
    // the reverse lookup's and a delayed step's (after()).
    void arm_timer();
    void on_timer();
    void update_reading();

    // Commands
    void cmd_helo(const smtp::Command& c, bool extended);
    void cmd_mail(const smtp::Command& c);
    void cmd_rcpt(const smtp::Command& c);
    void rcpt_resolved(const std::string& rcpt, const smtp::DsnRcpt& dsn, rules::Resolution r);
    void mail_accepted(std::string sender, smtp::DsnMail dsn);
    std::string fresh_message_id() const;

    // TLS (session_tls.cpp)
    bool start_tls();
    bool tls_input(std::string_view ciphertext);
    void cmd_starttls(const smtp::Command& c);

    // AUTH (session_auth.cpp)
    bool auth_offered() const;
    void cmd_auth(const smtp::Command& c);
    void auth_step(auth::Step step);
    void auth_verified(const std::string& user, auth::Check result, const std::string& error);
    bool address_auth_blocked();
    void check_sender(std::string sender, smtp::DsnMail dsn);
    // Runs `fn` after `ms` milliseconds unless the session closes first.
    void after(uint64_t ms, std::function<void()> fn);
    void cmd_data(const smtp::Command& c);
    void cmd_rset(const smtp::Command& c);
    // After data_ has been fed: what it holds goes on, and the message ends
    // if its "." has come.
    void data_fed();
    void finish_data();
    // `message`: the message from its first line (our Received: included);
    // `file`: the rest of it, after `message`.
    void commit_message(std::string message, std::shared_ptr<util::Fd> file, std::uint64_t file_size);

    void dispatch(const smtp::Command& c);

    // Filters (session_filter.cpp)
    bool open_filters();
    void filter_connect(std::function<void()> then);
    bool filter_gate(const smtp::Command& c, std::string_view line);
    void filter_verdict(filter::Phase phase, std::string line, const std::string& param, filterhost::Verdict v);
    template <typename E>
    void filter_report(E&& event) {
        if (chain_) chain_->report(std::forward<E>(event));
    }
    void filter_tx_result(bool rcpt, int code, const std::string& address);
    void filter_rollback();
    void filter_commit();
    void commit_buffer(std::shared_ptr<MessageBuffer> out);
    // The message streamed as it arrives (session_data.cpp): through the
    // data-line filters, or, without them, straight into the buffer the
    // queue commits from.
    void stream_begin(bool to_filters);
    void stream_lines();
    void stream_line(std::string_view line);
    void stream_headers();
    void stream_send(std::string_view line);
    void stream_end(const smtp::DataReader& reader);
    // The message is complete (the filters' "." has come, or the client's
    // without filters): refused, or on to the commit phase. `resume`: go on
    // with the client's input after a refusal (not when called from within
    // process()).
    void stream_output_end(bool resume);
    // filterhost::SessionEvents
    void filter_failed(const std::string& filter, const std::string& why) override;
    void data_output(std::string_view line) override;
    void data_output_end() override;
    void filters_writable() override;
    void builtin_match(const config::BuiltinFilter& f, const std::string& param,
                       std::function<void(Match)> done) override;
    rules::Subject subject() const;

    bool error_limit_reached();
    void lookup_rdns(const sockaddr_storage& peer);
    void take_rdns();
    void when_rdns_known(std::function<void()> fn);
    void rdns_resolved();
    std::string received_header(const std::string& msgid) const;
    bool submission() const;
    void complete_header(std::string& text);
    const std::string& hostname() const;

    SmtpServer& server_;
    const config::Listener& listener_;
    // The client's connection: TCP, or a pipe on the local socket. One of
    // the two is initialised; both begin as a uv_stream_t.
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } conn_{};
    uv_stream_t* conn() { return reinterpret_cast<uv_stream_t*>(&conn_); }
    uv_handle_t* conn_handle() { return reinterpret_cast<uv_handle_t*>(&conn_); }
    void accept_tcp(bool look_up);
    // Counts the session under its client's address (not a local client's);
    // false, with refused_ set, when that address may not have another.
    bool admit_client();
    bool counted_ = false;  // admitted under client_ip_: released on close
    Refusal refused_ = Refusal::None;
    void accept_local();
    // `listen on ... proxy-v2` (session_peer.cpp): the PROXY header is read
    // before anything else is said, and the client is the one it names.
    void await_proxy_header();
    void proxy_input();
    void proxy_refused(const std::string& reason);
    void take_proxied_peer(const smtp::proxy::Header& h);
    bool proxy_pending_ = false;  // the header has not been read yet
    bool proxy_look_up_ = false;  // look the client's name up once the header names it
    void lookup_local_user(std::function<void()> then);
    void begin(Refusal refusal);  // start(), once the local user's name is known
    // The local socket's client, from its peer credentials (SO_PEERCRED):
    // who submits. -1 and "" on TCP.
    long local_uid_ = -1;
    std::string local_user_;
    // One timer, not one per deadline: a libuv timer is 152 bytes, and an
    // idle session should cost little more than its socket (issue 15: 50,000
    // idle sessions at 2 KiB each). The deadlines are loop times in ms, 0
    // when unset.
    uv_timer_t timer_{};
    std::uint64_t idle_due_ = 0, rdns_due_ = 0, delay_due_ = 0;
    std::function<void()> delayed_;
    int open_handles_ = 0;

    std::string id_;  // session id for logs (16 hex digits, as filters see it)
    std::uint64_t sid_ = 0;
    std::unique_ptr<filterhost::SessionChain> chain_;  // the listener's filters; null = none
    bool junk_ = false;                                // a filter said junk before MAIL: every message of the session
    bool junk_next_ = false;                           // a filter said junk at mail-from: the transaction it opens
    // The message on its way in: through the filters' data lines, or
    // straight into `out`.
    struct FilterStream {
        bool to_filters = false;  // the listener has data-line filters
        bool in_headers = true;   // the header section is held until its end (loop count, masquerade)
        std::string headers;
        bool sent_end = false;
        int refusal_code = 0;  // the message fails the session's checks: refused once the filters are done
        std::string refusal;
        // The message to store (what the last filter gave back, unstuffed,
        // or what the client sent): in memory, in a file when large. Null
        // once the message is known to be refused (too big, a line too
        // long) and what still comes is dropped.
        std::shared_ptr<MessageBuffer> out;
    };
    FilterStream new_stream();
    std::unique_ptr<FilterStream> stream_;  // on the heap: only a session in DATA has one
    int client_port_ = 0, local_port_ = 0;
    std::string client_ip_;
    std::string local_ip_;    // the address the client reached
    std::string local_name_;  // from `hostnames <t>`, "" if none
    bool client_local_ = false;
    std::string rdns_;         // the client's reverse DNS name, "" if none
    bool fcrdns_ = false;      // ... and that name resolves back to the client's address
    bool rdns_known_ = false;  // the lookup answered or timed out
    // The lookup under way, shared with its job on the worker pool.
    struct RdnsLookup {
        std::mutex mutex;
        std::string name;     // the PTR name, "" if none (yet)
        bool fcrdns = false;  // ... and it resolved back to the client
    };
    std::shared_ptr<RdnsLookup> rdns_lookup_;
    std::vector<std::function<void()>> rdns_waiters_;
    std::string helo_;
    bool esmtp_ = false;
    State state_ = State::Fresh;
    bool busy_ = false;  // waiting for a rule evaluation or a commit
    unsigned errors_ = 0;
    unsigned idle_commands_ = 0;  // NOOP, VRFY, HELP, HELO/EHLO, RSET outside a transaction
    unsigned messages_ = 0;
    Transaction tx_;
    auth::Exchange auth_;
    bool authenticated_ = false;
    std::string auth_user_;
    unsigned auth_failures_ = 0;
    bool tls_active_ = false;  // TLS is up (STARTTLS done, or smtps)
    std::unique_ptr<tls::Connection> tls_;
    std::unique_ptr<smtp::DataReader> data_;  // in DATA only

    std::string in_;
    std::string out_;
    bool close_when_flushed_ = false;
    size_t writes_pending_ = 0;
};

}  // namespace postern::smtpd
