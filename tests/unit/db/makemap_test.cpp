// tests/unit/db/makemap_test.cpp — the real programs: maps made by Debian's
// OpenSMTPD makemap read through table-db.so; maps made by postern-makemap
// read back by db5.3_dump and Debian's makemap -U; the program's options,
// refusals and newaliases mode.
#include <algorithm>

#include "support.hpp"

using namespace dbtest;

namespace {

const std::string kAliasesText = "# the system aliases\n"
                                 "Root: alice, bob@example.org\n"
                                 "postmaster:  root\n"
                                 "\n"
                                 "staff: carol,\\\n"
                                 "\tdave\n"
                                 "bounce: \"|/usr/bin/true\"\n";

const std::string kSetText = "example.org\n# a comment\nExample.NET\n";

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The records of `db5.3_dump -p FILE`, sorted, with its type= line.
Pairs dump_records(const TempDir& dir, const std::string& file, std::string* type) {
    Run r = run(dir, {kDbDump, "-p", file});
    INFO(r.err);
    REQUIRE(r.status == 0);
    std::istringstream in(r.out);
    std::string line;
    std::vector<std::string> data;
    bool body = false;
    while (std::getline(in, line)) {
        if (line.starts_with("type=")) *type = line.substr(5);
        if (line == "HEADER=END") body = true;
        else if (line == "DATA=END") body = false;
        else if (body) data.push_back(line.substr(1));  // print format: one leading space
    }
    REQUIRE(data.size() % 2 == 0);
    Pairs out;
    for (size_t i = 0; i < data.size(); i += 2) out.emplace_back(data[i], data[i + 1]);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> sorted_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::sort(lines.begin(), lines.end());
    return lines;
}

}  // namespace

TEST_CASE("makemap: maps made by Debian's makemap are read through table-db.so") {
    REQUIRE(exists(kDebianMakemap));
    TempDir dir;
    write_file(dir / "aliases", kAliasesText);
    write_file(dir / "domains", kSetText);
    for (std::string format : {"hash", "btree"}) {
        INFO(format);
        Run a = run(dir, {kDebianMakemap, "-d", format, "-t", "aliases", "-o", dir / "aliases.db", dir / "aliases"});
        INFO(a.err);
        REQUIRE(a.status == 0);
        Table aliases(dir / "aliases.db");
        REQUIRE(aliases.status() == POSTERN_OK);
        CHECK(aliases.flags() == kMapFlags);
        CHECK(aliases.lookup("root") == "alice, bob@example.org");
        CHECK(aliases.lookup("postmaster") == "root");
        CHECK(aliases.lookup("staff") == "carol,\tdave");
        CHECK(aliases.lookup("bounce") == "\"|/usr/bin/true\"");
        CHECK(aliases.lookup("nobody") == std::nullopt);
        CHECK(aliases.entries() == Entries{{"bounce", "\"|/usr/bin/true\""},
                                           {"postmaster", "root"},
                                           {"root", "alice, bob@example.org"},
                                           {"staff", "carol,\tdave"}});

        Run s = run(dir, {kDebianMakemap, "-d", format, "-t", "set", "-o", dir / "domains.db", dir / "domains"});
        INFO(s.err);
        REQUIRE(s.status == 0);
        Table domains(dir / "domains.db");
        REQUIRE(domains.status() == POSTERN_OK);
        CHECK(domains.flags() == kListFlags);
        CHECK(domains.lookup("example.net") == "example.net");
        CHECK(domains.entries() == Entries{{"example.net", std::nullopt}, {"example.org", std::nullopt}});
    }
}

