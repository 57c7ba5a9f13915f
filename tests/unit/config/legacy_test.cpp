// The pre-6.4 grammar: every form of the translation table of
// shared/reference/config-grammar.md §10 read into the model as its current
// lines would be, with the one warning that shows them; the worked examples
// compared field by field with their current versions; refusals. Who an old
// rule's source takes: legacy_sources_test.cpp.
#include "legacy_helpers.hpp"

using namespace postern::config;
using namespace postern::config::legacy_test;

TEST_CASE("legacy: deliver to mbox, with alias") {
    Read r = one("accept for local alias <a> deliver to mbox", 2);
    CHECK(r.warnings == Errors{warning(8, {"action \"mbox\" mbox alias <a>", kNote, "match for local action \"mbox\"",
                                           "match auth from any for local action \"mbox\""})});
    REQUIRE(r.config.actions.size() == 1);
    const Action& a = r.config.actions[0];
    CHECK(a.name == "mbox");
    CHECK(a.method == "mbox");
    CHECK(a.alias_table == "a");
    CHECK(a.where.line == 8);
    CHECK(a.where.column == 28);  // the delivery clause
    const Rule& rule = r.config.rules[0];
    CHECK(rule.action == "mbox");
    CHECK_FALSE(rule.reject);
    CHECK(rule.where.line == 8);
    CHECK(rule.where.column == 1);
    REQUIRE(rule.criteria.size() == 2);
    check_criterion(rule.criteria[0], Kind::ForLocal, false, "", "");
    check_criterion(rule.criteria[1], Kind::FromLocal, false, "", "");  // the default, as for `match`
    // The implied `from local` took authenticated sessions too.
    const Rule& authenticated = r.config.rules[1];
    CHECK(authenticated.action == "mbox");
    CHECK(authenticated.where.line == 8);
    REQUIRE(authenticated.criteria.size() == 3);
    check_criterion(authenticated.criteria[0], Kind::Auth, false, "", "");
    check_criterion(authenticated.criteria[1], Kind::FromAny, false, "", "");
    check_criterion(authenticated.criteria[2], Kind::ForLocal, false, "", "");
}

TEST_CASE("legacy: deliver to maildir, with and without a path, virtual and userbase") {
    Read r = one("accept from any for domain example.org virtual <v> userbase <u> deliver to maildir "
                 "\"/var/vmail/%{rcpt.domain}/%{rcpt.user}\"");
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"maildir\" maildir \"/var/vmail/%{rcpt.domain}/%{rcpt.user}\" virtual <v> "
                             "userbase <u>",
                             "match from any for domain example.org action \"maildir\""})});
    const Action& a = r.config.actions.at(0);
    CHECK(a.method == "maildir");
    CHECK(a.path == "/var/vmail/%{rcpt.domain}/%{rcpt.user}");
    CHECK(a.virtual_table == "v");
    CHECK(a.userbase_table == "u");
    const Rule& rule = r.config.rules[0];
    REQUIRE(rule.criteria.size() == 2);
    check_criterion(rule.criteria[0], Kind::FromAny, false, "", "");
    check_criterion(rule.criteria[1], Kind::ForDomain, false, "example.org", "");

    r = one("accept for local deliver to maildir expire 2d", 2);
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"maildir\" maildir ttl 2d", kNote, "match for local action \"maildir\"",
                             "match auth from any for local action \"maildir\""})});
    CHECK(r.config.actions.at(0).path.empty());
    REQUIRE(r.config.actions.at(0).ttl);
    CHECK(r.config.actions.at(0).ttl->count() == 2 * 86400);
}

TEST_CASE("legacy: deliver to mda \"CMD\" as USER, expire") {
    Read r = one("accept for local deliver to mda \"/usr/bin/procmail -f -\" as bob expire 3d", 2);
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"mda\" mda \"/usr/bin/procmail -f -\" user bob ttl 3d", kNote,
                             "match for local action \"mda\"", "match auth from any for local action \"mda\""})});
    const Action& a = r.config.actions.at(0);
    CHECK(a.method == "mda");
    CHECK(a.path == "/usr/bin/procmail -f -");
    CHECK(a.user == "bob");
    REQUIRE(a.ttl);
    CHECK(a.ttl->count() == 3 * 86400);
}

