"""posternd run from a folder only root can enter (a clone under /root).

The built binaries and plugins are copied below a fresh 0700 folder, laid
out as a build tree (CMakeCache.txt beside posternd marks one, so the
plugins are found in plugins/), and the spool, control socket and pid file
live there too. Started as root, the daemon must still work: its _postern
child enters the spool before it drops root, and delivery agents are started
as root and become the recipient (or _postern, for relaying) only once their
plugin is loaded. A local message to a real user and a relayed one must
arrive.
"""

import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

USER = f"ptco{os.getpid() % 100000}"


class PrivateTree(postern.Daemon):
    """A Daemon whose binaries, spool and state sit below a 0700 folder."""

    def __init__(self, config_text, tree):
        super().__init__(config_text, name="private")
        self.tree = tree

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="state-", dir=self.tree)  # 0700, inside the 0700 tree
        try:
            self._start_with_free_port()
        except BaseException:
            self._cleanup_dir_on_failure()
            raise
        return self

    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.tree, "posternd"), "-d", "-f", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir, start_new_session=True)
        self.session = self.proc.pid
        self._wait_ready()


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon drops to _postern and delivers as a user")
class PrivateCheckout(unittest.TestCase):
    def setUp(self):
        # Each step registers its own undoing, so a failure half-way leaves nothing.
        self.tree = tempfile.mkdtemp(prefix="postern-private-")  # mode 0700
        self.addCleanup(shutil.rmtree, self.tree, ignore_errors=True)
        self.assertEqual(os.stat(self.tree).st_mode & 0o777, 0o700)
        self.home = tempfile.mkdtemp(prefix="postern-home-")
        self.addCleanup(shutil.rmtree, self.home, ignore_errors=True)
        os.chmod(self.home, 0o755)
        subprocess.run(["userdel", USER], capture_output=True)  # left over by an interrupted run
        subprocess.run(["useradd", "--no-create-home", "--home-dir", os.path.join(self.home, USER),
                        "--shell", "/usr/sbin/nologin", USER], check=True, capture_output=True)
        self.addCleanup(subprocess.run, ["userdel", USER], capture_output=True)
        pw = pwd.getpwnam(USER)
        os.mkdir(os.path.join(self.home, USER), 0o700)
        os.chown(os.path.join(self.home, USER), pw.pw_uid, pw.pw_gid)
        postern.copy_build(self.tree)

    def test_local_and_relayed_mail_arrive(self):
        with SmtpSink() as sink:
            config = ('action "local" maildir "~/Maildir"\n'
                      f'action "out" relay host smtp://127.0.0.1:{sink.port}\n'
                      'match from local for local action "local"\n'
                      'match from local for any action "out"\n')
            with PrivateTree(config, self.tree) as d:
                with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                    self.assertEqual(s.sendmail("a@localhost", [f"{USER}@localhost"],
                                                "Subject: local\r\n\r\nto a user\r\n"), {})
                    self.assertEqual(s.sendmail("a@localhost", ["bob@far.test"],
                                                "Subject: relayed\r\n\r\nto a peer\r\n"), {})
                maildir = os.path.join(self.home, USER, "Maildir")
                files = d.wait_files(maildir, 1, timeout=20)
                self.assertEqual(len(files), 1, d.log())
                self.assertIn(b"to a user", postern.read_bytes(files[0]))
                self.assertEqual(os.stat(files[0]).st_uid, pwd.getpwnam(USER).pw_uid)
                self.assertTrue(sink.wait_messages(1, timeout=20), d.log())
                self.assertIn(b"to a peer", sink.messages()[0])
                self.assertTrue(d.wait_queue_empty(10), d.log())


if __name__ == "__main__":
    postern.run_tests()
