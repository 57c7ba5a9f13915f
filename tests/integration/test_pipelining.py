"""PIPELINING (RFC 2920): commands sent in one write get their replies in order.

EHLO must advertise PIPELINING; MAIL, RCPT, RCPT, DATA in a single write get
250, 250, 250, 354; the body and QUIT in one write get 250 and 221; a whole
transaction in one write works as well; every recipient gets its copy.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from local for local action "l"\n')


class Pipelining(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(CONFIG, name="pipelining").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_ehlo_advertises_pipelining(self):
        with self.d.client() as c:
            self.assertEqual(c.banner[0], 220)
            c.send("EHLO client.example\r\n")
            code, lines = c.reply()
            self.assertEqual(code, 250)
            self.assertIn("PIPELINING", lines[1:])

    def test_envelope_in_one_write_then_body_and_quit(self):
        with self.d.client() as c:
            c.send("EHLO client.example\r\n")
            self.assertEqual(c.reply()[0], 250)
            c.send("MAIL FROM:<p@example.org>\r\n"
                   "RCPT TO:<pipe1@localhost>\r\n"
                   "RCPT TO:<pipe2@localhost>\r\n"
                   "DATA\r\n")
            replies = [c.reply_line() for _ in range(4)]
            self.assertEqual(replies[0], "250 2.1.0 Ok")
            self.assertTrue(replies[1].startswith("250 2.1.5 "), replies)
            self.assertTrue(replies[2].startswith("250 2.1.5 "), replies)
            self.assertTrue(replies[3].startswith("354 "), replies)
            c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
            self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
            self.assertEqual(c.reply_line(), "221 2.0.0 Bye")
            self.assertTrue(c.closed_by_peer())
        for user in ("pipe1", "pipe2"):
            files = self.d.wait_files(self.d.path("mail", user), 1)
            self.assertEqual(len(files), 1, user)
            data = postern.read_bytes(files[0]).decode()
            self.assertTrue(data.startswith(f"Return-Path: <p@example.org>\nDelivered-To: {user}@localhost\n"), data)
            self.assertTrue(data.endswith("\nSubject: pipelined\n\nbody\n"), data)

    def test_whole_session_in_one_write(self):
        with self.d.client() as c:
            c.send("EHLO client.example\r\n"
                   "MAIL FROM:<q@example.org>\r\n"
                   "RCPT TO:<whole@localhost>\r\n"
                   "DATA\r\n"
                   "Subject: all at once\r\n\r\n..dot\r\nbody\r\n.\r\n"
                   "QUIT\r\n")
            code, lines = c.reply()
            self.assertEqual(code, 250)
            self.assertIn("PIPELINING", lines)
            self.assertEqual(c.reply_line(), "250 2.1.0 Ok")
            self.assertTrue(c.reply_line().startswith("250 2.1.5 "))
            self.assertTrue(c.reply_line().startswith("354 "))
            self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
            self.assertEqual(c.reply_line(), "221 2.0.0 Bye")
            self.assertTrue(c.closed_by_peer())
        files = self.d.wait_files(self.d.path("mail", "whole"), 1)
        self.assertEqual(len(files), 1)
        self.assertTrue(postern.read_bytes(files[0]).decode().endswith("\nSubject: all at once\n\n.dot\nbody\n"))

    def test_two_transactions_in_one_write(self):
        # RSET between pipelined transactions, and a refused recipient in the
        # middle of a pipelined group, must keep the replies in step.
        with self.d.client() as c:
            c.send("EHLO client.example\r\n")
            c.reply()
            c.send("MAIL FROM:<r@example.org>\r\n"
                   "RCPT TO:<nobody@example.com>\r\n"
                   "RCPT TO:<two@localhost>\r\n"
                   "DATA\r\n"
                   "Subject: one\r\n\r\n1\r\n.\r\n"
                   "MAIL FROM:<r@example.org>\r\n"
                   "RCPT TO:<two@localhost>\r\n"
                   "DATA\r\n"
                   "Subject: two\r\n\r\n2\r\n.\r\n"
                   "QUIT\r\n")
            got = [c.reply_line() for _ in range(9)]
        codes = [g[:3] for g in got]
        self.assertEqual(codes, ["250", "550", "250", "354", "250", "250", "250", "354", "250"], got)
        files = self.d.wait_files(self.d.path("mail", "two"), 2)
        self.assertEqual(len(files), 2)


if __name__ == "__main__":
    postern.run_tests()
