"""postern's own filter-rspamd (issue 12) against a real rspamd, on a real
posternd, everything on loopback.

One rspamd serves the whole class (it takes 12-20 s to start): Debian's stock
rules plus, in its local config (ScanServer below), the action thresholds
rewrite_subject 20, add_header 50, reject 100 with the subject template
"[SPAM] %s", a DNS timeout of 0.2 s (nobody answers its lookups), the
milter_headers routine x-spamd-result (also for local clients) so that
rspamd asks for a header to be added to every message, and local Lua rules triggered by words in the Subject:

  postern-add-header       score 60            -> "add header"
  postern-rewrite-subject  score 25            -> "rewrite subject"
  postern-soft-reject      pre-result          -> "soft reject" (with a message)
  postern-greylist         pre-result          -> "greylist"

rspamd's dkim_signing (stock: local clients, key $DBDIR/dkim/DOMAIN.dkim.key)
signs mail from signed.example, whose key the class puts there.

Checked, from outside only (SMTP replies, the maildir, the daemon's log):
GTUBE refused after DATA with rspamd's message; a clean message delivered
with the header rspamd adds and a client's forged X-Spam header removed;
"add header", "rewrite subject", rspamd's own DKIM signature (verified by
python3-dkim); soft reject and greylist -> 451 (and -no-greylist); rspamd
unreachable -> 451 4.7.1 and nothing delivered, or with -accept-unscanned
delivered with the filter's word in postern's log; ten sessions at once
through a proxy that holds every request for DELAY seconds all answered in
about one DELAY (a slow scan does not stall the others); and the chain
{ "rspamd", "dkim" } with our filter-dkim signing rspamd's X-Spam headers.

The filters run as _postern, which may not reach the build folder (a 0700
home): each daemon's folder gets its own copy of the binaries.
"""

import concurrent.futures
import os
import pwd
import re
import shutil
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from test_filter_debian import (GTUBE, MAILDIR, RSPAMD, SYSTEM_PYTHON, RspamdServer, check_prerequisites,  # noqa: E402
                                delivered, dkim_verify, headers_of, make_rsa_key, message, queue_id, stuffed, tag,
                                wire_form)

FILTER_RSPAMD = os.path.join(postern.BUILD_DIR, "filter-rspamd")
FILTER_DKIM = os.path.join(postern.BUILD_DIR, "filter-dkim")

NOT_SCANNED = "451 4.7.1 Message not scanned for spam, try again later"


def install(folder, *programs):
    """Copies of our filters in a daemon's folder, where _postern can run them."""
    for program in programs:
        dest = os.path.join(folder, os.path.basename(program))
        shutil.copy(program, dest)
        os.chmod(dest, 0o755)


def send(port, message_crlf, sender="sender@example.org", rcpt="bob@localhost"):
    """Like test_filter_debian.transaction, with the envelope sender given."""
    c = postern.RawClient(port, timeout=60)
    try:
        if c.banner[0] != 220:
            raise AssertionError(f"banner {c.banner!r}")
        for line, want in (("EHLO client.example", "250"), (f"MAIL FROM:<{sender}>", "250"),
                           (f"RCPT TO:<{rcpt}>", "250"), ("DATA", "354")):
            got = c.cmd(line)
            if not got.startswith(want):
                raise AssertionError(f"{line!r} answered {got!r}")
        c.send(stuffed(message_crlf) + ".\r\n")
        return c, c.reply_line()
    except BaseException:
        c.close()
        raise


def body_of(data):
    return data.split(b"\n\n", 1)[1]


def lf(crlf_text):
    return crlf_text.replace("\r\n", "\n").encode()


