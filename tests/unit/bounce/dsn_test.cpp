// Unit tests of the DSN builder (core/bounce/dsn.cpp). Each report built here
// is also handed to tests/unit/bounce/check_dsn.py, which parses it with
// Python's email package (an independent MIME parser) and checks its
// structure and fields; the C++ side checks exact bytes.

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bounce/dsn.hpp"

using namespace postern::bounce;

namespace {

// 2024-01-02 03:04:05 UTC and friends.
constexpr std::int64_t kArrival = 1704164645;
constexpr std::int64_t kAttempt = kArrival + 3600;
constexpr std::int64_t kUntil = kArrival + 4 * 86400;

const char* const kOriginal = "Received: from client.example (client.example [192.0.2.7])\n"
                              "\tby mx.example.org; Tue, 2 Jan 2024 03:04:05 +0000\n"
                              "From: Alice <alice@client.example>\n"
                              "To: Bob <bob@example.net>\n"
                              "Subject: quarterly figures\n"
                              "Message-ID: <q1@client.example>\n"
                              "\n"
                              "Hello Bob,\n"
                              "the figures are in.\n";

std::string shell_quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

// A file in the temp folder that is removed when the test ends.
struct TempFile {
    std::filesystem::path path;
    explicit TempFile(std::string_view content) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "postern-dsn-XXXXXX").string();
        int fd = mkstemp(tmpl.data());
        REQUIRE(fd >= 0);
        close(fd);
        path = tmpl;
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
};

