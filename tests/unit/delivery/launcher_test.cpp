// The frames the privileged channel and the agents speak, and the launcher
// reading the agent's results (path expansion: format_test.cpp).
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "delivery/launcher.hpp"
#include "delivery/result.hpp"
#include "util/frame.hpp"

using namespace postern::delivery;
using postern::util::decode_frame;
using postern::util::encode_frame;

TEST_CASE("frames: round trip, partial input, garbage") {
    std::vector<std::string> in = {"1", "maildir", "", std::string("a\0b,:", 5), "\n"};
    std::string wire = encode_frame(in) + encode_frame({"2"});
    std::vector<std::string> out;
    bool bad = false;

    std::string partial = wire.substr(0, 7);
    CHECK_FALSE(decode_frame(partial, &out, &bad));
    CHECK_FALSE(bad);

    REQUIRE(decode_frame(wire, &out, &bad));
    CHECK(out == in);
    REQUIRE(decode_frame(wire, &out, &bad));
    CHECK(out == std::vector<std::string>{"2"});
    CHECK(wire.empty());

    for (std::string garbage : {"x:abc,", "3:abcd", "99999999999:", "5:1:a,x,", ":,"}) {
        INFO(garbage);
        std::string g = garbage;
        CHECK_FALSE(decode_frame(g, &out, &bad));
        CHECK(bad);
    }
}

TEST_CASE("results: the wire form round-trips and refuses what an agent may not send") {
    Result r{Result::Status::PermFail, "relay: mx.example.org [192.0.2.1]: 550 5.1.1 unknown"};
    r.enhanced = "5.1.1";
    r.remote = {"mx.example.org", "192.0.2.1", 550, "5.1.1 unknown"};
    std::vector<std::string> f;
    append_result_fields(r, &f);
    REQUIRE(f.size() == kResultFields);
    CHECK(f == std::vector<std::string>{"perm", r.text, "5.1.1", "mx.example.org", "192.0.2.1", "550", "5.1.1 unknown",
                                        "0"});
    Result back;
    std::string why;
    REQUIRE(parse_result(f.data(), &back, &why));
    CHECK(back.status == r.status);
    CHECK(back.text == r.text);
    CHECK(back.enhanced == "5.1.1");
    CHECK(back.remote.host == "mx.example.org");
    CHECK(back.remote.addr == "192.0.2.1");
    CHECK(back.remote.code == 550);
    CHECK(back.remote.reply == "5.1.1 unknown");
    CHECK_FALSE(back.dsn_handed_on);

    struct Bad {
        size_t field;
        std::string value, why;
    };
    const Bad bad[] = {
        {0, "OK", "status"},
        {1, "two\nlines", "text"},
        {1, std::string(kMaxResultText + 1, 'x'), "text"},
        {2, "4.1.1", "enhanced status code"},  // not of a permanent failure's class
        {2, "5.1", "enhanced status code"},
        {2, "5.1.1000", "enhanced status code"},
        {3, "mx example", "remote host"},
        {3, std::string(256, 'a'), "remote host"},
        {4, "192.0.2.256", "remote address"},
        {5, "1000", "remote reply code"},
        {5, "-1", "remote reply code"},
        {5, "199", "remote reply code"},
        {6, "a\rb", "remote reply"},
        {7, "2", "flags"},  // unreadable, for a permanent failure
        {7, "1", "flags"},  // the DSN handed on, for a failure
        {7, "4", "flags"},
    };
    for (const auto& b : bad) {
        INFO(b.field << " " << b.value);
        auto g = f;
        g[b.field] = b.value;
        CHECK_FALSE(parse_result(g.data(), &back, &why));
        CHECK(why == b.why);
    }
    // A message the launcher could not decode: a temporary failure, flagged.
    Result unreadable{Result::Status::TempFail, "spool/messages/0000abcd: does not decrypt with this key"};
    unreadable.unreadable = true;
    std::vector<std::string> uf;
    append_result_fields(unreadable, &uf);
    CHECK(uf[7] == "2");
    REQUIRE(parse_result(uf.data(), &back, &why));
    CHECK(back.unreadable);
    CHECK_FALSE(back.dsn_handed_on);
    auto no_code = f;
    no_code[5] = "0";  // a reply without its code
    CHECK_FALSE(parse_result(no_code.data(), &back, &why));
    CHECK(why == "remote reply");
}

