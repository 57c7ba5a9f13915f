// postern-sendmail(8): the sendmail(8) command of postern, also run as
// sendmail, mailq and newaliases (by the name it is called by).
//
// It submits one message through the daemon's local socket (`listen on
// socket`, a UNIX socket next to the control socket: smtpd/local_socket.hpp)
// by speaking SMTP to it, as OpenSMTPD's smtpctl does through smtpd.sock.
// The socket is open to every user (mode 0666), so the program needs no
// setuid or setgid bit: the daemon learns who submits from the socket's
// peer credentials, and the rules decide what that user may send.
//
// When the daemon cannot be reached the message is not kept anywhere: the
// program says so and exits EX_TEMPFAIL (75), so that the caller (a
// script, cron) knows the mail was not sent. There is no offline queue.
//
// The control socket's path, and from it the local socket's, is found as
// posternctl(8) finds it: -C FILE's `control socket`, else $POSTERN_CONTROL,
// else the installed configuration's, else /run/postern/control.sock.
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "makemap.hpp"
#include "sendmail/client.hpp"
#include "sendmail/message.hpp"
#include "sendmail/options.hpp"
#include "smtpd/local_socket.hpp"

namespace {

using namespace postern::sendmail;

constexpr const char* kDefaultControl = "/run/postern/control.sock";  // as the daemon's default
constexpr const char* kDefaultConfig = POSTERN_DEFAULT_CONFIG;

std::string g_program = "postern-sendmail";

void fail(const std::string& what) { std::fprintf(stderr, "%s: %s\n", g_program.c_str(), what.c_str()); }

int usage(const std::string& error) {
    fail(error);
    std::fprintf(stderr,
                 "usage: %s [-itv] [-f sender] [-F name] [-N notify] [-R ret] [-V envid] [-C config] "
                 "[recipient ...]\n"
                 "       %s -bs | -bp | -bi\n",
                 g_program.c_str(), g_program.c_str());
    return kUsage;
}

// ---- where the daemon is ----

struct Control {
    std::string path;  // "" after an error (already printed)
};

Control control_from_config(const std::string& file) {
    auto parsed = postern::config::parse_file(file);
    if (!parsed.config) {
        for (const auto& e : parsed.errors) std::fprintf(stderr, "%s\n", postern::config::format(e).c_str());
        fail("cannot read the control socket from " + file);
        return {};
    }
    const std::string& named = parsed.config->control_socket;
    return {named.empty() ? kDefaultControl : named};
}

// An ordinary user may not be able to read the installed configuration
// (a 0600 file): the default socket is then the best guess, and a wrong one
// shows as "cannot reach the mail daemon at PATH".
Control find_control(const Options& o) {
    if (!o.config.empty()) return control_from_config(o.config);
    if (const char* env = std::getenv("POSTERN_CONTROL"); env && *env) return {env};
    if (::access(kDefaultConfig, R_OK) == 0) return control_from_config(kDefaultConfig);
    return {kDefaultControl};
}

// ---- who submits ----

struct User {
    std::string login;      // the name of the real uid
    std::string full_name;  // the GECOS name, "" when there is none
};

User current_user() {
    User u;
    if (passwd* pw = ::getpwuid(::getuid())) {
        u.login = pw->pw_name;
        std::string gecos = pw->pw_gecos ? pw->pw_gecos : "";
        u.full_name = gecos.substr(0, gecos.find(','));
    } else {
        u.login = std::to_string(::getuid());
    }
    return u;
}

std::string qualified(const std::string& address, const std::string& domain) {
    return address.find('@') == std::string::npos ? address + "@" + domain : address;
}

std::string new_message_id(const std::string& domain, std::time_t now) {
    std::random_device rd;
    char buf[128];
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::snprintf(buf, sizeof buf, "<%04d%02d%02d%02d%02d%02d.%ld.%08x@", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(::getpid()), rd());
    return buf + domain + ">";
}

// ---- the modes ----

// -bp / mailq: the queue as `posternctl show queue` shows it, to root only,
// as OpenSMTPD's mailq: the control socket serves root and _postern alone.
int show_queue(const Options& o) {
    if (::geteuid() != 0) {
        fail("only root may see the mail queue (it lists every user's mail); ask the administrator");
        return kNoPerm;
    }
    char self[4096];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fail(std::string("cannot find posternctl: /proc/self/exe: ") + std::strerror(errno));
        return kOsErr;
    }
    std::string dir(self, static_cast<size_t>(n));
    std::string ctl = dir.substr(0, dir.rfind('/')) + "/posternctl";
    std::vector<std::string> args = {"posternctl"};
    if (!o.config.empty()) args.insert(args.end(), {"-f", o.config});
    args.insert(args.end(), {"show", "queue"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(ctl.c_str(), argv.data());
    fail("cannot run " + ctl + ": " + std::strerror(errno));
    return kOsErr;
}

// -bi: newaliases, postern-makemap's code.
int new_aliases(const Options& o) {
    std::vector<std::string> args = {"newaliases"};
    if (!o.config.empty()) args.insert(args.end(), {"-f", o.config});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return postern::makemap::main(static_cast<int>(args.size()), argv.data());
}

bool connect_daemon(Client& c, const Options& o) {
    Control control = find_control(o);
    if (control.path.empty()) return false;
    std::string path = postern::smtpd::local_socket_path(control.path), error;
    if (c.connect(path, &error)) return true;
    fail("cannot reach the mail daemon at " + path + ": " + error + "; the message was not sent");
    return false;
}

// -bs: an SMTP session on stdin and stdout, passed through to the socket
// as it is (the caller speaks SMTP; nothing is added to its messages). The
// daemon's replies are copied out until it closes the session (after QUIT);
// once the input has ended, replies still under way have 10 s to come.
int smtp_session(const Options& o) {
    constexpr int kAfterInputMs = 10 * 1000;
    Client c(false);
    if (!connect_daemon(c, o)) return kTempFail;
    std::vector<char> buf(16384);
    bool input_open = true;
    for (;;) {
        pollfd p[2] = {{c.fd(), POLLIN, 0}, {0, static_cast<short>(input_open ? POLLIN : 0), 0}};
        int n = ::poll(p, input_open ? 2 : 1, input_open ? -1 : kAfterInputMs);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail(std::string("poll: ") + std::strerror(errno));
            return kOsErr;
        }
        if (n == 0) return kOk;  // the input ended without QUIT and the daemon has nothing more to say
        if (p[0].revents) {
            ssize_t got = ::read(c.fd(), buf.data(), buf.size());
            if (got <= 0) return kOk;  // the daemon ended the session (QUIT, or it refused)
            if (std::fwrite(buf.data(), 1, static_cast<size_t>(got), stdout) != static_cast<size_t>(got) ||
                std::fflush(stdout) != 0)
                return kOsErr;
        }
        if (input_open && p[1].revents) {
            ssize_t got = ::read(0, buf.data(), buf.size());
            std::string error;
            // The socket stays open for writing: the daemon ends a session
            // whose client half-closes without answering what came before.
            if (got <= 0) input_open = false;
            else if (!c.send_raw(std::string_view(buf.data(), static_cast<size_t>(got)), &error)) {
                fail(error);
                return kTempFail;
            }
        }
    }
}

// The recipients: the command line's, and with -t the header's (a resent
// message's Resent-To:, Resent-Cc: and Resent-Bcc:, message.hpp).
int collect_recipients(const Options& o, Message& m, std::vector<std::string>* rcpts) {
    std::string error;
    for (const auto& r : o.recipients)
        if (!parse_address_list(r, rcpts, &error)) return fail(error), kDataErr;
    if (o.extract) {
        bool resent = false;
        for (const auto& f : recipient_fields(m, &resent))
            if (!parse_address_list(f.value, rcpts, &error)) return fail(f.name + ": " + error), kDataErr;
        remove_blind_copies(m);
        if (rcpts->empty())
            return fail(resent ? "no recipient addresses found in the message's most recent Resent-To:, Resent-Cc: "
                                 "or Resent-Bcc: (it has Resent- fields: it is being resent)"
                               : "no recipient addresses found in the message's To:, Cc: or Bcc:"),
                   kDataErr;
    }
    if (rcpts->empty()) return usage("no recipients given (name them, or use -t)");
    // A recipient named twice (To: and Bcc:, say) gets one copy.
    std::vector<std::string> unique;
    for (auto& r : *rcpts)
        if (std::find(unique.begin(), unique.end(), r) == unique.end()) unique.push_back(std::move(r));
    *rcpts = std::move(unique);
    for (const auto& r : *rcpts)
        if (r.find_first_of(" \t<>") != std::string::npos || r.front() == '@' || r.back() == '@')
            return fail("malformed address: " + r), kDataErr;
    return kOk;
}

int send(const Options& o) {
    std::vector<std::string> lines;
    std::string error;
    if (!read_message(stdin, o.ignore_dots, &lines, &error)) return fail(error), kNoInput;
    Message m = split(std::move(lines));
    std::vector<std::string> rcpts;
    if (int rc = collect_recipients(o, m, &rcpts); rc != kOk) return rc;

    Client c(o.verbose);
    if (!connect_daemon(c, o)) return kTempFail;
    Reply r;
    bool garbled = false;
    if (!c.read_reply(&r, &error, &garbled)) return fail(error + "; the message was not sent"), kTempFail;
    if (r.code != 220) return fail("the mail daemon refused the session: " + r.text), exit_for(Step::Greeting, r.code);
    // The greeting names the server: unqualified addresses in the added
    // From: get its name, as the daemon gives it to the envelope's.
    std::string server = r.text.size() > 4 ? r.text.substr(4, r.text.find(' ', 4) - 4) : "localhost";
    if (!c.command("EHLO localhost", &r, &error, &garbled))
        return fail(error + "; the message was not sent"), garbled ? kProtocol : kTempFail;
    if (r.code != 250) return fail("EHLO refused: " + r.text), exit_for(Step::Ehlo, r.code);

    User user = current_user();
    Envelope e;
    e.sender = o.sender_given ? o.sender : user.login;
    e.rcpts = rcpts;
    e.notify = o.notify;
    e.ret = o.ret;
    e.envid = o.envid;
    Additions add;
    add.now = std::time(nullptr);
    std::string from_address = qualified(e.sender.empty() ? user.login : e.sender, server);
    // The GECOS name is the user's: it goes with the user's own address only.
    std::string name = !o.full_name.empty() ? o.full_name : o.sender_given ? "" : user.full_name;
    add.from = name.empty() ? from_address : display_name(name) + " <" + from_address + ">";
    add.message_id = new_message_id(server, add.now);
    add_missing_fields(m, add);
    lines = join(m);
    for (const auto& l : lines)
        for (unsigned char ch : l)
            if (ch > 127) e.eight_bit = true;
    int rc = send_message(c, e, lines, g_program);
    c.command("QUIT", &r, &error, &garbled);
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);
    if (args.empty()) args.emplace_back("postern-sendmail");
    std::string name = program_name(args[0]);
    // newaliases's command line is makemap's (its -f names the configuration).
    if (name == "newaliases") return postern::makemap::main(argc, argv);
    if (!name.empty()) g_program = name;
    ParseResult parsed = parse(args);
    if (!parsed.error.empty()) return usage(parsed.error);
    const Options& o = parsed.options;
    if (o.verbose)
        for (const auto& w : o.warnings) fail(w);
    switch (o.mode) {
    case Mode::Queue: return show_queue(o);
    case Mode::Aliases: return new_aliases(o);
    case Mode::Smtp: return smtp_session(o);
    case Mode::Send: break;
    }
    return send(o);
}
