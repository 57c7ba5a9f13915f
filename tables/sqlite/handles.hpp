// tables/sqlite/handles.hpp — RAII owners of SQLite's connection and statement
// handles, and the scope of one statement's use.
#pragma once

#include <sqlite3.h>

#include <memory>

namespace postern::sqlite {

struct ConnectionCloser {
    // close_v2: should a statement outlive its connection by mistake, the
    // connection lingers until that statement is finalized instead of leaking.
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;

struct StatementFinalizer {
    void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// One run of a prepared statement: reset and unbound when the scope ends, on
// every path, so that the next lookup starts clean and no read transaction
// stays open (an open one would hold a shared lock and block writers).
class StatementUse {
public:
    explicit StatementUse(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
    ~StatementUse() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    StatementUse(const StatementUse&) = delete;
    StatementUse& operator=(const StatementUse&) = delete;

private:
    sqlite3_stmt* stmt_;
};

}  // namespace postern::sqlite
