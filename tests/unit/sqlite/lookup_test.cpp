// tests/unit/sqlite/lookup_test.cpp — every service's query against a real
// SQLite file, the value formats of table.h, and what is refused.
#include <atomic>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace sqlt;

namespace {

// The schema of table-sqlite(5)'s example, plus what the other services need.
struct Mail {
    TempDir dir;
    std::string db = dir / "mail.sqlite";
    std::string conf = dir / "sqlite.conf";
    Mail() {
        Db w(db);
        w.exec(R"(
            CREATE TABLE virtuals (email TEXT NOT NULL, destination TEXT);
            CREATE TABLE credentials (email TEXT NOT NULL, password TEXT);
            CREATE TABLE domains (domain TEXT NOT NULL);
            CREATE TABLE users (name TEXT, uid, gid, home TEXT);
            CREATE TABLE nets (addr TEXT);
            CREATE TABLE senders (login TEXT, address TEXT);
            CREATE TABLE names (addr TEXT, host TEXT);
            CREATE TABLE relays (domain TEXT, url TEXT);
            INSERT INTO virtuals VALUES ('abuse@example.com', 'bob@example.com'),
                                        ('team@example.com', 'bob@example.com'),
                                        ('team@example.com', 'alice@example.net'),
                                        ('team@example.com', NULL),
                                        ('team@example.com', '/var/mail/team'),
                                        ('empty@example.com', NULL);
            INSERT INTO credentials VALUES ('bob@example.com', '$6$salt$hash'),
                                           ('nopass@example.com', NULL);
            INSERT INTO domains VALUES ('example.com'), ('example.net');
            INSERT INTO users VALUES ('vmail', 2000, 2000, '/var/vmail'),
                                     ('text', '1001', '100', '/home/text'),
                                     ('neg', -1, 0, '/x'), ('word', 'abc', 0, '/x'), ('nohome', 1, 1, NULL);
            INSERT INTO nets VALUES ('192.0.2.1'), ('[2001:db8::1]');
            INSERT INTO senders VALUES ('bob', 'bob@example.com'), ('bob', '@example.net');
            INSERT INTO names VALUES ('192.0.2.1', 'mx.example.com'), ('192.0.2.2', NULL);
            INSERT INTO relays VALUES ('example.org', 'smtp+tls://relay.example.org:587');
        )");
    }
    std::string config() const {
        return "dbpath " + db +
               "\n"
               "query_alias SELECT destination FROM virtuals WHERE email=? ORDER BY rowid\n"
               "query_credentials SELECT email, password FROM credentials WHERE email=?\n"
               "query_domain SELECT domain FROM domains WHERE domain=?\n"
               "query_userinfo SELECT uid, gid, home FROM users WHERE name=?\n"
               "query_netaddr SELECT addr FROM nets WHERE addr=?\n"
               "query_mailaddr SELECT email FROM virtuals WHERE email=?\n"
               "query_mailaddrmap SELECT address FROM senders WHERE login=? ORDER BY rowid\n"
               "query_addrname SELECT host FROM names WHERE addr=?\n"
               "query_relayhost SELECT url FROM relays WHERE domain=?\n";
    }
};

}  // namespace

TEST_CASE("sqlite lookup: alias rows joined with a comma, NULLs skipped") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "abuse@example.com") == found("bob@example.com"));
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "team@example.com") ==
          found("bob@example.com, alice@example.net, /var/mail/team"));
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "nobody@example.com") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_ALIAS, "empty@example.com") ==
          tempfail(m.db + ": query_alias for \"empty@example.com\": only NULL or empty values"));
}

TEST_CASE("sqlite lookup: credentials are user:password") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_CREDENTIALS, "bob@example.com") == found("bob@example.com:$6$salt$hash"));
    CHECK(t.lookup(POSTERN_SERVICE_CREDENTIALS, "eve@example.com") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_CREDENTIALS, "nopass@example.com") ==
          tempfail(m.db + ": query_credentials for \"nopass@example.com\": NULL user or password"));
}

TEST_CASE("sqlite lookup: userinfo is uid:gid:home with numbers") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "vmail") == found("2000:2000:/var/vmail"));
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "text") == found("1001:100:/home/text"));
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "root") == notfound());
    std::string bad = m.db + ": query_userinfo for ";
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "neg") == tempfail(bad + "\"neg\": uid and gid must be numbers"));
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "word") == tempfail(bad + "\"word\": uid and gid must be numbers"));
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "nohome") == tempfail(bad + "\"nohome\": NULL or empty home"));
}

