// Delivery agents that live on (delivery/agent_pool.hpp), through the
// SpawnLauncher that keeps them: the real postern-local with the whoami test
// plugin, which says which process delivered ("pid P uid U call C"), and a
// fake agent for what postern-local never does (garbling its channel).
// Also the channel's batch codec (delivery/agent_channel.hpp).
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "../common/files.hpp"
#include "delivery/agent_channel.hpp"
#include "delivery/agent_pool.hpp"
#include "delivery/launcher.hpp"
#include "delivery/living_agent.hpp"

using namespace postern::delivery;
using namespace std::chrono_literals;
using postern_test::read_file;
using postern_test::write_file;

namespace {

using Clock = std::chrono::steady_clock;

// A launcher on a loop of its own, driven by the test. At the end it
// retires its agents and waits (bounded) until every one has ended, so
// that no process or handle is left.
class Pool {
public:
    explicit Pool(SpawnOptions options) {
        REQUIRE(uv_loop_init(&loop_) == 0);
        launcher_ = std::make_unique<SpawnLauncher>(&loop_, std::move(options));
    }
    ~Pool() {
        launcher_->retire();
        CHECK(run_until([&] { return launcher_->living_agents() == 0; }, 15s));
        launcher_.reset();
        run_until([&] { return !uv_loop_alive(&loop_); }, 5s);
        CHECK(uv_loop_close(&loop_) == 0);
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    SpawnLauncher& launcher() { return *launcher_; }
    uv_loop_t* loop() { return &loop_; }

    // Runs the loop until `done()` or `limit`; whether done() came true.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
        auto end = Clock::now() + limit;
        while (!done()) {
            if (Clock::now() > end) return false;
            uv_run(&loop_, UV_RUN_NOWAIT);
            std::this_thread::sleep_for(2ms);
        }
        return true;
    }

    // Launches `job` and runs the loop until its results are in.
    std::vector<Result> deliver(const Job& job) {
        std::optional<std::vector<Result>> got;
        launcher_->launch(job, [&](std::vector<Result> r) { got = std::move(r); });
        REQUIRE(run_until([&] { return got.has_value(); }, 30s));
        return *got;
    }

private:
    uv_loop_t loop_{};
    std::unique_ptr<SpawnLauncher> launcher_;
};

SpawnOptions whoami_options() {
    SpawnOptions o;
    o.agent = POSTERN_BUILD_DIR "/postern-local";
    o.plugin_dir = POSTERN_TEST_PLUGIN_DIR;
    return o;
}

// `n` deliveries for this process's own user, through `method`; `options`
// makes the identity.
Job job_of(const postern_test::TempDir& dir, size_t n, const std::string& options = "",
           const std::string& method = "whoami", const std::string& path = "") {
    write_file(dir / "message", "Subject: x\n\nbody\n");
    Job job;
    job.method = method;
    const passwd* pw = ::getpwuid(::geteuid());
    REQUIRE(pw);
    job.user = pw->pw_name;
    job.options = options;
    for (size_t i = 0; i < n; ++i)
        job.items.push_back(
            {"a@example.org", "b@example.com", "b@example.com", path, "0123abcd", dir / "message", "", ""});
    return job;
}

// The pid and call count in a whoami result.
struct Who {
    long pid = 0;
    unsigned call = 0;
};
Who who(const Result& r) {
    INFO(r.text);
    REQUIRE(r.status == Result::Status::Ok);
    std::smatch m;
    REQUIRE(std::regex_match(r.text, m, std::regex(R"(pid (\d+) uid \d+ call (\d+))")));
    return {std::stol(m[1]), static_cast<unsigned>(std::stoul(m[2]))};
}

// Running and not a zombie.
bool alive(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return false;
    auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

}  // namespace

TEST_CASE("agents: one agent serves batch after batch and its plugin's state carries over") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    std::set<long> pids;
    unsigned calls = 0;
    for (int batch = 0; batch < 3; ++batch) {
        auto got = pool.deliver(job_of(dir, 2));
        REQUIRE(got.size() == 2);
        for (const auto& r : got) {
            Who w = who(r);
            pids.insert(w.pid);
            CHECK(w.call == ++calls);  // the same process, counting on
        }
        CHECK(pool.launcher().living_agents() == 1);
    }
    REQUIRE(pids.size() == 1);
    CHECK(alive(*pids.begin()));  // idle, waiting for the next batch
}

