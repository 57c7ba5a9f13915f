// The serving process's confinement (daemon/sandbox.hpp), applied in a
// forked process: what it may still do (write its spool, read the system's
// and its configuration's folders) and what it can no longer do (read or
// write anywhere else, gain privileges by exec).
#include "daemon/sandbox.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using postern::daemon::confine;
using postern::daemon::serving_confinement;

namespace {

struct Dir {
    fs::path path;
    Dir() {
        char tmpl[] = "/tmp/sandbox-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        path = tmpl;
    }
    ~Dir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// 0 when the open succeeded, else its errno.
int try_open(const fs::path& p, int flags) {
    int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
}

}  // namespace

TEST_CASE("sandbox: the confined process writes only its spool and reads only its folders") {
    Dir d;
    fs::create_directories(d.path / "spool");
    fs::create_directories(d.path / "conf");
    fs::create_directories(d.path / "home");
    write(d.path / "conf" / "postern.conf", "action x maildir\n");
    write(d.path / "home" / "secret", "a user's secret\n");
    ::chmod((d.path / "home" / "secret").c_str(), 0644);

    // What each attempt gave, as errnos in a pipe: the child's whole verdict.
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        auto c = serving_confinement((d.path / "spool").string(), {(d.path / "conf" / "postern.conf").string()});
        auto done = confine(c);
        int got[8] = {
            done.landlock_abi,
            ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            try_open(d.path / "spool" / "message", O_WRONLY | O_CREAT),
            try_open(d.path / "conf" / "postern.conf", O_RDONLY),
            try_open("/etc/passwd", O_RDONLY),
            try_open(d.path / "home" / "secret", O_RDONLY),
            try_open(d.path / "home" / "planted", O_WRONLY | O_CREAT),
            try_open(d.path / "conf" / "postern.conf", O_WRONLY),
        };
        ssize_t n = ::write(p[1], got, sizeof got);
        std::_Exit(n == sizeof got ? 0 : 1);
    }
    ::close(p[1]);
    int got[8] = {};
    ssize_t n = ::read(p[0], got, sizeof got);
    ::close(p[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(n == sizeof got);
    CHECK(got[1] == 1);  // no new privileges, whatever the kernel's Landlock
    CHECK(got[2] == 0);  // its spool
    CHECK(got[3] == 0);  // its configuration
    CHECK(got[4] == 0);  // the system's user database (NSS)
    if (got[0] == 0) {
        WARN("Landlock not available on this kernel: only no-new-privs checked");
        return;
    }
    CHECK(got[5] == EACCES);  // a file any user may read, outside its folders
    CHECK(got[6] == EACCES);  // a file planted outside the spool
    CHECK(got[7] == EACCES);  // its own configuration, rewritten
    CHECK_FALSE(fs::exists(d.path / "home" / "planted"));
    CHECK(fs::exists(d.path / "spool" / "message"));
}

TEST_CASE("sandbox: a table's file, a program's path and a sqlite table's database are its tables' files") {
    Dir d;
    write(d.path / "sqlite.conf", "# the userbase\ndbpath /var/lib/postern/users.db\nquery_alias SELECT 1\n");
    auto parsed = postern::config::parse_text("table aliases file:/etc/postern/aliases\n"
                                              "table users sqlite:" +
                                                  (d.path / "sqlite.conf").string() +
                                                  "\n"
                                                  "table inl { a = b }\n"
                                                  "action \"x\" maildir alias <aliases>\n"
                                                  "match from any for any action \"x\"\n",
                                              "sandbox_test.conf");
    INFO((parsed.errors.empty() ? "" : parsed.errors.front().message));
    REQUIRE(parsed.config);
    CHECK(postern::daemon::table_files(*parsed.config) == std::vector<std::string>{"/etc/postern/aliases",
                                                                                   (d.path / "sqlite.conf").string(),
                                                                                   "/var/lib/postern/users.db"});
    auto c = serving_confinement("/var/spool/postern", {"/etc/postern/postern.conf"},
                                 postern::daemon::table_files(*parsed.config));
    CHECK(c.writable == std::vector<std::string>{"/var/spool/postern", "/dev/null", "/etc/postern", d.path.string(),
                                                 "/var/lib/postern"});
    CHECK(c.readable.back() == "/etc/postern");
}