TEST_CASE("legacy: deliver to lmtp DEST [rcpt-to] [as USER]") {
    Read r = one(
        "accept from any for domain <u> virtual <v> deliver to lmtp \"/var/run/dovecot/lmtp\" rcpt-to as vmail");
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"lmtp\" lmtp \"/var/run/dovecot/lmtp\" rcpt-to virtual <v> user vmail",
                             "match from any for domain <u> action \"lmtp\""})});
    const Action& a = r.config.actions.at(0);
    CHECK(a.method == "lmtp");
    CHECK(a.path == "/var/run/dovecot/lmtp");
    CHECK(a.lmtp_rcpt_to);
    CHECK(a.user == "vmail");
    CHECK(a.virtual_table == "v");
    check_criterion(r.config.rules[0].criteria.at(1), Kind::ForDomain, false, "", "u");

    r = one("accept for local deliver to lmtp localhost:24", 2);
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"lmtp\" lmtp localhost:24", kNote, "match for local action \"lmtp\"",
                             "match auth from any for local action \"lmtp\""})});
    CHECK(r.config.actions.at(0).path == "localhost:24");
    CHECK_FALSE(r.config.actions.at(0).lmtp_rcpt_to);
}

TEST_CASE("legacy: relay, plain") {
    Read r = one("accept from local for any relay", 2);
    CHECK(r.warnings == Errors{warning(8, {"action \"relay\" relay", kNote, "match from local for any action \"relay\"",
                                           "match auth from any for any action \"relay\""})});
    const Action& a = r.config.actions.at(0);
    CHECK(a.method == "relay");
    CHECK(a.relay.host.empty());
    CHECK_FALSE(a.relay.tls);
    check_criterion(r.config.rules[0].criteria.at(0), Kind::FromLocal, false, "", "");
    check_criterion(r.config.rules[0].criteria.at(1), Kind::ForAny, false, "", "");
    CHECK(r.config.rules[1].action == "relay");
    CHECK(shape(r.config, 1) ==
          std::vector<std::pair<Kind, bool>>{{Kind::Auth, false}, {Kind::FromAny, false}, {Kind::ForAny, false}});
}

TEST_CASE("legacy: relay via URL auth, renamed URL schemes, verify") {
    struct Case {
        std::string old_url, new_url;
        RelayUrl::Scheme scheme;
        int port;
    };
    const Case cases[] = {
        {"tls+auth://lbl@smtp.example.com", "smtp+tls://lbl@smtp.example.com", RelayUrl::Scheme::SmtpTls, 25},
        {"tls://lbl@smtp.example.com:587", "smtp+tls://lbl@smtp.example.com:587", RelayUrl::Scheme::SmtpTls, 587},
        {"smtps+auth://lbl@smtp.example.com", "smtps://lbl@smtp.example.com", RelayUrl::Scheme::Smtps, 465},
        {"smtps://lbl@smtp.example.com", "smtps://lbl@smtp.example.com", RelayUrl::Scheme::Smtps, 465},
    };
    for (const Case& k : cases) {
        INFO(k.old_url);
        Read r = one("accept from local for any relay via " + k.old_url + " auth <s>", 2);
        CHECK(r.warnings == Errors{warning(8, {"action \"relay\" relay host " + k.new_url + " auth <s>", kNote,
                                               "match from local for any action \"relay\"",
                                               "match auth from any for any action \"relay\""})});
        const Relay& relay = r.config.actions.at(0).relay;
        CHECK(relay.host == k.new_url);
        REQUIRE(relay.url);
        CHECK(relay.url->scheme == k.scheme);
        CHECK(relay.url->label == "lbl");
        CHECK(relay.url->host == "smtp.example.com");
        CHECK(relay.url->port == k.port);
        CHECK(relay.auth_table == "s");
    }
    // `via ... verify`: the certificate is checked, as `tls` now does.
    Read r = one("accept for any relay via smtp://mx.example.org:2525 verify", 2);
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"relay\" relay host smtp://mx.example.org:2525 tls", kNote,
                             "match for any action \"relay\"", "match auth from any for any action \"relay\""})});
    CHECK(r.config.actions.at(0).relay.tls);
    CHECK_FALSE(r.config.actions.at(0).relay.tls_no_verify);
}

