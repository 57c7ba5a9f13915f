// `listen on ... proxy-v2` and the interface groups `egress` and `all` in
// the parser and both printers (issue 16). Resolving the names is smtpd's
// (tests/unit/smtpd/interfaces_test.cpp, tests/integration).
#include <catch2/catch.hpp>

#include "config/printer.hpp"
#include "helpers.hpp"

using namespace postern::config;
using namespace postern::config::test;

using Errors = std::vector<std::string>;

namespace {

Config ok(const std::string& text) {
    auto r = parse(text);
    INFO((r.errors.empty() ? std::string() : format(r.errors.front())));
    REQUIRE(r.config);
    return *r.config;
}

}  // namespace

TEST_CASE("listen: proxy-v2 is read on network listeners, off by default") {
    Config c = ok("listen on lo port 2525 proxy-v2 tag P\n"
                  "listen on egress proxy-v2 inet4\n"
                  "listen on all\n" +
                  kRule);
    REQUIRE(c.listeners.size() == 4);  // and the implied socket
    CHECK(c.listeners[0].proxy_v2);
    CHECK(c.listeners[0].tag == "P");
    CHECK(c.listeners[1].on == "egress");
    CHECK(c.listeners[1].proxy_v2);
    CHECK(c.listeners[1].family == Listener::Family::Inet4);
    CHECK(c.listeners[2].on == "all");
    CHECK_FALSE(c.listeners[2].proxy_v2);
    CHECK_FALSE(c.listeners[3].proxy_v2);
}

TEST_CASE("listen: proxy-v2 refusals") {
    CHECK(errors_of("listen on lo proxy-v2 proxy-v2\n" + kRule) == Errors{"test.conf:1:23: 'proxy-v2' is given twice"});
    CHECK(errors_of("listen on socket proxy-v2\n" + kRule) ==
          Errors{"test.conf:1:18: 'proxy-v2' cannot be used with 'listen on socket'"});
    CHECK(errors_of("listen on proxy-v2\n" + kRule) ==
          Errors{"test.conf:1:11: expected an address, interface, hostname or 'socket' after 'listen on', found "
                 "'proxy-v2'"});
    // There is no proxy-v1 (nor OpenSMTPD's non-existent proxy-v4): the v2
    // option takes v1 headers too.
    CHECK(first_error("listen on lo proxy-v1\n" + kRule).starts_with("test.conf:1:14: expected a listen option"));
}

TEST_CASE("listen: proxy-v2 and the interface groups print in both forms") {
    Config c = ok("listen on egress port 25 proxy-v2\nlisten on all port 587\n" + kRule);
    const std::string conf = print_conf(c);
    CHECK(conf.find("listen on \"egress\" port 25 proxy-v2\n") != std::string::npos);
    CHECK(conf.find("listen on \"all\" port 587\n") != std::string::npos);
    const std::string yaml = print_yaml(c);
    CHECK(yaml.find("proxy-v2: true") != std::string::npos);
    CHECK(yaml.find("listen-on: egress") != std::string::npos);
}
