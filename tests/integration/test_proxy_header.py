"""`listen on ... proxy-v2`: a proxy's PROXY protocol header names the client.

A Python client plays the proxy on loopback: it sends a v2 (or v1) header
claiming 192.0.2.7, then an SMTP transaction. The delivered message's
Received: header, the `match from src 192.0.2.0/24` rule and the log must
all see 192.0.2.7. The proxy's LOCAL command keeps the socket's address.
Before the header the server says nothing; a missing, malformed, too long
or truncated header closes the connection with a log line and no reply. A
listener without the option treats a header as the bad command it is.
"""

import contextlib
import os
import re
import socket
import ssl
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd, family, body):
    return SIG + bytes([ver_cmd, family]) + struct.pack(">H", len(body)) + body


def v2_inet4(src, dst, sport, dport, tlvs=b""):
    return v2(0x21, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport) + tlvs)


V2_LOCAL = v2(0x20, 0x00, b"")

CONFIG = ('action "proxied" maildir "@DIR@/proxied" user root\n'
          'action "direct" maildir "@DIR@/direct" user root\n'
          'match from src 192.0.2.0/24 for local action "proxied"\n'
          'match from local for local action "direct"\n')


class ProxiedDaemon(postern.Daemon):
    """Its main listener takes PROXY headers: the readiness probe sends
    the proxy's LOCAL command first, as HAProxy's health checks do."""

    def _connect(self, timeout):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(V2_LOCAL)
        return s


class ProxiedClient(postern.RawClient):
    """A RawClient that sends `header` (and `early`, in the same write) before the banner."""

    def __init__(self, port, header, early=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=postern.IO_TIMEOUT)
        self.sock.settimeout(postern.IO_TIMEOUT)
        self.buf = b""
        self.sock.sendall(header + early)
        self.banner = self.reply()


class TlsAfterHeader:
    """An implicit-TLS client whose ClientHello goes in the same write as the
    PROXY header (as a proxy forwarding at once would send it), over a
    memory BIO so that the two are one sendall."""

    def __init__(self, port, header):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=postern.IO_TIMEOUT)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="mail.test")
        self.buf = b""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.sock.sendall(header + self.outgoing.read())
        self._until(lambda: self._try(self.tls.do_handshake))

    def _try(self, step):
        try:
            step()
            return True
        except ssl.SSLWantReadError:
            return False

    def _pump(self):
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.incoming.write(data)

    def _until(self, done):
        for _ in range(1000):
            if done():
                out = self.outgoing.read()
                if out:
                    self.sock.sendall(out)
                return
            self._pump()
        raise AssertionError("TLS exchange did not finish")

    def line(self):
        def got():
            try:
                self.buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            return b"\n" in self.buf
        self._until(got)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().rstrip("\r")

    def reply(self):
        while True:
            line = self.line()
            if line[3:4] == " ":
                return line

    def cmd(self, text):
        self.tls.write(text.encode() + b"\r\n")
        self.sock.sendall(self.outgoing.read())
        return self.reply()

    def close(self):
        self.sock.close()


