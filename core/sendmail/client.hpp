// sendmail/client.hpp — postern-sendmail's side of the local socket: a
// blocking SMTP client for one message, and how the daemon's replies map to
// the exit codes of sysexits(3).
//
// Commands go one at a time (no pipelining): each reply is checked before
// the next command, so that the error printed names the step that failed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sendmail/options.hpp"
#include "util/fd.hpp"

namespace postern::sendmail {

struct Reply {
    int code = 0;
    std::string text;  // every line of the reply, "\n" between them, codes included
};

// The steps of the dialogue, for exit_for().
enum class Step { Greeting, Ehlo, Mail, Rcpt, Data, EndOfData };

// The exit code for a reply that is not the one hoped for at `step`: 4xx
// is EX_TEMPFAIL (try again later), 5xx depends on the step (a refused
// sender or message is EX_DATAERR, a recipient EX_NOUSER, a daemon that
// refuses service EX_UNAVAILABLE), anything else EX_PROTOCOL.
int exit_for(Step step, int code);

// The DATA block for `lines`: CRLF line ends, a leading "." doubled
// (RFC 5321 4.5.2), and the final ".".
std::string data_block(const std::vector<std::string>& lines);

// An address as xtext (RFC 3461 4), for ENVID=.
std::string xtext(std::string_view s);

// A connected SMTP dialogue on the local socket.
class Client {
public:
    explicit Client(bool verbose) : verbose_(verbose) {}

    // Connects to the UNIX socket at `path`.
    bool connect(const std::string& path, std::string* error);
    // Sends `line` and CRLF.
    bool send_line(std::string_view line, std::string* error);
    bool send_raw(std::string_view data, std::string* error);
    // Reads one reply, of one or more lines. False with `error` when the
    // connection ends or times out, and also `garbled` when what came is no
    // SMTP reply.
    bool read_reply(Reply* r, std::string* error, bool* garbled);
    // Sends `line` and reads the reply to it.
    bool command(std::string_view line, Reply* r, std::string* error, bool* garbled);
    int fd() const { return fd_.get(); }

private:
    bool fill(std::string* error);

    util::Fd fd_;
    bool verbose_;
    std::string in_;
};

struct Envelope {
    std::string sender;  // "" = the null sender
    std::vector<std::string> rcpts;
    std::string notify, ret, envid;  // DSN, "" when not asked for
    bool eight_bit = false;          // the message has bytes above 127: BODY=8BITMIME
};

// One message through a client that has been greeted and said EHLO: MAIL,
// RCPT for each recipient, DATA. The exit code, with what went wrong on
// stderr, headed by `program`. Recipients refused for good are named and the
// message goes to the others (exit EX_NOUSER); a recipient refused for now
// ends the transaction with nothing sent (EX_TEMPFAIL), so that trying again
// later sends nobody the message twice.
int send_message(Client& c, const Envelope& e, const std::vector<std::string>& lines, const std::string& program);

}  // namespace postern::sendmail
