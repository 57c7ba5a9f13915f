// The control protocol's frames: exact bytes, round trips with hostile
// values, and every refusal with its exact reason.
#include <catch2/catch.hpp>

#include <string>

#include "control/protocol.hpp"
#include "table/table.hpp"

using namespace postern::control;
using namespace std::string_literals;

namespace {

std::string ns(std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s) + ","; }
std::string frame(std::string_view payload) { return ns(payload); }
const std::string kV = ns("postern-control/1");

std::string request_error(std::string_view bytes) {
    Request r;
    std::string err;
    if (decode_request(bytes, &r, &err)) return "<decoded>";
    return err;
}

std::string reply_error(std::string_view bytes) {
    Reply r;
    std::string err;
    if (decode_reply(bytes, &r, &err)) return "<decoded>";
    return err;
}

}  // namespace

TEST_CASE("a request encodes to exact nested netstrings") {
    CHECK(encode_request({{"show", "queue"}}) == "36:17:postern-control/1,4:show,5:queue,,");
    Request r;
    std::string err;
    REQUIRE(decode_request("36:17:postern-control/1,4:show,5:queue,,", &r, &err));
    CHECK(r.words == std::vector<std::string>{"show", "queue"});
}

TEST_CASE("a reply encodes to exact nested netstrings") {
    Reply ok{true, "", {{{"k", "v"}}, {}}};
    CHECK(encode_reply(ok) == "43:17:postern-control/1,2:ok,0:,8:1:k,1:v,,0:,,");
    Reply bad{false, "permission denied", {}};
    CHECK(encode_reply(bad) == "50:17:postern-control/1,5:error,17:permission denied,,");
}

TEST_CASE("hostile words survive a request round trip") {
    Request in{{"update", "table", "a\0b"s, "\r\n.\r\n", "3:abc,", ",:,:", "", std::string(60000, '\xff')}};
    std::string bytes = encode_request(in);
    Request out;
    std::string err;
    REQUIRE(decode_request(bytes, &out, &err));
    CHECK(out == in);
}

TEST_CASE("hostile keys and values survive a reply round trip") {
    Reply in;
    in.ok = false;
    in.error = "bad\nthing\0"s;
    in.records.push_back({{"", ""}, {"text", "line1\r\nline2\0\xff"s}, {"5:inject,", "0:,"}});
    in.records.push_back({});
    in.records.push_back({{"big", std::string(3 * 1024 * 1024, 'x')}});
    for (int i = 0; i < 10000; ++i) in.records.push_back({{"id", std::to_string(i)}});
    std::string bytes = encode_reply(in);
    Reply out;
    std::string err;
    REQUIRE(decode_reply(bytes, &out, &err));
    CHECK(out == in);
    CHECK(encode_reply(out) == bytes);
}

TEST_CASE("malformed outer frames are refused with exact reasons") {
    CHECK(request_error("") == "truncated frame");
    CHECK(request_error("36:17:postern-control/1,4:show,5:queue,") == "truncated frame");
    CHECK(request_error("x") == "frame does not start with a length");
    CHECK(request_error(":abc,") == "frame does not start with a length");
    CHECK(request_error("036:17:postern-control/1,4:show,5:queue,,") == "frame length has a leading zero");
    CHECK(request_error("1234567890:") == "frame length has too many digits");
    CHECK(request_error("3;abc,") == "expected ':' after the frame length");
    CHECK(request_error("3:abc;") == "expected ',' after the frame");
    CHECK(request_error("65537:") == "frame too large (65537 bytes, max 65536)");
    CHECK(request_error("36:17:postern-control/1,4:show,5:queue,,x") == "trailing bytes after the frame");
    CHECK(reply_error("60000000:") == "truncated frame");  // within the reply bound: wait for more
    CHECK(reply_error("999999999:") == "frame too large (999999999 bytes, max 67108864)");
}