TEST_CASE("sqlite lookup: match services are found by a row") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == found("example.com"));
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "sub.example.com") == notfound());  // SQL decides, no wildcard of ours
    CHECK(t.lookup(POSTERN_SERVICE_NETADDR, "192.0.2.1") == found("192.0.2.1"));
    CHECK(t.lookup(POSTERN_SERVICE_NETADDR, "[2001:db8::1]") == found("[2001:db8::1]"));
    CHECK(t.lookup(POSTERN_SERVICE_NETADDR, "192.0.2.9") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_MAILADDR, "team@example.com") == found("team@example.com"));
    CHECK(t.lookup(POSTERN_SERVICE_MAILADDR, "eve@example.com") == notfound());
}

TEST_CASE("sqlite lookup: mailaddrmap, addrname, relayhost") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_MAILADDRMAP, "bob") == found("bob@example.com, @example.net"));
    CHECK(t.lookup(POSTERN_SERVICE_MAILADDRMAP, "alice") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_ADDRNAME, "192.0.2.1") == found("mx.example.com"));
    CHECK(t.lookup(POSTERN_SERVICE_ADDRNAME, "192.0.2.2") ==
          tempfail(m.db + ": query_addrname for \"192.0.2.2\": NULL or empty value"));
    CHECK(t.lookup(POSTERN_SERVICE_RELAYHOST, "example.org") == found("smtp+tls://relay.example.org:587"));
}

TEST_CASE("sqlite lookup: the key is bound, never spliced into the SQL") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "x' OR '1'='1") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com'; DROP TABLE domains; --") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "") == notfound());
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.com") == found("example.com"));
}

TEST_CASE("sqlite lookup: services, and those without a query") {
    Mail m;
    Table t(m.conf, "dbpath " + m.db + "\nquery_domain SELECT domain FROM domains WHERE domain=?\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.services() == POSTERN_SERVICE_DOMAIN);
    CHECK(t.lookup(POSTERN_SERVICE_USERINFO, "vmail") == tempfail("no query_userinfo in " + m.conf));
    CHECK(t.lookup(POSTERN_SERVICE_STRING, "x") ==
          tempfail(m.conf + ": table-sqlite has no query for the string service"));
    CHECK(t.plain_lookup("example.com") == tempfail(m.conf + ": sqlite tables answer lookups for a service only"));
    CHECK(t.fetch(POSTERN_SERVICE_SOURCE) == tempfail("no fetch_source in " + m.conf));

    Table all(m.conf, m.config() + "fetch_source SELECT addr FROM nets\n");
    REQUIRE(all.status() == POSTERN_OK);
    CHECK(all.services() ==
          (POSTERN_SERVICE_ALIAS | POSTERN_SERVICE_CREDENTIALS | POSTERN_SERVICE_DOMAIN | POSTERN_SERVICE_USERINFO |
           POSTERN_SERVICE_NETADDR | POSTERN_SERVICE_MAILADDR | POSTERN_SERVICE_MAILADDRMAP | POSTERN_SERVICE_ADDRNAME |
           POSTERN_SERVICE_RELAYHOST | POSTERN_SERVICE_SOURCE));
}

TEST_CASE("sqlite lookup: rows added by another connection count at once") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == notfound());
    Db(m.db).exec("INSERT INTO domains VALUES ('example.org')");
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == found("example.org"));
    Db(m.db).exec("DELETE FROM domains WHERE domain = 'example.org'");
    CHECK(t.lookup(POSTERN_SERVICE_DOMAIN, "example.org") == notfound());
}

TEST_CASE("sqlite lookup: many threads on one handle") {
    Mail m;
    Table t(m.conf, m.config());
    REQUIRE(t.status() == POSTERN_OK);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            for (int n = 0; n < 300; ++n) {
                bool ok;
                switch ((i + n) % 3) {
                case 0:
                    ok = t.lookup(POSTERN_SERVICE_ALIAS, "team@example.com").value ==
                         "bob@example.com, alice@example.net, /var/mail/team";
                    break;
                case 1: ok = t.lookup(POSTERN_SERVICE_USERINFO, "vmail").value == "2000:2000:/var/vmail"; break;
                default: ok = t.lookup(POSTERN_SERVICE_DOMAIN, "example.org").rc == POSTERN_NOTFOUND; break;
                }
                if (!ok) ++wrong;
            }
        });
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
}
