// tables/sqlite/database.cpp — opening the database, preparing the configured
// queries once, and turning their rows into the values of table.h.
//
// The connection is read-only: a table only reads, and a read-only
// connection cannot change the database whatever the config's SQL says (a
// statement that would write is refused at open anyway). The SQL of a query
// is never assembled: the key is bound to its one parameter.
#include "database.hpp"

#include <postern/table.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include "errno_text.hpp"

namespace postern::sqlite {
namespace {

constexpr uint64_t kMaxId = 0xfffffffeu;  // uid_t/gid_t range without (uid_t)-1

// Waiting on a lock or a failing disk may pass; a database that is not one,
// a missing table or a syntax error will not.
int status_of(int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT: return POSTERN_TEMPFAIL;
    default: return POSTERN_PERMFAIL;
    }
}

// SQLite's message, with the system's reason when SQLite has one (a missing
// file is "unable to open database file" without it).
std::string open_error(sqlite3* db) {
    if (!db) return "out of memory";
    std::string msg = sqlite3_errmsg(db);
    if (int e = sqlite3_system_errno(db)) msg += std::string(" (") + errno_text(e) + ")";
    return msg;
}

std::optional<std::string_view> column(sqlite3_stmt* st, int col) {
    const unsigned char* text = sqlite3_column_text(st, col);
    if (!text) return std::nullopt;  // SQL NULL
    return std::string_view(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(st, col)));
}

std::optional<uint64_t> id_column(sqlite3_stmt* st, int col) {
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER: {
        sqlite3_int64 n = sqlite3_column_int64(st, col);
        if (n < 0 || static_cast<uint64_t>(n) > kMaxId) return std::nullopt;
        return static_cast<uint64_t>(n);
    }
    case SQLITE_TEXT: {
        auto text = column(st, col);
        uint64_t n = 0;
        if (!text || text->empty()) return std::nullopt;
        auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
        if (ec != std::errc() || end != text->data() + text->size() || n > kMaxId) return std::nullopt;
        return n;
    }
    default: return std::nullopt;
    }
}

std::string service_name(uint32_t service) {
    if (auto i = service_index(service)) return std::string(kServices[*i].name);
    if (service == POSTERN_SERVICE_STRING) return "string";
    char hex[16];
    (void)std::snprintf(hex, sizeof hex, "0x%x", service);
    return hex;
}

std::string quoted(std::string_view key) { return "\"" + std::string(key) + "\""; }

// Prepare one configured statement and check that it has the shape its key
// needs. nullptr with *error ("KEY: reason") and *status on failure.
Statement prepare(sqlite3* db, const Query& query, std::string_view key, int columns, std::string_view column_names,
                  int parameters, int* status, std::string* error) {
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db, query.sql.c_str(), static_cast<int>(query.sql.size()), SQLITE_PREPARE_PERSISTENT,
                                &raw, &tail);
    Statement stmt(raw);
    auto fail = [&](int st, const std::string& why) {
        *status = st;
        *error = std::string(key) + ": " + why;
        return Statement{};
    };
    if (rc != SQLITE_OK) return fail(status_of(rc), sqlite3_errmsg(db));
    if (!stmt) return fail(POSTERN_PERMFAIL, "no SQL statement");
    // What follows the statement may only be blanks, ';' and comments:
    // anything else would be silently ignored.
    sqlite3_stmt* next = nullptr;
    rc = sqlite3_prepare_v2(db, tail, -1, &next, nullptr);
    Statement extra(next);
    if (rc != SQLITE_OK || extra) return fail(POSTERN_PERMFAIL, "one SQL statement expected, found more");
    if (!sqlite3_stmt_readonly(stmt.get())) return fail(POSTERN_PERMFAIL, "the statement would write to the database");
    int got = sqlite3_column_count(stmt.get());
    if (got != columns)
        return fail(POSTERN_PERMFAIL, "expected " + std::to_string(columns) + (columns == 1 ? " column" : " columns") +
                                          " (" + std::string(column_names) + "), the query returns " +
                                          std::to_string(got));
    int params = sqlite3_bind_parameter_count(stmt.get());
    if (params != parameters)
        return fail(POSTERN_PERMFAIL,
                    parameters == 1
                        ? "expected one parameter (? or ?1) for the key, the query has " + std::to_string(params)
                        : "expected no parameter, the query has " + std::to_string(params));
    return stmt;
}

// Reading the schema once at open turns "not a database", a locked file or
// an unreadable one into a clear error naming dbpath, before any query does.
int probe(sqlite3* db, std::string* error) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &raw, nullptr);
    Statement stmt(raw);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return POSTERN_OK;
    *error = sqlite3_errmsg(db);
    return status_of(rc);
}

}  // namespace

Database::Database(Key, Config config, Connection db)
    : config_(std::move(config)), db_(std::move(db)), rotation_(config_.source_expire, config_.source_refresh) {}