TEST_CASE("makemap: our maps hold what Debian's makemap writes for the same file") {
    REQUIRE(exists(kDebianMakemap));
    TempDir dir;
    write_file(dir / "aliases", kAliasesText);
    write_file(dir / "domains", kSetText);
    for (std::string format : {"hash", "btree"}) {
        INFO(format);
        for (auto [src, type] : {std::pair{"aliases", "aliases"}, std::pair{"domains", "set"}}) {
            Run ours = run(dir, {kMakemap, "-d", format, "-t", type, "-o", dir / "ours.db", dir / src});
            Run theirs = run(dir, {kDebianMakemap, "-d", format, "-t", type, "-o", dir / "theirs.db", dir / src});
            INFO(ours.err << theirs.err);
            REQUIRE(ours.status == 0);
            REQUIRE(theirs.status == 0);
            CHECK(ours.out.empty());
            CHECK(ours.err.empty());
            std::string our_type, their_type;
            Pairs our_records = dump_records(dir, dir / "ours.db", &our_type);
            CHECK(our_records == dump_records(dir, dir / "theirs.db", &their_type));
            CHECK(our_type == format);
            CHECK(our_type == their_type);
            // And Debian's makemap reads ours (its -U opens hash maps only,
            // its own btree maps included).
            if (format == "hash") {
                Run u = run(dir, {kDebianMakemap, "-U", dir / "ours.db"});
                CHECK(u.status == 0);
                CHECK(sorted_lines(u.out) == sorted_lines(run(dir, {kMakemap, "-U", dir / "theirs.db"}).out));
            }
        }
    }
    // The bytes: keys and values NUL-terminated, a set's values "<set>".
    run(dir, {kMakemap, "-t", "set", dir / "domains"});
    std::string type;
    CHECK(dump_records(dir, dir / "domains.db", &type) ==
          Pairs{{"example.net\\00", "<set>\\00"}, {"example.org\\00", "<set>\\00"}});
}

TEST_CASE("makemap: the map replaces the old one by rename and keeps the source's mode") {
    TempDir dir;
    write_file(dir / "virtual", "a@example.org alice\n");
    REQUIRE(::chmod((dir / "virtual").c_str(), 0640) == 0);
    REQUIRE(run(dir, {kMakemap, dir / "virtual"}).status == 0);
    struct stat st {};
    REQUIRE(::stat((dir / "virtual.db").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    const ino_t first = st.st_ino;

    Table t(dir / "virtual.db");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("a@example.org") == "alice");

    write_file(dir / "virtual", "a@example.org anna\n");
    REQUIRE(run(dir, {kMakemap, dir / "virtual"}).status == 0);
    REQUIRE(::stat((dir / "virtual.db").c_str(), &st) == 0);
    CHECK(st.st_ino != first);  // a new file, renamed over the old
    CHECK(t.lookup("a@example.org") == "anna");
    // Nothing left behind but the source, the map and the runs' own files.
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        std::string n = e.path().filename().string();
        if (!n.starts_with("run")) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"virtual", "virtual.db"});
}

TEST_CASE("makemap: refusals say file:line and what was expected, and write nothing") {
    TempDir dir;
    write_file(dir / "dup", "a: 1\nb: 2\nA: 3\n");
    Run dup = run(dir, {kMakemap, dir / "dup"});
    CHECK(dup.status == 1);
    CHECK(dup.err ==
          "postern-makemap: " + dir / "dup:3: duplicate key \"a\" (first given on line 1): expected each key once\n");
    CHECK_FALSE(exists(dir / "dup.db"));

    write_file(dir / "aliases", "root: alice\nbad: alice, <nobody>\n");
    Run alias = run(dir, {kMakemap, "-t", "aliases", dir / "aliases"});
    CHECK(alias.status == 1);
    CHECK(alias.err ==
          "postern-makemap: " +
              dir / "aliases:2: invalid alias for \"bad\": '<nobody>' is not a user name, address, path or command\n");
    CHECK_FALSE(exists(dir / "aliases.db"));
    // Without -t aliases the value is not checked.
    CHECK(run(dir, {kMakemap, dir / "aliases"}).status == 0);

    write_file(dir / "err", "x: error:300 nope\n");
    Run code = run(dir, {kMakemap, "-t", "aliases", dir / "err"});
    CHECK(code.status == 1);
    CHECK(code.err.starts_with("postern-makemap: " + dir / "err:1: invalid alias for \"x\": "));

    Run missing = run(dir, {kMakemap, dir / "none"});
    CHECK(missing.status == 1);
    CHECK(missing.err == "postern-makemap: " + dir / "none: No such file or directory\n");

    Run type = run(dir, {kMakemap, "-t", "hash", dir / "dup"});
    CHECK(type.status == 2);
    CHECK(type.err.starts_with("postern-makemap: -t hash: expected aliases or set\nusage: postern-makemap [-U]"));
    Run format = run(dir, {kMakemap, "-d", "dbm", dir / "dup"});
    CHECK(format.status == 2);
    CHECK(format.err.starts_with("postern-makemap: -d dbm: expected hash or btree\n"));
    CHECK(run(dir, {kMakemap}).status == 2);
    CHECK(run(dir, {kMakemap, "a", "b"}).status == 2);
}

