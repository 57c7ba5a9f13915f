// tables/db/dbfile.cpp — Berkeley DB map files: read (table-db.so, makemap -U)
// and write (postern-makemap). See dbfile.hpp for the on-disk convention.
//
// libdb is used without an environment: each Reader is a private, read-only
// DB handle, so nothing is shared between handles or processes and no lock or
// region file is ever created beside the map. libdb's own messages (why a
// file is not a database) are caught with an error callback and put into
// the reason we return instead of going to stderr.
#include "dbfile.hpp"

#include <db.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "postern/support/fd.hpp"

namespace postern::dbmap {
namespace {

// The messages libdb gave on this thread since the last reason() (its error
// callback has no per-call context; calls on one handle are serialised, so
// per thread is exact enough).
thread_local std::vector<std::string> db_messages;

void remember_db_message(const DB_ENV*, const char*, const char* msg) {
    if (msg && db_messages.size() < 4) db_messages.emplace_back(msg);
}

// "PATH: reason": libdb's own explanation when it gave one, else the text of
// its code. Its messages start with a BDBnnnn code, the internal function's
// name and often the path again, none of which says anything more to an
// administrator: they are dropped.
bool identifier(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    return true;
}

std::string_view clean(std::string_view msg, const std::string& path) {
    if (msg.starts_with("BDB") && msg.size() > 8 && msg[7] == ' ') msg.remove_prefix(8);
    if (size_t colon = msg.find(": "); colon != std::string_view::npos && identifier(msg.substr(0, colon)))
        msg.remove_prefix(colon + 2);
    if (msg.starts_with(path + ": ")) msg.remove_prefix(path.size() + 2);
    return msg;
}

// The first message says what went wrong; those after it say what libdb did
// about it ("PANIC", "run recovery").
std::string reason(const std::string& path, int rc) {
    std::string_view said = db_messages.empty() ? std::string_view{} : clean(db_messages.front(), path);
    std::string text = path + ": " + (said.empty() ? std::string(db_strerror(rc)) : std::string(said));
    db_messages.clear();
    return text;
}

std::string_view strip_nuls(const DBT& d) {
    std::string_view s(static_cast<const char*>(d.data), d.size);
    while (!s.empty() && s.back() == '\0') s.remove_suffix(1);
    return s;
}

DBT dbt_of(std::string_view s) {
    DBT d;
    std::memset(&d, 0, sizeof d);
    d.data = const_cast<char*>(s.data());
    d.size = static_cast<u_int32_t>(s.size());
    return d;
}

// Owns a DB handle until released; closes it (discarding any error) otherwise.
struct DbCloser {
    void operator()(DB* db) const noexcept {
        if (db) db->close(db, 0);
    }
};
using DbPtr = std::unique_ptr<DB, DbCloser>;

DbPtr create_handle(int* rc) {
    DB* db = nullptr;
    *rc = db_create(&db, nullptr, 0);
    if (*rc != 0) return nullptr;
    db->set_errcall(db, remember_db_message);
    return DbPtr(db);
}

std::string folder_of(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

FileId id_of(const struct stat& st) {
    FileId id;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    id.size = st.st_size;
    return id;
}

std::string errno_reason(const std::string& path) { return path + ": " + std::strerror(errno); }

// fsync a file by name: libdb closed its own descriptor without one.
bool sync_file(const std::string& path, mode_t mode, uid_t uid, gid_t gid, std::string* error) {
    util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fchmod(fd.get(), mode) != 0 ||
        ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::fchown(fd.get(), uid, gid) != 0) ||
        ::fsync(fd.get()) != 0 || fd.close() != 0) {
        *error = errno_reason(path);
        return false;
    }
    return true;
}

bool sync_folder(const std::string& folder, std::string* error) {
    util::Fd fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) {
        *error = errno_reason(folder);
        return false;
    }
    return true;
}

