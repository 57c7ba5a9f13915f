/* tests/plugins/table_services.c — table-services.so: a table whose answer
 * depends on the service asked, as a backend with one query per service
 * (sqlite, a table program) has. It answers every key with
 * "SERVICE:KEY" (SERVICE the POSTERN_SERVICE_* number in hex), fetches
 * "10.0.0.N" in turn for the source service, and its config string is the
 * mask of services it claims (hex, e.g. "0x10"). Its plain lookup answers
 * "plain:KEY", which the core must not call when lookup_service is set.
 * Plain C. */
#include <postern/table.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct state {
    uint32_t services;
    unsigned turn;
};

static int open_table(const char* config, void** handle, uint32_t* flags, char* err, size_t errlen) {
    struct state* s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "services: out of memory");
        return POSTERN_TEMPFAIL;
    }
    s->services = (uint32_t)strtoul(config, NULL, 16);
    *handle = s;
    *flags = 0;
    return POSTERN_OK;
}

static int lookup(void* handle, const char* key, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    char value[512];
    (void)handle;
    (void)err;
    (void)errlen;
    snprintf(value, sizeof value, "plain:%s", key);
    cb(ctx, value);
    return POSTERN_OK;
}

static int lookup_service(void* handle, uint32_t service, const char* key, postern_table_value_cb cb, void* ctx,
                          char* err, size_t errlen) {
    char value[512];
    struct state* s = handle;
    if (!(s->services & service)) {
        snprintf(err, errlen, "no query for service 0x%x", (unsigned)service);
        return POSTERN_TEMPFAIL;
    }
    if (strcmp(key, "missing") == 0) return POSTERN_NOTFOUND;
    snprintf(value, sizeof value, "%x:%s", (unsigned)service, key);
    cb(ctx, value);
    return POSTERN_OK;
}

static int fetch(void* handle, uint32_t service, postern_table_value_cb cb, void* ctx, char* err, size_t errlen) {
    char value[64];
    struct state* s = handle;
    (void)err;
    (void)errlen;
    if (service != POSTERN_SERVICE_SOURCE) return POSTERN_NOTFOUND;
    snprintf(value, sizeof value, "10.0.0.%u", ++s->turn);
    cb(ctx, value);
    return POSTERN_OK;
}

static uint32_t services(void* handle) { return ((struct state*)handle)->services; }

static void close_table(void* handle) { free(handle); }

static const struct postern_table_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(struct postern_table_plugin),
    "services",
    open_table,
    NULL,
    lookup,
    NULL,
    close_table,
    lookup_service,
    fetch,
    services,
};

POSTERN_EXPORT const struct postern_table_plugin* postern_table_plugin(void) { return &plugin; }
