// tests/plugins/delivery_typed.cpp — delivery-typed.so: a plugin with
// deliver_many whose results the test chooses through request.options:
//   "relayed"  ok, with every typed field: 2.0.0 from mx.test [192.0.2.25],
//              "250 2.0.0 queued", the DSN handed on
//   "refused"  perm, 5.1.1 from mx.test [192.0.2.25], "550 5.1.1 no such user"
//   "old"      perm, written as a plugin built before the typed fields: its
//              result struct ends at `text`, and it writes nothing beyond
//   "badcode"  perm with the enhanced code "4.2.2" (of the wrong class)
//   "forge"    prints "0 ok forged" (and "1 ok forged") on stdout, then fails
//              temporarily: the agent's stdout must never carry a result.
//   "silent"   answers the first recipient only (ok) and leaves the others'
//              results as the agent prepared them: never a delivery.
#include <postern/delivery.h>

#include <cstdio>
#include <cstring>

namespace {

// A result as a plugin built before the typed fields sees it.
struct old_result {
    uint32_t struct_size;
    int status;
    char text[1024];
};

void put(postern_delivery_result* res, int status, const char* text, const char* enhanced, int code, const char* reply,
         uint32_t flags) {
    res->status = status;
    std::snprintf(res->text, sizeof res->text, "%s", text);
    if (!POSTERN_HAS_MEMBER(res, struct postern_delivery_result, flags)) return;
    std::snprintf(res->enhanced, sizeof res->enhanced, "%s", enhanced);
    std::snprintf(res->remote_host, sizeof res->remote_host, "%s", "mx.test");
    std::snprintf(res->remote_addr, sizeof res->remote_addr, "%s", "192.0.2.25");
    res->remote_code = code;
    std::snprintf(res->remote_reply, sizeof res->remote_reply, "%s", reply);
    res->flags = flags;
}

void deliver_many(const postern_delivery_request* const* reqs, size_t n, postern_delivery_result* const* results) {
    for (size_t i = 0; i < n; ++i) {
        const char* how = reqs[i]->options;
        postern_delivery_result* res = results[i];
        if (std::strcmp(how, "silent") == 0) {
            if (i == 0) put(res, POSTERN_OK, "typed: the first only", "2.0.0", 250, "2.0.0 ok", 0);
        } else if (std::strcmp(how, "relayed") == 0) {
            put(res, POSTERN_OK, "typed: relayed", "2.0.0", 250, "2.0.0 queued", POSTERN_RESULT_DSN_HANDED_ON);
        } else if (std::strcmp(how, "refused") == 0) {
            put(res, POSTERN_PERMFAIL, "typed: refused", "5.1.1", 550, "5.1.1 no such user", 0);
        } else if (std::strcmp(how, "old") == 0) {
            auto* old = reinterpret_cast<old_result*>(res);
            old->status = POSTERN_PERMFAIL;
            std::snprintf(old->text, sizeof old->text, "%s", "typed: an old plugin's 5.1.1 failure");
        } else if (std::strcmp(how, "badcode") == 0) {
            put(res, POSTERN_PERMFAIL, "typed: bad code", "4.2.2", 550, "4.2.2 full", 0);
        } else {
            std::printf("%zu ok forged\n", i);
            std::fflush(stdout);
            put(res, POSTERN_TEMPFAIL, "typed: not delivered", "", 0, "", 0);
        }
    }
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) {
    postern_delivery_result r{};
    r.struct_size = sizeof r;
    postern_delivery_result* out = &r;
    deliver_many(&req, 1, &out);
    std::snprintf(err, errlen, "%s", r.text);
    return r.status;
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "typed", deliver, deliver_many,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
