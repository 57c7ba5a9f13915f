"""The SMTP session state machine, reply by reply (RFC 5321 4.1, 4.3.2).

Out-of-order commands get 503 5.5.1, unknown verbs 500 5.5.1, bad syntax
501 with a precise enhanced code, unknown MAIL parameters 555 5.5.4; the
session survives every refusal.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from local for local action "l"\n')


class Sequence(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(CONFIG, name="sequence").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def setUp(self):
        self.c = self.d.client()
        self.assertEqual(self.c.banner[0], 220)

    def tearDown(self):
        self.c.close()

    def ehlo(self):
        self.assertEqual(self.c.cmd("EHLO client.example")[:4], "250 ")

    def assertReply(self, line, code, enhanced):
        reply = self.c.cmd(line)
        self.assertEqual(reply[:10], f"{code} {enhanced} ", f"{line!r} -> {reply!r}")
        return reply

    def test_banner(self):
        self.assertEqual(self.c.banner, (220, [f"{self.d.hostname} ESMTP postern"]))

    def test_mail_before_ehlo(self):
        self.assertReply("MAIL FROM:<a@example.org>", 503, "5.5.1")
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")

    def test_rcpt_before_mail(self):
        self.ehlo()
        self.assertReply("RCPT TO:<root@localhost>", 503, "5.5.1")

    def test_data_before_rcpt(self):
        self.ehlo()
        self.assertReply("DATA", 503, "5.5.1")
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
        self.assertReply("DATA", 503, "5.5.1")

    def test_nested_mail(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
        self.assertReply("MAIL FROM:<b@example.org>", 503, "5.5.1")

    def test_unknown_verb(self):
        self.assertReply("FROB something", 500, "5.5.1")
        self.ehlo()
        self.assertReply("XYZZY", 500, "5.5.1")

    def test_bad_mail_path(self):
        self.ehlo()
        reply = self.c.cmd("MAIL FROM:foo")
        self.assertEqual(reply[:4], "501 ", reply)
        self.assertEqual(reply.split()[1], "5.1.7", reply)
        # Still usable afterwards.
        self.assertEqual(self.c.cmd("MAIL FROM:<foo@example.org>"), "250 2.1.0 Ok")

    def test_null_sender(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<>"), "250 2.1.0 Ok")
        self.assertEqual(self.c.cmd("RCPT TO:<nullsender@localhost>")[:10], "250 2.1.5 ")
        self.assertEqual(self.c.cmd("DATA")[:4], "354 ")
        self.c.send("Subject: bounce\r\n\r\nbody\r\n.\r\n")
        self.assertRegex(self.c.reply_line(), r"^250 2\.0\.0 ")
        files = self.d.wait_files(self.d.path("mail", "nullsender"), 1)
        self.assertEqual(len(files), 1)
        self.assertTrue(postern.read_bytes(files[0]).startswith(b"Return-Path: <>\n"))

    def test_rset(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
        self.assertEqual(self.c.cmd("RSET")[:4], "250 ")
        # The transaction is gone: RCPT needs a new MAIL.
        self.assertReply("RCPT TO:<root@localhost>", 503, "5.5.1")
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")

    def test_noop(self):
        self.assertReply("NOOP", 250, "2.0.0")
        self.ehlo()
        self.assertReply("NOOP", 250, "2.0.0")

    def test_vrfy(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("VRFY root")[:4], "252 ")

    def test_vrfy_without_argument(self):
        # RFC 5321 4.1.1.6: VRFY takes a string; without one it is a syntax
        # error, not a 252 promise about nobody.
        self.ehlo()
        self.assertReply("VRFY", 501, "5.5.4")
        self.assertReply("VRFY   ", 501, "5.5.4")
        self.assertEqual(self.c.cmd("VRFY root")[:4], "252 ")

    def test_quit(self):
        self.assertEqual(self.c.cmd("QUIT")[:4], "221 ")
        self.assertTrue(self.c.closed_by_peer())

    def test_helo_without_argument(self):
        self.assertReply("HELO", 501, "5.5.4")
        self.assertReply("EHLO", 501, "5.5.4")
        self.assertEqual(self.c.cmd("HELO client.example")[:4], "250 ")

    def test_helo_is_not_esmtp(self):
        reply = self.c.cmd("HELO client.example")
        self.assertEqual(reply[:4], "250 ")
        # A single line, no extensions after plain HELO.
        self.assertNotIn("PIPELINING", reply)

    def test_mail_unknown_parameter(self):
        self.ehlo()
        self.assertReply("MAIL FROM:<a@example.org> FROBNICATE=yes", 555, "5.5.4")
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME"), "250 2.1.0 Ok")

    def test_rcpt_without_brackets(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
        reply = self.c.cmd("RCPT TO:root@localhost")
        self.assertEqual(reply[:4], "501 ", reply)

    def test_ehlo_resets_transaction(self):
        self.ehlo()
        self.assertEqual(self.c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok")
        self.ehlo()
        self.assertReply("RCPT TO:<root@localhost>", 503, "5.5.1")

    def test_commands_are_case_insensitive(self):
        self.assertEqual(self.c.cmd("ehlo client.example")[:4], "250 ")
        self.assertEqual(self.c.cmd("mail from:<a@example.org>"), "250 2.1.0 Ok")
        self.assertEqual(self.c.cmd("rcpt to:<root@localhost>")[:10], "250 2.1.5 ")
        self.assertEqual(self.c.cmd("rset")[:4], "250 ")


class VerboseLog(unittest.TestCase):
    def test_v_logs_the_dialogue(self):
        with postern.Daemon(CONFIG, name="verbose", extra_args=["-v"]) as d:
            with d.client() as c:
                c.cmd("EHLO client.example")
                c.cmd("MAIL FROM:<someone@example.org>")
                c.cmd("QUIT")
            self.assertTrue(d.wait_log(r'smtp command line="MAIL FROM:<someone@example.org>"'), d.log())
            self.assertTrue(d.wait_log(r'smtp reply code=250 text="2.1.0 Ok"'), d.log())


if __name__ == "__main__":
    postern.run_tests()
