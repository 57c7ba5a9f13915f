// bench_disk_flush: how many durable writes a second the file system under a
// folder takes from one thread, printed on one line beside every benchmark
// run (tests/bench/README.md, "Disk flush rate"). On the benchmark machine the
// figure changed tenfold from one day to another, and a queue that fsyncs
// every message before its 250 cannot accept faster than its disk flushes:
// benchmark figures are only comparable with this rate next to them.
//
//   bench_disk_flush [DIR [SECONDS]]     DIR default ".", SECONDS default 2
//
// Two tests, each for SECONDS of wall time (at most kMaxOps operations):
//   file    create a new file, write 1 KiB, fsync, close: what a queue
//           commit of one message costs (a file per message)
//   append  write 1 KiB at the end of one file and fdatasync it: what a
//           segment log costs per commit (the size changes, so each
//           fdatasync also has to flush the inode)
// Both run in a fresh folder DIR/bench-disk-flush.XXXXXX, removed afterwards
// (the files are unlinked outside the timed loops). Output, one line:
//   disk flush DIR (FSTYPE): N file-write+fsync/s (one thread), M append+fdatasync/s (one file); S s each
// Exit status 0, 1 on an I/O error (reported on stderr), 2 on bad arguments.
// Depends on: POSIX and Linux's statfs (the file system's name); not installed.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "postern/support/fd.hpp"

namespace {

using postern::util::Fd;
using Clock = std::chrono::steady_clock;

constexpr long kMaxOps = 200000;  // bounds the files left to unlink on a very fast disk
constexpr size_t kBlock = 1024;

struct Rate {
    long ops = 0;
    double seconds = 0;
    double per_second() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

[[noreturn]] void fail(std::string_view what, const std::string& path) {
    std::fprintf(stderr, "bench_disk_flush: %.*s %s: %s\n", static_cast<int>(what.size()), what.data(), path.c_str(),
                 std::strerror(errno));
    std::exit(1);
}

// The temporary folder, removed (once empty) whatever path the run takes out.
class TempDir {
public:
    explicit TempDir(const std::string& parent) {
        std::string tmpl = parent + "/bench-disk-flush.XXXXXX";
        if (!::mkdtemp(tmpl.data())) fail("cannot make a folder in", parent);
        path_ = tmpl;
    }
    ~TempDir() { ::rmdir(path_.c_str()); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string file_name(const std::string& dir, long i) { return dir + "/f" + std::to_string(i); }

// A queue commit of one message: new file, 1 KiB, fsync, close.
Rate file_fsync(const std::string& dir, double seconds, std::string_view block) {
    Rate r;
    const auto t0 = Clock::now();
    while (r.ops < kMaxOps && since(t0) < seconds) {
        const std::string path = file_name(dir, r.ops);
        Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!fd) fail("cannot create", path);
        if (!postern::util::write_all(fd.get(), block)) fail("cannot write", path);
        if (::fsync(fd.get()) != 0) fail("cannot fsync", path);
        if (fd.close() != 0) fail("cannot close", path);
        ++r.ops;
    }
    r.seconds = since(t0);
    for (long i = 0; i < r.ops; ++i) ::unlink(file_name(dir, i).c_str());
    return r;
}

// A segment log's commit: 1 KiB appended to one file, fdatasync.
Rate append_fdatasync(const std::string& dir, double seconds, std::string_view block) {
    const std::string path = dir + "/log";
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) fail("cannot create", path);
    Rate r;
    const auto t0 = Clock::now();
    while (r.ops < kMaxOps && since(t0) < seconds) {
        if (!postern::util::write_all(fd.get(), block)) fail("cannot write", path);
        if (::fdatasync(fd.get()) != 0) fail("cannot fdatasync", path);
        ++r.ops;
    }
    r.seconds = since(t0);
    ::unlink(path.c_str());
    return r;
}

// The file system's name: a rate measured on tmpfs or overlayfs says nothing
// about a disk, so the line names it.
const char* fs_name(const std::string& dir) {
    struct statfs s {};
    if (::statfs(dir.c_str(), &s) != 0) return "?";
    switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x6969: return "nfs";
    default: return "other";
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
        std::fprintf(stderr, "usage: bench_disk_flush [DIR [SECONDS]]\n");
        return 2;
    }
    const std::string parent = argc > 1 ? argv[1] : ".";
    char* end = nullptr;
    const double seconds = argc > 2 ? std::strtod(argv[2], &end) : 2.0;
    if (argc > 2 && (*end != '\0' || !(seconds > 0 && seconds <= 60))) {
        std::fprintf(stderr, "bench_disk_flush: SECONDS must be a number in (0, 60]\n");
        return 2;
    }
    const std::string block(kBlock, 'x');
    TempDir dir(parent);
    const Rate file = file_fsync(dir.path(), seconds, block);
    const Rate append = append_fdatasync(dir.path(), seconds, block);
    std::printf("disk flush %s (%s): %.0f file-write+fsync/s (one thread), %.0f append+fdatasync/s (one file); "
                "%.1f s each\n",
                parent.c_str(), fs_name(dir.path()), file.per_second(), append.per_second(), seconds);
    return 0;
}
