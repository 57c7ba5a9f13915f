"""Attack batteries (issue 17): SMTP smuggling, STARTTLS command injection,
open-relay tricks, header injection through envelope values, and bounces of
oversized or malformed messages.

Each attack is sent as an attacker would (raw bytes on a socket, often in
one write) and each test checks what must never happen: a second message
out of one DATA, a command from before STARTTLS run after it, a message
handed to the relay (a sink here, which must see no connection), a header
line made of an envelope value, a report that is unbounded or not MIME.
"""

import email
import email.policy
import os
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

SMUGGLED = ("MAIL FROM:<evil@example.net>\r\n"
            "RCPT TO:<victim@localhost>\r\n"
            "DATA\r\n"
            "Subject: smuggled\r\n"
            "\r\n"
            "smuggled body\r\n")

# End-of-data look-alikes: the CR/LF combinations and those of smtpsmug
# (bare LF or CR around the dot, NUL next to it, doubled line ends).
LOOKALIKES = {
    "LF.LF": "\n.\n",
    "LF.CRLF": "\n.\r\n",
    "CRLF.LF": "\r\n.\n",
    "CR.CRLF": "\r.\r\n",
    "CRLF.CR": "\r\n.\r",
    "CR.CR": "\r.\r",
    "LF.CR": "\n.\r",
    "CR.LF": "\r.\n",
    "CRLF.NUL.CRLF": "\r\n.\x00\r\n",
    "CRLF.NUL.CRLF-before": "\r\n\x00.\r\n",
    "LFLF.LFLF": "\n\n.\n\n",
    "CRCRLF.CRCRLF": "\r\r\n.\r\r\n",
    "CRLF.SP.CRLF": "\r\n. \r\n",
    "CRLF.TAB.CRLF": "\r\n.\t\r\n",
}

LOCAL = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
         'match from any for local action "l"\n')


def delivered(d, user):
    path = d.path("mail", user)
    return postern.maildir_new(path) if os.path.isdir(path) else []


class Smuggling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(LOCAL, name="attack-smuggle").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_no_lookalike_makes_a_second_message(self):
        for name, sep in LOOKALIKES.items():
            for pipelined in (False, True):
                with self.subTest(sep=name, pipelined=pipelined), self.d.client() as c:
                    self.assertEqual(c.cmd("EHLO attacker.example")[:4], "250 ")
                    head = "MAIL FROM:<honest@example.org>\r\nRCPT TO:<smug@localhost>\r\nDATA\r\n"
                    body = "Subject: hi\r\n\r\nhello" + sep + SMUGGLED + ".\r\n"
                    if pipelined:  # as smtpsmug sends it: everything in one write
                        c.send(head + body)
                        replies = [c.reply_line() for _ in range(3)]
                    else:
                        replies = [c.cmd(line) for line in head.split("\r\n")[:3]]
                        c.send(body)
                    self.assertEqual([r[:3] for r in replies], ["250", "250", "354"], replies)
                    end = c.reply_line()
                    # One message at most: accepted whole or refused, and
                    # never a reply to a smuggled command.
                    self.assertRegex(end, r"^(250 2\.0\.0 |550 5\.6\.0 )", name)
                    extra = c.pending(0.5)
                    self.assertEqual(extra, b"", f"{name}: replies to smuggled commands: {extra!r}")
                    self.assertEqual(c.cmd("NOOP"), "250 2.0.0 Ok")
                    self.assertEqual(c.cmd("RCPT TO:<victim@localhost>")[:4], "503 ")  # no transaction open
        time.sleep(1.0)
        self.assertEqual(delivered(self.d, "victim"), [], "a smuggled message was delivered")
        self.assertNotIn("evil@example.net", self.d.log())
        for f in delivered(self.d, "smug"):
            data = postern.read_bytes(os.path.join(self.d.path("mail", "smug"), "new", f)).decode("latin-1")
            self.assertEqual(data.count("Received: "), 1, data)
            self.assertNotIn("\nSubject: smuggled", data.split("\n\n", 1)[0])


