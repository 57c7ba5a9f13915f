// Unit tests of the SMTP command line and MAIL/RCPT path parsers
// (core/smtp/command.cpp): accepted forms with their exact results, and
// refusals with their exact reply texts.

#include <catch2/catch.hpp>

#include <string>

#include "smtp/command.hpp"

using namespace postern::smtp;
using namespace std::string_literals;

namespace {

PathArg mail_ok(std::string_view args) {
    PathError err;
    auto r = parse_mail_from(args, &err);
    INFO("MAIL args: " << args << " error: " << err.text);
    REQUIRE(r.has_value());
    return *r;
}

PathArg rcpt_ok(std::string_view args) {
    PathError err;
    auto r = parse_rcpt_to(args, &err);
    INFO("RCPT args: " << args << " error: " << err.text);
    REQUIRE(r.has_value());
    return *r;
}

std::string mail_err(std::string_view args) {
    PathError err;
    auto r = parse_mail_from(args, &err);
    INFO("MAIL args: " << args);
    REQUIRE_FALSE(r.has_value());
    return err.text;
}

std::string rcpt_err(std::string_view args) {
    PathError err;
    auto r = parse_rcpt_to(args, &err);
    INFO("RCPT args: " << args);
    REQUIRE_FALSE(r.has_value());
    return err.text;
}

const std::string kMailSyntax = "5.1.7 Sender address syntax error: ";
const std::string kRcptSyntax = "5.1.3 Recipient address syntax error: ";

}  // namespace

TEST_CASE("parse_command: verbs are case-insensitive", "[smtp][command]") {
    struct Case {
        const char* line;
        Verb verb;
        const char* name;
        const char* args;
    };
    const Case cases[] = {
        {"HELO example.com", Verb::Helo, "HELO", "example.com"},
        {"helo example.com", Verb::Helo, "helo", "example.com"},
        {"eHlO x.example", Verb::Ehlo, "eHlO", "x.example"},
        {"MAIL FROM:<a@b>", Verb::Mail, "MAIL", "FROM:<a@b>"},
        {"rcpt TO:<a@b> NOTIFY=NEVER", Verb::Rcpt, "rcpt", "TO:<a@b> NOTIFY=NEVER"},
        {"DATA", Verb::Data, "DATA", ""},
        {"rset", Verb::Rset, "rset", ""},
        {"NOOP anything", Verb::Noop, "NOOP", "anything"},
        {"Quit", Verb::Quit, "Quit", ""},
        {"VRFY root", Verb::Vrfy, "VRFY", "root"},
        {"EXPN list", Verb::Expn, "EXPN", "list"},
        {"HELP", Verb::Help, "HELP", ""},
        {"StartTLS", Verb::Starttls, "StartTLS", ""},
        {"AUTH PLAIN AGEAYg==", Verb::Auth, "AUTH", "PLAIN AGEAYg=="},
        {"BDAT 100 LAST", Verb::Bdat, "BDAT", "100 LAST"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        Command cmd = parse_command(c.line);
        CHECK(cmd.verb == c.verb);
        CHECK(cmd.name == c.name);
        CHECK(cmd.args == c.args);
    }
}

TEST_CASE("parse_command: spacing", "[smtp][command]") {
    Command cmd = parse_command("MAIL    FROM:<a@b>   SIZE=10   ");
    CHECK(cmd.verb == Verb::Mail);
    CHECK(cmd.name == "MAIL");
    CHECK(cmd.args == "FROM:<a@b>   SIZE=10");

    cmd = parse_command("DATA   ");
    CHECK(cmd.verb == Verb::Data);
    CHECK(cmd.args == "");

    cmd = parse_command("QUIT \t ");
    CHECK(cmd.verb == Verb::Quit);
    CHECK(cmd.name == "QUIT");
    CHECK(cmd.args == "");

    cmd = parse_command("EHLO  \tmx.example");  // a tab is not a separator, it is argument text
    CHECK(cmd.verb == Verb::Ehlo);
    CHECK(cmd.args == "\tmx.example");

    // A tab does not separate the verb: the whole word is an unknown verb.
    cmd = parse_command("DATA\tx");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "DATA\tx");
}