class ProxyHeader(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.plain_port, cls.smtps_port = postern.free_port(), postern.free_port()

        def pki(folder):
            postern.make_self_signed_pki(os.path.join(folder, "server.crt"), os.path.join(folder, "server.key"),
                                         "mail.test")

        cls.d = ProxiedDaemon(CONFIG + f"listen on 127.0.0.1 port {cls.plain_port}\n"
                              'pki mail.test cert "@DIR@/server.crt"\n'
                              'pki mail.test key "@DIR@/server.key"\n'
                              f"listen on 127.0.0.1 port {cls.smtps_port} smtps pki mail.test proxy-v2\n",
                              name="proxy", listen_options="proxy-v2", prepare=pki).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(*sys.exc_info())

    def send_mail(self, c, subject, helo="client.example"):
        self.assertTrue(c.cmd(f"EHLO {helo}").startswith("250 "))
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok")
        self.assertEqual(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Destination address valid: Recipient ok")
        self.assertTrue(c.cmd("DATA").startswith("354 "))
        reply = c.cmd(f"Subject: {subject}\r\n\r\nbody\r\n.")
        self.assertTrue(reply.startswith("250 "), reply)
        c.cmd("QUIT")

    def delivered(self, folder, subject):
        """The text of the message with `subject` in maildir `folder`, waiting for it."""
        path = self.d.path(folder)
        found = []

        def look():
            found.clear()
            for name in postern.maildir_new(path) if os.path.isdir(os.path.join(path, "new")) else []:
                text = postern.read_bytes(os.path.join(path, "new", name)).decode("utf-8", "replace")
                if f"Subject: {subject}\n" in text:
                    found.append(text)
            return found

        self.assertTrue(postern.wait_until(look, 15), f"no message {subject!r} in {folder}:\n{self.d.log()}")
        return found[0]

    def received_from(self, text):
        m = re.search(r"^Received: from (\S+) \(([^)]*)\)\n", text, re.M)
        self.assertIsNotNone(m, text[:400])
        return m.group(1), m.group(2)

    def refused_silently(self, payload, reason, close_write=False):
        """The connection closes with nothing sent back, and the log says why."""
        before = self.d.log().count("smtp proxy-refused")
        with socket.create_connection(("127.0.0.1", self.d.port), timeout=postern.IO_TIMEOUT) as s:
            if payload:
                s.sendall(payload)
            if close_write:
                s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            got = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
        self.assertEqual(got, b"", "the server answered before a PROXY header")
        lines = self.d.wait_log(r"^.* smtp proxy-refused proxy=127\.0\.0\.1 error=.*$", count=before + 1)
        self.assertIn(reason, lines[-1], self.d.log())

    # ---- a header that names the client ----

    def test_v2_header_names_the_client_for_rules_received_and_log(self):
        with ProxiedClient(self.d.port, v2_inet4("192.0.2.7", "198.51.100.1", 40000, 25)) as c:
            self.assertEqual(c.banner[0], 220)
            self.send_mail(c, "proxied v2")
        text = self.delivered("proxied", "proxied v2")
        helo, where = self.received_from(text)
        self.assertEqual(helo, "client.example")
        self.assertTrue(where.endswith("[192.0.2.7]"), where)
        self.assertNotIn("127.0.0.1", text.split("\n\n")[0])
        log = self.d.log()
        m = re.search(r"^\S+ \S+ (\S+) smtp proxied proxy=127\.0\.0\.1 version=2 address=192\.0\.2\.7 port=40000$",
                      log, re.M)
        self.assertIsNotNone(m, log)
        self.assertRegex(log, r"(?m)^\S+ \S+ " + m.group(1) + r" smtp connected address=192\.0\.2\.7$")

    def test_v2_with_tlvs_and_the_first_command_in_the_same_write(self):
        tlvs = b"\x01\x00\x04smtp" + b"\x04\x00\x00"
        with ProxiedClient(self.d.port, v2_inet4("192.0.2.8", "198.51.100.1", 40001, 25, tlvs),
                           early=b"EHLO early.example\r\n") as c:
            self.assertEqual(c.banner[0], 220)
            code, _ = c.reply()  # the EHLO sent with the header
            self.assertEqual(code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Destination address valid: Recipient ok")
            self.assertTrue(c.cmd("DATA").startswith("354 "))
            self.assertTrue(c.cmd("Subject: proxied early\r\n\r\nbody\r\n.").startswith("250 "))
        helo, where = self.received_from(self.delivered("proxied", "proxied early"))
        self.assertEqual(helo, "early.example")
        self.assertTrue(where.endswith("[192.0.2.8]"), where)

    def test_v1_header(self):
        with ProxiedClient(self.d.port, b"PROXY TCP4 192.0.2.9 198.51.100.1 40002 25\r\n") as c:
            self.send_mail(c, "proxied v1")
        _, where = self.received_from(self.delivered("proxied", "proxied v1"))
        self.assertTrue(where.endswith("[192.0.2.9]"), where)

    def test_local_command_keeps_the_socket_address(self):
        with ProxiedClient(self.d.port, V2_LOCAL) as c:
            self.send_mail(c, "proxy local")
        _, where = self.received_from(self.delivered("direct", "proxy local"))
        self.assertTrue(where.endswith("[127.0.0.1]"), where)

    def test_smtps_after_the_header_with_the_tls_hello_in_the_same_write(self):
        c = TlsAfterHeader(self.smtps_port, v2_inet4("192.0.2.10", "198.51.100.1", 40003, 465))
        try:
            self.assertRegex(c.reply(), r"^220 \S+ ESMTP postern$")
            self.assertTrue(c.cmd("EHLO tls.example").startswith("250 "))
            self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>"), "250 2.1.0 Ok")
            self.assertEqual(c.cmd("RCPT TO:<alice@localhost>"), "250 2.1.5 Destination address valid: Recipient ok")
            self.assertTrue(c.cmd("DATA").startswith("354 "))
            self.assertTrue(c.cmd("Subject: proxied tls\r\n\r\nbody\r\n.").startswith("250 "))
        finally:
            c.close()
        helo, where = self.received_from(self.delivered("proxied", "proxied tls"))
        self.assertEqual(helo, "tls.example")
        self.assertTrue(where.endswith("[192.0.2.10]"), where)

    # ---- no header, or a bad one ----

    def test_plain_smtp_on_a_proxy_listener_is_closed_unanswered(self):
        self.refused_silently(b"EHLO client.example\r\n", "error=\"not a PROXY protocol header\"")

    def test_connection_closed_before_the_header(self):
        self.refused_silently(b"", "error=\"connection closed before a PROXY header\"", close_write=True)

    def test_truncated_header(self):
        header = v2_inet4("192.0.2.7", "198.51.100.1", 40000, 25)
        self.refused_silently(header[:20], "error=\"connection closed within the PROXY header\"", close_write=True)

    def test_too_long_header(self):
        self.refused_silently(SIG + b"\x21\x11\xff\xff",
                              "error=\"v2 header of 65551 bytes, over the 4096-byte limit\"")

    def test_malformed_headers(self):
        self.refused_silently(b"PROXY TCP4 192.0.2.300 198.51.100.1 1 25\r\n",
                              "error=\"v1 header with an address that is not TCP4\"")
        self.refused_silently(v2(0x21, 0x12, b"\x00" * 12), "error=\"v2 header for UDP: SMTP runs over TCP\"")
        self.refused_silently(b"PROXY " + b"A" * 120, "error=\"v1 header without its CRLF in the first 107 bytes\"")

    # ---- a listener without the option ----

    def test_a_listener_without_the_option_takes_the_header_as_a_bad_command(self):
        with postern.RawClient(self.plain_port) as c:
            self.assertEqual(c.banner[0], 220)
            self.assertEqual(c.cmd("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25"), "500 5.5.1 Command unrecognized")
            self.send_mail(c, "not proxied")
        _, where = self.received_from(self.delivered("direct", "not proxied"))
        self.assertTrue(where.endswith("[127.0.0.1]"), where)
        # The v2 signature ends in QUIT: such a server says goodbye.
        with postern.RawClient(self.plain_port) as c:
            c.send(v2_inet4("192.0.2.7", "198.51.100.1", 40000, 25))
            self.assertIn(b"221 ", c.pending(2.0))


class ProxyHeaderShutdown(unittest.TestCase):
    def test_a_session_waiting_for_its_header_is_closed_unanswered_when_the_daemon_stops(self):
        d = ProxiedDaemon(CONFIG, name="proxy-stop", listen_options="proxy-v2").__enter__()
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=postern.IO_TIMEOUT)
            s.sendall(b"PROXY TCP4 192.0.2.7")  # a header begun, not finished
            time.sleep(0.3)  # the daemon has read the partial header: nothing logs that
            d.stop()
            s.settimeout(10)
            got = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    got += chunk
            s.close()
            self.assertEqual(got, b"", "the server spoke before the PROXY header")
        finally:
            d.__exit__(*sys.exc_info())


if __name__ == "__main__":
    postern.run_tests()
