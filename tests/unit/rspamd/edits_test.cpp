// rspamd/edits: header edits applied to a header section — rspamd's milter
// positions (0 top, -1 bottom, N after N fields), removals by occurrence,
// the subject, and folded values written as safe continuation lines.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "rspamd/edits.hpp"

using namespace postern::rspamd;
using Lines = std::vector<std::string>;

namespace {

const Lines kHeaders = {
    "Received: from mail.example.org (mail.example.org [203.0.113.5])",
    "\tby mx.example.net with ESMTP id 0123456789abcdef",
    "From: Alice <alice@example.org>",
    "X-Spam: forged by the client",
    "Subject: hello",
    "To: Bob <bob@example.net>",
    "X-Spam: again",
};

}  // namespace

TEST_CASE("edits: no edits give the section back unchanged") {
    CHECK(apply_edits({}, kHeaders) == kHeaders);
    CHECK(Edits{}.empty());
    CHECK(apply_edits({}, {}).empty());
}

TEST_CASE("edits: field_lines folds on any line break and keeps each line one line") {
    CHECK(field_lines("X-A", "v") == Lines{"X-A: v"});
    CHECK(field_lines("X-A", "") == Lines{"X-A:"});
    CHECK(field_lines("Authentication-Results", "mx;\r\n\tdkim=none;\r\n\tspf=none") ==
          Lines{"Authentication-Results: mx;", "\tdkim=none;", "\tspf=none"});
    CHECK(field_lines("X-A", "a\n b\rc") == Lines{"X-A: a", " b", "\tc"});
    // A value cannot start a field of its own: "Bcc" becomes a continuation.
    CHECK(field_lines("X-A", "x\r\nBcc: eve@example.com") == Lines{"X-A: x", "\tBcc: eve@example.com"});
    // Control bytes go; blank continuation lines (which would end the
    // header section for some readers) go.
    CHECK(field_lines("X-A", std::string("a\0b\x01", 4) + "\r\n\r\n\t\r\nc") == Lines{"X-A: ab", "\tc"});
    CHECK(field_lines("X-A", "tab\there") == Lines{"X-A: tab\there"});
}

TEST_CASE("edits: additions go where their order says, several at one place in the order given") {
    Edits e;
    e.add = {
        {"X-Top-1", "a", 0},        {"X-Bottom", "b", -1}, {"X-Top-2", "c", 0},     {"X-After-One", "d", 1},
        {"X-Before-Last", "e", -2}, {"X-Far", "f", 100},   {"X-Far-Up", "g", -100},
    };
    CHECK(apply_edits(e, kHeaders) == Lines{
                                          "X-Top-1: a",
                                          "X-Top-2: c",
                                          "X-Far-Up: g",
                                          "Received: from mail.example.org (mail.example.org [203.0.113.5])",
                                          "\tby mx.example.net with ESMTP id 0123456789abcdef",
                                          "X-After-One: d",
                                          "From: Alice <alice@example.org>",
                                          "X-Spam: forged by the client",
                                          "Subject: hello",
                                          "To: Bob <bob@example.net>",
                                          "X-Before-Last: e",
                                          "X-Spam: again",
                                          "X-Bottom: b",
                                          "X-Far: f",
                                      });
}

TEST_CASE("edits: removals by occurrence, case-insensitive, before additions") {
    auto without = [](Lines l, std::initializer_list<std::string> gone) {
        for (const auto& g : gone) l.erase(std::find(l.begin(), l.end(), g));
        return l;
    };
    Edits all;
    all.remove = {{"x-spam", 0}};
    all.add = {{"X-Spam", "Yes", 0}};  // ours survives the removal
    Lines expect = without(kHeaders, {"X-Spam: forged by the client", "X-Spam: again"});
    expect.insert(expect.begin(), "X-Spam: Yes");
    CHECK(apply_edits(all, kHeaders) == expect);

    Edits first;
    first.remove = {{"X-Spam", 1}};
    CHECK(apply_edits(first, kHeaders) == without(kHeaders, {"X-Spam: forged by the client"}));
    Edits second;
    second.remove = {{"X-Spam", 2}};
    CHECK(apply_edits(second, kHeaders) == without(kHeaders, {"X-Spam: again"}));
    Edits last;
    last.remove = {{"X-Spam", -1}};
    CHECK(apply_edits(last, kHeaders) == without(kHeaders, {"X-Spam: again"}));
    Edits from_end;
    from_end.remove = {{"X-Spam", -2}};
    CHECK(apply_edits(from_end, kHeaders) == without(kHeaders, {"X-Spam: forged by the client"}));
    Edits beyond;
    beyond.remove = {{"X-Spam", 3}, {"X-Spam", -3}, {"X-None", 0}};
    CHECK(apply_edits(beyond, kHeaders) == kHeaders);

    // A folded field goes with its continuation lines.
    Edits received;
    received.remove = {{"Received", 0}};
    CHECK(apply_edits(received, kHeaders) == Lines(kHeaders.begin() + 2, kHeaders.end()));

    // Positions count what is left: -1 is still the bottom.
    all.add = {{"X-Last", "z", -1}};
    Lines bottom = without(kHeaders, {"X-Spam: forged by the client", "X-Spam: again"});
    bottom.push_back("X-Last: z");
    CHECK(apply_edits(all, kHeaders) == bottom);
}

TEST_CASE("edits: the subject replaces the first Subject field, folded or not, or is added") {
    Edits e;
    e.subject = "***SPAM*** hello";
    Lines expect = kHeaders;
    expect[4] = "Subject: ***SPAM*** hello";
    CHECK(apply_edits(e, kHeaders) == expect);

    Lines folded = {"subject: a long", "  subject", "To: x", "Subject: second"};
    CHECK(apply_edits(e, folded) == Lines{"Subject: ***SPAM*** hello", "To: x", "Subject: second"});

    Lines none = {"From: a", "To: b"};
    CHECK(apply_edits(e, none) == Lines{"From: a", "To: b", "Subject: ***SPAM*** hello"});

    // Obsolete syntax: blanks before the colon.
    Lines obs = {"Subject : old"};
    CHECK(apply_edits(e, obs) == Lines{"Subject: ***SPAM*** hello"});
}

TEST_CASE("edits: stray continuation lines before the first field are kept and never matched") {
    Lines odd = {" stray", "X-Spam: x"};
    Edits e;
    e.remove = {{"X-Spam", 0}};
    e.add = {{"X-A", "1", 0}};
    CHECK(apply_edits(e, odd) == Lines{"X-A: 1", " stray"});
}
