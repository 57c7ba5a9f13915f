"""Faults under the spool (issue 17): a full disk, a read-only spool and
failing fsyncs never end in a 250, and leave nothing half-written.

The spool lives on a small tmpfs the test mounts (and unmounts) inside the
daemon's folder; the maildir stays on the ordinary disk.

- Disk full: the tmpfs is filled (a filler file outside the spool) so that
  0, 2 KiB, 8 KiB, 32 KiB and 96 KiB stay free, and a 120 KiB message is
  sent each time: each gets a 4xx reply (never a 250), and nothing is left in
  messages/ or incoming/. Once the filler is gone the next message gets 250
  and is delivered once.
- Read-only: the tmpfs is remounted read-only; a message gets 4xx, none is
  left; remounted read-write, the next one is delivered.
- fsync failing: posternd runs with an LD_PRELOAD shim (built here with cc)
  that makes fsync and fdatasync fail with EIO while a flag file exists: no
  message gets 250 meanwhile (each gets 4xx); without the flag, the next is
  delivered.
Each case ends with a restart on the same spool, whose start must not find
anything to complain about in it, and nothing left queued.
"""

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "md" maildir "@DIR@/Maildir" user root\n'
          'match from any for domain "faults.test" action "md"\n')
FS_SIZE = 4 << 20  # the tmpfs: room for the spool's folders, its journal and a few messages

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* While the file $POSTERN_FAULT_FLAG exists: fsync and fdatasync fail with
   EIO. While $POSTERN_FAULT_RO exists: everything that would change a file
   or folder below $POSTERN_FAULT_RO_DIR (opening for writing, writing,
   creating, linking, removing) fails with EROFS, as on a file system the
   kernel has turned read-only. */
#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)
static int exists(const char* env) {
    const char* flag = getenv(env);
    return flag && access(flag, F_OK) == 0;
}
static int below(const char* path) {
    const char* dir = getenv("POSTERN_FAULT_RO_DIR");
    size_t n = dir ? strlen(dir) : 0;
    return n && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == 0);
}
static int fd_below(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return below(path);
}
static int at_below(int dirfd, const char* name) {
    if (name[0] == '/') return below(name);
    if (dirfd == AT_FDCWD) {
        char cwd[PATH_MAX];
        return getcwd(cwd, sizeof cwd) && below(cwd);
    }
    return fd_below(dirfd);
}
static int read_only(void) { return exists("POSTERN_FAULT_RO"); }
static int refuse(void) { errno = EROFS; return -1; }
int fsync(int fd) {
    REAL(fsync);
    if (exists("POSTERN_FAULT_FLAG")) { errno = EIO; return -1; }
    return real_fsync(fd);
}
int fdatasync(int fd) {
    REAL(fdatasync);
    if (exists("POSTERN_FAULT_FLAG")) { errno = EIO; return -1; }
    return real_fdatasync(fd);
}
static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }
int openat(int dirfd, const char* path, int flags, ...) {
    REAL(openat);
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    if (writes(flags) && read_only() && at_below(dirfd, path)) return refuse();
    return real_openat(dirfd, path, flags, mode);
}
int open(const char* path, int flags, ...) {
    REAL(open);
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    if (writes(flags) && read_only() && at_below(AT_FDCWD, path)) return refuse();
    return real_open(path, flags, mode);
}
ssize_t write(int fd, const void* buf, size_t n) {
    REAL(write);
    struct stat st;
    if (read_only() && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fd_below(fd)) return refuse();
    return real_write(fd, buf, n);
}
int unlinkat(int dirfd, const char* path, int flags) {
    REAL(unlinkat);
    if (read_only() && at_below(dirfd, path)) return refuse();
    return real_unlinkat(dirfd, path, flags);
}
int linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath, int flags) {
    REAL(linkat);
    if (read_only() && at_below(newdirfd, newpath)) return refuse();
    return real_linkat(olddirfd, oldpath, newdirfd, newpath, flags);
}
int renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) {
    REAL(renameat);
    if (read_only() && (at_below(olddirfd, oldpath) || at_below(newdirfd, newpath))) return refuse();
    return real_renameat(olddirfd, oldpath, newdirfd, newpath);
}
int mkdir(const char* path, mode_t mode) {
    REAL(mkdir);
    if (read_only() && at_below(AT_FDCWD, path)) return refuse();
    return real_mkdir(path, mode);
}
"""


def message(n, size):
    line = "x" * 70 + "\r\n"
    return (f"Subject: fault {n}\r\nMessage-ID: <{n}@faults.test>\r\n\r\n" + line * (size // len(line))).encode()


def send(port, n, size=2048):
    """(code, text) of the reply to DATA, or of the first refused command."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
            s.ehlo()
            code, text = s.mail("sender@example.org")
            if code != 250:
                return code, text
            code, text = s.rcpt("u@faults.test")
            if code != 250:
                return code, text
            return s.data(message(n, size))
    except smtplib.SMTPServerDisconnected as e:
        return 0, str(e).encode()


class TmpfsDaemon(postern.Daemon):
    """A daemon whose spool is DIR/fs/spool, DIR/fs a tmpfs of FS_SIZE bytes."""

    @property
    def fs(self):
        return os.path.join(self.dir, "fs")

    @property
    def spool(self):
        return os.path.join(self.dir, "fs", "spool")

    @property
    def queue_dir(self):
        return os.path.join(self.spool, "messages")

    def __enter__(self):
        try:
            return super().__enter__()
        except BaseException:  # a daemon that did not start: its tmpfs goes all the same
            if self.dir:
                subprocess.run(["umount", self.fs], capture_output=True, timeout=30)
            raise

    def __exit__(self, *exc):
        self.stop()
        subprocess.run(["umount", self.fs], capture_output=True, timeout=30)
        return super().__exit__(*exc)