TEST_CASE("agents: a batch goes only to an agent of its own identity and one busy means another") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    long a = who(pool.deliver(job_of(dir, 1, "a"))[0]).pid;
    long b = who(pool.deliver(job_of(dir, 1, "b"))[0]).pid;
    CHECK(a != b);
    CHECK(who(pool.deliver(job_of(dir, 1, "a"))[0]).pid == a);
    CHECK(who(pool.deliver(job_of(dir, 1, "b"))[0]).pid == b);

    // Two batches of "a" at once: the idle agent takes one, a new one the other.
    std::vector<std::vector<Result>> got;
    for (int k = 0; k < 2; ++k)
        pool.launcher().launch(job_of(dir, 1, "a"), [&](std::vector<Result> r) { got.push_back(std::move(r)); });
    REQUIRE(pool.run_until([&] { return got.size() == 2; }, 30s));
    std::set<long> both = {who(got[0][0]).pid, who(got[1][0]).pid};
    CHECK(both.size() == 2);
    CHECK(both.count(a) == 1);
    CHECK(pool.launcher().living_agents() == 3);
}

TEST_CASE("agents: an agent killed in the middle of a batch fails it temporarily and the next gets a new agent") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    long first = who(pool.deliver(job_of(dir, 1))[0]).pid;

    // The next batch waits in the plugin (writing the pid first): kill it.
    Job slow = job_of(dir, 2);
    slow.items[0].path = "wait:" + dir / "pid";
    std::optional<std::vector<Result>> got;
    pool.launcher().launch(slow, [&](std::vector<Result> r) { got = std::move(r); });
    REQUIRE(pool.run_until(
        [&] { return ::access((dir / "pid").c_str(), R_OK) == 0 && !read_file(dir / "pid").empty(); }, 20s));
    long waiting = std::stol(read_file(dir / "pid"));
    CHECK(waiting == first);  // the agent that lived on took it
    REQUIRE(::kill(static_cast<pid_t>(waiting), SIGKILL) == 0);
    REQUIRE(pool.run_until([&] { return got.has_value(); }, 20s));
    REQUIRE(got->size() == 2);
    for (const auto& r : *got) {
        CHECK(r.status == Result::Status::TempFail);
        CHECK(r.text == "delivery agent killed by signal 9");
    }
    CHECK(pool.launcher().living_agents() == 0);

    Who next = who(pool.deliver(job_of(dir, 1))[0]);
    CHECK(next.pid != waiting);
    CHECK(next.call == 1);
}

TEST_CASE("agents: an idle agent ends after the idle time") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    long pid = who(pool.deliver(job_of(dir, 1))[0]).pid;
    auto idle_from = Clock::now();
    // Still there a little before its time, gone (and reaped) a little after.
    pool.run_until([] { return false; }, kAgentIdleTime - 1500ms);
    CHECK(pool.launcher().living_agents() == 1);
    CHECK(alive(pid));
    CHECK(pool.run_until([&] { return pool.launcher().living_agents() == 0; }, 5s));
    CHECK(Clock::now() - idle_from >= kAgentIdleTime);
    CHECK(Clock::now() - idle_from < kAgentIdleTime + 4s);
    CHECK_FALSE(alive(pid));
    CHECK(::kill(static_cast<pid_t>(pid), 0) == -1);  // reaped: no zombie left
}

TEST_CASE("agents: retiring ends idle agents at once and a busy one after its batch") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    long idle = who(pool.deliver(job_of(dir, 1, "idle"))[0]).pid;
    Job slow = job_of(dir, 1, "busy");
    slow.items[0].path = "wait:" + dir / "pid";
    std::optional<std::vector<Result>> got;
    pool.launcher().launch(slow, [&](std::vector<Result> r) { got = std::move(r); });
    REQUIRE(pool.run_until(
        [&] { return ::access((dir / "pid").c_str(), R_OK) == 0 && !read_file(dir / "pid").empty(); }, 20s));
    long busy = std::stol(read_file(dir / "pid"));
    pool.launcher().retire();
    CHECK(pool.run_until([&] { return pool.launcher().living_agents() == 1; }, 3s));
    CHECK_FALSE(alive(idle));
    CHECK(alive(busy));                         // its delivery is not cut short
    ::kill(static_cast<pid_t>(busy), SIGKILL);  // rather than wait the plugin's minute
    CHECK(pool.run_until([&] { return got.has_value(); }, 20s));
}

