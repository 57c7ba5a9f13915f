"""The descriptor limit and max-sessions.

Each session is a socket in the serving process. posternd raises its soft
descriptor limit to the hard one (and the hard one too when it runs as root
with CAP_SYS_RESOURCE and max-sessions needs it); where the limit still
holds fewer sessions than max-sessions, the serving process says so at
start-up and refuses the sessions beyond with max-sessions' 421, keeping a
quarter of the limit (at most 1024) for everything else, instead of letting
accept() fail and the client's connection close unanswered.

The daemon is started here with a limit of 300 descriptors and without
CAP_SYS_RESOURCE (dropped from the bounding set before exec), so that it
cannot raise the limit wherever the test runs: 300 - 300/4 = 225 sessions.

When accept() fails all the same (out of descriptors, and libuv's spare
descriptor taken by another thread), libuv retries it in a loop that never
returns to the event loop: the serving process closes its listening handle
for a second instead and opens it again on a copy of the socket. A shim
(LD_PRELOAD, compiled here with cc) makes accept4() fail that way.
"""

import ctypes
import os
import resource
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LIMIT = 300
FIT = LIMIT - LIMIT // 4
CONFIG = ('action "l" mbox\n'
          'match from local for local action "l"\n')

PR_CAPBSET_DROP = 24
CAP_SYS_RESOURCE = 24


def limited():
    """In the child before exec: LIMIT descriptors, and no way to raise it."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


class LimitedDaemon(postern.Daemon):
    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [postern.POSTERND, "-d", "-f", self.conf_path] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.dir, start_new_session=True, preexec_fn=limited)
        self.session = self.proc.pid
        self._wait_ready()


def open_limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    return None


class DescriptorLimit(unittest.TestCase):
    def test_sessions_beyond_the_limit_get_421(self):
        with LimitedDaemon(CONFIG, name="fdlimit") as d:
            self.assertEqual(open_limits(d.pid), (LIMIT, LIMIT))
            warned = d.wait_log(rf"smtp sessions-limited max-sessions=1000 descriptors={LIMIT} sessions={FIT} ")
            self.assertEqual(len(warned), 1, d.log())
            held = []
            try:
                # The start-up probe's session may still be closing: the
                # first FIT - 1 are sure to fit.
                for i in range(FIT - 1):
                    c = postern.RawClient(d.port)
                    held.append(c)
                    self.assertEqual(c.banner[0], 220, f"session {i + 1}: {c.banner}")
                self.assertTrue(held[-1].cmd("EHLO client.example").startswith("250"))
                refused = None
                for i in range(5):  # the next few: one more fits at most
                    c = postern.RawClient(d.port)
                    held.append(c)
                    if c.banner[0] != 220:
                        refused = c.banner
                        break
                self.assertIsNotNone(refused, "no session refused past the descriptor limit")
                self.assertEqual(refused[0], 421)
                self.assertRegex(refused[1][-1], r"^4\.7\.0 \S+ Too many connections, try again later$")
                self.assertTrue(held[-1].closed_by_peer())
                # A slot freed is taken again.
                for c in held[:3]:
                    c.cmd("QUIT")
                    c.close()
                again = postern.wait_until(lambda: self.greeting(d.port) == 220, 5, interval=0.2)
                self.assertTrue(again)
            finally:
                for c in held:
                    c.close()
            self.assertIn("reason=too-many-sessions", d.log())
            self.assertNotIn("accept-failed", d.log())

    def greeting(self, port):
        with postern.RawClient(port) as c:
            return c.banner[0]

    def test_no_warning_when_max_sessions_fits(self):
        with LimitedDaemon("smtp limit max-sessions 100\n" + CONFIG, name="fdlimit-fits") as d:
            with postern.RawClient(d.port) as c:
                self.assertEqual(c.banner[0], 220)
            self.assertNotIn("sessions-limited", d.log())


SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
/* accept4() fails with EMFILE while the file $POSTERN_TEST_EMFILE exists. */
int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
    static int (*real)(int, struct sockaddr*, socklen_t*, int);
    const char* trigger = getenv("POSTERN_TEST_EMFILE");
    if (trigger && access(trigger, F_OK) == 0) {
        errno = EMFILE;
        return -1;
    }
    if (!real) real = (int (*)(int, struct sockaddr*, socklen_t*, int))dlsym(RTLD_NEXT, "accept4");
    return real(fd, addr, len, flags);
}
"""


class ShimmedDaemon(postern.Daemon):
    """posternd whose accept4() fails with EMFILE while DIR/emfile exists."""

    def _spawn(self):
        src, lib = self.path("emfile.c"), self.path("emfile.so")
        with open(src, "w") as f:
            f.write(SHIM)
        subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, src, "-ldl"], check=True, timeout=60)
        env = dict(os.environ, LD_PRELOAD=lib, POSTERN_TEST_EMFILE=self.path("emfile"))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [postern.POSTERND, "-d", "-f", self.conf_path] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.dir, start_new_session=True, env=env)
        self.session = self.proc.pid
        self._wait_ready()


class OutOfDescriptors(unittest.TestCase):
    def test_accept_failing_does_not_stop_the_loop(self):
        """accept() failing with EMFILE, over and over (libuv's spare
        descriptor cannot help): the listener rests a second at a time, the
        sessions already open are served meanwhile, the failure is logged
        about once a second, and accepting resumes once accept() works."""
        with ShimmedDaemon(CONFIG, name="emfile") as d:
            with postern.RawClient(d.port) as held:
                self.assertEqual(held.banner[0], 220)
                open(d.path("emfile"), "w").close()
                waiting = socket.create_connection(("127.0.0.1", d.port), timeout=10)  # in the backlog
                try:
                    lines = d.wait_log(r'smtp accept-failed error="too many open files" count=\d+ '
                                       r'address=127\.0\.0\.1:\d+ action="pause 1 s"')
                    self.assertTrue(lines, d.log())
                    # The loop goes on: the open session is answered.
                    self.assertEqual(held.cmd("NOOP"), "250 2.0.0 Ok")
                    time.sleep(2.5)  # two more pauses, each logged once
                    self.assertEqual(held.cmd("NOOP"), "250 2.0.0 Ok")
                    self.assertLessEqual(d.log().count("smtp accept-failed"), 5, d.log())
                    os.unlink(d.path("emfile"))
                    waiting.settimeout(10)
                    self.assertTrue(waiting.recv(512).startswith(b"220 "))
                finally:
                    waiting.close()
                self.assertTrue(d.wait_log(r"smtp accepting-again address=127\.0\.0\.1:"), d.log())
            with postern.RawClient(d.port) as c:
                self.assertEqual(c.banner[0], 220)


if __name__ == "__main__":
    postern.run_tests()
