// The last of OpenSMTPD's directives and options (issue 16): `match tls`,
// `match from mail-from`, `mta max-deferred`, every `mta limit` key, `admd`
// and `scheduler limit`. What acts sets the model; what postern reads but
// does not act on is accepted with a warning saying what it does instead;
// a mistake is refused at its column. Each text exact, as a user sees it.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

namespace {

using Lines = std::vector<std::string>;

Config ok(const std::string& text) {
    auto r = parse(text);
    INFO((r.errors.empty() ? "" : format(r.errors.front())));
    REQUIRE(r.config);
    return *r.config;
}

Lines warnings_of(const std::string& text) {
    auto r = parse(text);
    INFO((r.errors.empty() ? "" : format(r.errors.front())));
    REQUIRE(r.config);
    return formatted(r.warnings);
}

const std::string kPrelude = "action d mbox\n";

}  // namespace

TEST_CASE("compat: match tls and !tls") {
    Config c = ok(kPrelude + "match from any for local tls action d\nmatch !tls for any action d\n");
    REQUIRE(c.rules.size() == 2);
    REQUIRE(c.rules[0].criteria.size() == 3);
    CHECK(c.rules[0].criteria[2].kind == Criterion::Kind::Tls);
    CHECK_FALSE(c.rules[0].criteria[2].negated);
    CHECK(c.rules[0].criteria[2].where == Location{"test.conf", 2, 26});
    CHECK(c.rules[1].criteria[0].kind == Criterion::Kind::Tls);
    CHECK(c.rules[1].criteria[0].negated);
    CHECK(errors_of(kPrelude + "match tls tls action d\n") ==
          Lines{"test.conf:2:11: 'tls' may appear only once in a match rule"});
    CHECK(errors_of(kPrelude + "match tls yes action d\n") ==
          Lines{"test.conf:2:11: expected a match option (from, for, auth, helo, mail-from, rcpt-to, tag, tls), "
                "'action NAME' or 'reject', found 'yes'"});
}

TEST_CASE("compat: match from mail-from [regex] ADDR|<t>") {
    Config c = ok("table s { a@b.test }\n" + kPrelude +
                  "match from mail-from <s> for any action d\n"
                  "match from mail-from regex \"^x\" action d\n"
                  "match !from mail-from \"@example.org\" for local action d\n");
    REQUIRE(c.rules.size() == 3);
    const Criterion& a = c.rules[0].criteria[0];
    CHECK(a.kind == Criterion::Kind::FromMailFrom);
    CHECK(a.table == "s");
    const Criterion& b = c.rules[1].criteria[0];
    CHECK(b.kind == Criterion::Kind::FromMailFrom);
    CHECK(b.regex);
    CHECK(b.value == "^x");
    CHECK(c.rules[1].criteria.size() == 2);  // `for local` implied, no `from local`
    CHECK(c.rules[2].criteria[0].negated);
    CHECK(c.rules[2].criteria[0].value == "@example.org");
    CHECK(errors_of(kPrelude + "match from mail-from for any action d\n") ==
          Lines{"test.conf:2:22: expected a value, <table> or { ... } after 'mail-from', found 'for'"});
    CHECK(errors_of(kPrelude + "match from sender a@b action d\n") ==
          Lines{"test.conf:2:12: expected any, local, socket, src, rdns, auth or mail-from after 'from', found "
                "'sender'"});
    CHECK(errors_of(kPrelude + "match from mail-from a@b from any action d\n") ==
          Lines{"test.conf:2:26: 'from' may appear only once in a match rule"});
}

TEST_CASE("compat: mta limit keys postern acts on") {
    Config c = ok("mta limit session-mail-max 3 session-keepalive 20\n"
                  "mta limit max-conn-per-domain 4 max-conn-per-relay 6\n"
                  "mta limit for domain Example.ORG max-conn-per-domain 2\n"
                  "mta limit for domain slow.test inet4 max-conn-per-domain 1\n" +
                  kRule);
    CHECK(c.mta_session_mail_max == 3);
    CHECK(c.mta_session_keepalive == 20);
    CHECK(c.mta_max_conn_per_domain == 4);
    CHECK(c.mta_max_conn_per_relay == 6);
    CHECK(c.mta_max_conn_for_domain ==
          std::map<std::string, unsigned, std::less<>>{{"example.org", 2}, {"slow.test", 1}});
    CHECK(c.mta_family == 0);  // not set by a per-domain line
    Config d = ok(kRule);
    CHECK(d.mta_session_mail_max == 1000);
    CHECK(d.mta_session_keepalive == 5);
    CHECK(d.mta_max_conn_for_domain.empty());
    CHECK(ok("mta limit session-keepalive 0\n" + kRule).mta_session_keepalive == 0);
}

