// tests/unit/sendmail/options_test.cpp — postern-sendmail's command line:
// the forms sendmail programs are called with (grouped flags, values
// attached or apart, -o options, -b modes, names), and the refusals.
#include <catch2/catch.hpp>

#include "sendmail/options.hpp"

using namespace postern::sendmail;

namespace {

ParseResult run(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/sbin/sendmail");
    return parse(args);
}

}  // namespace

TEST_CASE("recipients alone, in order, the mode is send") {
    auto r = run({"alice", "bob@example.org"});
    REQUIRE(r.error.empty());
    CHECK(r.options.mode == Mode::Send);
    CHECK(r.options.recipients == std::vector<std::string>{"alice", "bob@example.org"});
    CHECK_FALSE(r.options.extract);
    CHECK_FALSE(r.options.ignore_dots);
    CHECK_FALSE(r.options.sender_given);
}

TEST_CASE("grouped flags and -oi") {
    auto r = run({"-ti", "-v"});
    REQUIRE(r.error.empty());
    CHECK(r.options.extract);
    CHECK(r.options.ignore_dots);
    CHECK(r.options.verbose);
    auto oi = run({"-oi", "-t"});
    CHECK(oi.options.ignore_dots);
    auto apart = run({"-o", "i", "x"});
    CHECK(apart.options.ignore_dots);
    CHECK(apart.options.recipients == std::vector<std::string>{"x"});
}

TEST_CASE("other -o options are accepted and ignored") {
    auto r = run({"-oem", "-odb", "-O", "DeliveryMode=b", "x"});
    REQUIRE(r.error.empty());
    CHECK_FALSE(r.options.ignore_dots);
    CHECK(r.options.recipients == std::vector<std::string>{"x"});
    CHECK(r.options.warnings == std::vector<std::string>{"-oem ignored", "-odb ignored", "-O ignored"});
}

TEST_CASE("options -f and -r, attached or apart, angle brackets dropped, <> is the null sender") {
    CHECK(run({"-fme@example.org", "x"}).options.sender == "me@example.org");
    CHECK(run({"-f", "<me@example.org>", "x"}).options.sender == "me@example.org");
    CHECK(run({"-r", "me", "x"}).options.sender == "me");
    auto null = run({"-f", "<>", "x"});
    CHECK(null.options.sender_given);
    CHECK(null.options.sender.empty());
    auto empty = run({"-f", "", "x"});
    CHECK(empty.options.sender_given);
    CHECK(empty.options.sender.empty());
}

TEST_CASE("a value option takes the rest of a group") {
    auto r = run({"-tiFJohn Smith", "x"});
    REQUIRE(r.error.empty());
    CHECK(r.options.extract);
    CHECK(r.options.ignore_dots);
    CHECK(r.options.full_name == "John Smith");
}

TEST_CASE("options after recipients count, as glibc getopt permutes them, and -- ends them") {
    auto r = run({"alice", "-f", "me", "-t"});
    REQUIRE(r.error.empty());
    CHECK(r.options.sender == "me");
    CHECK(r.options.extract);
    CHECK(r.options.recipients == std::vector<std::string>{"alice"});
    auto dash = run({"--", "-t"});
    CHECK_FALSE(dash.options.extract);
    CHECK(dash.options.recipients == std::vector<std::string>{"-t"});
}

TEST_CASE("the -b modes and the program's names") {
    CHECK(run({"-bs"}).options.mode == Mode::Smtp);
    CHECK(run({"-bp"}).options.mode == Mode::Queue);
    CHECK(run({"-bi"}).options.mode == Mode::Aliases);
    CHECK(run({"-bm", "x"}).options.mode == Mode::Send);
    CHECK(parse({"/usr/bin/mailq"}).options.mode == Mode::Queue);
    CHECK(parse({"newaliases"}).options.mode == Mode::Aliases);
    CHECK(parse({"/usr/sbin/sendmail"}).options.mode == Mode::Send);
    CHECK(parse({"postern-sendmail", "-bp"}).options.mode == Mode::Queue);
    CHECK(program_name("/usr/lib/sendmail") == "sendmail");
}

TEST_CASE("DSN options, checked and lowercased") {
    auto r = run({"-N", "SUCCESS,failure", "-R", "HDRS", "-V", "id 1", "x"});
    REQUIRE(r.error.empty());
    CHECK(r.options.notify == "success,failure");
    CHECK(r.options.ret == "hdrs");
    CHECK(r.options.envid == "id 1");
    CHECK(run({"-N", "never", "x"}).error.empty());
    CHECK(run({"-N", "sometimes", "x"}).error == "-N takes never, or a list of success, failure and delay");
    CHECK(run({"-N", "success,", "x"}).error == "-N takes never, or a list of success, failure and delay");
    CHECK(run({"-R", "all", "x"}).error == "-R takes full or hdrs");
}

TEST_CASE("ignored flags and options of other sendmails") {
    auto r = run({"-m", "-S", "-x", "-B", "8BITMIME", "-L", "tag", "-e", "m", "-p", "smtp:host", "-A", "c", "x"});
    REQUIRE(r.error.empty());
    CHECK(r.options.recipients == std::vector<std::string>{"x"});
}

TEST_CASE("option -C names the configuration") {
    CHECK(run({"-C", "/etc/x.conf", "y"}).options.config == "/etc/x.conf");
}

TEST_CASE("refusals say what is wrong") {
    CHECK(run({"-f"}).error == "option -f needs a value");
    CHECK(run({"-Z", "x"}).error == "unknown option -Z");
    CHECK(run({"-q"}).error ==
          "-q is not supported: posternd runs its queue itself (posternctl schedule all retries it now)");
    CHECK(run({"-q30m"}).error.rfind("-q is not supported", 0) == 0);
    CHECK(run({"-bd"}).error == "-bd is not supported: the daemon is posternd");
    CHECK(run({"-bv", "x"}).error == "-bv is not supported (only -bm, -bp, -bi and -bs are)");
}