TEST_CASE("legacy: relay backup [MX], as, source, hostname, pki, tls verify") {
    Read r = one("accept from any for any relay backup mx2.example.org as \"@example.net\" source <src> hostname "
                 "out.example.org pki MX tls verify");
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"relay\" relay backup mx mx2.example.org mail-from \"@example.net\" src <src> "
                             "helo out.example.org pki MX tls",
                             "match from any for any action \"relay\""})});
    const Relay& relay = r.config.actions.at(0).relay;
    CHECK(relay.backup);
    CHECK(relay.backup_mx == "mx2.example.org");
    CHECK(relay.mail_from == "@example.net");
    CHECK(relay.src_table == "src");
    CHECK(relay.helo == "out.example.org");
    CHECK(relay.pki == "mx");
    CHECK(relay.tls);
    CHECK_FALSE(relay.tls_no_verify);

    r = one("accept from any for any relay backup tls");
    CHECK(r.warnings == Errors{warning(8, {"action \"relay\" relay backup tls no-verify",
                                           "match from any for any action \"relay\""})});
    CHECK(r.config.actions.at(0).relay.backup);
    CHECK(r.config.actions.at(0).relay.backup_mx.empty());
    CHECK(r.config.actions.at(0).relay.tls);
    CHECK(r.config.actions.at(0).relay.tls_no_verify);
}

TEST_CASE("legacy: relay hostnames <t>, 5.x helo <t> and certificate NAME") {
    Read r = one("accept from any for any relay hostnames <n> source 192.0.2.1");
    CHECK(r.warnings == Errors{warning(8, {"action \"relay\" relay helo-src <n> src 192.0.2.1",
                                           "match from any for any action \"relay\""})});
    CHECK(r.config.actions.at(0).relay.helo_src_table == "n");
    CHECK(r.config.actions.at(0).relay.src == "192.0.2.1");

    r = one("accept from any for any relay via tls+auth://lbl@smtp.example.com certificate mx auth <s> helo <n>");
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"relay\" relay host smtp+tls://lbl@smtp.example.com pki mx auth <s> "
                             "helo-src <n>",
                             "match from any for any action \"relay\""})});
    CHECK(r.config.actions.at(0).relay.pki == "mx");
    CHECK(r.config.actions.at(0).relay.helo_src_table == "n");
    CHECK(r.config.actions.at(0).relay.auth_table == "s");
}

TEST_CASE("legacy: match criteria: tagged, authenticated, from source, sender, recipient, for domain, negations") {
    // (The `auth` that old sources imply is tested on its own below.)
    Read r = one("accept tagged ! T from ! source <src> sender ! \"@example.com\" for ! domain "
                 "\"example.org\" recipient <u> deliver to mbox",
                 2);
    CHECK(r.warnings == Errors{warning(8, {"action \"mbox\" mbox", kNote,
                                           "match !tag T !from src <src> !mail-from \"@example.com\" !for domain "
                                           "\"example.org\" rcpt-to <u> action \"mbox\"",
                                           "match !tag T auth from any !mail-from \"@example.com\" !for domain "
                                           "\"example.org\" rcpt-to <u> action \"mbox\""})});
    const Rule& rule = r.config.rules[0];
    REQUIRE(rule.criteria.size() == 5);
    check_criterion(rule.criteria[0], Kind::Tag, true, "T", "");
    check_criterion(rule.criteria[1], Kind::FromSrc, true, "", "src");
    check_criterion(rule.criteria[2], Kind::MailFrom, true, "@example.com", "");
    check_criterion(rule.criteria[3], Kind::ForDomain, true, "example.org", "");
    check_criterion(rule.criteria[4], Kind::RcptTo, false, "", "u");

    // `authenticated`, 5.x `from <t>`, a plain source value, `tagged T`, `recipient ! V`.
    r = one("accept authenticated from any for any deliver to mbox");
    CHECK(r.warnings == Errors{warning(8, {"action \"mbox\" mbox", "match auth from any for any action \"mbox\""})});
    check_criterion(r.config.rules[0].criteria.at(0), Kind::Auth, false, "", "");
    r = one("accept tagged DKIM from <src> recipient ! bob@example.org for any deliver to mbox");
    CHECK(r.warnings ==
          Errors{warning(8, {"action \"mbox\" mbox", kNote,
                             "match tag DKIM !auth from src <src> !rcpt-to bob@example.org for any action "
                             "\"mbox\""})});
    check_criterion(r.config.rules[0].criteria.at(0), Kind::Tag, false, "DKIM", "");
    check_criterion(r.config.rules[0].criteria.at(1), Kind::Auth, true, "", "");
    check_criterion(r.config.rules[0].criteria.at(2), Kind::FromSrc, false, "", "src");
    check_criterion(r.config.rules[0].criteria.at(3), Kind::RcptTo, true, "bob@example.org", "");
    r = one("accept from source 192.0.2.0/24 for any relay");
    check_criterion(r.config.rules[0].criteria.at(1), Kind::FromSrc, false, "192.0.2.0/24", "");
}

