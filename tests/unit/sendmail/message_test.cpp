// tests/unit/sendmail/message_test.cpp — the message postern-sendmail
// reads: where input ends (".", -i), the header section, address lists as
// -t reads them, the fields -t reads (a resent message's Resent-*), Bcc:
// removal and the fields added when missing.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

#include "sendmail/message.hpp"

using namespace postern::sendmail;

namespace {

std::vector<std::string> read(const std::string& input, bool ignore_dots) {
    std::FILE* f = fmemopen(const_cast<char*>(input.data()), input.size(), "r");
    REQUIRE(f);
    std::vector<std::string> lines;
    std::string error;
    CHECK(read_message(f, ignore_dots, &lines, &error));
    std::fclose(f);
    return lines;
}

std::vector<std::string> addresses(std::string_view list) {
    std::vector<std::string> out;
    std::string error;
    REQUIRE(parse_address_list(list, &out, &error));
    return out;
}

std::string refusal(std::string_view list) {
    std::vector<std::string> out;
    std::string error;
    CHECK_FALSE(parse_address_list(list, &out, &error));
    return error;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("a line . ends the input, unless -i, CRLF and LF both end lines") {
    CHECK(read("a\r\n.\r\nb\n", false) == Lines{"a"});
    CHECK(read("a\n.\nb\n", true) == Lines{"a", ".", "b"});
    CHECK(read("a\n..\nb", false) == Lines{"a", "..", "b"});  // only a lone dot ends it
    CHECK(read("", false).empty());
}

TEST_CASE("the header section: fields, continuations, where it ends") {
    Message m = split({"Subject: hi", "To: a,", "\tb", "", "body", "To: not a field"});
    CHECK(m.fields == Lines{"Subject: hi", "To: a,\n\tb"});
    CHECK(m.body == Lines{"body", "To: not a field"});
    CHECK(field_values(m, "to") == Lines{"a, \tb"});
    CHECK(join(m) == Lines{"Subject: hi", "To: a,", "\tb", "", "body", "To: not a field"});
}

TEST_CASE("a message without a blank line after its fields gets one, a leading From line goes") {
    Message m = split({"From alice Mon Dec  7 10:00:00 2026", "Subject: x", "no colon here", "more"});
    CHECK(m.fields == Lines{"Subject: x"});
    CHECK(join(m) == Lines{"Subject: x", "", "no colon here", "more"});
    Message bare = split({"just text", "", "more"});
    CHECK(bare.fields.empty());
    CHECK(bare.body == Lines{"just text", "", "more"});
}

TEST_CASE("Bcc: is removed whatever its case, continuation lines with it") {
    Message m = split({"To: a", "BCC: secret,", " other", "Subject: s", "", "x"});
    remove_fields(m, "Bcc");
    CHECK(join(m) == Lines{"To: a", "Subject: s", "", "x"});
}

std::vector<std::string> recipient_names(const Message& m, bool expect_resent) {
    bool resent = !expect_resent;
    std::vector<std::string> out;
    for (const auto& f : recipient_fields(m, &resent)) out.push_back(f.name + "=" + f.value);
    CHECK(resent == expect_resent);
    return out;
}

TEST_CASE("-t reads To:, Cc: and Bcc: of a message that was not resent, by kind") {
    Message m = split({"Bcc: d", "to: a,", " b", "Subject: s", "CC: c", "Resent: not a resent field", "", "x"});
    CHECK(recipient_names(m, false) == Lines{"To=a,  b", "Cc=c", "Bcc=d"});
}

TEST_CASE("-t reads the most recent resent block of a resent message") {
    // Two resendings: the newer block on top; the first sending's To:/Cc: below.
    Message m = split({"Received: from x by y", "Resent-From: carol@x", "Resent-Date: Mon, 7 Dec 2026 10:00:00 +0000",
                       "Resent-To: dave@x,", "\tGroup: erin@x;", "RESENT-BCC: frank@x", "Resent-cc: gina@x",
                       "Received: from z by y", "Resent-From: bob@x", "Resent-To: old@x", "From: alice@x",
                       "To: first@x", "Cc: second@x", "Bcc: third@x", "", "body"});
    CHECK(recipient_names(m, true) ==
          Lines{"Resent-To=dave@x, \tGroup: erin@x;", "Resent-Cc=gina@x", "Resent-Bcc=frank@x"});
}

TEST_CASE("the most recent block ends where one of its fields comes again, without a trace field between") {
    Message m = split({"Resent-From: b@x", "Resent-To: new@x", "Resent-Date: now", "Resent-From: a@x",
                       "Resent-To: old@x", "Resent-Date: then", "To: first@x", "", "x"});
    CHECK(recipient_names(m, true) == Lines{"Resent-To=new@x"});
}

TEST_CASE("a field out of place inside the block does not end it, fields above it are not read") {
    Message m = split({"To: not-this@x", "Resent-From: b@x", "X-Mailer: m", "Resent-To: new@x", "", "x"});
    CHECK(recipient_names(m, true) == Lines{"Resent-To=new@x"});
}

TEST_CASE("a resent message whose newest block names no recipient has none: To: is the first sending's") {
    Message m = split({"Resent-From: b@x", "Resent-Date: now", "To: first@x", "", "x"});
    CHECK(recipient_names(m, true).empty());
}

TEST_CASE("Bcc: and Resent-Bcc: are removed, Resent-To: and Resent-Cc: stay") {
    Message m = split({"Resent-To: a", "Resent-Bcc: b,", " c", "resent-cc: d", "bcc: e", "To: f", "", "x"});
    remove_blind_copies(m);
    CHECK(join(m) == Lines{"Resent-To: a", "resent-cc: d", "To: f", "", "x"});
}

TEST_CASE("address lists: display names, comments, quotes, groups, routes") {
    CHECK(addresses("alice") == Lines{"alice"});
    CHECK(addresses("Alice <alice@example.org>, bob@example.org (Bob)") ==
          Lines{"alice@example.org", "bob@example.org"});
    CHECK(addresses("\"Smith, John\" <john@example.org>") == Lines{"john@example.org"});
    CHECK(addresses("\"a b\"@example.org") == Lines{"\"a b\"@example.org"});
    CHECK(addresses("team: c@x, d@y;, e@z") == Lines{"c@x", "d@y", "e@z"});
    CHECK(addresses("undisclosed-recipients:;").empty());
    CHECK(addresses("<@relay.example:f@x>") == Lines{"f@x"});
    CHECK(addresses("a@x (comment, with comma (nested)), , b@y") == Lines{"a@x", "b@y"});
    CHECK(addresses("Name (x) <g@x>") == Lines{"g@x"});
    CHECK(addresses("\"q\\\"uote\" <h@x>") == Lines{"h@x"});
}

TEST_CASE("address lists that cannot be read") {
    CHECK(refusal("\"open <a@x>") == "unclosed quote in address list: \"open <a@x>");
    CHECK(refusal("a@x (open") == "unclosed comment in address list: a@x (open");
    CHECK(refusal("Bob <b@x") == "unclosed '<' in address list: Bob <b@x");
}

TEST_CASE("display names: atoms as they are, anything else quoted") {
    CHECK(display_name("John Smith") == "John Smith");
    CHECK(display_name("J. Smith") == "\"J. Smith\"");
    CHECK(display_name("Smith, John") == "\"Smith, John\"");
    CHECK(display_name("say \"hi\"") == "\"say \\\"hi\\\"\"");
}

TEST_CASE("the date in RFC 5322 form, in local time") {
    setenv("TZ", "UTC", 1);
    tzset();
    CHECK(rfc5322_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    CHECK(rfc5322_date(1780000000) == "Thu, 28 May 2026 22:26:40 +0200");
    unsetenv("TZ");
    tzset();
}

TEST_CASE("From:, Date: and Message-ID: are added only when missing") {
    setenv("TZ", "UTC", 1);
    tzset();
    Additions a{"Al <al@host>", "<id@host>", 0};
    Message m = split({"Subject: s", "", "x"});
    add_missing_fields(m, a);
    CHECK(m.fields ==
          Lines{"From: Al <al@host>", "Date: Thu, 01 Jan 1970 00:00:00 +0000", "Message-ID: <id@host>", "Subject: s"});
    Message has = split({"from: me", "DATE: then", "Message-Id: <x@y>", "", "x"});
    add_missing_fields(has, a);
    CHECK(has.fields == Lines{"from: me", "DATE: then", "Message-Id: <x@y>"});
    unsetenv("TZ");
    tzset();
}
