// tests/unit/proctable/plugin_test.cpp — table-proc.so through the C ABI with
// real programs: tests/integration/tables/table-test.py (both protocols, and
// keys that crash, hang or answer garbage) and Debian's opensmtpd-extras
// table-passwd and table-sqlite, run unchanged.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/plugin.hpp"

namespace {

using namespace std::chrono_literals;

const std::string kTestProgram = POSTERN_SOURCE_DIR "/tests/integration/tables/table-test.py";
const std::string kPasswd = "/usr/libexec/opensmtpd/table-passwd";
const std::string kSqlite = "/usr/libexec/opensmtpd/table-sqlite";

const postern::util::TablePlugin& plugin() {
    static auto loaded = [] {
        std::string error;
        auto p = postern::util::load_table_plugin(POSTERN_BUILD_DIR "/plugins", "proc", &error);
        if (!p) FAIL(error);
        return std::move(*p);
    }();
    return loaded;
}

class TempDir {
public:
    TempDir() {
        std::string tmpl = "/tmp/postern-proctable-XXXXXX";
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

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::trunc);
    out << content;
    REQUIRE(out);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Result {
    int status = -1;
    std::string value;  // the value when found, else the error text
};

// One open proc table.
class Table {
public:
    explicit Table(const std::string& config) {
        status_ = plugin()->open(config.c_str(), &handle_, &flags_, err_, sizeof err_);
    }
    ~Table() { close(); }
    void close() {
        if (handle_) plugin()->close(handle_);
        handle_ = nullptr;
    }
    int status() const { return status_; }
    std::string error() const { return err_; }
    uint32_t flags() const { return flags_; }

    Result lookup(const std::string& key) const {
        Result r;
        char err[256] = "";
        r.status = plugin()->lookup(handle_, key.c_str(), keep, &r.value, err, sizeof err);
        if (r.status != POSTERN_OK) r.value = err;
        return r;
    }
    Result lookup(uint32_t service, const std::string& key) const {
        Result r;
        char err[256] = "";
        r.status = plugin()->lookup_service(handle_, service, key.c_str(), keep, &r.value, err, sizeof err);
        if (r.status != POSTERN_OK) r.value = err;
        return r;
    }
    Result fetch(uint32_t service) const {
        Result r;
        char err[256] = "";
        r.status = plugin()->fetch(handle_, service, keep, &r.value, err, sizeof err);
        if (r.status != POSTERN_OK) r.value = err;
        return r;
    }
    uint32_t services() const { return plugin()->services(handle_); }
    Result reload() {
        Result r;
        char err[256] = "";
        r.status = plugin()->reload(handle_, &flags_, err, sizeof err);
        r.value = err;
        return r;
    }

private:
    static void keep(void* ctx, const char* v) { *static_cast<std::string*>(ctx) = v; }
    void* handle_ = nullptr;
    uint32_t flags_ = 0;
    char err_[512] = "";
    int status_ = -1;
};

// A data file for table-test.py and the config that runs it.
struct TestProgram {
    TempDir dir;
    std::string data = dir / "data.json";
    std::string log = dir / "requests.log";
    std::string marker = dir / "crashed";

    std::string config(const std::string& json, const std::string& options = "") {
        std::string full = json;
        full.insert(1, "\"log\": \"" + log + "\", \"marker\": \"" + marker + "\", ");
        write_file(data, full);
        return kTestProgram + (options.empty() ? "" : " " + options) + " " + data;
    }
};

const std::string kLineData =
    R"({"services": ["alias", "credentials", "domain", "source"],
        "alias": {"postmaster": "root", "bob": "bob@example.net, carol"},
        "credentials": {"bob": "bob:$6$hash"},
        "domain": ["example.org"],
        "source": ["192.0.2.1", "192.0.2.2"]})";

const std::string kImsgData =
    R"({"protocol": "imsg",
        "alias": {"postmaster": "root"},
        "userinfo": {"bob": "1000:1000:/home/bob"},
        "domain": ["example.org"],
        "relayhost": ["smtp://relay.example.net"]})";

// Whether this process has a child left to reap (a zombie or a running one).
bool has_children() {
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) != -1 || errno != ECHILD;
}

bool run(const std::string& command) { return std::system(command.c_str()) == 0; }

}  // namespace

