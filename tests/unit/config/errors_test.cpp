// Config parser: broken configs, each with the exact `file:line:col: message`
// a user sees. Every line here is one mistake a person can make.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

namespace {

using Errors = std::vector<std::string>;

// A table and an action that the broken lines below may refer to.
const std::string kPrelude = "table t { a = b }\naction d mbox\n";
const std::string kMatch = "match for local action d\n";

}  // namespace

TEST_CASE("errors: table references") {
    CHECK(errors_of("action d mbox alias x\n" + kMatch) ==
          Errors{"test.conf:1:21: expected a table name in <...> after 'alias', found 'x'"});
    CHECK(errors_of("action d mbox alias <nope>\n" + kMatch) ==
          Errors{"test.conf:1:22: unknown table 'nope': declare it with 'table nope ...' before this line"});
    // Declared after its use: OpenSMTPD resolves names at parse time, so do we.
    CHECK(errors_of("action d mbox alias <al>\ntable al { a = b }\n" + kMatch) ==
          Errors{"test.conf:1:22: unknown table 'al': declare it with 'table al ...' before this line"});
    CHECK(errors_of("action d mbox alias <a\n" + kMatch) ==
          Errors{"test.conf:1:23: expected '>' after table name 'a', found end of line"});
    CHECK(errors_of("action d mbox virtual <>\n" + kMatch) ==
          Errors{"test.conf:1:24: expected a table name after '<', found '>'"});
    CHECK(first_error(kPrelude + "match from src <nets> action d\n") ==
          "test.conf:3:17: unknown table 'nets': declare it with 'table nets ...' before this line");
}

TEST_CASE("errors: table declarations") {
    CHECK(errors_of("table t { a }\ntable t { b }\n" + kRule) ==
          Errors{"test.conf:2:7: table 't' is declared twice (first at test.conf:1:7)"});
    CHECK(errors_of("table t { a, b = c }\n" + kRule) ==
          Errors{"test.conf:1:14: a table cannot mix 'key = value' entries and plain list entries"});
    CHECK(errors_of("table t { }\n" + kRule) ==
          Errors{"test.conf:1:9: empty table: expected at least one entry inside { }"});
    CHECK(errors_of("table t db:aliases.db\n" + kRule) ==
          Errors{"test.conf:1:9: expected an absolute path after 'db:' in table 't', found 'db:aliases.db'"});
    CHECK(errors_of("table t aliases\n" + kRule) ==
          Errors{"test.conf:1:9: expected 'BACKEND:/path', a quoted \"/path\" or { ... } after table name 't', "
                 "found 'aliases'"});
    CHECK(errors_of("table\n" + kRule) ==
          Errors{"test.conf:1:6: expected a table name after 'table', found end of line"});
    CHECK(errors_of("table t { a = }\n" + kRule) == Errors{"test.conf:1:15: expected a value after 'a' =, found '}'"});
    CHECK(errors_of("table t file:/x extra\n" + kRule) ==
          Errors{"test.conf:1:17: expected end of line after the table 't', found 'extra'"});
    // The unclosed `{` takes the rest of the file with it; the error points at it.
    CHECK(first_error("table t { a, b\n" + kRule) == "test.conf:1:9: missing '}' to close this '{'");
}

