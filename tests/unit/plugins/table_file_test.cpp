// tests/unit/plugins/table_file_test.cpp — table-file.so through the C ABI:
// the OpenSMTPD static table format, its refusals, reload and lookups.
#include <atomic>
#include <optional>
#include <thread>
#include <utility>

#include "support.hpp"

namespace {

using Entries = std::vector<std::pair<std::string, std::optional<std::string>>>;

const postern::util::TablePlugin& plugin() {
    static auto loaded = [] {
        std::string error;
        auto p = postern::util::load_table_plugin(test::kPluginDir, "file", &error);
        if (!p) FAIL(error);
        return std::move(*p);
    }();
    return loaded;
}

// One open table over a file written by the test.
class Table {
public:
    explicit Table(const std::string& content) : path_(dir_ / "table") {
        test::write_file(path_, content);
        status_ = plugin()->open(path_.c_str(), &handle_, &flags_, err_, sizeof err_);
    }
    ~Table() {
        if (handle_) plugin()->close(handle_);
    }
    int status() const { return status_; }
    std::string error() const { return err_; }
    uint32_t flags() const { return flags_; }
    const std::string& path() const { return path_; }
    void* handle() const { return handle_; }

    int reload(const std::string& content) {
        test::write_file(path_, content);
        return plugin()->reload(handle_, &flags_, err_, sizeof err_);
    }
    int reload_missing() {
        ::unlink(path_.c_str());
        return plugin()->reload(handle_, &flags_, err_, sizeof err_);
    }

    std::optional<std::string> lookup(const std::string& key) const {
        std::optional<std::string> value;
        char err[256] = "";
        int rc = plugin()->lookup(
            handle_, key.c_str(), [](void* ctx, const char* v) { *static_cast<std::optional<std::string>*>(ctx) = v; },
            &value, err, sizeof err);
        CHECK((rc == POSTERN_OK) == value.has_value());
        CHECK((rc == POSTERN_OK || rc == POSTERN_NOTFOUND));
        return value;
    }

    Entries entries() const {
        Entries out;
        char err[256] = "";
        int rc = plugin()->iterate(
            handle_,
            [](void* ctx, const char* k, const char* v) {
                auto* e = static_cast<Entries*>(ctx);
                e->emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
            },
            &out, err, sizeof err);
        CHECK(rc == POSTERN_OK);
        return out;
    }

private:
    test::TempDir dir_;
    std::string path_;
    void* handle_ = nullptr;
    uint32_t flags_ = 0;
    char err_[512] = "";
    int status_ = -1;
};

constexpr uint32_t kMapFlags = POSTERN_TABLE_ITERABLE;
constexpr uint32_t kListFlags = POSTERN_TABLE_ITERABLE | POSTERN_TABLE_LIST;

}  // namespace

