// rspamd/verdict: each of rspamd's actions mapped to what the filter does,
// from the real replies (tests/unit/rspamd/data) and from made-up ones for
// the corners.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include "rspamd/verdict.hpp"

using namespace postern::rspamd;
using Lines = std::vector<std::string>;

namespace {

Reply real(const std::string& name) {
    std::ifstream in(std::string(POSTERN_SOURCE_DIR) + "/tests/unit/rspamd/data/" + name, std::ios::binary);
    REQUIRE(in);
    std::string body{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    DecodeResult r = decode_reply(body);
    REQUIRE(std::holds_alternative<Reply>(r));
    return std::get<Reply>(r);
}

Reply made(Action a) {
    Reply r;
    r.action = a;
    r.score = 7.5;
    r.required_score = 15;
    return r;
}

const HeaderAdd* find(const Edits& e, std::string_view name) {
    for (const auto& h : e.add)
        if (h.name == name) return &h;
    return nullptr;
}

std::size_t count(const Edits& e, std::string_view name) {
    std::size_t n = 0;
    for (const auto& h : e.add) n += h.name == name;
    return n;
}

}  // namespace

TEST_CASE("verdict: reject is 550 5.7.1 with rspamd's message, or a default") {
    Verdict v = decide(real("gtube.json"));
    CHECK(v.disposition == Disposition::Reject);
    CHECK(v.reply == "550 5.7.1 Gtube pattern");
    CHECK(v.edits.empty());

    CHECK(decide(real("reject_message.json")).reply == "550 5.7.1 Go away, postern test");
    CHECK(decide(made(Action::Reject)).reply == "550 5.7.1 Spam message rejected");
    Reply blank = made(Action::Reject);
    blank.smtp_message = " \r\n ";
    CHECK(decide(blank).reply == "550 5.7.1 Spam message rejected");
}

TEST_CASE("verdict: soft reject and greylist tempfail with 451 4.7.1") {
    Verdict soft = decide(real("soft_reject.json"));
    CHECK(soft.disposition == Disposition::Tempfail);
    CHECK(soft.reply == "451 4.7.1 Try again later, postern test");
    CHECK(soft.edits.empty());
    CHECK(decide(made(Action::SoftReject)).reply == "451 4.7.1 Try again later");

    Verdict grey = decide(real("greylist.json"));
    CHECK(grey.disposition == Disposition::Tempfail);
    CHECK(grey.reply == "451 4.7.1 Greylisted, try again later");
}

TEST_CASE("verdict: greylist accepts when the policy says so, as rspamd's milter does") {
    Policy p;
    p.greylist_tempfails = false;
    Verdict v = decide(real("greylist.json"), p);
    CHECK(v.disposition == Disposition::Accept);
    CHECK(v.reply.empty());
    CHECK(find(v.edits, "X-Rspamd-Action")->value == "greylist");  // rspamd's own header
    CHECK_FALSE(find(v.edits, "X-Spam"));
}

TEST_CASE("verdict: an enhanced code in rspamd's message is kept, not doubled") {
    Reply r = made(Action::Reject);
    r.smtp_message = "5.7.23 SPF says no";
    CHECK(decide(r).reply == "550 5.7.23 SPF says no");
    r.smtp_message = "4.7.1 wrong class";  // a 4 in a 5xx: not a code of this reply
    CHECK(decide(r).reply == "550 5.7.1 4.7.1 wrong class");
    r.action = Action::SoftReject;
    r.smtp_message = "4.7.0 Ratelimit exceeded";
    CHECK(decide(r).reply == "451 4.7.0 Ratelimit exceeded");
}

TEST_CASE("verdict: rspamd's message becomes one bounded line") {
    CHECK(smtp_text("  line one\r\nline two\t") == "line one  line two");
    CHECK(smtp_text(std::string("a\0b", 3)) == "a b");
    // 390 + 12 bytes: byte 400 is inside the fourth euro sign.
    std::string longer(389, 'x');
    longer += " \xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC";
    std::string cut = smtp_text(longer);
    CHECK(cut == std::string(389, 'x') + " \xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");  // whole characters only
    Reply r = made(Action::Reject);
    r.smtp_message = "spam\r\n250 fake";
    CHECK(decide(r).reply == "550 5.7.1 spam  250 fake");
}

TEST_CASE("verdict: no action accepts with rspamd's milter edits (real)") {
    Reply r = real("clean.json");
    Verdict v = decide(r);
    CHECK(v.disposition == Disposition::Accept);
    CHECK(v.reply.empty());
    REQUIRE(v.edits.add.size() == r.add_headers.size());
    for (std::size_t i = 0; i < r.add_headers.size(); ++i) {
        CHECK(v.edits.add[i].name == r.add_headers[i].name);
        CHECK(v.edits.add[i].value == r.add_headers[i].value);
        CHECK(v.edits.add[i].order == r.add_headers[i].order);
    }
    REQUIRE(v.edits.remove.size() == 8);
    CHECK(v.edits.remove.back() == HeaderRemove{"X-Spam", 0});
    CHECK_FALSE(v.edits.subject);
    CHECK_FALSE(find(v.edits, "X-Spam"));

    // Applied: the client's X-Spam is gone, rspamd's headers are at the
    // bottom but Authentication-Results, after the first field.
    Lines out = apply_edits(v.edits, {"Received: by mx", "From: a", "X-Spam: forged", "Subject: s"});
    REQUIRE(out.size() > 4);
    CHECK(out[0] == "Received: by mx");
    CHECK(out[1] == "Authentication-Results: mx.example.net;");
    CHECK(std::find(out.begin(), out.end(), "X-Spam: forged") == out.end());
    CHECK(std::find(out.begin(), out.end(), "X-Rspamd-Action: no action") != out.end());
    CHECK(std::find(out.begin(), out.end(), "Subject: s") < std::find(out.begin(), out.end(), "X-Rspamd-Server: vm"));
}

TEST_CASE("verdict: add header adds X-Spam: Yes, X-Spam-Score and X-Spam-Status at the top") {
    Reply r = made(Action::AddHeader);
    r.symbols = {{"ZED", 1.5},
                 {"ALPHA", 0},
                 {"R_SPF_DNSFAIL", 0},
                 {"HFILTER_HELO_IP_A", 1},
                 {"MIME_GOOD", -0.1},
                 {"POSTERN_SCORE", 6},
                 {"A_LONGER_SYMBOL_NAME_HERE", 0.5}};
    r.remove_headers = {{"X-Spam", 0}};
    Verdict v = decide(r);
    CHECK(v.disposition == Disposition::Accept);
    REQUIRE(v.edits.add.size() == 3);
    CHECK(v.edits.add[0] == HeaderAdd{"X-Spam", "Yes", 0});
    CHECK(v.edits.add[1] == HeaderAdd{"X-Spam-Score", "7.50 / 15.00", 0});
    CHECK(v.edits.add[2].name == "X-Spam-Status");
    // Sorted byte-wise ('L' before '_'), folded before 68 columns.
    CHECK(v.edits.add[2].value == "Yes, score=7.500 required=15.000\n"
                                  "\ttests=[ALPHA=0.000, A_LONGER_SYMBOL_NAME_HERE=0.500,\n"
                                  "\tHFILTER_HELO_IP_A=1.000, MIME_GOOD=-0.100, POSTERN_SCORE=6.000,\n"
                                  "\tR_SPF_DNSFAIL=0.000, ZED=1.500]");
    // Every folded line stays short.
    for (const auto& line : field_lines("X-Spam-Status", v.edits.add[2].value)) CHECK(line.size() <= 78);

    // Applied: ours on top, in that order; the client's X-Spam removed.
    Lines out = apply_edits(v.edits, {"Received: by mx", "X-Spam: forged", "Subject: s"});
    CHECK(out[0] == "X-Spam: Yes");
    CHECK(out[1] == "X-Spam-Score: 7.50 / 15.00");
    CHECK(out[2] == "X-Spam-Status: Yes, score=7.500 required=15.000");
    CHECK(out[3] == "\ttests=[ALPHA=0.000, A_LONGER_SYMBOL_NAME_HERE=0.500,");
    CHECK(out[6] == "Received: by mx");
    CHECK(out[7] == "Subject: s");
    CHECK(out.size() == 8);

    Reply bare = made(Action::AddHeader);
    CHECK(decide(bare).edits.add[2].value == "Yes, score=7.500 required=15.000");
}

TEST_CASE("verdict: add header (real): rspamd's own X-Spam-Status wins over ours") {
    Verdict v = decide(real("add_header.json"));
    CHECK(v.disposition == Disposition::Accept);
    CHECK(count(v.edits, "X-Spam") == 1);
    CHECK(find(v.edits, "X-Spam")->value == "Yes");
    CHECK(find(v.edits, "X-Spam-Score")->value == "61.20 / 100.00");
    CHECK(count(v.edits, "X-Spam-Status") == 1);
    CHECK(find(v.edits, "X-Spam-Status")->value == "Yes, score=61.20");  // rspamd's
    CHECK(find(v.edits, "X-Spamd-Result"));
    CHECK(v.edits.add[0].name == "X-Spam");
    CHECK(v.edits.add[0].order == 0);
}

TEST_CASE("verdict: rewrite subject replaces the Subject with rspamd's (real)") {
    Verdict v = decide(real("rewrite_subject.json"));
    CHECK(v.disposition == Disposition::Accept);
    CHECK(v.edits.subject == "***SPAM*** postern-score-85 cheap pills");
    CHECK_FALSE(find(v.edits, "X-Spam"));
    Lines out = apply_edits(v.edits, {"Subject: postern-score-85 cheap pills"});
    CHECK(out[0] == "Subject: ***SPAM*** postern-score-85 cheap pills");

    // No subject in the reply: the message keeps its own.
    CHECK_FALSE(decide(made(Action::RewriteSubject)).edits.subject);
}

TEST_CASE("verdict: rspamd's DKIM signature goes on top (real)") {
    Verdict v = decide(real("dkim_signed.json"));
    CHECK(v.disposition == Disposition::Accept);
    REQUIRE(v.edits.add.size() == 1);
    CHECK(v.edits.add[0].name == "DKIM-Signature");
    CHECK(v.edits.add[0].order == 0);
    Lines out = apply_edits(v.edits, {"Received: by mx", "From: alice@example.org"});
    CHECK(out[0] == "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;");
    CHECK(out[1].rfind("\tt=", 0) == 0);
    CHECK(out[out.size() - 2] == "Received: by mx");

    // Several: in the order rspamd gave them.
    Reply r = made(Action::NoAction);
    r.dkim_signatures = {"first", "second"};
    Verdict two = decide(r);
    REQUIRE(two.edits.add.size() == 2);
    CHECK(two.edits.add[0].value == "first");
    CHECK(two.edits.add[1].value == "second");
}

TEST_CASE("verdict: milter no_action turns any action into an accept marked X-Rspamd-Action") {
    Reply r = made(Action::Reject);
    r.no_action = true;
    r.smtp_message = "would reject";
    Verdict v = decide(r);
    CHECK(v.disposition == Disposition::Accept);
    CHECK(v.reply.empty());
    REQUIRE(v.edits.add.size() == 1);
    CHECK(v.edits.add[0] == HeaderAdd{"X-Rspamd-Action", "reject", 0});
}