TEST_CASE("errors: listen") {
    CHECK(errors_of("listen lo\n" + kRule) == Errors{"test.conf:1:8: expected 'on' after 'listen', found 'lo'"});
    CHECK(errors_of("listen on\n" + kRule) ==
          Errors{"test.conf:1:10: expected an address, interface, hostname or 'socket' after 'listen on', "
                 "found end of line"});
    CHECK(errors_of("listen on port 25\n" + kRule) ==
          Errors{"test.conf:1:11: expected an address, interface, hostname or 'socket' after 'listen on', "
                 "found 'port'"});
    CHECK(errors_of("listen on lo port 70000\n" + kRule) ==
          Errors{"test.conf:1:19: port 70000 is out of range (1-65535)"});
    CHECK(errors_of("listen on lo port 0\n" + kRule) == Errors{"test.conf:1:19: port 0 is out of range (1-65535)"});
    CHECK(errors_of("listen on lo port -1\n" + kRule) == Errors{"test.conf:1:19: port -1 is out of range (1-65535)"});
    CHECK(
        errors_of("listen on lo port imap\n" + kRule) ==
        Errors{"test.conf:1:19: expected a port number or one of smtp, submission, smtps after 'port', found 'imap'"});
    CHECK(errors_of("listen on lo frob\n" + kRule) ==
          Errors{"test.conf:1:14: expected a listen option (port, inet4, inet6, hostname, hostnames, tag, mask-src, "
                 "tls, tls-require, smtps, pki, ca, ciphers, protocols, auth, auth-optional, senders, received-auth, "
                 "no-dsn, proxy-v2, filter), found 'frob'"});
    CHECK(errors_of("listen on lo port 25 port 26\n" + kRule) == Errors{"test.conf:1:22: 'port' is given twice"});
    CHECK(errors_of("listen on lo inet4 inet6\n" + kRule) ==
          Errors{"test.conf:1:20: 'inet6' conflicts with an earlier address family"});
    CHECK(errors_of("listen on socket port 25\n" + kRule) ==
          Errors{"test.conf:1:18: 'port' cannot be used with 'listen on socket'"});
    CHECK(errors_of("listen on socket\nlisten on socket\n" + kRule) ==
          Errors{"test.conf:2:11: 'listen on socket' is declared twice (first at test.conf:1:1)"});
    CHECK(errors_of("listen on lo tag 123456789012345678901234567890123\n" + kRule) ==
          Errors{"test.conf:1:18: tag is longer than 32 characters"});
    CHECK(errors_of("listen on lo hostname\n" + kRule) ==
          Errors{"test.conf:1:22: expected a host name after 'hostname', found end of line"});
}

TEST_CASE("errors: mda wrapper") {
    const std::string w = "mda wrapper w \"/usr/bin/env -i %{mda}\"\n";
    CHECK(errors_of(w + "action d mda \"/usr/bin/procmail\" wrapper w\n" + kMatch).empty());
    CHECK(errors_of("action d mbox wrapper w\n" + kMatch) ==
          Errors{"test.conf:1:23: no mda wrapper named 'w': declare it first with mda wrapper 'w' \"COMMAND\""});
    CHECK(errors_of(w + w + "action d mbox\n" + kMatch) == Errors{"test.conf:2:13: mda wrapper 'w' is declared twice"});
    CHECK(errors_of("mda frob 3\naction d mbox\n" + kMatch) ==
          Errors{"test.conf:1:5: expected 'wrapper' or 'limit' after 'mda', found 'frob'"});
    CHECK(errors_of("mda wrapper w\naction d mbox\n" + kMatch).size() == 1);
    CHECK(errors_of("mda wrapper w \"%{nosuch}\"\naction d mbox\n" + kMatch).size() == 1);
    CHECK(errors_of(w + "action d forward-only wrapper w\n" + kMatch) ==
          Errors{"test.conf:2:23: 'wrapper' cannot be used with 'forward-only'"});
}

TEST_CASE("errors: action") {
    CHECK(errors_of("action d mbox\naction d maildir\n" + kMatch) ==
          Errors{"test.conf:2:8: action 'd' is declared twice (first at test.conf:1:1)"});
    CHECK(errors_of("table a { x = y }\naction d mbox alias <a> virtual <a>\n" + kMatch) ==
          Errors{"test.conf:2:25: 'virtual' cannot be used together with 'alias'"});
    CHECK(errors_of("table a { x = y }\naction d mbox ttl 4d alias <a>\n" + kMatch) ==
          Errors{"test.conf:2:22: 'alias' must come before 'ttl'"});
    CHECK(errors_of("action d mbox ttl 4d ttl 5d\n" + kMatch) == Errors{"test.conf:1:22: 'ttl' is given twice"});
    // forward-only and expand-only deliver nothing themselves: no account to run as.
    CHECK(errors_of("action d forward-only user bob\n" + kMatch) ==
          Errors{"test.conf:1:23: 'user' cannot be used with 'forward-only'"});
    CHECK(errors_of("action d expand-only user bob\n" + kMatch) ==
          Errors{"test.conf:1:22: 'user' cannot be used with 'expand-only'"});
    CHECK(errors_of("action d forward-only alias <a>\n" + kMatch) ==
          Errors{"test.conf:1:30: unknown table 'a': declare it with 'table a ...' before this line"});
    CHECK(errors_of("action d deliver\n" + kMatch) ==
          Errors{"test.conf:1:10: expected an action method (mbox, maildir, mda, lmtp, forward-only, expand-only or "
                 "relay) after "
                 "action name 'd', "
                 "found "
                 "'deliver'"});
    // Without a name nothing can be remembered, so the rule using it is reported too.
    CHECK(errors_of("action\n" + kMatch) ==
          Errors{"test.conf:1:7: expected an action name after 'action', found end of line",
                 "test.conf:2:24: unknown action 'd': declare it with 'action d ...' before this line"});
    CHECK(errors_of("action d mbox user bob\n" + kMatch) ==
          Errors{"test.conf:1:15: 'user' cannot be used with 'mbox'"});
    CHECK(
        errors_of("action d maildir junk frob\n" + kMatch) ==
        Errors{
            "test.conf:1:23: expected an action option (alias, virtual, userbase, user, wrapper, ttl), found 'frob'"});
    CHECK(
        errors_of("action d mbox ttl 4\n" + kMatch) ==
        Errors{"test.conf:1:19: expected a delay (a number followed by s, m, h or d, e.g. 4d) after 'ttl', found '4'"});
}