class ScanServer(RspamdServer):
    """RspamdServer with the thresholds, headers and rules of the module comment."""

    LOCAL = dict(RspamdServer.LOCAL)
    # Nobody answers its DNS: each lookup (URIBL, DBL on the HELO and host
    # names) times out. 0.2 s instead of 1 s keeps a scan near 0.3 s.
    LOCAL["local.d/options.inc"] = """\
dns {
    nameserver = ["127.0.0.1:@DNSPORT@"];
    timeout = 0.2s;
    retransmits = 1;
}
"""
    LOCAL["local.d/actions.conf"] = """\
reject = 100;
add_header = 50;
rewrite_subject = 20;
greylist = null;
subject = "[SPAM] %s";
"""
    LOCAL["local.d/milter_headers.conf"] = """\
use = ["x-spamd-result"];
skip_local = false;
"""
    LOCAL["rspamd.local.lua"] = RspamdServer.LOCAL["rspamd.local.lua"] + """
local function subject_has(task, word)
  local s = task:get_header('Subject')
  return s ~= nil and s:find(word, 1, true) ~= nil
end

rspamd_config.POSTERN_REWRITE_SUBJECT = {
  callback = function(task) return subject_has(task, 'postern-rewrite-subject') end,
  score = 25.0,
  description = 'postern test: a subject that asks for the rewrite subject action',
}

rspamd_config:register_symbol{
  name = 'POSTERN_SOFT_REJECT',
  type = 'prefilter',
  priority = 10,
  callback = function(task)
    if subject_has(task, 'postern-soft-reject') then
      task:set_pre_result('soft reject', 'Postern test says try again later', 'postern')
      return true
    end
    return false
  end,
}

rspamd_config:register_symbol{
  name = 'POSTERN_GREYLIST',
  type = 'prefilter',
  priority = 10,
  callback = function(task)
    if subject_has(task, 'postern-greylist') then
      task:set_pre_result('greylist', 'Postern test greylists this', 'postern')
      return true
    end
    return false
  end,
}
"""

    def add_dkim_key(self, domain):
        """A key rspamd's dkim_signing finds for domain (selector "dkim");
        returns its TXT record. rspamd loads keys when it signs."""
        folder = os.path.join(self.dir, "db", "dkim")
        os.makedirs(folder, exist_ok=True)
        record = make_rsa_key(folder, name=f"{domain}.dkim.key")
        if os.geteuid() == 0:
            pw = pwd.getpwnam("_rspamd")
            for p in (folder, os.path.join(folder, f"{domain}.dkim.key")):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        return record


class DelayProxy:
    """A threaded HTTP proxy on loopback in front of rspamd: it reads each
    request whole (head and Content-Length body), notes when it came, holds
    it for `delay` seconds, then forwards it on a fresh connection (asking
    rspamd to close it) and passes the answer back. Every thread and socket
    is bounded by IO timeouts; stop() ends the accept loop."""

    IO_TIMEOUT = 30.0

    def __init__(self, target_port, delay):
        self.target_port = target_port
        self.delay = delay
        self.arrivals = []  # time.monotonic() of each request's end
        self.answered = []  # time.monotonic() of each answer passed back
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()
        return False

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_message(sock, buf):
        """One HTTP message (head + Content-Length body) from sock; returns
        (head, body, rest of buf), or None at a clean EOF before any byte.
        With no Content-Length the body runs to EOF."""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                if buf:
                    raise ConnectionError(f"EOF inside an HTTP head: {buf[:200]!r}")
                return None
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        m = re.search(rb"^content-length:\s*(\d+)\s*$", head, re.I | re.M)
        if m:
            length = int(m.group(1))
            while len(buf) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("EOF inside an HTTP body")
                buf += chunk
            return head, buf[:length], buf[length:]
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return head, buf, b""
            buf += chunk

    def _handle(self, conn):
        try:
            with conn:
                conn.settimeout(self.IO_TIMEOUT)
                buf = b""
                while True:
                    got = self._read_message(conn, buf)
                    if got is None:
                        return
                    head, body, buf = got
                    with self.lock:
                        self.arrivals.append(time.monotonic())
                    time.sleep(self.delay)
                    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
                    request = b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body
                    with socket.create_connection(("127.0.0.1", self.target_port), timeout=self.IO_TIMEOUT) as up:
                        up.sendall(request)
                        answer = self._read_message(up, b"")
                    if answer is None:
                        raise ConnectionError("rspamd closed the connection without an answer")
                    rhead, rbody, _ = answer
                    conn.sendall(rhead + b"\r\n\r\n" + rbody)
                    with self.lock:
                        self.answered.append(time.monotonic())
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self.lock:
                self.errors.append(repr(e))


