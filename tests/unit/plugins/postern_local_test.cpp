// tests/unit/plugins/postern_local_test.cpp — the delivery agent run as the
// daemon runs it: a subprocess with each message on an inherited descriptor
// (3, 4, ...), the envelopes on another (--batch-fd) and its results on
// another (--result-fd). Checks the results, the exit status, stdout and
// stderr, and what reached the plugin.
#include <spawn.h>

#include <optional>

#include "delivery/agent_batch.hpp"
#include "support.hpp"

extern char** environ;

namespace {

const std::string kAgent = POSTERN_BUILD_DIR "/postern-local";
constexpr int kResultFd = 20;
constexpr int kBatchFd = 19;

struct Run {
    int exit_code = -1;
    std::string out;      // the results, as lines "INDEX STATUS TEXT"
    std::string results;  // the result frames as they came
    std::string stdout_, err;
};

// The tests write a batch as the daemon once put it in argv: "--delivery
// FD SENDER RCPT DEST PATH MSGID", "--dsn MAIL RCPT" and "--create-mbox"
// after it. Those words become the batch on --batch-fd (agent_batch.hpp);
// the other words stay. "" when there is none.
std::string take_batch(std::vector<std::string>* args) {
    namespace first_batch = postern::delivery::first_batch;
    std::vector<first_batch::Item> items;
    std::vector<std::string> rest;
    const auto& a = *args;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] == "--delivery" && i + 6 < a.size()) {
            first_batch::Item item;
            item.fd = std::stoi(a[i + 1]);
            item.fields = {a[i + 2], a[i + 3], a[i + 4], a[i + 5], a[i + 6], "", ""};
            items.push_back(std::move(item));
            i += 6;
        } else if (a[i] == "--dsn" && !items.empty() && i + 2 < a.size()) {
            items.back().fields.mail_params = a[i + 1];
            items.back().fields.rcpt_params = a[i + 2];
            i += 2;
        } else if (a[i] == "--create-mbox" && !items.empty()) {
            items.back().create_mbox = true;
        } else {
            rest.push_back(a[i]);
        }
    }
    *args = std::move(rest);
    return items.empty() ? "" : first_batch::encode(items);
}

// posix_spawn the agent with `messages` on descriptors 3.., its results on
// kResultFd (`--result-fd` first on its command line, unless told not to),
// its batch on kBatchFd (the --delivery words, or `raw_batch`), stdout and
// stderr captured.
Run run_agent(const test::TempDir& dir, std::vector<std::string> args, const std::vector<std::string>& messages = {},
              bool result_fd = true, std::optional<std::string> raw_batch = std::nullopt) {
    std::string out = dir / "stdout", err = dir / "stderr", results = dir / "results", batch = dir / "batch";
    std::string encoded = take_batch(&args);
    if (raw_batch) encoded = *raw_batch;
    if (!encoded.empty()) {
        test::write_file(batch, encoded);
        args.insert(args.end(), {"--batch-fd", std::to_string(kBatchFd)});
    }
    if (result_fd) args.insert(args.begin(), {"--result-fd", std::to_string(kResultFd)});
    args.insert(args.begin(), kAgent);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    REQUIRE(posix_spawn_file_actions_init(&actions) == 0);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, kResultFd, results.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!encoded.empty()) posix_spawn_file_actions_addopen(&actions, kBatchFd, batch.c_str(), O_RDONLY, 0);
    for (size_t i = 0; i < messages.size(); ++i) {
        std::string in = dir / ("message" + std::to_string(i));
        test::write_file(in, messages[i]);
        posix_spawn_file_actions_addopen(&actions, static_cast<int>(3 + i), in.c_str(), O_RDONLY, 0);
    }
    pid_t pid = -1;
    int rc = posix_spawn(&pid, kAgent.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    std::string frames = test::read_file(results);
    return {WEXITSTATUS(status), test::result_lines(frames), frames, test::read_file(out), test::read_file(err)};
}

std::vector<std::string> head(const std::string& method = "status", const std::string& options = "") {
    return {"--plugin-dir", test::kTestPluginDir, "--method",  method, "--user", "bob",
            "--home",       "/home/bob",          "--options", options};
}

