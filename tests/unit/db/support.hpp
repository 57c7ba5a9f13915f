// tests/unit/db/support.hpp — helpers for the db table and makemap tests:
// scratch folders, files, running programs (our makemap, Debian's makemap,
// db5.3_dump) and one open table-db.so handle.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../common/files.hpp"
#include "postern/table.h"
#include "util/plugin.hpp"

namespace dbtest {

inline const std::string kPluginDir = POSTERN_BUILD_DIR "/plugins";
inline const std::string kMakemap = POSTERN_BUILD_DIR "/postern-makemap";
inline const std::string kDebianMakemap = "/usr/sbin/makemap";
inline const std::string kDbDump = "/usr/bin/db5.3_dump";

// A fresh folder under /tmp (common/files.hpp), and whole-file I/O.
class TempDir : public postern_test::TempDir {
public:
    TempDir() : postern_test::TempDir("db") {}
};
using postern_test::read_file;
using postern_test::write_file;

inline bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

struct Run {
    int status = -1;  // exit status, or -1 when it did not exit normally
    std::string out, err;
};

// Runs argv (no shell) with `input` on stdin; stdout and stderr captured
// through files in `dir`.
inline Run run(const TempDir& dir, const std::vector<std::string>& argv, const std::string& input = "") {
    static int n = 0;
    const std::string base = dir / ("run" + std::to_string(++n));
    write_file(base + ".in", input);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int in = ::open((base + ".in").c_str(), O_RDONLY);
        int out = ::open((base + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = ::open((base + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0) ::_exit(126);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    Run r;
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    r.out = read_file(base + ".out");
    r.err = read_file(base + ".err");
    return r;
}

inline const postern::util::TablePlugin& plugin() {
    static auto loaded = [] {
        std::string error;
        auto p = postern::util::load_table_plugin(kPluginDir, "db", &error);
        if (!p) FAIL(error);
        return std::move(*p);
    }();
    return loaded;
}

using Entries = std::vector<std::pair<std::string, std::optional<std::string>>>;

constexpr uint32_t kMapFlags = POSTERN_TABLE_ITERABLE;
constexpr uint32_t kListFlags = POSTERN_TABLE_ITERABLE | POSTERN_TABLE_LIST;

// One table-db.so handle on `path`.
class Table {
public:
    explicit Table(const std::string& path) : path_(path) {
        status_ = plugin()->open(path_.c_str(), &handle_, &flags_, err_, sizeof err_);
    }
    ~Table() {
        if (handle_) plugin()->close(handle_);
    }
    Table(const Table&) = delete;
    Table& operator=(const Table&) = delete;

    int status() const { return status_; }
    std::string error() const { return err_; }
    uint32_t flags() const { return flags_; }

    int reload() { return plugin()->reload(handle_, &flags_, err_, sizeof err_); }

    // The value, nullopt when not found; a TEMPFAIL fails the test.
    std::optional<std::string> lookup(const std::string& key) const {
        std::optional<std::string> value;
        char err[256] = "";
        int rc = plugin()->lookup(
            handle_, key.c_str(), [](void* ctx, const char* v) { *static_cast<std::optional<std::string>*>(ctx) = v; },
            &value, err, sizeof err);
        INFO(err);
        CHECK((rc == POSTERN_OK || rc == POSTERN_NOTFOUND));
        CHECK((rc == POSTERN_OK) == value.has_value());
        return value;
    }

    // Entries sorted by key (a hash map has no order of its own).
    Entries entries() const {
        Entries out;
        char err[256] = "";
        int rc = plugin()->iterate(
            handle_,
            [](void* ctx, const char* k, const char* v) {
                static_cast<Entries*>(ctx)->emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
            },
            &out, err, sizeof err);
        INFO(err);
        CHECK(rc == POSTERN_OK);
        std::sort(out.begin(), out.end());
        return out;
    }

    void* handle() const { return handle_; }

private:
    std::string path_;
    void* handle_ = nullptr;
    uint32_t flags_ = 0;
    char err_[512] = "";
    int status_ = -1;
};

}  // namespace dbtest
