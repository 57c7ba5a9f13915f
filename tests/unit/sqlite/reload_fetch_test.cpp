// tests/unit/sqlite/reload_fetch_test.cpp — reload (a changed config, a
// replaced database, a failed reload keeping the old one) and fetch's turn
// through fetch_source's rows.
#include <cstdio>

#include "support.hpp"

using namespace sqlt;

namespace {

struct Fixture {
    TempDir dir;
    std::string db = dir / "db.sqlite";
    std::string conf = dir / "sqlite.conf";
    Fixture() {
        Db w(db);
        w.exec("CREATE TABLE t (k TEXT, v TEXT); INSERT INTO t VALUES ('a', 'one'), ('b', 'two');"
               "CREATE TABLE src (addr TEXT, n INTEGER);"
               "INSERT INTO src VALUES ('192.0.2.1', 1), ('192.0.2.2', 2), ('192.0.2.1', 3), ('192.0.2.3', 4)");
    }
    std::string head() const { return "dbpath " + db + "\n"; }
};

std::vector<std::string> fetch_n(const Table& t, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
        Result r = t.fetch(POSTERN_SERVICE_SOURCE);
        REQUIRE(r.rc == POSTERN_OK);
        out.push_back(r.value);
    }
    return out;
}

}  // namespace

TEST_CASE("sqlite reload: a changed config takes effect") {
    Fixture f;
    Table t(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("one"));
    CHECK(t.reload(f.head() + "query_alias SELECT upper(v) FROM t WHERE k=?\nquery_domain SELECT k FROM t WHERE "
                              "k=?\n") == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("ONE"));
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "b") == found("b"));
    CHECK(t.services() == (POSTERN_SERVICE_ALIAS | POSTERN_SERVICE_DOMAIN));
}

TEST_CASE("sqlite reload: a database replaced by rename is seen after reload") {
    Fixture f;
    Table t(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?\n");
    REQUIRE(t.status() == POSTERN_OK);
    std::string fresh = f.dir / "fresh.sqlite";
    Db(fresh).exec("CREATE TABLE t (k TEXT, v TEXT); INSERT INTO t VALUES ('a', 'new one')");
    REQUIRE(std::rename(fresh.c_str(), f.db.c_str()) == 0);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("one"));  // the open file is the old one
    CHECK(t.reload() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("new one"));
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "b") == notfound());
}

TEST_CASE("sqlite reload: a failed reload keeps the old state") {
    Fixture f;
    Table t(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?\n");
    REQUIRE(t.status() == POSTERN_OK);

    CHECK(t.reload(f.head() + "query_alias SELECT v FROM nosuch WHERE k=?\n") == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":2: query_alias: no such table: nosuch");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("one"));

    CHECK(t.reload(f.head() + "bogus 1\n") == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":2: unknown key \"bogus\" (see postern-table-sqlite(5))");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("one"));

    std::string missing = f.dir / "gone.sqlite";
    CHECK(t.reload("dbpath " + missing + "\nquery_alias SELECT 1 WHERE ?\n") == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":1: dbpath " + missing + ": unable to open database file (No such file or directory)");
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "a") == found("one"));
    CHECK(t.services() == POSTERN_SERVICE_ALIAS);
}

TEST_CASE("sqlite fetch: fetch_source's distinct rows in turn") {
    Fixture f;
    Table t(f.conf, f.head() + "fetch_source SELECT addr FROM src ORDER BY n\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.services() == POSTERN_SERVICE_SOURCE);
    CHECK(fetch_n(t, 7) == std::vector<std::string>{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1", "192.0.2.2",
                                                    "192.0.2.3", "192.0.2.1"});
    CHECK(t.fetch(POSTERN_SERVICE_RELAYHOST) == tempfail(f.conf + ": sqlite tables fetch sources only (fetch_source)"));
}

TEST_CASE("sqlite fetch: rows read again after fetch_source_refresh fetches") {
    Fixture f;
    Table t(f.conf, f.head() + "fetch_source SELECT addr FROM src ORDER BY n\nfetch_source_refresh 4\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(fetch_n(t, 2) == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
    Db(f.db).exec("INSERT INTO src VALUES ('192.0.2.9', 9)");
    // Two more from the list read at first, then the new row's list.
    CHECK(fetch_n(t, 2) == std::vector<std::string>{"192.0.2.3", "192.0.2.1"});
    CHECK(fetch_n(t, 4) == std::vector<std::string>{"192.0.2.2", "192.0.2.3", "192.0.2.9", "192.0.2.1"});
}

TEST_CASE("sqlite fetch: fetch_source_expire 0 reads the rows on every fetch") {
    Fixture f;
    Table t(f.conf, f.head() + "fetch_source SELECT addr FROM src ORDER BY n\nfetch_source_expire 0\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(fetch_n(t, 1) == std::vector<std::string>{"192.0.2.1"});
    Db(f.db).exec("DELETE FROM src WHERE addr <> '192.0.2.3'");
    CHECK(fetch_n(t, 2) == std::vector<std::string>{"192.0.2.3", "192.0.2.3"});
    Db(f.db).exec("DELETE FROM src");
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE) == notfound());
}

TEST_CASE("sqlite fetch: a reload starts a fresh list") {
    Fixture f;
    Table t(f.conf, f.head() + "fetch_source SELECT addr FROM src ORDER BY n\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(fetch_n(t, 1) == std::vector<std::string>{"192.0.2.1"});
    Db(f.db).exec("INSERT INTO src VALUES ('192.0.2.0', 0)");
    CHECK(fetch_n(t, 1) == std::vector<std::string>{"192.0.2.2"});  // the list is 60 s fresh
    CHECK(t.reload() == POSTERN_OK);
    CHECK(fetch_n(t, 2) == std::vector<std::string>{"192.0.2.0", "192.0.2.1"});
}
