// tests/unit/sqlite/failure_test.cpp — a database that is missing, locked by a
// writer or not a database: PERMFAIL at open, TEMPFAIL with SQLite's reason
// on a lookup, never a crash.
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "support.hpp"

using namespace sqlt;

namespace {

struct Fixture {
    TempDir dir;
    std::string db = dir / "db.sqlite";
    std::string conf = dir / "sqlite.conf";
    Fixture() {
        Db w(db);
        w.exec("CREATE TABLE domains (domain TEXT); INSERT INTO domains VALUES ('example.com')");
    }
    std::string config(const std::string& extra = "") const {
        return "dbpath " + db + "\nquery_domain SELECT domain FROM domains WHERE domain=?\n" + extra;
    }
};

std::string garbage() {
    std::string g;
    for (int i = 0; i < 8192; ++i) g += static_cast<char>((i * 7919 + 13) & 0xff);
    return g;
}

}  // namespace

TEST_CASE("sqlite failure: a missing database is refused at open") {
    Fixture f;
    std::string missing = f.dir / "missing.sqlite";
    Table t(f.conf, "dbpath " + missing + "\nquery_domain SELECT 1 WHERE ?1 IS NOT NULL\n");
    CHECK(t.status() == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":1: dbpath " + missing + ": unable to open database file (No such file or directory)");
    CHECK(!std::filesystem::exists(missing));  // read-only: never created
}

TEST_CASE("sqlite failure: a file that is not a database") {
    Fixture f;
    std::string bad = f.dir / "garbage.sqlite";
    write_file(bad, garbage());
    Table t(f.conf, "dbpath " + bad + "\nquery_domain SELECT 1 WHERE ?1 IS NOT NULL\n");
    CHECK(t.status() == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":1: dbpath " + bad + ": file is not a database");
}

TEST_CASE("sqlite failure: a database garbled after open gives TEMPFAIL, then works again") {
    Fixture f;
    std::string good = f.dir / "good.sqlite";
    std::filesystem::copy_file(f.db, good);
    Table t(f.conf, f.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == found("example.com"));
    write_file(f.db, garbage());  // same inode, new bytes
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == tempfail(f.db + ": query_domain: file is not a database"));
    write_file(f.db, read_file(good));
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == found("example.com"));
}

TEST_CASE("sqlite failure: a writer's exclusive lock gives TEMPFAIL after the busy timeout") {
    Fixture f;
    Table t(f.conf, f.config("busy_timeout 200\n"));
    REQUIRE(t.status() == POSTERN_OK);
    {
        Db writer(f.db);
        writer.exec("BEGIN EXCLUSIVE; INSERT INTO domains VALUES ('example.org')");
        auto start = std::chrono::steady_clock::now();
        CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == tempfail(f.db + ": query_domain: database is locked"));
        auto waited = std::chrono::steady_clock::now() - start;
        CHECK(waited >= std::chrono::milliseconds(150));  // it did wait for the lock
        CHECK(waited < std::chrono::seconds(2));          // and no longer than told

        // A reload while locked keeps the old connection.
        CHECK(t.reload() == POSTERN_TEMPFAIL);
        CHECK(t.error() == f.conf + ":1: dbpath " + f.db + ": database is locked");
        writer.exec("COMMIT");
    }
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == found("example.org"));
}

TEST_CASE("sqlite failure: a lookup waits for a short write to end") {
    Fixture f;
    Table t(f.conf, f.config("busy_timeout 5000\n"));
    REQUIRE(t.status() == POSTERN_OK);
    Db writer(f.db);
    writer.exec("BEGIN EXCLUSIVE; INSERT INTO domains VALUES ('example.org')");
    std::thread commit([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        writer.exec("COMMIT");
    });
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == found("example.org"));
    commit.join();
}

TEST_CASE("sqlite failure: an unreadable database is refused at open") {
    if (::geteuid() == 0) {
        WARN("skipped: root reads any file");
        return;
    }
    Fixture f;
    REQUIRE(::chmod(f.db.c_str(), 0) == 0);
    Table t(f.conf, f.config());
    CHECK(t.status() == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":1: dbpath " + f.db + ": unable to open database file (Permission denied)");
}
