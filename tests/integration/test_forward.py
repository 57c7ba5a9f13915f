"""~/.forward and the forward-only action, end to end with a daemon started as
root (the unprivileged process asks its root parent to read users' forward
files, in homes it cannot enter: mode 0700).

- A .forward listing another local address and the user's own name: both
  maildirs get the message.
- A |command line runs as the user (the file it writes is theirs).
- A group-writable .forward is ignored with a log line; the user gets the mail.
- forward-only: a user without .forward is refused with 451 at RCPT; with one
  listing an address, the mail goes there.
"""

import os
import pwd
import smtplib
import subprocess
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

USERS = ("pfwdalice", "pfwdbob", "pfwdcarol")

CONFIG = ('action "local" maildir\n'
          'action "fo" forward-only\n'
          'match from local for rcpt-to "pfwdcarol@localhost" action "fo"\n'
          'match from local for local action "local"\n')


def send(d, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text
        s.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
        return code, text


@unittest.skipUnless(os.geteuid() == 0, "needs root: it creates users and starts a split daemon")
class Forward(unittest.TestCase):
    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="postern-fwd-")
        os.chmod(self.top, 0o755)
        for u in USERS:
            subprocess.run(["userdel", u], capture_output=True)  # left over by an interrupted run
            home = os.path.join(self.top, u)
            subprocess.run(["useradd", "--create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", u],
                           check=True, capture_output=True)
            os.chmod(home, 0o700)

    def tearDown(self):
        for u in USERS:
            subprocess.run(["userdel", u], capture_output=True)
        shutil.rmtree(self.top, ignore_errors=True)

    def home(self, user):
        return os.path.join(self.top, user)

    def forward(self, user, text, mode=0o644):
        path = os.path.join(self.home(user), ".forward")
        with open(path, "w") as f:
            f.write(text)
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def test_forward_to_another_user_and_keep_a_copy_and_a_command(self):
        self.forward("pfwdalice", "# alice's forwards\npfwdbob@localhost, pfwdalice\n"
                                  f'"|/usr/bin/tee {self.home("pfwdalice")}/piped"\n')
        with postern.Daemon(CONFIG, name="forward") as d:
            self.assertEqual(send(d, "pfwdalice@localhost", "hello")[0], 250)
            self.assertTrue(d.wait_files(self.maildir("pfwdbob"), 1), d.log())
            self.assertTrue(d.wait_files(self.maildir("pfwdalice"), 1), d.log())
            piped = os.path.join(self.home("pfwdalice"), "piped")
            self.assertTrue(postern.wait_until(lambda: os.path.exists(piped), 10), d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        for user in ("pfwdbob", "pfwdalice"):
            [name] = postern.maildir_new(self.maildir(user))
            data = postern.read_bytes(os.path.join(self.maildir(user), "new", name))
            self.assertIn(b"body of hello", data)
        self.assertIn(b"body of hello", postern.read_bytes(piped))
        # The command ran as alice, not root and not _postern.
        self.assertEqual(os.stat(piped).st_uid, pwd.getpwnam("pfwdalice").pw_uid)

    def test_group_writable_forward_is_ignored_and_logged(self):
        self.forward("pfwdalice", "pfwdbob@localhost\n", mode=0o664)
        with postern.Daemon(CONFIG, name="forward") as d:
            self.assertEqual(send(d, "pfwdalice@localhost", "unsafe")[0], 250)
            self.assertTrue(d.wait_files(self.maildir("pfwdalice"), 1), d.log())
            self.assertTrue(d.wait_log(r"smtp expand-warning rcpt=pfwdalice@localhost detail=\""
                                       + self.home("pfwdalice") + r"/\.forward ignored: group or world writable\""),
                            d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        self.assertFalse(os.path.exists(os.path.join(self.maildir("pfwdbob"), "new")))

    def test_forward_only(self):
        with postern.Daemon(CONFIG, name="forward") as d:
            code, text = send(d, "pfwdcarol@localhost", "nowhere")
            self.assertEqual(code, 451, text)
            self.assertIn(b"4.3.0", text)
            self.assertTrue(d.wait_log(r"has no \.forward, and the action is forward-only"), d.log())
            self.forward("pfwdcarol", "pfwdbob@localhost\n")
            self.assertEqual(send(d, "pfwdcarol@localhost", "onward")[0], 250)
            self.assertTrue(d.wait_files(self.maildir("pfwdbob"), 1), d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        self.assertFalse(os.path.exists(os.path.join(self.maildir("pfwdcarol"), "new")))


if __name__ == "__main__":
    postern.run_tests()