class StarttlsInjection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        def prepare(folder):
            postern.make_self_signed_pki(os.path.join(folder, "server.crt"), os.path.join(folder, "server.key"),
                                         "mail.test")

        head = 'pki mail.test cert "@DIR@/server.crt"\npki mail.test key "@DIR@/server.key"\n'
        cls.d = postern.Daemon(LOCAL, name="attack-starttls", before_listen=head, prepare=prepare,
                               listen_options="tls hostname mail.test").__enter__()
        cls.ctx = ssl.create_default_context()
        cls.ctx.check_hostname = False
        cls.ctx.verify_mode = ssl.CERT_NONE

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def injected(self, after):
        with self.d.client() as c:
            c.cmd("EHLO attacker.example")
            c.send("STARTTLS\r\n" + after)
            self.assertEqual(c.reply_line(), "220 2.0.0 Ready to start TLS")
            # Nothing in clear after the 220: the next bytes are the handshake's.
            c.sock = self.ctx.wrap_socket(c.sock, server_hostname="mail.test")
            # No reply to the injected commands comes over TLS either.
            self.assertEqual(c.pending(0.7), b"")
            # The session starts afresh: no greeting, no transaction.
            self.assertEqual(c.cmd("MAIL FROM:<honest@example.org>")[:4], "503 ")
            self.assertEqual(c.cmd("EHLO honest.example")[:4], "250 ")
            self.assertEqual(c.cmd("RCPT TO:<victim@localhost>")[:4], "503 ")
            self.assertEqual(c.cmd("MAIL FROM:<honest@example.org>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<tls@localhost>")[:4], "250 ")
            self.assertEqual(c.cmd("DATA")[:4], "354 ")
            c.send("Subject: after tls\r\n\r\nclean\r\n.\r\n")
            self.assertTrue(c.reply_line().startswith("250 2.0.0 "))

    def test_commands_after_starttls_in_the_same_packet_are_discarded(self):
        self.injected("RSET\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@localhost>\r\n")
        self.injected("EHLO evil.example\r\nMAIL FROM:<evil@example.net>\r\n")
        self.injected("NOOP\r\n" * 50)
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "tls"), 3)), 3)
        self.assertEqual(delivered(self.d, "victim"), [])
        self.assertNotIn("evil@example.net", self.d.log())
        self.assertTrue(self.d.wait_log(r"smtp starttls-discarded bytes=\d+", count=3))


# (recipient, what must happen): "refused" = any 5xx reply; "local" = it may be
# accepted, but only as a local recipient (delivered under mail/, never relayed).
RELAY_ATTEMPTS = [
    ("<@a.example:victim@remote.example>", "refused"),  # source route
    ("<@localhost:victim@remote.example>", "refused"),
    ("<@remote.example,@b.example:victim@remote.example>", "refused"),
    ("<victim%remote.example@localhost>", "local"),  # %-hack
    ("<victim%remote.example%localhost@localhost>", "local"),
    ("<remote.example!victim@localhost>", "local"),  # bang path
    ("<victim@remote.example%localhost>", "refused"),
    ('<"victim@remote.example"@localhost>', "local"),  # quoted local part
    ('<"victim@remote.example">', "local"),
    ('<"victim%remote.example"@localhost>', "local"),
    ("<victim@[192.0.2.1]>", "refused"),  # address literals
    ("<victim@[IPv6:2001:db8::1]>", "refused"),
    ("<victim@[999.1.1.1]>", "refused"),
    ("<postmaster@remote.example>", "refused"),  # postmaster variants
    ("<postmaster%remote.example@localhost>", "local"),
    ("<postmaster@[192.0.2.1]>", "refused"),
    ("<POSTMASTER@REMOTE.EXAMPLE>", "refused"),
    ("<victim@remote.example.>", "refused"),
    ("<victim@localhost@remote.example>", "refused"),
    ("<victim@remote.example@localhost>", "refused"),
    ("<victim@localhost.remote.example>", "refused"),
    ("<victim@remote.example> <x@localhost>", "refused"),
    ("victim@remote.example", "refused"),
]


class OpenRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink().start()
        config = (f'action "out" relay host smtp://127.0.0.1:{cls.sink.port}\n' + LOCAL +
                  'match auth from any for any action "out"\n')  # nobody authenticates here
        cls.d = postern.Daemon(config, name="attack-relay").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        cls.sink.stop()

    def test_nothing_is_relayed(self):
        accepted = 0
        for rcpt, expect in RELAY_ATTEMPTS:
            with self.subTest(rcpt=rcpt), self.d.client() as c:
                c.cmd("EHLO attacker.example")
                self.assertEqual(c.cmd("MAIL FROM:<spammer@example.net>"), "250 2.1.0 Ok")
                reply = c.cmd(f"RCPT TO:{rcpt}")
                if expect == "refused":
                    self.assertRegex(reply, r"^5\d\d 5\.\d\.\d ", rcpt)
                    if reply.startswith("550"):
                        self.assertTrue(reply.startswith("550 5.7.1 "), reply)
                    self.assertEqual(c.cmd("DATA")[:4], "503 ")
                    continue
                self.assertRegex(reply, r"^(250 2\.1\.5 |5\d\d )", rcpt)
                if reply.startswith("250"):
                    self.assertEqual(c.cmd("DATA")[:4], "354 ")
                    c.send("Subject: relay test\r\n\r\nbody\r\n.\r\n")
                    self.assertTrue(c.reply_line().startswith("250 2.0.0 "))
                    accepted += 1
        self.assertTrue(self.d.wait_queue_empty(15), self.d.queue_entries())
        time.sleep(0.5)
        self.assertEqual(self.sink.connections, [], "a message went to the relay")
        self.assertNotIn("relay delivery", self.d.log())
        # What was accepted was delivered locally, inside mail/.
        found = 0
        for root, _dirs, files in os.walk(self.d.path("mail")):
            if os.path.basename(root) == "new":
                found += len(files)
        self.assertEqual(found, accepted)
        for entry in os.listdir(self.d.dir):
            self.assertNotIn("remote.example", entry)


class HeaderInjection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                  'action "fail" mda "/bin/sh -c \'exit 69\'" user root\n'
                  'match from any for rcpt-to "fail@localhost" action "fail"\n'
                  'match from any for local action "l"\n')
        cls.d = postern.Daemon(config, name="attack-inject").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_envelope_values_with_control_characters_are_refused(self):
        helos = ["evil\rX-Injected: yes", "evil\x0bX-Injected: yes", "evil\x00host", "evil\x01host",
                 "[192.0.2.1]\rX-Injected: yes", "evil host X-Injected: yes", "ev\x7fil"]
        mails = ["<a\r@x.example>", '<"a\rX-Injected: yes"@x.example>', '<"a\x01b"@x.example>',
                 '<"a\tb"@x.example>', "<a\x00@x.example>", '<"a\\\rb"@x.example>', "<a@x.example\r>",
                 "<a@x.example> ENVID=E+0D+0AX-Injected:+20yes", "<a@x.example> ENVID=E+00",
                 "<a@x.example\rX-Injected: yes>"]
        rcpts = ['<"x\rX-Injected: yes"@localhost>', '<"x\x0bX-Injected: yes"@localhost>', '<"x\x01y"@localhost>',
                 "<x@localhost> ORCPT=rfc822;x+0D+0AX-Injected:+20yes@localhost",
                 "<x@localhost> ORCPT=rfc822;x+0AX-Injected:+20yes@localhost", "<x\r@localhost>"]
        with self.d.client() as c:  # a session each: 20 errors end one
            for h in helos:
                self.assertRegex(c.cmd("EHLO " + h), r"^501 ", repr(h))
                self.assertRegex(c.cmd("HELO " + h), r"^501 ", repr(h))
        with self.d.client() as c:
            self.assertEqual(c.cmd("EHLO honest.example")[:4], "250 ")
            for m in mails:
                self.assertRegex(c.cmd("MAIL FROM:" + m), r"^5\d\d ", repr(m))
        with self.d.client() as c:
            self.assertEqual(c.cmd("EHLO honest.example")[:4], "250 ")
            self.assertEqual(c.cmd("MAIL FROM:<alice@localhost> RET=FULL ENVID=E1"), "250 2.1.0 Ok")
            for r in rcpts:
                self.assertRegex(c.cmd("RCPT TO:" + r), r"^5\d\d ", repr(r))
            self.assertEqual(c.cmd("RCPT TO:<fail@localhost> ORCPT=rfc822;fail+2Bx@localhost")[:4], "250 ")
            self.assertEqual(c.cmd("DATA")[:4], "354 ")
            c.send("Subject: injection\r\n\r\nbody\r\n.\r\n")
            self.assertTrue(c.reply_line().startswith("250 2.0.0 "))
            c.cmd("QUIT")
        # The bounce: well formed, no injected field anywhere.
        files = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=20)
        self.assertEqual(len(files), 1, self.d.log())
        raw = postern.read_bytes(files[0])
        self.assertNotIn(b"X-Injected", raw)
        self.assertNotIn(b"\r", raw)
        report = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(report.get_content_type(), "multipart/report")
        parts = report.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "message/rfc822"])
        returned = parts[2].get_payload()[0]
        received = returned["Received"]
        self.assertIn("from honest.example (", received)
        for bad in ("evil", "X-Injected"):
            self.assertNotIn(bad, str(returned))
        self.assertNotIn("X-Injected", self.d.log())


