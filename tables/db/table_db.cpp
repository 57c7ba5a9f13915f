// tables/db/table_db.cpp — table-db.so, the Berkeley DB table backend:
// `table NAME db:/path/map.db` reads the maps OpenSMTPD's makemap(8) and
// postern-makemap(8) build (hash or btree; format in dbfile.hpp), unchanged.
//
// Kind: a map whose every value is "<set>" (makemap -t set) is a list, any
// other a map; an empty map is a map. The kind is reported at open and
// reload; a map replaced behind our back keeps the kind last reported until
// the next reload (the core reads the flags only then), and a list answers a
// lookup with the key.
//
// Freshness: makemap replaces a map by rename, so before each lookup and
// iterate the file's identity (device, inode, mtime, size) is compared with
// that of the file held open, and a changed file is reopened. If the new file
// cannot be opened the old one stays in use (and that identity is not retried
// until the file changes again); reload() reopens unconditionally.
//
// Threads: libdb handles are used without an environment, so each open file
// is guarded by its own mutex; lookups on one table are serialised, which for
// a local hash lookup costs microseconds. open() starts no thread (it runs as
// root before the daemon forks) and libdb starts none either.
//
// Config: the path of the .db file.
#include <postern/table.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>

#include "dbfile.hpp"
#include "postern/support/ascii.hpp"
#include "postern/support/table_guard.hpp"

namespace {

using postern::util::guarded_table;
using postern::util::set_error;

using postern::dbmap::FileId;
using postern::dbmap::Reader;

// One open file, and whether every value in it is "<set>".
struct Open {
    std::unique_ptr<Reader> reader;
    bool list = false;
    std::mutex lock;  // libdb handles without an environment: one call at a time
};

struct Table {
    std::string path;
    std::mutex lock;  // guards the members below
    std::shared_ptr<Open> current;
    bool list = false;             // the kind last reported to the core
    std::optional<FileId> failed;  // a replacement that did not open, not retried
};

// Opens `path` and walks it once: to learn its kind, and so that a file whose
// pages are corrupt is refused here rather than failing lookups later.
std::shared_ptr<Open> open_file(const std::string& path, std::string* error) {
    auto o = std::make_shared<Open>();
    o->reader = Reader::open(path, error);
    if (!o->reader) return nullptr;
    size_t entries = 0, sets = 0;
    bool walked = o->reader->for_each(
        [&](std::string_view, std::string_view value) {
            ++entries;
            if (value == postern::dbmap::kSetValue) ++sets;
        },
        error);
    if (!walked) return nullptr;
    o->list = entries > 0 && sets == entries;
    return o;
}

uint32_t flags_of(bool list) { return POSTERN_TABLE_ITERABLE | (list ? POSTERN_TABLE_LIST : 0u); }

// The open file to answer from: the current one, or the file now at the path
// when it was replaced and opens. Never fails: a replacement that cannot be
// read (missing for a moment, unreadable, corrupt) leaves the current in use.
std::shared_ptr<Open> fresh(Table& t) {
    std::lock_guard guard(t.lock);
    FileId now;
    if (!postern::dbmap::file_id(t.path, &now) || now == t.current->reader->id() || now == t.failed) return t.current;
    std::string error;
    if (auto o = open_file(t.path, &error)) {
        t.current = std::move(o);
        t.failed.reset();
    } else {
        t.failed = now;
    }
    return t.current;
}

int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-db", err, errlen, [&] {
        if (!config || !*config) {
            set_error(err, errlen, "table-db: no file given");
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        auto t = std::make_unique<Table>();
        t->path = config;
        std::string error;
        t->current = open_file(t->path, &error);
        if (!t->current) {
            set_error(err, errlen, error);
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        t->list = t->current->list;
        *flags = flags_of(t->list);
        *handle = t.release();
        return static_cast<int>(POSTERN_OK);
    });
}

int table_reload(void* handle, uint32_t* flags, char* err, size_t errlen) {
    return guarded_table("table-db", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        std::string error;
        auto o = open_file(t->path, &error);
        if (!o) {  // keep serving the old file
            set_error(err, errlen, error);
            return static_cast<int>(POSTERN_PERMFAIL);
        }
        std::lock_guard guard(t->lock);
        t->current = std::move(o);
        t->failed.reset();
        t->list = t->current->list;
        *flags = flags_of(t->list);
        return static_cast<int>(POSTERN_OK);
    });
}

int table_lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-db", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        auto o = fresh(*t);
        bool list;
        {
            std::lock_guard guard(t->lock);
            list = t->list;
        }
        std::string k = postern::util::lowercase(key ? key : "");
        std::string value, error;
        Reader::Get got;
        {
            std::lock_guard guard(o->lock);
            got = o->reader->get(k, &value, &error);
        }
        if (got == Reader::Get::NotFound) return static_cast<int>(POSTERN_NOTFOUND);
        if (got == Reader::Get::Failed) {
            set_error(err, errlen, error);
            return static_cast<int>(POSTERN_TEMPFAIL);
        }
        cb(ctx, list ? k.c_str() : value.c_str());
        return static_cast<int>(POSTERN_OK);
    });
}

int table_iterate(void* handle, postern_table_entry_cb cb, void* ctx, char* err, size_t errlen) {
    return guarded_table("table-db", err, errlen, [&] {
        auto* t = static_cast<Table*>(handle);
        auto o = fresh(*t);
        bool list;
        {
            std::lock_guard guard(t->lock);
            list = t->list;
        }
        std::string error, k, v;
        std::lock_guard guard(o->lock);
        bool ok = o->reader->for_each(
            [&](std::string_view key, std::string_view value) {
                // The callback needs NUL-terminated strings.
                k.assign(key);
                v.assign(value);
                cb(ctx, k.c_str(), list ? nullptr : v.c_str());
            },
            &error);
        if (!ok) {
            set_error(err, errlen, error);
            return static_cast<int>(POSTERN_TEMPFAIL);
        }
        return static_cast<int>(POSTERN_OK);
    });
}

void table_close(void* handle) {
    std::unique_ptr<Table> owned(static_cast<Table*>(handle));  // released by table_open
}

const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_table_plugin),
    "db",
    table_open,
    table_reload,
    table_lookup,
    table_iterate,
    table_close,
    nullptr,  // lookup_service: one answer per key, whatever the service
    nullptr,  // fetch: source and relayhost values come by iterate
    nullptr,  // services: every service
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
