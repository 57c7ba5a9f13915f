"""Limits: message size, command line length, recipients per transaction.

- `smtp max-message-size 10K`: EHLO says SIZE 10240; MAIL SIZE=20000 gets
  552 5.3.4; a 20 KB message gets 552 5.3.4 after the dot and the session
  stays usable.
- A command line longer than 2048 bytes gets 500 5.5.2 and the connection
  closes.
- 150 recipients in one transaction are all accepted and delivered.
- `smtp limit max-rcpt 5`: the 6th RCPT gets 452 4.5.3.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LOCAL = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
         'match from local for local action "l"\n')


class MessageSize(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon("smtp max-message-size 10K\n" + LOCAL, name="size").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def ehlo(self, c):
        c.send("EHLO client.example\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250)
        return lines

    def test_ehlo_advertises_size(self):
        with self.d.client() as c:
            lines = self.ehlo(c)
            self.assertIn("SIZE 10240", lines)

    def test_mail_size_parameter_over_limit(self):
        with self.d.client() as c:
            self.ehlo(c)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org> SIZE=20000")[:10], "552 5.3.4 ")
            # Within the limit is fine, and the session goes on.
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org> SIZE=1000"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RSET"), "250 2.0.0 Reset state")

    def test_body_over_limit_refused_after_dot_session_usable(self):
        big = "Subject: big\r\n\r\n" + ("x" * 76 + "\r\n") * 260  # about 20 KB
        self.assertGreater(len(big), 20000)
        with self.d.client() as c:
            self.ehlo(c)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<big@localhost>")[:10], "250 2.1.5 ")
            self.assertEqual(c.cmd("DATA")[:4], "354 ")
            c.send(big + ".\r\n")
            self.assertEqual(c.reply_line()[:10], "552 5.3.4 ")
            # The same session can still send a message.
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<big@localhost>")[:10], "250 2.1.5 ")
            self.assertEqual(c.cmd("DATA")[:4], "354 ")
            c.send("Subject: small\r\n\r\nsmall\r\n.\r\n")
            self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        files = self.d.wait_files(self.d.path("mail", "big"), 1)
        time.sleep(0.5)
        files = postern.maildir_new(self.d.path("mail", "big"))
        self.assertEqual(len(files), 1, "only the small message may be delivered")
        data = postern.read_bytes(self.d.path("mail", "big", "new", files[0])).decode()
        self.assertTrue(data.endswith("\nSubject: small\n\nsmall\n"), data)


class CommandLineLength(unittest.TestCase):
    def test_long_command_line_closes(self):
        with postern.Daemon(LOCAL, name="line") as d:
            with d.client() as c:
                c.cmd("EHLO client.example")
                c.send("MAIL FROM:<" + "a" * 2100 + "@example.org>\r\n")
                self.assertEqual(c.reply_line()[:10], "500 5.5.2 ")
                self.assertTrue(c.closed_by_peer(), "connection still open after 500 5.5.2")
            # The same without any line end: refused once the limit is passed.
            with d.client() as c:
                c.cmd("EHLO client.example")
                c.send("NOOP " + "c" * 3000)
                self.assertEqual(c.reply_line()[:10], "500 5.5.2 ")
                self.assertTrue(c.closed_by_peer(), "connection still open after 500 5.5.2")
            # A line just under the limit is parsed (and refused only for its content).
            with d.client() as c:
                c.cmd("EHLO client.example")
                line = "NOOP " + "b" * (2048 - len("NOOP ") - 2)
                self.assertEqual(len(line) + 2, 2048)
                reply = c.cmd(line)
                self.assertNotEqual(reply[:10], "500 5.5.2 ", reply)
                self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")


class Recipients(unittest.TestCase):
    def test_150_recipients_all_delivered(self):
        users = [f"user{i:03d}" for i in range(150)]
        with postern.Daemon(LOCAL, name="rcpts") as d:
            with d.client() as c:
                c.cmd("EHLO client.example")
                self.assertEqual(c.cmd("MAIL FROM:<many@example.org>"), "250 2.1.0 Ok")
                c.send("".join(f"RCPT TO:<{u}@localhost>\r\n" for u in users))
                replies = [c.reply_line() for _ in users]
                self.assertEqual([r[:10] for r in replies], ["250 2.1.5 "] * 150, replies)
                self.assertEqual(c.cmd("DATA")[:4], "354 ")
                c.send("Subject: fan-out\r\n\r\nto many\r\n.\r\n")
                self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
                c.cmd("QUIT")

            def count():
                return sum(len(postern.maildir_new(d.path("mail", u))) for u in users)
            postern.wait_until(lambda: count() >= 150, 20, interval=0.2)
            missing = [u for u in users if len(postern.maildir_new(d.path("mail", u))) != 1]
            self.assertEqual(missing, [], f"{count()} of 150 delivered")
            for u in (users[0], users[-1]):
                f = d.path("mail", u, "new", postern.maildir_new(d.path("mail", u))[0])
                data = postern.read_bytes(f).decode()
                self.assertTrue(data.startswith(f"Return-Path: <many@example.org>\nDelivered-To: {u}@localhost\n"))
                self.assertTrue(data.endswith("\nSubject: fan-out\n\nto many\n"), data)
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())

    def test_max_rcpt(self):
        with postern.Daemon("smtp limit max-rcpt 5\n" + LOCAL, name="maxrcpt") as d:
            with d.client() as c:
                c.cmd("EHLO client.example")
                self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
                for i in range(5):
                    self.assertEqual(c.cmd(f"RCPT TO:<r{i}@localhost>")[:10], "250 2.1.5 ")
                self.assertEqual(c.cmd("RCPT TO:<r5@localhost>")[:10], "452 4.5.3 ")
                # The five accepted recipients still get the message.
                self.assertEqual(c.cmd("DATA")[:4], "354 ")
                c.send("Subject: five\r\n\r\nfive\r\n.\r\n")
                self.assertRegex(c.reply_line(), r"^250 2\.0\.0 ")
                c.cmd("QUIT")
            for i in range(5):
                self.assertEqual(len(d.wait_files(d.path("mail", f"r{i}"), 1)), 1)
            time.sleep(0.3)
            self.assertFalse(os.path.exists(d.path("mail", "r5")))


if __name__ == "__main__":
    postern.run_tests()