// Fills the new (empty) file `path` with `records`.
bool fill(const std::string& path, Format format, const std::vector<Record>& records, std::string* error) {
    int rc = 0;
    DbPtr db = create_handle(&rc);
    if (!db) {
        *error = reason(path, rc);
        return false;
    }
    // The file exists (mkstemp made it) and is empty: libdb takes an empty
    // file as a new database.
    rc = db->open(db.get(), nullptr, path.c_str(), nullptr, format == Format::Btree ? DB_BTREE : DB_HASH, DB_CREATE,
                  0600);
    if (rc != 0) {
        *error = reason(path, rc);
        return false;
    }
    for (const auto& r : records) {
        std::string key = r.key + '\0';
        std::string value = r.value + '\0';
        DBT k = dbt_of(key), v = dbt_of(value);
        if ((rc = db->put(db.get(), nullptr, &k, &v, 0)) != 0) {
            *error = reason(path, rc);
            return false;
        }
    }
    DB* raw = db.release();
    if ((rc = raw->close(raw, 0)) != 0) {  // writes every page back
        *error = reason(path, rc);
        return false;
    }
    return true;
}

}  // namespace

bool file_id(const std::string& path, FileId* out) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    *out = id_of(st);
    return true;
}

std::unique_ptr<Reader> Reader::open(const std::string& path, std::string* error) {
    // libdb would say EINVAL for a folder or a missing file; the errno of a
    // plain stat names those better.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        *error = errno_reason(path);
        return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        *error = errno_reason(path);
        return nullptr;
    }
    int rc = 0;
    DbPtr db = create_handle(&rc);
    if (!db) {
        *error = reason(path, rc);
        return nullptr;
    }
    db_messages.clear();
    rc = db->open(db.get(), nullptr, path.c_str(), nullptr, DB_UNKNOWN, DB_RDONLY, 0);
    if (rc != 0) {
        *error = reason(path, rc);
        return nullptr;
    }
    DBTYPE type = DB_UNKNOWN;
    db->get_type(db.get(), &type);
    if (type != DB_HASH && type != DB_BTREE) {
        *error = path + ": not a hash or btree database";
        return nullptr;
    }
    std::unique_ptr<Reader> r(new Reader());
    r->path_ = path;
    r->format_ = type == DB_BTREE ? Format::Btree : Format::Hash;
    // The identity of the file libdb holds open (not of the name, which may
    // have been renamed over since): a replacement is then always noticed.
    int dbfd = -1;
    if (db->fd(db.get(), &dbfd) == 0 && ::fstat(dbfd, &st) != 0) {
        *error = errno_reason(path);
        return nullptr;
    }
    r->id_ = id_of(st);
    r->db_ = db.release();
    return r;
}

Reader::~Reader() {
    if (db_) db_->close(db_, 0);
}

Reader::Get Reader::get(std::string_view key, std::string* value, std::string* error) {
    std::string with_nul = std::string(key) + '\0';
    for (std::string_view k : {std::string_view(with_nul), key}) {
        DBT dk = dbt_of(k), dv;
        std::memset(&dv, 0, sizeof dv);
        int rc = db_->get(db_, nullptr, &dk, &dv, 0);
        if (rc == 0) {
            *value = strip_nuls(dv);
            return Get::Found;
        }
        if (rc != DB_NOTFOUND && rc != DB_KEYEMPTY) {
            *error = reason(path_, rc);
            return Get::Failed;
        }
    }
    return Get::NotFound;
}

bool Reader::for_each(const std::function<void(std::string_view, std::string_view)>& fn, std::string* error) {
    DBC* cursor = nullptr;
    int rc = db_->cursor(db_, nullptr, &cursor, 0);
    if (rc != 0) {
        *error = reason(path_, rc);
        return false;
    }
    DBT k, v;
    std::memset(&k, 0, sizeof k);
    std::memset(&v, 0, sizeof v);
    while ((rc = cursor->get(cursor, &k, &v, DB_NEXT)) == 0) fn(strip_nuls(k), strip_nuls(v));
    cursor->close(cursor);
    if (rc != DB_NOTFOUND) {
        *error = reason(path_, rc);
        return false;
    }
    return true;
}

bool write_map(const std::string& target, Format format, const std::vector<Record>& records, mode_t mode, uid_t uid,
               gid_t gid, std::string* error) {
    const std::string folder = folder_of(target);
    std::string tmp = target + ".XXXXXX";
    util::Fd fd(::mkstemp(tmp.data()));
    if (!fd) {
        *error = errno_reason(folder);
        return false;
    }
    fd.reset();
    bool ok = fill(tmp, format, records, error) && sync_file(tmp, mode, uid, gid, error);
    if (ok && ::rename(tmp.c_str(), target.c_str()) != 0) {
        *error = errno_reason(target);
        ok = false;
    }
    if (!ok) {
        ::unlink(tmp.c_str());
        return false;
    }
    return sync_folder(folder, error);
}

}  // namespace postern::dbmap
