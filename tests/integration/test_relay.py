"""Relaying through a smarthost: postern hands mail to a second posternd.

Daemon B accepts mail for far.test into a maildir; daemon A relays every
other domain to B (`action "out" relay host smtp://127.0.0.1:PORT`). A
refusal by B (550, unknown domain) becomes a bounce to A's local sender that
quotes B's reply; a smarthost that is down is a temporary failure.
"""

import email
import email.policy
import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

RECEIVER = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
            'match from any for domain "far.test" action "l"\n')


def sender_config(port):
    return ('action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
            f'action "out" relay host smtp://127.0.0.1:{port}\n'
            'match from local for local action "local"\n'
            'match from local for any action "out"\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Relay(unittest.TestCase):
    def send(self, d, rcpt, subject, sender="alice@localhost"):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail(sender, [rcpt], f"Subject: {subject}\r\n\r\nbody\r\n.dot\r\n"), {})

    def test_relay_to_a_second_posternd(self):
        with postern.Daemon(RECEIVER, name="relay-b") as b, postern.Daemon(sender_config(b.port), name="relay-a") as a:
            for i in range(3):
                self.send(a, "bob@far.test", f"relayed {i}")
            files = b.wait_files(b.path("mail", "bob"), 3, timeout=20)
            self.assertEqual(len(files), 3, a.log())
            data = postern.read_bytes(sorted(files)[0]).decode()
            self.assertIn("\n.dot\n", data)  # dot-stuffed on the wire, unstuffed at the other end
            self.assertEqual(data.count("Received: "), 2)  # A's and B's
            self.assertTrue(a.wait_queue_empty(10), a.queue_entries())
            self.assertEqual(len(a.wait_log(r"mta delivery .*to=bob@far.test .*result=Ok", count=3)), 3, a.log())
            # One agent batch keeps one connection: B saw fewer sessions than messages, or equal
            # when they came one by one; never more.
            self.assertLessEqual(b.log().count("smtp connected"), 3 + 1)

    def test_refusal_bounces_with_the_remote_reply(self):
        with postern.Daemon(RECEIVER, name="relay-b2") as b, postern.Daemon(sender_config(b.port), name="relay-a2") as a:
            self.send(a, "carol@elsewhere.test", "refused")
            files = a.wait_files(a.path("mail", "alice"), 1, timeout=20)
            self.assertEqual(len(files), 1, a.log())
            with open(files[0], "rb") as f:
                report = email.message_from_binary_file(f, policy=email.policy.default)
            status = report.get_payload()[1].get_payload()[1]
            self.assertEqual(status["Action"], "failed")
            self.assertEqual(status["Status"], "5.7.1")
            self.assertIn("Relay access denied", status["Diagnostic-Code"])
            self.assertTrue(status["Diagnostic-Code"].startswith("smtp; 550 "), status["Diagnostic-Code"])
            self.assertEqual(status["Remote-MTA"], "dns; 127.0.0.1")

    def test_smarthost_down_is_a_temporary_failure(self):
        port = postern.free_port()  # nothing listens there
        with postern.Daemon(sender_config(port), name="relay-down") as a:
            self.send(a, "dave@far.test", "waiting")
            self.assertTrue(a.wait_log(r"mta delivery .*to=dave@far.test .*result=TempFail"), a.log())
            self.assertEqual(len(a.queue_entries()), 1, a.queue_entries())


FAR_AND_ORIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                'match from any for domain { far.test, orig.test } action "l"\n')


def forwarder_config(port):
    return ('srs key "test-secret"\n'
            'table aliases { fwd = "bob@far.test" }\n'
            'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root alias <aliases>\n'
            f'action "out" relay host smtp://127.0.0.1:{port} srs\n'
            'match from any for local action "local"\n'
            'match from local for any action "out"\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Srs(unittest.TestCase):
    """A forwards fwd@ to bob@far.test on B with `relay srs`; bounces to the
    rewritten sender come back to A, which sends them to the original one."""

    def return_path(self, path):
        data = postern.read_bytes(path).decode()
        return data.split("\n", 1)[0]

    def test_forwarded_sender_is_rewritten_and_its_bounce_finds_the_way_back(self):
        with postern.Daemon(FAR_AND_ORIG, name="srs-b") as b, \
                postern.Daemon(forwarder_config(b.port), name="srs-a") as a:
            with smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test", timeout=10) as s:
                s.sendmail("carol@orig.test", [f"fwd@{a.hostname}"], "Subject: forwarded\r\n\r\nbody\r\n")
            files = b.wait_files(b.path("mail", "bob"), 1, timeout=20)
            self.assertEqual(len(files), 1, a.log())
            first = self.return_path(files[0])
            self.assertRegex(first, r"^Return-Path: <SRS0=[^=]{4}=[A-Z2-7]{2}=orig\.test=carol@" +
                             re.escape(a.hostname) + ">$")
            srs_address = first[len("Return-Path: <"):-1]

            # The bounce, from the null sender, to the rewritten address: A checks
            # the hash and relays it to carol@orig.test (on B here).
            with smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test", timeout=10) as s:
                s.sendmail("", [srs_address], "Subject: bounce\r\n\r\nit failed\r\n")
                # A forged or mangled one is refused at RCPT.
                s.mail("")
                forged = "SRS0=AAAA=" + srs_address.split("=", 2)[2]
                code, text = s.rcpt(forged)
                self.assertEqual(code, 550, text)
                self.assertIn(b"5.7.1", text)
                self.assertIn(b"Invalid SRS address", text)
            files = b.wait_files(b.path("mail", "carol"), 1, timeout=20)
            self.assertEqual(len(files), 1, a.log())
            self.assertIn(b"Subject: bounce", postern.read_bytes(files[0]))
            self.assertTrue(self.return_path(files[0]).startswith("Return-Path: <>"), self.return_path(files[0]))


if __name__ == "__main__":
    postern.run_tests()