TEST_CASE("parse_command: unknown verbs keep their name", "[smtp][command]") {
    Command cmd = parse_command("WIZ");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "WIZ");
    CHECK(cmd.args == "");

    cmd = parse_command("ETRN example.com");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "ETRN");
    CHECK(cmd.args == "example.com");

    cmd = parse_command("HELOX a");  // a verb is a whole word, not a prefix
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "HELOX");

    cmd = parse_command("MAIL:FROM:<a@b>");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "MAIL:FROM:<a@b>");

    cmd = parse_command("");
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "");

    cmd = parse_command(" HELO x");  // a leading space leaves an empty verb
    CHECK(cmd.verb == Verb::Unknown);
    CHECK(cmd.name == "");
    CHECK(cmd.args == "HELO x");

    cmd = parse_command("H\xc9LO x");
    CHECK(cmd.verb == Verb::Unknown);
}

TEST_CASE("paths: plain mailboxes, case and spacing", "[smtp][path]") {
    PathArg p = mail_ok("FROM:<user@example.com>");
    CHECK(p.mailbox.local == "user");
    CHECK(p.mailbox.domain == "example.com");
    CHECK(p.mailbox.str() == "user@example.com");
    CHECK(p.params.empty());

    p = mail_ok("from:<John.Smith@Mail.EXAMPLE.Org>");
    CHECK(p.mailbox.local == "John.Smith");  // the local part keeps its case
    CHECK(p.mailbox.domain == "mail.example.org");

    p = mail_ok("FROM:   <a@b.example>   ");
    CHECK(p.mailbox.str() == "a@b.example");

    p = rcpt_ok("To:<x-y_z+tag@sub-domain.example>");
    CHECK(p.mailbox.local == "x-y_z+tag");
    CHECK(p.mailbox.domain == "sub-domain.example");

    p = rcpt_ok("TO:<!#$%&'*+-/=?^_`{|}~.a1@localhost>");
    CHECK(p.mailbox.local == "!#$%&'*+-/=?^_`{|}~.a1");
    CHECK(p.mailbox.domain == "localhost");

    p = rcpt_ok("TO:<u@123.example>");
    CHECK(p.mailbox.domain == "123.example");
}

TEST_CASE("paths: the null reverse-path", "[smtp][path]") {
    PathArg p = mail_ok("FROM:<>");
    CHECK(p.mailbox.empty());
    CHECK(p.mailbox.str() == "");

    p = mail_ok("FROM: <> SIZE=0");
    CHECK(p.mailbox.empty());
    REQUIRE(p.params.size() == 1);
    CHECK(p.params[0].key == "SIZE");
    CHECK(p.params[0].value == "0");

    CHECK(rcpt_err("TO:<>") == kRcptSyntax + "null path not allowed");
}

TEST_CASE("paths: quoted local parts keep their quotes", "[smtp][path]") {
    PathArg p = mail_ok(R"(FROM:<"john doe"@example.com>)");
    CHECK(p.mailbox.local == R"("john doe")");
    CHECK(p.mailbox.str() == R"("john doe"@example.com)");

    p = rcpt_ok(R"(TO:<"a\"b\\c@d>e"@example.com>)");
    CHECK(p.mailbox.local == R"("a\"b\\c@d>e")");
    CHECK(p.mailbox.domain == "example.com");

    p = rcpt_ok(R"(TO:<"">)");
    CHECK(p.mailbox.local == R"("")");
    CHECK(p.mailbox.domain == "");
}

