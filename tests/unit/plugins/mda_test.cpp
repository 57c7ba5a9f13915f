// tests/unit/plugins/mda_test.cpp — delivery-mda.so, loaded as postern-local
// loads it (and once through postern-local itself): what the command reads on
// stdin, its exact environment and working folder, exit codes with their
// enhanced status codes and the first stderr line, commands that stop
// reading, the time limit killing a whole process group, %{...} filled in as
// shell parameters, hostile envelope values staying data, and no child left
// unreaped.
#include <signal.h>
#include <spawn.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "delivery/agent_batch.hpp"
#include "support.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;

const std::string kMessage = "Subject: hello\nFrom: alice@example.org\n\nbody line\n";
const std::string kPrefix = "Return-Path: <alice@example.org>\nDelivered-To: bob@example.com\n";

const postern::util::DeliveryPlugin& mda() {
    static auto p = test::load_delivery("mda");
    return p;
}

test::Outcome deliver(const test::TempDir& dir, const test::Request& r, const std::string& message = kMessage) {
    auto fd = test::message_fd(dir, message);
    return test::deliver(mda(), r, fd.get());
}

test::Request with_command(const std::string& command) {
    test::Request r;
    r.path = command;
    return r;
}

std::string megabyte_message() {
    std::string m = "Subject: big\n\n";
    for (int i = 0; m.size() < (1u << 20); ++i) m += "line " + std::to_string(i) + " of a large message\n";
    return m;
}

// Every plugin call reaps what it started: this process has no child left.
void check_no_children() {
    errno = 0;
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

// KEY=VALUE lines of `env` output (values here never hold a newline).
std::map<std::string, std::string> parse_env(const std::string& text) {
    std::map<std::string, std::string> vars;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        size_t eq = line.find('=');
        REQUIRE(eq != std::string::npos);
        vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return vars;
}

// Gone, or a zombie waiting for init: in both cases no longer running.
bool dead(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return true;
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t close = content.rfind(')');
    return close != std::string::npos && content.size() > close + 2 && content[close + 2] == 'Z';
}

bool dead_within(pid_t pid, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!dead(pid)) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

std::vector<pid_t> read_pids(const std::string& path) {
    std::vector<pid_t> pids;
    std::istringstream in(test::read_file(path));
    pid_t p;
    while (in >> p) pids.push_back(p);
    return pids;
}

// An envelope value as a %{...} gives it (delivery/format.hpp): every byte but
// letters, digits and @ . _ + - = becomes ':', and so does a leading '.'.
std::string inert(std::string v) {
    for (char& c : v)
        if (!std::isalnum(static_cast<unsigned char>(c)) &&
            std::string_view("@._+-=").find(c) == std::string_view::npos)
            c = ':';
    if (!v.empty() && v[0] == '.') v[0] = ':';
    return v;
}

}  // namespace

TEST_CASE("mda: the command reads exactly the two header lines and the message") {
    test::TempDir dir;
    auto r = with_command("cat > '" + dir / "out" + "'");
    auto out = deliver(dir, r);
    INFO(out.error);
    REQUIRE(out.status == POSTERN_OK);
    CHECK(out.error.empty());
    CHECK(test::read_file(dir / "out") == kPrefix + kMessage);

    r.sender = "";
    r.dest = "carol@example.net";
    REQUIRE(deliver(dir, r, "Subject: no body").status == POSTERN_OK);
    CHECK(test::read_file(dir / "out") == "Return-Path: <>\nDelivered-To: carol@example.net\nSubject: no body");

    auto big = megabyte_message();
    REQUIRE(deliver(dir, with_command("cat > '" + dir / "big" + "'"), big).status == POSTERN_OK);
    CHECK(test::read_file(dir / "big") == kPrefix + big);
    check_no_children();
}