std::unique_ptr<Database> Database::open(Config config, int* status, std::string* error) {
    const std::string path = config.path;  // config moves into the Database below
    auto at = [&](size_t line) { return path + ":" + std::to_string(line) + ": "; };
    sqlite3* raw = nullptr;
    // NOMUTEX: the table handle serialises every use of the connection.
    int rc = sqlite3_open_v2(config.dbpath.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    Connection db(raw);
    if (rc != SQLITE_OK) {
        *status = POSTERN_PERMFAIL;
        *error = at(config.dbpath_line) + "dbpath " + config.dbpath + ": " + open_error(raw);
        return nullptr;
    }
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, static_cast<int>(config.busy_timeout.count()));
    if (int st = probe(raw, error); st != POSTERN_OK) {
        *status = st;
        *error = at(config.dbpath_line) + "dbpath " + config.dbpath + ": " + *error;
        return nullptr;
    }

    auto d = std::make_unique<Database>(Key{}, std::move(config), std::move(db));
    const Config& c = d->config_;
    for (size_t i = 0; i < kServices.size(); ++i) {
        if (!c.queries[i]) continue;
        const ServiceSpec& spec = kServices[i];
        d->queries_[i] = prepare(raw, *c.queries[i], spec.key, spec.columns, spec.column_names, 1, status, error);
        if (!d->queries_[i]) {
            *error = at(c.queries[i]->line) + *error;
            return nullptr;
        }
    }
    if (c.fetch_source) {
        d->fetch_source_ = prepare(raw, *c.fetch_source, "fetch_source", 1, "address", 0, status, error);
        if (!d->fetch_source_) {
            *error = at(c.fetch_source->line) + *error;
            return nullptr;
        }
    }
    return d;
}

uint32_t Database::services() const {
    uint32_t mask = 0;
    for (size_t i = 0; i < kServices.size(); ++i)
        if (queries_[i] && kServices[i].bit != POSTERN_SERVICE_SOURCE) mask |= kServices[i].bit;
    if (fetch_source_) mask |= POSTERN_SERVICE_SOURCE;
    return mask;
}

// "DBPATH: KEY: SQLite's message" for a statement that failed to run.
std::string Database::failure(std::string_view key) const {
    return config_.dbpath + ": " + std::string(key) + ": " + sqlite3_errmsg(db_.get());
}

int Database::lookup(uint32_t service, std::string_view key, std::string* value, std::string* error) {
    auto index = service_index(service);
    if (!index) {
        *error = config_.path + ": table-sqlite has no query for the " + service_name(service) + " service";
        return POSTERN_TEMPFAIL;
    }
    const ServiceSpec& spec = kServices[*index];
    sqlite3_stmt* st = queries_[*index].get();
    if (!st) {
        *error = "no " + std::string(spec.key) + " in " + config_.path;
        return POSTERN_TEMPFAIL;
    }
    StatementUse use(st);
    if (sqlite3_bind_text(st, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC) != SQLITE_OK) {
        *error = failure(spec.key);
        return POSTERN_TEMPFAIL;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return POSTERN_NOTFOUND;
    if (rc != SQLITE_ROW) {
        *error = failure(spec.key);
        return POSTERN_TEMPFAIL;
    }
    auto bad_row = [&](std::string_view what) {
        *error = config_.dbpath + ": " + std::string(spec.key) + " for " + quoted(key) + ": " + std::string(what);
        return POSTERN_TEMPFAIL;
    };
    switch (spec.shape) {
    case Shape::Match: {
        // Found is all that counts; the column is passed on for the curious.
        auto v = column(st, 0);
        *value = v && !v->empty() ? std::string(*v) : std::string(key);
        break;
    }
    case Shape::First: {
        auto v = column(st, 0);
        if (!v || v->empty()) return bad_row("NULL or empty value");
        *value = *v;
        break;
    }
    case Shape::Pair: {
        auto user = column(st, 0), password = column(st, 1);
        if (!user || !password) return bad_row("NULL user or password");
        *value = std::string(*user) + ":" + std::string(*password);
        break;
    }
    case Shape::UserInfo: {
        auto uid = id_column(st, 0), gid = id_column(st, 1);
        auto home = column(st, 2);
        if (!uid || !gid) return bad_row("uid and gid must be numbers");
        if (!home || home->empty()) return bad_row("NULL or empty home");
        *value = std::to_string(*uid) + ":" + std::to_string(*gid) + ":" + std::string(*home);
        break;
    }
    case Shape::Join: {
        // One row per entry, as table-sqlite joins alias rows.
        value->clear();
        do {
            auto v = column(st, 0);
            if (!v || v->empty()) continue;
            if (!value->empty()) *value += ", ";
            *value += *v;
        } while ((rc = sqlite3_step(st)) == SQLITE_ROW);
        if (rc != SQLITE_DONE) {
            *error = failure(spec.key);
            return POSTERN_TEMPFAIL;
        }
        if (value->empty()) return bad_row("only NULL or empty values");
        break;
    }
    }
    // The value crosses the ABI as a C string: a NUL would cut it short.
    if (value->find('\0') != std::string::npos) return bad_row("NUL byte in value");
    return POSTERN_OK;
}

int Database::fetch_source(std::string* value, std::string* error) {
    sqlite3_stmt* st = fetch_source_.get();
    if (!st) {
        *error = "no fetch_source in " + config_.path;
        return POSTERN_TEMPFAIL;
    }
    auto now = Rotation::Clock::now();
    if (rotation_.stale(now)) {
        std::vector<std::string> values;
        StatementUse use(st);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            auto v = column(st, 0);
            if (v && !v->empty() && v->find('\0') == std::string_view::npos &&
                std::find(values.begin(), values.end(), *v) == values.end())
                values.emplace_back(*v);
        }
        if (rc != SQLITE_DONE) {  // the old values stay for the next try
            *error = failure("fetch_source");
            return POSTERN_TEMPFAIL;
        }
        rotation_.replace(std::move(values), now);
    }
    auto v = rotation_.take();
    if (!v) return POSTERN_NOTFOUND;
    *value = std::move(*v);
    return POSTERN_OK;
}

}  // namespace postern::sqlite
