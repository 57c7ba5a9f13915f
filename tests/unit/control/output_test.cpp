// control/output: the exact text and JSON posternctl prints for each kind of
// reply (the JSON keys are documented in posternctl(8) and stable), and that
// every JSON document parses back to the values sent, whatever their bytes.
#include "control/output.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support.hpp"

using namespace postern::control;
using namespace std::string_literals;

namespace {

using W = std::vector<std::string>;

// What a daemon with two listeners and three filters answers.
Reply status_reply() {
    Reply r;
    r.records = {
        {{"version", "0.1.0"},
         {"uptime", "93784"},
         {"mda", "paused"},
         {"mta", "running"},
         {"smtp", "running"},
         {"queue.messages", "1"},
         {"queue.envelopes", "2"},
         {"queue.oldest-age", "65"}},
        {{"listener", "127.0.0.1"},
         {"port", "2525"},
         {"path", ""},
         {"tls", "yes"},
         {"tls-require", "yes"},
         {"smtps", "no"},
         {"auth", "yes"},
         {"auth-optional", "no"},
         {"filter", "both"},
         {"member", "one"},
         {"member", "rdns"}},
        {{"listener", "socket"},
         {"port", ""},
         {"path", "/run/postern/submit.sock"},
         {"tls", "no"},
         {"tls-require", "no"},
         {"smtps", "no"},
         {"auth", "no"},
         {"auth-optional", "no"},
         {"filter", ""}},
        {{"filter", "one"}, {"kind", "proc"}, {"state", "running"}, {"pid", "4242"}, {"restart-in-ms", ""}},
        {{"filter", "rdns"}, {"kind", "builtin"}, {"state", "running"}, {"pid", ""}, {"restart-in-ms", ""}},
        {{"filter", "two"}, {"kind", "proc"}, {"state", "restarting"}, {"pid", ""}, {"restart-in-ms", "1500"}},
    };
    return r;
}

}  // namespace

TEST_CASE("show status in JSON: every documented key, typed, in order") {
    CHECK(
        render_json(W{"show", "status"}, status_reply()) ==
        R"({"version":"0.1.0","uptime":93784,"mda":"paused","mta":"running","smtp":"running",)"
        R"("queue":{"messages":1,"envelopes":2,"oldest-age":65},)"
        R"("listeners":[{"address":"127.0.0.1","port":2525,"path":null,"tls":true,"tls-require":true,"smtps":false,)"
        R"("auth":true,"auth-optional":false,"filter":"both","filters":["one","rdns"]},)"
        R"({"address":"socket","port":null,"path":"/run/postern/submit.sock","tls":false,"tls-require":false,"smtps":false,"auth":false,)"
        R"("auth-optional":false,"filter":null,"filters":[]}],)"
        R"("filters":[{"name":"one","kind":"proc","state":"running","pid":4242,"restart-in-ms":null},)"
        R"({"name":"rdns","kind":"builtin","state":"running","pid":null,"restart-in-ms":null},)"
        R"({"name":"two","kind":"proc","state":"restarting","pid":null,"restart-in-ms":1500}]})"
        "\n");
}

TEST_CASE("show status in text: one line per fact, for people") {
    CHECK(render_text(W{"show", "status"}, status_reply()) ==
          "version: 0.1.0\n"
          "uptime: 1d 2h 3m 4s\n"
          "mda: paused\n"
          "mta: running\n"
          "smtp: running\n"
          "queue: 1 message, 2 envelopes, oldest 1m 5s\n"
          "listener 127.0.0.1 port 2525: tls-require auth; filters one, rdns\n"
          "listener socket /run/postern/submit.sock\n"
          "filter one: running (pid 4242)\n"
          "filter rdns: running (built-in)\n"
          "filter two: restarting in 1.5s\n");
}

TEST_CASE("show status with an empty queue and no listener has the same keys") {
    Reply r;
    r.records = {{{"version", "0.1.0"},
                  {"uptime", "7"},
                  {"mda", "running"},
                  {"mta", "running"},
                  {"smtp", "paused"},
                  {"queue.messages", "0"},
                  {"queue.envelopes", "0"},
                  {"queue.oldest-age", ""}}};
    CHECK(render_json(W{"show", "status"}, r) ==
          R"({"version":"0.1.0","uptime":7,"mda":"running","mta":"running","smtp":"paused",)"
          R"("queue":{"messages":0,"envelopes":0,"oldest-age":null},"listeners":[],"filters":[]})"
          "\n");
    CHECK(render_text(W{"show", "status"}, r) ==
          "version: 0.1.0\nuptime: 7s\nmda: running\nmta: running\nsmtp: paused\nqueue: 0 messages, 0 envelopes\n");
}

