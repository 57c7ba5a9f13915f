"""Plain local delivery (no `user` option): recipients are system accounts.

A local part that is no system user is refused in the dialogue with
550 5.1.1 rather than accepted and bounced later; an existing user (root) is
accepted, also with a sub-address or in capitals, and gets the message.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

# Delivery into the test's folder, as the recipient.
WITH_PATH = ('action "l" maildir "@DIR@/mail/%{rcpt.user}"\n'
             'match from local for local action "l"\n')
# The default path (~/Maildir): only the dialogue is checked, nothing is sent.
DEFAULT_PATH = ('action "l" maildir\n'
                'match from local for local action "l"\n')


class UnknownUser(unittest.TestCase):
    def rcpt_replies(self, d, rcpts):
        with d.client() as c:
            self.assertEqual(c.cmd("EHLO client.example")[:4], "250 ")
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
            replies = {r: c.cmd(f"RCPT TO:<{r}>") for r in rcpts}
            self.assertEqual(c.cmd("RSET")[:4], "250 ")
            self.assertEqual(c.cmd("QUIT")[:4], "221 ")
        return replies

    def test_default_maildir_dialogue(self):
        with postern.Daemon(DEFAULT_PATH, name="unknown-default") as d:
            replies = self.rcpt_replies(d, ["nosuchuser@localhost", "root@localhost"])
            self.assertEqual(replies["nosuchuser@localhost"][:10], "550 5.1.1 ", replies)
            self.assertIn("<nosuchuser@localhost>", replies["nosuchuser@localhost"])
            self.assertEqual(replies["root@localhost"][:10], "250 2.1.5 ", replies)
            self.assertEqual(d.queue_entries(), [])

    def test_unknown_refused_known_delivered(self):
        with postern.Daemon(WITH_PATH, name="unknown") as d:
            replies = self.rcpt_replies(d, ["nosuchuser@localhost", "NoSuchUser+tag@localhost",
                                            "root+tag@localhost", "ROOT@localhost"])
            self.assertEqual(replies["nosuchuser@localhost"][:10], "550 5.1.1 ", replies)
            self.assertEqual(replies["NoSuchUser+tag@localhost"][:10], "550 5.1.1 ", replies)
            self.assertEqual(replies["root+tag@localhost"][:10], "250 2.1.5 ", replies)
            self.assertEqual(replies["ROOT@localhost"][:10], "250 2.1.5 ", replies)

            # A transaction with a refused and an accepted recipient: only root's copy.
            with d.client() as c:
                c.cmd("EHLO client.example")
                self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
                self.assertEqual(c.cmd("RCPT TO:<nosuchuser@localhost>")[:10], "550 5.1.1 ")
                self.assertEqual(c.cmd("RCPT TO:<root@localhost>")[:10], "250 2.1.5 ")
                self.assertEqual(c.cmd("DATA")[:4], "354 ")
                c.send("Subject: for root\r\n\r\nhello root\r\n.\r\n")
                self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
                c.cmd("QUIT")
            files = d.wait_files(d.path("mail", "root"), 1)
            self.assertEqual(len(files), 1)
            data = postern.read_bytes(files[0]).decode()
            self.assertTrue(data.startswith("Return-Path: <a@example.org>\nDelivered-To: root@localhost\n"), data)
            self.assertTrue(data.endswith("\nSubject: for root\n\nhello root\n"), data)
            self.assertEqual(os.stat(files[0]).st_uid, 0)
            time.sleep(0.3)
            self.assertEqual(sorted(os.listdir(d.path("mail"))), ["root"])
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())


if __name__ == "__main__":
    postern.run_tests()