class MalformedBounces(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                  'action "fail" mda "/bin/sh -c \'exit 69\'" user root\n'
                  'match from any for rcpt-to "fail@localhost" action "fail"\n'
                  'match from any for local action "l"\n'
                  'smtp max-message-size 8M\n')
        cls.d = postern.Daemon(config, name="attack-bounce").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def bounce_of(self, sender, message, ret="FULL"):
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            self.assertEqual(c.cmd(f"MAIL FROM:<{sender}@localhost> RET={ret}"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<fail@localhost>")[:4], "250 ")
            self.assertEqual(c.cmd("DATA")[:4], "354 ")
            c.send(message + ".\r\n")
            self.assertTrue(c.reply_line().startswith("250 2.0.0 "))
        files = self.d.wait_files(self.d.path("mail", sender), 1, timeout=30)
        self.assertEqual(len(files), 1, self.d.log())
        raw = postern.read_bytes(files[0])
        report = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        parts = report.get_payload()
        self.assertEqual(len(parts), 3, [p.get_content_type() for p in parts])
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        self.assertFalse(report.defects, report.defects)
        boundary = report.get_boundary()
        self.assertEqual(raw.count(f"--{boundary}--".encode()), 1)
        self.assertTrue(all(len(line) <= 998 for line in raw.split(b"\n")[:200]))
        return raw, parts

    def test_oversized_message_bounces_bounded(self):
        big = "Subject: big\r\n\r\n" + ("x" * 76 + "\r\n") * 40000  # 3 MB
        raw, parts = self.bounce_of("big", big)
        self.assertLess(len(raw), 300 * 1024)
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertIn("too large to be returned whole", parts[0].get_content())

    def test_message_that_is_all_headers_bounces_bounded(self):
        headers = "".join(f"X-H{i}: {'y' * 70}\r\n" for i in range(40000))  # 3 MB, no empty line
        raw, parts = self.bounce_of("allhdr", headers, ret="HDRS")
        self.assertLess(len(raw), 300 * 1024)
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")

    def test_malformed_mime_is_returned_inside_a_well_formed_report(self):
        evil = ("Subject: broken mime\r\n"
                "MIME-Version: 1.0\r\n"
                'Content-Type: multipart/mixed; boundary="=_postern-dsn-"\r\n'
                "\r\n"
                "--=_postern-dsn-\r\n"
                "Content-Type: text/plain\r\n"
                "\r\n"
                "unterminated part\r\n"
                "--=_postern-dsn---\r\n"
                "--=_postern-dsn-\r\n"
                'Content-Type: multipart/alternative; boundary=""\r\n'
                "\r\n"
                "\xe9\xe8 8-bit junk\r\n")
        raw, parts = self.bounce_of("mime", evil)
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        returned = parts[2].get_payload()[0]
        self.assertEqual(returned["Subject"], "broken mime")


if __name__ == "__main__":
    unittest.main()
