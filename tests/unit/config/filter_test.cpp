// Config parser: proc and filter declarations (process, proc-exec, chain and
// built-in filters) and the `filter` option of `listen`: every form read into
// the model, then each broken form with its exact message.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;
using postern::filter::Phase;
using postern::filter::Version;
using Errors = std::vector<std::string>;
using CondKind = FilterCondition::Kind;
using Decision = BuiltinFilter::Decision;

namespace {

Config ok(const std::string& text) {
    auto r = parse(text);
    INFO("errors: " << (r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config);
    return *r.config;
}

// The one built-in filter of `filter b phase PHASE match LINE`.
BuiltinFilter builtin(const std::string& phase, const std::string& line) {
    Config c = ok("filter b phase " + phase + " match " + line + "\n" + kRule);
    REQUIRE(c.filters.size() == 1);
    REQUIRE(c.filters[0].kind == Filter::Kind::Builtin);
    return c.filters[0].builtin;
}

// A proc and two filters on it, for the broken lines below.
const std::string kProcs = "proc p \"filter-p\"\n"
                           "proc q \"filter-q\"\n"
                           "filter fp proc p\n"
                           "filter fq proc q\n";

}  // namespace

TEST_CASE("filter: proc with OpenSMTPD's options and postern's, in any order") {
    Config c = ok("proc rspamd \"filter-rspamd\"\n"
                  "proc \"dkim\" \"/usr/libexec/opensmtpd/filter-dkimsign -d example.org -s s1\" user _dkim "
                  "group _dkim chroot /var/empty\n"
                  "proc x filter-x on-failure pass timeout 2m protocol 0.7 user 'bob'\n"
                  "proc y \"filter-y\" protocol \"0.6\" on-failure tempfail timeout 1h\n" +
                  kRule);
    REQUIRE(c.procs.size() == 4);
    const FilterProc& r = c.procs[0];
    CHECK(r.name == "rspamd");
    CHECK(r.command == "filter-rspamd");
    CHECK(r.user.empty());
    CHECK(r.group.empty());
    CHECK(r.chroot.empty());
    CHECK(r.version == Version::V0_6);
    CHECK(r.timeout == std::chrono::seconds(60));
    CHECK_FALSE(r.fail_open);
    CHECK(r.where.line == 1);
    CHECK(r.where.column == 1);
    const FilterProc& d = c.procs[1];
    CHECK(d.name == "dkim");
    CHECK(d.command == "/usr/libexec/opensmtpd/filter-dkimsign -d example.org -s s1");
    CHECK(d.user == "_dkim");
    CHECK(d.group == "_dkim");
    CHECK(d.chroot == "/var/empty");
    const FilterProc& x = c.procs[2];
    CHECK(x.command == "filter-x");  // bare words are commands too
    CHECK(x.fail_open);
    CHECK(x.timeout == std::chrono::minutes(2));
    CHECK(x.version == Version::V0_7);
    CHECK(x.user == "bob");
    const FilterProc& y = c.procs[3];
    CHECK(y.version == Version::V0_6);
    CHECK_FALSE(y.fail_open);
    CHECK(y.timeout == std::chrono::hours(1));
    CHECK(c.find_proc("dkim") == &c.procs[1]);
    CHECK(c.find_proc("nope") == nullptr);
    CHECK(c.filters.empty());  // a proc alone filters nothing
}

TEST_CASE("filter: proc, proc-exec and the proc each one runs on") {
    Config c = ok("proc rspamd \"filter-rspamd\"\n"
                  "filter \"rspamd\" proc rspamd\n"
                  "filter also proc \"rspamd\"\n"
                  "filter dkimsign proc-exec \"filter-dkimsign -d example.org -s s1 -k /etc/dkim.key\" user _dkim "
                  "group _dkim timeout 30s\n"
                  "filter reuse proc dkimsign\n" +
                  kRule);
    REQUIRE(c.filters.size() == 4);
    CHECK(c.filters[0].name == "rspamd");
    CHECK(c.filters[0].kind == Filter::Kind::Proc);
    CHECK(c.filters[0].proc == "rspamd");
    CHECK(c.filters[0].where.line == 2);
    CHECK(c.filters[0].where.column == 1);
    CHECK(c.filters[1].proc == "rspamd");
    // proc-exec declares a proc of the filter's name, which others may use.
    const Filter& dk = c.filters[2];
    CHECK(dk.kind == Filter::Kind::Proc);
    CHECK(dk.proc == "dkimsign");
    REQUIRE(c.procs.size() == 2);
    const FilterProc& p = c.procs[1];
    CHECK(p.name == "dkimsign");
    CHECK(p.command == "filter-dkimsign -d example.org -s s1 -k /etc/dkim.key");
    CHECK(p.user == "_dkim");
    CHECK(p.group == "_dkim");
    CHECK(p.timeout == std::chrono::seconds(30));
    CHECK(p.where.line == 4);
    CHECK(c.filters[3].proc == "dkimsign");
    CHECK(c.find_filter("reuse") == &c.filters[3]);
    CHECK(c.find_filter("nope") == nullptr);
}

TEST_CASE("filter: chains of process and built-in filters, commas optional") {
    Config c = ok("filter a proc-exec filter-a\n"
                  "filter b proc-exec filter-b\n"
                  "filter nofcrdns phase connect match !fcrdns disconnect \"550 no FCrDNS\"\n"
                  "filter c1 chain { a, b, nofcrdns }\n"
                  "filter c2 chain { nofcrdns \"b\" }\n"
                  "filter c3 chain {\n"
                  "    a,\n"
                  "    b\n"
                  "}\n" +
                  kRule);
    REQUIRE(c.filters.size() == 6);
    const Filter& c1 = c.filters[3];
    CHECK(c1.kind == Filter::Kind::Chain);
    CHECK(c1.chain == std::vector<std::string>{"a", "b", "nofcrdns"});
    CHECK(c.filters[4].chain == std::vector<std::string>{"nofcrdns", "b"});
    CHECK(c.filters[5].chain == std::vector<std::string>{"a", "b"});
}

TEST_CASE("filter: built-in filters, each condition and decision") {
    BuiltinFilter b = builtin("connect", "fcrdns reject \"550 5.7.1 no FCrDNS\"");
    CHECK(b.phase == Phase::Connect);
    CHECK(b.condition.kind == CondKind::Fcrdns);
    CHECK_FALSE(b.condition.negated);
    CHECK_FALSE(b.condition.regex);
    CHECK(b.condition.table.empty());
    CHECK(b.decision == Decision::Reject);
    CHECK(b.value == "550 5.7.1 no FCrDNS");

    b = builtin("connect", "! rdns disconnect \"421 go away\"");
    CHECK(b.condition.kind == CondKind::Rdns);
    CHECK(b.condition.negated);
    CHECK(b.condition.table.empty());
    CHECK(b.decision == Decision::Disconnect);
    CHECK(b.value == "421 go away");

    Config c = ok("table bad { \"dynamic\" }\n"
                  "table nets { 192.0.2.0/24 }\n"
                  "filter r phase connect match rdns regex <bad> junk\n"
                  "filter s phase helo match src <nets> bypass\n"
                  "filter h phase mail-from match !helo regex { \"^localhost$\" } report \"odd HELO\"\n"
                  "filter a phase rcpt-to match auth rewrite someone\n"
                  "filter u phase data match auth <nets> reject '451 later'\n"
                  "filter m phase commit match mail-from { a@example.org } bypass\n"
                  "filter t phase rcpt-to match rcpt-to regex <bad> reject \"550 no\"\n"
                  "filter e phase ehlo match rdns { mx.example.org } bypass\n" +
                  kRule);
    REQUIRE(c.filters.size() == 8);
    const BuiltinFilter& r = c.filters[0].builtin;
    CHECK(r.condition.kind == CondKind::Rdns);
    CHECK(r.condition.regex);
    CHECK(r.condition.table == "bad");
    CHECK(r.decision == Decision::Junk);
    CHECK(r.value.empty());
    const BuiltinFilter& s = c.filters[1].builtin;
    CHECK(s.phase == Phase::Helo);
    CHECK(s.condition.kind == CondKind::Src);
    CHECK_FALSE(s.condition.regex);
    CHECK(s.condition.table == "nets");
    CHECK(s.decision == Decision::Bypass);
    // Inline tables become anonymous tables, as in `match`.
    const BuiltinFilter& h = c.filters[2].builtin;
    CHECK(h.phase == Phase::MailFrom);
    CHECK(h.condition.kind == CondKind::Helo);
    CHECK(h.condition.negated);
    CHECK(h.condition.regex);
    CHECK(h.condition.table == "<anon:5:44>");
    const TableDecl* anon = c.find_table("<anon:5:44>");
    REQUIRE(anon);
    CHECK(anon->backend == "inline");
    CHECK(anon->entries.front().first == "^localhost$");
    CHECK(h.decision == Decision::Report);
    CHECK(h.value == "odd HELO");
    const BuiltinFilter& a = c.filters[3].builtin;
    CHECK(a.phase == Phase::RcptTo);
    CHECK(a.condition.kind == CondKind::Auth);
    CHECK(a.condition.table.empty());
    CHECK(a.decision == Decision::Rewrite);
    CHECK(a.value == "someone");
    const BuiltinFilter& u = c.filters[4].builtin;
    CHECK(u.phase == Phase::Data);
    CHECK(u.condition.table == "nets");
    CHECK(u.value == "451 later");
    const BuiltinFilter& m = c.filters[5].builtin;
    CHECK(m.phase == Phase::Commit);
    CHECK(m.condition.kind == CondKind::MailFrom);
    CHECK(m.condition.table == "<anon:8:39>");
    const BuiltinFilter& t = c.filters[6].builtin;
    CHECK(t.condition.kind == CondKind::RcptTo);
    CHECK(t.condition.regex);
    CHECK(c.filters[7].builtin.phase == Phase::Ehlo);
}

TEST_CASE("filter: each condition is usable at the phases OpenSMTPD allows, and only there") {
    const std::vector<std::string> phases = {"connect",   "helo",    "ehlo", "auth",
                                             "mail-from", "rcpt-to", "data", "commit"};
    // condition -> the phases it may be used at
    const std::vector<std::pair<std::string, std::vector<std::string>>> allowed = {
        {"fcrdns", phases},
        {"rdns", phases},
        {"src <t>", phases},
        {"helo <t>", {"helo", "ehlo", "auth", "mail-from", "rcpt-to", "data", "commit"}},
        {"auth", {"auth", "mail-from", "rcpt-to", "data", "commit"}},
        {"auth <t>", {"auth", "mail-from", "rcpt-to", "data", "commit"}},
        {"mail-from <t>", {"mail-from", "rcpt-to", "data", "commit"}},
        {"rcpt-to <t>", {"rcpt-to"}},
    };
    for (const auto& [cond, ok_phases] : allowed)
        for (const std::string& phase : phases) {
            INFO(cond << " at " << phase);
            const bool ok = std::find(ok_phases.begin(), ok_phases.end(), phase) != ok_phases.end();
            const auto errs = errors_of("table t { x }\nfilter f phase " + phase + " match " + cond + " bypass\n" +
                                        kRule);
            CHECK(errs.empty() == ok);
        }
    const std::string head = "test.conf:2:";
    CHECK(errors_of("table t { x }\nfilter f phase connect match helo <t> bypass\n" + kRule) ==
          Errors{head + "30: condition 'helo' cannot be used at phase 'connect': only at phases helo, ehlo, auth, "
                        "mail-from, rcpt-to, data and commit"});
    CHECK(errors_of("table t { x }\nfilter f phase ehlo match ! auth bypass\n" + kRule) ==
          Errors{head + "29: condition 'auth' cannot be used at phase 'ehlo': only at phases auth, mail-from, "
                        "rcpt-to, data and commit"});
    CHECK(errors_of("table t { x }\nfilter f phase auth match mail-from <t> bypass\n" + kRule) ==
          Errors{head + "27: condition 'mail-from' cannot be used at phase 'auth': only at phases mail-from, "
                        "rcpt-to, data and commit"});
    CHECK(errors_of("table t { x }\nfilter f phase data match rcpt-to <t> bypass\n" + kRule) ==
          Errors{head + "27: condition 'rcpt-to' cannot be used at phase 'data': only at phase rcpt-to"});
}

TEST_CASE("filter: listen on ... filter NAME and filter { a, b }") {
    Config c = ok("filter a proc-exec filter-a\n"
                  "filter b proc-exec filter-b\n"
                  "filter both chain { a b }\n"
                  "listen on lo filter both port 2525\n"
                  "listen on eth0 tag in filter \"a\"\n"
                  "listen on eth1 filter { b, a } port 587\n"
                  "listen on socket filter { a }\n"
                  "listen on eth2\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 5);
    CHECK(c.listeners[0].filter == "both");
    CHECK(c.listeners[0].port == 2525);
    CHECK(c.listeners[1].filter == "a");
    CHECK(c.listeners[1].tag == "in");
    // { } is an anonymous chain, named after where it is written.
    CHECK(c.listeners[2].filter == "<anon:6:23>");
    CHECK(c.listeners[2].port == 587);
    const Filter* anon = c.find_filter("<anon:6:23>");
    REQUIRE(anon);
    CHECK(anon->kind == Filter::Kind::Chain);
    CHECK(anon->chain == std::vector<std::string>{"b", "a"});
    CHECK(anon->where.line == 6);
    CHECK(anon->where.column == 23);
    CHECK(c.listeners[3].socket);
    CHECK(c.listeners[3].filter == "<anon:7:25>");
    CHECK(c.find_filter("<anon:7:25>")->chain == std::vector<std::string>{"a"});
    CHECK(c.listeners[4].filter.empty());
    REQUIRE(c.filters.size() == 5);
}

TEST_CASE("filter: the filter lines of Debian 12's OpenSMTPD filter packages") {
    Config c = ok("table nets { 192.0.2.0/24 }\n"
                  "filter check_rdns phase connect match !rdns disconnect \"550 no rDNS\"\n"
                  "filter check_fcrdns phase connect match !fcrdns disconnect \"550 no FCrDNS\"\n"
                  "filter senderscore proc-exec \"filter-senderscore -blockBelow 10 -junkBelow 70 -slowFactor "
                  "5000\"\n"
                  "filter rspamd proc-exec \"filter-rspamd\"\n"
                  "filter dkimsign proc-exec \"filter-dkimsign -d example.org -s s1 -k "
                  "/etc/mail/dkim/private.key\" user _dkimsign group _dkimsign\n"
                  "listen on 0.0.0.0 filter { check_rdns, check_fcrdns, senderscore, rspamd }\n"
                  "listen on 0.0.0.0 port 10587 filter dkimsign\n" +
                  kRule);
    CHECK(c.procs.size() == 3);
    CHECK(c.filters.size() == 6);
    CHECK(c.find_filter(c.listeners[0].filter)->chain.size() == 4);
    CHECK(c.listeners[1].filter == "dkimsign");
}

TEST_CASE("filter: broken proc lines") {
    CHECK(errors_of("proc\n" + kRule) == Errors{"test.conf:1:5: expected a proc name after 'proc', found end of line"});
    CHECK(errors_of("proc user \"x\"\n" + kRule) ==
          Errors{"test.conf:1:6: expected a proc name after 'proc', found 'user', a reserved word (quote it to use "
                 "it here)"});
    CHECK(errors_of("proc \"\" \"x\"\n" + kRule) ==
          Errors{"test.conf:1:6: expected a proc name after 'proc', found \"\""});
    CHECK(errors_of("proc p\n" + kRule) ==
          Errors{"test.conf:1:7: expected a command after proc name 'p', quoted as in \"filter-rspamd\", found end "
                 "of line"});
    CHECK(errors_of("proc p \"x\" frob\n" + kRule) ==
          Errors{"test.conf:1:12: expected a proc option (user, group, chroot, protocol, timeout or on-failure), "
                 "found 'frob'"});
    CHECK(errors_of("proc p \"x\" user a user b\n" + kRule) == Errors{"test.conf:1:19: 'user' is given twice"});
    CHECK(errors_of("proc p \"x\" user\n" + kRule) ==
          Errors{"test.conf:1:16: expected a user name after 'user', found end of line"});
    CHECK(errors_of("proc p \"x\" group chroot\n" + kRule) ==
          Errors{"test.conf:1:18: expected a group name after 'group', found 'chroot', a reserved word (quote it "
                 "to use it here)"});
    CHECK(errors_of("proc p \"x\" chroot var/empty\n" + kRule) ==
          Errors{"test.conf:1:19: expected an absolute path after 'chroot', found 'var/empty'"});
    CHECK(errors_of("proc p \"x\" protocol 0.5\n" + kRule) ==
          Errors{"test.conf:1:21: expected 0.6 or 0.7 after 'protocol', found '0.5'"});
    CHECK(errors_of("proc p \"x\" timeout 30\n" + kRule) ==
          Errors{"test.conf:1:20: expected a delay (a number followed by s, m or h, e.g. 30s) after 'timeout', "
                 "found '30'"});
    CHECK(errors_of("proc p \"x\" timeout 0s\n" + kRule) ==
          Errors{"test.conf:1:20: timeout '0s' is out of range (1s to 1h)"});
    CHECK(errors_of("proc p \"x\" timeout 61m\n" + kRule) ==
          Errors{"test.conf:1:20: timeout '61m' is out of range (1s to 1h)"});
    CHECK(errors_of("proc p \"x\" timeout 99999999999999d\n" + kRule) ==
          Errors{"test.conf:1:20: timeout '99999999999999d' is out of range (1s to 1h)"});
    CHECK(errors_of("proc p \"x\" on-failure drop\n" + kRule) ==
          Errors{"test.conf:1:23: expected tempfail or pass after 'on-failure', found 'drop'"});
    CHECK(errors_of("proc p \"x\"\nproc p \"y\"\n" + kRule) ==
          Errors{"test.conf:2:6: proc 'p' is declared twice (first at test.conf:1:1)"});
    CHECK(errors_of("filter p proc-exec \"x\"\nproc p \"y\"\n" + kRule) ==
          Errors{"test.conf:2:6: proc 'p' is declared twice (first at test.conf:1:1, as the process of 'filter p "
                 "proc-exec')"});
    // A broken declaration is reported once, not again where it is used.
    CHECK(errors_of("proc p \"x\" frob\nproc p \"y\"\nfilter f proc p\n" + kRule) ==
          Errors{"test.conf:1:12: expected a proc option (user, group, chroot, protocol, timeout or on-failure), "
                 "found 'frob'",
                 "test.conf:2:6: proc 'p' is declared twice"});
}

TEST_CASE("filter: broken filter lines") {
    CHECK(errors_of("filter\n" + kRule) ==
          Errors{"test.conf:1:7: expected a filter name after 'filter', found end of line"});
    CHECK(errors_of("filter f\n" + kRule) ==
          Errors{"test.conf:1:9: expected proc, proc-exec, chain or phase after filter name 'f', found end of line"});
    CHECK(errors_of("filter f proc nope\n" + kRule) ==
          Errors{"test.conf:1:15: proc 'nope' is not declared: declare it with 'proc nope \"COMMAND\"' before this "
                 "line"});
    // Declared after its use: names are resolved as the file is read.
    CHECK(errors_of("filter f proc p\nproc p \"x\"\n" + kRule) ==
          Errors{"test.conf:1:15: proc 'p' is not declared: declare it with 'proc p \"COMMAND\"' before this line"});
    CHECK(errors_of(kProcs + "filter f proc p q\n" + kRule) ==
          Errors{"test.conf:5:17: expected end of line after the proc name, found 'q'"});
    CHECK(errors_of("filter f proc-exec\n" + kRule) ==
          Errors{"test.conf:1:19: expected a command after 'proc-exec', quoted as in \"filter-rspamd\", found end of "
                 "line"});
    CHECK(errors_of("filter f proc-exec \"x\" timeout 2h\n" + kRule) ==
          Errors{"test.conf:1:32: timeout '2h' is out of range (1s to 1h)"});
    CHECK(errors_of(kProcs + "filter p proc-exec \"x\"\n" + kRule) ==
          Errors{"test.conf:5:10: 'proc-exec' names its process as the filter, and proc 'p' is already declared at "
                 "test.conf:1:1; rename the filter or the proc"});
    CHECK(errors_of(kProcs + "filter fp proc q\n" + kRule) ==
          Errors{"test.conf:5:8: filter 'fp' is declared twice (first at test.conf:3:1)"});
    CHECK(errors_of("filter f proc-exec \"x\" frob\nfilter f proc-exec \"y\"\nlisten on lo filter f\n" + kRule) ==
          Errors{"test.conf:1:24: expected a proc option (user, group, chroot, protocol, timeout or on-failure), "
                 "found 'frob'",
                 "test.conf:2:8: filter 'f' is declared twice"});
}

TEST_CASE("filter: broken chains") {
    CHECK(errors_of(kProcs + "filter c chain fp fq\n" + kRule) ==
          Errors{"test.conf:5:16: expected '{' after 'chain', as in chain { f1, f2 }, found 'fp'"});
    CHECK(errors_of(kProcs + "filter c chain { }\n" + kRule) ==
          Errors{"test.conf:5:16: empty chain: expected at least one filter name inside { }"});
    CHECK(errors_of(kRule + kProcs + "filter c chain { fp, fq\n") ==
          Errors{"test.conf:7:16: missing '}' to close this '{'"});
    CHECK(errors_of(kProcs + "filter c chain { fp } fq\n" + kRule) ==
          Errors{"test.conf:5:23: expected end of line after the chain, found 'fq'"});
    CHECK(errors_of(kProcs + "filter c chain { fp, nope }\n" + kRule) ==
          Errors{"test.conf:5:22: filter 'nope' is not declared: declare it with 'filter nope ...' before this line"});
    CHECK(errors_of(kProcs + "filter c chain { fp, fq, fp }\n" + kRule) ==
          Errors{"test.conf:5:26: filter 'fp' is given twice in the chain"});
    CHECK(errors_of(kProcs + "filter c chain { fp }\nfilter d chain { fq, c }\n" + kRule) ==
          Errors{"test.conf:6:22: filter 'c' is a chain, and chains cannot be nested: list its filters instead"});
    CHECK(errors_of(kProcs + "filter fp2 proc p\nfilter c chain { fp, fq, fp2 }\n" + kRule) ==
          Errors{"test.conf:6:26: filters 'fp' and 'fp2' both run on proc 'p': a chain can use each proc once"});
    CHECK(errors_of(kProcs + "filter c chain { fp, { fq } }\n" + kRule) ==
          Errors{"test.conf:5:22: expected a filter name or '}', found '{'"});
    // The line's other errors are still reported, and the chain is not declared.
    CHECK(errors_of(kProcs + "filter c chain { x, y }\nlisten on lo filter c\n" + kRule) ==
          Errors{"test.conf:5:18: filter 'x' is not declared: declare it with 'filter x ...' before this line",
                 "test.conf:5:21: filter 'y' is not declared: declare it with 'filter y ...' before this line"});
}

TEST_CASE("filter: broken built-in filters") {
    const std::string t = "table t { x }\n";
    CHECK(errors_of("filter f phase\n" + kRule) ==
          Errors{"test.conf:1:15: expected a phase (connect, helo, ehlo, auth, mail-from, rcpt-to, data or commit) "
                 "after 'phase', found end of line"});
    CHECK(errors_of("filter f phase data-line match fcrdns bypass\n" + kRule) ==
          Errors{"test.conf:1:16: expected a phase (connect, helo, ehlo, auth, mail-from, rcpt-to, data or commit) "
                 "after 'phase', found 'data-line'"});
    CHECK(errors_of("filter f phase connect fcrdns bypass\n" + kRule) ==
          Errors{"test.conf:1:24: expected 'match' after phase 'connect', found 'fcrdns'"});
    CHECK(errors_of("filter f phase connect match bypass\n" + kRule) ==
          Errors{"test.conf:1:30: expected a condition (fcrdns, rdns, src, helo, auth, mail-from or rcpt-to) after "
                 "'match', found 'bypass'"});
    CHECK(errors_of("filter f phase connect match ! ! rdns bypass\n" + kRule) ==
          Errors{"test.conf:1:32: expected a condition (fcrdns, rdns, src, helo, auth, mail-from or rcpt-to) after "
                 "'!', found '!'"});
    CHECK(errors_of(t + "filter f phase connect match fcrdns <t> bypass\n" + kRule) ==
          Errors{"test.conf:2:37: 'fcrdns' takes no table"});
    CHECK(errors_of("filter f phase connect match src 192.0.2.1 bypass\n" + kRule) ==
          Errors{"test.conf:1:34: expected a table <name> or { ... } after 'src', found '192.0.2.1'"});
    CHECK(errors_of("filter f phase connect match src regex bypass\n" + kRule) ==
          Errors{"test.conf:1:40: expected a table <name> or { ... } after 'regex', found 'bypass'"});
    CHECK(errors_of("filter f phase connect match rdns <nope> bypass\n" + kRule) ==
          Errors{"test.conf:1:36: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of(t + "filter f phase connect match rdns src <t> bypass\n" + kRule) ==
          Errors{"test.conf:2:35: a built-in filter tests one condition, and 'src' would be a second one: put one "
                 "filter per condition in a chain"});
    CHECK(errors_of("filter f phase connect match rdns\n" + kRule) ==
          Errors{"test.conf:1:34: expected a decision (reject, disconnect, rewrite, junk, report or bypass), found "
                 "end of line"});
    CHECK(errors_of("filter f phase connect match rdns accept\n" + kRule) ==
          Errors{"test.conf:1:35: expected a decision (reject, disconnect, rewrite, junk, report or bypass), found "
                 "'accept'"});
    CHECK(errors_of("filter f phase connect match rdns reject\n" + kRule) ==
          Errors{"test.conf:1:41: expected a reply after 'reject', as in reject \"550 5.7.1 rejected\", found end of "
                 "line"});
    CHECK(errors_of("filter f phase connect match rdns reject \"no rDNS\"\n" + kRule) ==
          Errors{"test.conf:1:42: the reply after 'reject' must start with a 4xx or 5xx code and a space, as in "
                 "reject \"550 5.7.1 rejected\"; found \"no rDNS\""});
    CHECK(errors_of("filter f phase connect match rdns disconnect \"250 fine\"\n" + kRule) ==
          Errors{"test.conf:1:46: the reply after 'disconnect' must start with a 4xx or 5xx code and a space, as in "
                 "disconnect \"550 5.7.1 rejected\"; found \"250 fine\""});
    CHECK(errors_of("filter f phase connect match rdns reject 550 no\n" + kRule) ==
          Errors{"test.conf:1:42: the reply after 'reject' must start with a 4xx or 5xx code and a space, as in "
                 "reject \"550 5.7.1 rejected\"; found '550'"});
    CHECK(errors_of("filter f phase connect match rdns reject \"5500 no\"\n" + kRule) ==
          Errors{"test.conf:1:42: the reply after 'reject' must start with a 4xx or 5xx code and a space, as in "
                 "reject \"550 5.7.1 rejected\"; found \"5500 no\""});
    CHECK(errors_of("filter f phase connect match rdns reject \"550 no\" now\n" + kRule) ==
          Errors{"test.conf:1:51: expected end of line after the reply, found 'now'"});
    CHECK(errors_of("filter f phase connect match rdns rewrite\n" + kRule) ==
          Errors{"test.conf:1:42: expected a value after 'rewrite', found end of line"});
    CHECK(errors_of("filter f phase connect match rdns report \"\"\n" + kRule) ==
          Errors{"test.conf:1:42: expected a text after 'report', found \"\""});
    CHECK(errors_of("filter f phase connect match rdns bypass now\n" + kRule) ==
          Errors{"test.conf:1:42: expected end of line after 'bypass', found 'now'"});
    CHECK(errors_of("filter f phase commit match rdns junk\n" + kRule) ==
          Errors{"test.conf:1:34: 'junk' cannot be used at phase 'commit': the message is complete by then and can "
                 "no longer be marked"});
    CHECK(errors_of("filter f phase data match rdns junk\n" + kRule).empty());
}

TEST_CASE("filter: broken listen filter options") {
    CHECK(errors_of("listen on lo filter nope\n" + kRule) ==
          Errors{"test.conf:1:21: filter 'nope' is not declared: declare it with 'filter nope ...' before this line"});
    CHECK(errors_of("listen on lo filter fp\n" + kProcs + kRule) ==
          Errors{"test.conf:1:21: filter 'fp' is not declared: declare it with 'filter fp ...' before this line"});
    CHECK(errors_of(kProcs + "listen on lo filter fp filter fq\n" + kRule) ==
          Errors{"test.conf:5:24: 'filter' is given twice"});
    CHECK(errors_of(kProcs + "listen on lo filter { fp } filter { fq }\n" + kRule) ==
          Errors{"test.conf:5:28: 'filter' is given twice"});
    CHECK(errors_of(kProcs + "listen on lo filter\n" + kRule) ==
          Errors{"test.conf:5:20: expected a filter name or { ... } after 'filter', found end of line"});
    CHECK(errors_of(kProcs + "listen on lo filter tag x\n" + kRule) ==
          Errors{"test.conf:5:21: expected a filter name or { ... } after 'filter', found 'tag', a reserved word "
                 "(quote it to use it here)"});
    CHECK(errors_of(kProcs + "listen on lo filter { }\n" + kRule) ==
          Errors{"test.conf:5:21: empty chain: expected at least one filter name inside { }"});
    CHECK(errors_of(kProcs + "filter c chain { fp }\nlisten on lo filter { c, fq }\n" + kRule) ==
          Errors{"test.conf:6:23: filter 'c' is a chain, and chains cannot be nested: list its filters instead"});
    CHECK(errors_of(kProcs + "filter fp2 proc p\nlisten on lo filter { fp fp2 }\n" + kRule) ==
          Errors{"test.conf:6:26: filters 'fp' and 'fp2' both run on proc 'p': a chain can use each proc once"});
    CHECK(errors_of(kProcs + "listen on lo filter { fq, fq }\n" + kRule) ==
          Errors{"test.conf:5:27: filter 'fq' is given twice in the chain"});
    CHECK(errors_of(kProcs + "listen on filter fp\n" + kRule) ==
          Errors{"test.conf:5:11: expected an address, interface, hostname or 'socket' after 'listen on', found "
                 "'filter'"});
    // The relay side of filters (smtp-out): read, names checked, no effect (compat_test.cpp).
    CHECK(errors_of(kProcs + "action r relay filter fp\nmatch for any action r\n").empty());
    CHECK(errors_of(kProcs + "action r relay filter { fp, nope }\nmatch for any action r\n").size() == 1);
}
