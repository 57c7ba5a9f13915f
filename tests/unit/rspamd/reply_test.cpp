// rspamd/reply: decoding rspamd's /checkv2 answers — the real ones rspamd
// 3.4 sent (tests/unit/rspamd/data, see its README) and the other shapes its
// milter accepts — and refusing the ones we cannot act on, naming the field.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

#include "rspamd/reply.hpp"

using namespace postern::rspamd;

namespace {

std::string data_file(const std::string& name) {
    std::string path = std::string(POSTERN_SOURCE_DIR) + "/tests/unit/rspamd/data/" + name;
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Reply decoded(std::string_view body) {
    DecodeResult r = decode_reply(body);
    if (auto* e = std::get_if<DecodeError>(&r)) FAIL("refused: " << e->message);
    return std::get<Reply>(r);
}

Reply real(const std::string& name) { return decoded(data_file(name)); }

std::string refused(std::string_view body) {
    DecodeResult r = decode_reply(body);
    if (std::holds_alternative<Reply>(r)) FAIL("accepted: " << body);
    return std::get<DecodeError>(r).message;
}

const HeaderToAdd* added(const Reply& r, std::string_view name) {
    for (const auto& h : r.add_headers)
        if (h.name == name) return &h;
    return nullptr;
}

}  // namespace

TEST_CASE("reply: action names are rspamd's exact strings") {
    const std::pair<Action, std::string_view> all[] = {
        {Action::Reject, "reject"},
        {Action::SoftReject, "soft reject"},
        {Action::RewriteSubject, "rewrite subject"},
        {Action::AddHeader, "add header"},
        {Action::Greylist, "greylist"},
        {Action::NoAction, "no action"},
    };
    for (const auto& [a, name] : all) {
        CHECK(action_name(a) == name);
        CHECK(parse_action(name) == a);
    }
    CHECK_FALSE(parse_action("no_action"));
    CHECK_FALSE(parse_action("Reject"));
    CHECK_FALSE(parse_action("discard"));
}

TEST_CASE("reply: GTUBE (real): reject, rspamd's message, skipped, no milter block") {
    Reply r = real("gtube.json");
    CHECK(r.action == Action::Reject);
    CHECK(r.score == 100.0);
    CHECK(r.required_score == 100.0);
    CHECK(r.is_skipped);
    CHECK(r.smtp_message == "Gtube pattern");
    CHECK(r.add_headers.empty());
    CHECK(r.remove_headers.empty());
    CHECK(r.dkim_signatures.empty());
    REQUIRE(r.symbols.size() == 1);
    CHECK(r.symbols[0] == Symbol{"GTUBE", 0.0});
}

TEST_CASE("reply: a clean message (real): no action, milter headers as {value, order}") {
    Reply r = real("clean.json");
    CHECK(r.action == Action::NoAction);
    CHECK(r.score == Approx(1.2));
    CHECK(r.required_score == 100.0);
    CHECK_FALSE(r.is_skipped);
    CHECK_FALSE(r.smtp_message);  // "messages": {}
    CHECK_FALSE(r.subject);
    CHECK(r.symbols.size() == 25);

    // rspamd 3.4's format: every header an object {"value", "order"};
    // order -1 (the bottom) but for Authentication-Results (1).
    REQUIRE(r.add_headers.size() == 7);
    CHECK(r.add_headers[0] == HeaderToAdd{"X-Rspamd-Server", "vm", -1});
    CHECK(r.add_headers[1] == HeaderToAdd{"X-Rspamd-Queue-Id", "0123456789abcdef", -1});
    CHECK(r.add_headers[2].name == "X-Spam-Status");
    CHECK(r.add_headers[2].value == "No, score=1.20");
    const HeaderToAdd* ar = added(r, "Authentication-Results");
    REQUIRE(ar);
    CHECK(ar->order == 1);
    CHECK(ar->value.rfind("mx.example.net;\r\n\tdkim=none;\r\n\tspf=temperror", 0) == 0);
    const HeaderToAdd* result = added(r, "X-Spamd-Result");
    REQUIRE(result);
    CHECK(result->value.rfind("default: False [1.20 / 100.00];\r\n\t", 0) == 0);
    CHECK(added(r, "X-Rspamd-Action")->value == "no action");

    // remove_headers: every one of rspamd's own headers a client sent, and
    // the upstream spam flag X-Spam; 0 means all of them.
    REQUIRE(r.remove_headers.size() == 8);
    CHECK(r.remove_headers.back() == HeaderToRemove{"X-Spam", 0});
    for (const auto& h : r.remove_headers) CHECK(h.which == 0);
}

TEST_CASE("reply: add header (real)") {
    Reply r = real("add_header.json");
    CHECK(r.action == Action::AddHeader);
    CHECK(r.score == Approx(61.199999));
    CHECK(added(r, "X-Spam-Status")->value == "Yes, score=61.20");
    bool ours = false;
    for (const auto& s : r.symbols)
        if (s.name == "POSTERN_SCORE") ours = s.score == 60.0;
    CHECK(ours);
}

TEST_CASE("reply: rewrite subject (real): the template is already applied") {
    Reply r = real("rewrite_subject.json");
    CHECK(r.action == Action::RewriteSubject);
    CHECK(r.subject == "***SPAM*** postern-score-85 cheap pills");

    // A subject that is not ASCII comes back re-encoded (RFC 2047).
    Reply u = real("utf8_subject.json");
    CHECK(u.action == Action::RewriteSubject);
    CHECK(u.subject == "=?UTF-8?Q?=2A=2A=2ASPAM=2A=2A=2A_=C3=A9t=C3=A9_=E2=82=AC_=F0=9F=92=A9?= "
                       "=?UTF-8?Q?_postern=2Dscore=2D85?=");
}

TEST_CASE("reply: greylist, soft reject and reject with a message (real)") {
    CHECK(real("greylist.json").action == Action::Greylist);
    CHECK_FALSE(real("greylist.json").smtp_message);

    Reply soft = real("soft_reject.json");
    CHECK(soft.action == Action::SoftReject);
    CHECK(soft.smtp_message == "Try again later, postern test");
    CHECK(added(soft, "X-Rspamd-Pre-Result")->value ==
          "action=soft reject;\r\n\tmodule=Unknown lua;\r\n\tTry again later, postern test");

    Reply rej = real("reject_message.json");
    CHECK(rej.action == Action::Reject);
    CHECK(rej.smtp_message == "Go away, postern test");
}

TEST_CASE("reply: rspamd's DKIM signature (real): a folded string") {
    Reply r = real("dkim_signed.json");
    CHECK(r.action == Action::NoAction);
    REQUIRE(r.dkim_signatures.size() == 1);
    const std::string& sig = r.dkim_signatures[0];
    CHECK(sig.rfind("v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;\r\n\t", 0) == 0);
    CHECK(sig.find("\r\n\tb=") != std::string::npos);
    // An authenticated sender: milter_headers skips it but for X-Spam.
    CHECK(r.add_headers.empty());
    REQUIRE(r.remove_headers.size() == 1);
    CHECK(r.remove_headers[0] == HeaderToRemove{"X-Spam", 0});
}

TEST_CASE("reply: the other shapes rspamd's milter accepts") {
    Reply r = decoded(R"({"action":"no action","score":0,
        "milter":{"add_headers":{
            "X-Plain":"a string, appended",
            "X-Index":{"value":"v","index":0},
            "X-Many":["one",{"value":"two","order":2},{"value":"three"}]},
          "remove_headers":{"X-A":1,"X-B":-2},
          "no_action":true},
        "dkim-signature":["sig1","sig2"]})");
    REQUIRE(r.add_headers.size() == 5);
    CHECK(r.add_headers[0] == HeaderToAdd{"X-Plain", "a string, appended", -1});
    CHECK(r.add_headers[1] == HeaderToAdd{"X-Index", "v", 0});
    CHECK(r.add_headers[2] == HeaderToAdd{"X-Many", "one", -1});
    CHECK(r.add_headers[3] == HeaderToAdd{"X-Many", "two", 2});
    CHECK(r.add_headers[4] == HeaderToAdd{"X-Many", "three", -1});
    REQUIRE(r.remove_headers.size() == 2);
    CHECK(r.remove_headers[0] == HeaderToRemove{"X-A", 1});
    CHECK(r.remove_headers[1] == HeaderToRemove{"X-B", -2});
    CHECK(r.no_action);
    CHECK(r.dkim_signatures == std::vector<std::string>{"sig1", "sig2"});
    CHECK(r.required_score == 0);  // absent
}

