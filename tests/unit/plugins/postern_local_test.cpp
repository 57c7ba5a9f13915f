// tests/unit/plugins/postern_local_test.cpp — the delivery agent run as the
// daemon runs it: a subprocess with the message file on stdin. Checks exit
// codes (0 / 75 / 1), the one stderr line, and what reached the plugin.
#include <spawn.h>

#include "support.hpp"

extern char** environ;

namespace {

const std::string kAgent = POSTERN_BUILD_DIR "/postern-local";

struct Run {
    int exit_code = -1;
    std::string err;
};

// posix_spawn the agent with `message` on stdin and stderr captured.
Run run_agent(const test::TempDir& dir, std::vector<std::string> args,
              const std::string& message = "Subject: hi\n\nbody\n") {
    std::string in = dir / "stdin", err = dir / "stderr";
    test::write_file(in, message);
    args.insert(args.begin(), kAgent);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    REQUIRE(posix_spawn_file_actions_init(&actions) == 0);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, kAgent.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return {WEXITSTATUS(status), test::read_file(err)};
}

std::vector<std::string> status_args(const std::string& options, const std::string& path) {
    return {"--plugin-dir", test::kTestPluginDir, "--method", "status", "--sender", "",
            "--rcpt", "Bob@Example.com", "--dest", "bob@example.com", "--user", "bob",
            "--home", "/home/bob", "--path", path, "--options", options, "--msgid", "abc123"};
}

const std::string kUsage =
    "usage: postern-local [--plugin-dir DIR] --method NAME --sender S --rcpt R --dest D\n"
    "                     --user U --home H [--path P] [--options O] [--msgid M] < message\n";

}  // namespace

TEST_CASE("postern-local: success passes every field and the message to the plugin") {
    test::TempDir dir;
    std::string out = dir / "out";
    auto run = run_agent(dir, status_args("ok", out), "Subject: x\n\nline\n");
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK(test::read_file(out) ==
          "\nBob@Example.com\nbob@example.com\nbob\n/home/bob\n" + out + "\nok\nabc123\nSubject: x\n\nline\n");
}

TEST_CASE("postern-local: finds the build tree's plugins without --plugin-dir") {
    test::TempDir dir;
    auto run = run_agent(dir, {"--method", "maildir", "--sender", "a@example.org", "--rcpt", "b@example.com",
                               "--dest", "b@example.com", "--user", "b", "--home", dir.path()},
                         "Subject: auto\n\n");
    INFO(run.err);
    CHECK(run.exit_code == 0);
    auto names = test::list_dir(dir / "Maildir/new");
    REQUIRE(names.size() == 1);
    CHECK(test::read_file(dir / "Maildir/new/" + names[0]) ==
          "Return-Path: <a@example.org>\nDelivered-To: b@example.com\nSubject: auto\n\n");
}

TEST_CASE("postern-local: plugin results become exit codes 75 and 1") {
    test::TempDir dir;
    auto temp = run_agent(dir, status_args("tempfail", ""));
    CHECK(temp.exit_code == 75);
    CHECK(temp.err == "postern-local: status: tempfail requested\n");
    auto perm = run_agent(dir, status_args("permfail", ""));
    CHECK(perm.exit_code == 1);
    CHECK(perm.err == "postern-local: status: permfail requested\n");
}

TEST_CASE("postern-local: an unloadable plugin is a temporary failure") {
    test::TempDir dir;
    auto args = status_args("ok", dir / "out");
    args[3] = "nothere";
    auto missing = run_agent(dir, args);
    CHECK(missing.exit_code == 75);
    CHECK(missing.err == "postern-local: " + test::kTestPluginDir + "/delivery-nothere.so: no such plugin (looked in " +
                             test::kTestPluginDir + ")\n");

    args[3] = "../status";
    auto bad_name = run_agent(dir, args);
    CHECK(bad_name.exit_code == 75);
    CHECK(bad_name.err ==
          "postern-local: invalid delivery plugin name \"../status\" (allowed: a-z, 0-9 and -)\n");
    CHECK(test::list_dir(dir.path()) == std::vector<std::string>{"stderr", "stdin"});
}

TEST_CASE("postern-local: bad arguments exit 1 with the usage") {
    test::TempDir dir;
    auto base = status_args("ok", dir / "out");
    struct Case {
        std::vector<std::string> args;
        std::string reason;
    };
    auto with = [&](std::vector<std::string> extra) {
        auto a = base;
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    std::vector<std::string> no_rcpt = base;
    no_rcpt.erase(no_rcpt.begin() + 6, no_rcpt.begin() + 8);
    const Case cases[] = {
        {with({"--frobnicate", "x"}), "unknown argument \"--frobnicate\""},
        {with({"positional"}), "unknown argument \"positional\""},
        {with({"--msgid"}), "option --msgid needs a value"},
        {with({"--user", "eve"}), "option --user given twice"},
        {with({"-u", "eve"}), "unknown argument \"-u\""},
        {with({"--method=status"}), "unknown argument \"--method=status\""},
        {no_rcpt, "missing option --rcpt"},
        {{}, "missing option --method"},
    };
    for (const auto& c : cases) {
        auto run = run_agent(dir, c.args);
        CHECK(run.exit_code == 1);
        CHECK(run.err == "postern-local: " + c.reason + "\n" + kUsage);
    }
    CHECK(test::list_dir(dir.path()) == std::vector<std::string>{"stderr", "stdin"});
}
