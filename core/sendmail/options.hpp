// sendmail/options.hpp — postern-sendmail's command line, as sendmail(8)
// programs take it (Sendmail, Postfix, OpenSMTPD's smtpctl), and the exit
// codes of sysexits(3) the program ends with.
//
// Parsing is a pure function of argv, so that the unit tests cover every
// form: flags grouped (-ti), values attached or apart (-fme, -f me), -o and
// -O options (ignored, except -oi), -b modes, recipients before or after
// the options (as glibc's getopt permutes them), "--".
#pragma once

#include <string>
#include <vector>

namespace postern::sendmail {

// sysexits(3), spelled out so that the code reads as the manual does.
enum Exit : int {
    kOk = 0,
    kUsage = 64,        // EX_USAGE: bad command line
    kDataErr = 65,      // EX_DATAERR: bad addresses, a message the daemon refused
    kNoInput = 66,      // EX_NOINPUT: the message cannot be read
    kNoUser = 67,       // EX_NOUSER: recipients refused
    kUnavailable = 69,  // EX_UNAVAILABLE: the daemon refuses service
    kSoftware = 70,     // EX_SOFTWARE
    kOsErr = 71,        // EX_OSERR: a system call failed (fork, exec)
    kTempFail = 75,     // EX_TEMPFAIL: the daemon cannot be reached or said 4xx
    kProtocol = 76,     // EX_PROTOCOL: a reply that makes no sense
    kNoPerm = 77,       // EX_NOPERM
    kConfig = 78,       // EX_CONFIG: the configuration naming the socket is broken
};

enum class Mode {
    Send,     // -bm (the default): a message on stdin
    Queue,    // -bp, or run as mailq
    Aliases,  // -bi, or run as newaliases
    Smtp,     // -bs: an SMTP session on stdin/stdout
};

struct Options {
    Mode mode = Mode::Send;
    bool extract = false;       // -t: recipients from To:, Cc:, Bcc:
    bool ignore_dots = false;   // -i, -oi: a line "." does not end the message
    bool verbose = false;       // -v: the SMTP dialogue on stderr
    std::string sender;         // -f/-r; "" = the user's login name
    bool sender_given = false;  // -f "" or -f "<>": the null sender
    std::string full_name;      // -F: the From: header's display name
    std::string notify;         // -N: DSN NOTIFY= for every recipient
    std::string ret;            // -R: DSN RET= (full, hdrs)
    std::string envid;          // -V: DSN ENVID=
    std::string config;         // -C: the configuration naming the control socket
    std::vector<std::string> recipients;
    std::vector<std::string> warnings;  // options accepted and ignored, for -v
};

struct ParseResult {
    Options options;
    std::string error;  // non-empty: a usage error, said as this
};

// `argv[0]` picks the program: "mailq" is -bp, "newaliases" is -bi (only
// its base name counts); anything else is sendmail.
ParseResult parse(const std::vector<std::string>& argv);

// The base name of a program path ("/usr/sbin/mailq" -> "mailq").
std::string program_name(const std::string& argv0);

}  // namespace postern::sendmail
