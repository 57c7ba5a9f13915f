/*
 * postern table plugin ABI, version 1.
 *
 * A table backend (file, db, sqlite, ...) is a shared object named
 * `table-NAME.so` that exports
 *
 *     const struct postern_table_plugin *postern_table_plugin(void);
 *
 * The core opens one handle per `table` directive. Calls on one handle may
 * come from several worker threads at once (lookup, iterate) and must be
 * thread-safe; `reload` and `close` are never concurrent with any other call on
 * the same handle. No call may run on the core's event loop, so a backend is
 * free to block (disk, network) for as long as its own timeouts allow.
 *
 * A daemon started as root calls `open` as root, before it forks and drops
 * to its unprivileged user (a credentials file may be readable by root
 * alone); every later call, `reload` included, runs unprivileged in the
 * forked process. So `open` must not start threads (they would not survive
 * the fork): start them on first use instead.
 *
 * Keys given to `lookup` are already lowercased by the core, as OpenSMTPD does.
 * Pattern services (domain wildcards, netaddr masks, mail address patterns)
 * are matched by the core: a backend that can list its entries sets
 * POSTERN_TABLE_ITERABLE and the core walks them with `iterate`; a backend
 * that cannot (a remote database) answers exact `lookup`s only.
 */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Table flags reported by `open`. */
#define POSTERN_TABLE_ITERABLE 0x1u /* iterate() lists every entry */
#define POSTERN_TABLE_LIST 0x2u     /* entries have keys only (a list) */

/* Called once per value found; `value` is NUL-terminated, valid during the call. */
typedef void (*postern_table_value_cb)(void* ctx, const char* value);
/* Called once per entry by iterate(); `value` is NULL for list entries. */
typedef void (*postern_table_entry_cb)(void* ctx, const char* key, const char* value);

struct postern_table_plugin {
    uint32_t abi_version; /* POSTERN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct postern_table_plugin) */
    const char* name;     /* backend name as written in the config: "file" */

    /* Open the table described by `config` (what follows "NAME:" in the
     * config, usually an absolute path). On success store the handle and the
     * POSTERN_TABLE_* flags and return POSTERN_OK; otherwise write a one-line
     * reason (no trailing newline) into err and return another status. */
    int (*open)(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen);

    /* Re-read the backing store. On failure the old content must stay in use. */
    int (*reload)(void* handle, uint32_t* flags, char* err, size_t errlen);

    /* Exact lookup of `key`: call `cb` with the value (lists: with the key)
     * and return POSTERN_OK, or return POSTERN_NOTFOUND / a failure. */
    int (*lookup)(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen);

    /* List every entry (only when POSTERN_TABLE_ITERABLE is set). */
    int (*iterate)(void* handle, postern_table_entry_cb cb, void* ctx, char* err, size_t errlen);

    void (*close)(void* handle);
};

typedef const struct postern_table_plugin* (*postern_table_plugin_fn)(void);
#define POSTERN_TABLE_ENTRY "postern_table_plugin"

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_TABLE_H */
