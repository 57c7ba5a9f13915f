// plugins/relay/delivery_io.cpp — see delivery_io.hpp.
#include "delivery_io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace postern::relay_plugin {

namespace {
constexpr size_t kMaxMessage = size_t{1} << 30;
}

bool read_message(int fd, std::string_view tag, std::string* out, Failure* f) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) out->reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            *f = {POSTERN_TEMPFAIL, std::string(tag) + ": cannot read the message: " + std::strerror(errno)};
            return false;
        }
        if (out->size() + static_cast<size_t>(n) > kMaxMessage) {
            *f = {POSTERN_PERMFAIL, std::string(tag) + ": message too large"};
            return false;
        }
        out->append(buf, static_cast<size_t>(n));
    }
}

void put_result(postern_delivery_result* res, const Failure& f) {
    res->status = f.status;
    std::snprintf(res->text, sizeof res->text, "%s", f.reason.c_str());
    if (!POSTERN_HAS_MEMBER(res, struct postern_delivery_result, flags)) return;
    std::snprintf(res->enhanced, sizeof res->enhanced, "%s", f.enhanced.c_str());
    std::snprintf(res->remote_host, sizeof res->remote_host, "%s", f.host.c_str());
    std::snprintf(res->remote_addr, sizeof res->remote_addr, "%s", f.addr.c_str());
    res->remote_code = f.code;
    std::snprintf(res->remote_reply, sizeof res->remote_reply, "%s", f.reply.c_str());
    res->flags = f.dsn_handed_on ? POSTERN_RESULT_DSN_HANDED_ON : 0;
}

}  // namespace postern::relay_plugin