TEST_CASE("mda: the command sees exactly the documented environment") {
    test::TempDir dir;
    REQUIRE(::setenv("POSTERN_MDA_TEST_LEAK", "must-not-pass", 1) == 0);
    auto r = with_command("env > '" + dir / "env" + "'");
    r.sender = "alice@example.org";
    r.rcpt = "Bob+lists.Work@Example.COM";
    r.dest = "bob@mail.example.com";
    r.user = "bob";
    r.home = dir.path();
    auto out = deliver(dir, r);
    ::unsetenv("POSTERN_MDA_TEST_LEAK");
    INFO(out.error);
    REQUIRE(out.status == POSTERN_OK);

    auto vars = parse_env(test::read_file(dir / "env"));
    const std::map<std::string, std::string> expected = {
        {"PATH", "/usr/bin:/bin"},
        {"SHELL", "/bin/sh"},
        {"HOME", dir.path()},
        {"USER", "bob"},
        {"LOGNAME", "bob"},
        {"SENDER", "alice@example.org"},
        {"RECIPIENT", "bob@mail.example.com"},
        {"ORIGINAL_RECIPIENT", "Bob+lists.Work@Example.COM"},
        {"LOCAL", "bob"},
        {"DOMAIN", "mail.example.com"},
        {"EXTENSION", "lists.Work"},
    };
    for (const auto& [key, value] : expected) {
        INFO(key);
        REQUIRE(vars.count(key) == 1);
        CHECK(vars[key] == value);
    }
    // The shell itself may add these (dash: PWD; bash as sh: SHLVL and _);
    // nothing else may be there.
    const std::set<std::string> shell_adds = {"PWD", "OLDPWD", "SHLVL", "_"};
    for (const auto& [key, value] : vars) {
        INFO(key << "=" << value);
        CHECK((expected.count(key) == 1 || shell_adds.count(key) == 1));
    }

    r.rcpt = "bob@example.com";
    r.sender = "";
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    vars = parse_env(test::read_file(dir / "env"));
    CHECK(vars.count("EXTENSION") == 1);
    CHECK(vars["EXTENSION"].empty());
    CHECK(vars.count("SENDER") == 1);
    CHECK(vars["SENDER"].empty());
    check_no_children();
}

TEST_CASE("mda: exit codes map to results with the first stderr line") {
    test::TempDir dir;
    struct Case {
        std::string command;
        int status;
        std::string error;
    };
    const Case cases[] = {
        {"echo noise >&2; exit 0", POSTERN_OK, ""},
        {"echo 'disk full' >&2; echo 'usage: x' >&2; exit 75", POSTERN_TEMPFAIL, "mda: command exited 75: disk full"},
        {"echo 'cannot fork' >&2; exit 71", POSTERN_TEMPFAIL, "mda: command exited 71: cannot fork"},
        {"printf '\\n\\r\\nno such mailbox\\nmore\\n\\n' >&2; exit 1", POSTERN_PERMFAIL,
         "mda: command exited 1: no such mailbox"},
        {"exit 1", POSTERN_PERMFAIL, "mda: command exited 1"},
        {"printf 'tab\\there\\r\\nsecond\\n' >&2; exit 67", POSTERN_PERMFAIL, "mda: command exited 67: tab here"},
        {"printf 'no newline' >&2; exit 2", POSTERN_PERMFAIL, "mda: command exited 2: no newline"},
        {"/nonexistent/deliver", POSTERN_PERMFAIL, "mda: command exited 127: sh: 1: /nonexistent/deliver: not found"},
        {"kill -TERM $$", POSTERN_TEMPFAIL, "mda: command killed by signal 15"},
        {"kill -KILL $$", POSTERN_TEMPFAIL, "mda: command killed by signal 9"},
    };
    for (const Case& c : cases) {
        INFO(c.command);
        auto out = deliver(dir, with_command(c.command));
        CHECK(out.status == c.status);
        CHECK(out.error == c.error);
    }
    // A long line is cut to 512 bytes.
    auto out = deliver(dir, with_command("head -c 3000 /dev/zero | tr '\\0' y >&2; echo >&2; echo z >&2; exit 2"));
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mda: command exited 2: " + std::string(512, 'y'));
    // A command that writes much more than the head kept is drained, not blocked.
    out = deliver(dir, with_command("echo first >&2; head -c 1000000 /dev/zero >&2; exit 3"));
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mda: command exited 3: first");
    check_no_children();
}