TEST_CASE("legacy: reject") {
    Read r = one("reject from any sender \"@example.com\" for any");
    CHECK(r.warnings == Errors{warning(8, {"match from any mail-from \"@example.com\" for any reject"})});
    CHECK(r.config.actions.empty());
    const Rule& rule = r.config.rules[0];
    CHECK(rule.reject);
    CHECK(rule.action.empty());
    REQUIRE(rule.criteria.size() == 3);
    check_criterion(rule.criteria[0], Kind::FromAny, false, "", "");
    check_criterion(rule.criteria[1], Kind::MailFrom, false, "@example.com", "");
    check_criterion(rule.criteria[2], Kind::ForAny, false, "", "");
    // A negated source table took every authenticated session: two reject lines.
    r = one("reject from ! source <src> sender \"@example.com\" for any", 2);
    CHECK(r.warnings == Errors{warning(8, {kNote, "match !from src <src> mail-from \"@example.com\" for any reject",
                                           "match auth from any mail-from \"@example.com\" for any reject"})});
    CHECK(r.config.rules[0].reject);
    CHECK(r.config.rules[1].reject);
    check_criterion(r.config.rules[0].criteria.at(0), Kind::FromSrc, true, "", "src");
}

TEST_CASE("legacy: identical delivery clauses share one action, others get their own named apart") {
    Read r = read(kDecls + "action mbox maildir\n"  // a name the translation must not reuse
                           "accept from local for any relay\n"
                           "accept from source <src> for any relay\n"
                           "accept for local alias <a> deliver to mbox\n"
                           "accept for domain example.org deliver to mbox\n"
                           "accept for domain example.net deliver to mbox\n"
                           "accept for any relay via smtp://mx.example.org\n");
    CHECK(r.warnings ==
          Errors{warning(9, {"action \"relay\" relay", kNote, "match from local for any action \"relay\"",
                             "match auth from any for any action \"relay\""}),
                 warning(10, {kNote, "match !auth from src <src> for any action \"relay\""}),
                 warning(11, {"action \"mbox-2\" mbox alias <a>", kNote, "match for local action \"mbox-2\"",
                              "match auth from any for local action \"mbox-2\""}),
                 warning(12, {"action \"mbox-3\" mbox", kNote, "match for domain example.org action \"mbox-3\"",
                              "match auth from any for domain example.org action \"mbox-3\""}),
                 warning(13, {kNote, "match for domain example.net action \"mbox-3\"",
                              "match auth from any for domain example.net action \"mbox-3\""}),
                 warning(14, {"action \"relay-2\" relay host smtp://mx.example.org", kNote,
                              "match for any action \"relay-2\"", "match auth from any for any action \"relay-2\""})});
    REQUIRE(r.config.actions.size() == 5);
    CHECK(r.config.actions[0].name == "mbox");
    CHECK(r.config.actions[0].method == "maildir");
    CHECK(r.config.actions[1].name == "relay");
    CHECK(r.config.actions[2].name == "mbox-2");
    CHECK(r.config.actions[3].name == "mbox-3");
    CHECK(r.config.actions[4].name == "relay-2");
    REQUIRE(r.config.rules.size() == 11);
    const char* want[] = {"relay",  "relay",  "relay",  "mbox-2",  "mbox-2", "mbox-3",
                          "mbox-3", "mbox-3", "mbox-3", "relay-2", "relay-2"};
    for (std::size_t i = 0; i < 11; ++i) CHECK(r.config.rules[i].action == want[i]);
    // A modern rule after them uses the declared action, not a translated one.
    Read mixed = read(kDecls + "accept for local deliver to mbox\naction d maildir\nmatch for any action d\n");
    REQUIRE(mixed.config.rules.size() == 3);
    CHECK(mixed.config.rules[2].action == "d");
}

