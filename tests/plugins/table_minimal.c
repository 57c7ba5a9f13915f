/* tests/plugins/table_minimal.c — table-minimal.so: a table with only the
 * required members, `reload` and `iterate` NULL, as table.h allows for a
 * backend that cannot list its entries and has nothing to re-read. It knows
 * one key, "key", whose value is the config string. With the config
 * "iterable" it wrongly claims POSTERN_TABLE_ITERABLE, which the core must
 * refuse at open rather than call a NULL iterate later. Plain C. */
#include <postern/table.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int open_table(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    char* copy = strdup(config);
    if (!copy) {
        snprintf(err, errlen, "minimal: out of memory");
        return POSTERN_TEMPFAIL;
    }
    *handle = copy;
    *flags = strcmp(config, "iterable") == 0 ? POSTERN_TABLE_ITERABLE : 0;
    return POSTERN_OK;
}

static int lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    (void)err;
    (void)errlen;
    if (strcmp(key, "key") != 0) return POSTERN_NOTFOUND;
    cb(ctx, (const char*)handle);
    return POSTERN_OK;
}

static void close_table(void* handle) { free(handle); }

static const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(struct postern_table_plugin),
    "minimal",
    open_table,
    NULL,
    lookup,
    NULL,
    close_table,
    NULL,
    NULL,
    NULL, /* lookup_service, fetch, services */
};

POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