namespace {

class TempDir {
public:
    TempDir() {
        std::string tmpl = "/tmp/postern-launcher-XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

void write_file(const std::string& path, const std::string& content, mode_t mode = 0600) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// Runs one job through a SpawnLauncher to its end.
std::vector<Result> launch(const SpawnOptions& options, const Job& job) {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    std::vector<Result> got;
    bool done = false;
    {
        SpawnLauncher launcher(&loop, options);
        launcher.launch(job, [&](std::vector<Result> r) {
            got = std::move(r);
            done = true;
        });
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    CHECK(uv_loop_close(&loop) == 0);
    REQUIRE(done);
    return got;
}

// `n` deliveries of one message with the typed test plugin, as this user.
Job typed_job(const TempDir& dir, const std::string& options, size_t n) {
    write_file(dir / "message", "Subject: x\n\nbody\n");
    Job job;
    job.method = "typed";
    const passwd* pw = ::getpwuid(::geteuid());
    REQUIRE(pw);
    job.user = pw->pw_name;
    job.options = options;
    for (size_t i = 0; i < n; ++i)
        job.items.push_back(
            {"a@example.org", "b@example.com", "b@example.com", "", "0123abcd", dir / "message", "", ""});
    return job;
}

// A fake agent's first lines: $fd is its result descriptor, $file what
// --options named (the test's script of what to send).
const std::string kFakeAgentArgs = "#!/bin/sh\n"
                                   "while [ $# -gt 0 ]; do\n"
                                   "  case \"$1\" in --result-fd) fd=$2;; --options) file=$2;; esac\n"
                                   "  shift\n"
                                   "done\n";

SpawnOptions agent_options() {
    SpawnOptions o;
    o.agent = POSTERN_BUILD_DIR "/postern-local";
    o.plugin_dir = POSTERN_TEST_PLUGIN_DIR;
    return o;
}

}  // namespace

TEST_CASE("launcher: the agent's typed results arrive as they were given") {
    TempDir dir;
    auto got = launch(agent_options(), typed_job(dir, "relayed", 1));
    REQUIRE(got.size() == 1);
    CHECK(got[0].status == Result::Status::Ok);
    CHECK(got[0].text == "typed: relayed");
    CHECK(got[0].enhanced == "2.0.0");
    CHECK(got[0].remote.host == "mx.test");
    CHECK(got[0].remote.addr == "192.0.2.25");
    CHECK(got[0].remote.code == 250);
    CHECK(got[0].remote.reply == "2.0.0 queued");
    CHECK(got[0].dsn_handed_on);
}

TEST_CASE("launcher: a plugin printing \"0 ok\" on the agent's stdout does not make a success") {
    TempDir dir;
    auto got = launch(agent_options(), typed_job(dir, "forge", 2));
    REQUIRE(got.size() == 2);
    for (const auto& r : got) {
        CHECK(r.status == Result::Status::TempFail);
        CHECK(r.text == "typed: not delivered");
    }
}

TEST_CASE("launcher: an agent's results are checked, field by field, frame by frame") {
    TempDir dir;
    // An agent as hostile as the recipient it runs as can make it: it sends
    // the bytes of the file named by --options on its result descriptor,
    // and a forged line on stdout.
    write_file(dir / "agent",
               kFakeAgentArgs + "echo '0 ok forged'; echo '1 ok forged'\n"
                                "eval \"cat \\\"\\$file\\\" >&$fd\"\n",
               0700);
    SpawnOptions options = agent_options();
    options.agent = dir / "agent";
    auto run = [&](const std::string& frames) {
        write_file(dir / "frames", frames);
        return launch(options, typed_job(dir, dir / "frames", 2));
    };

    // A code of the wrong class fails that delivery; a delivery without a result is a temporary failure.
    auto got = run(encode_frame({"0", "perm", "x", "4.1.1", "", "", "0", "", "0"}));
    REQUIRE(got.size() == 2);
    CHECK(got[0].status == Result::Status::TempFail);
    CHECK(got[0].text == "delivery agent sent an invalid result (enhanced status code)");
    CHECK(got[1].status == Result::Status::TempFail);
    CHECK(got[1].text == "delivery agent exited 0 without a result");

    // A valid result counts; a second one for the same delivery ends the reading.
    got = run(encode_frame({"1", "ok", "fine", "", "", "", "0", "", "0"}) +
              encode_frame({"1", "perm", "again", "", "", "", "0", "", "0"}) +
              encode_frame({"0", "ok", "late", "", "", "", "0", "", "0"}));
    CHECK(got[1].status == Result::Status::Ok);
    CHECK(got[1].text == "fine");
    CHECK(got[0].status == Result::Status::TempFail);
    CHECK(got[0].text == "delivery agent sent garbled results");

    for (std::string garbage : {std::string("0 ok forged\n"), encode_frame({"2", "ok", "x", "", "", "", "0", "", "0"}),
                                encode_frame({"0", "ok", "too few fields"})}) {
        INFO(garbage);
        got = run(garbage);
        for (const auto& r : got) {
            CHECK(r.status == Result::Status::TempFail);
            CHECK(r.text == "delivery agent sent garbled results");
        }
    }
}

TEST_CASE("launcher: a process the agent leaves holding its pipes does not keep the batch open") {
    TempDir dir;
    // The agent reports, leaves a child holding stdout and stderr for 30 s,
    // and exits: the batch ends after the grace period, with its result.
    write_file(dir / "agent",
               kFakeAgentArgs + "eval \"cat \\\"\\$file\\\" >&$fd\"\n"
                                "eval \"exec $fd>&-\"\n"
                                "sleep 30 &\n"
                                "echo $! > \"$file.pid\"\n",
               0700);
    SpawnOptions options = agent_options();
    options.agent = dir / "agent";
    write_file(dir / "frames", encode_frame({"0", "ok", "fine", "", "", "", "0", "", "0"}));
    auto start = std::chrono::steady_clock::now();
    auto got = launch(options, typed_job(dir, dir / "frames", 1));
    auto took = std::chrono::steady_clock::now() - start;
    std::ifstream pid_file(dir / "frames.pid");
    pid_t left = 0;
    if (pid_file >> left && left > 0) ::kill(left, SIGKILL);  // ours: the agent script started it
    REQUIRE(got.size() == 1);
    CHECK(got[0].status == Result::Status::Ok);
    CHECK(got[0].text == "fine");
    CHECK(took < std::chrono::seconds(20));
}
