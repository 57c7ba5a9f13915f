// plugins/maildir/maildir.cpp — delivery-maildir.so, the `maildir` action.
//
// Runs inside postern-local as the recipient. request.path is the maildir
// (already expanded by the daemon; "" = HOME/Maildir). The message is written
// as
//     Return-Path: <sender>
//     Delivered-To: dest
//     <message as spooled>
// into tmp/<unique name>, fsynced, linked into new/ and new/ fsynced: a
// reader never sees a partial file in new/, and POSTERN_OK means durable.
//
// A batch (deliver_batch) goes the same way in rounds, so that N messages
// cost about one round of flushes, not N: every message is written into
// tmp/, the files are fsynced together on a few threads (flusher.hpp),
// linked into new/, and each new/ is fsynced once. Each delivery keeps its
// own result: one that fails takes no other with it, and one reported
// delivered is durable.
//
// An agent killed mid-write (the daemon crashed or timed it out) leaves its
// file in tmp/; the next batch to that maildir removes the files our agents
// left there whose process has ended (clear_abandoned).
//
// Options: "junk" — a message whose header says `X-Spam: yes` goes to the
// `.Junk` sub-maildir instead (the Maildir++ layout Dovecot and others read).
//
// Every failure is POSTERN_TEMPFAIL (disk full, quota, permissions and site
// configuration mistakes can all be fixed, and mail must not be bounced for
// them), except EFBIG: a message larger than the file system allows will
// never fit.
#include <postern/delivery.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flusher.hpp"
#include "postern/support/ascii.hpp"
#include "postern/support/delivery_guard.hpp"
#include "postern/support/fd.hpp"

namespace {

using postern::util::Fd;
using postern::util::write_all;

constexpr size_t kChunk = 65536;
constexpr int kNameAttempts = 16;  // fresh unique names tried before giving up

// A failure: status and one-line reason.
using Failure = postern::util::DeliveryFailure;

Failure sys_failure(const std::string& what, int err) {
    int status = err == EFBIG ? POSTERN_PERMFAIL : POSTERN_TEMPFAIL;
    return {status, "maildir: " + what + ": " + std::strerror(err)};
}

bool fsync_dir(const std::string& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return fd && ::fsync(fd.get()) == 0;
}

// A folder just made is made durable by fsyncing its parent.
bool made_durable(const std::string& dir, Failure* f) {
    size_t slash = dir.rfind('/');
    std::string parent = slash == 0 ? "/" : dir.substr(0, slash);
    if (fsync_dir(parent)) return true;
    *f = sys_failure("fsync " + parent, errno);
    return false;
}

// mkdir -p with mode 0700. Each folder we create is made durable, so new/
// cannot vanish in a crash after we reported success. The folder itself is
// tried first: it nearly always exists, and then one mkdir() says so
// instead of one per level of its path (a living agent makes sure of its
// maildir once per batch, and batches are small at low load).
bool make_dirs(const std::string& path, Failure* f) {
    if (::mkdir(path.c_str(), 0700) == 0) return made_durable(path, f);
    if (errno == EEXIST) return true;
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/') continue;
        std::string dir = path.substr(0, pos);
        if (::mkdir(dir.c_str(), 0700) == 0) {
            if (!made_durable(dir, f)) return false;
        } else if (errno != EEXIST) {
            *f = sys_failure("mkdir " + dir, errno);
            return false;
        }
    }
    return true;
}

bool make_maildir(const std::string& dir, Failure* f) {
    for (const char* sub : {"/cur", "/new", "/tmp"})
        if (!make_dirs(dir + sub, f)) return false;
    return true;
}

// Read the message up to the end of its header (first empty line) or EOF.
// Only the header is held in memory; the body is streamed afterwards.
bool read_header(int fd, std::string* head, bool* eof, Failure* f) {
    char buf[kChunk];
    *eof = false;
    for (;;) {
        if (head->starts_with('\n') || head->find("\n\n") != std::string::npos) return true;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            *f = sys_failure("read message", errno);
            return false;
        }
        if (n == 0) {
            *eof = true;
            return true;
        }
        head->append(buf, static_cast<size_t>(n));
    }
}

using postern::util::iequals;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// True when the header section holds `X-Spam: yes` (any case).
bool is_spam(std::string_view head) {
    size_t end = head.starts_with('\n') ? 0 : head.find("\n\n");
    std::string_view header = head.substr(0, end);
    while (!header.empty()) {
        size_t nl = header.find('\n');
        std::string_view line = header.substr(0, nl);
        header = nl == std::string_view::npos ? std::string_view{} : header.substr(nl + 1);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        if (iequals(trim(line.substr(0, colon)), "x-spam") && iequals(trim(line.substr(colon + 1)), "yes")) return true;
    }
    return false;
}

