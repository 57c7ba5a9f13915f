// tables/sqlite/database.hpp — one open SQLite database with the statements of
// a table-sqlite config prepared on it, and the lookups that run them.
//
// Not thread-safe: one connection, statements reused; the table handle
// (table_sqlite.cpp) serialises every call with its mutex.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config.hpp"
#include "handles.hpp"
#include "rotation.hpp"

namespace postern::sqlite {

class Database {
    struct Key {
        explicit Key() = default;
    };

public:
    // Open config.dbpath read-only, set the busy timeout and prepare every
    // query, checking its columns and its one key parameter. On failure
    // return nullptr with a POSTERN_* status and a reason naming the config
    // line and key ("FILE:LINE: query_alias: no such table: x").
    static std::unique_ptr<Database> open(Config config, int* status, std::string* error);

    const Config& config() const { return config_; }

    // The POSTERN_SERVICE_* mask of the services with a query (source: with
    // a fetch_source, the only way the daemon asks for sources).
    uint32_t services() const;

    // Run the query of `service` for `key`. POSTERN_OK with *value set,
    // POSTERN_NOTFOUND, or POSTERN_TEMPFAIL with *error (a service without
    // a query, a locked or broken database, a row the value cannot be built
    // from).
    int lookup(uint32_t service, std::string_view key, std::string* value, std::string* error);

    // The next fetch_source value (POSTERN_OK), POSTERN_NOTFOUND when it has
    // no rows, POSTERN_TEMPFAIL with *error.
    int fetch_source(std::string* value, std::string* error);

    // For open() alone (Key is private); public so that make_unique can call it.
    Database(Key, Config config, Connection db);

private:
    std::string failure(std::string_view key) const;

    Config config_;
    Connection db_;
    // Destroyed before db_ (declared after it).
    std::array<Statement, kServices.size()> queries_;
    Statement fetch_source_;
    Rotation rotation_;
};

}  // namespace postern::sqlite
