// tests/unit/smtpd/session_submission_test.cpp — the Date: and Message-ID:
// a submission session adds: only when missing (any case, obsolete spacing),
// at the end of the header section, and an empty line after them where the
// header section ends at a line that is not a field.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <regex>
#include <set>

#include "smtpd/session_submission.hpp"

using namespace postern::smtpd;

namespace {

const AddedFields kFields{"Thu, 01 Jan 1970 00:00:00 +0000", "<id@host>"};

std::string completed(std::string message, std::vector<std::string_view>* added = nullptr) {
    auto names = add_missing_fields(message, kFields);
    if (added) *added = names;
    return message;
}

using Names = std::vector<std::string_view>;

}  // namespace

TEST_CASE("both fields go at the end of the header section, before the empty line") {
    Names added;
    CHECK(completed("Subject: s\nTo: a,\n b\n\nbody\n\nmore\n", &added) ==
          "Subject: s\nTo: a,\n b\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n\nbody\n\nmore\n");
    CHECK(added == Names{"Date", "Message-ID"});
}

TEST_CASE("a message that has them is not changed, whatever their case or spacing") {
    Names added{"x"};
    std::string has = "DATE: then\nmessage-id: <x@y>\nSubject: s\n\nDate: not a field here\n";
    CHECK(completed(has, &added) == has);
    CHECK(added.empty());
    std::string obsolete = "Date : then\nMessage-Id\t: <x@y>\n\nx\n";
    CHECK(completed(obsolete) == obsolete);
}

TEST_CASE("only the missing one is added") {
    CHECK(completed("Date: then\n\nx\n") == "Date: then\nMessage-ID: <id@host>\n\nx\n");
    CHECK(completed("Message-ID: <m@h>\n\nx\n") == "Message-ID: <m@h>\nDate: Thu, 01 Jan 1970 00:00:00 +0000\n\nx\n");
}

TEST_CASE("fields in the body, or named alike, do not count") {
    CHECK(completed("Subject: s\nX-Date: d\nMessage-IDs: m\n\nDate: x\nMessage-ID: y\n") ==
          "Subject: s\nX-Date: d\nMessage-IDs: m\nDate: Thu, 01 Jan 1970 00:00:00 +0000\n"
          "Message-ID: <id@host>\n\nDate: x\nMessage-ID: y\n");
}

TEST_CASE("the header section alone (what the filters' stream holds), or with no empty line after it") {
    CHECK(completed("Subject: s\n") == "Subject: s\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n");
    CHECK(completed("Subject: s") == "Subject: s\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n");
}

TEST_CASE("an empty message, and one whose header section is empty") {
    CHECK(completed("") == "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n");
    CHECK(completed("\nbody\n") == "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n\nbody\n");
}

TEST_CASE("a header section that ends at a line that is not a field: that line stays in the body") {
    CHECK(completed("Subject: s\nnot a field\nTo: x\n\nbody\n") ==
          "Subject: s\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n\nnot a field\nTo: x\n\nbody\n");
    // An indented first line would otherwise become Message-ID:'s continuation.
    CHECK(completed(" indented text\n") ==
          "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n\n indented text\n");
    CHECK(completed("From alice Mon Dec  7 10:00:00 2026\nSubject: s\n") ==
          "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: <id@host>\n\nFrom alice Mon Dec  7 10:00:00 2026\n"
          "Subject: s\n");
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

TEST_CASE("message ids: the queue's id and the host in the form, never twice the same") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        std::string id = new_message_id_value("89abcdef", "mx.example.org");
        CHECK(std::regex_match(id, std::regex("<[0-9a-f]{16}\\.89abcdef@mx\\.example\\.org>")));
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);
}

TEST_CASE("starts_field: what the session reads as the header section's lines") {
    CHECK(starts_field("Subject: x"));
    CHECK(starts_field("X-Empty:"));
    CHECK(starts_field("Date : obsolete spacing"));
    CHECK_FALSE(starts_field("no colon here"));
    CHECK_FALSE(starts_field(": no name"));
    CHECK_FALSE(starts_field("two words: not a name"));
    CHECK_FALSE(starts_field(" continued: line"));
    CHECK_FALSE(starts_field(""));
}