TEST_CASE("paths: source routes are dropped", "[smtp][path]") {
    PathArg p = mail_ok("FROM:<@a.example,@b.example:user@d.example>");
    CHECK(p.mailbox.str() == "user@d.example");

    p = rcpt_ok("TO:<@relay.example:Someone@Dest.Example>");
    CHECK(p.mailbox.local == "Someone");
    CHECK(p.mailbox.domain == "dest.example");
}

TEST_CASE("paths: address literals", "[smtp][path]") {
    PathArg p = rcpt_ok("TO:<root@[192.0.2.1]>");
    CHECK(p.mailbox.domain == "[192.0.2.1]");
    CHECK(p.mailbox.str() == "root@[192.0.2.1]");

    p = rcpt_ok("TO:<root@[IPv6:2001:DB8::1]>");
    CHECK(p.mailbox.domain == "[IPv6:2001:db8::1]");

    p = mail_ok("FROM:<root@[ipv6:::1]>");
    CHECK(p.mailbox.domain == "[IPv6:::1]");
}

TEST_CASE("paths: a mailbox without a domain", "[smtp][path]") {
    PathArg p = rcpt_ok("TO:<postmaster>");
    CHECK(p.mailbox.local == "postmaster");
    CHECK(p.mailbox.domain == "");
    CHECK(p.mailbox.str() == "postmaster");
    CHECK_FALSE(p.mailbox.empty());

    p = mail_ok("FROM:<Postmaster> BODY=7BIT");
    CHECK(p.mailbox.str() == "Postmaster");
}

TEST_CASE("paths: ESMTP parameters", "[smtp][path]") {
    PathArg p = mail_ok("FROM:<a@b.example> size=1024  body=8BITMIME SMTPUTF8 ret= AUTH=<> ENVID=a+2Bb");
    REQUIRE(p.params.size() == 6);
    CHECK(p.params[0].key == "SIZE");
    CHECK(p.params[0].value == "1024");
    CHECK(p.params[0].has_value);
    CHECK(p.params[1].key == "BODY");
    CHECK(p.params[1].value == "8BITMIME");
    CHECK(p.params[2].key == "SMTPUTF8");
    CHECK(p.params[2].value == "");
    CHECK_FALSE(p.params[2].has_value);
    CHECK(p.params[3].key == "RET");
    CHECK(p.params[3].has_value);
    CHECK(p.params[3].value == "");
    CHECK(p.params[4].key == "AUTH");
    CHECK(p.params[4].value == "<>");
    CHECK(p.params[5].value == "a+2Bb");  // values are kept as sent

    p = rcpt_ok("TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b x-Key=v=w");
    REQUIRE(p.params.size() == 3);
    CHECK(p.params[0].key == "NOTIFY");
    CHECK(p.params[0].value == "SUCCESS,FAILURE");
    CHECK(p.params[1].value == "rfc822;a@b");
    CHECK(p.params[2].key == "X-KEY");
    CHECK(p.params[2].value == "v=w");
}

TEST_CASE("paths: the limits themselves are accepted", "[smtp][path]") {
    std::string local64(64, 'l');
    PathArg p = rcpt_ok("TO:<" + local64 + "@example.com>");
    CHECK(p.mailbox.local == local64);

    // "<" + 64 + "@" + 189 + ">" = 256 octets
    std::string domain189 = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(61, 'c');
    REQUIRE(domain189.size() == 189);
    p = rcpt_ok("TO:<" + local64 + "@" + domain189 + ">");
    CHECK(p.mailbox.domain == domain189);
}