TEST_CASE("show status escapes hostile names in text and keeps them in JSON") {
    Reply r = status_reply();
    r.records[1][0].second = "lo\n\x1b[31m";
    r.records[3][0].second = "f\xff";
    r.records[1][9].second = "f\xff";
    std::string text = render_text(W{"show", "status"}, r);
    CHECK(text.find("listener lo\\n\\x1b[31m port 2525: tls-require auth; filters f\\xff, rdns\n") !=
          std::string::npos);
    CHECK(text.find("filter f\\xff: running (pid 4242)\n") != std::string::npos);
    auto j = nlohmann::json::parse(render_json(W{"show", "status"}, r));
    CHECK(j["listeners"][0]["address"] == "lo\n\x1b[31m");
    CHECK(j["listeners"][0]["filters"][0] == "f\xc3\xbf");
    CHECK(j["filters"][0]["name"] == "f\xc3\xbf");
}

TEST_CASE("show stats and show envelope: one object of strings, keys in order") {
    Reply r;
    r.records = {{{"uptime", "12"}, {"smtp.session", "3"}}};
    CHECK(render_json(W{"show", "stats"}, r) == "{\"uptime\":\"12\",\"smtp.session\":\"3\"}\n");
    CHECK(render_text(W{"show", "stats"}, r) == "uptime=12\nsmtp.session=3\n");
    r.records = {{{"id", "0123456789abcdef"}, {"helo", "a\tb"}}};
    CHECK(render_json(W{"show", "envelope", "0123456789abcdef"}, r) ==
          "{\"id\":\"0123456789abcdef\",\"helo\":\"a\\tb\"}\n");
    CHECK(render_text(W{"show", "envelope", "0123456789abcdef"}, r) == "id: 0123456789abcdef\nhelo: a\\tb\n");
}

TEST_CASE("show queue: an array of objects, [] when empty") {
    Reply r;
    CHECK(render_json(W{"show", "queue"}, r) == "[]\n");
    CHECK(render_text(W{"show", "queue"}, r) == "");
    r.records = {{{"id", "a"}, {"sender", "x|y"}}, {{"id", "b"}, {"sender", ""}}};
    CHECK(render_json(W{"show", "queue"}, r) == R"([{"id":"a","sender":"x|y"},{"id":"b","sender":""}])"
                                                "\n");
    CHECK(render_text(W{"show", "queue"}, r) == "a|x\\x7cy\nb|\n");
}

TEST_CASE("show message: {\"text\": ...} with every byte kept") {
    Reply r;
    r.records = {{{"text", "Subject: \xe9t\xe9\r\n\r\n\x01\x7f" + "\0"s}}};
    std::string out = render_json(W{"show", "message", "01234567"}, r);
    CHECK(out == "{\"text\":\"Subject: \xc3\xa9t\xc3\xa9\\r\\n\\r\\n\\u0001\x7f\\u0000\"}\n");
    CHECK(nlohmann::json::parse(out)["text"] == "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\x01\x7f" + "\0"s);
}

TEST_CASE("actions: {\"message\": ...}, the daemon's or made here") {
    Reply r;
    CHECK(render_json(W{"pause", "mda"}, r) == "{\"message\":\"mda paused\"}\n");
    CHECK(render_json(W{"log", "brief"}, r) == "{\"message\":\"verbose logging off\"}\n");
    CHECK(render_json(W{"update", "table", "t"}, r) == "{\"message\":\"table t updated\"}\n");
    r.records = {{{"message", "3 envelopes scheduled"}, {"count", "3"}}};
    CHECK(render_json(W{"schedule", "all"}, r) == "{\"message\":\"3 envelopes scheduled\"}\n");
    CHECK(render_text(W{"schedule", "all"}, r) == "3 envelopes scheduled\n");
}

TEST_CASE("table lookup: one object of the answer's keys") {
    Record rec{{"table", "t"},    {"service", "alias"}, {"key", "k\"q"},
               {"how", "lookup"}, {"result", "found"},  {"value", "a\xff"}};
    CHECK(record_json(rec) ==
          "{\"table\":\"t\",\"service\":\"alias\",\"key\":\"k\\\"q\",\"how\":\"lookup\",\"result\":\"found\","
          "\"value\":\"a\xc3\xbf\"}\n");
}

TEST_CASE("every byte value survives JSON as its Latin-1 reading when not UTF-8") {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    Reply r;
    r.records = {{{"text", all}}};
    auto back = nlohmann::json::parse(render_json(W{"show", "message", "01234567"}, r))["text"].get<std::string>();
    // ASCII as it is; each byte from 0x80 up (none is valid UTF-8 alone) as U+0080..U+00FF.
    std::string want = all.substr(0, 128);
    for (int c = 128; c < 256; ++c) {
        want += static_cast<char>(0xc0 | (c >> 6));
        want += static_cast<char>(0x80 | (c & 0x3f));
    }
    CHECK(back == want);
}