class FilterRspamd(unittest.TestCase):
    """filter-rspamd against one rspamd started for the whole class."""

    server = None
    failed = False

    @classmethod
    def setUpClass(cls):
        for p in (RSPAMD, FILTER_RSPAMD, FILTER_DKIM):
            if not os.access(p, os.X_OK):
                raise AssertionError(f"{p} is missing (rspamd: its Debian package; the filters: the build)")
        cls.server = ScanServer()
        try:
            cls.server.start()
            cls.signed_record = cls.server.add_dkim_key("signed.example")
        except BaseException:
            cls.server.stop()
            cls.server.cleanup(keep=True)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
            if cls.failed:
                sys.stderr.write(f"[rspamd] log:\n{cls.server.log()}\n")
            cls.server.cleanup(keep=cls.failed)

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self).failed = True
        return result

    # ---- helpers ----

    def filter_line(self, options="", port=None, name="rspamd"):
        port = port or self.server.port
        return f'filter "{name}" proc-exec "@DIR@/filter-rspamd -url http://127.0.0.1:{port} {options}"\n'

    def daemon(self, name, before_listen=None, listen_options='filter "rspamd"', prepare=None):
        def prep(folder):
            install(folder, FILTER_RSPAMD, FILTER_DKIM)
            if prepare:
                prepare(folder)

        return postern.Daemon(MAILDIR, name=name, prepare=prep,
                              before_listen=self.filter_line() if before_listen is None else before_listen,
                              listen_options=listen_options)

    def ready(self, d, name="rspamd"):
        self.assertTrue(d.wait_log(rf"filter ready filter={name} pid=\d+"), d.log())

    def accepted(self, d, msg, **kw):
        """Send msg, expect 250, QUIT; the one delivered copy."""
        c, reply = send(d.port, msg, **kw)
        with c:
            qid = queue_id(reply)
            self.assertEqual(c.cmd("QUIT")[:3], "221")
        [data] = delivered(d)
        self.assertIn(f"with ESMTP id {qid}".encode(), data)
        return data

    def refused(self, d, msg, reply_regex):
        """Send msg: the final dot gets a reply matching reply_regex; the
        session goes on; nothing is queued or delivered."""
        c, reply = send(d.port, msg)
        with c:
            self.assertRegex(reply, reply_regex, d.log())
            self.assertEqual(c.cmd("RSET")[:3], "250")
            self.assertEqual(c.cmd("QUIT")[:3], "221")
        self.assertEqual(len(d.wait_log(r'smtp message-refused filter=rspamd ')), 1, d.log())
        self.assertNotRegex(d.log(), r"smtp message msgid=")
        self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        time.sleep(0.5)
        self.assertEqual(postern.maildir_new(d.path("mail", "bob")), [])
        return reply

    def check_spamd_result(self, hdrs, verdict="False"):
        """rspamd's X-Spamd-Result (milter add_headers, order -1): once, at
        the bottom of the header section, with its folding kept."""
        names = [n for n, _ in hdrs]
        self.assertEqual(names.count("X-Spamd-Result"), 1, hdrs)
        self.assertEqual(names[-1], "X-Spamd-Result", names)
        self.assertRegex(dict(hdrs)["X-Spamd-Result"], rf"^default: {verdict} \[-?[0-9.]+ / 100\.00\];\n\t\S")

    def check_spam_headers(self, data):
        """filter-rspamd's headers for the "add header" action, on top."""
        hdrs = headers_of(data)
        names = [n for n, _ in hdrs]
        values = dict(hdrs)
        for h in ("X-Spam", "X-Spam-Score", "X-Spam-Status"):
            self.assertEqual(names.count(h), 1, data)
            self.assertLess(names.index(h), names.index("Received"), names)
        self.assertEqual(values["X-Spam"], "Yes")
        self.assertRegex(values["X-Spam-Score"], r"^[0-9.]+ / 100\.00$")
        self.assertGreaterEqual(float(values["X-Spam-Score"].split()[0]), 50)
        self.assertRegex(values["X-Spam-Status"], r"^Yes, score=[0-9.]+ required=100\.000\n\ttests=\[")
        self.assertIn("POSTERN_ADD_HEADER=60.000", values["X-Spam-Status"])
        self.check_spamd_result(hdrs)
        return names

    # ---- the actions ----

    def test_gtube_is_refused_after_data(self):
        with self.daemon("rspamd-own-gtube") as d:
            self.ready(d)
            # The filter process is our program, run from the daemon's folder.
            pid = int(re.search(r"filter started filter=rspamd pid=(\d+)", d.log()).group(1))
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                self.assertEqual(f.read().split(b"\0")[0].decode(), d.path("filter-rspamd"))
            self.refused(d, message("gtube", ["some line", GTUBE, "last line"]), r"^550 5\.7\.1 Gtube pattern$")
            self.assertRegex(d.log(), r'smtp message-refused filter=rspamd result="?550 5\.7\.1 Gtube pattern"?')

    def test_clean_message_passes_with_rspamds_header(self):
        with self.daemon("rspamd-own-clean") as d:
            # The client's own X-Spam and X-Spamd-Result: rspamd asks (milter
            # remove_headers) to remove both, then adds its X-Spamd-Result.
            msg = message("a clean message", ["hello bob", ".a dotted line", "bye"],
                          extra_headers=["X-Spam: forged by the client", "X-Spamd-Result: forged too"])
            data = self.accepted(d, msg)
            hdrs = headers_of(data)
            names = [n for n, _ in hdrs]
            self.assertNotIn("X-Spam", names, data)
            self.assertNotIn(b"forged", data)
            self.assertEqual(names[:3], ["Return-Path", "Delivered-To", "Received"], names)
            self.assertEqual(names[3:], ["From", "To", "Subject", "Date", "Message-ID", "X-Spamd-Result"], names)
            self.check_spamd_result(hdrs)
            # The message's own headers and body as sent.
            self.assertIn(lf(msg.split("X-Spam:")[0]), data)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    def test_add_header_action(self):
        with self.daemon("rspamd-own-add-header") as d:
            msg = message("postern-add-header please", ["hello bob", "bye"])
            data = self.accepted(d, msg)
            self.check_spam_headers(data)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    def test_rewrite_subject_action(self):
        with self.daemon("rspamd-own-rewrite") as d:
            msg = message("postern-rewrite-subject please", ["hello bob", "bye"])
            data = self.accepted(d, msg)
            hdrs = headers_of(data)
            subjects = [v for n, v in hdrs if n.lower() == "subject"]
            self.assertEqual(subjects, ["[SPAM] postern-rewrite-subject please"], data)
            # In the place of the old one, the other headers untouched.
            names = [n for n, _ in hdrs]
            self.assertEqual(names[3:], ["From", "To", "Subject", "Date", "Message-ID", "X-Spamd-Result"], names)
            self.assertNotIn("X-Spam", names)
            self.check_spamd_result(hdrs)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    def test_rspamds_dkim_signature_is_added(self):
        check_prerequisites(self, programs=[SYSTEM_PYTHON], python_modules=["dkim"])
        with self.daemon("rspamd-own-dkim-sig") as d:
            msg = message("signed by rspamd", ["first line", "last line"]).replace(
                "sender@example.org", "sender@signed.example")
            data = self.accepted(d, msg, sender="sender@signed.example")
            hdrs = headers_of(data)
            sigs = [v for n, v in hdrs if n.lower() == "dkim-signature"]
            self.assertEqual(len(sigs), 1, data)
            self.assertEqual((tag(sigs[0], "d"), tag(sigs[0], "s")), ("signed.example", "dkim"), sigs[0])
            records = {"dkim._domainkey.signed.example": self.signed_record}
            ok, why = dkim_verify(wire_form(data), records)
            self.assertTrue(ok, f"rspamd's signature does not verify: {why}\n{data.decode(errors='replace')}")
            ok, why = dkim_verify(wire_form(data.replace(b"last line", b"LAST line")), records)
            self.assertFalse(ok, f"a changed body still verifies: {why}")

    def test_soft_reject_gives_451(self):
        with self.daemon("rspamd-own-soft") as d:
            self.refused(d, message("postern-soft-reject please", ["hello bob"]),
                         r"^451 4\.7\.1 Postern test says try again later$")

    def test_greylist_gives_451_unless_no_greylist(self):
        with self.daemon("rspamd-own-grey") as d:
            self.refused(d, message("postern-greylist please", ["hello bob"]),
                         r"^451 4\.7\.1 Greylisted, try again later$")
        with self.daemon("rspamd-own-no-grey", before_listen=self.filter_line("-no-greylist")) as d:
            msg = message("postern-greylist please", ["hello bob"])
            data = self.accepted(d, msg)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    # ---- rspamd down ----

    def test_rspamd_unreachable_tempfails(self):
        closed = postern.free_port()
        with self.daemon("rspamd-own-down", before_listen=self.filter_line(port=closed)) as d:
            reply = self.refused(d, message("nobody home", ["hello bob"]), "^" + re.escape(NOT_SCANNED) + "$")
            self.assertEqual(reply, NOT_SCANNED)
            self.assertTrue(d.wait_log(r"filter stderr filter=rspamd .*filter-rspamd: rspamd not asked"), d.log())
            self.assertNotRegex(d.log(), r"filter (failed|exited)|filter-failed")

    def test_rspamd_unreachable_accept_unscanned(self):
        closed = postern.free_port()
        with self.daemon("rspamd-own-down-accept",
                         before_listen=self.filter_line("-accept-unscanned", port=closed)) as d:
            msg = message("nobody home, deliver anyway", ["hello bob"], extra_headers=["X-Spam: client's own"])
            data = self.accepted(d, msg)
            # Unscanned: the message as it came, nothing added or removed.
            self.assertTrue(data.endswith(lf(msg)), data)
            self.assertNotIn(b"X-Spamd-Result", data)
            self.assertTrue(d.wait_log(r"filter stderr filter=rspamd .*filter-rspamd: rspamd not asked"), d.log())
            self.assertTrue(d.wait_log(r"filter stderr filter=rspamd .*message accepted unscanned "
                                       r"\(-accept-unscanned\)"), d.log())

    # ---- one slow scan does not stall the others ----

    def test_ten_sessions_while_rspamd_is_slow(self):
        n, delay = 10, 2.0
        with DelayProxy(self.server.port, delay) as proxy:
            with self.daemon("rspamd-own-slow", before_listen=self.filter_line(port=proxy.port)) as d:
                self.ready(d)
                msgs = [message(f"slow scan {i}", [f"message {i}", "bye"]) for i in range(n)]
                barrier = threading.Barrier(n, timeout=30)

                def one(msg):
                    # Every session is in DATA before any sends its message.
                    c = postern.RawClient(d.port, timeout=60)
                    with c:
                        for line in ("EHLO client.example", "MAIL FROM:<sender@example.org>",
                                     "RCPT TO:<bob@localhost>"):
                            self.assertEqual(c.cmd(line)[:3], "250")
                        self.assertEqual(c.cmd("DATA")[:3], "354")
                        barrier.wait()
                        sent = time.monotonic()
                        c.send(stuffed(msg) + ".\r\n")
                        reply = c.reply_line()
                        took = time.monotonic() - sent
                        c.cmd("QUIT")
                        return reply, took, sent

                started = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(n) as pool:
                    results = list(pool.map(one, msgs, timeout=120))
                first_sent = min(r[2] for r in results)
                wall = time.monotonic() - first_sent
                for reply, took, _ in results:
                    self.assertRegex(reply, r"^250 2\.0\.0 \S+ Message accepted for delivery$", d.log())
                    # Each scan really went through the slow proxy.
                    self.assertGreaterEqual(took, delay - 0.1, results)
                self.assertEqual(proxy.errors, [])
                self.assertEqual(len(proxy.arrivals), n, proxy.arrivals)
                # The filter sent all ten before the first was answered...
                self.assertLess(max(proxy.arrivals) - min(proxy.arrivals), delay / 2,
                                [round(t - min(proxy.arrivals), 2) for t in proxy.arrivals])
                # ... and all ten were answered in about the time of one (one
                # after the other would take n * delay).
                self.assertLess(wall, 2 * delay + 1.5,
                                f"{n} sessions took {wall:.2f}s (delay {delay}s); each: "
                                f"{[round(r[1], 2) for r in results]}")
                sys.stderr.write(f"[slow] {n} sessions, delay {delay}s: {wall:.2f}s in all (started "
                                 f"{first_sent - started:.2f}s after the first connect)\n")
                files = delivered(d, n=n)
                subjects = sorted(re.search(rb"\nSubject: ([^\n]*)", f).group(1).decode() for f in files)
                self.assertEqual(subjects, sorted(f"slow scan {i}" for i in range(n)))
                for f in files:
                    self.check_spamd_result(headers_of(f))

    # ---- chain ----

    def test_chain_rspamd_then_our_dkim(self):
        check_prerequisites(self, programs=[SYSTEM_PYTHON], python_modules=["dkim"])
        records = {}

        def prepare(folder):
            records["sel._domainkey.example.org"] = make_rsa_key(folder, name="signing.key")

        dkim = ('filter "dkim" proc-exec "@DIR@/filter-dkim -d example.org -s sel -k @DIR@/signing.key '
                '-h from:to:subject:date:x-spam:x-spam-score:x-spam-status"\n')
        before = self.filter_line() + dkim + 'filter "chain" chain { "rspamd", "dkim" }\n'
        with self.daemon("rspamd-own-chain", before_listen=before, listen_options='filter "chain"',
                         prepare=prepare) as d:
            msg = message("postern-add-header, signed", ["first line", ".dotted line", "last line"])
            data = self.accepted(d, msg)
            names = self.check_spam_headers(data)
            sigs = [v for n, v in headers_of(data) if n.lower() == "dkim-signature"]
            self.assertEqual(len(sigs), 1, data)
            sig = sigs[0]
            # filter-dkim ran second: its header is on top of rspamd's.
            self.assertEqual(names.index("DKIM-Signature"), 2, names)  # below Return-Path, Delivered-To
            self.assertLess(names.index("DKIM-Signature"), names.index("X-Spam"), names)
            self.assertEqual((tag(sig, "d"), tag(sig, "s"), tag(sig, "a")), ("example.org", "sel", "rsa-sha256"))
            signed = set(tag(sig, "h").lower().split(":"))
            self.assertEqual(signed, {"date", "from", "subject", "to", "x-spam", "x-spam-score", "x-spam-status"},
                             sig)
            for strip in (False, True):
                ok, why = dkim_verify(wire_form(data, strip_delivery_headers=strip), records)
                self.assertTrue(ok, f"does not verify (delivery headers stripped: {strip}): {why}\n"
                                    f"{data.decode(errors='replace')}")
            for tampered in (re.sub(rb"\nX-Spam-Score: [^\n]*", b"\nX-Spam-Score: 0.00 / 100.00", data, count=1),
                             re.sub(rb"\nX-Spam: Yes\n", b"\nX-Spam: No\n", data, count=1)):
                self.assertNotEqual(tampered, data)
                ok, why = dkim_verify(wire_form(tampered), records)
                self.assertFalse(ok, f"a changed X-Spam header still verifies: {why}")


if __name__ == "__main__":
    postern.run_tests()