// Runs check_dsn.py over `dsn`; returns its exit status (0 = all checks hold).
int python_check(const std::string& dsn, std::string_view kind, const std::vector<std::string>& args) {
    TempFile file(dsn);
    std::string cmd = "python3 " + shell_quote(POSTERN_SOURCE_DIR "/tests/unit/bounce/check_dsn.py") + " " +
                      shell_quote(file.path.string()) + " " + std::string(kind);
    for (const auto& a : args) cmd += " " + shell_quote(a);
    int rc = std::system(cmd.c_str());
    INFO("command: " << cmd << "\nmessage:\n" << dsn);
    REQUIRE(rc != -1);
    REQUIRE(WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

Report report(Kind kind) {
    Report r;
    r.kind = kind;
    r.reporting_mta = "mx.example.org";
    r.sender = "alice@client.example";
    r.arrival = kArrival;
    return r;
}

RecipientReport bob() {
    RecipientReport rc;
    rc.final_recipient = "bob@example.net";
    rc.status = "5.1.1";
    rc.diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown";
    rc.remote_mta = "mx1.example.net";
    rc.last_attempt = kAttempt;
    return rc;
}

bool has_line(const std::string& msg, std::string_view line) {
    return ("\n" + msg).find("\n" + std::string(line) + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("header_safe replaces control and 8-bit bytes and trims") {
    CHECK(header_safe("a@b\nBcc: x@y") == "a@b Bcc: x@y");
    CHECK(header_safe("\r\n a\tb\x7f\x01 ") == "a b");
    CHECK(header_safe("caf\xc3\xa9") == "caf??");
    CHECK(header_safe(std::string("a\0b", 3)) == "a b");
    CHECK(header_safe("\n\n") == "");
}

TEST_CASE("fold_field folds at spaces and cuts words past 900 octets") {
    CHECK(fold_field("Status", "5.1.1") == "Status: 5.1.1\n");
    std::string words;
    for (int i = 0; i < 20; ++i) words += "word" + std::to_string(i) + " ";
    std::string folded = fold_field("Diagnostic-Code", "smtp; " + words);
    CHECK(folded == "Diagnostic-Code: smtp; word0 word1 word2 word3 word4 word5 word6 word7 word8\n"
                    " word9 word10 word11 word12 word13 word14 word15 word16 word17 word18 word19\n");
    std::string huge(2000, 'x');
    std::string cut = fold_field("X", huge);
    CHECK(cut == "X: " + huge.substr(0, 900) + "\n " + huge.substr(900, 900) + "\n " + huge.substr(1800) + "\n");
}

TEST_CASE("rfc5322_date formats UTC dates") {
    CHECK(rfc5322_date(0) == "Thu, 01 Jan 1970 00:00:00 +0000");
    CHECK(rfc5322_date(kArrival) == "Tue, 02 Jan 2024 03:04:05 +0000");
    CHECK(rfc5322_date(951782400) == "Tue, 29 Feb 2000 00:00:00 +0000");
}

TEST_CASE("pick_boundary skips candidates that occur in the content") {
    std::vector<std::string> candidates = {"=_taken", "=_free", "=_other"};
    std::size_t next = 0;
    auto token = [&] { return candidates[next++ % candidates.size()]; };
    CHECK(pick_boundary("text --=_taken more", token) == "=_free");
    CHECK(next == 2);
    next = 0;
    CHECK(pick_boundary("=_taken =_free =_other", token) == "");
    CHECK(next == 16);  // bounded: gives up after 16 candidates
}

TEST_CASE("failed report, headers returned, parsed by Python") {
    Report r = report(Kind::Failed);
    r.envid = "QQ314159";
    RecipientReport rc = bob();
    rc.original_recipient = "rfc822;Bob@Example.net";
    std::string dsn = build_dsn(r, {rc}, kOriginal, "mx.example.org");

    CHECK(dsn.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n"
                          "To: <alice@client.example>\n"
                          "Subject: Delivery Status Notification (Failure)\n"
                          "Date: "));
    CHECK(has_line(dsn, "Auto-Submitted: auto-replied"));
    CHECK(has_line(dsn, "Reporting-MTA: dns; mx.example.org"));
    CHECK(has_line(dsn, "Original-Envelope-Id: QQ314159"));
    CHECK(has_line(dsn, "Arrival-Date: Tue, 02 Jan 2024 03:04:05 +0000"));
    CHECK(has_line(dsn, "Original-Recipient: rfc822;Bob@Example.net\n"
                        "Final-Recipient: rfc822; bob@example.net\n"
                        "Action: failed\n"
                        "Status: 5.1.1\n"
                        "Remote-MTA: dns; mx1.example.net\n"
                        "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\n"
                        " rejected: User unknown\n"
                        "Last-Attempt-Date: Tue, 02 Jan 2024 04:04:05 +0000"));
    CHECK(dsn.find("Hello Bob") == std::string::npos);
    CHECK(dsn.find("\r") == std::string::npos);

    CHECK(python_check(dsn, "failed",
                       {"--to",
                        "alice@client.example",
                        "--returned",
                        "headers",
                        "--rcpts",
                        "1",
                        "--field",
                        "0:Reporting-MTA=dns; mx.example.org",
                        "--field",
                        "0:Original-Envelope-Id=QQ314159",
                        "--field",
                        "0:Arrival-Date=Tue, 02 Jan 2024 03:04:05 +0000",
                        "--field",
                        "1:Original-Recipient=rfc822;Bob@Example.net",
                        "--field",
                        "1:Final-Recipient=rfc822; bob@example.net",
                        "--field",
                        "1:Status=5.1.1",
                        "--field",
                        "1:Remote-MTA=dns; mx1.example.net",
                        "--field",
                        "1:Diagnostic-Code=smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
                        "--text-contains",
                        "<bob@example.net>: 550 5.1.1",
                        "--returned-contains",
                        "Subject: quarterly figures",
                        "--returned-contains",
                        "Message-ID: <q1@client.example>",
                        "--returned-lacks",
                        "Hello Bob"}) == 0);
}

TEST_CASE("failed report with RET=FULL returns the whole message") {
    Report r = report(Kind::Failed);
    r.return_full = true;
    std::string dsn = build_dsn(r, {bob()}, kOriginal, "mx.example.org");
    CHECK(has_line(dsn, "Content-Type: message/rfc822"));
    CHECK(dsn.find("Subject: quarterly figures\nMessage-ID: <q1@client.example>\n\nHello Bob,\n"
                   "the figures are in.\n") != std::string::npos);
    CHECK(python_check(dsn, "failed",
                       {"--to", "alice@client.example", "--returned", "full", "--absent", "0:Original-Envelope-Id",
                        "--absent", "1:Original-Recipient", "--returned-contains", "Hello Bob,\nthe figures are in.",
                        "--returned-contains", "Subject: quarterly figures"}) == 0);
}

TEST_CASE("a report is bounded: a large message comes back as its headers, a huge header section cut") {
    Report r = report(Kind::Failed);
    r.return_full = true;
    std::string body;
    for (int i = 0; i < 20000; ++i) body += std::string(76, 'x') + "\n";  // 1.5 MB
    std::string large = std::string(kOriginal) + body;
    std::string dsn = build_dsn(r, {bob()}, large, "mx.example.org");
    CHECK(dsn.size() < kMaxReturned);
    CHECK(has_line(dsn, "Content-Type: text/rfc822-headers"));
    CHECK(dsn.find("too large to be returned whole") != std::string::npos);
    CHECK(dsn.find("Subject: quarterly figures") != std::string::npos);
    CHECK(python_check(dsn, "failed",
                       {"--to", "alice@client.example", "--returned", "headers", "--returned-lacks", "Hello Bob",
                        "--returned-contains", "Subject: quarterly figures"}) == 0);

    // No empty line: the whole message is its header section.
    std::string headers;
    for (int i = 0; i < 20000; ++i) headers += "X-Filler-" + std::to_string(i) + ": " + std::string(60, 'y') + "\n";
    dsn = build_dsn(r, {bob()}, headers, "mx.example.org");
    CHECK(dsn.size() < kMaxReturned + 4096);
    CHECK(dsn.size() > kMaxReturned - 4096);
    CHECK(dsn.find("X-Filler-0: ") != std::string::npos);
    CHECK(dsn.find("X-Filler-19999: ") == std::string::npos);
    CHECK(python_check(dsn, "failed", {"--to", "alice@client.example", "--returned", "headers"}) == 0);

    // Just within the bound: returned whole.
    std::string fits = std::string(kOriginal) + std::string(kMaxReturned - std::string(kOriginal).size() - 1, 'z') +
                       "\n";
    dsn = build_dsn(r, {bob()}, fits, "mx.example.org");
    CHECK(has_line(dsn, "Content-Type: message/rfc822"));
}

TEST_CASE("delay report says until when it retries and returns headers only") {
    Report r = report(Kind::Delayed);
    r.return_full = true;  // RET=FULL applies to failures only
    RecipientReport rc = bob();
    rc.status = "4.4.1";
    rc.diagnostic = "421 4.4.1 Connection timed out";
    rc.will_retry_until = kUntil;
    std::string dsn = build_dsn(r, {rc}, kOriginal, "mx.example.org");
    CHECK(has_line(dsn, "Subject: Delivery Status Notification (Delay)"));
    CHECK(has_line(dsn, "Will-Retry-Until: Sat, 06 Jan 2024 03:04:05 +0000"));
    CHECK(has_line(dsn, "    Delivery will be retried until Sat, 06 Jan 2024 03:04:05 +0000."));
    CHECK(python_check(dsn, "delayed",
                       {"--to", "alice@client.example", "--returned", "headers", "--field", "1:Action=delayed",
                        "--field", "1:Status=4.4.1", "--field", "1:Will-Retry-Until=Sat, 06 Jan 2024 03:04:05 +0000",
                        "--text-contains", "Delivery will be retried until Sat, 06 Jan 2024", "--returned-lacks",
                        "Hello Bob"}) == 0);
}

TEST_CASE("success report for two recipients") {
    Report r = report(Kind::Delivered);
    RecipientReport a;
    a.final_recipient = "bob@example.net";
    a.status = "2.0.0";
    a.diagnostic = "250 2.0.0 Ok: queued as 4F1A";
    a.remote_mta = "mx1.example.net";
    RecipientReport b;
    b.final_recipient = "carol@example.org";
    b.status = "2.0.0";
    b.will_retry_until = kUntil;  // ignored outside delay reports
    std::string dsn = build_dsn(r, {a, b}, kOriginal, "mx.example.org");
    CHECK(has_line(dsn, "Subject: Delivery Status Notification (Success)"));
    CHECK(dsn.find("Will-Retry-Until") == std::string::npos);
    CHECK(python_check(dsn, "delivered",
                       {"--to",
                        "alice@client.example",
                        "--rcpts",
                        "2",
                        "--field",
                        "1:Final-Recipient=rfc822; bob@example.net",
                        "--field",
                        "1:Action=delivered",
                        "--field",
                        "2:Final-Recipient=rfc822; carol@example.org",
                        "--field",
                        "2:Action=delivered",
                        "--field",
                        "2:Status=2.0.0",
                        "--absent",
                        "2:Remote-MTA",
                        "--absent",
                        "2:Diagnostic-Code",
                        "--absent",
                        "2:Last-Attempt-Date",
                        "--text-contains",
                        "<carol@example.org>"}) == 0);
}

TEST_CASE("a status that does not fit the report becomes the kind's generic one") {
    RecipientReport rc = bob();
    rc.status = "abc";
    CHECK(has_line(build_dsn(report(Kind::Failed), {rc}, kOriginal, "h"), "Status: 5.0.0"));
    rc.status = "5.1.1";
    CHECK(has_line(build_dsn(report(Kind::Delayed), {rc}, kOriginal, "h"), "Status: 4.0.0"));
    rc.status = "2.0.0\nBcc: x@y";
    CHECK(has_line(build_dsn(report(Kind::Delivered), {rc}, kOriginal, "h"), "Status: 2.0.0"));
    rc.status = "5.1234.1";
    CHECK(has_line(build_dsn(report(Kind::Failed), {rc}, kOriginal, "h"), "Status: 5.0.0"));
}

TEST_CASE("an original that looks like our boundary does not break the structure") {
    // An original that is itself a MIME message with boundary lines, including
    // ones that start the way ours do, and a closing delimiter.
    std::string original =
        "From: a@client.example\n"
        "Subject: tricky\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"=_postern-dsn-00000000000000000000000000000000\"\n"
        "\n"
        "--=_postern-dsn-00000000000000000000000000000000\n"
        "Content-Type: text/plain\n"
        "\n"
        "--=_postern-dsn-\n"
        "--=_postern-dsn---\n"
        "--\n"
        "--=_postern-dsn-00000000000000000000000000000000--\n";
    Report r = report(Kind::Failed);
    r.return_full = true;
    std::string dsn = build_dsn(r, {bob()}, original, "mx.example.org");
    auto pos = dsn.find("boundary=\"");
    REQUIRE(pos != std::string::npos);
    std::string boundary = dsn.substr(pos + 10, dsn.find('"', pos + 10) - pos - 10);
    CHECK(boundary.starts_with("=_postern-dsn-"));
    CHECK(original.find(boundary) == std::string::npos);
    CHECK(python_check(dsn, "failed", {"--returned", "full", "--returned-contains", "Subject: tricky"}) == 0);

    r.return_full = false;
    dsn = build_dsn(r, {bob()}, original, "mx.example.org");
    CHECK(python_check(dsn, "failed",
                       {"--returned", "headers", "--returned-contains", "Subject: tricky", "--returned-lacks",
                        "Content-Type: text/plain"}) == 0);
}

TEST_CASE("header injection through envelope data stays inside its field") {
    Report r = report(Kind::Failed);
    r.sender = "alice@client.example\r\nBcc: victim@example.com";
    r.envid = "id\nBcc: envid@example.com";
    r.reporting_mta = "mx.example.org\nBcc: host@example.com";
    RecipientReport rc = bob();
    rc.final_recipient = "a@b\nBcc: x@y";
    rc.original_recipient = "rfc822;a@b\r\nCc: z@y";
    rc.diagnostic = "550 no\r\nBcc: diag@example.com\n\n--fake--";
    rc.remote_mta = "mx\nBcc: mta@example.com";
    std::string dsn = build_dsn(r, {rc}, kOriginal, "mx.example.org\nBcc: mid@example.com");

    CHECK(dsn.find("\nBcc:") == std::string::npos);
    CHECK(dsn.find("\nCc:") == std::string::npos);
    CHECK(dsn.find("\r") == std::string::npos);
    CHECK(has_line(dsn, "To: <alice@client.example Bcc: victim@example.com>"));
    CHECK(has_line(dsn, "Final-Recipient: rfc822; a@b Bcc: x@y"));
    CHECK(python_check(dsn, "failed",
                       {"--rcpts", "1", "--field", "1:Final-Recipient=rfc822; a@b Bcc: x@y", "--field",
                        "1:Original-Recipient=rfc822;a@b Cc: z@y", "--field",
                        "0:Original-Envelope-Id=id Bcc: envid@example.com"}) == 0);
}

TEST_CASE("a long diagnostic is folded under 998 octets per line") {
    Report r = report(Kind::Failed);
    RecipientReport rc = bob();
    rc.diagnostic = "550 5.7.1";
    for (int i = 0; i < 300; ++i) rc.diagnostic += " reason" + std::to_string(i);
    rc.diagnostic += " " + std::string(2500, 'z');
    std::string dsn = build_dsn(r, {rc}, kOriginal, "mx.example.org");
    std::size_t start = 0, longest = 0;
    while (start < dsn.size()) {
        std::size_t end = dsn.find('\n', start);
        if (end == std::string::npos) end = dsn.size();
        longest = std::max(longest, end - start);
        start = end + 1;
    }
    CHECK(longest <= 998);
    CHECK(dsn.find("reason299") != std::string::npos);
    CHECK(python_check(dsn, "failed", {"--text-contains", "reason150 reason151"}) == 0);
}

TEST_CASE("originals without a body or without any content") {
    Report r = report(Kind::Failed);
    r.return_full = true;
    std::string headers_only = "From: a@client.example\nSubject: no body";  // nor a final LF
    std::string dsn = build_dsn(r, {bob()}, headers_only, "mx.example.org");
    CHECK(dsn.find("Subject: no body\n") != std::string::npos);
    CHECK(python_check(dsn, "failed", {"--returned", "full", "--returned-contains", "Subject: no body"}) == 0);

    dsn = build_dsn(r, {bob()}, "", "mx.example.org");
    CHECK(python_check(dsn, "failed", {"--returned", "headers"}) == 0);

    r.return_full = false;
    dsn = build_dsn(r, {bob()}, "\nbody only\n", "mx.example.org");
    CHECK(python_check(dsn, "failed", {"--returned", "headers", "--returned-lacks", "body only"}) == 0);
}

TEST_CASE("the checker itself fails on a report that is wrong") {
    std::string dsn = build_dsn(report(Kind::Failed), {bob()}, kOriginal, "mx.example.org");
    CHECK(python_check(dsn, "delayed", {}) != 0);
    CHECK(python_check(dsn, "failed", {"--returned", "full"}) != 0);
    CHECK(python_check(dsn, "failed", {"--rcpts", "2"}) != 0);
    CHECK(python_check(dsn, "failed", {"--field", "1:Status=5.1.2"}) != 0);
    std::string broken = dsn;
    broken.replace(broken.find("Auto-Submitted: auto-replied"), 28, "Auto-Submitted: no");
    CHECK(python_check(broken, "failed", {}) != 0);
}