TEST_CASE("open checks the program is executable and starts nothing") {
    TempDir dir;
    Table missing("/nonexistent/table-x /etc/x");
    CHECK(missing.status() == POSTERN_PERMFAIL);
    CHECK(missing.error() == "/nonexistent/table-x: No such file or directory");

    Table folder("/usr/libexec /etc/x");
    CHECK(folder.status() == POSTERN_PERMFAIL);
    CHECK(folder.error() == "/usr/libexec: not a regular file");

    Table relative("table-passwd /etc/x");
    CHECK(relative.status() == POSTERN_PERMFAIL);
    CHECK_THAT(relative.error(), Catch::Contains("absolute path"));

    TestProgram p;
    Table t(p.config(kLineData));
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == 0);  // not iterable
    CHECK(!std::filesystem::exists(p.log));
    CHECK(t.services() == POSTERN_SERVICE_ALL);  // not known before the program has run
    CHECK(!has_children());
}

TEST_CASE("line protocol: lookups, checks, fetch, update and registered services") {
    TestProgram p;
    Table t(p.config(kLineData, "name=users"));
    REQUIRE(t.status() == POSTERN_OK);

    Result r = t.lookup("bob");  // plain lookup = alias
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "bob@example.net, carol");
    CHECK(t.services() ==
          (POSTERN_SERVICE_ALIAS | POSTERN_SERVICE_CREDENTIALS | POSTERN_SERVICE_DOMAIN | POSTERN_SERVICE_SOURCE));
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "postmaster").value == "root");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "nobody").status == POSTERN_NOTFOUND);
    r = t.lookup(POSTERN_SERVICE_CREDENTIALS, "bob");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "bob:$6$hash");
    r = t.lookup(POSTERN_SERVICE_DOMAIN, "example.org");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "example.org");
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com").status == POSTERN_NOTFOUND);
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE).value == "192.0.2.1");
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE).value == "192.0.2.2");
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE).value == "192.0.2.1");

    r = t.lookup(POSTERN_SERVICE_USERINFO, "bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK(r.value == "table program " + kTestProgram + " did not register the userinfo service");

    CHECK(t.reload().status == POSTERN_OK);
    t.close();
    CHECK(!has_children());

    std::string log = read_file(p.log);
    CHECK(log.find("handshake") == 0);  // once: one process served them all
    CHECK(log.find("handshake", 1) == std::string::npos);
    CHECK_THAT(log,
               Catch::Matches(R"((.|\n)*table\|0\.1\|\d+\.\d{6}\|users\|lookup\|alias\|[0-9a-f]{8}\|bob\n(.|\n)*)"));
    CHECK_THAT(log, Catch::Contains("|users|check|domain|"));
    CHECK_THAT(log, Catch::Matches(R"((.|\n)*\|users\|fetch\|source\|[0-9a-f]{8}\n(.|\n)*)"));
    CHECK_THAT(log, Catch::Matches(R"((.|\n)*\|users\|update\|[0-9a-f]{8}\n(.|\n)*)"));
}

TEST_CASE("imsg protocol: OPEN, lookups, checks, fetch, update, CLOSE") {
    TestProgram p;
    Table t(p.config(kImsgData, "protocol=imsg name=aliases"));
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("postmaster").value == "root");
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "bob").value == "1000:1000:/home/bob");
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "alice").status == POSTERN_NOTFOUND);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org").value == "example.org");
    CHECK(t.fetch(POSTERN_SERVICE_RELAYHOST).value == "smtp://relay.example.net");
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE).status == POSTERN_NOTFOUND);
    CHECK(t.services() == POSTERN_SERVICE_ALL);  // imsg programs register nothing
    CHECK(t.reload().status == POSTERN_OK);
    t.close();
    CHECK(!has_children());
    CHECK(read_file(p.log) ==
          "open 2 aliases " + std::to_string(4 + LINE_MAX) +
              "\nlookup alias postmaster\nlookup userinfo bob\nlookup userinfo alice\ncheck domain example.org\n"
              "fetch relayhost\nfetch source\nupdate\nclose\n");
}

TEST_CASE("a key with CR or LF is refused before it reaches the program") {
    TestProgram p;
    Table t(p.config(kLineData));
    Result r = t.lookup("bob\r\nx");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK(r.value == "table-proc: refused a key holding CR or LF");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a\nb").status == POSTERN_TEMPFAIL);
    CHECK(!std::filesystem::exists(p.log));
}

