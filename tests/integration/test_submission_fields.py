"""Date: and Message-ID: added to submitted messages (issue 14).

The daemon acts as a submission server (RFC 6409 section 8) on the local
socket and for authenticated clients: a message without a Date: or a
Message-ID: gets one, at the end of its header section, before its filters
see it. Any other session relays, and its messages are stored as they came.

One daemon: the local socket with postern's filter-dkim on it (so the test
sees the filter sign the added fields, checked by Debian's python3-dkim), a
TCP listener without auth (the harness's), and a STARTTLS listener with
auth-optional. Every message is spoken in SMTP by the test itself (no
postern-sendmail, which adds the fields on its own), and the delivered bytes
are compared with what was sent.
"""

import email.utils
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

import postern
from test_filter_debian import (SYSTEM_PYTHON, check_prerequisites, dkim_verify, headers_of, make_rsa_key,
                                readable_by_filters, stuffed, tag, wire_form)

FILTER = os.path.join(postern.BUILD_DIR, "filter-dkim")
POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")

CONFIG = """listen on socket filter "dkim"
listen on 127.0.0.1 port @AUTHPORT@ tls hostname mail.test auth-optional <creds>
action "l" maildir "@DIR@/mail/%{rcpt.user}" user root
match from any for local action "l"
match auth from any for any action "l"
"""

BARE = ("From: Sender <sender@example.org>\r\nTo: Bob <bob@localhost>\r\nSubject: @SUBJECT@\r\n\r\n"
        "first line\r\n.a dot\r\nlast line\r\n")
COMPLETE = ("From: Sender <sender@example.org>\r\nTo: Bob <bob@localhost>\r\nSubject: @SUBJECT@\r\n"
            "Date: Mon, 07 Dec 2026 05:31:14 +0000\r\nMessage-ID: <complete.1@example.org>\r\n\r\n"
            "first line\r\nlast line\r\n")


class UnixClient(postern.RawClient):
    """RawClient on the local socket."""

    def __init__(self, path, timeout=postern.IO_TIMEOUT):  # noqa: super().__init__ connects over TCP
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.banner = self.reply()


def lf(crlf_text):
    """A message as sent (not dot-stuffed) as a delivered copy holds it."""
    return crlf_text.replace("\r\n", "\n").encode()


def fields(data, name):
    return [v for n, v in headers_of(data) if n.lower() == name.lower()]


