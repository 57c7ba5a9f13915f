"""Faults: the wall clock jumping while mail waits for a retry (issue 17).

The scheduler keeps retry times as wall-clock seconds and waits for them on
libuv's monotonic timer. posternd runs here under libfaketime (Debian's
libfaketime), its wall clock offset by what the test writes into a
FAKETIME_TIMESTAMP_FILE ("+9000", "-86400"), re-read at every call
(FAKETIME_NO_CACHE); the monotonic clock stays true (DONT_FAKE_MONOTONIC).
The file lives in /dev/shm: the serving process's Landlock rules let it read
/dev, not the test's folder.

Delivery goes as user nobody into DIR/blocked/Maildir, root's and mode 0755
until the test hands it to nobody: a delivery that fails temporarily, then
succeeds.

- Set forward: an envelope waiting about ten minutes for its retry is tried
  within a minute of the clock being set forward an hour, not after the
  whole ten-minute monotonic wait.
- Set back a day: the waiting retry moves back with the clock; a failure
  after it waits one step of the schedule, not a day; then it is delivered.
- Set back a day while posternd is stopped: a retry time read from the
  spool is held to one step of the schedule.

Each time: one copy delivered (never two), the queue empty afterwards, and
`posternctl show queue` giving retry times near the daemon's clock.
Skipped if libfaketime is not installed (packaging/dev.sh installs it).
"""

import glob
import os
import pwd
import re
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)

CONFIG = ('action "b" maildir "@DIR@/blocked/Maildir" user nobody\n'
          'match from local for local action "b"\n')

BODY = "Subject: clockwork\r\n\r\nthis message must arrive once\r\n"

# The scheduler's timer cap (scheduler.cpp, kMaxTimerWait), and room for a
# loaded machine on top of it.
TIMER_CAP = 60
SLACK = 20


