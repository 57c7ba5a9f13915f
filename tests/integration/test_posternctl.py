"""posternctl against the real daemon: every command changes what it does,
checked through delivered mail (or mail that is not delivered).

A delivery as user nobody into a root-owned folder fails temporarily, so
the envelope waits in the queue; handing the folder to nobody makes it
deliverable, and `schedule` must then deliver it at once instead of at the
next retry (40 s later).
"""

import json
import os
import pwd
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")

CONFIG = ('table aliases file:@DIR@/aliases\n'
          'action "l" maildir "@DIR@/mail/%{user.username}" alias <aliases>\n'
          'action "b" maildir "@DIR@/blocked/Maildir" user nobody\n'
          'match from local for rcpt-to "stuck@localhost" action "b"\n'
          'match from local for local action "l"\n')


def prepare(folder):
    with open(os.path.join(folder, "aliases"), "w") as f:
        f.write("team: root\n")
    os.chmod(os.path.join(folder, "aliases"), 0o644)
    os.mkdir(os.path.join(folder, "blocked"), 0o755)
    os.mkdir(os.path.join(folder, "files"))
    os.chmod(os.path.join(folder, "files"), 0o1777)


@unittest.skipUnless(os.geteuid() == 0, "needs root: delivery as user nobody")
class Posternctl(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="ctl", prepare=prepare)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.socket = self.d.path("run", "control.sock")

    def ctl(self, *args, expect=0):
        r = subprocess.run([POSTERNCTL, "-s", self.socket, *args], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, expect, f"posternctl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    def send(self, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@localhost", [rcpt], f"Subject: {subject}\r\n\r\nx\r\n"), {})

    def queue(self):
        return json.loads(self.ctl("--json", "show", "queue"))

    def test_show_queue_then_schedule_delivers_at_once(self):
        self.send("stuck@localhost", "stuck")
        self.assertTrue(self.d.wait_log(r"mda delivery .*result=TempFail"), self.d.log())
        q = self.queue()
        self.assertEqual(len(q), 1, q)
        self.assertEqual(q[0]["rcpt"], "stuck@localhost")
        self.assertEqual(q[0]["sender"], "sender@localhost")
        self.assertEqual(q[0]["attempts"], "1")
        self.assertEqual(q[0]["state"], "waiting")
        self.assertIn("maildir", q[0]["last-error"])
        text = self.ctl("show", "queue")
        self.assertIn(q[0]["id"], text)

        nobody = pwd.getpwnam("nobody")
        os.chown(self.d.path("blocked"), nobody.pw_uid, nobody.pw_gid)
        self.assertEqual(self.ctl("schedule", "all"), "1 envelope scheduled\n")
        files = self.d.wait_files(self.d.path("blocked", "Maildir"), 1, timeout=5)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertTrue(self.d.wait_queue_empty(), self.d.queue_entries())
        self.assertEqual(self.queue(), [])

    def test_remove_drops_without_delivery(self):
        self.send("stuck@localhost", "doomed")
        self.assertTrue(self.d.wait_log(r"mda delivery .*result=TempFail"), self.d.log())
        msgid = self.queue()[0]["msgid"]
        self.assertEqual(self.ctl("remove", msgid), "1 envelope removed\n")
        self.assertTrue(self.d.wait_log(r"queue remove .*stat=\"Removed by administrator\""), self.d.log())
        self.assertTrue(self.d.wait_queue_empty(), self.d.queue_entries())
        self.assertEqual(self.queue(), [])
        self.ctl("show", "message", msgid, expect=1)

    def test_pause_and_resume_mda(self):
        self.ctl("pause", "mda")
        self.assertIn("paused", self.ctl("show", "status"))
        self.send("root@localhost", "held")
        q = self.queue()
        self.assertEqual([e["state"] for e in q], ["ready"])
        self.assertIn("Subject: held", json.loads(self.ctl("--json", "show", "message", q[0]["msgid"]))["text"])
        self.assertEqual(postern.maildir_new(self.d.path("mail", "root")), [])
        self.ctl("resume", "mda")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "root"), 1)), 1, self.d.log())

    def test_pause_and_resume_smtp(self):
        self.ctl("pause", "smtp")
        with self.d.client() as c:
            self.assertEqual(c.banner[0], 421, c.banner)
            self.assertTrue(c.banner[1][0].startswith("4.3.2 "), c.banner)
        self.ctl("resume", "smtp")
        with self.d.client() as c:
            self.assertEqual(c.banner[0], 220, c.banner)

    def test_update_table_changes_routing(self):
        archive = self.d.path("files", "team.mbox")
        self.send("team@localhost", "before")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "root"), 1)), 1, self.d.log())
        with open(self.d.path("aliases"), "w") as f:
            f.write(f"team: root, {archive}\n")
        self.send("team@localhost", "not reloaded yet")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "root"), 2)), 2, self.d.log())
        self.assertFalse(os.path.exists(archive))
        self.ctl("update", "table", "aliases")
        self.send("team@localhost", "after the reload")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "root"), 3)), 3, self.d.log())
        self.assertTrue(postern.wait_until(lambda: os.path.exists(archive), 10), self.d.log())
        self.assertIn(b"Subject: after the reload", postern.read_bytes(archive))
        self.ctl("update", "table", "nosuchtable", expect=1)

    def test_stats_and_errors(self):
        self.send("root@localhost", "counted")
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "root"), 1)), 1)
        self.assertTrue(postern.wait_until(lambda: "scheduler.delivery.ok=1" in self.ctl("show", "stats"), 5))
        self.ctl("frobnicate", expect=2)
        r = subprocess.run([POSTERNCTL, "-s", self.d.path("nothere.sock"), "show", "queue"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not seem to be running", r.stderr)


if __name__ == "__main__":
    postern.run_tests()
