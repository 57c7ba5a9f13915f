// tests/unit/sqlite/support.hpp — table-sqlite.so through the C ABI: a scratch
// folder, SQLite databases written by the test with the real library, and an
// open table handle whose calls return what they gave.
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "../common/files.hpp"
#include "util/plugin.hpp"

namespace sqlt {

inline const postern::util::TablePlugin& plugin() {
    static auto loaded = [] {
        std::string error;
        auto p = postern::util::load_table_plugin(POSTERN_BUILD_DIR "/plugins", "sqlite", &error);
        if (!p) FAIL(error);
        return std::move(*p);
    }();
    return loaded;
}

// A fresh folder under /tmp (common/files.hpp), and whole-file I/O.
class TempDir : public postern_test::TempDir {
public:
    TempDir() : postern_test::TempDir("sqlite") {}
};
using postern_test::read_file;
using postern_test::write_file;

// A read-write connection of the test's own (the writer the table reads).
class Db {
public:
    explicit Db(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK);
    }
    ~Db() { sqlite3_close_v2(db_); }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;
    void exec(const std::string& sql) {
        char* msg = nullptr;
        int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
        INFO(sql << ": " << (msg ? msg : ""));
        sqlite3_free(msg);
        REQUIRE(rc == SQLITE_OK);
    }

private:
    sqlite3* db_ = nullptr;
};

struct Result {
    int rc = -1;
    std::string value;  // when rc == POSTERN_OK
    std::string error;  // when rc == POSTERN_TEMPFAIL / PERMFAIL
    bool operator==(const Result& o) const { return rc == o.rc && value == o.value && error == o.error; }
};

inline Result found(std::string value) { return {POSTERN_OK, std::move(value), ""}; }
inline Result notfound() { return {POSTERN_NOTFOUND, "", ""}; }
inline Result tempfail(std::string error) { return {POSTERN_TEMPFAIL, "", std::move(error)}; }

inline std::ostream& operator<<(std::ostream& os, const Result& r) {
    return os << "{rc " << r.rc << ", value \"" << r.value << "\", error \"" << r.error << "\"}";
}

// Appends, so that a second call shows in the value (no Catch assertion
// here: the thread test calls it from several threads).
inline void take(void* ctx, const char* value) { static_cast<Result*>(ctx)->value += value; }

// One table-sqlite handle over a config file written by the test.
class Table {
public:
    Table(const std::string& config_path, const std::string& config) : path_(config_path) {
        write_file(path_, config);
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
    const std::string& path() const { return path_; }

    Result lookup(uint32_t service, const std::string& key) const {
        Result r;
        char err[256] = "";
        r.rc = plugin()->lookup_service(handle_, service, key.c_str(), take, &r, err, sizeof err);
        r.error = err;
        return r;
    }
    Result plain_lookup(const std::string& key) const {
        Result r;
        char err[256] = "";
        r.rc = plugin()->lookup(handle_, key.c_str(), take, &r, err, sizeof err);
        r.error = err;
        return r;
    }
    Result fetch(uint32_t service) const {
        Result r;
        char err[256] = "";
        r.rc = plugin()->fetch(handle_, service, take, &r, err, sizeof err);
        r.error = err;
        return r;
    }
    uint32_t services() const { return plugin()->services(handle_); }

    int reload() {
        err_[0] = '\0';
        return plugin()->reload(handle_, &flags_, err_, sizeof err_);
    }
    // Rewrite the config, then reload.
    int reload(const std::string& config) {
        write_file(path_, config);
        return reload();
    }

private:
    std::string path_;
    void* handle_ = nullptr;
    uint32_t flags_ = 0;
    char err_[512] = "";
    int status_ = -1;
};

}  // namespace sqlt