TEST_CASE("compat: mta limit keys postern reads and does not act on each give a warning") {
    const std::string per_destination =
        "' has no effect in postern: postern limits connections per smarthost (max-conn-per-relay) and per "
        "recipient domain (max-conn-per-domain)";
    const std::string pacing = "' has no effect in postern: postern does not space out connections; each "
                               "destination's connections at once are bounded by max-conn-per-relay and "
                               "max-conn-per-domain";
    const std::string tasks = "' has no effect in postern: they pace OpenSMTPD's internal task queue; postern hands a "
                              "destination's envelopes to one delivery agent run at a time, 32 at most (see "
                              "scheduler limit max-evp-batch-size)";
    CHECK(warnings_of("mta limit max-conn-per-host 10 max-conn-per-route 5\n"
                      "mta limit max-conn-per-source 100 max-conn-per-connector 20\n" +
                      kRule) == Lines{"test.conf:1:11: 'mta limit max-conn-per-host" + per_destination,
                                      "test.conf:1:32: 'mta limit max-conn-per-route" + per_destination,
                                      "test.conf:2:11: 'mta limit max-conn-per-source" + per_destination,
                                      "test.conf:2:35: 'mta limit max-conn-per-connector" + per_destination});
    Lines pacing_lines;
    std::string text;
    int line = 0;
    for (const char* key : {"conn-delay-host", "conn-delay-route", "conn-delay-source", "conn-delay-connector",
                            "conn-delay-relay", "conn-delay-domain", "reconn-delay-route"}) {
        text += std::string("mta limit ") + key + " 0\n";
        pacing_lines.push_back("test.conf:" + std::to_string(++line) + ":11: 'mta limit " + key + pacing);
    }
    CHECK(warnings_of(text + kRule) == pacing_lines);
    CHECK(warnings_of("mta limit task-hiwat 50 task-lowat 30 task-release 10\n" + kRule) ==
          Lines{"test.conf:1:11: 'mta limit task-hiwat" + tasks, "test.conf:1:25: 'mta limit task-lowat" + tasks,
                "test.conf:1:39: 'mta limit task-release" + tasks});
    CHECK(warnings_of("mta limit session-transaction-delay 1\nmta limit max-failures-per-session 25\n" + kRule) ==
          Lines{"test.conf:1:11: 'mta limit session-transaction-delay' has no effect in postern: postern starts the "
                "next transaction on a connection at once",
                "test.conf:2:11: 'mta limit max-failures-per-session' has no effect in postern: postern keeps a "
                "connection across refused transactions (with RSET) until session-mail-max, a 421 or an error"});
    CHECK(warnings_of("mta limit for domain example.org session-mail-max 5 inet6 conn-delay-domain 1\n" + kRule) ==
          Lines{"test.conf:1:34: 'mta limit for domain ... session-mail-max' has no effect in postern: only "
                "max-conn-per-domain is set per domain; write 'mta limit session-mail-max N' to set it for every "
                "destination",
                "test.conf:1:53: 'mta limit for domain ... inet6' has no effect in postern: the address family is "
                "chosen for every destination ('mta limit inet6')",
                "test.conf:1:59: 'mta limit for domain example.org conn-delay-domain' has no effect in postern: "
                "postern does not space out connections; each destination's connections at once are bounded by "
                "max-conn-per-relay and max-conn-per-domain"});
    // Read, not acted on: the model is the one without the line.
    Config inert = ok("mta limit max-conn-per-host 1 task-hiwat 3\nmta max-deferred 2\n" + kRule);
    Config plain = ok(kRule);
    CHECK(inert.mta_max_conn_per_domain == plain.mta_max_conn_per_domain);
    CHECK(inert.mta_max_conn_per_relay == plain.mta_max_conn_per_relay);
    CHECK(inert.mta_session_mail_max == plain.mta_session_mail_max);
    CHECK(inert.mta_max_conn_for_domain == plain.mta_max_conn_for_domain);
}

