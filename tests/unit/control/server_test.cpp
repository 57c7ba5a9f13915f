// control::Server on a real libuv loop: framing, refusals, timeouts, many
// clients at once, the socket file, and the peer-credential check.
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <future>
#include <vector>

#include "support.hpp"

using namespace control_test;

namespace {

std::string error_of(const std::string& bytes) {
    Reply r;
    std::string err;
    if (!decode_reply(bytes, &r, &err)) return "<undecodable: " + err + ">";
    return r.ok ? "<ok>" : r.error;
}

// A socket file nobody listens on, as a crashed daemon leaves it.
void make_stale_socket(const std::string& path) {
    postern::util::Fd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
}

}  // namespace

TEST_CASE("server answers a request with the handler's records") {
    TestServer s;
    Reply r = exchange(s.path(), {{"show", "queue"}});
    CHECK(r.ok);
    CHECK(r.records == queue_table());
    CHECK(s.handler.calls == 1);
    CHECK(s.handler.last_uid == static_cast<long>(::geteuid()));
}

TEST_CASE("server sends a reply the handler gives later") {
    TestServer s;
    Reply r = exchange(s.path(), {{"show", "stats"}});
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0] == Record{{"uptime", "12"}, {"smtp.session", "3"}, {"scheduler.envelope", "2"}});
}

TEST_CASE("server passes error replies through") {
    TestServer s;
    Reply r = exchange(s.path(), {{"remove", "0123456789abcdef"}});
    CHECK_FALSE(r.ok);
    CHECK(r.error == "no such envelope: 0123456789abcdef\nsecond line");
}

TEST_CASE("server refuses malformed requests without calling the handler") {
    TestServer s;
    CHECK(error_of(raw_exchange(s.path(), "GET / HTTP/1.0\r\n\r\n")) ==
          "malformed request: frame does not start with a length");
    CHECK(error_of(raw_exchange(s.path(), "8:1:x,1:y,;")) == "malformed request: expected ',' after the frame");
    CHECK(error_of(raw_exchange(s.path(), "8:1:x,1:y,,")) == "malformed request: unsupported protocol version 'x'");
    CHECK(error_of(raw_exchange(s.path(), encode_request({{"show", "queue"}}) + "extra")) ==
          "malformed request: trailing bytes after the frame");
    CHECK(s.handler.calls == 0);
}

TEST_CASE("server refuses an oversized request as soon as its length is known") {
    TestServer s;
    std::string big = encode_request({{"update", "table", std::string(70000, 'a')}});
    CHECK(error_of(raw_exchange(s.path(), big)) == "malformed request: frame too large (70045 bytes, max 65536)");
    CHECK(s.handler.calls == 0);
}

TEST_CASE("server refuses unknown commands and bad ids itself") {
    TestServer s;
    CHECK(error_of(raw_exchange(s.path(), encode_request({{"frobnicate", "now"}}))) ==
          "unknown command: frobnicate now");
    CHECK(error_of(raw_exchange(s.path(), encode_request({{"schedule", "../../etc"}}))) ==
          "invalid id '../../etc': expected a message id (8 hex digits), an envelope id (16) or all");
    CHECK(s.handler.calls == 0);
}