TEST_CASE("errors: match") {
    CHECK(errors_of("match for local action nope\n") ==
          Errors{"test.conf:1:24: unknown action 'nope': declare it with 'action nope ...' before this line"});
    CHECK(errors_of(kPrelude + "match from any from local action d\n") ==
          Errors{"test.conf:3:16: 'from' may appear only once in a match rule"});
    CHECK(errors_of(kPrelude + "match from any for any\n") ==
          Errors{"test.conf:3:23: expected 'action NAME' or 'reject' to end the match rule, found end of line"});
    CHECK(errors_of(kPrelude + "match for any action d extra\n") ==
          Errors{"test.conf:3:24: expected end of line after 'action d', found 'extra'"});
    CHECK(errors_of(kPrelude + "match ! action d\n") == Errors{"test.conf:3:7: '!' cannot be used before 'action'"});
    CHECK(errors_of(kPrelude + "match for everyone action d\n") ==
          Errors{"test.conf:3:11: expected any, local, domain or rcpt-to after 'for', found 'everyone'"});
    CHECK(errors_of(kPrelude + "match from source <t> action d\n") ==
          Errors{"test.conf:3:12: expected any, local, socket, src, rdns, auth or mail-from after 'from', found "
                 "'source'"});
    CHECK(errors_of(kPrelude + "match for domain regex action d\n") ==
          Errors{"test.conf:3:24: expected a value, <table> or { ... } after 'regex', found 'action'"});
    CHECK(errors_of(kPrelude + "match frob action d\n") ==
          Errors{"test.conf:3:7: expected a match option (from, for, auth, helo, mail-from, rcpt-to, tag, tls), "
                 "'action NAME' or "
                 "'reject', found 'frob'"});
    CHECK(errors_of(kPrelude + "match for any reject now\n") ==
          Errors{"test.conf:3:22: expected end of line after 'reject', found 'now'"});
}