TEST_CASE("compat: mta max-deferred is read with a warning") {
    CHECK(warnings_of("mta max-deferred 100\n" + kRule) ==
          Lines{"test.conf:1:5: 'mta max-deferred' has no effect in postern: OpenSMTPD caps the envelopes it holds "
                "in memory for a host that fails temporarily; postern keeps deferred envelopes in the queue only, "
                "each retried on its own schedule"});
    CHECK(errors_of("mta max-deferred\n" + kRule) ==
          Lines{"test.conf:1:17: expected a number after 'mta max-deferred', found end of line"});
    CHECK(errors_of("mta max-deferred 0\n" + kRule) ==
          Lines{"test.conf:1:18: 'mta max-deferred' 0 is out of range (1-1000000)"});
}

TEST_CASE("compat: mta limit mistakes are refused at their column") {
    const std::string what = "inet4, inet6 or a limit (max-conn-per-domain, max-conn-per-relay, session-mail-max, "
                             "session-keepalive, ...) after 'mta limit'";
    CHECK(errors_of("mta limit\n" + kRule) == Lines{"test.conf:1:10: expected " + what + ", found end of line"});
    CHECK(errors_of("mta limit max-conn-per-mx 3\n" + kRule) ==
          Lines{"test.conf:1:11: unknown 'mta limit' key 'max-conn-per-mx'; expected " + what});
    CHECK(errors_of("mta limit session-mail-max 0\n" + kRule) ==
          Lines{"test.conf:1:28: 'session-mail-max' 0 is out of range (1-1000000)"});
    CHECK(errors_of("mta limit session-keepalive 301\n" + kRule) ==
          Lines{"test.conf:1:29: 'session-keepalive' 301 is out of range (0-300)"});
    CHECK(errors_of("mta limit conn-delay-host soon\n" + kRule) ==
          Lines{"test.conf:1:27: expected a number after 'conn-delay-host', found 'soon'"});
    CHECK(errors_of("mta limit for max-conn-per-domain 3\n" + kRule) ==
          Lines{"test.conf:1:15: expected 'domain' after 'mta limit for', found 'max-conn-per-domain'"});
    CHECK(errors_of("mta limit for domain max-conn-per-domain 3\n" + kRule) ==
          Lines{"test.conf:1:42: expected inet4, inet6 or a limit (max-conn-per-domain, max-conn-per-relay, "
                "session-mail-max, session-keepalive, ...) after 'mta limit', found '3'"});
    CHECK(errors_of("mta frob\n" + kRule) ==
          Lines{"test.conf:1:5: unknown 'mta' option 'frob'; expected resolver, limit or max-deferred after 'mta'"});
}

TEST_CASE("compat: admd") {
    CHECK(ok("admd \"mx.example.org\"\n" + kRule).admd == "mx.example.org");
    CHECK(ok("admd example.org\n" + kRule).admd == "example.org");
    CHECK(ok(kRule).admd.empty());
    CHECK(errors_of("admd\n" + kRule) ==
          Lines{"test.conf:1:5: expected an authserv-id after 'admd', as in admd \"mx.example.org\", found end of "
                "line"});
    CHECK(errors_of("admd \"mx example\"\n" + kRule) ==
          Lines{"test.conf:1:6: invalid authserv-id \"mx example\": expected one word of printable characters, "
                "without ';'"});
    CHECK(errors_of("admd \"a;b\"\n" + kRule) ==
          Lines{"test.conf:1:6: invalid authserv-id \"a;b\": expected one word of printable characters, without ';'"});
    CHECK(errors_of("admd a\nadmd b\n" + kRule) == Lines{"test.conf:2:1: 'admd' is given twice"});
    CHECK(errors_of("admd a b\n" + kRule) ==
          Lines{"test.conf:1:8: expected end of line after the authserv-id, found 'b'"});
}

