"""SMTP smuggling: only <CRLF>.<CRLF> ends DATA; bare CR/LF refuse the message.

For each end-of-data look-alike (`\\n.\\n`, `\\n.\\r\\n`, `\\r\\n.\\n`,
`\\r.\\r\\n`, `\\r\\n.\\r` not followed by \\n) followed by a smuggled MAIL, RCPT,
DATA and body, then the real <CRLF>.<CRLF>: the whole thing gets exactly one
reply, `550 5.6.0`, the smuggled commands are never executed, nothing is
delivered, and a clean message in the same session is accepted after it.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from local for local action "l"\n')

SMUGGLED = ("MAIL FROM:<evil@example.net>\r\n"
            "RCPT TO:<victim@localhost>\r\n"
            "DATA\r\n"
            "Subject: smuggled\r\n"
            "\r\n"
            "smuggled body\r\n")

LOOKALIKES = {
    "LF.LF": "\n.\n",
    "LF.CRLF": "\n.\r\n",
    "CRLF.LF": "\r\n.\n",
    "CR.CRLF": "\r.\r\n",
    "CRLF.CR": "\r\n.\r",
}


class Smuggling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(CONFIG, name="smuggling").__enter__()
        cls.clean_sent = 0

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def start_data(self, c, rcpt="honest@localhost"):
        self.assertEqual(c.cmd("MAIL FROM:<honest@example.org>"), "250 2.1.0 Ok")
        self.assertEqual(c.cmd(f"RCPT TO:<{rcpt}>")[:10], "250 2.1.5 ")
        self.assertEqual(c.cmd("DATA")[:4], "354 ")

    def send_clean(self, c):
        self.start_data(c, "clean@localhost")
        c.send("Subject: clean\r\n\r\nclean body\r\n.\r\n")
        self.assertRegex(c.reply_line(), r"^250 2\.0\.0 \S+ Message accepted for delivery$")
        type(self).clean_sent += 1

    def assert_refused_once(self, c, payload):
        c.send(payload)
        reply = c.reply_line()
        self.assertEqual(reply[:10], "550 5.6.0 ", reply)
        # Nothing else may follow: the smuggled MAIL/RCPT/DATA would each
        # have produced a reply of their own.
        extra = c.pending(0.7)
        self.assertEqual(extra, b"", f"extra replies after the refusal: {extra!r}")
        # The session is back in command mode, not in a smuggled DATA.
        self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")

    def test_lookalike_end_of_data(self):
        for name, sep in LOOKALIKES.items():
            with self.subTest(sep=name), self.d.client() as c:
                self.assertEqual(c.cmd("EHLO client.example")[:4], "250 ")
                self.start_data(c)
                payload = "Subject: hi\r\n\r\nhello" + sep + SMUGGLED + ".\r\n"
                self.assert_refused_once(c, payload)
                # The session is still in step: a clean message goes through.
                self.send_clean(c)
                self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        self.assert_only_clean_delivered()

    def test_bare_lf_inside_a_line(self):
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            self.start_data(c)
            self.assert_refused_once(c, "Subject: lf\r\n\r\nbefore\nafter\r\n.\r\n")
            self.send_clean(c)
        self.assert_only_clean_delivered()

    def test_bare_cr_inside_a_line(self):
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            self.start_data(c)
            self.assert_refused_once(c, "Subject: cr\r\n\r\nbefore\rafter\r\n.\r\n")
            self.send_clean(c)
        self.assert_only_clean_delivered()

    def assert_only_clean_delivered(self):
        clean = self.d.path("mail", "clean")
        self.d.wait_files(clean, self.clean_sent)
        time.sleep(0.5)  # a wrongly accepted message would show up meanwhile
        self.assertEqual(len(postern.maildir_new(clean)), self.clean_sent)
        self.assertFalse(os.path.exists(self.d.path("mail", "victim")), "smuggled message delivered")
        self.assertFalse(os.path.exists(self.d.path("mail", "honest")), "refused message delivered")
        self.assertNotIn("evil@example.net", self.d.log())
        for f in postern.maildir_new(clean):
            data = postern.read_bytes(os.path.join(clean, "new", f)).decode()
            self.assertTrue(data.endswith("\nSubject: clean\n\nclean body\n"), data)


if __name__ == "__main__":
    postern.run_tests()
