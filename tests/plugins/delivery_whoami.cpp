// tests/plugins/delivery_whoami.cpp — delivery-whoami.so: a plugin that
// says which process delivered, for the tests of agents that live on
// (tests/unit/delivery/agent_pool_test.cpp). Each delivery succeeds with
// the text "pid P uid U call C": the agent's pid and uid and how many
// deliveries this process has made (state kept across batches). A path
// "wait:FILE" first writes the pid to FILE, then sleeps 60 s (a test kills
// the agent meanwhile, or its time limit does).
#include <postern/delivery.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace {

unsigned calls = 0;

int deliver(const postern_delivery_request* req, char* err, size_t errlen) {
    ++calls;
    if (std::strncmp(req->path, "wait:", 5) == 0) {
        if (FILE* f = std::fopen(req->path + 5, "w")) {
            std::fprintf(f, "%ld\n", static_cast<long>(::getpid()));
            std::fclose(f);
        }
        ::sleep(60);
    }
    std::snprintf(err, errlen, "pid %ld uid %ld call %u", static_cast<long>(::getpid()), static_cast<long>(::getuid()),
                  calls);
    return POSTERN_OK;
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION, sizeof(postern_delivery_plugin), "whoami", deliver, nullptr,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