TEST_CASE("malformed request contents are refused with exact reasons") {
    CHECK(request_error(frame("")) == "missing protocol version");
    CHECK(request_error(frame(ns("postern-control/2") + ns("show"))) ==
          "unsupported protocol version 'postern-control/2'");
    CHECK(request_error(frame(ns("v\n\x01") + ns("show"))) == "unsupported protocol version 'v?"
                                                              "?'");
    CHECK(request_error(frame(kV)) == "empty request");
    CHECK(request_error(frame(kV + "3:show,")) == "expected ',' after the field");
    CHECK(request_error(frame(kV + "9:show,")) == "truncated field");
    CHECK(request_error(frame(kV + "4:show")) == "truncated field");
    CHECK(request_error(frame(kV + "show")) == "field does not start with a length");
    CHECK(request_error(frame(kV + "04:show,")) == "field length has a leading zero");
    std::string words;
    for (int i = 0; i < 33; ++i) words += ns("w");
    CHECK(request_error(frame(kV + words)) == "too many words (max 32)");
    words.clear();
    for (int i = 0; i < 32; ++i) words += ns("w");
    CHECK(request_error(frame(kV + words)) == "<decoded>");
}

TEST_CASE("malformed reply contents are refused with exact reasons") {
    CHECK(reply_error(frame(kV)) == "missing status");
    CHECK(reply_error(frame(kV + ns("maybe") + ns(""))) == "bad status 'maybe'");
    CHECK(reply_error(frame(kV + ns("ok"))) == "missing error text");
    CHECK(reply_error(frame(kV + ns("ok") + ns("") + ns(ns("key")))) == "record 1 has a key without a value");
    CHECK(reply_error(frame(kV + ns("ok") + ns("") + ns("") + ns(ns("k") + ns("v") + ns("k2")))) ==
          "record 2 has a key without a value");
    CHECK(reply_error(frame(kV + ns("ok") + ns("") + ns("1:k,1:vv,"))) == "expected ',' after the field");
    CHECK(reply_error(frame(kV + ns("ok") + ns("") + "7:")) == "truncated field");
    CHECK(reply_error(frame(kV + ns("ok") + ns(""))) == "<decoded>");
    // A request is not a reply, nor a reply a request.
    CHECK(reply_error(encode_request({{"show", "queue"}})) == "bad status 'show'");
    CHECK(request_error(encode_reply({})) == "<decoded>");  // words "ok", "": decodes, then fails validation
    Request r;
    std::string err;
    REQUIRE(decode_request(encode_reply({}), &r, &err));
    CHECK(validate_request(r) == "unknown command: ok ");
}

TEST_CASE("scan_frame tells a reader when a frame is whole") {
    std::string whole = encode_request({{"show", "queue"}});
    std::string err;
    for (size_t n = 0; n < whole.size(); ++n) {
        INFO("prefix " << n);
        CHECK(scan_frame(std::string_view(whole).substr(0, n), kMaxRequest, &err) == FrameState::Incomplete);
    }
    CHECK(scan_frame(whole, kMaxRequest, &err) == FrameState::Complete);
    // Too large is known from the length alone, before the body arrives.
    CHECK(scan_frame("70000:", kMaxRequest, &err) == FrameState::Bad);
    CHECK(err == "frame too large (70000 bytes, max 65536)");
    CHECK(scan_frame("GET / HTTP/1.0\r\n", kMaxRequest, &err) == FrameState::Bad);
    CHECK(err == "frame does not start with a length");
}

TEST_CASE("every documented command form is valid") {
    const std::vector<std::vector<std::string>> good = {
        {"show", "queue"},
        {"show", "stats"},
        {"show", "status"},
        {"show", "message", "01234567"},
        {"show", "message", "0123456789abcdef"},
        {"show", "envelope", "0123456789abcdef"},
        {"schedule", "all"},
        {"schedule", "01234567"},
        {"schedule", "0123456789abcdef"},
        {"remove", "all"},
        {"remove", "89abcdef"},
        {"pause", "mta"},
        {"pause", "mda"},
        {"pause", "smtp"},
        {"resume", "mta"},
        {"resume", "mda"},
        {"resume", "smtp"},
        {"log", "verbose"},
        {"log", "brief"},
        {"update", "table", "aliases"},
        {"update", "table", "my-table_2.db"},
        {"table", "lookup", "aliases", "alias", "root"},
        {"table", "lookup", "users", "userinfo", "bob"},
        {"table", "lookup", "d", "domain", "a.example.org"},
        {"table", "lookup", "t", "mailaddr", "a b@c"},  // a key is any bytes but NUL
        {"table", "lookup", "t", "relayhost", std::string(1024, 'k')},
        {"reload"},
    };
    for (const auto& w : good) {
        INFO(w[0] << " " << (w.size() > 1 ? w[1] : std::string()));
        CHECK(validate_request({w}) == "");
    }
}