class SubmissionFields(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.records = {}
        cls.auth_port = postern.free_port()
        bob_hash = subprocess.run([POSTERNCTL, "encrypt", "bobpass"], capture_output=True, text=True,
                                  check=True).stdout.strip()

        def prepare(folder):
            shutil.copy(FILTER, os.path.join(folder, "filter-dkim"))
            os.chmod(os.path.join(folder, "filter-dkim"), 0o755)
            cls.records["sel._domainkey.example.org"] = make_rsa_key(folder, "rsa.key")
            postern.make_self_signed_pki(os.path.join(folder, "server.crt"), os.path.join(folder, "server.key"),
                                         "mail.test")
            with open(os.path.join(folder, "creds"), "w") as f:
                f.write(f"bob {bob_hash}\n")
            readable_by_filters(os.path.join(folder, "creds"))

        head = ('filter "dkim" proc-exec "@DIR@/filter-dkim -d example.org -s sel -k @DIR@/rsa.key"\n'
                'pki mail.test cert "@DIR@/server.crt"\n'
                'pki mail.test key "@DIR@/server.key"\n'
                'table creds file:@DIR@/creds\n')
        cls.d = postern.Daemon(CONFIG.replace("@AUTHPORT@", str(cls.auth_port)), name="subfields",
                               prepare=prepare, before_listen=head)
        cls.d.__enter__()
        cls.socket = cls.d.path("run", "submit.sock")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    # ---- helpers ----

    def send_raw(self, client, message_crlf, rcpt):
        with client as c:
            self.assertEqual(c.banner[0], 220)
            for line, want in (("EHLO client.example", "250"), ("MAIL FROM:<sender@example.org>", "250"),
                               (f"RCPT TO:<{rcpt}@localhost>", "250"), ("DATA", "354")):
                got = c.cmd(line)
                self.assertTrue(got.startswith(want), f"{line!r} answered {got!r}")
            c.send(stuffed(message_crlf) + ".\r\n")
            reply = c.reply_line()
            c.cmd("QUIT")
        m = re.fullmatch(r"250 2\.0\.0 (\S+) Message accepted for delivery", reply)
        self.assertTrue(m, reply)
        return m.group(1)

    def delivered(self, user):
        files = self.d.wait_files(self.d.path("mail", user), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())
        return postern.read_bytes(files[0])

    def check_added(self, data, msgid, host):
        """Exactly one Date: and one Message-ID:, ours, after the client's
        fields and before the body."""
        [date] = fields(data, "Date")
        [mid] = fields(data, "Message-ID")
        self.assertRegex(mid, r"^<[0-9a-f]{16}\." + re.escape(msgid) + "@" + re.escape(host) + ">$")
        when = email.utils.parsedate_to_datetime(date).timestamp()
        self.assertLess(abs(when - time.time()), 300, date)
        return date, mid

    def smtp_tls(self):
        s = smtplib.SMTP(timeout=20)
        s._host = "mail.test"  # the name checked against the certificate
        s.connect("127.0.0.1", self.auth_port)
        ctx = ssl.create_default_context(cafile=self.d.path("server.crt"))
        s.starttls(context=ctx)
        s.ehlo("client.example")
        return s

    def send_smtplib(self, s, message_crlf, rcpt):
        with s:
            self.assertEqual(s.mail("sender@example.org")[0], 250)
            self.assertEqual(s.rcpt(f"{rcpt}@localhost")[0], 250)
            code, text = s.data(message_crlf.encode())
            self.assertEqual(code, 250, text)
        return re.match(r"2\.0\.0 (\S+) ", text.decode()).group(1)

    # ---- the local socket ----

    def test_socket_message_gets_them_before_its_filter(self):
        check_prerequisites(self, programs=[FILTER, SYSTEM_PYTHON], python_modules=["dkim"])
        msg = BARE.replace("@SUBJECT@", "bare")
        msgid = self.send_raw(UnixClient(self.socket), msg, "bare")
        data = self.delivered("bare")
        date, mid = self.check_added(data, msgid, self.d.hostname)
        self.assertIn(b"\nSubject: bare\nDate: " + date.encode() + b"\nMessage-ID: " + mid.encode() +
                      b"\n\nfirst line\n.a dot\nlast line\n", data)
        self.assertTrue(data.endswith(b"\n\nfirst line\n.a dot\nlast line\n"), data)
        # The DKIM filter on the socket saw them, and signed them.
        [sig] = fields(data, "DKIM-Signature")
        signed = tag(sig, "h").lower().split(":")
        self.assertIn("date", signed)
        self.assertIn("message-id", signed)
        ok, why = dkim_verify(wire_form(data, strip_delivery_headers=True), self.records)
        self.assertTrue(ok, why)

    def test_socket_message_that_has_them_is_unchanged(self):
        msg = COMPLETE.replace("@SUBJECT@", "complete")
        self.send_raw(UnixClient(self.socket), msg, "complete")
        data = self.delivered("complete")
        self.assertTrue(data.endswith(lf(msg)), data)  # the message as sent, under the trace and signature fields
        self.assertEqual(fields(data, "Date"), ["Mon, 07 Dec 2026 05:31:14 +0000"])
        self.assertEqual(fields(data, "Message-ID"), ["<complete.1@example.org>"])

    def test_socket_message_without_a_header_section(self):
        msg = "just a line\r\nand another\r\n"
        msgid = self.send_raw(UnixClient(self.socket), msg, "headless")
        data = self.delivered("headless")
        date, mid = self.check_added(data, msgid, self.d.hostname)
        # The text stays the body: an empty line after the added fields.
        self.assertTrue(data.endswith(f"\nDate: {date}\nMessage-ID: {mid}\n\njust a line\nand another\n".encode()),
                        data)

    # ---- TCP ----

    def test_tcp_without_auth_is_unchanged(self):
        msg = BARE.replace("@SUBJECT@", "relayed")
        self.send_raw(postern.RawClient(self.d.port), msg, "relayed")
        data = self.delivered("relayed")
        self.assertTrue(data.endswith(lf(msg)), data)
        self.assertEqual(fields(data, "Date"), [])
        self.assertEqual(fields(data, "Message-ID"), [])

    def test_authenticated_submission_gets_them(self):
        s = self.smtp_tls()
        s.login("bob", "bobpass")
        msg = BARE.replace("@SUBJECT@", "submitted")
        msgid = self.send_smtplib(s, msg, "submitted")
        data = self.delivered("submitted")
        date, mid = self.check_added(data, msgid, "mail.test")
        self.assertTrue(data.endswith(f"\nSubject: submitted\nDate: {date}\nMessage-ID: {mid}\n\n"
                                      "first line\n.a dot\nlast line\n".encode()), data)

    def test_same_listener_without_auth_is_unchanged(self):
        msg = BARE.replace("@SUBJECT@", "not submitted")
        self.send_smtplib(self.smtp_tls(), msg, "notsubmitted")
        data = self.delivered("notsubmitted")
        self.assertTrue(data.endswith(lf(msg)), data)
        self.assertEqual(fields(data, "Date"), [])
        self.assertEqual(fields(data, "Message-ID"), [])


if __name__ == "__main__":
    postern.run_tests()
