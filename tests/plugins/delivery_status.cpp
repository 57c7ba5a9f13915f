// tests/plugins/delivery_status.cpp — delivery-status.so: a delivery plugin
// whose result the test chooses through request.options ("ok", "tempfail",
// "permfail"), or per delivery with a path ending in "/tempfail" or
// "/permfail". On success it writes every request field, one per line, then
// the message into request.path, so a test sees exactly what postern-local
// passed.
#include <postern/delivery.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

bool ends_with(const char* s, const char* tail) {
    size_t a = std::strlen(s), b = std::strlen(tail);
    return a >= b && std::strcmp(s + a - b, tail) == 0;
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) {
    if (std::strcmp(req->options, "tempfail") == 0 || ends_with(req->path, "/tempfail")) {
        std::snprintf(err, errlen, "status: tempfail requested");
        return POSTERN_TEMPFAIL;
    }
    if (std::strcmp(req->options, "permfail") == 0 || ends_with(req->path, "/permfail")) {
        std::snprintf(err, errlen, "status: permfail requested");
        return POSTERN_PERMFAIL;
    }
    FILE* out = std::fopen(req->path, "w");
    if (!out) {
        std::snprintf(err, errlen, "status: cannot write %s", req->path);
        return POSTERN_TEMPFAIL;
    }
    for (const char* field :
         {req->sender, req->rcpt, req->dest, req->user, req->home, req->path, req->options, req->msgid})
        std::fprintf(out, "%s\n", field);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(req->message_fd, buf, sizeof buf)) > 0) std::fwrite(buf, 1, static_cast<size_t>(n), out);
    std::fclose(out);
    return POSTERN_OK;
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "status", deliver, nullptr,  // one recipient at a time
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
