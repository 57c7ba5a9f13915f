"""mbox delivery end to end: messages append to MBOXDIR/USER in order.

Each message in the mbox starts with a `From SENDER DATE` separator line,
carries Return-Path, Delivered-To and the daemon's Received: header, then the
message with LF line ends; a body line "From here" is quoted as ">From here"
(and ">From" becomes ">>From", mboxrd) so that it cannot split the mailbox.
"""

import grp
import os
import pwd
import re
import smtplib
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "m" mbox\n'
          'match from local for local action "m"\n')

# `From sender Www Mmm dd hh:mm:ss yyyy` (asctime form, as mail.local writes it).
FROM_LINE = r"From (?P<sender>\S+) \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
RECEIVED = (r"Received: from \S+ \(localhost \[127\.0\.0\.1\]\)\n\tby \S+ \(postern\) with ESMTP id (?P<id>\S+)\n"
            r"\tfor <root@localhost>;\n\t[^\n]+\n")


class MboxDelivery(unittest.TestCase):
    def send(self, d, sender, message):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.mail(sender)[0], 250)
            self.assertEqual(s.rcpt("root@localhost")[0], 250)
            code, text = s.data(message)
            self.assertEqual(code, 250, text)
            return re.fullmatch(rb"2\.0\.0 (\S+) Message accepted for delivery", text).group(1).decode()

    def test_two_messages_in_order_with_from_quoting(self):
        first = ("Subject: first\r\n"
                 "\r\n"
                 "From here on, a line that would split an mbox\r\n"
                 ">From already quoted once\r\n"
                 "not From at the start\r\n")
        second = ("Subject: second\r\n"
                  "\r\n"
                  "second body\r\n")
        with postern.Daemon(CONFIG, name="mbox") as d:
            mbox = os.path.join(d.mbox_dir, "root")
            id1 = self.send(d, "one@example.org", first)
            # The second message must not overtake the first: wait for it.
            self.assertTrue(d.wait_log(r"mda delivery .*to=root@localhost .*result=Ok"), d.log())
            id2 = self.send(d, "two@example.org", second)
            self.assertTrue(d.wait_log(r"mda delivery .*to=root@localhost .*result=Ok", count=2), d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
            data = postern.read_bytes(mbox).decode()

        expected_bodies = [
            ("one@example.org", id1,
             "Subject: first\n\n>From here on, a line that would split an mbox\n"
             ">>From already quoted once\nnot From at the start\n"),
            ("two@example.org", id2, "Subject: second\n\nsecond body\n"),
        ]
        pos = 0
        for sender, queue_id, body in expected_bodies:
            m = re.compile(FROM_LINE).match(data, pos)
            self.assertIsNotNone(m, f"no From_ line at offset {pos}:\n{data}")
            self.assertEqual(m.group("sender"), sender)
            pos = m.end()
            head = f"Return-Path: <{sender}>\nDelivered-To: root@localhost\n"
            self.assertEqual(data[pos:pos + len(head)], head, data)
            pos += len(head)
            r = re.compile(RECEIVED).match(data, pos)
            self.assertIsNotNone(r, data[pos:])
            self.assertEqual(r.group("id"), queue_id)
            pos = r.end()
            # The message, then the empty line that ends every mbox entry.
            self.assertEqual(data[pos:pos + len(body) + 1], body + "\n", data)
            pos += len(body) + 1
        self.assertEqual(pos, len(data), f"trailing bytes: {data[pos:]!r}")
        # Exactly two separators: nothing in the bodies starts a line with "From ".
        self.assertEqual(len(re.findall(r"^From ", data, re.M)), 2, data)


NEWUSER = f"ptmb{os.getpid() % 100000}"


@unittest.skipUnless(os.geteuid() == 0, "needs root: a real user and a root:mail folder")
class DebianMailSpool(unittest.TestCase):
    """Debian's /var/mail is root:mail 2775 and holds no mailbox for a new
    user: the first delivery makes one, owned by the user, group mail, 0600."""

    def setUp(self):
        subprocess.run(["userdel", NEWUSER], capture_output=True)  # left over by an interrupted run
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", NEWUSER],
                       check=True, capture_output=True)

    def tearDown(self):
        subprocess.run(["userdel", NEWUSER], capture_output=True)

    def test_first_delivery_creates_the_mailbox(self):
        mail_gid = grp.getgrnam("mail").gr_gid

        def prepare(folder):
            spool = os.path.join(folder, "mbox")
            os.chown(spool, 0, mail_gid)
            os.chmod(spool, 0o2775)

        with postern.Daemon(CONFIG, name="mbox-debian", prepare=prepare) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@example.org", [f"{NEWUSER}@localhost"],
                                            "Subject: first\r\n\r\nhello\r\n"), {})
            self.assertTrue(d.wait_log(rf"mda delivery .*to={NEWUSER}@localhost .*result=Ok"), d.log())
            mbox = os.path.join(d.mbox_dir, NEWUSER)
            st = os.stat(mbox)
            self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                             (pwd.getpwnam(NEWUSER).pw_uid, mail_gid, 0o600))
            data = postern.read_bytes(mbox).decode()
            self.assertRegex(data, "^" + FROM_LINE.replace("(?P<sender>\\S+)", "a@example.org"))
            self.assertTrue(data.endswith("Subject: first\n\nhello\n\n"), data)
            self.assertEqual(os.listdir(d.mbox_dir), [NEWUSER])  # no lock file left behind


if __name__ == "__main__":
    postern.run_tests()