// Host name with the two characters maildir readers treat specially escaped.
std::string escaped_host_name() {
    char host[256] = "localhost";
    if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    std::string out;
    for (const char* p = host; *p; ++p) {
        if (*p == '/') out += "\\057";
        else if (*p == ':') out += "\\072";
        else out += *p;
    }
    return out;
}

// The same, asked once per process: a living agent names many files.
const std::string& host_part() {
    static const std::string part = escaped_host_name();
    return part;
}

// time.MusecPpidQcounterRrandom.host: unique across concurrent agents (pid,
// random) and within one process (counter).
std::string unique_name() {
    static std::atomic<unsigned> counter{0};
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    unsigned rnd = 0;
    if (::getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
        rnd = static_cast<unsigned>(tv.tv_usec) ^ static_cast<unsigned>(::getpid() << 16);
    char buf[128];
    std::snprintf(buf, sizeof buf, "%lld.M%06ldP%ldQ%uR%08x.", static_cast<long long>(tv.tv_sec),
                  static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()), ++counter, rnd);
    return buf + host_part();
}

// Write prefix + head + rest of fd into the open tmp file (not flushed yet).
bool write_message(int out, int in, std::string_view prefix, std::string_view head, bool eof, const std::string& tmp,
                   Failure* f) {
    if (!write_all(out, prefix) || !write_all(out, head)) {
        *f = sys_failure("write " + tmp, errno);
        return false;
    }
    char buf[kChunk];
    while (!eof) {
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *f = sys_failure("read message", errno);
            return false;
        }
        if (n == 0) break;
        if (!write_all(out, std::string_view(buf, static_cast<size_t>(n)))) {
            *f = sys_failure("write " + tmp, errno);
            return false;
        }
    }
    return true;
}

// Create tmp/<unique>, exclusive so two agents can never share a file.
bool create_tmp(const std::string& dir, std::string* name, Fd* fd, Failure* f) {
    for (int i = 0; i < kNameAttempts; ++i) {
        *name = unique_name();
        std::string path = dir + "/tmp/" + *name;
        fd->reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (*fd) return true;
        if (errno != EEXIST) {
            *f = sys_failure("create " + path, errno);
            return false;
        }
    }
    *f = {POSTERN_TEMPFAIL, "maildir: could not find a unique file name in " + dir + "/tmp"};
    return false;
}

// One message on its way into a maildir: written into tmp/NAME, then
// flushed, then linked into new/ (as *published), then new/ flushed.
struct Pending {
    std::string dir;  // the maildir (or its .Junk)
    std::string name;
    Fd fd;                  // tmp/NAME, open until it is flushed
    std::string published;  // its path in new/, once linked
    bool failed = false;
    Failure failure;

    std::string tmp() const { return dir + "/tmp/" + name; }
    // Fails it, and takes back whatever of it is on disk.
    void fail(Failure f) {
        failed = true;
        failure = std::move(f);
        fd.reset();
        ::unlink(tmp().c_str());
        if (!published.empty()) ::unlink(published.c_str());  // not durable: withdrawn rather than delivered twice
    }
};

// link() rather than rename(): it never replaces an existing file in new/.
// The tmp/ name goes once linked; new/ is flushed by the caller.
bool link_into_new(Pending* p, Failure* f) {
    std::string from = p->tmp();
    std::string to = p->dir + "/new/" + p->name;
    for (int i = 0; ::link(from.c_str(), to.c_str()) != 0; ++i) {
        // File systems without hard links: rename, whose unique name makes
        // replacing another message practically impossible.
        if ((errno == EPERM || errno == ENOSYS || errno == EOPNOTSUPP) && ::rename(from.c_str(), to.c_str()) == 0)
            break;
        if (errno != EEXIST || i >= kNameAttempts) {
            *f = sys_failure("link " + from + " to " + to, errno);
            return false;
        }
        to = p->dir + "/new/" + unique_name();
    }
    ::unlink(from.c_str());
    p->published = to;
    return true;
}

// Closes each written file once flushed; a file that cannot be flushed or
// closed fails its message.
void flush_files(std::vector<Pending*>& batch) {
    std::vector<int> fds;
    for (Pending* p : batch) fds.push_back(p->fd.get());
    std::vector<int> errors = postern::maildir_plugin::fsync_all(fds);
    for (size_t k = 0; k < batch.size(); ++k) {
        Pending* p = batch[k];
        if (errors[k] != 0) p->fail(sys_failure("fsync " + p->tmp(), errors[k]));
        else if (p->fd.close() != 0) p->fail(sys_failure("close " + p->tmp(), errno));
    }
}