TEST_CASE("mda: each exit status gets Postfix's sysexits meaning and enhanced code") {
    test::TempDir dir;
    struct Case {
        int code;
        int status;
        const char* enhanced;
    };
    const Case cases[] = {
        {0, POSTERN_OK, ""},
        {1, POSTERN_PERMFAIL, "5.3.0"},
        {2, POSTERN_PERMFAIL, "5.3.0"},
        {63, POSTERN_PERMFAIL, "5.3.0"},
        {64, POSTERN_PERMFAIL, "5.3.0"},  // EX_USAGE
        {65, POSTERN_PERMFAIL, "5.6.0"},  // EX_DATAERR
        {66, POSTERN_PERMFAIL, "5.3.0"},  // EX_NOINPUT
        {67, POSTERN_PERMFAIL, "5.1.1"},  // EX_NOUSER
        {68, POSTERN_PERMFAIL, "5.1.2"},  // EX_NOHOST
        {69, POSTERN_PERMFAIL, "5.3.0"},  // EX_UNAVAILABLE
        {70, POSTERN_PERMFAIL, "5.3.0"},  // EX_SOFTWARE
        {71, POSTERN_TEMPFAIL, "4.3.0"},  // EX_OSERR
        {72, POSTERN_PERMFAIL, "5.3.0"},  // EX_OSFILE
        {73, POSTERN_PERMFAIL, "5.2.0"},  // EX_CANTCREAT
        {74, POSTERN_PERMFAIL, "5.3.0"},  // EX_IOERR
        {75, POSTERN_TEMPFAIL, "4.3.0"},  // EX_TEMPFAIL
        {76, POSTERN_PERMFAIL, "5.5.0"},  // EX_PROTOCOL
        {77, POSTERN_PERMFAIL, "5.7.0"},  // EX_NOPERM
        {78, POSTERN_PERMFAIL, "5.3.5"},  // EX_CONFIG
        {79, POSTERN_PERMFAIL, "5.3.0"},
        {126, POSTERN_PERMFAIL, "5.3.0"},
        {255, POSTERN_PERMFAIL, "5.3.0"},
    };
    for (const Case& c : cases) {
        INFO(c.code);
        auto fd = test::message_fd(dir, kMessage);
        auto res = test::deliver_typed(mda(), with_command("echo why >&2; exit " + std::to_string(c.code)), fd.get());
        CHECK(res.status == c.status);
        CHECK(std::string(res.enhanced) == c.enhanced);
        CHECK(std::string(res.text) == (c.code == 0 ? "" : "mda: command exited " + std::to_string(c.code) + ": why"));
        // deliver gives the same status and text, without the code.
        auto plain = deliver(dir, with_command("echo why >&2; exit " + std::to_string(c.code)));
        CHECK(plain.status == c.status);
        CHECK(plain.error == std::string(res.text));
    }
    auto fd = test::message_fd(dir, kMessage);
    auto res = test::deliver_typed(mda(), with_command("kill -KILL $$"), fd.get());
    CHECK(res.status == POSTERN_TEMPFAIL);
    CHECK(std::string(res.enhanced) == "4.3.0");
    // A caller built before the typed fields gets status and text only.
    fd = test::message_fd(dir, kMessage);
    res = test::deliver_typed(mda(), with_command("exit 67"), fd.get(), POSTERN_DELIVERY_RESULT_MIN_SIZE);
    CHECK(res.status == POSTERN_PERMFAIL);
    CHECK(std::string(res.text) == "mda: command exited 67");
    CHECK(std::string(res.enhanced).empty());
    check_no_children();
}

