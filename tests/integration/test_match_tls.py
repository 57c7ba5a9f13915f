"""`match ... tls` and `match from mail-from` (issue 16), end to end.

`tls` holds when the session is under TLS: a message sent after STARTTLS
(swaks --tls) goes to the rule's maildir, one sent in clear does not. Where
no other rule takes a session in clear, the recipient gets 550 (no rule
matched), as smtpd.conf(5) documents, and not the 451 OpenSMTPD's own
ruleset answers for every `tls` rule (docs/compatibility.md).

`from mail-from` chooses the action by the envelope sender: a table of
senders, a regex, and a rule that refuses one domain's senders.
"""

import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

TLS_CONFIG = """
action "secure" maildir "@DIR@/secure/%{rcpt.user}" user root
action "clear" maildir "@DIR@/clear/%{rcpt.user}" user root
match from any for local tls action "secure"
match from any for local !tls !rcpt-to "only@localhost" action "clear"
"""

SENDER_CONFIG = """
table vips { "boss@example.org", "@partner.test" }
action "vip" maildir "@DIR@/vip/%{rcpt.user}" user root
action "lists" maildir "@DIR@/lists/%{rcpt.user}" user root
action "rest" maildir "@DIR@/rest/%{rcpt.user}" user root
match from mail-from <vips> for local action "vip"
match from mail-from regex "^list-[a-z]+@lists\\.example\\.org$" for local action "lists"
match from mail-from "@spam.test" for local reject
match from any for local action "rest"
"""


def prepare_pki(folder):
    postern.make_self_signed_pki(os.path.join(folder, "server.crt"), os.path.join(folder, "server.key"), "mail.test")


PKI = 'pki mail.test cert "@DIR@/server.crt"\npki mail.test key "@DIR@/server.key"\n'


def maildir_count(d, folder, user):
    return len(postern.maildir_new(d.path(folder, user)))


@unittest.skipUnless(shutil.which("swaks"), "needs swaks")
@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class MatchTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(TLS_CONFIG, name="match-tls", prepare=prepare_pki, before_listen=PKI,
                               listen_options="tls pki mail.test")
        cls.d.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def swaks(self, *args):
        return postern.swaks("--server", "127.0.0.1", "--port", str(self.d.port), "--from", "alice@example.org",
                             "--helo", "client.test", *args)

    def test_a_message_sent_after_starttls_goes_to_the_tls_rule(self):
        code, out = self.swaks("--to", "bob@localhost", "--tls", "--header", "Subject: over tls")
        self.assertEqual(code, 0, out)
        self.assertIn("-> STARTTLS", out)
        self.assertIn("<~  250", out)  # replies under TLS
        files = self.d.wait_files(self.d.path("secure", "bob"), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertIn(b"Subject: over tls", postern.read_bytes(files[0]))
        time.sleep(0.3)
        self.assertEqual(maildir_count(self.d, "clear", "bob"), 0)

    def test_a_message_sent_in_clear_does_not(self):
        code, out = self.swaks("--to", "carol@localhost", "--header", "Subject: in clear")
        self.assertEqual(code, 0, out)
        self.assertNotIn("-> STARTTLS", out)
        files = self.d.wait_files(self.d.path("clear", "carol"), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertIn(b"Subject: in clear", postern.read_bytes(files[0]))
        time.sleep(0.3)
        self.assertEqual(maildir_count(self.d, "secure", "carol"), 0)

    def test_without_a_rule_for_clear_sessions_the_recipient_gets_550_not_451(self):
        code, out = self.swaks("--to", "only@localhost", "--quit-after", "RCPT")
        self.assertNotEqual(code, 0, out)
        self.assertRegex(out, r"<\*\* 550 ", out)
        self.assertNotIn("451", out)
        code, out = self.swaks("--to", "only@localhost", "--tls", "--header", "Subject: only over tls")
        self.assertEqual(code, 0, out)
        files = self.d.wait_files(self.d.path("secure", "only"), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())


@unittest.skipUnless(shutil.which("swaks"), "needs swaks")
@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class MatchFromMailFrom(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(SENDER_CONFIG, name="match-mail-from")
        cls.d.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def send(self, sender, rcpt):
        return postern.swaks("--server", "127.0.0.1", "--port", str(self.d.port), "--from", sender, "--to", rcpt,
                             "--helo", "client.test", "--header", f"Subject: from {sender}")

    def delivered_to(self, folder, user, sender):
        files = self.d.wait_files(self.d.path(folder, user), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertIn(f"Subject: from {sender}".encode(), postern.read_bytes(files[0]))

    def test_the_action_is_chosen_by_sender(self):
        for sender, user, folder in (("boss@example.org", "u1", "vip"), ("anyone@partner.test", "u2", "vip"),
                                     ("list-dev@lists.example.org", "u3", "lists"),
                                     ("someone@example.org", "u4", "rest")):
            code, out = self.send(sender, f"{user}@localhost")
            self.assertEqual(code, 0, out)
            self.delivered_to(folder, user, sender)
        time.sleep(0.3)
        for folder in ("vip", "lists", "rest"):
            users = sorted(os.listdir(self.d.path(folder)))
            want = {"vip": ["u1", "u2"], "lists": ["u3"], "rest": ["u4"]}[folder]
            self.assertEqual(users, want, folder)

    def test_a_sender_rule_may_reject(self):
        code, out = self.send("x@spam.test", "u5@localhost")
        self.assertNotEqual(code, 0, out)
        self.assertRegex(out, r"<\*\* 550 ", out)


if __name__ == "__main__":
    postern.run_tests()