// Links every flushed file into its new/, then flushes each new/ once: a
// message is durable, and reported delivered, only after that.
void publish_all(std::vector<Pending*>& batch) {
    std::vector<std::string> dirs;
    for (Pending* p : batch) {
        if (p->failed) continue;
        Failure f;
        if (!link_into_new(p, &f)) {
            p->fail(std::move(f));
            continue;
        }
        if (std::find(dirs.begin(), dirs.end(), p->dir) == dirs.end()) dirs.push_back(p->dir);
    }
    for (const std::string& dir : dirs) {
        if (fsync_dir(dir + "/new")) continue;
        Failure f = sys_failure("fsync " + dir + "/new", errno);
        for (Pending* p : batch)
            if (!p->failed && p->dir == dir) p->fail(f);
    }
}

bool parse_options(std::string_view options, bool* junk, Failure* f) {
    *junk = false;
    while (!options.empty()) {
        size_t sp = options.find(' ');
        std::string_view word = options.substr(0, sp);
        options = sp == std::string_view::npos ? std::string_view{} : options.substr(sp + 1);
        if (word.empty()) continue;
        if (word == "junk") {
            *junk = true;
        } else {
            *f = {POSTERN_TEMPFAIL, "maildir: unknown option \"" + std::string(word) + "\""};
            return false;
        }
    }
    return true;
}

// The daemon's expanded path, or HOME/Maildir when the action gave none.
std::string maildir_path(const postern_delivery_request& req) {
    if (req.path && *req.path) return req.path;
    if (req.home && *req.home) return std::string(req.home) + "/Maildir";
    return {};
}

// Whether process `pid` has ended and waits to be reaped (state Z or X in
// /proc/PID/stat, after the name in parentheses).
bool is_zombie(long pid) {
    char path[64], buf[512];
    std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf - 1) : -1;
    if (n <= 0) return false;
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

// Whether `name` is a file of ours in tmp/ (unique_name's form, this host)
// whose agent is gone: then *pid is that agent's.
bool ours_abandoned(const char* name, long* pid) {
    long long sec = 0;
    long usec = 0;
    unsigned counter = 0, rnd = 0;
    int end = 0;
    if (!std::isdigit(static_cast<unsigned char>(name[0])) ||
        std::sscanf(name, "%lld.M%6ldP%ldQ%uR%8x.%n", &sec, &usec, pid, &counter, &rnd, &end) != 5 || end == 0)
        return false;
    if (std::string_view(name + end) != host_part() || *pid <= 0 || *pid == ::getpid()) return false;
    // ESRCH: gone (EPERM is a living process of another user's); a zombie
    // (killed, not reaped yet: a restart's first batch comes that soon)
    // writes no more either.
    if (::kill(static_cast<pid_t>(*pid), 0) != 0) return errno == ESRCH;
    return is_zombie(*pid);
}

// tmp/ cleared of the files our agents left there when they were killed
// mid-write (the daemon crashed or timed them out): the message was not
// reported delivered, so it is delivered again, and the half-written copy
// must not stay (maildir readers only clear tmp/ of files days old). Only
// files named by this host's agents whose process has ended: another
// agent's file in progress, or another program's, is never touched. (A PID
// taken since by another process keeps its file until that ends.)
void clear_abandoned(const std::string& dir) {
    std::string tmp = dir + "/tmp";
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(tmp.c_str()), ::closedir);
    if (!d) return;
    while (dirent* e = ::readdir(d.get())) {
        long pid = 0;
        if (e->d_name[0] != '.' && ours_abandoned(e->d_name, &pid)) ::unlinkat(::dirfd(d.get()), e->d_name, 0);
    }
}

// The folders of one call that exist already: a batch to one maildir makes
// sure of them once, not once per message (and clears its tmp/ once).
using Made = std::vector<std::string>;

bool ensure_maildir(const std::string& dir, Made* made, Failure* f) {
    if (std::find(made->begin(), made->end(), dir) != made->end()) return true;
    if (!make_maildir(dir, f)) return false;
    clear_abandoned(dir);
    made->push_back(dir);
    return true;
}