TEST_CASE("makemap: stdin with -o, and -U dumps a map") {
    TempDir dir;
    Run in = run(dir, {kMakemap, "-o", dir / "m.db", "-"}, "Key value one\nother: two\n");
    INFO(in.err);
    REQUIRE(in.status == 0);
    Run u = run(dir, {kMakemap, "-U", dir / "m.db"});
    CHECK(u.status == 0);
    CHECK(sorted_lines(u.out) == std::vector<std::string>{"key\tvalue one", "other\ttwo"});

    Run no_o = run(dir, {kMakemap, "-"}, "a b\n");
    CHECK(no_o.status == 2);
    CHECK(no_o.err.starts_with("postern-makemap: reading stdin: give the map's name with -o dbfile\n"));

    write_file(dir / "text", "a b\n");
    Run bad = run(dir, {kMakemap, "-U", dir / "text"});
    CHECK(bad.status == 1);
    CHECK(bad.err == "postern-makemap: " + dir / "text: unexpected file type or format\n");
}

TEST_CASE("makemap: as newaliases it rebuilds the config's aliases map") {
    TempDir dir;
    REQUIRE(::symlink(kMakemap.c_str(), (dir / "newaliases").c_str()) == 0);
    write_file(dir / "aliases", "root: alice\nstaff: bob, carol\n");
    write_file(dir / "smtpd.conf", "table aliases db:" + dir / "aliases.db\n" + "table other db:" + dir / "other.db\n" +
                                       "action \"local\" maildir alias <other>\n"
                                       "match for local action \"local\"\n");
    write_file(dir / "other", "postmaster root\n");
    // A btree map stays a btree map.
    REQUIRE(run(dir, {kDebianMakemap, "-d", "btree", dir / "other"}).status == 0);

    Run r = run(dir, {dir / "newaliases", "-f", dir / "smtpd.conf"});
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(r.out == dir / "aliases: 2 aliases\n" + dir / "other: 1 aliases\n");
    Table t(dir / "aliases.db");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("staff") == "bob, carol");
    std::string type;
    dump_records(dir, dir / "other.db", &type);
    CHECK(type == "btree");

    // A bad alias: the map is not touched, the status says so.
    write_file(dir / "aliases", "root: alice\nroot: bob\n");
    Run dup = run(dir, {dir / "newaliases", "-f", dir / "smtpd.conf"});
    CHECK(dup.status == 1);
    CHECK(dup.err ==
          "newaliases: " + dir / "aliases:2: duplicate key \"root\" (first given on line 1): expected each key once\n");
    CHECK(t.lookup("staff") == "bob, carol");

    // file: aliases need no building.
    const std::string rules = "action \"local\" maildir alias <aliases>\nmatch for local action \"local\"\n";
    write_file(dir / "plain.conf", "table aliases file:" + dir / "aliases\n" + rules);
    Run plain = run(dir, {dir / "newaliases", "-f", dir / "plain.conf"});
    CHECK(plain.status == 0);
    CHECK(plain.out == dir / "aliases: read as it is (table aliases file:" + dir / "aliases), nothing to build\n");

    write_file(dir / "none.conf", "table other file:" + dir / "other\naction \"local\" maildir\n"
                                                              "match for local action \"local\"\n");
    Run none = run(dir, {dir / "newaliases", "-f", dir / "none.conf"});
    CHECK(none.status == 1);
    CHECK(none.err == "newaliases: " + dir / "none.conf: no db: table named aliases or used by an action's alias\n");
}