// The worked examples of config-grammar.md §10, compared with their current
// versions plus what the examples leave out: the lines that keep taking
// authenticated sessions where the old source took them (`local` written or
// implied, a negated source table) and leave them out where it did not (a
// source table).
TEST_CASE("legacy: worked example 1 gives the same model as its current version") {
    const std::string tables = "table aliases file:/etc/mail/aliases\ntable vusers { a@example.org = a }\n"
                               "table secrets { bob = \"bob:pw\" }\n";
    Read old_form = read(tables +
                         "accept for local alias <aliases> deliver to mbox\n"
                         "accept from any for domain example.org virtual <vusers> deliver to maildir "
                         "\"/var/vmail/%{rcpt.domain}/%{rcpt.user}\"\n"
                         "accept from local for any relay via tls+auth://bob@smtp.example.com auth <secrets>\n");
    Read new_form = read(tables +
                         "action \"local\" mbox alias <aliases>\n"
                         "action \"virt\"  maildir \"/var/vmail/%{rcpt.domain}/%{rcpt.user}\" virtual <vusers>\n"
                         "action \"out\"   relay host smtp+tls://bob@smtp.example.com auth <secrets>\n"
                         "match for local action \"local\"\n"
                         "match auth from any for local action \"local\"\n"
                         "match from any for domain example.org action \"virt\"\n"
                         "match from local for any action \"out\"\n"
                         "match auth from any for any action \"out\"\n");
    CHECK(new_form.warnings.empty());
    CHECK(old_form.warnings.size() == 3);
    check_same_model(old_form.config, new_form.config);
    CHECK(old_form.config.actions.at(2).relay.url->label == "bob");
}

TEST_CASE("legacy: worked example 2 (DKIM proxy loop) gives the same model as its current version") {
    const std::string tables = "table sources { 192.0.2.1 }\ntable names { 192.0.2.1 = mx1.example.org }\n";
    Read old_form = read(tables + "accept tagged DKIM for any relay source <sources> helo <names>\n"
                                  "accept for any relay via smtp://127.0.0.1:10027\n");
    Read new_form = read(tables + "action \"signed\" relay src <sources> helo-src <names>\n"
                                  "action \"tosign\" relay host smtp://127.0.0.1:10027\n"
                                  "match tag DKIM for any action \"signed\"\n"
                                  "match auth from any tag DKIM for any action \"signed\"\n"
                                  "match for any action \"tosign\"\n"
                                  "match auth from any for any action \"tosign\"\n");
    CHECK(old_form.warnings ==
          Errors{warning(3, {"action \"relay\" relay src <sources> helo-src <names>", kNote,
                             "match tag DKIM for any action \"relay\"",
                             "match auth from any tag DKIM for any action \"relay\""}),
                 warning(4, {"action \"relay-2\" relay host smtp://127.0.0.1:10027", kNote,
                             "match for any action \"relay-2\"", "match auth from any for any action \"relay-2\""})});
    check_same_model(old_form.config, new_form.config);
}

TEST_CASE("legacy: worked example 3 (reject) gives the same model as its current version") {
    const std::string tables = "table other-relays { 192.0.2.1 }\naction d mbox\n";
    Read old_form = read(tables + "reject from ! source <other-relays> sender \"@example.com\" for any\n"
                                  "match for local action d\n");
    Read new_form = read(tables + "match !from src <other-relays> mail-from \"@example.com\" for any reject\n"
                                  "match auth from any mail-from \"@example.com\" for any reject\n"
                                  "match for local action d\n");
    check_same_model(old_form.config, new_form.config);
}

TEST_CASE("legacy: the daemon prints the warning as file:line:col: warning: and the current lines") {
    auto r = parse("accept for local deliver to mbox\n");
    REQUIRE(r.warnings.size() == 1);
    CHECK(format({r.warnings[0].where, "warning: " + r.warnings[0].message}) ==
          "test.conf:1:1: warning: pre-6.4 grammar; the same in current syntax:\n"
          "    action \"mbox\" mbox\n"
          "    # before 6.4 an authenticated session's source was \"local\", whatever its address\n"
          "    match for local action \"mbox\"\n"
          "    match auth from any for local action \"mbox\"");
}