TEST_CASE("a program that dies mid-lookup: TEMPFAIL, backoff, then a restart that works") {
    for (const char* protocol : {"line", "imsg"}) {
        DYNAMIC_SECTION(protocol) {
            TestProgram p;
            Table t(p.config(std::string(R"({"protocol": ")") + protocol + R"(", "services": ["alias"],
                                 "alias": {"bob": "bob@example.net"}})",
                             std::string("protocol=") + protocol));
            CHECK(t.lookup("bob").status == POSTERN_OK);
            Result r = t.lookup("crash-once");
            CHECK(r.status == POSTERN_TEMPFAIL);
            CHECK_THAT(r.value, Catch::Contains("closed its output") && Catch::Contains("exited with status 3") &&
                                    Catch::Contains("restart in 1 s"));
            CHECK(!has_children());  // reaped at once
            // Inside the backoff window nothing is started.
            r = t.lookup("bob");
            CHECK(r.status == POSTERN_TEMPFAIL);
            CHECK_THAT(r.value, Catch::StartsWith("table program table-test.py restarting in 1 s"));
            std::this_thread::sleep_for(1100ms);
            r = t.lookup("bob");
            CHECK(r.status == POSTERN_OK);
            CHECK(r.value == "bob@example.net");
            CHECK(t.lookup("crash-once").status == POSTERN_NOTFOUND);  // the marker exists now
        }
    }
}

TEST_CASE("the backoff doubles while the program keeps failing, and a good reply resets it") {
    TestProgram p;
    Table t(p.config(R"({"services": ["alias"], "alias": {"bob": "x"}})"));
    CHECK_THAT(t.lookup("crash").value, Catch::Contains("restart in 1 s"));
    std::this_thread::sleep_for(1100ms);
    CHECK_THAT(t.lookup("crash").value, Catch::Contains("restart in 2 s"));
    std::this_thread::sleep_for(1100ms);
    CHECK_THAT(t.lookup("bob").value, Catch::Contains("restarting in 1 s"));
    std::this_thread::sleep_for(1000ms);
    CHECK(t.lookup("bob").status == POSTERN_OK);
    CHECK_THAT(t.lookup("crash").value, Catch::Contains("restart in 1 s"));
}

TEST_CASE("a program that hangs is killed at the timeout") {
    for (const char* protocol : {"line", "imsg"}) {
        DYNAMIC_SECTION(protocol) {
            TestProgram p;
            Table t(p.config(std::string(R"({"protocol": ")") + protocol + R"(", "services": ["alias"]})",
                             std::string("timeout=1 protocol=") + protocol));
            auto start = std::chrono::steady_clock::now();
            Result r = t.lookup("hang");
            auto took = std::chrono::steady_clock::now() - start;
            CHECK(r.status == POSTERN_TEMPFAIL);
            CHECK_THAT(r.value, Catch::Contains("no reply within 1 s") && Catch::Contains("killed by signal 9"));
            CHECK(took >= 900ms);
            CHECK(took < 3s);
            CHECK(!has_children());
        }
    }
}

TEST_CASE("garbage from a program fails the lookup and restarts it") {
    for (const char* protocol : {"line", "imsg"}) {
        DYNAMIC_SECTION(protocol) {
            TestProgram p;
            Table t(p.config(std::string(R"({"protocol": ")") + protocol +
                                 R"(", "services": ["alias"], "alias": {"twice": "t", "bob": "b"}})",
                             std::string("protocol=") + protocol));
            Result r = t.lookup("garbage");
            CHECK(r.status == POSTERN_TEMPFAIL);
            CHECK_THAT(r.value, Catch::Contains("answered garbage"));
            CHECK(!has_children());
            std::this_thread::sleep_for(1100ms);
            // Two replies to one request: the first is taken, the second breaks the next request.
            CHECK(t.lookup("twice").value == "t");
            std::this_thread::sleep_for(100ms);
            r = t.lookup("bob");
            CHECK(r.status == POSTERN_TEMPFAIL);
            CHECK_THAT(r.value, Catch::Contains("more than one reply") || Catch::Contains("between requests"));
        }
    }
}

