"""No open relay: recipients no rule accepts are refused in the dialogue.

With only `match from local for local action ...`, a remote domain gets
550 5.7.1; a `match ... reject` rule gets 550 5.7.1 too. Nothing is delivered
and nothing reaches the spool, not even after DATA is tried.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from any for domain "blocked.example" reject\n'
          'match from local for local action "l"\n')


class OpenRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(CONFIG, name="relay").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def assert_nothing_stored(self):
        time.sleep(0.5)  # give a wrongly accepted message time to show up
        self.assertEqual(self.d.queue_entries(), [])
        self.assertEqual(os.listdir(os.path.join(self.d.spool, "incoming")), [])
        self.assertFalse(os.path.exists(self.d.path("mail")), os.listdir(self.d.dir))

    def refused(self, rcpt):
        with self.d.client() as c:
            self.assertEqual(c.cmd("EHLO client.example")[:4], "250 ")
            self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), "250 2.1.0 Ok")
            reply = c.cmd(f"RCPT TO:<{rcpt}>")
            # With no accepted recipient the transaction cannot go on.
            self.assertEqual(c.cmd("DATA")[:10], "503 5.5.1 ")
            self.assertEqual(c.cmd("QUIT"), "221 2.0.0 Bye")
        return reply

    def test_remote_domain_is_relay_denied(self):
        reply = self.refused("user@example.com")
        self.assertTrue(reply.startswith("550 5.7.1 "), reply)
        self.assertIn("<user@example.com>", reply)
        self.assert_nothing_stored()

    def test_reject_rule(self):
        reply = self.refused("anyone@blocked.example")
        self.assertTrue(reply.startswith("550 5.7.1 "), reply)
        self.assertIn("<anyone@blocked.example>", reply)
        self.assert_nothing_stored()

    def test_source_route_is_not_a_way_in(self):
        # RFC 5321 says to ignore a source route; what is left is remote.
        reply = self.refused("@localhost:user@example.com")
        self.assertRegex(reply, r"^5\d\d 5\.\d\.\d ")
        self.assert_nothing_stored()

    def test_local_still_accepted(self):
        # The control: the same session shape to a local user is accepted.
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<postmaster@localhost>")[:10], "250 2.1.5 ")
            self.assertEqual(c.cmd("RSET"), "250 2.0.0 Reset state")


if __name__ == "__main__":
    postern.run_tests()
