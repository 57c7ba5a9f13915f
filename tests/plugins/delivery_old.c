/* tests/plugins/delivery_old.c — delivery-old.so: a delivery plugin built
 * against the first ABI 1 header, whose struct ended at `deliver` (no
 * deliver_many). abi.h promises that such a shorter struct of the same ABI
 * version keeps loading: the loader must accept it, and postern-local must
 * call deliver once per delivery. Each delivery appends "RCPT<TAB>BYTES\n"
 * to the file named by the request's path, so a test sees every call.
 * Plain C, as a third party may write it. */
#include <postern/delivery.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The delivery struct as the first ABI 1 header declared it. */
struct old_delivery_plugin {
    uint32_t abi_version;
    uint32_t struct_size;
    const char* name;
    int (*deliver)(const struct postern_delivery_request* req, char* err, size_t errlen);
};

static int deliver(const struct postern_delivery_request* req, char* err, size_t errlen) {
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(req->message_fd, buf, sizeof buf)) > 0) total += n;
    if (n < 0) {
        snprintf(err, errlen, "old: read the message: %s", strerror(errno));
        return POSTERN_TEMPFAIL;
    }
    FILE* f = fopen(req->path, "a");
    if (!f) {
        snprintf(err, errlen, "old: %s: %s", req->path, strerror(errno));
        return POSTERN_TEMPFAIL;
    }
    fprintf(f, "%s\t%ld\n", req->rcpt, total);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "old: %s: %s", req->path, strerror(errno));
        return POSTERN_TEMPFAIL;
    }
    snprintf(err, errlen, "old: %ld bytes", total);
    return POSTERN_OK;
}

static const struct old_delivery_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(struct old_delivery_plugin),
    "old",
    deliver,
};

POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) {
    return (const struct postern_delivery_plugin*)(const void*)&plugin;
}
