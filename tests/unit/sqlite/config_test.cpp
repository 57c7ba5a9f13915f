// tests/unit/sqlite/config_test.cpp — the table-sqlite config file: its line
// syntax and every refusal, with the exact text `posternd -n` shows.
#include "support.hpp"

using namespace sqlt;

namespace {

// A scratch folder with an empty database `db.sqlite` holding one table.
struct Fixture {
    TempDir dir;
    std::string db = dir / "db.sqlite";
    std::string conf = dir / "sqlite.conf";
    Fixture() {
        Db w(db);
        w.exec("CREATE TABLE t (k TEXT, v TEXT, n INTEGER)");
        w.exec("INSERT INTO t VALUES ('key', 'value', 1)");
    }
    std::string head() const { return "dbpath " + db + "\n"; }
};

}  // namespace

TEST_CASE("sqlite config: key/value separators, comments and blank lines") {
    Fixture f;
    Table t(f.conf, "# table-sqlite\n\n   # indented comment\n\t\ndbpath: " + f.db +
                        "\nquery_alias:SELECT v FROM t WHERE k=?\nquery_domain\t\tSELECT '#' || v FROM t WHERE k = ?1  "
                        "\nquery_mailaddr : SELECT v FROM t WHERE k=?;\r\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == 0);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "key") == found("value"));
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "key") == found("#value"));  // a '#' inside the value is SQL
    CHECK(t.lookup(POSTERN_SERVICE_MAILADDR, "key") == found("value"));
    CHECK(t.services() == (POSTERN_SERVICE_ALIAS | POSTERN_SERVICE_DOMAIN | POSTERN_SERVICE_MAILADDR));
}

