// tests/unit/plugins/loader_test.cpp — the plugin loader: what it accepts,
// and the exact message for every kind of plugin it refuses.
#include <filesystem>

#include "support.hpp"

using postern::util::load_delivery_plugin;
using postern::util::load_table_plugin;

namespace {

std::string table_error(const std::string& dir, const std::string& name) {
    std::string error;
    auto p = load_table_plugin(dir, name, &error);
    CHECK_FALSE(p);
    return error;
}

void copy(const std::string& from, const std::string& to) { std::filesystem::copy_file(from, to); }

}  // namespace

TEST_CASE("plugin names are [a-z0-9-]+") {
    using postern::util::valid_plugin_name;
    CHECK(valid_plugin_name("file"));
    CHECK(valid_plugin_name("proc-exec2"));
    CHECK_FALSE(valid_plugin_name(""));
    CHECK_FALSE(valid_plugin_name("File"));
    CHECK_FALSE(valid_plugin_name("../file"));
    CHECK_FALSE(valid_plugin_name("a/b"));
    CHECK_FALSE(valid_plugin_name("a_b"));
    CHECK_FALSE(valid_plugin_name("a.so"));
    CHECK_FALSE(valid_plugin_name(std::string("a\0b", 3)));
}

TEST_CASE("a bad name is refused before the folder is looked at") {
    // The folder does not exist: the message must be about the name.
    CHECK(table_error("/nonexistent", "../file") == "invalid table plugin name \"../file\" (allowed: a-z, 0-9 and -)");
    std::string error;
    CHECK_FALSE(load_delivery_plugin("/nonexistent", "Maildir", &error));
    CHECK(error == "invalid delivery plugin name \"Maildir\" (allowed: a-z, 0-9 and -)");
}

TEST_CASE("a missing plugin names the path and the folder") {
    test::TempDir dir;
    CHECK(table_error(dir.path(), "nothere") ==
          dir.path() + "/table-nothere.so: no such plugin (looked in " + dir.path() + ")");
    std::string error;
    CHECK_FALSE(load_delivery_plugin("/nonexistent/dir", "lmtp", &error));
    CHECK(error == "/nonexistent/dir/delivery-lmtp.so: no such plugin (looked in /nonexistent/dir)");
}

TEST_CASE("a plugin for another ABI version is refused") {
    CHECK(table_error(test::kTestPluginDir, "badabi") ==
          test::kTestPluginDir + "/table-badabi.so: ABI version 7, this postern speaks 1");
}

TEST_CASE("a shared object without the entry symbol is not a postern plugin") {
    test::TempDir dir;
    // A delivery plugin has no postern_table_plugin symbol.
    copy(test::kPluginDir + "/delivery-maildir.so", dir / "table-maildir.so");
    CHECK(table_error(dir.path(), "maildir") ==
          dir / "table-maildir.so" + ": not a postern plugin (no symbol postern_table_plugin)");
    copy(test::kPluginDir + "/table-file.so", dir / "delivery-file.so");
    std::string error;
    CHECK_FALSE(load_delivery_plugin(dir.path(), "file", &error));
    CHECK(error == dir / "delivery-file.so" + ": not a postern plugin (no symbol postern_delivery_plugin)");
}

TEST_CASE("a file that is not a shared object reports dlopen's reason once") {
    test::TempDir dir;
    test::write_file(dir / "table-junk.so", std::string(128, 'x'));
    CHECK(table_error(dir.path(), "junk") == dir / "table-junk.so" + ": invalid ELF header");
    test::write_file(dir / "table-empty.so", "");
    CHECK(table_error(dir.path(), "empty") == dir / "table-empty.so" + ": file too short");
}

TEST_CASE("a plugin whose name does not match its file is refused") {
    test::TempDir dir;
    copy(test::kPluginDir + "/table-file.so", dir / "table-other.so");
    CHECK(table_error(dir.path(), "other") ==
          dir / "table-other.so" + ": plugin calls itself \"file\", expected \"other\"");
}

TEST_CASE("the built plugins load and describe themselves") {
    std::string error;
    auto table = load_table_plugin(test::kPluginDir, "file", &error);
    INFO(error);
    REQUIRE(table);
    CHECK(std::string(table->api().name) == "file");
    CHECK(table->api().abi_version == POSTERN_ABI_VERSION);
    CHECK(table->path() == test::kPluginDir + "/table-file.so");
    for (const char* name : {"maildir", "mbox"}) {
        auto d = load_delivery_plugin(test::kPluginDir + "/", name, &error);
        INFO(error);
        REQUIRE(d);
        CHECK(std::string((*d)->name) == name);
        CHECK(d->path() == test::kPluginDir + "/delivery-" + name + ".so");
    }
}

TEST_CASE("plugin_dir prefers the configured folder") {
    CHECK(postern::util::plugin_dir("/etc/postern/plugins") == "/etc/postern/plugins");
    // The test binary does not sit at the top of a build tree, so the
    // fallback is the installed folder, never this build's plugins/.
    CHECK(postern::util::plugin_dir("") != test::kPluginDir);
    CHECK_FALSE(postern::util::plugin_dir("").empty());
}

TEST_CASE("a table struct shorter than ABI 1's first one is refused, naming both sizes") {
    CHECK(table_error(test::kTestPluginDir, "short") ==
          test::kTestPluginDir + "/table-short.so: plugin struct is " + std::to_string(8 + 4 * sizeof(void*)) +
              " bytes, this postern needs at least " + std::to_string(POSTERN_TABLE_PLUGIN_MIN_SIZE));
}

TEST_CASE("a table may leave reload and iterate NULL, open, lookup and close are required") {
    std::string error;
    auto p = load_table_plugin(test::kTestPluginDir, "minimal", &error);
    INFO(error);
    REQUIRE(p);
    CHECK((*p)->reload == nullptr);
    CHECK((*p)->iterate == nullptr);
}

TEST_CASE("a delivery plugin built before deliver_many (a shorter struct) loads and delivers") {
    std::string error;
    auto p = load_delivery_plugin(test::kTestPluginDir, "old", &error);
    INFO(error);
    REQUIRE(p);
    CHECK((*p)->struct_size == POSTERN_DELIVERY_PLUGIN_MIN_SIZE);
    CHECK(postern::util::deliver_many_of(*p) == nullptr);  // the member is not read past struct_size
    test::TempDir dir;
    test::Request r;
    r.path = dir / "log";
    auto fd = test::message_fd(dir, "Subject: x\n\nbody\n");
    auto out = test::deliver(*p, r, fd.get());
    CHECK(out.status == POSTERN_OK);
    CHECK(out.error == "old: 17 bytes");
    CHECK(test::read_file(dir / "log") == "bob@example.com\t17\n");
}
