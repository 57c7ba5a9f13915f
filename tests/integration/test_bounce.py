"""Delivery status notifications from the real daemon.

A delivery that keeps failing temporarily (user nobody cannot write the
maildir's folder) expires after the action's tiny ttl; the local sender then
gets an RFC 3464 report in its own maildir, parsed here with Python's email
package. NOTIFY=NEVER and the null sender get no report; NOTIFY=SUCCESS gets a
success report when the delivery works.
"""

import email
import email.policy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'action "stuck" maildir "@DIR@/blocked/Maildir" user nobody ttl 4s\n'
          'match from local for rcpt-to "stuck@localhost" action "stuck"\n'
          'match from local for local action "l"\n')


def send(d, sender, rcpt, body, mail_opts=(), rcpt_opts=()):
    with d.client() as c:
        assert c.cmd("EHLO client.example").startswith("250")
        assert c.cmd(f"MAIL FROM:<{sender}>" + "".join(" " + o for o in mail_opts)).startswith("250")
        reply = c.cmd(f"RCPT TO:<{rcpt}>" + "".join(" " + o for o in rcpt_opts))
        assert reply.startswith("250"), reply
        assert c.cmd("DATA").startswith("354")
        c.send(body.encode() + b".\r\n")
        reply = c.reply_line()
        assert reply.startswith("250 2.0.0 "), reply
        c.cmd("QUIT")
        return reply.split()[2]


def parse_report(path):
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=email.policy.default)


def status_groups(report):
    """The per-recipient field groups of the message/delivery-status part."""
    part = report.get_payload()[1]
    assert part.get_content_type() == "message/delivery-status", part.get_content_type()
    blocks = part.get_payload()
    return blocks[1:]  # blocks[0] is the per-message group


@unittest.skipUnless(os.geteuid() == 0, "needs root: delivery as user nobody")
class Bounce(unittest.TestCase):
    def daemon(self):
        d = postern.Daemon(CONFIG, name="bounce")
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        blocked = d.path("blocked")
        os.mkdir(blocked, 0o755)  # root's: user nobody cannot create the maildir
        return d

    def test_expired_message_bounces_to_local_sender(self):
        d = self.daemon()
        msgid = send(d, "alice@localhost", "stuck@localhost",
                     "Subject: will expire\r\nX-Trace: original\r\n\r\nbody\r\n", mail_opts=["RET=HDRS", "ENVID=E42"])
        self.assertTrue(d.wait_log(r"mda delivery .*to=stuck@localhost .*result=TempFail"), d.log())
        files = d.wait_files(d.path("mail", "alice"), 1, timeout=30)
        self.assertEqual(len(files), 1, d.log())
        self.assertTrue(d.wait_log(r"mda delivery .*to=stuck@localhost .*result=PermFail stat=\"Envelope expired"), d.log())

        report = parse_report(files[0])
        self.assertEqual(report["Return-Path"], "<>")
        self.assertEqual([a.addr_spec for a in report["To"].addresses], ["alice@localhost"])
        self.assertEqual(report["Auto-Submitted"], "auto-replied")
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        parts = report.get_payload()
        self.assertEqual(len(parts), 3)
        per_message = parts[1].get_payload()[0]
        self.assertEqual(per_message["Original-Envelope-Id"], "E42")
        groups = status_groups(report)
        self.assertEqual(len(groups), 1)
        self.assertEqual(groups[0]["Final-Recipient"], "rfc822; stuck@localhost")
        self.assertEqual(groups[0]["Action"], "failed")
        self.assertEqual(groups[0]["Status"], "5.4.7")
        # RET=HDRS: the original's headers only.
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        headers = parts[2].get_content()
        self.assertIn("X-Trace: original", headers)
        self.assertIn(f"id {msgid}", headers)
        self.assertNotIn("body", headers)
        # The original left the queue; the report was delivered: nothing is left.
        self.assertTrue(d.wait_queue_empty(timeout=10), d.queue_entries())

    def test_failed_report_goes_to_the_postmaster_once(self):
        d = self.daemon()
        # The sender's own mailbox is the stuck one: its report fails too.
        send(d, "stuck@localhost", "stuck@localhost", "Subject: doubly stuck\r\n\r\nx\r\n")
        files = d.wait_files(d.path("mail", "postmaster"), 1, timeout=60)
        self.assertEqual(len(files), 1, d.log())
        report = parse_report(files[0])
        self.assertEqual([a.addr_spec for a in report["To"].addresses], [f"postmaster@{d.hostname}"])
        self.assertEqual(status_groups(report)[0]["Final-Recipient"], "rfc822; stuck@localhost")
        self.assertTrue(d.wait_queue_empty(timeout=10), d.queue_entries())

    def test_no_report_for_notify_never_or_null_sender(self):
        d = self.daemon()
        send(d, "bob@localhost", "stuck@localhost", "Subject: never\r\n\r\nx\r\n", rcpt_opts=["NOTIFY=NEVER"])
        send(d, "", "stuck@localhost", "Subject: null sender\r\n\r\nx\r\n")
        self.assertTrue(d.wait_log(r"result=PermFail stat=\"Envelope expired", count=2, timeout=30), d.log())
        self.assertTrue(d.wait_queue_empty(timeout=10), d.queue_entries())
        self.assertEqual(postern.maildir_new(d.path("mail", "bob")), [])
        self.assertNotIn("queue report", d.log())

    def test_success_report_when_asked(self):
        d = self.daemon()
        send(d, "carol@localhost", "dave@localhost", "Subject: track me\r\n\r\nx\r\n",
             rcpt_opts=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;dave+2Borig@localhost"])
        self.assertEqual(len(d.wait_files(d.path("mail", "dave"), 1)), 1, d.log())
        files = d.wait_files(d.path("mail", "carol"), 1)
        self.assertEqual(len(files), 1, d.log())
        groups = status_groups(parse_report(files[0]))
        self.assertEqual(groups[0]["Action"], "delivered")
        self.assertEqual(groups[0]["Status"], "2.0.0")
        self.assertEqual(groups[0]["Original-Recipient"].replace(" ", ""), "rfc822;dave+orig@localhost")


DELAY_CONFIG = ('bounce warn-interval 1s\n'
                'action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                'action "slow" maildir "@DIR@/blocked/Maildir" user nobody ttl 1h\n'
                'match from local for rcpt-to "slow@localhost" action "slow"\n'
                'match from local for local action "l"\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: delivery as user nobody")
class DelayNotice(unittest.TestCase):
    def test_warn_interval_sends_one_delay_notice(self):
        with postern.Daemon(DELAY_CONFIG, name="delay", prepare=lambda d: os.mkdir(os.path.join(d, "blocked"), 0o755)) as d:
            send(d, "erin@localhost", "slow@localhost", "Subject: slow one\r\n\r\nx\r\n")
            # First attempt at once (too early to warn), the retry 10 s later warns.
            files = d.wait_files(d.path("mail", "erin"), 1, timeout=30)
            self.assertEqual(len(files), 1, d.log())
            report = parse_report(files[0])
            self.assertIn("Delay", str(report["Subject"]))
            groups = status_groups(report)
            self.assertEqual(groups[0]["Action"], "delayed")
            self.assertTrue(groups[0]["Status"].startswith("4."), groups[0]["Status"])
            self.assertIsNotNone(groups[0]["Will-Retry-Until"])
            # The message itself is still queued, and one notice is all for one interval.
            self.assertEqual(len(d.queue_entries()), 1, d.queue_entries())
            self.assertEqual(len(postern.maildir_new(d.path("mail", "erin"))), 1)


if __name__ == "__main__":
    postern.run_tests()