TEST_CASE("legacy: global spellings read as their current lines") {
    Read r = read("max-message-size 10M\n"
                  "expire 5d\n"
                  "bounce-warn 1h, 2h\n"
                  "limit session max-rcpt 5 max-mails 6\n"
                  "subaddressing-delimiter -\n"
                  "ciphers \"HIGH:!aNULL\"\n" +
                  kRule);
    CHECK(r.warnings == Errors{warning(1, {"smtp max-message-size 10M"}), warning(2, {"queue ttl 5d"}),
                               warning(3, {"bounce warn-interval 1h, 2h"}),
                               warning(4, {"smtp limit max-rcpt 5 max-mails 6"}), warning(5, {"smtp sub-addr-delim -"}),
                               warning(6, {"smtp ciphers \"HIGH:!aNULL\""})});
    const Config& c = r.config;
    CHECK(c.max_message_size == 10u * 1024 * 1024);
    CHECK(c.queue_ttl.count() == 5 * 86400);
    CHECK(c.bounce_warn_interval == std::vector<std::chrono::seconds>{std::chrono::hours(1), std::chrono::hours(2)});
    CHECK(c.max_rcpt == 5);
    CHECK(c.max_mails == 6);
    CHECK(c.sub_addr_delim == '-');
    CHECK(c.ciphers == "HIGH:!aNULL");
}

TEST_CASE("legacy: limit mta inet4 is read as mta limit inet4") {
    auto r = parse("limit mta inet4\n" + kRule);
    CHECK(r.errors.empty());
    CHECK(r.config->mta_family == 4);
}

TEST_CASE("legacy: global spellings of scheduler and mta limits are read as their current form") {
    auto r = parse("limit mta inet4\nlimit scheduler max-inflight 3\nmax-mta-deferred 10\n" + kRule);
    CHECK(r.errors.empty());
    const Errors w = formatted(r.warnings);
    REQUIRE(w.size() == 5);  // each translation, and what the current line says (compat_test.cpp)
    CHECK(w[0] == warning(1, {"mta limit inet4"}));
    CHECK(w[1] == warning(2, {"scheduler limit max-inflight 3"}));
    CHECK(w[2].starts_with("test.conf:2:17: 'scheduler limit max-inflight' has no effect in postern"));
    CHECK(w[3] == warning(3, {"mta max-deferred 10"}));
    CHECK(w[4].starts_with("test.conf:3:1: 'mta max-deferred' has no effect in postern"));
    // `queue encryption key K` is read, with a word about its spelling.
    r = parse("queue encryption key 0123456789abcdef0123456789abcdef\n" + kRule);
    CHECK(r.errors.empty());
    CHECK(formatted(r.warnings) == Errors{"test.conf:1:18: 'key' before the key is the pre-6.4 spelling"});
    CHECK(errors_of("limit frob 3\n" + kRule) ==
          Errors{"test.conf:1:7: expected session, mta or scheduler after 'limit', found 'frob'"});
    CHECK(errors_of("limit\n" + kRule) ==
          Errors{"test.conf:1:6: expected session, mta or scheduler after 'limit', found end of line"});
    // The current grammar's checks apply to the translation.
    CHECK(errors_of("max-message-size 35X\n" + kRule) ==
          Errors{"test.conf:1:18: expected a size (bytes, or a number followed by K, M or G, e.g. 35M) after "
                 "'max-message-size', found '35X'"});
}

TEST_CASE("legacy: an accept rule without a delivery clause is the expand-only method") {
    // Aliases and .forward files alone decide where the mail goes (6.0's A_NONE).
    auto r = parse(kDecls + "accept from any for domain example.org alias <a>\n");
    CHECK(r.errors.empty());
    CHECK(formatted(r.warnings) ==
          Errors{warning(8, {"action \"expand-only\" expand-only alias <a>",
                             "match from any for domain example.org action \"expand-only\""})});
    REQUIRE(r.config);
    REQUIRE(r.config->actions.size() == 1);
    CHECK(r.config->actions[0].method == "expand-only");
    CHECK(r.config->actions[0].alias_table == "a");
}