TEST_CASE("bad commands and arguments are refused with exact reasons") {
    CHECK(validate_request({}) == "empty request");
    CHECK(validate_request({{"frobnicate"}}) == "unknown command: frobnicate");
    CHECK(validate_request({{"show"}}) == "unknown command: show");
    CHECK(validate_request({{"show", "queue", "extra"}}) == "unknown command: show queue extra");
    CHECK(validate_request({{"pause", "everything"}}) == "unknown command: pause everything");
    CHECK(validate_request({{"log", "loud\n"}}) == "unknown command: log loud?");
    CHECK(validate_request({{"schedule", "xyz"}}) ==
          "invalid id 'xyz': expected a message id (8 hex digits), an envelope id (16) or all");
    CHECK(validate_request({{"remove", "0123456789ABCDEF"}}) ==
          "invalid id '0123456789ABCDEF': expected a message id (8 hex digits), an envelope id (16) or all");
    CHECK(validate_request({{"show", "message", "all"}}) ==
          "invalid id 'all': expected a message id (8 hex digits) or an envelope id (16)");
    CHECK(validate_request({{"show", "envelope", "01234567"}}) ==
          "invalid envelope id '01234567': expected 16 hex digits");
    CHECK(validate_request({{"update", "table", "two words"}}) == "invalid table name 'two words'");
    CHECK(validate_request({{"update", "table", ""}}) == "invalid table name ''");
    CHECK(validate_request({{"update", "table", std::string(256, 'a')}}) ==
          "invalid table name '" + std::string(64, 'a') + "...'");
    CHECK(validate_request({{"table", "lookup", "t", "aliases", "x"}}) ==
          "invalid service 'aliases': expected one of alias, credentials, domain, netaddr, userinfo, source, "
          "string, mailaddr, mailaddrmap, addrname, relayhost");
    CHECK(validate_request({{"table", "lookup", "t", "alias", ""}}) ==
          "invalid key '': expected 1 to 1024 bytes, no NUL");
    CHECK(validate_request({{"table", "lookup", "t", "alias", "a\0b"s}}) ==
          "invalid key 'a?b': expected 1 to 1024 bytes, no NUL");
    CHECK(validate_request({{"table", "lookup", "t", "alias", std::string(1025, 'k')}}) ==
          "invalid key '" + std::string(64, 'k') + "...': expected 1 to 1024 bytes, no NUL");
    CHECK(validate_request({{"table", "lookup", "t b", "alias", "x"}}) == "invalid table name 't b'");
    CHECK(validate_request({{"table", "lookup", "t", "alias"}}) == "unknown command: table lookup t alias");
    CHECK(validate_request({{"table", "find", "t", "alias", "x"}}) == "unknown command: table find t alias x");
}

TEST_CASE("the service words are the tables' own names for their services") {
    using postern::table::Service;
    std::vector<std::string_view> names;
    for (Service s :
         {Service::Alias, Service::Credentials, Service::Domain, Service::Netaddr, Service::Userinfo, Service::Source,
          Service::String, Service::Mailaddr, Service::Mailaddrmap, Service::Addrname, Service::Relayhost})
        names.emplace_back(postern::table::service_name(s));
    CHECK(service_names() == names);
}

TEST_CASE("printable keeps error messages on one safe line") {
    CHECK(printable("ok") == "ok");
    CHECK(printable("a\r\nb\0c\x7f\xff"s) == "a??b?c??");
    CHECK(printable(std::string(70, 'z')) == std::string(64, 'z') + "...");
}

TEST_CASE("usage lists every command form") {
    const auto& lines = usage_lines();
    REQUIRE(lines.size() == 15);
    CHECK(lines.front() == "show queue");
    CHECK(lines[5] == "show quarantine");
    CHECK(lines[6] == "release MSGID");
    CHECK(lines[13] == "table lookup NAME SERVICE KEY");
    CHECK(lines.back() == "reload");
}
