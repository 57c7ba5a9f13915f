// tests/sdk/delivery_example.cpp — delivery-maildir.so, a minimal maildir
// delivery built against the installed SDK alone.
//
// The config grammar names the action methods (mbox, maildir, mda, lmtp,
// relay); a plugin serves one of them by being the delivery-NAME.so found in
// the daemon's `plugin path`. This one serves `maildir`: request.path is the
// maildir ("" = HOME/Maildir); the message goes, after a Delivered-To: line,
// into tmp/NAME, is fsynced, then renamed into new/NAME and new/ fsynced, so
// POSTERN_OK means durable. NAME ends in ".sdk-example", which tells the
// test that this plugin, not postern's own, delivered it.
//
// It uses the header-only helpers of postern/support/: Fd (the descriptor
// owner), write_all, and guarded_deliver (the C ABI edge: size check, no
// exception across it, the reason copied into err).
#include <fcntl.h>
#include <postern/delivery.h>
#include <postern/support/delivery_guard.hpp>
#include <postern/support/fd.hpp>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

using postern::util::DeliveryFailure;
using postern::util::Fd;
using postern::util::write_all;

bool fail(DeliveryFailure* f, const std::string& what) {
    *f = {POSTERN_TEMPFAIL, "sdk-example: " + what + ": " + std::strerror(errno)};
    return false;
}

bool make_dir(const std::string& dir, DeliveryFailure* f) {
    return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST || fail(f, "mkdir " + dir);
}

bool deliver_one(const postern_delivery_request& req, DeliveryFailure* f) {
    std::string dir = *req.path ? req.path : std::string(req.home) + "/Maildir";
    for (const char* sub : {"", "/tmp", "/new", "/cur"})
        if (!make_dir(dir + sub, f)) return false;
    // Unique within this host: time, process, and a counter for the several
    // deliveries one agent makes.
    static unsigned counter = 0;
    std::string name = std::to_string(::time(nullptr)) + "." + std::to_string(::getpid()) + "_" +
                       std::to_string(++counter) + ".sdk-example";
    std::string tmp = dir + "/tmp/" + name, dest = dir + "/new/" + name;

    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) return fail(f, "create " + tmp);
    bool ok = write_all(out.get(), std::string("Delivered-To: ") + req.dest + "\n");
    // message_fd is the agent's: read it, never close it.
    char buf[65536];
    ssize_t n = 0;
    while (ok && (n = ::read(req.message_fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0 && write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)));
    }
    if (!ok || ::fsync(out.get()) != 0 || out.close() != 0) {
        int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        return fail(f, "write " + tmp);
    }
    if (::rename(tmp.c_str(), dest.c_str()) != 0) return fail(f, "rename into " + dir + "/new");
    Fd new_dir(::open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!new_dir || ::fsync(new_dir.get()) != 0) return fail(f, "fsync " + dir + "/new");
    return true;
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) {
    return postern::util::guarded_deliver("sdk-example", req, err, errlen, deliver_one);
}

const postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_delivery_plugin),
    "maildir",
    deliver,
    nullptr,  // deliver_many: one recipient at a time is all a mailbox needs
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