TEST_CASE("agents: a launcher that goes away takes its idle agents with it") {
    postern_test::TempDir dir("agents");
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    long pid = 0;
    {
        SpawnLauncher launcher(&loop, whoami_options());
        std::optional<std::vector<Result>> got;
        launcher.launch(job_of(dir, 1), [&](std::vector<Result> r) { got = std::move(r); });
        auto end = Clock::now() + 30s;
        while (!got && Clock::now() < end) uv_run(&loop, UV_RUN_ONCE);
        REQUIRE(got);
        pid = who((*got)[0]).pid;
    }
    // Its channel closed with the launcher: the agent exits of itself (0).
    // libuv no longer watches it, so this test reaps it.
    int status = -1;
    auto end = Clock::now() + 5s;
    pid_t reaped = 0;
    while ((reaped = ::waitpid(static_cast<pid_t>(pid), &status, WNOHANG)) == 0 && Clock::now() < end)
        std::this_thread::sleep_for(10ms);
    CHECK(reaped == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    while (uv_loop_alive(&loop)) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("agents: relay agents live on too, and a launcher that keeps none starts one per batch") {
    postern_test::TempDir dir("agents");
    SpawnOptions relay = whoami_options();
    relay.plugin_dir = POSTERN_BUILD_DIR "/plugins";
    Pool relays(relay);
    // Nothing listens on port 1: a quick temporary failure each time, from
    // one agent that lives on (its deliver_batch forgets the failure with
    // the batch: the second batch tries again and fails the same way).
    for (int i = 0; i < 2; ++i) {
        auto got = relays.deliver(job_of(dir, 1, "timeout=5", "relay", "smtp://127.0.0.1:1"));
        CHECK(got[0].status == Result::Status::TempFail);
        CHECK(got[0].text == "relay: 127.0.0.1 [127.0.0.1]: connect to port 1: Connection refused");
        CHECK(relays.launcher().living_agents() == 1);
    }

    SpawnOptions once = whoami_options();
    once.keep_agents = false;
    Pool pool(once);
    long a = who(pool.deliver(job_of(dir, 1))[0]).pid;
    long b = who(pool.deliver(job_of(dir, 1))[0]).pid;
    CHECK(a != b);
    CHECK(pool.launcher().living_agents() == 0);
}

TEST_CASE("agents: a batch goes to the idle agent whose last batch went the same way") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    // Two batches at once: two agents, one per route.
    std::optional<std::vector<Result>> one, two;
    pool.launcher().launch(job_of(dir, 1, "", "whoami", dir / "route-1"), [&](std::vector<Result> r) { one = r; });
    pool.launcher().launch(job_of(dir, 1, "", "whoami", dir / "route-2"), [&](std::vector<Result> r) { two = r; });
    REQUIRE(pool.run_until([&] { return one && two; }, 30s));
    long agent1 = who((*one)[0]).pid, agent2 = who((*two)[0]).pid;
    REQUIRE(agent1 != agent2);
    REQUIRE(pool.launcher().living_agents() == 2);
    // Whichever is first among the idle ones, each route finds its own agent.
    for (int i = 0; i < 2; ++i) {
        CHECK(who(pool.deliver(job_of(dir, 1, "", "whoami", dir / "route-2"))[0]).pid == agent2);
        CHECK(who(pool.deliver(job_of(dir, 1, "", "whoami", dir / "route-1"))[0]).pid == agent1);
    }
    // A route no agent has served takes any idle one.
    long other = who(pool.deliver(job_of(dir, 1, "", "whoami", dir / "route-3"))[0]).pid;
    CHECK((other == agent1 || other == agent2));
}

TEST_CASE("agents: an agent that garbles its channel in a later batch is killed and the next gets a new agent") {
    postern_test::TempDir dir("agents");
    // A fake agent: a good result for its first batch, then for the next
    // one bytes that are no frame, then it waits (to be killed for it).
    write_file(dir / "agent",
               "#!/usr/bin/python3\n"
               "import socket, sys, time\n"
               "def ns(b): return str(len(b)).encode() + b':' + b + b','\n"
               "fd = int(sys.argv[sys.argv.index('--result-fd') + 1])\n"
               "s = socket.socket(fileno=fd)\n"
               "s.send(ns(b''.join(ns(f) for f in [b'0', b'ok', b'fine', b'', b'', b'', b'0', b'', b'0'])))\n"
               "s.recvmsg(1 << 17, 4096)\n"
               "s.send(b'not a frame')\n"
               "time.sleep(30)\n");
    REQUIRE(::chmod((dir / "agent").c_str(), 0700) == 0);
    SpawnOptions options = whoami_options();
    options.agent = dir / "agent";
    Pool pool(options);
    auto first = pool.deliver(job_of(dir, 1));
    REQUIRE(first[0].status == Result::Status::Ok);
    CHECK(first[0].text == "fine");
    CHECK(pool.launcher().living_agents() == 1);
    auto start = Clock::now();
    auto second = pool.deliver(job_of(dir, 2));
    CHECK(Clock::now() - start < 10s);  // killed, not waited for
    for (const auto& r : second) {
        CHECK(r.status == Result::Status::TempFail);
        CHECK(r.text == "delivery agent sent garbled results");
    }
    CHECK(pool.launcher().living_agents() == 0);
    auto third = pool.deliver(job_of(dir, 1));
    CHECK(third[0].text == "fine");  // from a new agent's first batch
}

TEST_CASE("agents: an agent ends after kMaxAgentBatches batches and the next batch gets a new one") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    Job job = job_of(dir, 1);
    long pid = who(pool.deliver(job)[0]).pid;
    for (unsigned long k = 2; k <= kMaxAgentBatches; ++k) {
        Who w = who(pool.deliver(job)[0]);
        REQUIRE(w.pid == pid);
        REQUIRE(w.call == k);
    }
    // Ended at once, not after its idle time.
    CHECK(pool.run_until([&] { return pool.launcher().living_agents() == 0; }, kAgentIdleTime / 2));
    Who next = who(pool.deliver(job)[0]);
    CHECK(next.pid != pid);
    CHECK(next.call == 1);
}

