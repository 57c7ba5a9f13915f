"""posternctl against the real daemon: every command changes what it does,
checked through delivered mail (or mail that is not delivered).

A delivery as user nobody into a root-owned folder fails temporarily, so
the envelope waits in the queue; handing the folder to nobody makes it
deliverable, and `schedule` must then deliver it at once instead of at the
next retry (40 s later).

The harness's configuration moves the control socket into the test's
folder, so ConfigFile checks that `posternctl -f CONFIG` finds it there, that
a broken configuration is reported as file:line:col, and that without -s or
-f posternctl reads the installed configuration (made visible at its
compiled-in path in a private mount namespace, so the machine's own /etc is
never touched).
"""

import json
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
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


# What `show queue` prints for each envelope, in this order (docs/posternctl.8).
QUEUE_KEYS = ["id", "msgid", "sender", "rcpt", "dest", "action", "user", "state", "ctime", "expire",
              "last-try", "next-try", "attempts", "last-error"]


def run_ctl(*args, env_socket=None):
    env = {k: v for k, v in os.environ.items() if k != "POSTERN_CONTROL"}
    if env_socket:
        env["POSTERN_CONTROL"] = env_socket
    return subprocess.run([POSTERNCTL, *args], capture_output=True, text=True, timeout=20, env=env)


def installed_config_path():
    """The configuration posternctl reads without -s or -f, from its --help."""
    r = run_ctl("--help")
    m = re.search(r"the control socket of\n\s+(/\S+) when it exists", r.stdout)
    return m.group(1) if m else None


# Folders a test must never hide, even inside its own mount namespace.
_PRECIOUS = {"/", "/etc", "/usr", "/usr/local", "/var", "/run", "/opt", "/tmp", "/home", "/root"}


class ConfigFile(unittest.TestCase):
    """posternctl -f CONFIG, and the installed configuration by default."""

    def setUp(self):
        # The mda is paused, so a message stays in the queue without needing
        # another user to fail a delivery.
        self.d = postern.Daemon('action "l" maildir "@DIR@/mail/%{user.username}"\n'
                                'match from local for local action "l"\n', name="ctlf")
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.socket = self.d.path("run", "control.sock")
        self.assertNotIn("/run/postern/", self.socket)  # the config moves it

    def queue_one(self):
        r = run_ctl("-f", self.d.conf_path, "pause", "mda")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "mda paused\n", ""))
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@localhost", ["root@localhost"], "Subject: q\r\n\r\nx\r\n"), {})

    def test_dash_f_finds_the_moved_socket(self):
        self.queue_one()
        r = run_ctl("-f", self.d.conf_path, "show", "queue")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        fields = lines[0].split("|")
        self.assertEqual(len(fields), len(QUEUE_KEYS), lines[0])
        self.assertEqual(fields[2:8], ["sender@localhost", "root@localhost", "root@localhost", "l", "root", "ready"])
        # The same as with -s, and the same envelope as in JSON.
        self.assertEqual(run_ctl("-s", self.socket, "show", "queue").stdout, r.stdout)
        j = json.loads(run_ctl("-f", self.d.conf_path, "--json", "show", "queue").stdout)
        self.assertEqual(list(j[0].keys()), QUEUE_KEYS)
        self.assertEqual([j[0][k] for k in QUEUE_KEYS], fields)
        # -f is explicit: it wins over POSTERN_CONTROL.
        r = run_ctl("-f", self.d.conf_path, "show", "status", env_socket=self.d.path("nothere.sock"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\nmda: paused\nmta: running\nsmtp: running\nqueue: 1 message, 1 envelope, oldest ", r.stdout)

    def test_broken_config_is_reported_with_its_place(self):
        broken = self.d.path("broken.conf")
        with open(self.d.conf_path) as f:
            lines = f.read().splitlines()
        lines.insert(2, "frobnicate all the things")
        with open(broken, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = run_ctl("-f", broken, "show", "queue")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertRegex(r.stderr, rf"^{re.escape(broken)}:3:1: unknown directive 'frobnicate'")
        self.assertIn(f"posternctl: cannot read the control socket from {broken}; fix it, or give -s SOCKET",
                      r.stderr)
        self.assertNotIn("control request", self.d.log())  # nothing reached the daemon

    @unittest.skipUnless(os.geteuid() == 0, "needs root: a private mount namespace")
    def test_installed_config_is_read_without_s_or_f(self):
        default = installed_config_path()
        self.assertIsNotNone(default, run_ctl("--help").stdout)
        folder = os.path.dirname(default)
        over = folder  # the nearest existing folder: mounted over, in our namespace only
        while not os.path.isdir(over):
            over = os.path.dirname(over)
        if over in _PRECIOUS:
            self.skipTest(f"{default}: would have to hide {over}")
        if subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot make a mount namespace here")
        self.queue_one()

        stage = tempfile.mkdtemp(prefix="ctl-etc-")
        self.addCleanup(shutil.rmtree, stage, True)
        inside = os.path.join(stage, os.path.relpath(folder, over))
        os.makedirs(inside, exist_ok=True)

        def ctl_in_namespace(*args):
            script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
            env = {k: v for k, v in os.environ.items() if k != "POSTERN_CONTROL"}
            return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                   stage, over, POSTERNCTL, *args], capture_output=True, text=True, timeout=20,
                                  env=env)

        shutil.copy(self.d.conf_path, os.path.join(inside, os.path.basename(default)))
        r = ctl_in_namespace("show", "queue")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, run_ctl("-s", self.socket, "show", "queue").stdout)
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)

        # The environment is more explicit than the installed file.
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            'mount --bind "$1" "$2" && POSTERN_CONTROL="$3" exec "$4" show queue', "sh",
                            stage, over, self.d.path("nothere.sock"), POSTERNCTL],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no socket at {self.d.path('nothere.sock')})", r.stderr)

        # A broken installed file is reported, not silently replaced by the
        # default socket.
        with open(os.path.join(inside, os.path.basename(default)), "a") as f:
            f.write("frobnicate\n")
        r = ctl_in_namespace("show", "queue")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(default)}:\d+:1: unknown directive 'frobnicate'")

        # No installed file: the daemon's default socket, as before.
        os.remove(os.path.join(inside, os.path.basename(default)))
        if not os.path.exists("/run/postern/control.sock"):
            r = ctl_in_namespace("show", "queue")
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr,
                             "posternctl: posternd does not seem to be running (no socket at /run/postern/control.sock)\n")


if __name__ == "__main__":
    postern.run_tests()