def mount_tmpfs(folder):
    fs = os.path.join(folder, "fs")
    os.mkdir(fs, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0755", "tmpfs", fs], check=True, timeout=30)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(fs, leave):
    """A filler file in fs (beside the spool) leaving about `leave` bytes free."""
    path = os.path.join(fs, "filler")
    block = os.statvfs(fs).f_frsize
    with open(path, "ab") as f:
        want = free_bytes(fs) - leave
        while want >= block:
            chunk = min(want - want % block, 1 << 20)
            try:
                f.write(b"\0" * chunk)
                f.flush()
            except OSError:
                break
            want = free_bytes(fs) - leave
    return path


def leftovers(d):
    out = []
    for sub in ("messages", "incoming"):
        p = os.path.join(d.spool, sub)
        out += [f"{sub}/{f}" for f in (os.listdir(p) if os.path.isdir(p) else [])]
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: a tmpfs is mounted for the spool")
class SpoolFaults(unittest.TestCase):
    def assert_recovers(self, d, n):
        """The next message is delivered once; a restart finds the spool clean."""
        code, text = send(d.port, n)
        self.assertEqual(code, 250, text)
        files = d.wait_files(d.path("Maildir"), 1, timeout=15)
        self.assertEqual(len(files), 1, d.log())
        self.assertIn(f"Subject: fault {n}\n", postern.read_bytes(files[0]).decode())
        self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        mark = len(d.log())
        d.restart()
        start_log = d.log()[mark:]
        self.assertNotIn("left alone", start_log)
        self.assertNotIn("quarantine", start_log)
        self.assertEqual(leftovers(d), [])
        self.assertEqual(len(postern.maildir_new(d.path("Maildir"))), 1, "delivered again after the restart")

    def test_disk_full_at_commit(self):
        with TmpfsDaemon(CONFIG, name="fault-enospc", prepare=mount_tmpfs) as d:
            # The first message shows the spool works, and grows the journal.
            code, text = send(d.port, 0)
            self.assertEqual(code, 250, text)
            self.assertTrue(d.wait_files(d.path("Maildir"), 1, timeout=15), d.log())
            shutil.rmtree(d.path("Maildir", "new"))
            os.mkdir(d.path("Maildir", "new"), 0o700)
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
            for n, leave in enumerate((0, 2048, 8192, 32768, 98304), start=1):
                filler = fill(d.fs, leave)
                code, text = send(d.port, n, size=120 * 1024)
                self.assertTrue(400 <= code < 500 or code == 0, f"free {leave}: {code} {text}")
                self.assertNotEqual(code, 250)
                self.assertEqual(leftovers(d), [], f"free {leave}")
                os.unlink(filler)
            self.assertEqual(postern.maildir_new(d.path("Maildir")), [], d.log())
            self.assert_recovers(d, 9)

    def with_shim(self, run):
        """run(daemon, flag, ro_flag) with posternd under the shim (built
        here): fsync fails while `flag` exists, the spool is read-only while
        `ro_flag` exists."""
        shim_dir = tempfile.mkdtemp(prefix="fault-shim-")
        old_env = os.environ.copy()
        try:
            shim = os.path.join(shim_dir, "faults.so")
            src = os.path.join(shim_dir, "faults.c")
            with open(src, "w") as f:
                f.write(SHIM)
            subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim, src, "-ldl"], check=True, timeout=60)
            os.chmod(shim_dir, 0o755)
            flag, ro_flag = os.path.join(shim_dir, "eio"), os.path.join(shim_dir, "ro")
            # The daemon (started by Popen) inherits them; its agents do not
            # (they get an environment of their own).
            os.environ.update(LD_PRELOAD=shim, POSTERN_FAULT_FLAG=flag, POSTERN_FAULT_RO=ro_flag)
            with TmpfsDaemon(CONFIG, name="fault-shim", prepare=mount_tmpfs) as d:
                os.environ["POSTERN_FAULT_RO_DIR"] = os.path.realpath(d.spool)
                d.restart()  # now with the folder the shim guards
                run(d, flag, ro_flag)
        finally:
            os.environ.clear()
            os.environ.update(old_env)
            shutil.rmtree(shim_dir, ignore_errors=True)

    def refused_while(self, d, flag, error):
        """With the shim's fault `flag` on, three messages get no 250 (4xx or
        the connection closed) and the log names `error`; once it is off, the
        daemon recovers."""
        open(flag, "w").close()
        try:
            for n in range(1, 4):
                code, text = send(d.port, n)
                self.assertNotEqual(code, 250, text)
                self.assertTrue(400 <= code < 500 or code == 0, f"{code} {text}")
        finally:
            os.unlink(flag)
        self.assertEqual(postern.maildir_new(d.path("Maildir")), [], d.log())
        self.assertIn(error, d.log())  # the fault was met, not missed
        self.assertEqual(leftovers(d), [])
        self.assert_recovers(d, 4)

    def test_spool_read_only(self):
        self.with_shim(lambda d, _flag, ro_flag: self.refused_while(d, ro_flag, "Read-only file system"))

    def test_fsync_failing(self):
        self.with_shim(lambda d, flag, _ro_flag: self.refused_while(d, flag, "Input/output error"))


if __name__ == "__main__":
    postern.run_tests()