TEST_CASE("agents: a living agent's command line shows no envelope of its first batch") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    Job job = job_of(dir, 1);
    job.items[0].sender = "hidden-sender@example.org";
    job.items[0].rcpt = job.items[0].dest = "hidden-rcpt@example.com";
    job.items[0].mail_params = "ENVID=hidden-envid";
    job.items[0].path = dir / "hidden-path";
    long pid = who(pool.deliver(job)[0]).pid;
    std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    CHECK(cmdline.find("--method") != std::string::npos);
    CHECK(cmdline.find("whoami") != std::string::npos);
    CHECK(cmdline.find("--batch-fd") != std::string::npos);  // where the envelopes are (agent_batch.hpp)
    for (const char* hidden : {"hidden-sender", "hidden-rcpt", "hidden-envid", "hidden-path", "0123abcd"})
        CHECK(cmdline.find(hidden) == std::string::npos);
}

namespace {

// A batch made by hand for an AgentPool, with its own time limit.
Batch whoami_batch(const postern_test::TempDir& dir, std::chrono::milliseconds limit, const std::string& path = "") {
    write_file(dir / "message", "Subject: x\n\nbody\n");
    const passwd* pw = ::getpwuid(::geteuid());
    REQUIRE(pw);
    Batch b;
    b.method = "whoami";
    b.user = pw->pw_name;
    b.home = pw->pw_dir;
    b.time_limit = limit;
    postern::util::Fd fd(::open((dir / "message").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    b.items.push_back({std::move(fd), {"a@example.org", "b@example.com", "b@example.com", path, "0123abcd", "", ""}});
    return b;
}

}  // namespace

TEST_CASE("agents: the time limit is per batch and an agent that overruns it is killed") {
    postern_test::TempDir dir("agents");
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    SpawnOptions options = whoami_options();
    {
        AgentPool pool(&loop, options);
        auto run = [&](Batch b) {
            std::optional<std::vector<Result>> got;
            pool.run(std::move(b), [&](std::vector<Result> r) { got = std::move(r); });
            auto end = Clock::now() + 30s;
            while (!got && Clock::now() < end) uv_run(&loop, UV_RUN_ONCE);
            REQUIRE(got);
            return *got;
        };
        // Two fast batches 1.5 s apart, each well within its 1 s: the agent
        // has lived longer than the limit, no batch has taken it.
        long pid = who(run(whoami_batch(dir, 1s))[0]).pid;
        uv_timer_t pause;
        uv_timer_init(&loop, &pause);
        uv_timer_start(
            &pause, [](uv_timer_t*) {}, 1500, 0);
        uv_run(&loop, UV_RUN_ONCE);
        uv_close(reinterpret_cast<uv_handle_t*>(&pause), nullptr);
        CHECK(who(run(whoami_batch(dir, 1s))[0]).pid == pid);

        // A batch that takes longer than its limit: killed, failed temporarily.
        auto start = Clock::now();
        auto got = run(whoami_batch(dir, 1s, "wait:" + dir / "pid"));
        CHECK(Clock::now() - start < 10s);
        CHECK(got[0].status == Result::Status::TempFail);
        CHECK(got[0].text == "delivery agent timed out");
        CHECK(pool.agents() == 0);
        CHECK_FALSE(alive(pid));
    }
    while (uv_loop_alive(&loop)) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("agent channel: a batch round-trips and a packet that is no batch of its descriptors is refused") {
    std::vector<channel::Item> items = {
        {"", "B@x", "b@x", "/m/b", "0123abcd", "", ""},
        {"a@y", "c@x", "c@x", std::string("p\0q", 3), "0123abcd", "RET=HDRS", "NOTIFY=NEVER"}};
    std::string packet = channel::encode_batch(items);
    std::vector<channel::Item> back;
    std::string why;
    REQUIRE(channel::decode_batch(packet, 2, &back, &why));
    REQUIRE(back.size() == 2);
    CHECK(back[1].path == std::string("p\0q", 3));
    CHECK(back[1].rcpt_params == "NOTIFY=NEVER");
    CHECK(back[0].sender.empty());

    CHECK_FALSE(channel::decode_batch(packet, 1, &back, &why));
    CHECK(why == "batch of 2 deliveries came with 1 message descriptors");
    CHECK_FALSE(channel::decode_batch(packet + "x", 2, &back, &why));
    CHECK(why == "malformed batch from the daemon");
    CHECK_FALSE(channel::decode_batch(postern::util::encode_frame({"batch", "a", "b"}), 1, &back, &why));
    CHECK(why == "malformed batch from the daemon");
    CHECK_FALSE(channel::decode_batch(postern::util::encode_frame({"batch"}), 0, &back, &why));
    CHECK(why == "batch of 0 deliveries came with 0 message descriptors");
}

// Each result is handed on as the agent reports it (Job::progress), with the
// job's index (an item whose message cannot be opened has its result
// without an agent, and no progress), before the batch's Done, which still
// carries them all.
TEST_CASE("agents: each result goes to the job's progress as it comes, before the batch's end") {
    postern_test::TempDir dir("agents");
    Pool pool(whoami_options());
    Job job = job_of(dir, 3);
    job.items[1].message_path = dir / "no-such-message";
    std::vector<std::pair<std::size_t, Result>> progressed;
    bool done_seen = false;
    job.progress = [&](std::size_t i, const Result& r) {
        CHECK_FALSE(done_seen);
        progressed.emplace_back(i, r);
    };
    std::optional<std::vector<Result>> got;
    pool.launcher().launch(job, [&](std::vector<Result> r) {
        done_seen = true;
        got = std::move(r);
    });
    REQUIRE(pool.run_until([&] { return got.has_value(); }, 30s));
    REQUIRE(got->size() == 3);
    CHECK((*got)[1].status == Result::Status::TempFail);
    REQUIRE(progressed.size() == 2);
    CHECK(progressed[0].first == 0);
    CHECK(progressed[1].first == 2);
    for (const auto& [i, r] : progressed) {
        CHECK(r.status == Result::Status::Ok);
        CHECK(r.text == (*got)[i].text);
    }
}
