/* tests/sdk/table_example.c — table-example.so, a table backend in plain C.
 *
 * `table T example:/path/to/file` serves the file's lines "KEY VALUE" (or
 * "KEY" alone, for a list) by exact lookup. It reads the file on every
 * lookup, so it has nothing to re-read (reload is NULL) and, as it cannot
 * list entries for pattern matching, it leaves POSTERN_TABLE_ITERABLE clear
 * and iterate NULL: `match for domain <T>` then looks the domain up as it
 * is. Each lookup holds no shared state, which makes it thread-safe as
 * table.h requires. Lines of 1023 bytes at most; longer ones are skipped.
 */
#include <postern/table.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int table_open(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    FILE* f = fopen(config, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", config, strerror(errno));
        return POSTERN_PERMFAIL;
    }
    fclose(f);
    char* path = strdup(config);
    if (!path) {
        snprintf(err, errlen, "example: out of memory");
        return POSTERN_TEMPFAIL;
    }
    *handle = path;
    *flags = 0;
    return POSTERN_OK;
}

static int table_lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    const char* path = handle;
    FILE* f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return POSTERN_TEMPFAIL;
    }
    char line[1024];
    int status = POSTERN_NOTFOUND;
    while (status == POSTERN_NOTFOUND && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        if (line[len] != '\n' && !feof(f)) { /* over-long: skip the rest of it */
            int c;
            while ((c = getc(f)) != EOF && c != '\n') {
            }
            continue;
        }
        line[len] = '\0';
        size_t klen = strcspn(line, " \t");
        if (klen == 0 || line[0] == '#') continue;
        const char* value = line + klen + strspn(line + klen, " \t");
        line[klen] = '\0';
        if (strcmp(line, key) != 0) continue; /* keys come lowercased; the file's are written so */
        cb(ctx, *value ? value : line);
        status = POSTERN_OK;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        status = POSTERN_TEMPFAIL;
    }
    fclose(f);
    return status;
}

static void table_close(void* handle) { free(handle); }

static const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(struct postern_table_plugin),
    "example",
    table_open,
    NULL, /* reload: nothing to re-read */
    table_lookup,
    NULL, /* iterate: not listable */
    table_close,
    NULL, /* lookup_service: one answer per key, whatever the service asked */
    NULL, /* fetch: nothing rotates */
    NULL, /* services: every service */
};

POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