TEST_CASE("sqlite config: an unknown key") {
    Fixture f;
    Table t(f.conf, f.head() + "query_aliases SELECT v FROM t WHERE k=?\n");
    CHECK(t.status() == POSTERN_PERMFAIL);
    CHECK(t.error() == f.conf + ":2: unknown key \"query_aliases\" (see postern-table-sqlite(5))");

    // The fetch keys are table-sqlite's, not a name of ours.
    Table interval(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?\nfetch_interval 60\n");
    CHECK(interval.error() == f.conf + ":3: unknown key \"fetch_interval\" (see postern-table-sqlite(5))");
}

TEST_CASE("sqlite config: no dbpath, a relative one, no query") {
    Fixture f;
    Table none(f.conf, "# nothing\nquery_alias SELECT v FROM t WHERE k=?\n");
    CHECK(none.status() == POSTERN_PERMFAIL);
    CHECK(none.error() == f.conf + ": no dbpath (the SQLite database to open)");

    Table relative(f.conf, "dbpath db.sqlite\nquery_alias SELECT v FROM t WHERE k=?\n");
    CHECK(relative.status() == POSTERN_PERMFAIL);
    CHECK(relative.error() == f.conf + ":1: dbpath must be an absolute path, not \"db.sqlite\"");

    Table empty(f.conf, f.head());
    CHECK(empty.status() == POSTERN_PERMFAIL);
    CHECK(empty.error() == f.conf + ": no query_* or fetch_source: the table would answer nothing");
}

TEST_CASE("sqlite config: a key twice, a key without value") {
    Fixture f;
    Table twice(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?\n\nquery_alias SELECT k FROM t WHERE v=?\n");
    CHECK(twice.status() == POSTERN_PERMFAIL);
    CHECK(twice.error() == f.conf + ":4: duplicate key \"query_alias\" (first on line 2)");

    Table dbpath_twice(f.conf, f.head() + f.head());
    CHECK(dbpath_twice.error() == f.conf + ":2: duplicate key \"dbpath\" (first on line 1)");

    Table bare(f.conf, f.head() + "query_domain\n");
    CHECK(bare.status() == POSTERN_PERMFAIL);
    CHECK(bare.error() == f.conf + ":2: key \"query_domain\" has no value");

    Table colon(f.conf, f.head() + "query_domain:   \n");
    CHECK(colon.error() == f.conf + ":2: key \"query_domain\" has no value");
}

TEST_CASE("sqlite config: numbers") {
    Fixture f;
    std::string q = "query_alias SELECT v FROM t WHERE k=?\n";
    Table busy(f.conf, f.head() + q + "busy_timeout 2s\n");
    CHECK(busy.status() == POSTERN_PERMFAIL);
    CHECK(busy.error() == f.conf + ":3: busy_timeout: expected milliseconds from 0 to 60000, not \"2s\"");

    Table too_long(f.conf, f.head() + q + "busy_timeout 60001\n");
    CHECK(too_long.error() == f.conf + ":3: busy_timeout: expected milliseconds from 0 to 60000, not \"60001\"");

    Table expire(f.conf, f.head() + q + "fetch_source_expire -1\n");
    CHECK(expire.error() == f.conf + ":3: fetch_source_expire: expected seconds from 0 to 2147483647, not \"-1\"");

    Table refresh(f.conf, f.head() + q + "fetch_source_refresh 10x\n");
    CHECK(refresh.error() == f.conf + ":3: fetch_source_refresh: expected a count from 0 to 2147483647, not \"10x\"");

    Table good(f.conf, f.head() + q + "busy_timeout 0\nfetch_source_expire 0\nfetch_source_refresh 5\n");
    CHECK(good.status() == POSTERN_OK);
}

TEST_CASE("sqlite config: a NUL byte, a missing file, no file given") {
    Fixture f;
    Table nul(f.conf, f.head() + std::string("query_alias SELECT\0 v FROM t WHERE k=?\n", 39));
    CHECK(nul.status() == POSTERN_PERMFAIL);
    CHECK(nul.error() == f.conf + ":2: NUL byte in line");

    std::string missing = f.dir / "missing.conf";
    void* handle = nullptr;
    uint32_t flags = 0;
    char err[256] = "";
    CHECK(plugin()->open(missing.c_str(), &handle, &flags, err, sizeof err) == POSTERN_PERMFAIL);
    CHECK(std::string(err) == missing + ": No such file or directory");
    CHECK(handle == nullptr);

    CHECK(plugin()->open("", &handle, &flags, err, sizeof err) == POSTERN_PERMFAIL);
    CHECK(std::string(err) == "table-sqlite: no config file given (sqlite:/path/to/sqlite.conf)");
}

TEST_CASE("sqlite config: statements are checked at open") {
    Fixture f;
    auto open = [&](const std::string& line) {
        Table t(f.conf, f.head() + line + "\n");
        CHECK(t.status() == POSTERN_PERMFAIL);
        return t.error();
    };
    std::string at = f.conf + ":2: ";
    CHECK(open("query_alias SELECT v FROM nosuch WHERE k=?") == at + "query_alias: no such table: nosuch");
    CHECK(open("query_alias SELEC v FROM t WHERE k=?") == at + "query_alias: near \"SELEC\": syntax error");
    CHECK(open("query_userinfo SELECT n, n FROM t WHERE k=?") ==
          at + "query_userinfo: expected 3 columns (uid, gid, home), the query returns 2");
    CHECK(open("query_credentials SELECT v FROM t WHERE k=?") ==
          at + "query_credentials: expected 2 columns (user, password), the query returns 1");
    CHECK(open("query_domain SELECT k, v FROM t WHERE k=?") ==
          at + "query_domain: expected 1 column (domain), the query returns 2");
    CHECK(open("query_alias SELECT v FROM t WHERE k=? OR v=?") ==
          at + "query_alias: expected one parameter (? or ?1) for the key, the query has 2");
    CHECK(open("query_alias SELECT v FROM t") ==
          at + "query_alias: expected one parameter (? or ?1) for the key, the query has 0");
    CHECK(open("query_alias SELECT v FROM t WHERE k=?; DELETE FROM t") ==
          at + "query_alias: one SQL statement expected, found more");
    CHECK(open("query_alias DELETE FROM t WHERE k=? RETURNING v") ==
          at + "query_alias: the statement would write to the database");
    CHECK(open("query_alias -- only a comment") == at + "query_alias: no SQL statement");
    CHECK(open("fetch_source SELECT v FROM t WHERE k=?") ==
          at + "fetch_source: expected no parameter, the query has 1");

    // The same parameter twice is one parameter; a trailing comment is fine.
    Table same(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=?1 OR v=?1; -- either\n");
    CHECK(same.status() == POSTERN_OK);
    CHECK(same.lookup(POSTERN_SERVICE_ALIAS, "value") == found("value"));
    Table named(f.conf, f.head() + "query_alias SELECT v FROM t WHERE k=:key\n");
    CHECK(named.status() == POSTERN_OK);
    CHECK(named.lookup(POSTERN_SERVICE_ALIAS, "key") == found("value"));
}