TEST_CASE("mda: a command that stops reading is judged by its exit status") {
    test::TempDir dir;
    auto big = megabyte_message();
    // This process does not ignore SIGPIPE: the plugin must survive EPIPE alone.
    auto out = deliver(dir, with_command("exit 0"), big);
    INFO(out.error);
    CHECK(out.status == POSTERN_OK);
    CHECK(out.error.empty());

    out = deliver(dir, with_command("head -c 100 > '" + dir / "head" + "'"), big);
    CHECK(out.status == POSTERN_OK);
    CHECK(test::read_file(dir / "head") == (kPrefix + big).substr(0, 100));

    out = deliver(dir, with_command("echo 'quota exceeded' >&2; exit 1"), big);
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mda: command exited 1: quota exceeded");

    sigset_t pending;
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGPIPE) == 0);
    check_no_children();
}

TEST_CASE("mda: the time limit kills the command's whole process group") {
    test::TempDir dir;
    auto r = with_command("sleep 100");
    r.options = "timeout=2";
    auto start = std::chrono::steady_clock::now();
    auto out = deliver(dir, r, megabyte_message());  // nothing read: writes block too
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "mda: command timed out after 2 s and was killed");
    CHECK(took >= 2s);
    CHECK(took < 5s);

    // A shell with a background child: both die, not just the leader.
    r.path = "echo $$ > '" + dir / "pids" + "'; sleep 100 & echo $! >> '" + dir / "pids" + "'; sleep 100";
    r.options = "timeout=1";
    start = std::chrono::steady_clock::now();
    out = deliver(dir, r);
    took = std::chrono::steady_clock::now() - start;
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "mda: command timed out after 1 s and was killed");
    CHECK(took < 4s);
    auto pids = read_pids(dir / "pids");
    REQUIRE(pids.size() == 2);
    CHECK(::kill(pids[0], 0) == -1);  // the leader is reaped by the plugin, not a zombie
    CHECK(dead_within(pids[1], 2000ms));
    check_no_children();
}

TEST_CASE("mda: runs in the home folder, or in / when there is none") {
    test::TempDir dir;
    auto r = with_command("pwd > '" + dir / "pwd" + "'");
    r.home = dir.path();
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    CHECK(test::read_file(dir / "pwd") == dir.path() + "\n");

    r.home = "/nonexistent/home/bob";
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    CHECK(test::read_file(dir / "pwd") == "/\n");

    test::write_file(dir / "file", "");
    r.home = dir / "file";
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    CHECK(test::read_file(dir / "pwd") == "/\n");
    check_no_children();
}

TEST_CASE("mda: hostile envelope values reach the command only as data") {
    test::TempDir dir;
    const std::string sender = "x$(touch " + dir / "p1" + ")`touch " + dir / "p2" + "`;touch " + dir / "p3" +
                               "@example.org";
    const std::string rcpt = "bob+'\"$(touch " + dir / "p4" + ")`id`@example.com";
    auto r = with_command("printf '%s\\n' \"$SENDER\" \"$ORIGINAL_RECIPIENT\" \"$EXTENSION\" > '" + dir / "vars" +
                          "'; cat > '" + dir / "msg" + "'");
    r.sender = sender;
    r.rcpt = rcpt;
    auto out = deliver(dir, r);
    INFO(out.error);
    REQUIRE(out.status == POSTERN_OK);
    CHECK(test::read_file(dir / "vars") == sender + "\n" + rcpt + "\n" + "'\"$(touch " + dir / "p4" + ")`id`\n");
    CHECK(test::read_file(dir / "msg") == "Return-Path: <" + sender + ">\nDelivered-To: bob@example.com\n" + kMessage);
    for (const char* p : {"p1", "p2", "p3", "p4"}) {
        INFO(p);
        CHECK_FALSE(std::filesystem::exists(dir / p));
    }
    check_no_children();
}