TEST_CASE("paths: refusals with their exact texts", "[smtp][path]") {
    CHECK(mail_err("FROM:user@example.com") == kMailSyntax + "angle brackets required");
    CHECK(rcpt_err("TO:user@example.com") == kRcptSyntax + "angle brackets required");
    CHECK(mail_err("FROM:") == kMailSyntax + "angle brackets required");
    CHECK(mail_err("<a@b>") == kMailSyntax + "FROM:<address> expected");
    CHECK(mail_err("FROM <a@b>") == kMailSyntax + "FROM:<address> expected");
    CHECK(rcpt_err("FROM:<a@b>") == kRcptSyntax + "TO:<address> expected");
    CHECK(rcpt_err("") == kRcptSyntax + "TO:<address> expected");
    CHECK(mail_err("FROM:<a@b") == kMailSyntax + "missing closing angle bracket");
    CHECK(mail_err("FROM:<ab") == kMailSyntax + "missing closing angle bracket");

    CHECK(rcpt_err("TO:<" + std::string(65, 'x') + "@example.com>") == kRcptSyntax + "local part too long");
    CHECK(mail_err(R"(FROM:<")" + std::string(63, 'x') + R"("@example.com>)") == kMailSyntax + "local part too long");
    std::string domain190 = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(62, 'c');
    CHECK(rcpt_err("TO:<" + std::string(64, 'x') + "@" + domain190 + ">") == kRcptSyntax + "path too long");
    CHECK(rcpt_err("TO:<u@" + std::string(256, 'a') + ">") == kRcptSyntax + "domain too long");

    CHECK(rcpt_err("TO:<a@b..example>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@-b.example>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@b-.example>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@b_c.example>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@example.com.>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@" + std::string(64, 'a') + ".example>") == kRcptSyntax + "invalid domain");
    CHECK(rcpt_err("TO:<a@b c>") == kRcptSyntax + "invalid domain");
    CHECK(mail_err("FROM:<a@>") == kMailSyntax + "missing domain");

    CHECK(mail_err(R"(FROM:<"abc@example.com>)") == kMailSyntax + "unterminated quoted string");
    CHECK(mail_err(R"(FROM:<"abc\)") == kMailSyntax + "unterminated quoted string");
    CHECK(mail_err(R"(FROM:<"a"b@example.com>)") == kMailSyntax + "invalid local part");

    CHECK(mail_err("FROM:<caf\xc3\xa9@example.com>") == kMailSyntax + "invalid character in address");
    CHECK(mail_err("FROM:<user@\xc3\xa9xample.com>") == kMailSyntax + "invalid character in address");
    CHECK(rcpt_err("TO:<a\0b@example.com>"s) == kRcptSyntax + "invalid character in address");
    CHECK(rcpt_err("TO:<a@exa\0mple.com>"s) == kRcptSyntax + "invalid character in address");
    CHECK(rcpt_err("TO:<\"a\tb\"@example.com>") == kRcptSyntax + "invalid character in address");
    CHECK(rcpt_err("TO:<\"a\\\x80\"@example.com>") == kRcptSyntax + "invalid character in address");

    CHECK(mail_err("FROM:<@example.com>") == kMailSyntax + "missing local part");
    CHECK(mail_err("FROM:<@>") == kMailSyntax + "missing local part");
    CHECK(mail_err("FROM:<@example.com:>") == kMailSyntax + "missing local part");
    CHECK(rcpt_err("TO:<.a@b>") == kRcptSyntax + "invalid local part");
    CHECK(rcpt_err("TO:<a.@b>") == kRcptSyntax + "invalid local part");
    CHECK(rcpt_err("TO:<a..b@c>") == kRcptSyntax + "invalid local part");
    CHECK(rcpt_err("TO:<a b@c>") == kRcptSyntax + "invalid local part");
    CHECK(rcpt_err("TO:<a(b)@c>") == kRcptSyntax + "invalid local part");
    CHECK(rcpt_err("TO:<<a@b>>") == kRcptSyntax + "invalid local part");

    CHECK(rcpt_err("TO:<a@[192.0.2]>") == kRcptSyntax + "invalid address literal");
    CHECK(rcpt_err("TO:<a@[192.0.2.256]>") == kRcptSyntax + "invalid address literal");
    CHECK(rcpt_err("TO:<a@[IPv6:zz::1]>") == kRcptSyntax + "invalid address literal");
    CHECK(rcpt_err("TO:<a@[tag:content]>") == kRcptSyntax + "invalid address literal");
    CHECK(rcpt_err("TO:<a@[192.0.2.1>") == kRcptSyntax + "invalid address literal");
    // A NUL must not cut the literal short before inet_pton sees it.
    CHECK(rcpt_err("TO:<a@[IPv6:2001:db8::1\0\0@]>"s) == kRcptSyntax + "invalid character in address");
    CHECK(rcpt_err("TO:<a@[192.0.2.1\0x]>"s) == kRcptSyntax + "invalid character in address");

    CHECK(mail_err("FROM:<@a,b:u@d>") == kMailSyntax + "invalid source route");
    CHECK(mail_err("FROM:<@a_b:u@d>") == kMailSyntax + "invalid source route");
    CHECK(mail_err("FROM:<@:u@d>") == kMailSyntax + "invalid source route");

    CHECK(mail_err("FROM:<a@b>x") == kMailSyntax + "unexpected text after address");
    CHECK(mail_err("FROM:<a@b>>") == kMailSyntax + "unexpected text after address");
    CHECK(mail_err("FROM:<>SIZE=1") == kMailSyntax + "unexpected text after address");
}

TEST_CASE("paths: malformed parameters", "[smtp][path]") {
    const std::string bad = "5.5.4 Invalid command arguments: malformed parameter";
    CHECK(mail_err("FROM:<a@b> =1") == bad);
    CHECK(mail_err("FROM:<a@b> SIZE=1 =") == bad);
    CHECK(mail_err("FROM:<a@b> -X=1") == bad);
    CHECK(mail_err("FROM:<a@b> S_Z=1") == bad);
    CHECK(mail_err("FROM:<a@b> SIZE=\x01") == bad);
    CHECK(mail_err("FROM:<a@b> BODY=8BIT\xc3\xa9") == bad);
    CHECK(rcpt_err("TO:<a@b> NOTIFY=\tNEVER") == bad);
    CHECK(rcpt_err("TO:<a@b> ORCPT=x\0"s) == bad);
}

TEST_CASE("paths: a null PathError pointer is allowed", "[smtp][path]") {
    CHECK_FALSE(parse_mail_from("FROM:x", nullptr).has_value());
    CHECK(parse_rcpt_to("TO:<a@b>", nullptr).has_value());
}

TEST_CASE("valid_helo_name", "[smtp][helo]") {
    for (const char* good : {"example.com", "localhost", "mx1.example.com.", "a-b.example", "[192.0.2.1]",
                             "[IPv6:2001:db8::1]", "[ipv6:::1]", "123", "X"}) {
        INFO(good);
        CHECK(valid_helo_name(good));
    }
    std::string label64(64, 'a');
    std::string long_name = std::string(63, 'a') + "." + std::string(63, 'a') + "." + std::string(63, 'a') + "." +
                            std::string(63, 'a');  // 255: ok
    CHECK(valid_helo_name(long_name));
    for (const std::string& bad : {""s,
                                   "."s,
                                   ".example"s,
                                   "example..com"s,
                                   "example.com.."s,
                                   "-a.example"s,
                                   "a-.example"s,
                                   "a_b.example"s,
                                   "exa mple"s,
                                   "caf\xc3\xa9.example"s,
                                   "a\0b"s,
                                   "[192.0.2]"s,
                                   "[192.0.2.1"s,
                                   "192.0.2.1]"s,
                                   "[IPv6:192.0.2.1]"s,
                                   "[192.0.2.1\0x]"s,
                                   "[IPv6:::1\0]"s,
                                   "[example.com]"s,
                                   "[]"s,
                                   label64 + ".example"s,
                                   long_name + "a"s}) {
        INFO(bad);
        CHECK_FALSE(valid_helo_name(bad));
    }
}