TEST_CASE("server reads a request that arrives byte by byte") {
    TestServer s;
    auto fd = connect_to(s.path());
    std::string bytes = encode_request({{"pause", "mta"}});
    for (char c : bytes) {
        REQUIRE(::send(fd.get(), &c, 1, MSG_NOSIGNAL) == 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    Reply r;
    std::string err;
    REQUIRE(decode_reply(read_all(fd.get()), &r, &err));
    CHECK(r.ok);
    CHECK(s.handler.calls == 1);
}

TEST_CASE("server closes a client that sends nothing within the request timeout") {
    TestServer s(std::chrono::milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    auto fd = connect_to(s.path());
    CHECK(read_all(fd.get()) == "");  // EOF, not "<timeout>" after 5 s
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= std::chrono::milliseconds(150));
    CHECK(took < std::chrono::seconds(3));
    // A half-sent request times out the same way, and the server goes on.
    auto half = connect_to(s.path());
    REQUIRE(::send(half.get(), "36:17:post", 10, MSG_NOSIGNAL) == 10);
    CHECK(read_all(half.get()) == "");
    CHECK(exchange(s.path(), {{"show", "queue"}}).ok);
}

TEST_CASE("server survives clients that hang up early") {
    TestServer s;
    for (int i = 0; i < 5; ++i) {
        auto fd = connect_to(s.path());
        ::send(fd.get(), "36:17:postern", 13, MSG_NOSIGNAL);
    }  // each closes here, mid-request
    {
        auto fd = connect_to(s.path());  // asks, then leaves before the deferred answer
        std::string req = encode_request({{"show", "stats"}});
        ::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    CHECK(exchange(s.path(), {{"show", "queue"}}).records == queue_table());
}

TEST_CASE("server serves many clients at once") {
    TestServer s;
    constexpr int kClients = 40;
    // Each connects first and all send together, so the server holds them all
    // while the deferred answers are pending.
    std::vector<postern::util::Fd> fds;
    for (int i = 0; i < kClients; ++i) fds.push_back(connect_to(s.path()));
    std::string req = encode_request({{"show", "stats"}});
    for (auto& fd : fds)
        REQUIRE(::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    std::vector<std::future<std::string>> answers;
    for (auto& fd : fds) answers.push_back(std::async(std::launch::async, [&fd] { return read_all(fd.get()); }));
    int good = 0;
    for (auto& a : answers) {
        Reply r;
        std::string err;
        if (decode_reply(a.get(), &r, &err) && r.ok && r.records.size() == 1 && r.records[0][0].second == "12") ++good;
    }
    CHECK(good == kClients);
    CHECK(s.handler.calls == kClients);
}

TEST_CASE("server turns away clients beyond its limit, and recovers") {
    TestServer s;
    std::vector<postern::util::Fd> idle;
    for (size_t i = 0; i < Server::kMaxClients; ++i) idle.push_back(connect_to(s.path()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all accepted
    CHECK(error_of(raw_exchange(s.path(), encode_request({{"show", "queue"}}))) ==
          "too many control clients; try again");
    idle.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all gone
    CHECK(exchange(s.path(), {{"show", "queue"}}).ok);
    CHECK(s.handler.calls == 1);
}

TEST_CASE("a handler that answers after the server closed does no harm") {
    // `update table slow` is parked; the fixture answers it after close() and
    // checks that nothing was left open.
    auto s = std::make_unique<TestServer>();
    auto fd = connect_to(s->path());
    std::string req = encode_request({{"update", "table", "slow"}});
    REQUIRE(::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    for (int i = 0; i < 200 && s->handler.calls == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(s->handler.calls == 1);
    s.reset();
    CHECK(read_all(fd.get()) == "");  // closed without an answer
}

TEST_CASE("the socket file is mode 0660") {
    TestServer s;
    struct stat st {};
    REQUIRE(::lstat(s.path().c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
}

TEST_CASE("listen replaces a stale socket but nothing else") {
    char tmpl[] = "/tmp/postern-control-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string dir = tmpl;
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    TestHandler handler;
    {
        Server server(&loop, handler);
        std::string error;

        std::string stale = dir + "/stale.sock";
        make_stale_socket(stale);
        CHECK(server.listen(stale, &error));
        CHECK(error == "");

        // The first server now answers on `stale`: a second one must not steal it.
        Server other(&loop, handler);
        CHECK_FALSE(other.listen(stale, &error));
        CHECK(error == "another posternd is already listening on " + stale);

        std::string file = dir + "/file";
        {
            std::FILE* f = std::fopen(file.c_str(), "w");
            REQUIRE(f);
            std::fputs("keep me", f);
            std::fclose(f);
        }
        CHECK_FALSE(other.listen(file, &error));
        CHECK(error == file + " exists and is not a socket");
        CHECK(std::filesystem::file_size(file) == 7);

        std::string longpath = dir + "/" + std::string(120, 'x');
        CHECK_FALSE(other.listen(longpath, &error));
        CHECK(error == "control socket path too long (max 107 bytes): " + longpath);

        CHECK_FALSE(other.listen(dir + "/missing/dir/s.sock", &error));
        CHECK(error == "bind " + dir + "/missing/dir/s.sock: no such file or directory");
        other.close();
        server.close();
        CHECK_FALSE(std::filesystem::exists(stale));  // close() removes the socket it made
        CHECK(std::filesystem::exists(file));
    }
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);  // the close callbacks run; nothing is left
    CHECK(uv_loop_close(&loop) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a peer that is neither root nor the daemon's user is refused") {
    if (::geteuid() != 0) {
        WARN("not root: cannot connect as another user; skipped");
        return;
    }
    TestServer s;
    // Let `nobody` through the file permissions, so that only the peer check stands.
    REQUIRE(::chmod(s.dir().c_str(), 0755) == 0);
    REQUIRE(::chmod(s.path().c_str(), 0666) == 0);
    // Everything the child needs is made before fork(): the test is threaded,
    // so the child must not allocate.
    std::string req = encode_request({{"show", "queue"}});
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, s.path().data(), s.path().size());
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipefd[0]);
        if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) ::_exit(4);
        (void)!::write(fd, req.data(), req.size());
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) (void)!::write(pipefd[1], buf, static_cast<size_t>(n));
        ::_exit(0);
    }
    ::close(pipefd[1]);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(error_of(got) == "permission denied");
    CHECK(s.handler.calls == 0);
}