TEST_CASE("legacy: refusals with exact errors") {
    const std::string p = "test.conf:8:";
    auto errors = [&](const std::string& old_line) { return errors_of(kDecls + old_line + "\n"); };
    // forward-only translates to the current method, and parses.
    auto fwd = parse(kDecls + "accept for local alias <a> forward-only\n");
    CHECK(fwd.errors.empty());
    CHECK(formatted(fwd.warnings) == Errors{warning(8, {"action \"forward-only\" forward-only alias <a>", kNote,
                                                        "match for local action \"forward-only\"",
                                                        "match auth from any for local action \"forward-only\""})});
    CHECK(errors("accept for any relay via secure://mx.example.org") ==
          Errors{p + "26: relay URL scheme 'secure://' (TLS from the first byte, else STARTTLS) has no equivalent "
                     "since OpenSMTPD 6.4: write smtps:// or smtp+tls:// instead"});
    CHECK(errors("accept for any relay via secure+auth://l@mx.example.org auth <s>") ==
          Errors{p + "26: relay URL scheme 'secure+auth://' (TLS from the first byte, else STARTTLS) has no "
                     "equivalent since OpenSMTPD 6.4: write smtps:// or smtp+tls:// instead"});
    CHECK(errors("reject from any for any deliver to mbox") ==
          Errors{p + "25: 'deliver' cannot be used in a 'reject' rule"});
    CHECK(errors("reject for any expire 4d") == Errors{p + "16: 'expire' cannot be used in a 'reject' rule"});
    CHECK(errors("accept for local deliver mbox") == Errors{p + "26: expected 'to' after 'deliver', found 'mbox'"});
    CHECK(errors("accept for local deliver to") ==
          Errors{p + "28: expected mbox, maildir, mda or lmtp after 'deliver to', found end of line"});
    CHECK(errors("accept for local deliver to mda as bob") ==
          Errors{p + "33: expected a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\", found 'as'"});
    CHECK(errors("accept for local deliver to mbox as bob") ==
          Errors{p + "34: expected a rule option (tagged, authenticated, from, sender, for, recipient, alias, "
                     "virtual, userbase, forward-only, deliver to, relay, expire), found 'as'"});
    CHECK(errors("accept from any from local for any relay") == Errors{p + "17: 'from' is given twice"});
    CHECK(errors("accept for any relay deliver to mbox") ==
          Errors{p + "22: 'deliver' cannot be used together with 'relay': a rule delivers one way"});
    CHECK(errors("accept for any forward-only relay") ==
          Errors{p + "29: 'relay' cannot be used together with 'forward-only': a rule delivers one way"});
    CHECK(errors("accept for any relay hostname a.example.org helo <n>") ==
          Errors{p + "45: 'helo' cannot be used together with 'hostname'"});
    CHECK(errors("accept for any relay tls tls") == Errors{p + "26: 'tls' is given twice"});
    CHECK(errors("accept from somewhere for any relay") ==
          Errors{p + "13: expected any, local, source <table> or <table> after 'from', found 'somewhere'"});
    CHECK(errors("accept for everything relay") ==
          Errors{p + "12: expected any, local or domain after 'for', found 'everything'"});
    CHECK(errors("accept for any relay via") == Errors{p + "25: expected a relay URL after 'via', found end of line"});
    CHECK(errors("accept for local alias <a deliver to mbox") ==
          Errors{p + "27: expected '>' after table name 'a', found 'deliver'"});
    // The current grammar's checks apply, at the old text.
    CHECK(
        errors("accept for any relay via smtp://lbl@mx.example.org auth <s>") ==
        Errors{
            p +
            "26: invalid relay URL 'smtp://lbl@mx.example.org': a label is only allowed with smtp+tls:// or smtps://"});
    CHECK(errors("accept for any relay auth <s>") ==
          Errors{p + "22: 'auth' needs 'host' on the same relay: credentials are for one smarthost"});
    CHECK(errors("accept for local alias <nope> deliver to mbox") ==
          Errors{p + "25: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors("accept for local alias <a> relay") ==
          Errors{p + "18: 'alias' is an option of local delivery and cannot be used with 'relay'"});
}
