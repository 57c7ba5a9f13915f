// tables/sqlite/table_sqlite.cpp — table-sqlite.so, the SQLite table backend:
// `table T sqlite:/etc/postern/sqlite.conf` (postern-table-sqlite(5)).
//
// The config file is opensmtpd-extras' table-sqlite format: a database path
// and one SELECT per lookup service, the key bound to its `?`. So the backend
// answers lookup_service (the query of that service), fetch (fetch_source's
// rows in turn) and services (the queries it has); the plain lookup, which
// names no service, is refused. Not iterable: the database matches itself
// (WHERE domain = ?), the core never walks it.
//
// Live: every lookup reads the database as it is now, so a row added with
// sqlite3(1) counts at once. reload (posternctl update table, SIGHUP) reads
// the config again and reopens the database (a file replaced by rename is
// only seen then); if that fails the old connection stays in use.
//
// Threads: one connection per handle, every use under the handle's mutex
// (SQLite runs one statement per connection at a time anyway). open starts
// no thread and leaves no transaction open, so the handle survives the fork.
#include <postern/support/table_guard.hpp>
#include <postern/table.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "config.hpp"
#include "database.hpp"

namespace {

using postern::util::guarded_table;
using postern::util::set_error;

using postern::sqlite::Config;
using postern::sqlite::Database;

struct Table {
    std::string path;  // the config file
    std::mutex lock;
    std::unique_ptr<Database> db;
};

std::unique_ptr<Database> load(const std::string& path, int* status, std::string* error) {
    Config config;
    if (auto e = postern::sqlite::load_config(path, &config)) {
        *status = POSTERN_PERMFAIL;
        *error = *e;
        return nullptr;
    }
    return Database::open(std::move(config), status, error);
}

int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-sqlite", err, errlen, [&] {
        if (!config || !*config) {
            set_error(err, errlen, "table-sqlite: no config file given (sqlite:/path/to/sqlite.conf)");
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        auto t = std::make_unique<Table>();
        t->path = config;
        int status = POSTERN_PERMFAIL;
        std::string error;
        t->db = load(t->path, &status, &error);
        if (!t->db) {
            set_error(err, errlen, error);
            return status;
        }
        *flags = 0;  // neither iterable nor a list: the queries do the matching
        *handle = t.release();
        return static_cast<int>(POSTERN_OK);
    });
}

int table_reload(void* handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-sqlite", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        int status = POSTERN_PERMFAIL;
        std::string error;
        auto fresh = load(t->path, &status, &error);
        if (!fresh) {  // keep serving with the old connection
            set_error(err, errlen, error);
            return status;
        }
        std::lock_guard guard(t->lock);
        t->db = std::move(fresh);
        *flags = 0;
        return static_cast<int>(POSTERN_OK);
    });
}

// The daemon names the service of every lookup on a table that has
// lookup_service; a plain lookup could only guess which query to run.
int table_lookup(void* handle, const char*, postern_table_value_cb, void*, char* err, size_t errlen) {
    return guarded_table("table-sqlite", err, errlen, [&] {
        set_error(err, errlen, static_cast<Table*>(handle)->path + ": sqlite tables answer lookups for a service only");
        return static_cast<int>(POSTERN_TEMPFAIL);
    });
}

int table_lookup_service(void* handle, uint32_t service, const char* key, postern_table_value_cb cb, void* ctx,
                         char* err, size_t errlen) {
    return guarded_table("table-sqlite", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        std::string value, error;
        int rc;
        {
            std::lock_guard guard(t->lock);
            rc = t->db->lookup(service, key ? key : "", &value, &error);
        }
        if (rc == POSTERN_OK) cb(ctx, value.c_str());
        else if (rc != POSTERN_NOTFOUND) set_error(err, errlen, error);
        return rc;
    });
}

int table_fetch(void* handle, uint32_t service, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-sqlite", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        if (service != POSTERN_SERVICE_SOURCE) {
            set_error(err, errlen, t->path + ": sqlite tables fetch sources only (fetch_source)");
            return static_cast<int>(POSTERN_TEMPFAIL);
        }
        std::string value, error;
        int rc;
        {
            std::lock_guard guard(t->lock);
            rc = t->db->fetch_source(&value, &error);
        }
        if (rc == POSTERN_OK) cb(ctx, value.c_str());
        else if (rc != POSTERN_NOTFOUND) set_error(err, errlen, error);
        return rc;
    });
}

uint32_t table_services(void* handle) {
    auto* t = static_cast<Table*>(handle);
    std::lock_guard guard(t->lock);
    return t->db->services();
}

void table_close(void* handle) {
    std::unique_ptr<Table> owned(static_cast<Table*>(handle));  // released by table_open
}

const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_table_plugin),
    "sqlite",
    table_open,
    table_reload,
    table_lookup,
    nullptr,  // iterate: the database is never walked
    table_close,
    table_lookup_service,
    table_fetch,
    table_services,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