TEST_CASE("errors: global options") {
    CHECK(errors_of("smtp max-message-size 35X\n" + kRule) ==
          Errors{"test.conf:1:23: expected a size (bytes, or a number followed by K, M or G, e.g. 35M) after "
                 "'max-message-size', found '35X'"});
    CHECK(errors_of("smtp max-message-size 99999999999999999999G\n" + kRule) ==
          Errors{"test.conf:1:23: size '99999999999999999999G' is out of range"});
    CHECK(errors_of("smtp max-message-size 0\n" + kRule) == Errors{"test.conf:1:23: size '0' is out of range"});
    CHECK(errors_of("queue ttl 4\n" + kRule) ==
          Errors{"test.conf:1:11: expected a delay (a number followed by s, m, h or d, e.g. 4d) after 'queue ttl', "
                 "found '4'"});
    CHECK(errors_of("queue ttl 4w\n" + kRule) ==
          Errors{"test.conf:1:11: expected a delay (a number followed by s, m, h or d, e.g. 4d) after 'queue ttl', "
                 "found '4w'"});
    CHECK(errors_of("queue ttl 0s\n" + kRule) == Errors{"test.conf:1:11: delay '0s' is out of range (1s to 24855d)"});
    CHECK(errors_of("queue ttl 99999999999d\n" + kRule) ==
          Errors{"test.conf:1:11: delay '99999999999d' is out of range (1s to 24855d)"});
    CHECK(errors_of("smtp limit max-rcpt 0\n" + kRule) ==
          Errors{"test.conf:1:21: 'max-rcpt' 0 is out of range (1-1000000)"});
    CHECK(errors_of("smtp limit max-sessions 2000000\n" + kRule) ==
          Errors{"test.conf:1:25: 'max-sessions' 2000000 is out of range (1-1000000)"});
    CHECK(errors_of("smtp limit max-mails many\n" + kRule) ==
          Errors{"test.conf:1:22: expected a number after 'max-mails', found 'many'"});
    CHECK(errors_of("mta resolver \"dns.example.org\"\n" + kRule) ==
          Errors{"test.conf:1:14: invalid DNS server list \"dns.example.org\"; expected ADDR[:PORT] separated by ','"});
    CHECK(errors_of("mta resolver\n" + kRule) ==
          Errors{"test.conf:1:13: expected DNS server addresses after 'mta resolver', as in mta resolver "
                 "\"127.0.0.1:5353\", found end of line"});
    CHECK(errors_of("mta limit max-conn-per-domain 0\n" + kRule) ==
          Errors{"test.conf:1:31: 'max-conn-per-domain' 0 is out of range (1-1000000)"});
    // The rest of `mta`: compat_test.cpp.
    CHECK(errors_of("smtp limit\n" + kRule) ==
          Errors{"test.conf:1:11: expected max-mails, max-rcpt, max-sessions, max-sessions-per-address, "
                 "max-conn-rate, max-auth-failures, command-timeout, tls-timeout or min-data-rate after 'limit', "
                 "found end of line"});
    CHECK(errors_of("smtp limit command-timeout 0\n" + kRule) ==
          Errors{"test.conf:1:28: 'command-timeout' 0 is out of range (1-1000000)"});
    CHECK(errors_of("smtp sub-addr-delim @\n" + kRule) ==
          Errors{"test.conf:1:21: expected a single character (not '@' or a space) after 'sub-addr-delim', found '@'"});
    CHECK(
        errors_of("smtp sub-addr-delim ++\n" + kRule) ==
        Errors{"test.conf:1:21: expected a single character (not '@' or a space) after 'sub-addr-delim', found '++'"});
    CHECK(errors_of("smtp frob\n" + kRule) ==
          Errors{
              "test.conf:1:6: expected max-message-size, limit, sub-addr-delim or ciphers after 'smtp', found 'frob'"});
    CHECK(errors_of("queue path relative/dir\n" + kRule) ==
          Errors{"test.conf:1:12: expected an absolute path after 'queue path', found 'relative/dir'"});
    CHECK(errors_of("pidfile\n" + kRule) ==
          Errors{"test.conf:1:8: expected an absolute path after 'pidfile', found end of line"});
    CHECK(errors_of("control sock \"/x\"\n" + kRule) ==
          Errors{"test.conf:1:9: expected 'socket' after 'control', found 'sock'"});
}

TEST_CASE("errors: mda needs one non-empty command") {
    CHECK(errors_of("action d mda\n" + kMatch) ==
          Errors{"test.conf:1:13: expected a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\", "
                 "found end of line"});
    CHECK(errors_of("table t { a = b }\naction d mda alias <t>\n" + kMatch) ==
          Errors{"test.conf:2:14: expected a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\", "
                 "found 'alias'"});
    CHECK(errors_of("action d mda <t>\n" + kMatch) ==
          Errors{"test.conf:1:14: expected a command after 'mda', quoted as in mda \"/usr/bin/procmail -f -\", "
                 "found '<'"});
    CHECK(errors_of("action d mda \"\"\n" + kMatch) == Errors{"test.conf:1:14: the 'mda' command is empty"});
    CHECK(errors_of("action d mda \" \t \"\n" + kMatch) == Errors{"test.conf:1:14: the 'mda' command is empty"});
    // Options as for maildir, in the same order rules.
    CHECK(
        errors_of("action d mda \"x\" junk\n" + kMatch) ==
        Errors{
            "test.conf:1:18: expected an action option (alias, virtual, userbase, user, wrapper, ttl), found 'junk'"});
    CHECK(errors_of("action d mda \"x\" \"y\"\n" + kMatch) ==
          Errors{
              "test.conf:1:18: expected an action option (alias, virtual, userbase, user, wrapper, ttl), found \"y\""});
    CHECK(errors_of("table t { a = b }\naction d mda \"x\" ttl 4d alias <t>\n" + kMatch) ==
          Errors{"test.conf:2:25: 'alias' must come before 'ttl'"});
    CHECK(errors_of("action d mda \"x\" user a user b\n" + kMatch) == Errors{"test.conf:1:25: 'user' is given twice"});
}

