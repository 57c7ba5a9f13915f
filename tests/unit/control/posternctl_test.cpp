// posternctl(8) run as a subprocess against a real control::Server answering
// from the test table: exact output in text and JSON, errors and exit codes,
// and `encrypt` hashes that crypt(3) verifies.
#include <crypt.h>
#include <grp.h>
#include <sys/stat.h>

#include <utility>  // before Boost: 1.74's asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "support.hpp"

using namespace control_test;
namespace bp = boost::process;

namespace {

const std::string kCtl = POSTERN_BUILD_DIR "/posternctl";

struct Run {
    int status = -1;
    std::string out, err;
};

// Runs the child as `nobody` when asked (set in the child, before exec).
struct MaybeNobody : bp::extend::handler {
    bool on = false;
    template <class Executor>
    void on_exec_setup(Executor&) const {
        if (on && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(99);
    }
};

struct RunOptions {
    std::string input;
    bool as_nobody = false;
    std::string env_socket;  // POSTERN_CONTROL; unset when empty
    std::string exe = kCtl;  // a copy nobody can reach, when the build tree is root's alone
};

Run ctl(const std::vector<std::string>& args, const RunOptions& opt = {}) {
    boost::asio::io_context io;
    std::future<std::string> out, err;
    auto env = boost::this_process::environment();
    env.erase("POSTERN_CONTROL");
    if (!opt.env_socket.empty()) env["POSTERN_CONTROL"] = opt.env_socket;
    MaybeNobody nobody;
    nobody.on = opt.as_nobody;
    bp::child c(bp::exe = opt.exe, bp::args = args, env, bp::std_in<boost::asio::buffer(opt.input), bp::std_out> out,
                bp::std_err > err, io, nobody);
    // The pipes reach EOF first; then the child is reaped. Both bounded.
    // (Boost 1.74's child::wait_for sleeps out its whole timeout: poll instead.)
    io.run_for(std::chrono::seconds(20));
    for (int i = 0; i < 2000 && c.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (c.running()) {
        c.terminate();
        FAIL("posternctl did not finish within 20 s");
    }
    Run r;
    r.status = c.exit_code();
    r.out = out.get();
    r.err = err.get();
    return r;
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

}  // namespace

TEST_CASE("posternctl show queue prints one escaped line per envelope") {
    TestServer s;
    Run r = ctl({"-s", s.path(), "show", "queue"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    CHECK(r.out == "0123456789abcdef|alice@example.org|bob@example.net|2026-11-02 10:00:00|0|\n"
                   "89abcdef01234567|evil\\x7cx\\n\\x00@example.org|caf\xc3\xa9@example.net|pending|3|421 "
                   "\"busy\"\\t\\\\ \\xff\n");
}

TEST_CASE("posternctl --json show queue prints an array of objects") {
    TestServer s;
    Run r = ctl({"--json", "-s", s.path(), "show", "queue"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    // Keys in the daemon's order; a control byte escaped, valid UTF-8 kept,
    // the invalid byte 0xff read as Latin-1 (U+00FF, written as UTF-8).
    CHECK(
        r.out ==
        "[{\"id\":\"0123456789abcdef\",\"sender\":\"alice@example.org\",\"rcpt\":\"bob@example.net\","
        "\"next-try\":\"2026-11-02 10:00:00\",\"attempts\":\"0\",\"last-error\":\"\"},"
        "{\"id\":\"89abcdef01234567\",\"sender\":\"evil|x\\n\\u0000@example.org\",\"rcpt\":\"caf\xc3\xa9@example.net\","
        "\"next-try\":\"pending\",\"attempts\":\"3\",\"last-error\":\"421 \\\"busy\\\"\\t\\\\ \xc3\xbf\"}]\n");
}

TEST_CASE("posternctl --json show queue prints [] for an empty queue") {
    TestServer s;
    s.handler.empty_queue = true;
    Run r = ctl({"--json", "-s", s.path(), "show", "queue"});
    CHECK((r.status == 0 && r.out == "[]\n" && r.err == ""));
    r = ctl({"-s", s.path(), "show", "queue"});
    CHECK((r.status == 0 && r.out == "" && r.err == ""));
}

TEST_CASE("posternctl show stats prints key=value lines, or one JSON object") {
    TestServer s;
    Run r = ctl({"-s", s.path(), "show", "stats"});
    CHECK(r.status == 0);
    CHECK(r.out == "uptime=12\nsmtp.session=3\nscheduler.envelope=2\n");
    r = ctl({"-s", s.path(), "--json", "show", "stats"});
    CHECK(r.status == 0);
    CHECK(r.out == "{\"uptime\":\"12\",\"smtp.session\":\"3\",\"scheduler.envelope\":\"2\"}\n");
}

TEST_CASE("posternctl show status prints the overview, or one JSON object") {
    TestServer s;
    Run r = ctl({"-s", s.path(), "show", "status"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    CHECK(
        r.out ==
        "version: 0.1.0\nuptime: 1h 0m 0s\nmda: running\nmta: paused\nsmtp: running\n"
        "queue: 0 messages, 0 envelopes\nlistener ::1 port 465: smtps auth-optional; filters f\nfilter f: starting\n");
    r = ctl({"-s", s.path(), "--json", "show", "status"});
    CHECK(r.status == 0);
    CHECK(r.out ==
          R"({"version":"0.1.0","uptime":3600,"mda":"running","mta":"paused","smtp":"running",)"
          R"("queue":{"messages":0,"envelopes":0,"oldest-age":null},)"
          R"("listeners":[{"address":"::1","port":465,"path":null,"tls":false,"tls-require":false,"smtps":true,)"
          R"("auth":false,"auth-optional":true,"filter":"f","filters":["f"]}],)"
          R"("filters":[{"name":"f","kind":"proc","state":"starting","pid":null,"restart-in-ms":null}]})"
          "\n");
}

TEST_CASE("posternctl show message prints the message as it is, show envelope key: value lines") {
    TestServer s;
    Run r = ctl({"-s", s.path(), "show", "message", "01234567"});
    CHECK(r.status == 0);
    CHECK(r.out == "Subject: hi\r\n\r\nbody\r\n");
    r = ctl({"-s", s.path(), "show", "envelope", "0123456789abcdef"});
    CHECK(r.out == "id: 0123456789abcdef\nrcpt: bob@example.net\nretry: 1\n");
    r = ctl({"-s", s.path(), "--json", "show", "message", "01234567"});
    CHECK(r.out == "{\"text\":\"Subject: hi\\r\\n\\r\\nbody\\r\\n\"}\n");
}

TEST_CASE("posternctl actions print a short confirmation") {
    TestServer s;
    CHECK(ctl({"-s", s.path(), "schedule", "0123456789abcdef"}).out == "1 envelope scheduled\n");
    CHECK(ctl({"-s", s.path(), "schedule", "all"}).out == "scheduled all\n");
    CHECK(ctl({"-s", s.path(), "pause", "mta"}).out == "mta paused\n");
    CHECK(ctl({"-s", s.path(), "resume", "smtp"}).out == "smtp resumed\n");
    CHECK(ctl({"-s", s.path(), "log", "verbose"}).out == "verbose logging on\n");
    CHECK(ctl({"-s", s.path(), "update", "table", "aliases"}).out == "table aliases updated\n");
    Run r = ctl({"-s", s.path(), "--json", "pause", "mda"});
    CHECK(r.status == 0);
    CHECK(r.out == "{\"message\":\"mda paused\"}\n");
    CHECK(s.handler.calls == 7);
}

TEST_CASE("posternctl table lookup prints one line and exits 0 found, 1 not found, 2 otherwise") {
    TestServer s;
    auto lookup = [&](std::string service, std::string key) {
        return ctl({"-s", s.path(), "table", "lookup", "t", service, key});
    };
    Run r = lookup("userinfo", "bob");
    CHECK((r.status == 0 && r.out == "found: 1001:1001:/home/bob\n" && r.err == ""));
    r = lookup("alias", "hostile");  // a value cannot break the line or reach the terminal raw
    CHECK((r.status == 0 && r.out == "found: a\\nb\\x1b[31m\\xff\n"));
    r = lookup("credentials", "bob");
    CHECK((r.status == 0 && r.out == "found (value hidden)\n"));
    r = lookup("domain", "a.example.org");
    CHECK((r.status == 0 && r.out == "found (matches *.example.org)\n"));
    r = lookup("netaddr", "10.0.0.1");
    CHECK((r.status == 0 && r.out == "found\n"));
    r = lookup("userinfo", "missing");
    CHECK((r.status == 1 && r.out == "not found\n" && r.err == ""));
    r = lookup("alias", "down");
    CHECK((r.status == 2 && r.out == ""));
    CHECK(r.err == "posternctl: temporary failure: table t: timed out\\nretry\n");
    r = lookup("alias", "garbled");
    CHECK((r.status == 2 && r.out == ""));
    CHECK(r.err == "posternctl: garbled reply from posternd: expected one record with a result\n");

    r = ctl({"-s", s.path(), "--json", "table", "lookup", "t", "userinfo", "missing"});
    CHECK(r.status == 1);
    CHECK(r.out == "{\"table\":\"t\",\"service\":\"userinfo\",\"key\":\"missing\",\"how\":\"lookup\","
                   "\"result\":\"not-found\"}\n");
    r = ctl({"-s", s.path(), "--json", "table", "lookup", "t", "alias", "down"});
    CHECK(r.status == 2);
    CHECK(r.out.find("\"result\":\"tempfail\",\"error\":\"table t: timed out\\nretry\"}") != std::string::npos);

    // Not even sent: exit 2 with the reason and the usage.
    int before = s.handler.calls;
    r = lookup("aliases", "x");
    CHECK(r.status == 2);
    CHECK(lines_of(r.err)[0] ==
          "posternctl: invalid service 'aliases': expected one of alias, credentials, domain, netaddr, userinfo, "
          "source, string, mailaddr, mailaddrmap, addrname, relayhost");
    CHECK(s.handler.calls == before);
    // No daemon: 2 too, so that 1 only ever means "not in the table".
    r = ctl({"-s", s.dir() + "/nope.sock", "table", "lookup", "t", "alias", "x"});
    CHECK(r.status == 2);
}

TEST_CASE("posternctl prints an error reply on one line and exits 1") {
    TestServer s;
    Run r = ctl({"-s", s.path(), "remove", "0123456789abcdef"});
    CHECK(r.status == 1);
    CHECK(r.out == "");
    CHECK(r.err == "posternctl: no such envelope: 0123456789abcdef\\nsecond line\n");
}

TEST_CASE("posternctl finds the socket through POSTERN_CONTROL") {
    TestServer s;
    RunOptions opt;
    opt.env_socket = s.path();
    Run r = ctl({"pause", "mta"}, opt);
    CHECK(r.status == 0);
    CHECK(r.out == "mta paused\n");
    // -s wins over the environment.
    r = ctl({"-s", s.dir() + "/nope.sock", "pause", "mta"}, opt);
    CHECK(r.status == 1);
}

TEST_CASE("posternctl refuses unknown commands and bad arguments with usage, exit 2") {
    const std::string usage_line = "usage: posternctl [-s SOCKET | -f CONFIG] [--json] COMMAND...";
    Run r = ctl({"-s", "/nonexistent/control.sock", "frobnicate"});
    CHECK(r.status == 2);
    CHECK(r.out == "");
    auto lines = lines_of(r.err);
    REQUIRE(lines.size() == 27);
    CHECK(lines[0] == "posternctl: unknown command: frobnicate");
    CHECK(lines[1] == usage_line);
    CHECK(lines[2] == "options:");
    CHECK(lines[3] == "  -s SOCKET   the control socket");
    CHECK(lines[4] == "  -f CONFIG   the control socket named in this configuration file");
    CHECK(lines[8] == "commands:");
    CHECK(lines[9] == "  show queue");
    CHECK(lines[14] == "  show quarantine");
    CHECK(lines[15] == "  release MSGID");
    CHECK(lines[22] == "  table lookup NAME SERVICE KEY");
    CHECK(lines[23] == "  reload");
    CHECK(lines[24] == "  encrypt [STRING]");
    CHECK(lines[25] == "  makemap [-U] [-d hash|btree] [-o DBFILE] [-t aliases|set] FILE");
    CHECK(lines[26] ==
          "(SERVICE: alias, credentials, domain, netaddr, userinfo, source, string, mailaddr, mailaddrmap, "
          "addrname, relayhost)");

    r = ctl({"schedule", "xyz"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err)[0] ==
          "posternctl: invalid id 'xyz': expected a message id (8 hex digits), an envelope id (16) or all");

    r = ctl({"release", "0123456789abcdef"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err)[0] == "posternctl: invalid message id '0123456789abcdef': expected 8 hex digits");

    r = ctl({});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err)[0] == usage_line);

    r = ctl({"--frob", "show", "queue"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err)[0] == "posternctl: unknown option '--frob'");

    r = ctl({"encrypt", "a", "b"});
    CHECK(r.status == 2);

    r = ctl({"--help"});
    CHECK(r.status == 0);
    CHECK(lines_of(r.out)[0] == usage_line);
}

TEST_CASE("posternctl says when the daemon is not running, exit 1") {
    char tmpl[] = "/tmp/postern-control-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string dir = tmpl;
    std::string path = dir + "/control.sock";
    Run r = ctl({"-s", path, "show", "queue"});
    CHECK(r.status == 1);
    CHECK(r.out == "");
    CHECK(r.err == "posternctl: posternd does not seem to be running (no socket at " + path + ")\n");

    // A socket file left behind by a dead daemon: connection refused, same words.
    {
        postern::util::Fd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un sun{};
        sun.sun_family = AF_UNIX;
        std::memcpy(sun.sun_path, path.data(), path.size());
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
    }
    r = ctl({"-s", path, "show", "queue"});
    CHECK(r.status == 1);
    CHECK(r.err == "posternctl: posternd does not seem to be running (no socket at " + path + ")\n");
    std::filesystem::remove_all(dir);
}

TEST_CASE("posternctl as an ordinary user: refused by the file mode, or by the daemon") {
    if (::geteuid() != 0) {
        WARN("not root: cannot run posternctl as another user; skipped");
        return;
    }
    TestServer s;
    REQUIRE(::chmod(s.dir().c_str(), 0755) == 0);  // mkdtemp made it 0700
    RunOptions nobody;
    nobody.as_nobody = true;
    // The build tree may be a checkout under a 0700 home: run a copy.
    nobody.exe = s.dir() + "/posternctl";
    std::filesystem::copy_file(kCtl, nobody.exe);

    // The socket is 0660 root:root: nobody cannot even connect.
    Run r = ctl({"-s", s.path(), "show", "queue"}, nobody);
    CHECK(r.status == 1);
    CHECK(r.err == "posternctl: permission denied on " + s.path() + " (run as root)\n");

    // With the file opened up, the daemon's peer check still refuses.
    REQUIRE(::chmod(s.path().c_str(), 0666) == 0);
    r = ctl({"-s", s.path(), "show", "queue"}, nobody);
    CHECK(r.status == 1);
    CHECK(r.err == "posternctl: permission denied\n");
    CHECK(s.handler.calls == 0);

    // encrypt needs no daemon and no privilege.
    r = ctl({"encrypt", "secret"}, nobody);
    CHECK(r.status == 0);
}

TEST_CASE("posternctl encrypt prints SHA-512 crypt hashes that crypt(3) verifies") {
    const std::regex sha512(R"(\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86})");
    Run r = ctl({"encrypt", "correct horse"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 1);
    CHECK(std::regex_match(lines[0], sha512));
    CHECK(std::string(crypt("correct horse", lines[0].c_str())) == lines[0]);
    CHECK(std::string(crypt("wrong horse", lines[0].c_str())) != lines[0]);

    // Each line of standard input is one password; the same password twice
    // gets two salts.
    RunOptions in;
    in.input = "first\n\nwith space \nfirst";
    r = ctl({"encrypt"}, in);
    CHECK(r.status == 0);
    lines = lines_of(r.out);
    REQUIRE(lines.size() == 4);
    const char* passwords[] = {"first", "", "with space ", "first"};
    for (size_t i = 0; i < 4; ++i) {
        INFO("line " << i);
        CHECK(std::regex_match(lines[i], sha512));
        CHECK(std::string(crypt(passwords[i], lines[i].c_str())) == lines[i]);
    }
    CHECK(lines[0] != lines[3]);

    in.input = std::string(2000, 'a') + "\n";
    r = ctl({"encrypt"}, in);
    CHECK(r.status == 1);
    CHECK(r.err == "posternctl: line 1 is too long (max 1024 bytes)\n");
}

TEST_CASE("hashes in the SHA-512 crypt format of smtpctl encrypt verify with crypt(3)") {
    // SHA-crypt's published test vector, in the form `smtpctl encrypt` writes
    // on Debian ($6$salt$hash, 5000 rounds implied): credentials tables made
    // for OpenSMTPD keep working.
    const char* hash =
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    CHECK(std::string(crypt("Hello world!", hash)) == hash);
    CHECK(std::string(crypt("Hello world?", hash)) != hash);
}

namespace {

// A configuration file in `dir` whose text is `text`; returns its path.
std::string write_config(const std::string& dir, const std::string& text) {
    std::string path = dir + "/smtpd.conf";
    std::ofstream(path) << text;
    return path;
}

const std::string kRules = "action \"l\" maildir\nmatch for local action \"l\"\n";

}  // namespace

TEST_CASE("posternctl -f talks to the control socket the configuration names") {
    TestServer s;
    std::string conf = write_config(s.dir(), "control socket \"" + s.path() + "\"\n" + kRules);
    Run r = ctl({"-f", conf, "pause", "mta"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    CHECK(r.out == "mta paused\n");
    r = ctl({"--json", "-f", conf, "show", "stats"});
    CHECK(r.status == 0);
    CHECK(r.out == "{\"uptime\":\"12\",\"smtp.session\":\"3\",\"scheduler.envelope\":\"2\"}\n");

    // -f is given on the command line: it wins over the environment.
    RunOptions env;
    env.env_socket = s.dir() + "/nope.sock";
    r = ctl({"-f", conf, "pause", "mda"}, env);
    CHECK(r.status == 0);
    CHECK(r.out == "mda paused\n");
    CHECK(s.handler.calls == 3);

    // A socket read from a file is named with that file when it is not there.
    std::string gone = s.dir() + "/gone.sock";
    conf = write_config(s.dir(), "control socket \"" + gone + "\"\n" + kRules);
    r = ctl({"-f", conf, "show", "queue"});
    CHECK(r.status == 1);
    CHECK(r.err ==
          "posternctl: posternd does not seem to be running (no socket at " + gone + ", named in " + conf + ")\n");
}

TEST_CASE("posternctl -f with a configuration that names no socket uses the daemon's default") {
    if (::access("/run/postern/control.sock", F_OK) == 0) {
        WARN("a posternd seems to run on this machine (/run/postern/control.sock): skipped");
        return;
    }
    char tmpl[] = "/tmp/postern-control-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string conf = write_config(tmpl, kRules);
    Run r = ctl({"-f", conf, "show", "queue"});
    CHECK(r.status == 1);
    CHECK(r.err == "posternctl: posternd does not seem to be running (no socket at /run/postern/control.sock, the "
                   "default: " +
                       conf + " names no control socket)\n");
    std::filesystem::remove_all(tmpl);
}

TEST_CASE("posternctl -f reports the errors of a broken configuration as file:line:col and exits 1") {
    TestServer s;
    // The socket line itself is fine: any error makes the file unusable, as
    // it does for posternd, so nothing is sent to the daemon.
    std::string conf = write_config(s.dir(), "control socket \"" + s.path() + "\"\n" + kRules +
                                                 "frob\ncontrol socket relative.sock\n");
    Run r = ctl({"-f", conf, "show", "queue"});
    CHECK(r.status == 1);
    CHECK(r.out == "");
    CHECK(r.err == conf +
                       ":4:1: unknown directive 'frob'; expected table, listen, action, match, smtp, queue, "
                       "include or a macro\n" +
                       conf +
                       ":5:16: expected an absolute path after 'control socket', found 'relative.sock'\n"
                       "posternctl: cannot read the control socket from " +
                       conf + "; fix it, or give -s SOCKET\n");
    CHECK(s.handler.calls == 0);

    // A file that is not there is an error too, not a silent fallback.
    r = ctl({"-f", s.dir() + "/missing.conf", "show", "queue"});
    CHECK(r.status == 1);
    CHECK(lines_of(r.err).at(0) == s.dir() + "/missing.conf:0:0: cannot read config file: No such file or directory");

    // Old-grammar warnings are the daemon's to give: not repeated here.
    conf = write_config(s.dir(), "control socket \"" + s.path() + "\"\naccept for local deliver to mbox\n");
    r = ctl({"-f", conf, "pause", "smtp"});
    CHECK(r.status == 0);
    CHECK(r.err == "");
    CHECK(r.out == "smtp paused\n");

    // encrypt needs neither the daemon nor the configuration.
    r = ctl({"-f", s.dir() + "/missing.conf", "encrypt", "secret"});
    CHECK(r.status == 0);
}

TEST_CASE("posternctl refuses -s with -f, and either without a value, exit 2") {
    Run r = ctl({"-s", "/tmp/a.sock", "-f", "/tmp/a.conf", "show", "queue"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err).at(0) == "posternctl: give -s or -f, not both");
    r = ctl({"show", "queue", "-f"});  // after the command: a word of the command
    CHECK(r.status == 2);
    r = ctl({"-f"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err).at(0) == "posternctl: option -f needs a value");
    r = ctl({"-s", "", "show", "queue"});
    CHECK(r.status == 2);
    CHECK(lines_of(r.err).at(0) == "posternctl: option -s needs a value");
}
