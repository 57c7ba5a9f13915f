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
"""

import ctypes
import os
import resource
import socket
import subprocess
import sys
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


if __name__ == "__main__":
    postern.run_tests()
