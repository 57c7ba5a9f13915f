// tables/db/dbfile.hpp — reading and writing the Berkeley DB map files that
// OpenSMTPD's makemap(8) makes (reference/table-protocol.md §3), shared by
// table-db.so and postern-makemap.
//
// The on-disk convention, kept exactly so that maps made by Debian's makemap
// and by ours are interchangeable: a Berkeley DB 5.3 hash (default) or btree
// file; each key lowercased and stored with a trailing NUL; each value stored
// NUL-terminated; a `makemap -t set` map stores the value "<set>" for every
// key. Reading is tolerant of keys and values without the NUL (maps made by
// other tools), writing always adds it.
//
// Depends on libdb (Debian's libdb5.3-dev) and the plugin SDK headers only, so
// the plugin stays built against the SDK alone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct __db;  // libdb's DB, kept out of this header

namespace postern::dbmap {

// The value makemap -t set stores for each key.
inline constexpr std::string_view kSetValue = "<set>";

enum class Format { Hash, Btree };

// The identity of a file on disk, to notice a replacement (rename) or a
// rewrite in place.
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    int64_t mtime_ns = 0;
    off_t size = 0;
    bool operator==(const FileId&) const = default;
};

// stat(2) of `path`; false with errno set on failure.
bool file_id(const std::string& path, FileId* out);

// One map file opened read-only. Not thread-safe: one call at a time
// (table-db.so holds a mutex per Reader).
class Reader {
public:
    enum class Get { Found, NotFound, Failed };

    // Opens `path` (hash or btree, detected), or returns nullptr and
    // "PATH: reason" in *error.
    static std::unique_ptr<Reader> open(const std::string& path, std::string* error);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    // The value of `key` (already lowercased; looked up with its trailing NUL,
    // then without), NUL and all trailing NULs stripped.
    Get get(std::string_view key, std::string* value, std::string* error);

    // Calls fn(key, value) for every record, NULs stripped, in the file's
    // order; false with "PATH: reason" in *error when the walk fails (a
    // corrupt page). fn must not call back into this Reader.
    bool for_each(const std::function<void(std::string_view, std::string_view)>& fn, std::string* error);

    const FileId& id() const { return id_; }
    Format format() const { return format_; }

private:
    Reader() = default;
    std::string path_;
    __db* db_ = nullptr;
    FileId id_;
    Format format_ = Format::Hash;
};

struct Record {
    std::string key;  // stored as given (the caller lowercases) plus a NUL
    std::string value;
};

// Writes `records` as a new map at `target`: into a temporary file in the same
// folder, flushed and fsynced, given `mode` (and `uid`/`gid` unless they are
// -1), then renamed over `target` and the folder fsynced, so a reader sees the
// old map or the new one, never half of one. A duplicate key is the caller's
// to refuse; here the last one wins. False with "PATH: reason" in *error; the
// temporary file is removed then.
bool write_map(const std::string& target, Format format, const std::vector<Record>& records, mode_t mode, uid_t uid,
               gid_t gid, std::string* error);

}  // namespace postern::dbmap