TEST_CASE("errors: format templates in maildir paths and mda commands") {
    // The column is the offending byte inside the quotes.
    const std::string names =
        "sender, sender.user, sender.domain, rcpt, rcpt.user, rcpt.domain, dest, dest.user, dest.domain, "
        "user.username, user.directory or mbox.from";
    CHECK(errors_of("action d maildir \"/var/vmail/%{nosuch}\"\n" + kMatch) ==
          Errors{"test.conf:1:32: expected a format name (" + names + ") after '%{', found 'nosuch'"});
    CHECK(errors_of("action d maildir \"/m/%{rcpt.user:lowercase|strp}\" junk\n" + kMatch) ==
          Errors{"test.conf:1:44: expected a modifier (lowercase, uppercase, strip or raw) in "
                 "'%{rcpt.user:lowercase|strp}', found 'strp'"});
    CHECK(errors_of("action d maildir \"/m/%{rcpt.user\"\n" + kMatch) ==
          Errors{"test.conf:1:22: expected '}' to close this '%{'"});
    CHECK(errors_of("action d maildir \"/m/%{rcpt.user[x]}\"\n" + kMatch) ==
          Errors{"test.conf:1:33: expected a slice [N], [N:], [:M] or [N:M] (whole numbers, negative ones counting "
                 "from the end) in '%{rcpt.user[x]}', found '[x]'"});
    CHECK(errors_of("action d maildir \"/m/%{mda}\"\n" + kMatch) ==
          Errors{"test.conf:1:24: %{mda} is only available in an mda wrapper's command"});
    CHECK(errors_of("action d maildir \"~alice/Maildir\"\n" + kMatch) ==
          Errors{"test.conf:1:19: expected '~/' (the user's home folder) or %{user.directory}, found '~alice': "
                 "another user's home is not supported"});
    // A bare word path: the column counts from the word.
    CHECK(errors_of("action d maildir ~alice/Maildir\n" + kMatch) ==
          Errors{"test.conf:1:18: expected '~/' (the user's home folder) or %{user.directory}, found '~alice': "
                 "another user's home is not supported"});
    // Escapes move the bytes: the error points at the path itself.
    CHECK(errors_of("action d maildir \"/m/\\\"q\\\"/%{bad}\"\n" + kMatch) ==
          Errors{"test.conf:1:18: expected a format name (" + names + ") after '%{', found 'bad'"});
    // raw would hand envelope text to /bin/sh.
    CHECK(errors_of("action d mda \"/usr/bin/procmail -f %{sender:raw}\"\n" + kMatch) ==
          Errors{"test.conf:1:45: 'raw' cannot be used in an mda command: envelope values reach /bin/sh only "
                 "sanitised (the command finds them unchanged in $SENDER, $RECIPIENT, $LOCAL, $DOMAIN...)"});
    CHECK(errors_of("action d mda \"/usr/bin/deliver %{rcpt.user:up}\"\n" + kMatch) ==
          Errors{"test.conf:1:44: expected a modifier (lowercase, uppercase, strip or raw) in '%{rcpt.user:up}', "
                 "found 'up'"});
    // Good templates of every kind pass.
    CHECK(errors_of("action d maildir \"~/Maildir/%{rcpt.domain[0]:lowercase}/%{dest.user:lowercase|strip}\"\n"
                    "action m mda \"/usr/bin/procmail -f %{mbox.from} -a %{rcpt.user[-3:]:uppercase} 100%%\"\n"
                    "action r maildir \"/srv/%{rcpt:raw}\"\n" +
                    kMatch)
              .empty());
}

TEST_CASE("errors: a refused pre-6.4 rule still counts as a rule") {
    // No "no match rule" error on top of the line's own.
    CHECK(errors_of("accept from any for domain example.org deliver to mbx\n") ==
          Errors{"test.conf:1:51: expected mbox, maildir, mda or lmtp after 'deliver to', found 'mbx'"});
    CHECK(errors_of("reject from any for any relay\n") ==
          Errors{"test.conf:1:25: 'relay' cannot be used in a 'reject' rule"});
}

