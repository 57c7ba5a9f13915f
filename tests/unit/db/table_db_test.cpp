// tests/unit/db/table_db_test.cpp — table-db.so through the C ABI: maps and
// sets written by dbfile (the code postern-makemap writes with), lookups,
// iteration, reopening a replaced file, and the refusals.
#include <atomic>
#include <thread>

#include "dbfile.hpp"
#include "support.hpp"

using namespace dbtest;
using postern::dbmap::Format;
using postern::dbmap::Record;

namespace {

void write_map(const std::string& path, const std::vector<Record>& records, Format format = Format::Hash) {
    std::string error;
    INFO(error);
    REQUIRE(
        postern::dbmap::write_map(path, format, records, 0644, static_cast<uid_t>(-1), static_cast<gid_t>(-1), &error));
}

const std::vector<Record> kAliases = {
    {"root", "alice, bob@example.org"},
    {"postmaster", "root"},
    {"[::1]", "localhost6"},
};

}  // namespace

TEST_CASE("db table: a hash or btree map answers its keys") {
    for (Format format : {Format::Hash, Format::Btree}) {
        TempDir dir;
        write_map(dir / "aliases.db", kAliases, format);
        Table t(dir / "aliases.db");
        REQUIRE(t.status() == POSTERN_OK);
        CHECK(t.flags() == kMapFlags);
        CHECK(t.lookup("root") == "alice, bob@example.org");
        CHECK(t.lookup("ROOT") == "alice, bob@example.org");  // keys are stored lowercased
        CHECK(t.lookup("postmaster") == "root");
        CHECK(t.lookup("[::1]") == "localhost6");
        CHECK(t.lookup("nobody") == std::nullopt);
        CHECK(t.lookup("") == std::nullopt);
        CHECK(t.lookup("roo") == std::nullopt);
        CHECK(t.entries() ==
              Entries{{"[::1]", "localhost6"}, {"postmaster", "root"}, {"root", "alice, bob@example.org"}});
    }
}

TEST_CASE("db table: a map of <set> values is a list") {
    TempDir dir;
    write_map(dir / "domains.db", {{"example.org", "<set>"}, {"*.example.net", "<set>"}});
    Table t(dir / "domains.db");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == kListFlags);
    CHECK(t.lookup("example.org") == "example.org");  // a list answers with the key
    CHECK(t.lookup("Example.ORG") == "example.org");
    CHECK(t.lookup("example.com") == std::nullopt);
    CHECK(t.entries() == Entries{{"*.example.net", std::nullopt}, {"example.org", std::nullopt}});

    // One value that is not <set> makes it a map, <set> then a plain value.
    write_map(dir / "mixed.db", {{"a", "<set>"}, {"b", "x"}});
    Table mixed(dir / "mixed.db");
    REQUIRE(mixed.status() == POSTERN_OK);
    CHECK(mixed.flags() == kMapFlags);
    CHECK(mixed.lookup("a") == "<set>");
}

TEST_CASE("db table: an empty map is a map with nothing in it") {
    TempDir dir;
    write_map(dir / "empty.db", {});
    Table t(dir / "empty.db");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == kMapFlags);
    CHECK(t.entries().empty());
    CHECK(t.lookup("x") == std::nullopt);
}

TEST_CASE("db table: iterate lists every entry of a large map once") {
    TempDir dir;
    std::vector<Record> records;
    for (int i = 0; i < 5000; ++i) records.push_back({"user" + std::to_string(i), "target" + std::to_string(i)});
    write_map(dir / "big.db", records);
    Table t(dir / "big.db");
    REQUIRE(t.status() == POSTERN_OK);
    Entries got = t.entries();
    REQUIRE(got.size() == 5000);
    Entries want;
    for (const auto& r : records) want.emplace_back(r.key, r.value);
    std::sort(want.begin(), want.end());
    CHECK(got == want);
    CHECK(t.lookup("user4999") == "target4999");
}

TEST_CASE("db table: a map replaced by rename is reopened without a reload") {
    TempDir dir;
    const std::string path = dir / "virtual.db";
    write_map(path, {{"a@example.org", "alice"}});
    Table t(path);
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("a@example.org") == "alice");

    write_map(path, {{"a@example.org", "anna"}, {"b@example.org", "bob"}});
    CHECK(t.lookup("a@example.org") == "anna");
    CHECK(t.lookup("b@example.org") == "bob");
    CHECK(t.entries() == Entries{{"a@example.org", "anna"}, {"b@example.org", "bob"}});
}