std::vector<std::string> delivery(int fd, const std::string& path, const std::string& msgid = "abc123") {
    return {"--delivery", std::to_string(fd), "", "Bob@Example.com", "bob@example.com", path, msgid};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

const std::string kUsage = "usage: postern-local [--plugin-dir DIR] --method NAME --user U --home H [--options O]\n"
                           "                     [--as UID:GID] --batch-fd FD [--secret-fd FD] --result-fd FD\n";

}  // namespace

TEST_CASE("postern-local: one delivery passes every field and the message to the plugin") {
    test::TempDir dir;
    std::string out = dir / "out";
    auto run = run_agent(dir, head() + delivery(3, out), {"Subject: x\n\nline\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK(run.out == "0 ok Delivered\n");
    CHECK(test::read_file(out) ==
          "\nBob@Example.com\nbob@example.com\nbob\n/home/bob\n" + out + "\n\nabc123\nSubject: x\n\nline\n");
}

TEST_CASE("postern-local: a batch delivers each message from its own descriptor, results in order") {
    test::TempDir dir;
    auto run = run_agent(dir,
                         head() + delivery(3, dir / "a", "m1") + delivery(4, dir / "tempfail", "m2") +
                             delivery(5, dir / "permfail", "m3") + delivery(6, dir / "b", "m4"),
                         {"one\n", "two\n", "three\n", "four\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.out == "0 ok Delivered\n"
                     "1 temp status: tempfail requested\n"
                     "2 perm status: permfail requested\n"
                     "3 ok Delivered\n");
    CHECK(test::read_file(dir / "a").ends_with("\nm1\none\n"));
    CHECK(test::read_file(dir / "b").ends_with("\nm4\nfour\n"));
}

TEST_CASE("postern-local: finds the build tree's plugins without --plugin-dir") {
    test::TempDir dir;
    auto run = run_agent(dir,
                         {"--method", "maildir", "--user", "b", "--home", dir.path(), "--delivery", "3",
                          "a@example.org", "b@example.com", "b@example.com", "", "m"},
                         {"Subject: auto\n\n"});
    INFO(run.err);
    CHECK(run.exit_code == 0);
    auto names = test::list_dir(dir / "Maildir/new");
    REQUIRE(names.size() == 1);
    CHECK(test::read_file(dir / "Maildir/new/" + names[0]) ==
          "Return-Path: <a@example.org>\nDelivered-To: b@example.com\nSubject: auto\n\n");
}

TEST_CASE("postern-local: a closed descriptor fails that delivery only") {
    test::TempDir dir;
    auto run = run_agent(dir, head() + delivery(3, dir / "a") + delivery(9, dir / "b"), {"one\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.out == "0 ok Delivered\n1 temp no message on descriptor 9\n");
}

TEST_CASE("postern-local: an unloadable plugin is a temporary failure of the whole run") {
    test::TempDir dir;
    auto missing = run_agent(dir, head("nothere") + delivery(3, dir / "out"), {"x\n"});
    CHECK(missing.exit_code == 75);
    CHECK(missing.out.empty());
    CHECK(missing.err == "postern-local: " + test::kTestPluginDir + "/delivery-nothere.so: no such plugin (looked in " +
                             test::kTestPluginDir + ")\n");

    auto bad_name = run_agent(dir, head("../status") + delivery(3, dir / "out"), {"x\n"});
    CHECK(bad_name.exit_code == 75);
    CHECK(bad_name.err == "postern-local: invalid delivery plugin name \"../status\" (allowed: a-z, 0-9 and -)\n");
    CHECK_FALSE(test::list_dir(dir.path()).empty());
    for (const auto& name : test::list_dir(dir.path())) CHECK(name != "out");
}

TEST_CASE("postern-local: bad arguments exit 1 with the usage") {
    test::TempDir dir;
    struct Case {
        std::vector<std::string> args;
        std::string reason;
    };
    const Case cases[] = {
        {head() + delivery(3, "/x") + std::vector<std::string>{"--frobnicate", "x"},
         "unknown argument \"--frobnicate\""},
        {head() + delivery(3, "/x") + std::vector<std::string>{"positional"}, "unknown argument \"positional\""},
        {head() + std::vector<std::string>{"--user", "eve"} + delivery(3, "/x"), "option --user given twice"},
        {head() + std::vector<std::string>{"--batch-fd", "2"}, "bad file descriptor \"2\" for --batch-fd"},
        {head() + std::vector<std::string>{"--batch-fd", "x3"}, "bad file descriptor \"x3\" for --batch-fd"},
        {head() + std::vector<std::string>{"--batch-fd", "5"} + delivery(3, "/x"), "option --batch-fd given twice"},
        {head(), "missing option --batch-fd"},
        {{"--user", "u", "--home", "/h"}, "missing option --method"},
        {{"--method", "status", "--home", "/h"}, "missing option --user"},
        {{"--method", "status", "--user", "u", "--plugin-dir"}, "option --plugin-dir needs a value"},
        {head() + std::vector<std::string>{"--secret-fd", "1"} + delivery(3, "/x"),
         "bad file descriptor \"1\" for --secret-fd"},
        {head() + std::vector<std::string>{"--as", "nobody"} + delivery(3, "/x"), "bad --as \"nobody\" (want UID:GID)"},
        {head() + std::vector<std::string>{"--as", "1:"} + delivery(3, "/x"), "bad --as \"1:\" (want UID:GID)"},
        {head() + std::vector<std::string>{"--as", "1:1", "--as", "2:2"} + delivery(3, "/x"),
         "option --as given twice"},
        {head() + delivery(3, "/x") + std::vector<std::string>{"--create-mbox"}, "a mailbox to create needs --as"},
        {head() + delivery(19, "/x"), "message descriptor 19 is also --batch-fd, --secret-fd or --result-fd"},
    };
    for (const auto& c : cases) {
        INFO(c.reason);
        auto run = run_agent(dir, c.args);
        CHECK(run.exit_code == 1);
        CHECK(run.err == "postern-local: " + c.reason + "\n" + kUsage);
    }
}

TEST_CASE("postern-local: a batch that is no batch exits 1 with the usage, delivering nothing") {
    test::TempDir dir;
    namespace first_batch = postern::delivery::first_batch;
    auto item = [](const std::string& fd, const std::string& flag) {
        return std::vector<std::string>{fd, flag, "", "b@example.com", "b@example.com", "/nowhere", "m", "", ""};
    };
    auto frame = [](std::vector<std::string> fields) { return postern::util::encode_frame(fields); };
    struct Case {
        std::string bytes, reason;
    };
    std::vector<std::string> two = {"first-batch"};
    for (auto f : {item("3", "0"), item("3", "0")}) two.insert(two.end(), f.begin(), f.end());
    const Case cases[] = {
        {"garbage", "malformed batch on descriptor 19"},
        {frame({"batch"}), "malformed batch on descriptor 19"},
        {frame({"first-batch"}), "batch of 0 deliveries (want 1 to 128) on descriptor 19"},
        {frame({"first-batch", "3", "0", "", "b", "b", "/x"}), "malformed batch on descriptor 19"},
        {frame({"first-batch", "03", "0", "", "b", "b", "/x", "m", "", ""}),
         "bad message descriptor \"03\" in delivery 0 on descriptor 19"},
        {frame({"first-batch", "3", "yes", "", "b", "b", "/x", "m", "", ""}),
         "bad mailbox flag \"yes\" in delivery 0 on descriptor 19"},
        {frame(two), "bad message descriptor \"3\" in delivery 1 on descriptor 19"},
        {frame({"first-batch", "3", "0", "", "b", "b", "/x", "m", "", ""}) + "x", "malformed batch on descriptor 19"},
        {std::string(first_batch::kMaxBytes + 1, '9'), "batch longer than 1048576 bytes on descriptor 19"},
    };
    for (const auto& c : cases) {
        INFO(c.reason);
        auto run = run_agent(dir, head(), {"one\n"}, true, c.bytes);
        CHECK(run.exit_code == 1);
        CHECK(run.err == "postern-local: " + c.reason + "\n" + kUsage);
        CHECK(run.results.empty());
    }
}

TEST_CASE("postern-local: results go to --result-fd only, a plugin printing a result on stdout forges nothing") {
    test::TempDir dir;
    auto run = run_agent(
        dir,
        head("typed", "forge") + delivery(3, dir / "a", "m1") +
            std::vector<std::string>{"--delivery", "4", "", "c@example.com", "c@example.com", dir / "a", "m1"},
        {"one\n", "one\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.out == "0 temp typed: not delivered\n1 temp typed: not delivered\n");
    CHECK(run.stdout_.empty());                      // stdout is the agent's stderr
    CHECK(run.err == "0 ok forged\n1 ok forged\n");  // where the plugin's printing went
}

TEST_CASE("postern-local: a deliver_many result the plugin leaves unset is a temporary failure, not a delivery") {
    test::TempDir dir;
    auto run = run_agent(
        dir,
        head("typed", "silent") + delivery(3, dir / "a", "m1") +
            std::vector<std::string>{"--delivery", "4", "", "c@example.com", "c@example.com", dir / "a", "m1"},
        {"one\n", "one\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.out == "0 ok typed: the first only\n1 temp " + test::kTestPluginDir +
                         "/delivery-typed.so: no result for this delivery\n");
}

TEST_CASE("postern-local: deliver_many's typed fields reach the result, for one recipient too") {
    test::TempDir dir;
    auto fields = [&](const std::string& how) {
        auto run = run_agent(dir, head("typed", how) + delivery(3, dir / "a"), {"one\n"});
        CHECK(run.exit_code == 0);
        auto frames = test::result_frames(run.results);
        REQUIRE(frames.size() == 1);
        return std::make_pair(frames[0], run.err);
    };
    using Fields = std::vector<std::string>;
    CHECK(fields("relayed").first ==
          Fields{"0", "ok", "typed: relayed", "2.0.0", "mx.test", "192.0.2.25", "250", "2.0.0 queued", "1"});
    CHECK(fields("refused").first ==
          Fields{"0", "perm", "typed: refused", "5.1.1", "mx.test", "192.0.2.25", "550", "5.1.1 no such user", "0"});
    // A plugin built before the typed fields writes status and text only:
    // it works as before, nothing is guessed from its text.
    CHECK(fields("old").first == Fields{"0", "perm", "typed: an old plugin's 5.1.1 failure", "", "", "", "0", "", "0"});
    // A field the launcher would refuse (a 4.x.x code on a permanent failure)
    // is dropped with the rest of the typed fields, and said so.
    auto bad = fields("badcode");
    CHECK(bad.first == Fields{"0", "perm", "typed: bad code", "", "", "", "0", "", "0"});
    CHECK(bad.second == "postern-local: " + test::kTestPluginDir +
                            "/delivery-typed.so: invalid enhanced status code in a result, typed fields dropped\n");
}

TEST_CASE("postern-local: --result-fd is required, and must be a descriptor of its own that is open") {
    test::TempDir dir;
    auto missing = run_agent(dir, head() + delivery(3, dir / "a"), {"one\n"}, false);
    CHECK(missing.exit_code == 1);
    CHECK(missing.err == "postern-local: missing option --result-fd\n" + kUsage);

    auto shared = run_agent(dir, head() + delivery(kResultFd, dir / "a"), {"one\n"});
    CHECK(shared.exit_code == 1);
    CHECK(shared.err ==
          "postern-local: message descriptor 20 is also --batch-fd, --secret-fd or --result-fd\n" + kUsage);

    auto closed = run_agent(dir, std::vector<std::string>{"--result-fd", "21"} + head() + delivery(3, dir / "a"),
                            {"one\n"}, false);
    CHECK(closed.exit_code == 75);
    CHECK(closed.err == "postern-local: no result descriptor 21: Bad file descriptor\n");
    CHECK_FALSE(std::filesystem::exists(dir / "a"));  // nothing delivered that could not be reported
}

TEST_CASE("postern-local --as: root makes a missing mailbox for the user and touches nothing that exists") {
    if (::geteuid() != 0) {
        WARN("not run: needs root (the agent starts as root and becomes another user)");
        return;
    }
    test::TempDir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    const std::string fresh = dir / "fresh", secret = dir / "secret", link = dir / "link", kept = dir / "kept";
    test::write_file(secret, "root's secret\n");
    REQUIRE(::chmod(secret.c_str(), 0600) == 0);
    REQUIRE(::symlink(secret.c_str(), link.c_str()) == 0);
    test::write_file(kept, "");
    REQUIRE(::chmod(kept.c_str(), 0600) == 0);

    auto run = run_agent(dir,
                         head() + delivery(3, fresh, "m1") + std::vector<std::string>{"--create-mbox"} +
                             delivery(4, link, "m2") + std::vector<std::string>{"--create-mbox"} +
                             delivery(5, kept, "m3") + std::vector<std::string>{"--create-mbox", "--as", "65534:65534"},
                         {"one\n", "two\n", "three\n"});
    CHECK(run.exit_code == 0);
    struct stat st {};
    // Made for the user: owned by it, 0600, and the plugin (as the user) could write it.
    REQUIRE(::stat(fresh.c_str(), &st) == 0);
    CHECK(st.st_uid == 65534);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(run.out.find("0 ok") == 0);
    // A planted link is not followed: root's file keeps its owner and bytes,
    // and the user's plugin cannot write through it.
    REQUIRE(::lstat(link.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    REQUIRE(::stat(secret.c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK(test::read_file(secret) == "root's secret\n");
    CHECK(run.out.find("\n1 temp ") != std::string::npos);
    // An existing file stays whose it was.
    REQUIRE(::stat(kept.c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
}

namespace {

// Result lines sorted: a plugin's threads report in any order.
std::string sorted_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l;
    return out;
}

}  // namespace

TEST_CASE("postern-local: deliver_batch gets the whole batch in one call, each result reported from its thread") {
    test::TempDir dir;
    auto run = run_agent(dir,
                         head("batch") + delivery(3, dir / "a", "m1") + delivery(4, dir / "tempfail", "m2") +
                             delivery(5, dir / "twice", "m3") + delivery(6, dir / "b", "m4"),
                         {"one\n", "two\n", "three\n", "four\n"});
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    // One call of 4 (never deliver's "batch: deliver"), the method's time
    // limit (a local action's 10 minutes), one result each: the second
    // report of "twice" and a report out of range are ignored.
    CHECK(sorted_lines(run.out) == "0 ok batch: 1 of a call of 4, limit 600000 ms\n"
                                   "1 temp batch: tempfail requested\n"
                                   "2 ok batch: 3 of a call of 4, limit 600000 ms\n"
                                   "3 ok batch: 4 of a call of 4, limit 600000 ms\n");
}

TEST_CASE(
    "postern-local: a deliver_batch result left unset fails temporarily, and a missing message is not passed on") {
    test::TempDir dir;
    auto run = run_agent(dir,
                         head("batch") + delivery(3, dir / "a", "m1") + delivery(9, dir / "b", "m2") +
                             delivery(4, dir / "silent", "m3"),
                         {"one\n", "three\n"});
    CHECK(run.exit_code == 0);
    CHECK(sorted_lines(run.out) == "0 ok batch: 1 of a call of 2, limit 600000 ms\n"
                                   "1 temp no message on descriptor 9\n"
                                   "2 temp " +
                                       test::kTestPluginDir + "/delivery-batch.so: no result for this delivery\n");
}

TEST_CASE("postern-local: what deliver_batch reported before the process died stands") {
    test::TempDir dir;
    auto run = run_agent(dir,
                         head("batch") + delivery(3, dir / "a", "m1") + delivery(4, dir / "exit", "m2") +
                             delivery(5, dir / "b", "m3"),
                         {"one\n", "two\n", "three\n"});
    CHECK(run.exit_code == 70);
    // Sent as reported, before the call returned: the daemon keeps them and
    // retries only the delivery without a result.
    CHECK(sorted_lines(run.out) == "0 ok batch: 1 of a call of 3, limit 600000 ms\n"
                                   "2 ok batch: 3 of a call of 3, limit 600000 ms\n");
}