TEST_CASE("file table: map with every key/value separator") {
    Table t("root: alice\npostmaster:bob\nabuse carol dave\ntabbed\t\tvalue\nspaced : x\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == kMapFlags);
    CHECK(t.lookup("root") == "alice");
    CHECK(t.lookup("postmaster") == "bob");
    CHECK(t.lookup("abuse") == "carol dave");
    CHECK(t.lookup("tabbed") == "value");
    CHECK(t.lookup("spaced") == ": x");  // key ends at the blank; the rest is verbatim
    CHECK(t.lookup("nobody") == std::nullopt);
    CHECK(t.lookup("") == std::nullopt);
}

TEST_CASE("file table: list decided by the first entry") {
    Table t("example.org\n  example.com  \n10.0.0.0/8\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == kListFlags);
    CHECK(t.lookup("example.com") == "example.com");  // a list answers with the key
    CHECK(t.entries() ==
          Entries{{"example.org", std::nullopt}, {"example.com", std::nullopt}, {"10.0.0.0/8", std::nullopt}});
}

TEST_CASE("file table: in a list the whole line is the key") {
    Table t("alpha\nbeta gamma\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("beta gamma") == "beta gamma");
    CHECK(t.lookup("beta") == std::nullopt);
}

TEST_CASE("file table: # @list forces list mode only before any entry") {
    Table forced("# @list\nfoo bar\nbaz: qux\n");
    REQUIRE(forced.status() == POSTERN_OK);
    CHECK(forced.flags() == kListFlags);
    CHECK(forced.lookup("foo bar") == "foo bar");
    CHECK(forced.lookup("baz: qux") == "baz: qux");

    Table late("foo bar\n# @list\nbaz qux\n");
    REQUIRE(late.status() == POSTERN_OK);
    CHECK(late.flags() == kMapFlags);
    CHECK(late.lookup("baz") == "qux");
}

TEST_CASE("file table: comments only at line start, blank lines skipped") {
    Table t("# aliases\n\n   # indented comment\nroot alice # not a comment\n\t\n#x y\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.entries() == Entries{{"root", "alice # not a comment"}});
}

TEST_CASE("file table: [ipv6] keys run to the closing bracket") {
    Table list("[::1]\n127.0.0.1\n[fe80::1%eth0]\n");
    REQUIRE(list.status() == POSTERN_OK);
    CHECK(list.flags() == kListFlags);
    CHECK(list.lookup("[::1]") == "[::1]");
    CHECK(list.lookup("[fe80::1%eth0]") == "[fe80::1%eth0]");

    Table map("[::1]: localhost6\n[2001:db8::1] relay\n");
    REQUIRE(map.status() == POSTERN_OK);
    CHECK(map.lookup("[::1]") == "localhost6");
    CHECK(map.lookup("[2001:db8::1]") == "relay");
}

TEST_CASE("file table: malformed lines reject the file with file and line") {
    Table missing_value("root alice\nbob\n");
    CHECK(missing_value.status() == POSTERN_PERMFAIL);
    CHECK(missing_value.error() == missing_value.path() + ":2: invalid map entry (key \"bob\" has no value)");

    Table colon_only("# header\nroot: alice\n\npostmaster:\n");
    CHECK(colon_only.status() == POSTERN_PERMFAIL);
    CHECK(colon_only.error() == colon_only.path() + ":4: invalid map entry (key \"postmaster\" has no value)");

    Table bracket("[::1\n");
    CHECK(bracket.status() == POSTERN_PERMFAIL);
    CHECK(bracket.error() == bracket.path() + ":1: malformed key (no closing ])");

    Table after("ok value\n[::1]x value\n");
    CHECK(after.status() == POSTERN_PERMFAIL);
    CHECK(after.error() == after.path() + ":2: malformed key (text after ])");

    Table nul(std::string("a b\nc\0d e\n", 10));
    CHECK(nul.status() == POSTERN_PERMFAIL);
    CHECK(nul.error() == nul.path() + ":2: NUL byte in line");
}

TEST_CASE("file table: an empty file is an empty map") {
    Table t("");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.flags() == kMapFlags);
    CHECK(t.entries().empty());
    CHECK(t.lookup("x") == std::nullopt);

    Table comments("# nothing here\n\n");
    REQUIRE(comments.status() == POSTERN_OK);
    CHECK(comments.flags() == kMapFlags);
}

TEST_CASE("file table: duplicate keys, the last one wins in place") {
    Table t("a 1\nb 2\nA 3\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("a") == "3");
    CHECK(t.entries() == Entries{{"a", "3"}, {"b", "2"}});
}

TEST_CASE("file table: keys are lowercased, values kept as written") {
    Table t("Postmaster@Example.COM  Alice@Example.org\nCRLF\tline\r\n");
    REQUIRE(t.status() == POSTERN_OK);
    CHECK(t.lookup("postmaster@example.com") == "Alice@Example.org");
    CHECK(t.lookup("POSTMASTER@example.com") == "Alice@Example.org");
    CHECK(t.lookup("crlf") == "line");
    CHECK(t.entries() == Entries{{"postmaster@example.com", "Alice@Example.org"}, {"crlf", "line"}});
}

TEST_CASE("file table: open reports a missing file and an empty config") {
    char err[256] = "";
    void* handle = nullptr;
    uint32_t flags = 0;
    CHECK(plugin()->open("/nonexistent/aliases", &handle, &flags, err, sizeof err) == POSTERN_TEMPFAIL);
    CHECK(std::string(err) == "/nonexistent/aliases: No such file or directory");
    CHECK(handle == nullptr);
    CHECK(plugin()->open("/tmp", &handle, &flags, err, sizeof err) == POSTERN_TEMPFAIL);
    CHECK(std::string(err) == "/tmp: Is a directory");
    CHECK(plugin()->open("", &handle, &flags, err, sizeof err) == POSTERN_PERMFAIL);
    CHECK(std::string(err) == "table-file: no file given");
}

TEST_CASE("file table: reload swaps content, keeps the old one on error") {
    Table t("root alice\n");
    REQUIRE(t.status() == POSTERN_OK);

    REQUIRE(t.reload("root bob\nabuse carol\n") == POSTERN_OK);
    CHECK(t.lookup("root") == "bob");
    CHECK(t.lookup("abuse") == "carol");

    CHECK(t.reload("root dave\nbroken\n") == POSTERN_PERMFAIL);
    CHECK(t.error() == t.path() + ":2: invalid map entry (key \"broken\" has no value)");
    CHECK(t.lookup("root") == "bob");
    CHECK(t.flags() == kMapFlags);

    CHECK(t.reload_missing() == POSTERN_TEMPFAIL);
    CHECK(t.error() == t.path() + ": No such file or directory");
    CHECK(t.lookup("abuse") == "carol");

    REQUIRE(t.reload("one\ntwo\n") == POSTERN_OK);  // a map may become a list
    CHECK(t.flags() == kListFlags);
    CHECK(t.lookup("root") == std::nullopt);
    CHECK(t.lookup("two") == "two");
}

TEST_CASE("file table: lookups from several threads during reloads") {
    Table t("key old\n");
    REQUIRE(t.status() == POSTERN_OK);
    std::atomic<int> bad{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 4; ++r) {
        readers.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                std::string got;
                char err[64];
                int rc = plugin()->lookup(
                    t.handle(), "key", [](void* ctx, const char* v) { *static_cast<std::string*>(ctx) = v; }, &got, err,
                    sizeof err);
                if (rc != POSTERN_OK || (got != "old" && got != "new")) ++bad;
            }
        });
    }
    int failed_reloads = 0;  // no REQUIRE while readers run: a throw would skip join()
    for (int i = 0; i < 50; ++i)
        if (t.reload(i % 2 ? "key old\n" : "key new\n") != POSTERN_OK) ++failed_reloads;
    for (auto& th : readers) th.join();
    CHECK(failed_reloads == 0);
    CHECK(bad == 0);
}