TEST_CASE("mda: %{...} in the command reach it as shell parameters, never as shell text") {
    test::TempDir dir;
    // CVE-2020-7247's shape, and every quoting the admin may put around a value.
    const std::string sender = "\"$(touch " + dir / "p1" + ")`touch " + dir / "p2" + "`;touch " + dir / "p3" +
                               "\"@x.org";
    const std::string home = dir / "o'brien $(touch p4) \"x\"";
    std::filesystem::create_directory(home);
    auto r = with_command("printf '[%s]\\n' %{sender} \"%{sender}\" '%{sender}' %{user.directory} "
                          "\"$(printf %s %{sender.user})\" > '" +
                          dir / "args" + "'; cat > \"%{user.directory}/out-%{sender.user}\"");
    r.sender = sender;
    r.home = home;
    auto out = deliver(dir, r);
    INFO(out.error);
    REQUIRE(out.status == POSTERN_OK);
    const std::string s = inert(sender);
    const std::string u = inert(sender.substr(0, sender.rfind('@')));
    CHECK(test::read_file(dir / "args") == "[" + s + "]\n[" + s + "]\n[" + s + "]\n[" + home + "]\n[" + u + "]\n");
    CHECK(test::read_file(home + "/out-" + u) ==
          "Return-Path: <" + sender + ">\nDelivered-To: bob@example.com\n" + kMessage);
    for (const char* p : {"p1", "p2", "p3", "p4"}) {
        INFO(p);
        CHECK_FALSE(std::filesystem::exists(dir / p));
        CHECK_FALSE(std::filesystem::exists(home + "/" + p));
    }
    // ~ at the start is the home folder; strip follows subaddr-delim.
    r = with_command("printf '%s\\n' %{rcpt.user:strip} > ~/strip");
    r.home = dir.path();
    r.rcpt = "bob-x+y@example.com";
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    CHECK(test::read_file(dir / "strip") == "bob-x\n");
    r.options = "subaddr-delim=-";
    REQUIRE(deliver(dir, r).status == POSTERN_OK);
    CHECK(test::read_file(dir / "strip") == "bob\n");
    check_no_children();
}

TEST_CASE("mda: a template that cannot be filled runs nothing") {
    test::TempDir dir;
    auto run_typed = [&](const test::Request& r) {
        auto fd = test::message_fd(dir, kMessage);
        return test::deliver_typed(mda(), r, fd.get());
    };
    const std::string ran = "touch '" + dir / "ran" + "'; ";
    // The config's mistake: the mail waits for the fix.
    auto res = run_typed(with_command(ran + "x %{nosuch}"));
    CHECK(res.status == POSTERN_TEMPFAIL);
    CHECK(std::string(res.enhanced) == "4.3.5");
    CHECK(std::string(res.text).rfind("mda: cannot expand the command \"" + ran + "x %{nosuch}\" at byte " +
                                          std::to_string(ran.size() + 4) + ": expected a format name",
                                      0) == 0);
    res = run_typed(with_command(ran + "x \\%{dest}"));
    CHECK(res.status == POSTERN_TEMPFAIL);
    CHECK(std::string(res.text).find("it would escape the quoting of the value") != std::string::npos);
    // This envelope's values cannot fill it: it bounces.
    auto r = with_command(ran + "x %{rcpt.user[10]}");
    res = run_typed(r);
    CHECK(res.status == POSTERN_PERMFAIL);
    CHECK(std::string(res.enhanced) == "5.3.0");
    CHECK(std::string(res.text) == "mda: cannot expand the command \"" + ran + "x %{rcpt.user[10]}\" at byte " +
                                       std::to_string(ran.size() + 2) +
                                       ": the slice [10] starts outside the value (the value of %{rcpt.user[10]} "
                                       "is 3 bytes long)");
    CHECK_FALSE(std::filesystem::exists(dir / "ran"));
    check_no_children();
}

