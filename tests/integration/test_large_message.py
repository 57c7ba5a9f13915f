"""Large messages stream to disk: a session never holds one whole.

Without data-line filters, the message goes from the client into an
unlinked temporary file in the spool's incoming/ folder once it passes
64 KiB, and the queue commits it from there (smtpd/message_buffer.hpp).
What a test can see of that: while DATA is in progress the serving process
has a descriptor open on SPOOL/incoming/ (the file is unlinked, so
/proc/PID/fd shows "SPOOL/incoming/#N (deleted)"), and none once the
message is committed or refused. What must not change: the message arrives
byte for byte, the header checks (loop count) still see the header
section, and a message too big or refused leaves nothing behind.
"""

import os
import re
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('smtp max-message-size 12M\n'
          'action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'match from local for local action "l"\n')

RECEIVED_RX = re.compile(
    rb"Return-Path: <[^>]*>\nDelivered-To: [^\n]+\n"
    rb"Received: from \S+ \(localhost \[127\.0\.0\.1\]\)\n"
    rb"\tby \S+ \(postern\) with ESMTP id [0-9A-Za-z]+\n"
    rb"\tfor <[^>]+>;\n"
    rb"\t[^\n]+\n")


def body_lines(size, seed=0):
    """About `size` bytes of CRLF lines, each different; every 97th starts
    with a dot (sent stuffed, stored unstuffed)."""
    out, n, i = [], 0, 0
    while n < size:
        line = b"%s%07d %d " % (b"." if i % 97 == 0 else b"", i, seed) + b"x" * (60 + i % 13) + b"\r\n"
        out.append(line)
        n += len(line)
        i += 1
    return b"".join(out)


def incoming_fds(daemon):
    """Descriptors of the daemon's processes open on files under SPOOL/incoming/."""
    prefix = os.path.join(daemon.spool, "incoming") + "/"
    found = []
    for pid in [daemon.pid] + postern.descendants_of(daemon.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(prefix):
                found.append((pid, target))
    return found


class LargeMessage(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="large").__enter__()

    def tearDown(self):
        self.d.__exit__(*sys.exc_info())

    def start_data(self, c, rcpt="alice@localhost"):
        self.assertTrue(c.cmd("EHLO client.example").startswith("250"))
        self.assertTrue(c.cmd("MAIL FROM:<sender@example.org>").startswith("250"))
        self.assertTrue(c.cmd(f"RCPT TO:<{rcpt}>").startswith("250"))
        self.assertTrue(c.cmd("DATA").startswith("354"))

    def test_10_mb_arrives_byte_for_byte(self):
        message = (b"From: <sender@example.org>\r\nTo: <alice@localhost>\r\nSubject: ten megabytes\r\n\r\n" +
                   body_lines(10 * 1024 * 1024))
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["alice@localhost"], message)
        [path] = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=60)
        data = postern.read_bytes(path)
        m = RECEIVED_RX.match(data)
        self.assertIsNotNone(m, data[:400])
        self.assertEqual(data[m.end():], message.replace(b"\r\n", b"\n"))  # smtplib stuffed, the server unstuffed
        self.assertEqual(incoming_fds(self.d), [])

    def test_the_message_is_in_a_file_while_it_arrives(self):
        with self.d.client() as c:
            self.start_data(c)
            c.send(b"Subject: on its way\r\n\r\n" + body_lines(1024 * 1024))
            open_now = postern.wait_until(lambda: incoming_fds(self.d), 10)
            self.assertTrue(open_now, "no descriptor on SPOOL/incoming/ while 1 MiB of DATA is in")
            self.assertTrue(all(t.endswith("(deleted)") for _, t in open_now), open_now)
            c.send(b"last line\r\n.\r\n")
            self.assertTrue(c.reply_line().startswith("250 2.0.0 "))
            self.assertTrue(postern.wait_until(lambda: not incoming_fds(self.d), 10), incoming_fds(self.d))
        [path] = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=30)
        self.assertTrue(postern.read_bytes(path).endswith(b"\nlast line\n"))

    def test_a_message_without_a_header_section(self):
        """Its first line is no field: the body starts there, as before."""
        message = b"this line is no header field\r\n" + body_lines(300 * 1024, seed=1)
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["alice@localhost"], message)
        [path] = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=30)
        data = postern.read_bytes(path)
        m = RECEIVED_RX.match(data)
        self.assertIsNotNone(m, data[:400])
        self.assertEqual(data[m.end():], message.replace(b"\r\n", b"\n"))

    def test_a_header_section_longer_than_what_is_held(self):
        """300 KiB of header fields (the session holds 256 KiB of them),
        then a body: the message arrives as sent."""
        fields = b"".join(b"X-Field-%05d: %s\r\n" % (i, b"v" * 50) for i in range(300 * 1024 // 70))
        message = b"Subject: many fields\r\n" + fields + b"\r\n" + body_lines(200 * 1024, seed=2)
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=60) as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["alice@localhost"], message)
        [path] = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=30)
        data = postern.read_bytes(path)
        m = RECEIVED_RX.match(data)
        self.assertIsNotNone(m, data[:400])
        self.assertEqual(data[m.end():], message.replace(b"\r\n", b"\n"))

    def test_a_loop_is_found_in_a_large_message(self):
        """100 Received: fields before a 2 MiB body: refused as a loop, the
        session goes on, and the refused message left no file open."""
        with self.d.client() as c:
            self.start_data(c)
            c.send(b"".join(b"Received: from hop%d.example by x; Mon, 7 Dec 2026 00:00:00 +0000\r\n" % i
                            for i in range(100)) + b"Subject: looping\r\n\r\n" + body_lines(2 * 1024 * 1024))
            c.send(b".\r\n")
            self.assertEqual(c.reply_line(), "554 5.4.6 Routing loop detected: too many Received headers")
            self.start_data(c, rcpt="bob@localhost")
            c.send(b"Subject: after the loop\r\n\r\nsmall\r\n.\r\n")
            self.assertTrue(c.reply_line().startswith("250 2.0.0 "))
        self.d.wait_files(self.d.path("mail", "bob"), 1, timeout=30)
        self.assertFalse(os.path.isdir(self.d.path("mail", "alice")))
        self.assertTrue(postern.wait_until(lambda: not incoming_fds(self.d), 10), incoming_fds(self.d))

    def test_too_big_is_refused_and_dropped_as_it_comes(self):
        """Past max-message-size the rest is neither held nor written: the
        temporary file is gone before the client's "."."""
        with self.d.client() as c:
            self.start_data(c)
            c.send(b"Subject: too big\r\n\r\n" + body_lines(13 * 1024 * 1024))
            self.assertTrue(postern.wait_until(lambda: not incoming_fds(self.d), 10), incoming_fds(self.d))
            c.send(b".\r\n")
            self.assertEqual(c.reply_line(), "552 5.3.4 Message too big for system")
            self.assertTrue(c.cmd("NOOP").startswith("250"))
        time.sleep(0.5)
        self.assertFalse(os.path.isdir(self.d.path("mail", "alice")))
        self.assertEqual(len(self.d.wait_log(r'smtp message-refused result="?552 5\.3\.4 Message too big')), 1,
                         self.d.log())


if __name__ == "__main__":
    postern.run_tests()