TEST_CASE("errors: file level") {
    CHECK(errors_of("action d mbox\n") ==
          Errors{"test.conf:1:1: no 'match' rule: nothing would ever be accepted; add at least one "
                 "'match ... action NAME' line"});
    CHECK(errors_of("") == Errors{"test.conf:1:1: no 'match' rule: nothing would ever be accepted; add at least one "
                                  "'match ... action NAME' line"});
    CHECK(errors_of("frobnicate on\n" + kRule) ==
          Errors{"test.conf:1:1: unknown directive 'frobnicate'; expected table, listen, action, match, smtp, "
                 "queue, include or a macro"});
    CHECK(errors_of("{ a }\n" + kRule) ==
          Errors{"test.conf:1:1: expected a directive (table, listen, action, match, ...), found '{'"});
    CHECK(errors_of("\"table\" t { a }\n" + kRule) ==
          Errors{"test.conf:1:1: expected a directive (table, listen, action, match, ...), found \"table\""});
    auto r = parse_file("/nonexistent/postern.conf");
    CHECK(formatted(r.errors) ==
          Errors{"/nonexistent/postern.conf:0:0: cannot read config file: No such file or directory"});
    CHECK_FALSE(r.config);
}

TEST_CASE("errors: macros") {
    CHECK(errors_of("listen on $nope\n" + kRule) == Errors{"test.conf:1:11: undefined macro '$nope'"});
    CHECK(errors_of("listen on lo port $p\np = 25\n" + kRule) == Errors{"test.conf:1:19: undefined macro '$p'"});
    CHECK(errors_of("listen on $ port 25\n" + kRule) == Errors{"test.conf:1:11: expected a macro name after '$'"});
    CHECK(errors_of("listen = 5\n" + kRule) ==
          Errors{"test.conf:1:1: 'listen' is a reserved word and cannot name a macro"});
    CHECK(errors_of("my-name = 5\n" + kRule) ==
          Errors{"test.conf:1:1: expected a macro name (letters, digits and '_') before '=', found 'my-name'"});
    CHECK(errors_of("a = b c\n" + kRule) ==
          Errors{"test.conf:1:7: expected end of line after the value of macro 'a' (quote a value that has spaces), "
                 "found 'c'"});
    CHECK(errors_of("a =\n" + kRule) == Errors{"test.conf:1:4: expected a value after 'a =', found end of line"});
    CHECK(errors_of("listen on $m\n" + kRule, Macros{{"m", "\"abc"}}) ==
          Errors{"test.conf:1:11: in the value of macro 'm': unterminated quoted string: missing closing \""});
    // A macro that expands to a wrong value is reported where it is used.
    CHECK(errors_of("p = 99999\nlisten on lo port $p\n" + kRule) ==
          Errors{"test.conf:2:19: port 99999 is out of range (1-65535)"});
}

TEST_CASE("errors: lexing") {
    CHECK(errors_of("table t \"/etc/x\n" + kRule) ==
          Errors{"test.conf:1:9: unterminated quoted string: missing closing \""});
    CHECK(errors_of("table t '/etc/x\n" + kRule) ==
          Errors{"test.conf:1:9: unterminated quoted string: missing closing '"});
    CHECK(errors_of(std::string("listen on lo\x01\n") + kRule) ==
          Errors{"test.conf:1:13: unexpected control character (byte 0x01)"});
    CHECK(errors_of(std::string("listen on \"l\0o\"\n", 16) + kRule) ==
          Errors{"test.conf:1:13: unexpected control character (byte 0x00) in quoted string"});
    CHECK(errors_of("listen on " + std::string(9000, 'a') + "\n" + kRule) ==
          Errors{"test.conf:1:11: word is longer than 8192 bytes"});
    CHECK(errors_of("listen on \"" + std::string(9000, 'a') + "\"\n" + kRule) ==
          Errors{"test.conf:1:11: quoted string is longer than 8192 bytes"});
}

