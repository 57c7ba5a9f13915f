"""Routing through aliases, virtual domains and a userbase, with the real daemon.

- aliases(5): to a system user, to a file (mbox format), to a command;
- virtual domain with a catch-all, mapped to userbase accounts that exist
  nowhere but in the userbase table: each receives into its own maildir, as
  its own uid;
- unknown local and virtual users are refused at RCPT, nothing is queued.
"""

import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('table aliases file:@DIR@/aliases\n'
          'table vusers file:@DIR@/vusers\n'
          'table ubase file:@DIR@/userbase\n'
          'action "local" maildir "@DIR@/mail/%{user.username}" alias <aliases>\n'
          'action "virt" maildir "@DIR@/vmail/%{user.username}" virtual <vusers> userbase <ubase>\n'
          'match from any for domain "virt.test" action "virt"\n'
          'match from local for local action "local"\n')


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as other uids")
class Routing(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="routing", prepare=self.write_tables)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    @staticmethod
    def write_tables(folder):
        for sub, mode in (("files", 0o1777), ("vmail", 0o1777), ("home", 0o755)):
            os.mkdir(os.path.join(folder, sub))
            os.chmod(os.path.join(folder, sub), mode)
        files = os.path.join(folder, "files")
        write(os.path.join(folder, "aliases"),
              "# system aliases\n"
              "postmaster: root\n"
              f"team: root, {files}/team.mbox, |/usr/bin/tee {files}/pipe.out\n"
              "loop1: loop2\n"
              "loop2: loop1\n")
        write(os.path.join(folder, "vusers"),
              "alice@virt.test alice\n"
              "bob@virt.test bob\n"
              "@virt.test alice\n")
        write(os.path.join(folder, "userbase"),
              f"alice 4001:4001:{folder}/home/alice\n"
              f"bob 4002:4002:{folder}/home/bob\n")

    def send(self, rcpts, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            refused = s.sendmail("sender@localhost", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n")
            self.assertEqual(refused, {})

    def only_file(self, maildir, n=1):
        files = self.d.wait_files(maildir, n)
        self.assertEqual(len(files), n, self.d.log())
        return files

    def test_alias_to_user_file_and_command(self):
        self.send(["postmaster@localhost"], "to postmaster")
        root_mail = self.d.path("mail", "root")
        self.only_file(root_mail)

        self.send(["team@localhost"], "to the team")
        files = self.only_file(root_mail, 2)
        self.assertTrue(any(b"Subject: to the team" in postern.read_bytes(f) for f in files))

        mbox = self.d.path("files", "team.mbox")
        pipe = self.d.path("files", "pipe.out")
        self.assertTrue(postern.wait_until(lambda: os.path.exists(mbox) and os.path.exists(pipe), 10), self.d.log())
        self.assertTrue(postern.wait_until(lambda: b"hello" in postern.read_bytes(pipe), 5), self.d.log())
        box = postern.read_bytes(mbox)
        self.assertTrue(box.startswith(b"From sender@localhost "), box[:80])
        self.assertIn(b"Subject: to the team", box)
        piped = postern.read_bytes(pipe)
        self.assertTrue(piped.startswith(b"Return-Path: <sender@localhost>\nDelivered-To: team@localhost\n"), piped)
        # Files and commands of an alias that is no user run as nobody, never root.
        nobody = 65534
        self.assertEqual(os.stat(mbox).st_uid, nobody)
        self.assertEqual(os.stat(pipe).st_uid, nobody)
        self.assertTrue(self.d.wait_queue_empty(), self.d.queue_entries())

    def test_virtual_users_receive_as_their_own_uid(self):
        self.send(["alice@virt.test"], "for alice")
        self.send(["bob@virt.test"], "for bob")
        self.send(["whoever@virt.test"], "caught")
        alice = self.only_file(self.d.path("vmail", "alice"), 2)
        bob = self.only_file(self.d.path("vmail", "bob"))
        for f in alice:
            self.assertEqual(os.stat(f).st_uid, 4001)
        self.assertEqual(os.stat(bob[0]).st_uid, 4002)
        self.assertEqual(sorted(b"caught" in postern.read_bytes(f) for f in alice), [False, True])

    def test_unknown_users_and_loops_refused_at_rcpt(self):
        with self.d.client() as c:
            self.assertTrue(c.cmd("EHLO client.example").startswith("250"))
            self.assertTrue(c.cmd("MAIL FROM:<sender@localhost>").startswith("250"))
            self.assertEqual(c.cmd("RCPT TO:<nosuchuser@localhost>")[:10], "550 5.1.1 ")
            self.assertEqual(c.cmd("RCPT TO:<loop1@localhost>")[:10], "550 5.2.4 ")
            self.assertEqual(c.cmd("RCPT TO:<root@localhost>")[:10], "250 2.1.5 ")
            c.cmd("RSET")
            c.cmd("QUIT")
        self.assertEqual(self.d.queue_entries(), [])


if __name__ == "__main__":
    postern.run_tests()
