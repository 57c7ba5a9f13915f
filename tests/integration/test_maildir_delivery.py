"""Maildir delivery end to end: what a client sends is what lands in new/.

The delivered file must be exactly Return-Path + Delivered-To + the daemon's
Received: header + the message with CRLF turned into LF and dot-stuffing
undone; the queue id in the 250 reply, the Received: header and the log must
agree, and the spool's queue/ must be empty once the delivery is done.
"""

import email.utils
import os
import re
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from local for local action "l"\n')

RECEIVED_RX = re.compile(
    r"Received: from (?P<helo>\S+) \(localhost \[127\.0\.0\.1\]\)\n"
    r"\tby (?P<host>\S+) \(postern\) with ESMTP id (?P<id>[0-9A-Za-z]+)\n"
    r"\tfor <(?P<rcpt>[^>]+)>;\n"
    r"\t(?P<date>[^\n]+)\n")


class MaildirDelivery(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="maildir").__enter__()

    def tearDown(self):
        self.d.__exit__(*sys.exc_info())

    def check_delivery(self, path, sender, rcpt, helo, queue_id, message_lf):
        data = postern.read_bytes(path).decode("utf-8")
        prefix = f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n"
        self.assertTrue(data.startswith(prefix), data[:200])
        m = RECEIVED_RX.match(data, len(prefix))
        self.assertIsNotNone(m, f"no well-formed Received: header after the prefix:\n{data[:400]}")
        self.assertEqual(m.group("helo"), helo)
        self.assertEqual(m.group("host"), self.d.hostname)
        self.assertEqual(m.group("id"), queue_id)
        self.assertEqual(m.group("rcpt"), rcpt)
        when = email.utils.parsedate_to_datetime(m.group("date"))
        self.assertIsNotNone(when.tzinfo, m.group("date"))
        self.assertLess(abs(when.timestamp() - time.time()), 300, m.group("date"))
        self.assertEqual(data[m.end():], message_lf)

    def check_log(self, queue_id, sender, rcpt):
        lines = self.d.wait_log(r"^.* smtp message msgid=" + re.escape(queue_id) + r" .*$")
        self.assertEqual(len(lines), 1, self.d.log())
        session = lines[0].split()[2]
        env = re.findall(r"^\S+ \S+ " + re.escape(session) + r" smtp envelope evpid=(\S+) from=" +
                         re.escape(sender) + " to=" + re.escape(rcpt) + "$", self.d.log(), re.M)
        self.assertEqual(len(env), 1, self.d.log())
        ok = self.d.wait_log(r"^\S+ \S+ mda delivery evpid=" + re.escape(env[0]) +
                             r" from=" + re.escape(sender) + " to=" + re.escape(rcpt) + r" .*result=Ok\b.*$")
        self.assertEqual(len(ok), 1, self.d.log())

    def check_queue_empty(self):
        self.assertTrue(self.d.wait_queue_empty(10), f"queue/ not empty: {self.d.queue_entries()}")

    def test_swaks(self):
        body = ("From: Sender <sender@example.org>\n"
                "To: alice@localhost\n"
                "Subject: maildir test\n"
                "\n"
                "line one\n"
                ".a line starting with a dot\n"
                "..two dots\n"
                ".\tdot then tab\n"
                "last line\n")
        data_file = self.d.path("data.txt")
        with open(data_file, "w") as f:
            f.write(body)
        rc, out = postern.swaks("--server", f"127.0.0.1:{self.d.port}", "--helo", "client.example",
                                "--from", "sender@example.org", "--to", "alice@localhost",
                                "--data", "@" + data_file)
        self.assertEqual(rc, 0, out)
        m = re.search(r"<-  250 2\.0\.0 (\S+) Message accepted for delivery", out)
        self.assertIsNotNone(m, out)
        queue_id = m.group(1)
        # swaks stuffed the leading dots on the wire; the copy must not show it.
        self.assertIn(" -> ..a line starting with a dot", out)
        self.assertIn(" -> ...two dots", out)
        # What swaks put on the wire between 354 and the final dot.
        sent = re.search(r"<-  354 [^\n]*\n((?: -> [^\n]*\n)*?) -> \.\n", out)
        self.assertIsNotNone(sent, out)
        wire = "".join(line[4:] + "\r\n" for line in sent.group(1).splitlines())
        expected = postern.lf_message(wire)
        self.assertTrue(expected.startswith(body), expected)
        files = self.d.wait_files(self.d.path("mail", "alice"), 1)
        self.assertEqual(len(files), 1)
        self.check_delivery(files[0], "sender@example.org", "alice@localhost", "client.example", queue_id, expected)
        self.check_log(queue_id, "sender@example.org", "alice@localhost")
        self.check_queue_empty()

    def test_smtplib(self):
        message = ("From: bob@example.net\r\n"
                   "To: carol@localhost\r\n"
                   "Subject: smtplib\r\n"
                   "\r\n"
                   "first\r\n"
                   "..stuffed single dot\r\n"
                   "...stuffed two dots\r\n"
                   "..\r\n"
                   "  indented\r\n"
                   "\r\n"
                   "end\r\n")
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="smtplib.example", timeout=10) as s:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(s.mail("bob@example.net"), (250, b"2.1.0 Ok"))
            code, text = s.rcpt("carol@localhost")
            self.assertEqual(code, 250, text)
            self.assertTrue(text.startswith(b"2.1.5 "), text)
            # putcmd/getreply send the DATA body as already stuffed, byte for byte.
            s.putcmd("data")
            code, text = s.getreply()
            self.assertEqual(code, 354, text)
            s.send(message.encode() + b".\r\n")
            code, text = s.getreply()
            self.assertEqual(code, 250, text)
            m = re.fullmatch(rb"2\.0\.0 (\S+) Message accepted for delivery", text)
            self.assertIsNotNone(m, text)
            queue_id = m.group(1).decode()
        expected = postern.lf_message(message)
        self.assertIn("\n.stuffed single dot\n..stuffed two dots\n.\n", expected)
        files = self.d.wait_files(self.d.path("mail", "carol"), 1)
        self.assertEqual(len(files), 1)
        self.check_delivery(files[0], "bob@example.net", "carol@localhost", "smtplib.example", queue_id, expected)
        self.check_log(queue_id, "bob@example.net", "carol@localhost")
        self.check_queue_empty()

    def test_smtplib_sendmail_two_messages(self):
        # smtplib's own sendmail (which stuffs dots itself), twice in one session.
        ids = []
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="smtplib.example", timeout=10) as s:
            for n in (1, 2):
                msg = f"Subject: n{n}\r\n\r\n.dot {n}\r\n"
                s.ehlo()
                s.mail("x@example.net")
                s.rcpt("dave@localhost")
                code, text = s.data(msg)
                self.assertEqual(code, 250, text)
                ids.append(re.fullmatch(rb"2\.0\.0 (\S+) Message accepted for delivery", text).group(1).decode())
        self.assertNotEqual(ids[0], ids[1])
        files = self.d.wait_files(self.d.path("mail", "dave"), 2)
        self.assertEqual(len(files), 2)
        bodies = [postern.read_bytes(f).decode() for f in files]
        for n in (1, 2):
            ends = [b for b in bodies if b.endswith(f"Subject: n{n}\n\n.dot {n}\n")]
            self.assertEqual(len(ends), 1, bodies)
        self.check_queue_empty()