TEST_CASE("compat: scheduler limit") {
    CHECK(ok("scheduler limit max-evp-batch-size 8\n" + kRule).scheduler_max_evp_batch == 8);
    CHECK(ok(kRule).scheduler_max_evp_batch == 0);
    CHECK(warnings_of("scheduler limit max-inflight 5000 max-msg-batch-size 1024 max-schedule 10\n" + kRule) ==
          Lines{"test.conf:1:17: 'scheduler limit max-inflight' has no effect in postern: postern bounds deliveries "
                "under way by agent runs (32 local and 1000 relay runs at once, 'mta limit max-conn-per-relay' and "
                "'max-conn-per-domain' per destination), not by envelopes",
                "test.conf:1:35: 'scheduler limit max-msg-batch-size' has no effect in postern: postern's scheduler "
                "works on envelopes, not on batches of messages",
                "test.conf:1:59: 'scheduler limit max-schedule' has no effect in postern: postern's scheduler starts "
                "every delivery that is due and under its limits at once"});
    CHECK(errors_of("scheduler max-inflight 3\n" + kRule) ==
          Lines{"test.conf:1:11: expected 'limit' after 'scheduler', found 'max-inflight'"});
    CHECK(errors_of("scheduler limit\n" + kRule) ==
          Lines{"test.conf:1:16: expected max-inflight, max-evp-batch-size, max-msg-batch-size or max-schedule after "
                "'scheduler limit', found end of line"});
    CHECK(errors_of("scheduler limit max-evp-batch-size 0\n" + kRule) ==
          Lines{"test.conf:1:36: 'max-evp-batch-size' 0 is out of range (1-1000000)"});
    CHECK(errors_of("scheduler limit max-queue 3\n" + kRule) ==
          Lines{"test.conf:1:17: expected max-inflight, max-evp-batch-size, max-msg-batch-size or max-schedule, "
                "found 'max-queue'"});
}

TEST_CASE("compat: the pre-6.4 spellings are read as the current lines") {
    auto r = parse("limit scheduler max-inflight 3 max-evp-batch-size 4\nmax-mta-deferred 10\n" + kRule);
    INFO((r.errors.empty() ? "" : format(r.errors.front())));
    REQUIRE(r.config);
    CHECK(r.config->scheduler_max_evp_batch == 4);
    const Lines w = formatted(r.warnings);
    REQUIRE(w.size() == 4);
    CHECK(w[1].starts_with("test.conf:1:17: 'scheduler limit max-inflight' has no effect in postern"));
    CHECK(w[3].starts_with("test.conf:2:1: 'mta max-deferred' has no effect in postern"));
}

TEST_CASE("compat: mda limit is read with a warning per key") {
    CHECK(warnings_of("mda limit max-session 50 max-session-per-user 7\nmda limit task-hiwat 50\n" + kRule) ==
          Lines{"test.conf:1:11: 'mda limit max-session' has no effect in postern: postern runs at most 32 local "
                "delivery agents at once, each delivering up to 32 messages",
                "test.conf:1:26: 'mda limit max-session-per-user' has no effect in postern: postern runs at most 4 "
                "local delivery agents at once for one action and recipient account",
                "test.conf:2:11: 'mda limit task-hiwat' has no effect in postern: they pace OpenSMTPD's internal task "
                "queue, which postern does not have"});
    CHECK(errors_of("mda limit\n" + kRule) ==
          Lines{"test.conf:1:10: expected max-session, max-session-per-user, task-hiwat, task-lowat or task-release "
                "after 'mda limit', found end of line"});
    CHECK(errors_of("mda limit max-session 0\n" + kRule) ==
          Lines{"test.conf:1:23: 'max-session' 0 is out of range (1-1000000)"});
}

TEST_CASE("compat: relay filter (smtp-out report events) is read with a warning") {
    const std::string procs = "proc p \"filter-p\"\nfilter fp proc p\n";
    const std::string w = "' on a relay action has no effect in postern: OpenSMTPD sends the report events of "
                          "outgoing sessions to it; postern logs each relay attempt instead ('mta delivery' lines with "
                          "the host, TLS and reply)";
    auto r = parse(procs + "action r relay host smtp://mx.test filter fp\nmatch for any action r\n");
    REQUIRE(r.config);
    CHECK(formatted(r.warnings) == Lines{"test.conf:3:36: 'filter" + w});
    CHECK(r.config->filters.size() == 1);  // no chain made for it
    r = parse(procs + "action r relay filter { fp } ttl 1d\nmatch for any action r\n");
    REQUIRE(r.config);
    CHECK(formatted(r.warnings) == Lines{"test.conf:3:16: 'filter" + w});
    CHECK(r.config->filters.size() == 1);
    CHECK(errors_of(procs + "action r relay filter\nmatch for any action r\n") ==
          Lines{"test.conf:3:22: expected a filter name or { ... } after 'filter', found end of line"});
}