TEST_CASE("db table: a broken or missing replacement keeps the old map in use") {
    TempDir dir;
    const std::string path = dir / "aliases.db";
    write_map(path, kAliases);
    Table t(path);
    REQUIRE(t.status() == POSTERN_OK);

    // Not a database: the old map answers, lookups and iterate alike.
    write_file(dir / "junk", "root: mallory\n");
    REQUIRE(::rename((dir / "junk").c_str(), path.c_str()) == 0);
    CHECK(t.lookup("root") == "alice, bob@example.org");
    CHECK(t.entries().size() == 3);

    // reload says why, and keeps the old map too.
    CHECK(t.reload() == POSTERN_PERMFAIL);
    CHECK(t.error() == path + ": unexpected file type or format");
    CHECK(t.lookup("postmaster") == "root");

    // Gone: still the old map.
    REQUIRE(::unlink(path.c_str()) == 0);
    CHECK(t.lookup("root") == "alice, bob@example.org");
    CHECK(t.reload() == POSTERN_PERMFAIL);
    CHECK(t.error() == path + ": No such file or directory");

    // A good map again: taken.
    write_map(path, {{"root", "carol"}});
    CHECK(t.lookup("root") == "carol");
    CHECK(t.lookup("postmaster") == std::nullopt);
}

TEST_CASE("db table: reload rereads the file and reports its kind") {
    TempDir dir;
    const std::string path = dir / "t.db";
    write_map(path, {{"a", "1"}});
    Table t(path);
    REQUIRE(t.status() == POSTERN_OK);
    REQUIRE(t.flags() == kMapFlags);

    // Replaced by a set: until the reload the kind reported stays a map...
    write_map(path, {{"a", "<set>"}});
    CHECK(t.lookup("a") == "<set>");
    // ...and after it, a list.
    REQUIRE(t.reload() == POSTERN_OK);
    CHECK(t.flags() == kListFlags);
    CHECK(t.lookup("a") == "a");
}

TEST_CASE("db table: open refuses a missing, wrong or corrupt file with its path") {
    TempDir dir;
    Table missing(dir / "none.db");
    CHECK(missing.status() == POSTERN_PERMFAIL);
    CHECK(missing.error() == dir / "none.db: No such file or directory");

    Table folder(dir.path());
    CHECK(folder.status() == POSTERN_PERMFAIL);
    CHECK(folder.error() == dir.path() + ": Is a directory");

    write_file(dir / "text", "root: alice\n");
    Table text(dir / "text");
    CHECK(text.status() == POSTERN_PERMFAIL);
    CHECK(text.error() == dir / "text: unexpected file type or format");

    // A good header over a damaged page: found by the walk open makes.
    std::vector<Record> records;
    for (int i = 0; i < 500; ++i) records.push_back({"key" + std::to_string(i), std::string(40, 'v')});
    write_map(dir / "damaged.db", records);
    {
        std::fstream f(dir / "damaged.db", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8192);
        f << std::string(4096, '\xff');
    }
    Table damaged(dir / "damaged.db");
    CHECK(damaged.status() == POSTERN_PERMFAIL);
    CHECK(damaged.error() == dir / "damaged.db: page 2: illegal page type or format");

    char err[256] = "";
    void* handle = nullptr;
    uint32_t flags = 0;
    CHECK(plugin()->open("", &handle, &flags, err, sizeof err) == POSTERN_PERMFAIL);
    CHECK(std::string(err) == "table-db: no file given");
}

TEST_CASE("db table: lookups from several threads while the map is replaced") {
    TempDir dir;
    const std::string path = dir / "t.db";
    write_map(path, {{"k", "v0"}, {"fixed", "same"}});
    Table t(path);
    REQUIRE(t.status() == POSTERN_OK);

    std::atomic<bool> stop{false};
    std::atomic<int> bad{0}, done{0};
    auto reader = [&] {
        while (!stop) {
            std::string got;
            char err[256] = "";
            int rc = plugin()->lookup(
                t.handle(), "fixed", [](void* ctx, const char* v) { *static_cast<std::string*>(ctx) = v; }, &got, err,
                sizeof err);
            if (rc != POSTERN_OK || got != "same") ++bad;
            int entries = 0;
            rc = plugin()->iterate(
                t.handle(), [](void* ctx, const char*, const char*) { ++*static_cast<int*>(ctx); }, &entries, err,
                sizeof err);
            if (rc != POSTERN_OK || entries != 2) ++bad;
            ++done;
        }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(reader);
    for (int i = 1; i <= 50; ++i) write_map(path, {{"k", "v" + std::to_string(i)}, {"fixed", "same"}});
    stop = true;
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
    CHECK(done > 0);
    CHECK(t.lookup("k") == "v50");
}