# Format specifiers in the maildir path (smtpd.conf(5) FORMAT SPECIFIERS):
# the +tag stripped from the folder name, and a slice that cannot fit the
# recipient failing the delivery with its reason instead of making a path.
FORMATS = ('action "v" maildir "@DIR@/vmail/%{dest.user:lowercase|strip}" user root\n'
           'action "s" maildir "@DIR@/short/%{rcpt.user[5:]}" user root\n'
           'match from any for domain "virt.test" action "v"\n'
           'match from any for domain "short.test" action "s"\n')


class MaildirFormats(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(FORMATS, name="maildir-formats").__enter__()

    def tearDown(self):
        self.d.__exit__(*sys.exc_info())

    def send(self, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@example.org", [rcpt], f"Subject: {subject}\r\n\r\nhi\r\n"), {})

    def test_strip_drops_the_tag(self):
        self.send("Alice+Tag@virt.test", "tagged")
        files = self.d.wait_files(self.d.path("vmail", "alice"), 1)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertIn(b"Subject: tagged", postern.read_bytes(files[0]))
        self.assertEqual(sorted(os.listdir(self.d.path("vmail"))), ["alice"])

    def test_a_slice_past_the_end_fails_with_its_reason(self):
        self.send("bob@short.test", "short")
        lines = self.d.wait_log(r"^.* mda delivery .*to=bob@short\.test .*result=PermFail.*$")
        self.assertEqual(len(lines), 1, self.d.log())
        self.assertIn("the slice [5:] starts outside the value", lines[0])
        self.assertFalse(os.path.exists(self.d.path("short")), os.listdir(self.d.path()))


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class SubAddressDelimiter(unittest.TestCase):
    def test_strip_cuts_at_the_configured_delimiter(self):
        config = 'smtp sub-addr-delim "-"\n' + FORMATS
        with postern.Daemon(config, name="maildir-delim") as d:
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                self.assertEqual(s.sendmail("sender@example.org", ["carol-lists@virt.test", "dave+x@virt.test"],
                                            "Subject: delim\r\n\r\nhi\r\n"), {})
            self.assertEqual(len(d.wait_files(d.path("vmail", "carol"), 1)), 1, d.log())
            self.assertEqual(len(d.wait_files(d.path("vmail", "dave+x"), 1)), 1, d.log())
            self.assertEqual(sorted(os.listdir(d.path("vmail"))), ["carol", "dave+x"])


if __name__ == "__main__":
    postern.run_tests()