TEST_CASE("reply: unknown members are ignored") {
    Reply r = decoded(R"({"action":"reject","score":20.5,"urls":["x.example"],"emails":[],
        "message-id":"<a@b>","time_real":0.1,"future":{"deep":[1,2]},"milter":{"change_from":"x@y","add_rcpt":["z"]}})");
    CHECK(r.action == Action::Reject);
    CHECK(r.score == 20.5);
}

TEST_CASE("reply: refusals name the field") {
    CHECK(refused("") == "JSON: unexpected end of input, expected a value");
    CHECK(std::get<DecodeError>(decode_reply("{\"action\": }")).offset == 11);
    CHECK(refused("[]") == "reply: expected an object, not an array");
    CHECK(refused(R"({"score":1})") == "action: missing");
    CHECK(refused(R"({"action":"no action"})") == "score: missing");
    CHECK(refused(R"({"action":"discard","score":1})") == "action: unknown action \"discard\"");
    CHECK(refused(R"({"action":1,"score":1})") == "action: expected a string, not a number");
    CHECK(refused(R"({"action":"reject","score":"1"})") == "score: expected a number, not a string");
    CHECK(refused(R"({"action":"reject","score":1,"required_score":null})") ==
          "required_score: expected a number, not null");
    CHECK(refused(R"({"action":"reject","score":1,"is_skipped":"no"})") ==
          "is_skipped: expected a boolean, not a string");
    CHECK(refused(R"({"action":"reject","score":1,"subject":["x"]})") == "subject: expected a string, not an array");
    CHECK(refused(R"({"action":"reject","score":1,"messages":"x"})") == "messages: expected an object, not a string");
    CHECK(refused(R"({"action":"reject","score":1,"messages":{"smtp_message":5}})") ==
          "messages.smtp_message: expected a string, not a number");
    CHECK(refused(R"({"action":"reject","score":1,"milter":[]})") == "milter: expected an object, not an array");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"X-A":5}}})") ==
          "milter.add_headers.X-A: expected a string, an object with a string \"value\", or an array of them, not "
          "a number");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"X-A":{"order":1}}}})") ==
          "milter.add_headers.X-A.value: missing");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"X-A":{"value":"v","order":1.5}}}})") ==
          "milter.add_headers.X-A.order: expected an integer");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"X-A":["v",[1]]}}})") ==
          "milter.add_headers.X-A[1]: expected a string, an object with a string \"value\", or an array of them, "
          "not an array");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"Bad Name":"v"}}})") ==
          "milter.add_headers.Bad Name: not a header field name");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"X:Y":"v"}}})") ==
          "milter.add_headers.X:Y: not a header field name");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"add_headers":{"":"v"}}})") ==
          "milter.add_headers.: not a header field name");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"remove_headers":{"X-A":"all"}}})") ==
          "milter.remove_headers.X-A: expected a number, not a string");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"remove_headers":{"X-A":1e10}}})") ==
          "milter.remove_headers.X-A: expected an integer");
    CHECK(refused(R"({"action":"reject","score":1,"milter":{"no_action":1}})") ==
          "milter.no_action: expected a boolean, not a number");
    CHECK(refused(R"({"action":"reject","score":1,"dkim-signature":{}})") ==
          "dkim-signature: expected a string or an array of strings, not an object");
    CHECK(refused(R"({"action":"reject","score":1,"dkim-signature":["a",null]})") ==
          "dkim-signature[1]: expected a string, not null");
    CHECK(refused(R"({"action":"reject","score":1,"symbols":{"A":1}})") ==
          "symbols.A: expected an object, not a number");
    CHECK(refused(R"({"action":"reject","score":1,"symbols":{"A":{"score":"x"}}})") ==
          "symbols.A.score: expected a number, not a string");
}

TEST_CASE("reply: rspamd's error answer says what rspamd said") {
    CHECK(refused(R"({"error":"Message is too large"})") == "error: rspamd says: Message is too large");
    CHECK(refused(R"({"error":5})") == "error: rspamd reports an error");
}
