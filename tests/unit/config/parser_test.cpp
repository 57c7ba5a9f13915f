// Config parser: every directive of this issue read into the model, field by
// field. Broken configs are in errors_test.cpp; lexing in lexer_test.cpp.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;
using Kind = Criterion::Kind;

namespace {

Config ok(const std::string& text, const Macros& overrides = {}) {
    auto r = parse(text, overrides);
    INFO("errors: " << (r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return *r.config;
}

}  // namespace

TEST_CASE("tables: file, quoted path and any backend") {
    Config c = ok("table a file:/etc/mail/aliases\n"
                  "table b \"/etc/mail/b\"\n"
                  "table c db:/etc/mail/c.db\n"
                  "table d sqlite:/etc/mail/sqlite.conf\n"
                  "table e static:/etc/e\n"
                  "table f '/etc/f'\n" +
                  kRule);
    REQUIRE(c.tables.size() == 6);
    CHECK(c.tables[0].name == "a");
    CHECK(c.tables[0].backend == "file");
    CHECK(c.tables[0].source == "/etc/mail/aliases");
    CHECK(c.tables[0].where.line == 1);
    CHECK(c.tables[0].where.column == 7);
    CHECK(c.tables[1].backend == "file");
    CHECK(c.tables[1].source == "/etc/mail/b");
    CHECK(c.tables[2].backend == "db");
    CHECK(c.tables[2].source == "/etc/mail/c.db");
    CHECK(c.tables[3].backend == "sqlite");
    CHECK(c.tables[3].source == "/etc/mail/sqlite.conf");
    CHECK(c.tables[4].backend == "file");  // static is file's other name
    CHECK(c.tables[5].source == "/etc/f");
    CHECK(c.find_table("c") == &c.tables[2]);
    CHECK(c.find_table("zzz") == nullptr);
}

TEST_CASE("tables: inline lists and maps, with = and =>, over several lines") {
    Config c = ok("table l { a, b, 192.0.2.1 }\n"
                  "table m { root = alice, \"postmaster\" => bob }\n"
                  "table ml {\n"
                  "   one = 1,\n"
                  "   two => 2   # a comment inside\n"
                  "}\n"
                  "table bare { x y z }\n" +
                  kRule);
    REQUIRE(c.tables.size() == 4);
    const TableDecl& l = c.tables[0];
    CHECK(l.backend == "inline");
    CHECK_FALSE(l.is_map);
    REQUIRE(l.entries.size() == 3);
    CHECK(l.entries[0] == std::make_pair(std::string("a"), std::string()));
    CHECK(l.entries[2].first == "192.0.2.1");
    const TableDecl& m = c.tables[1];
    CHECK(m.is_map);
    REQUIRE(m.entries.size() == 2);
    CHECK(m.entries[0] == std::make_pair(std::string("root"), std::string("alice")));
    CHECK(m.entries[1] == std::make_pair(std::string("postmaster"), std::string("bob")));
    const TableDecl& ml = c.tables[2];
    CHECK(ml.is_map);
    REQUIRE(ml.entries.size() == 2);
    CHECK(ml.entries[1] == std::make_pair(std::string("two"), std::string("2")));
    CHECK(c.tables[3].entries.size() == 3);
}

TEST_CASE("listen: addresses, ports, service names and options") {
    Config c = ok("listen on 192.0.2.1 port 2525 inet4 hostname mx.example.org tag IN mask-src\n"
                  "listen on localhost port submission\n"
                  "listen on lo port smtps inet6\n"
                  "listen on eth0 port smtp\n"
                  "listen on socket tag LOCAL mask-src\n"
                  "listen on \"::1\"\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 6);
    const Listener& a = c.listeners[0];
    CHECK_FALSE(a.socket);
    CHECK(a.on == "192.0.2.1");
    CHECK(a.port == 2525);
    CHECK(a.family == Listener::Family::Inet4);
    CHECK(a.hostname == "mx.example.org");
    CHECK(a.tag == "IN");
    CHECK(a.mask_src);
    CHECK(a.where.line == 1);
    CHECK(a.where.column == 1);
    CHECK(c.listeners[1].on == "localhost");
    CHECK(c.listeners[1].port == 587);
    CHECK(c.listeners[1].family == Listener::Family::Any);
    CHECK(c.listeners[2].on == "lo");
    CHECK(c.listeners[2].port == 465);
    CHECK(c.listeners[2].family == Listener::Family::Inet6);
    CHECK(c.listeners[3].port == 25);
    CHECK(c.listeners[4].socket);
    CHECK(c.listeners[4].tag == "LOCAL");
    CHECK(c.listeners[4].mask_src);
    CHECK(c.listeners[5].on == "::1");
    CHECK(c.listeners[5].port == 25);
}

TEST_CASE("listen: a socket listener is implied when none is declared") {
    Config c = ok("listen on 127.0.0.1\n" + kRule);
    REQUIRE(c.listeners.size() == 2);
    CHECK(c.listeners[1].socket);
    CHECK(c.listeners[1].where.line == 0);  // implied, not written
    CHECK(ok(kRule).listeners.size() == 1);
    CHECK(ok("listen on socket\n" + kRule).listeners.size() == 1);
}

TEST_CASE("listen: mask-source is read with a warning") {
    auto r = parse("listen on lo mask-source\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->listeners[0].mask_src);
    CHECK(formatted(r.warnings) ==
          std::vector<std::string>{"test.conf:1:14: 'mask-source' is the pre-6.4 spelling of 'mask-src'"});
}

TEST_CASE("action: mbox and maildir with every option") {
    Config c = ok("table al { root = alice }\n"
                  "table vu { a@example.org = alice }\n"
                  "table ub { alice = 1000:1000:/home/alice }\n"
                  "action \"mb\" mbox alias <al> userbase <ub> ttl 4d\n"
                  "action md1 maildir\n"
                  "action md2 maildir \"~/Maildir/%{rcpt.user}\" junk virtual <vu> user vmail ttl 30m\n"
                  "action md3 maildir junk\n"
                  "action md4 maildir /var/vmail userbase <ub>\n"
                  "match for local action md1\n");
    REQUIRE(c.actions.size() == 5);
    const Action& mb = c.actions[0];
    CHECK(mb.name == "mb");
    CHECK(mb.method == "mbox");
    CHECK(mb.alias_table == "al");
    CHECK(mb.userbase_table == "ub");
    CHECK(mb.virtual_table.empty());
    REQUIRE(mb.ttl);
    CHECK(*mb.ttl == std::chrono::seconds(4 * 86400));
    CHECK(mb.where.line == 4);
    const Action& md1 = c.actions[1];
    CHECK(md1.method == "maildir");
    CHECK(md1.path.empty());
    CHECK_FALSE(md1.junk);
    CHECK_FALSE(md1.ttl);
    const Action& md2 = c.actions[2];
    CHECK(md2.path == "~/Maildir/%{rcpt.user}");
    CHECK(md2.junk);
    CHECK(md2.virtual_table == "vu");
    CHECK(md2.user == "vmail");
    CHECK(*md2.ttl == std::chrono::seconds(1800));
    CHECK(c.actions[3].junk);
    CHECK(c.actions[3].path.empty());
    CHECK(c.actions[4].path == "/var/vmail");
    CHECK(c.find_action("md2") == &c.actions[2]);
    CHECK(c.find_action("nope") == nullptr);
}

TEST_CASE("action: mda with a command and every option") {
    Config c = ok("table al { root = alice }\n"
                  "table vu { a@example.org = alice }\n"
                  "table ub { alice = 1000:1000:/home/alice }\n"
                  "action \"p\" mda \"/usr/bin/procmail -f -\" alias <al> userbase <ub> user vmail ttl 2h\n"
                  "action v mda '/usr/lib/dovecot/deliver -a \"$RECIPIENT\" | logger' virtual <vu>\n"
                  "action bare mda procmail\n"
                  "match for local action p\n");
    REQUIRE(c.actions.size() == 3);
    const Action& p = c.actions[0];
    CHECK(p.name == "p");
    CHECK(p.method == "mda");
    CHECK(p.path == "/usr/bin/procmail -f -");
    CHECK(p.alias_table == "al");
    CHECK(p.userbase_table == "ub");
    CHECK(p.virtual_table.empty());
    CHECK(p.user == "vmail");
    REQUIRE(p.ttl);
    CHECK(*p.ttl == std::chrono::seconds(7200));
    CHECK_FALSE(p.junk);
    CHECK(p.where.line == 4);
    const Action& v = c.actions[1];
    CHECK(v.method == "mda");
    CHECK(v.path == "/usr/lib/dovecot/deliver -a \"$RECIPIENT\" | logger");  // no macro expansion in quotes
    CHECK(v.virtual_table == "vu");
    CHECK(v.alias_table.empty());
    CHECK(v.user.empty());
    CHECK_FALSE(v.ttl);
    CHECK(c.actions[2].path == "procmail");
}

TEST_CASE("match: from and for forms, options, negation, reject") {
    Config c = ok("table nets { 192.0.2.0/24 }\n"
                  "table doms { example.org }\n"
                  "table rcpts { a@example.org }\n"
                  "action d mbox\n"
                  "match from any for domain example.org action d\n"
                  "match from local for any action d\n"
                  "match from socket for local action d\n"
                  "match from src 192.0.2.1 for domain <doms> action d\n"
                  "match from src <nets> for rcpt-to <rcpts> action d\n"
                  "match !from src { 10.0.0.0/8, 172.16.0.0/12 } for domain regex \"^ex.*\" reject\n"
                  "match mail-from \"@spam.example\" for any reject\n"
                  "match tag IN rcpt-to regex <rcpts> from any action d\n"
                  "match ! mail-from <rcpts> ! for domain { a.example, b.example } action d\n");
    REQUIRE(c.rules.size() == 9);

    const Rule& r0 = c.rules[0];
    REQUIRE(r0.criteria.size() == 2);
    CHECK(r0.criteria[0].kind == Kind::FromAny);
    CHECK(r0.criteria[1].kind == Kind::ForDomain);
    CHECK(r0.criteria[1].value == "example.org");
    CHECK(r0.criteria[1].table.empty());
    CHECK(r0.action == "d");
    CHECK_FALSE(r0.reject);
    CHECK(r0.where.line == 5);

    CHECK(c.rules[1].criteria[0].kind == Kind::FromLocal);
    CHECK(c.rules[1].criteria[1].kind == Kind::ForAny);
    CHECK(c.rules[2].criteria[0].kind == Kind::FromSocket);
    CHECK(c.rules[2].criteria[1].kind == Kind::ForLocal);

    const Rule& r3 = c.rules[3];
    CHECK(r3.criteria[0].kind == Kind::FromSrc);
    CHECK(r3.criteria[0].value == "192.0.2.1");
    CHECK(r3.criteria[1].table == "doms");

    const Rule& r4 = c.rules[4];
    CHECK(r4.criteria[0].table == "nets");
    CHECK(r4.criteria[1].kind == Kind::ForRcptTo);
    CHECK(r4.criteria[1].table == "rcpts");

    const Rule& r5 = c.rules[5];
    CHECK(r5.reject);
    CHECK(r5.action.empty());
    CHECK(r5.criteria[0].kind == Kind::FromSrc);
    CHECK(r5.criteria[0].negated);
    CHECK(r5.criteria[0].where.column == 7);  // at the '!'
    CHECK(r5.criteria[0].table == "<anon:10:17>");
    const TableDecl* anon = c.find_table("<anon:10:17>");
    REQUIRE(anon);
    CHECK(anon->backend == "inline");
    REQUIRE(anon->entries.size() == 2);
    CHECK(anon->entries[1].first == "172.16.0.0/12");
    CHECK(r5.criteria[1].kind == Kind::ForDomain);
    CHECK(r5.criteria[1].regex);
    CHECK(r5.criteria[1].value == "^ex.*");
    CHECK_FALSE(r5.criteria[1].negated);

    const Rule& r6 = c.rules[6];
    REQUIRE(r6.criteria.size() == 3);
    CHECK(r6.criteria[0].kind == Kind::MailFrom);
    CHECK(r6.criteria[0].value == "@spam.example");
    CHECK(r6.criteria[1].kind == Kind::ForAny);
    CHECK(r6.criteria[2].kind == Kind::FromLocal);  // implied

    const Rule& r7 = c.rules[7];
    REQUIRE(r7.criteria.size() == 4);
    CHECK(r7.criteria[0].kind == Kind::Tag);
    CHECK(r7.criteria[0].value == "IN");
    CHECK(r7.criteria[1].kind == Kind::RcptTo);
    CHECK(r7.criteria[1].regex);
    CHECK(r7.criteria[1].table == "rcpts");
    CHECK(r7.criteria[2].kind == Kind::FromAny);
    CHECK(r7.criteria[3].kind == Kind::ForLocal);  // implied

    const Rule& r8 = c.rules[8];
    CHECK(r8.criteria[0].kind == Kind::MailFrom);
    CHECK(r8.criteria[0].negated);
    CHECK(r8.criteria[1].kind == Kind::ForDomain);
    CHECK(r8.criteria[1].negated);
    CHECK(r8.criteria[1].table == "<anon:13:40>");
    CHECK(r8.criteria[2].kind == Kind::FromLocal);
}

TEST_CASE("match: implied from local and for local are appended") {
    Config c = ok("action d mbox\nmatch action d\nmatch reject\n");
    REQUIRE(c.rules.size() == 2);
    for (const Rule& r : c.rules) {
        REQUIRE(r.criteria.size() == 2);
        CHECK(r.criteria[0].kind == Kind::FromLocal);
        CHECK(r.criteria[1].kind == Kind::ForLocal);
        CHECK_FALSE(r.criteria[0].negated);
        CHECK(r.criteria[0].where.line == r.where.line);
    }
    CHECK(c.rules[1].reject);
}

TEST_CASE("globals: defaults when nothing is set") {
    Config c = ok(kRule);
    CHECK(c.max_message_size == 35u * 1024 * 1024);
    CHECK(c.max_rcpt == 1000);
    CHECK(c.max_mails == 100);
    CHECK(c.max_sessions == 1000);
    CHECK(c.sub_addr_delim == '+');
    CHECK(c.queue_ttl == std::chrono::seconds(4 * 86400));
    CHECK(c.queue_path.empty());
    CHECK(c.control_socket.empty());
    CHECK(c.pid_file.empty());
    CHECK(c.plugin_path.empty());
    CHECK(c.mbox_path.empty());
    CHECK(c.hostname.empty());
}

TEST_CASE("globals: smtp limits against abuse, their defaults and values") {
    Config d = ok(kRule);
    CHECK(d.max_sessions_per_address == 50);
    CHECK(d.max_conn_rate == 20);
    CHECK(d.max_auth_failures == 10);
    CHECK(d.command_timeout == 300);
    CHECK(d.tls_timeout == 30);
    CHECK(d.min_data_rate == 1024);
    Config c = ok("smtp limit max-sessions-per-address 4 max-conn-rate 5\n"
                  "smtp limit max-auth-failures 6 command-timeout 7 tls-timeout 8 min-data-rate 9\n" +
                  kRule);
    CHECK(c.max_sessions_per_address == 4);
    CHECK(c.max_conn_rate == 5);
    CHECK(c.max_auth_failures == 6);
    CHECK(c.command_timeout == 7);
    CHECK(c.tls_timeout == 8);
    CHECK(c.min_data_rate == 9);
}

TEST_CASE("globals: smtp, queue and postern path extensions") {
    Config c = ok("smtp max-message-size 10M\n"
                  "smtp limit max-mails 5 max-rcpt 7 max-sessions 9\n"
                  "smtp sub-addr-delim -\n"
                  "queue ttl 2h\n"
                  "queue path \"/var/spool/postern\"\n"
                  "control socket \"/run/postern.sock\"\n"
                  "pidfile \"/run/postern.pid\"\n"
                  "plugin path \"/usr/lib/postern\"\n"
                  "mbox path \"/var/mail\"\n"
                  "hostname \"mx.example.org\"\n" +
                  kRule);
    CHECK(c.max_message_size == 10u * 1024 * 1024);
    CHECK(c.max_mails == 5);
    CHECK(c.max_rcpt == 7);
    CHECK(c.max_sessions == 9);
    CHECK(c.sub_addr_delim == '-');
    CHECK(c.queue_ttl == std::chrono::seconds(7200));
    CHECK(c.queue_path == "/var/spool/postern");
    CHECK(c.control_socket == "/run/postern.sock");
    CHECK(c.pid_file == "/run/postern.pid");
    CHECK(c.plugin_path == "/usr/lib/postern");
    CHECK(c.mbox_path == "/var/mail");
    CHECK(c.hostname == "mx.example.org");
}

TEST_CASE("globals: mta resolver and mta limit inet4|inet6") {
    Config c = ok("mta resolver \"127.0.0.1:5353,[::1]:53\"\nmta limit inet6\n"
                  "mta limit max-conn-per-domain 3\nmta limit max-conn-per-relay 40\n" +
                  kRule);
    CHECK(c.mta_resolver == "127.0.0.1:5353,[::1]:53");
    CHECK(c.mta_family == 6);
    CHECK(c.mta_max_conn_per_domain == 3);
    CHECK(c.mta_max_conn_per_relay == 40);
    Config d = ok(kRule);
    CHECK(d.mta_resolver.empty());
    CHECK(d.mta_family == 0);
    CHECK(d.mta_max_conn_per_domain == 10);
    CHECK(d.mta_max_conn_per_relay == 10);
}

TEST_CASE("globals: sizes in bytes and with K, M, G suffixes") {
    CHECK(ok("smtp max-message-size 12345\n" + kRule).max_message_size == 12345);
    CHECK(ok("smtp max-message-size 512k\n" + kRule).max_message_size == 512u * 1024);
    CHECK(ok("smtp max-message-size 35M\n" + kRule).max_message_size == 35u * 1024 * 1024);
    CHECK(ok("smtp max-message-size 1G\n" + kRule).max_message_size == 1024u * 1024 * 1024);
    CHECK(ok("smtp max-message-size 100B\n" + kRule).max_message_size == 100);
    CHECK(ok("queue ttl 45s\n" + kRule).queue_ttl == std::chrono::seconds(45));
    CHECK(ok("queue ttl 3m\n" + kRule).queue_ttl == std::chrono::seconds(180));
    CHECK(ok("smtp limit max-rcpt 1\n" + kRule).max_rcpt == 1);
    CHECK(ok("smtp sub-addr-delim \"_\"\n" + kRule).sub_addr_delim == '_');
}

TEST_CASE("macros: definitions, expansion and -D overrides") {
    Config c = ok("addr = \"192.0.2.7\"\n"
                  "p = 2526\n"
                  "opts = \"port 2527 tag T\"\n"
                  "name = bare_value\n"
                  "listen on $addr port $p\n"
                  "listen on lo $opts\n"
                  "action $name mbox\n"
                  "match for local action bare_value\n");
    REQUIRE(c.listeners.size() == 3);
    CHECK(c.listeners[0].on == "192.0.2.7");
    CHECK(c.listeners[0].port == 2526);
    CHECK(c.listeners[1].port == 2527);
    CHECK(c.listeners[1].tag == "T");
    CHECK(c.actions[0].name == "bare_value");

    Config o = ok("addr = \"192.0.2.7\"\nlisten on $addr\n" + kRule, Macros{{"addr", "198.51.100.1"}});
    CHECK(o.listeners[0].on == "198.51.100.1");
    // A -D macro the file never defines is usable too.
    Config d = ok("listen on lo port $port\n" + kRule, Macros{{"port", "10025"}});
    CHECK(d.listeners[0].port == 10025);
}

TEST_CASE("macros: quoted text is not expanded, values are not expanded twice") {
    Config c = ok("a = x\n"
                  "b = \"$a\"\n"
                  "table t { \"$a\", $a }\n"
                  "listen on lo hostname $b\n" +
                  kRule);
    CHECK(c.tables[0].entries[0].first == "$a");
    CHECK(c.tables[0].entries[1].first == "x");
    CHECK(c.listeners[0].hostname == "$a");
}

TEST_CASE("macros: an expansion glues to the text right after it") {
    Config c = ok("dom = example\nlisten on lo hostname mx.$dom.org\nlisten on lo hostname $dom.org\n" + kRule);
    CHECK(c.listeners[0].hostname == "mx.$dom.org");  // `$` only expands at the start of a word
    CHECK(c.listeners[1].hostname == "example.org");
}

TEST_CASE("lines: continuation and comments") {
    Config c = ok("# a comment line\n"
                  "listen on lo \\\n"
                  "    port 2525 \\\n"
                  "    tag CONT   # trailing comment\n"
                  "   # indented comment\n"
                  "\n"
                  "listen on lo2 # port 1 \\\n"
                  "   port 2\n"
                  "listen on lo3 port 26\r\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 4);
    CHECK(c.listeners[0].port == 2525);
    CHECK(c.listeners[0].tag == "CONT");
    // A comment ending in `\` swallows the next line too, as in OpenSMTPD.
    CHECK(c.listeners[1].on == "lo2");
    CHECK(c.listeners[1].port == 25);
    CHECK(c.listeners[2].port == 26);  // CR LF line ends
}

TEST_CASE("include: relative paths, nested folders, shared macros") {
    auto r = parse_file(source_path("tests/config/include/main.conf"));
    INFO((r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    const Config& c = *r.config;
    REQUIRE(c.tables.size() == 1);
    CHECK(c.tables[0].name == "domains");
    CHECK(c.tables[0].where.file == source_path("tests/config/include/tables.conf"));
    REQUIRE(c.actions.size() == 1);
    CHECK(c.actions[0].path == "~/Mail");
    CHECK(c.actions[0].where.file == source_path("tests/config/include/sub/actions.conf"));
    CHECK(c.actions[0].where.line == 2);
    REQUIRE(c.rules.size() == 1);
    CHECK(c.rules[0].criteria[1].table == "domains");
}

TEST_CASE("a whole modern config using only this issue's features") {
    auto r = parse_file(source_path("tests/config/modern_local.conf"));
    INFO((r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    CHECK(r.warnings.empty());
    const Config& c = *r.config;
    CHECK(c.tables.size() == 4);
    CHECK(c.listeners.size() == 3);
    CHECK(c.actions.size() == 3);
    CHECK(c.rules.size() == 4);
    CHECK(c.rules.back().reject);
}

TEST_CASE("format: file:line:column: message") {
    Diagnostic d{Location{"/etc/postern.conf", 12, 3}, "something is wrong"};
    CHECK(format(d) == "/etc/postern.conf:12:3: something is wrong");
}

TEST_CASE("match: from rdns, bare and with a name, regex, table or inline table") {
    Config c = ok("table ptrs { \"*.partner.test\" }\n"
                  "action d mbox\n"
                  "match from rdns for any action d\n"
                  "match from rdns mail.example.org for any action d\n"
                  "match from rdns regex \"[.]example[.]org$\" action d\n"
                  "match from rdns <ptrs> for any reject\n"
                  "match !from rdns { \"*.dyn.test\", \"*.dsl.test\" } for any reject\n"
                  "match ! from rdns action d\n"
                  "match from rdns \"for\" action d\n");
    REQUIRE(c.rules.size() == 7);
    const Criterion& bare = c.rules[0].criteria[0];
    CHECK(bare.kind == Kind::FromRdns);
    CHECK(bare.value.empty());
    CHECK(bare.table.empty());
    CHECK_FALSE(bare.regex);
    CHECK_FALSE(bare.negated);
    CHECK(c.rules[0].criteria[1].kind == Kind::ForAny);
    CHECK(c.rules[1].criteria[0].value == "mail.example.org");
    CHECK(c.rules[2].criteria[0].regex);
    CHECK(c.rules[2].criteria[0].value == "[.]example[.]org$");
    REQUIRE(c.rules[2].criteria.size() == 2);
    CHECK(c.rules[2].criteria[1].kind == Kind::ForLocal);  // implied
    CHECK(c.rules[3].criteria[0].table == "ptrs");
    CHECK(c.rules[3].reject);
    const Criterion& neg = c.rules[4].criteria[0];
    CHECK(neg.negated);
    CHECK(neg.table == "<anon:7:18>");
    REQUIRE(c.find_table("<anon:7:18>"));
    CHECK(c.find_table("<anon:7:18>")->entries.size() == 2);
    const Criterion& neg_bare = c.rules[5].criteria[0];
    CHECK(neg_bare.kind == Kind::FromRdns);
    CHECK(neg_bare.negated);
    CHECK(neg_bare.value.empty());
    CHECK(neg_bare.table.empty());
    CHECK(c.rules[6].criteria[0].value == "for");  // quoted: a value, not the keyword
}

TEST_CASE("match: helo with a name, regex, table or inline table, and negated") {
    Config c = ok("table helos { mx.example.org }\n"
                  "action d mbox\n"
                  "match from any helo mx.example.org for any action d\n"
                  "match helo regex \"^mx[0-9]+[.]\" from any action d\n"
                  "match from any helo <helos> for any action d\n"
                  "match from any !helo { localhost, \"*.invalid\" } for any reject\n"
                  "match from any helo regex <helos> for any action d\n");
    REQUIRE(c.rules.size() == 5);
    const Criterion& h = c.rules[0].criteria[1];
    CHECK(h.kind == Kind::Helo);
    CHECK(h.value == "mx.example.org");
    CHECK_FALSE(h.negated);
    CHECK(h.where.line == 3);
    CHECK(h.where.column == 16);
    CHECK(c.rules[1].criteria[0].kind == Kind::Helo);
    CHECK(c.rules[1].criteria[0].regex);
    CHECK(c.rules[1].criteria[0].value == "^mx[0-9]+[.]");
    CHECK(c.rules[1].criteria[2].kind == Kind::ForLocal);  // implied
    CHECK(c.rules[2].criteria[1].table == "helos");
    const Criterion& neg = c.rules[3].criteria[1];
    CHECK(neg.kind == Kind::Helo);
    CHECK(neg.negated);
    CHECK(neg.where.column == 16);  // at the '!'
    CHECK(neg.table == "<anon:6:22>");
    CHECK(c.rules[4].criteria[1].regex);
    CHECK(c.rules[4].criteria[1].table == "helos");
}

TEST_CASE("match: for domain wildcards, quoted and bare") {
    Config c = ok("action d mbox\n"
                  "match from any for domain \"*.example.org\" action d\n"
                  "match from any for domain *.example.net action d\n"
                  "match from any for domain { \"*.a.example\", b.example } action d\n");
    REQUIRE(c.rules.size() == 3);
    CHECK(c.rules[0].criteria[1].kind == Kind::ForDomain);
    CHECK(c.rules[0].criteria[1].value == "*.example.org");
    CHECK_FALSE(c.rules[0].criteria[1].regex);
    CHECK(c.rules[1].criteria[1].value == "*.example.net");
    const TableDecl* t = c.find_table(c.rules[2].criteria[1].table);
    REQUIRE(t);
    CHECK(t->entries[0].first == "*.a.example");
}

TEST_CASE("match: mail-from and rcpt-to with regex tables") {
    Config c = ok("table senders { \"^bounce-.*@lists[.]example[.]org$\" }\n"
                  "action d mbox\n"
                  "match from any mail-from regex <senders> for any action d\n"
                  "match from any !rcpt-to regex <senders> for any reject\n"
                  "match from any for rcpt-to regex { \"^postmaster@\" } action d\n");
    REQUIRE(c.rules.size() == 3);
    CHECK(c.rules[0].criteria[1].kind == Kind::MailFrom);
    CHECK(c.rules[0].criteria[1].regex);
    CHECK(c.rules[0].criteria[1].table == "senders");
    CHECK(c.rules[1].criteria[1].kind == Kind::RcptTo);
    CHECK(c.rules[1].criteria[1].negated);
    CHECK(c.rules[1].criteria[1].regex);
    CHECK(c.rules[2].criteria[1].kind == Kind::ForRcptTo);
    CHECK(c.rules[2].criteria[1].regex);
    CHECK(c.rules[2].criteria[1].table == "<anon:5:34>");
}

TEST_CASE("tables: built-in tables are declared where first used, once each") {
    auto r = parse("action d mbox alias <localnames>\n"
                   "match from src <localhost> for domain <anydestination> action d\n"
                   "match from src <anyhost> for domain <localnames> action d\n"
                   "match !from src <localhost> for any reject\n");
    REQUIRE(r.errors.empty());
    CHECK(r.warnings.empty());
    const Config& c = *r.config;
    REQUIRE(c.tables.size() == 4);
    const std::vector<std::pair<std::string, std::string>> expected = {{"localnames", "test.conf:1:22"},
                                                                       {"localhost", "test.conf:2:17"},
                                                                       {"anydestination", "test.conf:2:40"},
                                                                       {"anyhost", "test.conf:3:17"}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO(expected[i].first);
        CHECK(c.tables[i].name == expected[i].first);
        CHECK(c.tables[i].backend == "builtin");
        CHECK(c.tables[i].source.empty());
        CHECK(c.tables[i].entries.empty());
        CHECK(format(Diagnostic{c.tables[i].where, ""}) == expected[i].second + ": ");
    }
    CHECK(c.actions[0].alias_table == "localnames");
    CHECK(c.rules[0].criteria[0].table == "localhost");
    CHECK(c.rules[0].criteria[1].table == "anydestination");
    CHECK(c.rules[2].criteria[0].negated);
    CHECK(is_builtin_table("anyhost"));
    CHECK_FALSE(is_builtin_table("getpwnam"));
    CHECK_FALSE(is_builtin_table("<localhost>"));
}

TEST_CASE("tables: a table declared with a built-in name replaces it, with a warning") {
    auto r = parse("table localnames { example.org, example.net }\n"
                   "action d mbox\n"
                   "match from any for domain <localnames> action d\n");
    REQUIRE(r.errors.empty());
    CHECK(formatted(r.warnings) ==
          std::vector<std::string>{"test.conf:1:7: table 'localnames' replaces the built-in table <localnames>"});
    REQUIRE(r.config->tables.size() == 1);
    CHECK(r.config->tables[0].backend == "inline");
    CHECK(r.config->tables[0].entries.size() == 2);
}

TEST_CASE("globals: bounce warn-interval") {
    CHECK(ok(kRule).bounce_warn_interval == std::vector<std::chrono::seconds>{std::chrono::hours(4)});
    using s = std::chrono::seconds;
    CHECK(ok("bounce warn-interval 30m\n" + kRule).bounce_warn_interval == std::vector<s>{s(1800)});
    CHECK(ok("bounce warn-interval 1h, 6h,2d , 90s\n" + kRule).bounce_warn_interval ==
          std::vector<s>{s(3600), s(6 * 3600), s(2 * 86400), s(90)});
    // A second line adds to the first; only the default is replaced.
    CHECK(ok("bounce warn-interval 1h\nbounce warn-interval 4h, 1d\n" + kRule).bounce_warn_interval ==
          std::vector<s>{s(3600), s(4 * 3600), s(86400)});
    CHECK(ok("d1 = 2h\nbounce warn-interval $d1\n" + kRule).bounce_warn_interval == std::vector<s>{s(7200)});
}

TEST_CASE("globals: metrics listen on") {
    CHECK(ok(kRule).metrics_address.empty());  // off by default
    auto c = ok("metrics listen on 127.0.0.1\n" + kRule);
    CHECK(c.metrics_address == "127.0.0.1");
    CHECK(c.metrics_port == 9154);
    c = ok("metrics listen on localhost port 9200\n" + kRule);
    CHECK(c.metrics_address == "127.0.0.1");
    CHECK(c.metrics_port == 9200);
    CHECK(ok("metrics listen on [::1] port 9200\n" + kRule).metrics_address == "::1");
    CHECK(errors_of("metrics listen on eth0\n" + kRule) ==
          std::vector<std::string>{
              "test.conf:1:19: expected an IP address or localhost after 'metrics listen on', found 'eth0'"});
    CHECK(errors_of("metrics on 127.0.0.1\n" + kRule) ==
          std::vector<std::string>{"test.conf:1:9: expected 'listen on' after 'metrics', found 'on'"});
    CHECK(errors_of("metrics listen on 127.0.0.1 port 0\n" + kRule) ==
          std::vector<std::string>{"test.conf:1:34: port 0 is out of range (1-65535)"});
    CHECK(errors_of("metrics listen on 127.0.0.1\nmetrics listen on ::1\n" + kRule) ==
          std::vector<std::string>{"test.conf:2:1: metrics is given twice (first at test.conf:1:1)"});
}
