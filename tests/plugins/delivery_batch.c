/* tests/plugins/delivery_batch.c — delivery-batch.so: a plugin that offers
 * deliver_batch, written in plain C from the headers alone as a third party
 * would (designated initialisers). postern-local must hand it each batch
 * whole, in one call, and send each result it reports at once.
 *
 * Each delivery is worked on in a thread of its own, all at once, and its
 * result reported from that thread; the text says what the call saw:
 * "batch: N of a call of M, limit L ms" (N the delivery's place in the call,
 * M the call's size, L the time limit). The request's path chooses:
 *   ".../tempfail"  a temporary failure, "batch: tempfail requested"
 *   ".../silent"    the result is left as the agent prepared it
 *   ".../twice"     reported twice (the second must be ignored)
 *   ".../exit"      once every other delivery's result is reported, the
 *                   process exits 70 without a result for this one
 * deliver (used only by an agent that does not know deliver_batch) says
 * "batch: deliver". */
#include <postern/delivery.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct work {
    const struct postern_delivery_batch* batch;
    const struct postern_delivery_request* req;
    struct postern_delivery_result* res;
    size_t index, n;
};

static int ends_with(const char* s, const char* tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void* deliver_one(void* arg) {
    struct work* w = arg;
    if (ends_with(w->req->path, "/silent") || ends_with(w->req->path, "/exit")) return NULL;
    if (ends_with(w->req->path, "/tempfail")) {
        w->res->status = POSTERN_TEMPFAIL;
        snprintf(w->res->text, sizeof w->res->text, "batch: tempfail requested");
    } else {
        w->res->status = POSTERN_OK;
        snprintf(w->res->text, sizeof w->res->text, "batch: %zu of a call of %zu, limit %llu ms", w->index + 1, w->n,
                 (unsigned long long)w->batch->time_limit_ms);
    }
    w->batch->report(w->batch, w->index);
    if (ends_with(w->req->path, "/twice")) w->batch->report(w->batch, w->index);
    return NULL;
}

static void deliver_batch(const struct postern_delivery_batch* batch,
                          const struct postern_delivery_request* const* reqs, size_t n,
                          struct postern_delivery_result* const* results) {
    struct work w[64];
    pthread_t threads[64];
    int started[64] = {0};
    int exit_after = 0;
    if (n > 64) n = 64; /* the rest stay unset: temporary failures */
    for (size_t i = 0; i < n; ++i) {
        w[i] = (struct work){batch, reqs[i], results[i], i, n};
        exit_after = exit_after || ends_with(reqs[i]->path, "/exit");
        started[i] = pthread_create(&threads[i], NULL, deliver_one, &w[i]) == 0;
        if (!started[i]) deliver_one(&w[i]);
    }
    for (size_t i = 0; i < n; ++i)
        if (started[i]) pthread_join(threads[i], NULL);
    batch->report(batch, n + 5); /* out of range: ignored */
    if (exit_after) _exit(70);
}

static int deliver(const struct postern_delivery_request* req, char* err, size_t errlen) {
    (void)req;
    snprintf(err, errlen, "batch: deliver");
    return POSTERN_OK;
}

static const struct postern_delivery_plugin plugin = {
    .abi_version = POSTERN_ABI_VERSION,
    .struct_size = sizeof(struct postern_delivery_plugin),
    .name = "batch",
    .deliver = deliver,
    .deliver_many = NULL,
    .deliver_batch = deliver_batch,
};

POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