TEST_CASE("a program that speaks the other protocol, or registers nothing, fails its start") {
    TestProgram p;
    // An imsg program taken for a line one: it cannot read the greeting.
    Table t(p.config(R"({"protocol": "imsg"})", "protocol=line timeout=2"));
    Result r = t.lookup("bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK(r.value.find("table program table-test.py") == 0);

    TestProgram q;
    Table u(q.config(R"({"services": []})"));
    r = u.lookup("bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK_THAT(r.value, Catch::Contains("registered no service"));

    // A line program taken for an imsg one: its text is no imsg header.
    TestProgram s;
    Table v(s.config(R"({"services": ["alias"]})", "protocol=imsg timeout=2"));
    r = v.lookup("bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK_THAT(r.value, Catch::Contains("table program table-test.py"));
    t.close();
    u.close();
    v.close();
    CHECK(!has_children());
}

TEST_CASE("a program that is not there when the first lookup comes") {
    TempDir dir;
    std::string program = dir / "table-gone";
    write_file(program, "#!/bin/sh\nexit 0\n");
    ::chmod(program.c_str(), 0755);
    Table t(program + " /etc/x");
    REQUIRE(t.status() == POSTERN_OK);
    ::unlink(program.c_str());
    Result r = t.lookup("bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    CHECK_THAT(r.value, Catch::StartsWith("cannot start table program " + program + ": No such file or directory"));
}

TEST_CASE("lookups from many threads are serialised and all answered") {
    TestProgram p;
    Table t(p.config(kLineData));
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            for (int n = 0; n < 25; ++n) {
                Result r = (i + n) % 2 ? t.lookup("postmaster") : t.lookup(POSTERN_SERVICE_CREDENTIALS, "bob");
                if (r.status == POSTERN_OK && r.value == ((i + n) % 2 ? "root" : "bob:$6$hash")) ++good;
            }
        });
    for (auto& th : threads) th.join();
    CHECK(good == 200);
}

TEST_CASE("Debian's table-passwd, run unchanged (imsg protocol)") {
    if (::access(kPasswd.c_str(), X_OK) != 0) {
        WARN("opensmtpd-extras is not installed: skipped");
        return;
    }
    TempDir dir;
    std::string passwd = dir / "passwd";
    write_file(passwd, "alice:$6$salt$hash:1001:1002:Alice:/home/alice:/sbin/nologin\n"
                       "bob:$6$other$hash:2001:2002::/var/vmail/bob:/bin/sh:extra:dovecot:fields\n");
    Table t(kPasswd + " " + passwd);
    REQUIRE(t.status() == POSTERN_OK);
    Result r = t.lookup(POSTERN_SERVICE_CREDENTIALS, "alice");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "alice:$6$salt$hash");
    r = t.lookup(POSTERN_SERVICE_USERINFO, "bob");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "2001:2002:/var/vmail/bob");
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "carol").status == POSTERN_NOTFOUND);
    CHECK(t.lookup(POSTERN_SERVICE_CREDENTIALS, "carol").status == POSTERN_NOTFOUND);
    CHECK(t.reload().status == POSTERN_OK);
    t.close();
    CHECK(!has_children());
}

TEST_CASE("Debian's table-sqlite, run unchanged (imsg protocol)") {
    if (::access(kSqlite.c_str(), X_OK) != 0) {
        WARN("opensmtpd-extras is not installed: skipped");
        return;
    }
    TempDir dir;
    std::string db = dir / "mail.sqlite", conf = dir / "sqlite.conf";
    REQUIRE(run("sqlite3 " + db +
                " \"CREATE TABLE virtuals (email TEXT, destination TEXT);"
                " CREATE TABLE credentials (email TEXT, password TEXT);"
                " CREATE TABLE domains (domain TEXT);"
                " CREATE TABLE users (name TEXT, uid INTEGER, gid INTEGER, home TEXT);"
                " INSERT INTO virtuals VALUES ('abuse@example.org', 'bob@example.org');"
                " INSERT INTO virtuals VALUES ('bob@example.org', 'vmail');"
                " INSERT INTO credentials VALUES ('bob@example.org', '\\$6\\$salt\\$hash');"
                " INSERT INTO domains VALUES ('example.org');"
                " INSERT INTO users VALUES ('vmail', 5000, 5000, '/var/vmail');\""));
    write_file(conf, "dbpath " + db +
                         "\n"
                         "query_alias SELECT destination FROM virtuals WHERE email=?;\n"
                         "query_credentials SELECT email, password FROM credentials WHERE email=?;\n"
                         "query_domain SELECT domain FROM domains WHERE domain=?;\n"
                         "query_userinfo SELECT uid, gid, home FROM users WHERE name=?;\n");
    Table t(kSqlite + " " + conf);
    REQUIRE(t.status() == POSTERN_OK);
    Result r = t.lookup("abuse@example.org");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "bob@example.org");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "bob@example.org").value == "vmail");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "nobody@example.org").status == POSTERN_NOTFOUND);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org").status == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com").status == POSTERN_NOTFOUND);
    r = t.lookup(POSTERN_SERVICE_CREDENTIALS, "bob@example.org");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "bob@example.org:$6$salt$hash");
    r = t.lookup(POSTERN_SERVICE_USERINFO, "vmail");
    CHECK(r.status == POSTERN_OK);
    CHECK(r.value == "5000:5000:/var/vmail");
    // A service the config has no query for: the program answers an error.
    r = t.lookup(POSTERN_SERVICE_MAILADDRMAP, "bob");
    CHECK(r.status == POSTERN_TEMPFAIL);
    t.close();
    CHECK(!has_children());
}