TEST_CASE("mda: refusals without running anything") {
    test::TempDir dir;
    auto out = deliver(dir, with_command(""));
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mda: no command given");
    out = deliver(dir, with_command(" \t "));
    CHECK(out.status == POSTERN_PERMFAIL);
    CHECK(out.error == "mda: no command given");

    auto r = with_command("touch '" + dir / "ran" + "'");
    for (const char* bad : {"timeout=0", "timeout=541", "timeout=2s", "timeout="}) {
        r.options = bad;
        out = deliver(dir, r);
        CHECK(out.status == POSTERN_TEMPFAIL);
        CHECK(out.error == "mda: option \"" + std::string(bad) + "\": expected timeout=N with N from 1 to 540");
    }
    r.options = "junk";
    out = deliver(dir, r);
    CHECK(out.status == POSTERN_TEMPFAIL);
    CHECK(out.error == "mda: unknown option \"junk\"");
    for (const char* bad : {"subaddr-delim=", "subaddr-delim=@", "subaddr-delim=\x01", "subaddr-delim=++"}) {
        r.options = bad;
        out = deliver(dir, r);
        CHECK(out.status == POSTERN_TEMPFAIL);
        CHECK(out.error ==
              "mda: option \"" + std::string(bad) + "\": expected subaddr-delim=C with one printable character");
    }
    CHECK_FALSE(std::filesystem::exists(dir / "ran"));

    r.options = "timeout=540";
    CHECK(deliver(dir, r).status == POSTERN_OK);
    CHECK(std::filesystem::exists(dir / "ran"));

    postern_delivery_request small{};
    small.struct_size = 8;
    char err[128] = "";
    CHECK(mda()->deliver(&small, err, sizeof err) == POSTERN_TEMPFAIL);
    CHECK(std::string(err) == "mda: request struct too small");
    check_no_children();
}

TEST_CASE("mda: through postern-local, with the message on descriptor 3") {
    test::TempDir dir;
    std::string in = dir / "message", out = dir / "results";
    auto big = megabyte_message();
    test::write_file(in, big);
    // Runs the agent for one delivery; returns its result as a line.
    auto agent = [&](const std::string& command) {
        std::vector<std::string> args = {POSTERN_BUILD_DIR "/postern-local",
                                         "--plugin-dir",
                                         test::kPluginDir,
                                         "--method",
                                         "mda",
                                         "--user",
                                         "b",
                                         "--home",
                                         dir.path(),
                                         "--batch-fd",
                                         "5",
                                         "--result-fd",
                                         "4"};
        // The envelope on --batch-fd (delivery/agent_batch.hpp), not in argv.
        postern::delivery::first_batch::Item item;
        item.fd = 3;
        item.fields = {"a@example.org", "b+x@example.com", "b@example.com", command, "m1", "", ""};
        test::write_file(dir / "batch", postern::delivery::first_batch::encode({item}));
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        REQUIRE(posix_spawn_file_actions_init(&fa) == 0);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 3, in.c_str(), O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 4, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        std::string batch = dir / "batch";
        posix_spawn_file_actions_addopen(&fa, 5, batch.c_str(), O_RDONLY, 0);
        pid_t pid = -1;
        int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        REQUIRE(rc == 0);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        return test::result_lines(test::read_file(out));
    };
    CHECK(agent("cat > out; echo \"$EXTENSION\" > ext") == "0 ok Delivered\n");
    CHECK(test::read_file(dir / "out") == "Return-Path: <a@example.org>\nDelivered-To: b@example.com\n" + big);
    CHECK(test::read_file(dir / "ext") == "x\n");
    CHECK(agent("exit 0") == "0 ok Delivered\n");
    CHECK(agent("echo 'mailbox locked' >&2; exit 75") == "0 temp mda: command exited 75: mailbox locked\n");
    CHECK(agent("echo 'unknown folder' >&2; exit 1") == "0 perm mda: command exited 1: unknown folder\n");
    check_no_children();
}
