"""`posternctl show status` against a real posternd with two listeners and
filters: the version CMake gives, the uptime, every listener with its flags
and filters, each filter's state (running with its pid; restarting, with
the backoff left, after its process is killed; running again with a new
pid), the paused parts after `pause mda`, and the queue (one message held by
the paused mda, its age growing). Text and --json both, the JSON keys as
posternctl(8) lists them.
"""

import json
import os
import re
import signal
import stat
import smtplib
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
import test_filters as tf  # noqa: E402  (its filter helpers; a module, so its tests are not collected here)

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")

LISTENER_KEYS = ["address", "port", "path", "tls", "tls-require", "smtps", "auth", "auth-optional", "filter", "filters"]
FILTER_KEYS = ["name", "kind", "state", "pid", "restart-in-ms"]
STATUS_KEYS = ["version", "uptime", "mda", "mta", "smtp", "queue", "listeners", "filters"]


def project_version():
    with open(os.path.join(postern.SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(postern VERSION (\S+)", f.read()).group(1)


def prepare(folder):
    tf.prepare(folder)
    postern.make_self_signed_pki(os.path.join(folder, "server.crt"), os.path.join(folder, "server.key"),
                                 "mail.test")


class ShowStatus(unittest.TestCase):
    def setUp(self):
        self.port2 = postern.free_port()
        # The harness's listener is filtered by the process filter "rec"; the
        # second offers STARTTLS and AUTH, filtered by a chain of "rec" and a
        # built-in filter.
        head = ('pki mail.test cert "@DIR@/server.crt"\npki mail.test key "@DIR@/server.key"\n' +
                tf.proc_exec("rec") +
                'filter "nospam" phase mail-from match mail-from { "spam@example.test" } reject "550 go away"\n'
                'filter "both" chain { "rec", "nospam" }\n'
                f'listen on 127.0.0.1 port {self.port2} hostname mail.test tls auth-optional filter "both"\n')
        config = ('action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                  'match from any for any action "local"\n')
        self.d = postern.Daemon(config, name="ctl-status", prepare=prepare, before_listen=head,
                                listen_options='filter "rec"')
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def ctl(self, *args):
        r = subprocess.run([POSTERNCTL, "-s", self.d.path("run", "control.sock"), *args], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual((r.returncode, r.stderr), (0, ""), f"posternctl {' '.join(args)}: {r.stdout}")
        return r.stdout

    def status(self):
        return json.loads(self.ctl("--json", "show", "status"))

    def filter_state(self, name):
        return next(f for f in self.status()["filters"] if f["name"] == name)

    def wait_filter(self, name, predicate, timeout=10.0):
        """The filter's entry once predicate holds (polled), else fails."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.filter_state(name)
            seen.append(f)
            if predicate(f):
                return f
            time.sleep(0.05)
        self.fail(f"filter {name} never reached the state; last seen {seen[-3:]}\n{self.d.log()}")

    def test_listeners_filters_pause_and_queue(self):
        s = self.status()
        self.assertEqual(list(s.keys()), STATUS_KEYS)
        self.assertEqual(s["version"], project_version())
        self.assertIsInstance(s["uptime"], int)
        self.assertGreaterEqual(s["uptime"], 0)
        self.assertEqual((s["mda"], s["mta"], s["smtp"]), ("running", "running", "running"))
        self.assertEqual(s["queue"], {"messages": 0, "envelopes": 0, "oldest-age": None})

        # Both listeners as configured, and the local socket OpenSMTPD (and
        # so postern) always has.
        for l in s["listeners"]:
            self.assertEqual(list(l.keys()), LISTENER_KEYS)
        by_port = {l["port"]: l for l in s["listeners"]}
        self.assertEqual(by_port[self.port2],
                         {"address": "127.0.0.1", "port": self.port2, "path": None, "tls": True, "tls-require": False,
                          "smtps": False, "auth": False, "auth-optional": True, "filter": "both",
                          "filters": ["rec", "nospam"]})
        self.assertEqual(by_port[self.d.port],
                         {"address": "127.0.0.1", "port": self.d.port, "path": None, "tls": False, "tls-require": False,
                          "smtps": False, "auth": False, "auth-optional": False, "filter": "rec",
                          "filters": ["rec"]})
        local = [l for l in s["listeners"] if l["port"] is None]
        self.assertEqual([(l["address"], l["filters"]) for l in local], [("socket", [])])
        self.assertTrue(stat.S_ISSOCK(os.stat(local[0]["path"]).st_mode), local)
        self.assertEqual(os.path.dirname(local[0]["path"]), self.d.path("run"))
        self.assertEqual(len(s["listeners"]), 3, s["listeners"])

        # Each filter once, in the order the listeners name them.
        self.assertEqual([f["name"] for f in s["filters"]], ["rec", "nospam"])
        for f in s["filters"]:
            self.assertEqual(list(f.keys()), FILTER_KEYS)
        rec = self.wait_filter("rec", lambda f: f["state"] == "running")
        self.assertEqual(rec["kind"], "proc")
        self.assertIsNone(rec["restart-in-ms"])
        old_pid = rec["pid"]
        self.assertIsInstance(old_pid, int)
        with open(f"/proc/{old_pid}/cmdline", "rb") as f:
            self.assertIn(b"record_filter.py", f.read())
        self.assertEqual(s["filters"][1],
                         {"name": "nospam", "kind": "builtin", "state": "running", "pid": None,
                          "restart-in-ms": None})

        text = self.ctl("show", "status")
        self.assertEqual(text.splitlines()[0], f"version: {project_version()}")
        self.assertRegex(text, r"\nuptime: (\d+[dhm] )*\d+s\nmda: running\nmta: running\nsmtp: running\n"
                               r"queue: 0 messages, 0 envelopes\n")
        self.assertIn(f"\nlistener 127.0.0.1 port {self.d.port}: filters rec\n", text)
        self.assertIn(f"\nlistener 127.0.0.1 port {self.port2}: tls auth-optional; filters rec, nospam\n", text)
        self.assertIn(f"\nlistener socket {local[0]['path']}\n", text)
        self.assertIn(f"\nfilter rec: running (pid {old_pid})\n", text)
        self.assertIn("\nfilter nospam: running (built-in)\n", text)

        # Killed: restarting, with the backoff left (the first is 1 s), no
        # pid; then running again as a new process.
        os.kill(old_pid, signal.SIGKILL)
        rec = self.wait_filter("rec", lambda f: f["state"] == "restarting")
        self.assertIsNone(rec["pid"])
        self.assertTrue(0 <= rec["restart-in-ms"] <= 1000, rec)
        rec = self.wait_filter("rec", lambda f: f["state"] == "running")
        self.assertNotEqual(rec["pid"], old_pid)
        self.assertIsNone(rec["restart-in-ms"])

        # Paused: the mda, and only it.
        self.assertEqual(self.ctl("pause", "mda"), "mda paused\n")
        s = self.status()
        self.assertEqual((s["mda"], s["mta"], s["smtp"]), ("paused", "running", "running"))
        self.assertIn("\nmda: paused\nmta: running\nsmtp: running\n", self.ctl("show", "status"))

        # A message held by the paused mda: one message, one envelope, its
        # age counted from its reception.
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=20) as c:
            self.assertEqual(c.sendmail("alice@example.test", ["bob@localhost"], "Subject: held\r\n\r\nx\r\n"), {})
        self.assertTrue(postern.wait_until(lambda: self.status()["queue"]["oldest-age"] not in (None, 0), 5),
                        self.status())
        s = self.status()
        self.assertEqual(s["queue"]["messages"], 1)
        self.assertEqual(s["queue"]["envelopes"], 1)
        self.assertGreater(s["queue"]["oldest-age"], 0)
        self.assertRegex(self.ctl("show", "status"), r"\nqueue: 1 message, 1 envelope, oldest \d+s\n")
        self.assertEqual(os.listdir(self.d.path("mail")), [])

        # Resumed: delivered, the queue empty again.
        self.ctl("resume", "mda")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "bob"), 1)), 1, self.d.log())
        self.assertTrue(postern.wait_until(lambda: self.status()["queue"]["envelopes"] == 0, 10), self.status())
        s = self.status()
        self.assertEqual((s["mda"], s["queue"]), ("running", {"messages": 0, "envelopes": 0, "oldest-age": None}))


class FilterThatNeverStarts(unittest.TestCase):
    def test_restarting_with_a_growing_backoff(self):
        head = tf.proc_exec("dead", "--die-handshake")
        config = 'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\nmatch from any for any action "local"\n'
        with postern.Daemon(config, name="ctl-status-dead", prepare=tf.prepare, before_listen=head,
                            listen_options='filter "dead"') as d:
            def state():
                r = subprocess.run([POSTERNCTL, "-s", d.path("run", "control.sock"), "--json", "show", "status"],
                                   capture_output=True, text=True, timeout=20)
                return json.loads(r.stdout)["filters"][0]
            # Each failure doubles the wait: after the second, more than 1 s is
            # left. One snapshot a look: the filter may start again between two.
            def restarting_long():
                f = state()
                return f if f["state"] == "restarting" and (f["restart-in-ms"] or 0) > 1000 else None

            f = postern.wait_until(restarting_long, 15)
            self.assertTrue(f, f"{state()}\n{d.log()}")
            self.assertEqual((f["name"], f["kind"], f["pid"]), ("dead", "proc", None))
            self.assertLessEqual(f["restart-in-ms"], 60000)


if __name__ == "__main__":
    postern.run_tests()
