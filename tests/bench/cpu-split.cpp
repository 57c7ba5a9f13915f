// cpu-split.cpp — the three small measurements behind "what limits it now"
// in cpu-split.sh's reading (issue 15): CPU a file creation costs in a
// folder, CPU a round trip to libuv's worker pool costs, CPU the name
// service costs for the lookups a session makes. cpu-split.sh MICRO=1
// compiles it with c++ into a temporary folder (no CMake target: it is a
// probe of the machine, not of postern) and runs each mode.
//
//   cpu-split-micro files DIR [N=3000] [ROUNDS=4]
//       N files of 1 KiB created (O_CREAT|O_EXCL, write, close) in a fresh
//       DIR/cpu-split-files.XXXXXX, then deleted, ROUNDS times: user+sys
//       CPU per creation and per deletion, each round. A file system that
//       passes over recently freed inodes (ext4 without a journal) shows
//       the later rounds dearer than the first.
//   cpu-split-micro handoff [N=20000]
//       uv_queue_work of an empty job, its completion back on the loop, N
//       times, one at a time and 20 in flight: CPU of the whole process
//       per round trip (the futex wake-ups and switches between threads).
//   cpu-split-micro nss [USER=benchuser] [ABSENT=rcpt]
//       getpwnam_r of a user that exists and of one that does not,
//       getnameinfo of 127.0.0.1 with and without a service name, and
//       getaddrinfo of localhost: user and sys CPU per call.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Cpu {
    double user_us = 0, sys_us = 0;
};

Cpu cpu_now() {
    rusage r{};
    getrusage(RUSAGE_SELF, &r);
    return {r.ru_utime.tv_sec * 1e6 + static_cast<double>(r.ru_utime.tv_usec),
            r.ru_stime.tv_sec * 1e6 + static_cast<double>(r.ru_stime.tv_usec)};
}

Cpu since(const Cpu& before, long n) {
    Cpu now = cpu_now();
    return {(now.user_us - before.user_us) / static_cast<double>(n),
            (now.sys_us - before.sys_us) / static_cast<double>(n)};
}

int files(const char* parent, long n, int rounds) {
    std::string dir = std::string(parent) + "/cpu-split-files.XXXXXX";
    if (!mkdtemp(dir.data())) {
        std::perror("mkdtemp");
        return 1;
    }
    char block[1024] = {};
    for (int r = 0; r < rounds; ++r) {
        auto name = [&](long i) { return dir + "/f" + std::to_string(r) + "_" + std::to_string(i); };
        Cpu c0 = cpu_now();
        for (long i = 0; i < n; ++i) {
            int fd = open(name(i).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0 || write(fd, block, sizeof block) != static_cast<ssize_t>(sizeof block)) {
                std::perror("create");
                return 1;
            }
            close(fd);
        }
        Cpu create = since(c0, n);
        Cpu c1 = cpu_now();
        for (long i = 0; i < n; ++i) unlink(name(i).c_str());
        Cpu del = since(c1, n);
        std::printf("files %s round %d: create+write %.1f us CPU a file (user %.1f, sys %.1f), unlink %.1f us\n",
                    parent, r + 1, create.user_us + create.sys_us, create.user_us, create.sys_us,
                    del.user_us + del.sys_us);
    }
    rmdir(dir.c_str());
    return 0;
}

struct Handoff {
    uv_loop_t* loop = nullptr;
    long left = 0;
};

void empty_job(uv_work_t*) {}

void job_done(uv_work_t* req, int) {
    auto* h = static_cast<Handoff*>(req->loop->data);
    if (--h->left > 0) uv_queue_work(h->loop, req, empty_job, job_done);
}

int handoff(long n) {
    uv_loop_t* loop = uv_default_loop();
    Handoff h{loop, 0};
    loop->data = &h;
    std::vector<uv_work_t> reqs(20);
    for (int in_flight : {1, 20}) {
        h.left = n;
        Cpu c0 = cpu_now();
        uint64_t t0 = uv_hrtime();
        for (int i = 0; i < in_flight; ++i) uv_queue_work(loop, &reqs[static_cast<size_t>(i)], empty_job, job_done);
        uv_run(loop, UV_RUN_DEFAULT);
        Cpu per = since(c0, n);
        std::printf("handoff: %d in flight: %.1f us CPU a round trip (user %.1f, sys %.1f), %.1f us wall\n", in_flight,
                    per.user_us + per.sys_us, per.user_us, per.sys_us,
                    static_cast<double>(uv_hrtime() - t0) / 1e3 / static_cast<double>(n));
    }
    return 0;
}

template <typename F>
void per_call(const char* what, F call) {
    constexpr long kCalls = 5000;
    Cpu c0 = cpu_now();
    for (long i = 0; i < kCalls; ++i) call();
    Cpu per = since(c0, kCalls);
    std::printf("nss: %-44s %.1f us CPU a call (user %.1f, sys %.1f)\n", what, per.user_us + per.sys_us, per.user_us,
                per.sys_us);
}

int nss(const std::string& user, const std::string& absent) {
    std::vector<char> buf(16384);
    passwd pw{}, *res = nullptr;
    per_call(("getpwnam_r(" + user + "), exists").c_str(),
             [&] { getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res); });
    per_call(("getpwnam_r(" + absent + "), absent").c_str(),
             [&] { getpwnam_r(absent.c_str(), &pw, buf.data(), buf.size(), &res); });
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(35000);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    auto* addr = reinterpret_cast<const sockaddr*>(&sa);
    per_call("getnameinfo(127.0.0.1), with the service",
             [&] { getnameinfo(addr, sizeof sa, host, sizeof host, serv, sizeof serv, NI_NAMEREQD); });
    per_call("getnameinfo(127.0.0.1), host only",
             [&] { getnameinfo(addr, sizeof sa, host, sizeof host, nullptr, 0, NI_NAMEREQD); });
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    per_call("getaddrinfo(localhost)", [&] {
        addrinfo* out = nullptr;
        if (getaddrinfo("localhost", nullptr, &hints, &out) == 0) freeaddrinfo(out);
    });
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "files" && argc > 2)
        return files(argv[2], argc > 3 ? std::atol(argv[3]) : 3000, argc > 4 ? std::atoi(argv[4]) : 4);
    if (mode == "handoff") return handoff(argc > 2 ? std::atol(argv[2]) : 20000);
    if (mode == "nss") return nss(argc > 2 ? argv[2] : "benchuser", argc > 3 ? argv[3] : "rcpt");
    std::fprintf(stderr, "usage: %s files DIR [N] [ROUNDS] | handoff [N] | nss [USER] [ABSENT]\n", argv[0]);
    return 2;
}