TEST_CASE("errors: every broken line is reported, parsing resumes at the next line") {
    CHECK(errors_of("listen on lo port 99999\n"
                    "table t { a, b = c }\n"
                    "action d mbox alias <t>\n"  // t is broken: no second error about it
                    "pki x kee y\n"
                    "listen on lo tls pki x\n"  // x is broken: silent
                    "action e mbox\n"
                    "match for local action d\n"  // d is broken: silent
                    "match for local action nope\n"
                    "match from any for any action e extra\n"
                    "queue ttl 4\n") ==
          Errors{
              "test.conf:1:19: port 99999 is out of range (1-65535)",
              "test.conf:2:14: a table cannot mix 'key = value' entries and plain list entries",
              "test.conf:4:7: expected cert, key or dhe, found 'kee'",
              "test.conf:8:24: unknown action 'nope': declare it with 'action nope ...' before this line",
              "test.conf:9:33: expected end of line after 'action e', found 'extra'",
              "test.conf:10:11: expected a delay (a number followed by s, m, h or d, e.g. 4d) after 'queue ttl', "
              "found '4'",
          });
    auto r = parse("pki x\n" + kRule);
    CHECK_FALSE(r.config);  // no model is handed out while any error stands
}

TEST_CASE("errors: includes") {
    const std::string dir = source_path("tests/config/include");
    CHECK(formatted(parse_file(dir + "/missing.conf").errors) ==
          Errors{dir + "/missing.conf:2:9: cannot read included file '" + dir +
                 "/does-not-exist.conf': No such file or directory"});
    CHECK(formatted(parse_file(dir + "/loop_a.conf").errors) ==
          Errors{dir + "/loop_b.conf:2:9: include loop: '" + dir + "/loop_a.conf' is already being read",
                 dir + "/loop_a.conf:3:22: unknown action 'x': declare it with 'action x ...' before this line"});
    CHECK(
        formatted(parse_file(dir + "/bad_outer.conf").errors) ==
        Errors{dir + "/bad_inner.conf:2:24: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of("include\n" + kRule) ==
          Errors{"test.conf:1:8: expected a quoted file name after 'include', found end of line"});
    CHECK(errors_of("include \"/\"\n" + kRule) ==
          Errors{"test.conf:1:9: cannot read included file '/': Is a directory"});
}

TEST_CASE("errors: from rdns, helo and built-in tables") {
    CHECK(errors_of(kPrelude + "match helo action d\n") ==
          Errors{"test.conf:3:12: expected a value, <table> or { ... } after 'helo', found 'action'"});
    CHECK(errors_of(kPrelude + "match from any helo regex for any action d\n") ==
          Errors{"test.conf:3:27: expected a value, <table> or { ... } after 'regex', found 'for'"});
    CHECK(errors_of(kPrelude + "match from rdns regex for any action d\n") ==
          Errors{"test.conf:3:23: expected a value, <table> or { ... } after 'regex', found 'for'"});
    CHECK(errors_of(kPrelude + "match from rdns <nope> action d\n") ==
          Errors{"test.conf:3:18: unknown table 'nope': declare it with 'table nope ...' before this line"});
    CHECK(errors_of(kPrelude + "match helo mx.example.org helo mx2 action d\n") ==
          Errors{"test.conf:3:27: 'helo' may appear only once in a match rule"});
    CHECK(errors_of(kPrelude + "match from rdns from any action d\n") ==
          Errors{"test.conf:3:17: 'from' may appear only once in a match rule"});
    CHECK(errors_of(kPrelude + "match from rdns { } action d\n") ==
          Errors{"test.conf:3:17: empty table: expected at least one entry inside { }"});
    CHECK(errors_of(kPrelude + "match from rdns { a, b = c } action d\n") ==
          Errors{"test.conf:3:22: a table cannot mix 'key = value' entries and plain list entries"});
    // A misspelt built-in is an unknown table like any other.
    CHECK(errors_of(kPrelude + "match for domain <localname> action d\n") ==
          Errors{"test.conf:3:19: unknown table 'localname': declare it with 'table localname ...' before this line"});
    CHECK(errors_of(kPrelude + "match for domain <getpwnam> action d\n") ==
          Errors{"test.conf:3:19: unknown table 'getpwnam': declare it with 'table getpwnam ...' before this line"});
    // Too late to replace a built-in table once a line above has used it.
    CHECK(errors_of(kPrelude + "match from src <localhost> for any action d\ntable localhost { 127.0.0.1 }\n") ==
          Errors{"test.conf:4:7: table 'localhost' is declared after the built-in <localhost> was used at "
                 "test.conf:3:17; declare it above that line to replace the built-in table"});
    // A broken declaration of a built-in name is not silently replaced by the built-in.
    CHECK(errors_of("table anyhost { a, b = c }\naction d mbox\nmatch from src <anyhost> action d\n") ==
          Errors{"test.conf:1:20: a table cannot mix 'key = value' entries and plain list entries"});
}

TEST_CASE("errors: bounce warn-interval") {
    CHECK(errors_of("bounce\n" + kRule) ==
          Errors{"test.conf:1:7: expected 'warn-interval' after 'bounce', found end of line"});
    CHECK(errors_of("bounce warn 1h\n" + kRule) ==
          Errors{"test.conf:1:8: expected 'warn-interval' after 'bounce', found 'warn'"});
    CHECK(errors_of("bounce warn-interval\n" + kRule) ==
          Errors{"test.conf:1:21: expected a delay (a number followed by s, m, h or d, e.g. 4d) after "
                 "'bounce warn-interval', found end of line"});
    CHECK(errors_of("bounce warn-interval 4\n" + kRule) ==
          Errors{"test.conf:1:22: expected a delay (a number followed by s, m, h or d, e.g. 4d) after "
                 "'bounce warn-interval', found '4'"});
    CHECK(errors_of("bounce warn-interval 1h,\n" + kRule) ==
          Errors{"test.conf:1:25: expected a delay (a number followed by s, m, h or d, e.g. 4d) after ',', "
                 "found end of line"});
    CHECK(errors_of("bounce warn-interval 1h 2h\n" + kRule) ==
          Errors{"test.conf:1:25: expected end of line after the delay (separate delays with ','), found '2h'"});
    CHECK(errors_of("bounce warn-interval 0s\n" + kRule) ==
          Errors{"test.conf:1:22: delay '0s' is out of range (1s to 24855d)"});
    CHECK(errors_of("bounce warn-interval 1h, 2h, 3h, 4h, 5h\n" + kRule) ==
          Errors{"test.conf:1:22: too many bounce warn-interval delays: at most 4 in all"});
    CHECK(errors_of("bounce warn-interval 1h, 2h, 3h\nbounce warn-interval 4h, 5h\n" + kRule) ==
          Errors{"test.conf:2:22: too many bounce warn-interval delays: at most 4 in all"});
    // The pre-6.4 spelling is read as the current one, and refused alike.
    CHECK(errors_of("bounce-warn 1h 2h\n" + kRule) ==
          Errors{"test.conf:1:16: expected end of line after the delay (separate delays with ','), found '2h'"});
}

TEST_CASE("errors: queue compression and encryption, and their refusals") {
    auto r = parse("queue compression\nqueue encryption 0123456789abcdef0123456789abcdef\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->queue_compression);
    CHECK(r.config->queue_encryption);
    CHECK(r.config->queue_encryption_key == "0123456789abcdef0123456789abcdef");
    // Before 6.4: `key` before the key; without one, the key file's.
    r = parse("queue encryption key \"0123456789abcdef0123456789abcdef\"\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->queue_encryption_key == "0123456789abcdef0123456789abcdef");
    r = parse("queue encryption\n" + kRule);
    REQUIRE(r.errors.empty());
    CHECK(r.config->queue_encryption);
    CHECK(r.config->queue_encryption_key.empty());
    CHECK_FALSE(r.config->queue_compression);

    CHECK(errors_of("queue encryption key YourKeyHere\n" + kRule) ==
          Errors{"test.conf:1:22: the queue encryption key must be 32 characters, as 'openssl rand -hex 16' prints; "
                 "this one has 11"});
    CHECK(errors_of("queue encryption stdin\n" + kRule) ==
          Errors{"test.conf:1:18: postern does not read the queue key from standard input (a daemon has none): leave "
                 "the key out to read it from the key file, or write it here"});
    CHECK(errors_of("queue compression gzip\n" + kRule) ==
          Errors{"test.conf:1:19: expected end of line after 'queue compression', found 'gzip'"});
    CHECK(errors_of("queue encryption 0123456789abcdef0123456789abcdef x\n" + kRule) ==
          Errors{"test.conf:1:51: expected end of line after the key, found 'x'"});
}