// A request up to its file written in tmp/ (not flushed): *p filled.
bool write_tmp(const postern_delivery_request& req, Made* made, Pending* p, Failure* f) {
    std::string dir = maildir_path(req);
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (dir.empty() || dir.front() != '/') {
        *f = {POSTERN_TEMPFAIL, "maildir: folder \"" + dir + "\" is not an absolute path"};
        return false;
    }
    bool junk = false;
    if (!parse_options(req.options ? req.options : "", &junk, f)) return false;

    std::string head;
    bool eof = false;
    if (!read_header(req.message_fd, &head, &eof, f)) return false;
    if (!ensure_maildir(dir, made, f)) return false;
    if (junk && is_spam(head)) {
        dir += "/.Junk";
        if (!ensure_maildir(dir, made, f)) return false;
    }
    std::string sender = req.sender ? req.sender : "";
    std::string prefix = "Return-Path: <" + sender + ">\nDelivered-To: " + std::string(req.dest ? req.dest : "") + "\n";
    p->dir = dir;
    if (!create_tmp(dir, &p->name, &p->fd, f)) return false;
    if (write_message(p->fd.get(), req.message_fd, prefix, head, eof, p->tmp(), f)) return true;
    p->fail(*f);
    return false;
}

// One delivery, the way a batch of one goes.
bool run(const postern_delivery_request& req, Failure* f) {
    Made made;
    Pending p;
    if (!write_tmp(req, &made, &p, f)) return false;
    std::vector<Pending*> one = {&p};
    flush_files(one);
    publish_all(one);
    if (p.failed) *f = p.failure;
    return !p.failed;
}

int deliver(const postern_delivery_request* req, char* err, size_t errlen) noexcept {
    return postern::util::guarded_deliver("maildir", req, err, errlen, run);
}

void put(postern_delivery_result* res, int status, const std::string& text) {
    res->status = status;
    std::snprintf(res->text, sizeof res->text, "%s", text.c_str());
}

// The batch: every message written into tmp/, the files flushed together,
// linked into new/, each new/ flushed once. Each delivery has its own
// result; one that fails (a full disk, a quota, a folder it may not write)
// takes no other with it. Reported as each is final: at once for a
// failure before the flush, after its new/ is flushed for the others.
void run_batch(const postern_delivery_batch* batch, const postern_delivery_request* const* reqs, size_t n,
               postern_delivery_result* const* results) {
    Made made;
    std::vector<Pending> pending(n);
    std::vector<Pending*> written;  // those whose file is in tmp/, in order
    std::vector<bool> is_written(n, false);
    // Whether results still reach the daemon: once they do not, nothing
    // more is published (it would be delivered again on the next attempt).
    bool heard = true;
    auto report = [&](size_t i) {
        if (batch && batch->report && batch->report(batch, i) != POSTERN_OK) heard = false;
    };
    for (size_t i = 0; i < n; ++i) {
        Failure f{POSTERN_TEMPFAIL, "maildir: unexpected error"};
        if (!reqs[i] || reqs[i]->struct_size < POSTERN_DELIVERY_REQUEST_MIN_SIZE)
            f.reason = "maildir: request struct too small";
        else if (write_tmp(*reqs[i], &made, &pending[i], &f)) {
            written.push_back(&pending[i]);
            is_written[i] = true;
            continue;
        }
        put(results[i], f.status, f.reason);
        report(i);
    }
    if (!heard) {
        for (Pending* p : written) p->fail({POSTERN_TEMPFAIL, "maildir: not delivered: the agent cannot report"});
        return;
    }
    flush_files(written);
    publish_all(written);
    for (size_t i = 0; i < n; ++i) {
        const Pending& p = pending[i];
        if (!is_written[i]) continue;
        if (p.failed) put(results[i], p.failure.status, p.failure.reason);
        else put(results[i], POSTERN_OK, "");
        report(i);
    }
}

// No exception crosses the C ABI: one (memory exhausted) leaves the results
// not set yet as the agent prepared them, temporary failures, and their
// files where they were: in tmp/ a file is never a delivery (maildir
// readers clear tmp/ of old files).
void deliver_batch(const postern_delivery_batch* batch, const postern_delivery_request* const* reqs, size_t n,
                   postern_delivery_result* const* results) noexcept {
    try {
        run_batch(batch, reqs, n, results);
    } catch (...) {
    }
}

const struct postern_delivery_plugin plugin = {
    POSTERN_ABI_VERSION,
    sizeof(postern_delivery_plugin),
    "maildir",
    deliver,
    nullptr,  // one recipient at a time, or
    deliver_batch,
};

}  // namespace

extern "C" POSTERN_EXPORT const struct postern_delivery_plugin* postern_delivery_plugin(void) { return &plugin; }
