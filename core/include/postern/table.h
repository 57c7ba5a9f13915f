/*
 * postern table plugin ABI, version 1 (rules shared with delivery plugins:
 * abi.h).
 *
 * A table backend (file, db, sqlite, ...) is a shared object named
 * `table-NAME.so`, found in the daemon's plugin folder (`plugin path` in the
 * config, else the installed one), that exports
 *
 *     const struct postern_table_plugin *postern_table_plugin(void);
 *
 * and is used by `table T NAME:CONFIG` in the config. The entry function may
 * be called more than once and must return the same static struct each time.
 *
 * Handles and call order. The core opens one handle per `table` directive
 * (and the start-up check, `posternd -n` too, opens and closes each once
 * first, to report a bad table before the daemon starts):
 *
 *     open → { lookup | iterate }* with reload in between → close
 *
 * Threads. lookup and iterate on one handle may run on several worker
 * threads at once and must be thread-safe; reload and close never overlap
 * any other call on the same handle. No call runs on the core's event loop,
 * so a backend may block (disk, network) for as long as its own timeouts
 * allow; a lookup that waits long delays the mail that needs it, never the
 * daemon. Keep such waits bounded (seconds, not minutes).
 *
 * Privileges. A daemon started as root calls `open` as root, before it forks
 * and drops to its unprivileged user (a credentials file may be readable by
 * root alone); every later call, `reload` included, runs unprivileged in the
 * forked process. So `open` must not start threads (they would not survive
 * the fork): start them on first use instead. Plugins are loaded (their
 * constructors run) as root as well.
 *
 * Keys and patterns. Keys given to `lookup` are already lowercased by the
 * core, as OpenSMTPD does. Pattern services (domain wildcards, netaddr masks,
 * mail address patterns, regex) are matched by the core: a backend that can
 * list its entries sets POSTERN_TABLE_ITERABLE and the core walks them with
 * `iterate`; a backend that cannot (a remote database) answers exact
 * `lookup`s only, leaves the flag clear and may leave `iterate` NULL.
 *
 * Members that may be NULL: `reload` and `iterate` (see each). `open`,
 * `lookup` and `close` are required; a plugin without them is refused.
 */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Lookup services: what the core asks a table for (OpenSMTPD's K_* values,
 * so a proc table program's numbers pass through unchanged). A backend whose
 * answer depends on the service (sqlite's query_* statements, a table
 * program) implements lookup_service and fetch; one that holds plain
 * key -> value entries (file, db) needs neither. */
#define POSTERN_SERVICE_ALIAS 0x001u       /* key: local part, address, "@domain", "@"; value: alias list */
#define POSTERN_SERVICE_DOMAIN 0x002u      /* key: domain; found = matches */
#define POSTERN_SERVICE_CREDENTIALS 0x004u /* key: user name or relay label; value: "user:hash" or "user:password" */
#define POSTERN_SERVICE_NETADDR 0x008u     /* key: IP address text; found = matches */
#define POSTERN_SERVICE_USERINFO 0x010u    /* key: user name; value: "uid:gid:/home" */
#define POSTERN_SERVICE_SOURCE 0x020u      /* fetch: a source IP address */
#define POSTERN_SERVICE_MAILADDR 0x040u    /* key: address; found = matches */
#define POSTERN_SERVICE_ADDRNAME 0x080u    /* key: local IP address; value: host name */
#define POSTERN_SERVICE_MAILADDRMAP 0x100u /* key: user name; value: comma list of address patterns */
#define POSTERN_SERVICE_RELAYHOST 0x200u   /* key: domain (or fetch); value: relay URL */
#define POSTERN_SERVICE_STRING 0x400u      /* key: a string; found = matches */
#define POSTERN_SERVICE_ALL 0x7ffu

/* Table flags reported by `open` and `reload`. */
#define POSTERN_TABLE_ITERABLE 0x1u /* iterate() lists every entry (iterate must not be NULL) */
#define POSTERN_TABLE_LIST 0x2u     /* entries have keys only (a list) */

/* Called once per value found; `value` is NUL-terminated, valid during the
 * call only. */
typedef void (*postern_table_value_cb)(void* ctx, const char* value);
/* Called once per entry by iterate(); `key` and `value` are valid during the
 * call only; `value` is NULL for list entries. A callback never calls back
 * into the plugin. */
typedef void (*postern_table_entry_cb)(void* ctx, const char* key, const char* value);

struct postern_table_plugin {
    uint32_t abi_version; /* POSTERN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct postern_table_plugin) as the plugin was built */
    const char* name;     /* backend name as written in the config: "file"; must match the file name */

    /* Open the table described by `config` (what follows "NAME:" in the
     * config, usually an absolute path; never NULL, maybe ""). On success
     * store an opaque handle (may be NULL if the plugin needs none) in
     * *handle and the POSTERN_TABLE_* flags in *flags (0 on entry) and
     * return POSTERN_OK. Otherwise return POSTERN_TEMPFAIL or
     * POSTERN_PERMFAIL with a reason in err; nothing is to be closed then.
     * Runs as root when the daemon was started as root (see above). */
    int (*open)(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen);

    /* Re-read the backing store (`posternctl update table T`, SIGHUP) and
     * store the flags again in *flags (the current ones on entry). Return
     * POSTERN_OK, or POSTERN_TEMPFAIL / POSTERN_PERMFAIL with a reason in
     * err: the old content must then stay in use, unchanged.
     * May be NULL: the backend has nothing to re-read (it reads its store on
     * every lookup, or its content never changes); a reload then succeeds and
     * changes nothing. */
    int (*reload)(void* handle, uint32_t* flags, char* err, size_t errlen);

    /* Exact lookup of `key`: call `cb(ctx, value)` once with the value (for
     * a list: with the key) and return POSTERN_OK; or return
     * POSTERN_NOTFOUND without calling cb; or POSTERN_TEMPFAIL with a reason
     * in err (the mail that needed the answer waits and is retried). */
    int (*lookup)(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen);

    /* List every entry: call `cb(ctx, key, value)` once per entry, in any
     * order, and return POSTERN_OK (an empty table too), or POSTERN_TEMPFAIL
     * with a reason in err. The core cannot stop an iteration early.
     * Called only while the flags say POSTERN_TABLE_ITERABLE. May be NULL
     * when the table never says so: the core refuses a handle whose flags
     * claim ITERABLE without an iterate. */
    int (*iterate)(void* handle, postern_table_entry_cb cb, void* ctx, char* err, size_t errlen);

    /* Release the handle. No call on it is running or follows. Not called
     * for a handle whose open failed; may not be called at all when the
     * daemon exits. */
    void (*close)(void* handle);

    /* --- added in ABI 1 after its first release (tables with queries) --- */

    /* Lookup of `key` for one POSTERN_SERVICE_* `service`. Same contract as
     * lookup: cb once with the value and POSTERN_OK, POSTERN_NOTFOUND, or
     * POSTERN_TEMPFAIL with a reason. For the services answered by a match
     * (domain, netaddr, mailaddr, string) the key is the subject being
     * tested and found means it matches; the backend does its own matching
     * (usually an exact SQL WHERE). May be NULL: the core then calls lookup,
     * whatever the service. */
    int (*lookup_service)(void* handle, uint32_t service, const char* key, postern_table_value_cb cb, void* ctx,
                          char* err, size_t errlen);

    /* The next value of a rotating service (POSTERN_SERVICE_SOURCE or
     * RELAYHOST: `relay src <t>`, `relay host <t>`): cb once and POSTERN_OK,
     * POSTERN_NOTFOUND when there is none, or POSTERN_TEMPFAIL. May be NULL:
     * the core then takes the values by iterate, or refuses the table for
     * that use when it cannot be listed. */
    int (*fetch)(void* handle, uint32_t service, postern_table_value_cb cb, void* ctx, char* err, size_t errlen);

    /* The POSTERN_SERVICE_* mask this handle can answer (what its config
     * file has queries for), so that `posternd -n` refuses a table used
     * for a service it lacks. May be NULL: every service. */
    uint32_t (*services)(void* handle);

    /* Members added later in ABI 1 go here; check struct_size (abi.h). */
};

/* The struct as ABI 1 first had it: a plugin's struct_size may not be less. */
#define POSTERN_TABLE_PLUGIN_MIN_SIZE POSTERN_END_OF(struct postern_table_plugin, close)

typedef const struct postern_table_plugin* (*postern_table_plugin_fn)(void);
#define POSTERN_TABLE_ENTRY "postern_table_plugin"

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_TABLE_H */