class FakeClockDaemon(postern.Daemon):
    """posternd with its wall clock offset by the seconds in self.clock_file."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock_file = f"/dev/shm/postern-faketime-{os.getpid()}-{id(self)}"
        self.offset = 0
        self.started = []  # posternd's pids: libfaketime's shared memory is named after them
        self.set_offset(0)

    def set_offset(self, seconds):
        tmp = self.clock_file + ".new"
        with open(tmp, "w") as f:
            f.write(f"{seconds:+d}\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.clock_file)  # never a half-written file for libfaketime to read
        self.offset = seconds

    def fake_now(self):
        return time.time() + self.offset

    def _spawn(self):
        # The environment of the posternd the harness starts (and only of it).
        fake = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": self.clock_file, "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}
        saved = {k: os.environ.get(k) for k in fake}
        os.environ.update(fake)
        try:
            super()._spawn()
        finally:
            if self.proc:
                self.started.append(self.proc.pid)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            # libfaketime removes its own at a clean exit; not after a kill.
            shm = [f"/dev/shm/{name}_{pid}" for pid in self.started for name in ("faketime_shm", "sem.faketime_sem")]
            for p in [self.clock_file, self.clock_file + ".new"] + shm:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass


@unittest.skipUnless(os.geteuid() == 0, "needs root: delivery as user nobody")
@unittest.skipUnless(LIBFAKETIME, "libfaketime is not installed (apt-get install libfaketime)")
class ClockJumps(unittest.TestCase):
    def start(self):
        d = FakeClockDaemon(CONFIG, name="clock")
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        self.blocked = d.path("blocked")
        os.mkdir(self.blocked)
        os.chown(self.blocked, 0, 0)
        os.chmod(self.blocked, 0o755)
        self.maildir = os.path.join(self.blocked, "Maildir")
        return d

    def send(self, d):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("keeper@example.org", ["someone@localhost"], BODY), {})

    def tempfails(self, d, n, timeout):
        return d.wait_log(r"mda delivery .*to=someone@localhost .*result=TempFail", timeout=timeout, count=n)

    def waiting(self, d):
        """The one queued envelope as posternctl shows it; it is waiting."""
        q = postern.queue(d)
        self.assertEqual(len(q), 1, q)
        self.assertEqual(q[0]["state"], "waiting", q)
        return q[0]

    def unblock(self):
        nobody = pwd.getpwnam("nobody")
        os.chown(self.blocked, nobody.pw_uid, nobody.pw_gid)

    def delivered_once(self, d, timeout):
        """Wait for the delivery; then it is the only one, and nothing is left queued."""
        began = time.monotonic()
        files = d.wait_files(self.maildir, 1, timeout=timeout)
        took = time.monotonic() - began
        self.assertEqual(len(files), 1, d.log())
        self.assertIn("this message must arrive once", postern.read_bytes(files[0]).decode())
        self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        self.assertEqual(postern.queue(d), [])
        time.sleep(1)
        self.assertEqual(len(postern.maildir_new(self.maildir)), 1, "delivered more than once")
        self.assertEqual(len(re.findall(r"mda delivery .*result=Ok", d.log())), 1, d.log())
        return took

    def test_clock_set_forward(self):
        d = self.start()
        self.send(d)
        self.assertTrue(self.tempfails(d, 1, 10), d.log())
        # 2.5 hours on: retry 1 (due 10 s after arrival) comes, fails, and the
        # next slot of the schedule (10 s x 31^2 after arrival) is ten minutes away.
        d.set_offset(9000)
        self.assertTrue(self.tempfails(d, 2, 10 + SLACK), d.log())
        e = self.waiting(d)
        ahead = int(e["next-try"]) - d.fake_now()
        self.assertTrue(500 < ahead < 700, f"next try {ahead:.0f} s ahead: {e}")

        # An hour forward: the retry is due; it is tried within the timer's cap.
        self.unblock()
        d.set_offset(9000 + 3600)
        took = self.delivered_once(d, TIMER_CAP + SLACK)
        self.assertLess(took, TIMER_CAP + SLACK)
        self.assertTrue(d.wait_log(r"scheduler clock-jump seconds=36\d\d\b", timeout=1), d.log())

    def test_clock_set_back(self):
        d = self.start()
        self.send(d)
        self.assertTrue(self.tempfails(d, 1, 10), d.log())
        self.assertLess(int(self.waiting(d)["next-try"]) - d.fake_now(), 11)
        # A day back while retry 1 waits (10 s): the jump is noticed at the
        # timer, the retry moves back a day, is tried and fails; the next
        # one is one step (30 s) away on the new clock, not a day.
        d.set_offset(-86400)
        self.assertTrue(self.tempfails(d, 2, 10 + SLACK), d.log())
        self.assertTrue(d.wait_log(r"scheduler clock-jump seconds=-864\d\d\b", timeout=1), d.log())
        e = self.waiting(d)
        ahead = int(e["next-try"]) - d.fake_now()
        self.assertTrue(0 < ahead <= 31, f"next try {ahead:.0f} s ahead: {e}")
        self.unblock()
        self.delivered_once(d, 30 + SLACK)

    def test_clock_set_back_while_stopped(self):
        d = self.start()
        self.send(d)
        self.assertTrue(self.tempfails(d, 1, 10), d.log())
        d.stop()
        # Written to the spool: retry 1, due 10 s after arrival. Started
        # again a day earlier, the daemon holds it one step (10 s) away.
        d.set_offset(-86400)
        self.unblock()
        d.restart()
        self.assertTrue(d.wait_log(r"queue loaded envelopes=1\b"), d.log())
        e = self.waiting(d)
        ahead = int(e["next-try"]) - d.fake_now()
        self.assertTrue(0 < ahead <= 11, f"next try {ahead:.0f} s ahead: {e}")
        self.delivered_once(d, 10 + SLACK)


if __name__ == "__main__":
    postern.run_tests()
