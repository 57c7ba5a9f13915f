"""Debian 12's own OpenSMTPD filters, unchanged, against a real posternd (issue 11).

The filters are the packaged binaries in /usr/libexec/opensmtpd
(opensmtpd-filter-dkimsign 0.5, opensmtpd-filter-rspamd 0.1.7,
opensmtpd-filter-senderscore 0.1.1), named by relative commands so that
postern's own lookup in that folder is exercised. Every test asserts what
can be observed from outside: SMTP replies, the bytes delivered to a
maildir, the daemon's log.

- DKIM signatures made by filter-dkimsign (RSA and Ed25519) are verified
  with Debian's python3-dkim, run by the system python (/usr/bin/python3),
  with a DNS function that answers the test's own TXT record; a tampered copy
  must fail.
- filter-senderscore looks the client up in DNS at connect; with no answer
  (no internet here) it must let the mail through untouched.
- filter-rspamd talks to a real rspamd the test starts once on loopback
  (Debian's stock rules, plus a local action table and one local rule; no
  redis; its resolver pointed at a loopback port nobody serves).
- A chain rspamd -> dkimsign: the signature covers what rspamd's filter
  passed on.

Nothing here is skipped: a missing program or package makes the tests fail
with the reason (packaging/dev.sh installs them all).
"""

import base64
import ctypes
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LIBEXEC = "/usr/libexec/opensmtpd"
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-dkim and python3-nacl are installed for this one
RSPAMD = "/usr/bin/rspamd"
RSPAMD_START_TIMEOUT = 180.0  # rspamd takes 12-20 s to load its rules here
RSPAMD_STOP_TIMEOUT = 15.0
DELIVERY_TIMEOUT = 20.0

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

MAILDIR = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
           'match from local for local action "l"\n')


_message_ids = itertools.count(1)


def message(subject, body_lines, extra_headers=()):
    """A well-formed message (CRLF, not dot-stuffed) from sender@example.org."""
    head = ["From: Sender <sender@example.org>",
            "To: Bob <bob@localhost>",
            f"Subject: {subject}",
            "Date: Mon, 07 Dec 2026 05:31:14 +0000",
            f"Message-ID: <{os.getpid()}.{next(_message_ids)}@example.org>",
            *extra_headers]
    return "\r\n".join(head + [""] + list(body_lines)) + "\r\n"


def stuffed(crlf_message):
    """The DATA payload for a message: leading dots doubled."""
    return "".join(("." + line if line.startswith(".") else line) + "\r\n"
                   for line in crlf_message[:-2].split("\r\n"))


def transaction(port, message_crlf, rcpt="bob@localhost"):
    """EHLO, MAIL, RCPT, DATA, the message, the final dot; return the client
    (still open) and the reply to the final dot as "CODE TEXT"."""
    c = postern.RawClient(port, timeout=60)
    try:
        if c.banner[0] != 220:
            raise AssertionError(f"banner {c.banner!r}")
        for line, want in (("EHLO client.example", "250"), ("MAIL FROM:<sender@example.org>", "250"),
                           (f"RCPT TO:<{rcpt}>", "250"), ("DATA", "354")):
            got = c.cmd(line)
            if not got.startswith(want):
                raise AssertionError(f"{line!r} answered {got!r}")
        c.send(stuffed(message_crlf) + ".\r\n")
        return c, c.reply_line()
    except BaseException:
        c.close()
        raise


def queue_id(reply):
    m = re.fullmatch(r"250 2\.0\.0 (\S+) Message accepted for delivery", reply)
    if not m:
        raise AssertionError(f"not an acceptance: {reply!r}")
    return m.group(1)


def delivered(d, user="bob", n=1):
    files = d.wait_files(d.path("mail", user), n, timeout=DELIVERY_TIMEOUT)
    if len(files) != n:
        raise AssertionError(f"{len(files)} files delivered to {user}, expected {n}:\n{d.log()}")
    return [postern.read_bytes(f) for f in files]


def headers_of(data):
    """The header block of a delivered (LF) message as a list of (name,
    value) pairs, in order; a folded value keeps its continuation lines."""
    head = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    out = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
        else:
            name, _, value = line.partition(":")
            out.append((name, value.lstrip(" ")))
    return out


def tag(sig_value, name):
    """A tag of a DKIM-Signature value, whitespace removed."""
    flat = re.sub(r"\s+", "", sig_value)
    m = re.search(r"(?:^|;)" + re.escape(name) + r"=([^;]*)", flat)
    return m.group(1) if m else None


def wire_form(delivered_lf, strip_delivery_headers=False):
    """The message as it would travel again: CRLF line ends; optionally
    without the Return-Path and Delivered-To lines the maildir delivery put
    on top (they are not part of what was signed)."""
    data = delivered_lf
    if strip_delivery_headers:
        for name in (b"Return-Path:", b"Delivered-To:"):
            if not data.startswith(name):
                raise AssertionError(f"delivered copy does not start with {name!r}: {data[:200]!r}")
            data = data.split(b"\n", 1)[1]
    return data.replace(b"\n", b"\r\n")


# Run by the system python, where python3-dkim (and python3-nacl for
# Ed25519) live. argv[1] is a JSON object of DNS names to TXT records; the
# message comes on stdin. Prints a JSON verdict.
VERIFY_SCRIPT = r"""
import json, logging, sys
import dkim
records = {k.lower(): v for k, v in json.loads(sys.argv[1]).items()}
asked = []
def dnsfunc(name, timeout=5):
    n = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
    asked.append(n)
    r = records.get(n)
    return r.encode() if r is not None else None
log = logging.getLogger("dkim"); log.addHandler(logging.StreamHandler(sys.stderr)); log.setLevel(logging.DEBUG)
msg = sys.stdin.buffer.read()
try:
    ok = bool(dkim.verify(msg, logger=log, dnsfunc=dnsfunc))
    err = None
except Exception as e:
    ok, err = False, repr(e)
print(json.dumps({"ok": ok, "asked": asked, "error": err}))
"""


def dkim_verify(data_crlf, records):
    """python3-dkim's verdict on a message: (ok, details)."""
    r = subprocess.run([SYSTEM_PYTHON, "-c", VERIFY_SCRIPT, json.dumps(records)], input=data_crlf,
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{SYSTEM_PYTHON} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    verdict = json.loads(r.stdout.decode().strip().splitlines()[-1])
    return verdict["ok"], f"{verdict}\n{r.stderr.decode(errors='replace')}"


def check_prerequisites(testcase, programs=(), python_modules=()):
    """Fail (not skip) with the reason when something the test needs is missing."""
    for p in programs:
        testcase.assertTrue(os.access(p, os.X_OK),
                            f"{p} is missing: install its Debian package (packaging/dev.sh lists it)")
    for m in python_modules:
        r = subprocess.run([SYSTEM_PYTHON, "-c", f"import {m}"], capture_output=True, timeout=60)
        testcase.assertEqual(r.returncode, 0,
                             f"{SYSTEM_PYTHON} cannot import {m} (install python3-{m}; packaging/dev.sh lists it): "
                             f"{r.stderr.decode(errors='replace')}")


def readable_by_filters(path):
    """Filters run as _postern when the daemon starts as root: give that
    user the key, and nobody else."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("_postern")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o600)


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")
    return r.stdout


def make_rsa_key(folder, name="rsa.key"):
    """An RSA key for filter-dkimsign; returns the TXT record of its public half."""
    path = os.path.join(folder, name)
    openssl("genrsa", "-out", path, "2048")
    spki = openssl("rsa", "-in", path, "-pubout", "-outform", "DER")
    readable_by_filters(path)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()


def make_ed25519_key(folder, name="ed25519.key"):
    """An Ed25519 key (PKCS#8 PEM, as Debian's README for filter-dkimsign
    makes it); returns the TXT record: RFC 8463 puts the raw 32-byte public
    key in p=, which is the DER SubjectPublicKeyInfo minus its 12-byte
    prefix."""
    path = os.path.join(folder, name)
    openssl("genpkey", "-algorithm", "ed25519", "-outform", "PEM", "-out", path)
    spki = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    if len(spki) != 44 or not spki.startswith(bytes.fromhex("302a300506032b6570032100")):
        raise AssertionError(f"unexpected Ed25519 public key encoding: {spki.hex()}")
    readable_by_filters(path)
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(spki[12:]).decode()


def check_filter_process(testcase, d, name, program):
    """The filter's process runs the packaged program, found from the
    relative command in /usr/libexec/opensmtpd, as _postern when the daemon
    started as root."""
    m = re.search(r"filter started filter=" + re.escape(name) + r" pid=(\d+)", d.log())
    testcase.assertIsNotNone(m, d.log())
    pid = int(m.group(1))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    testcase.assertEqual(argv[0].decode(), os.path.join(LIBEXEC, program), argv)
    if os.geteuid() == 0:
        with open(f"/proc/{pid}/status") as f:
            uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M)
        want = pwd.getpwnam("_postern").pw_uid
        testcase.assertEqual((int(uids.group(1)), int(uids.group(2))), (want, want))


class DkimMixin:
    """Checks shared by the DKIM tests."""

    def check_signed(self, data, records, algorithm, domain="example.org", selector="sel"):
        """data is a delivered copy: one DKIM-Signature by filter-dkimsign that
        python3-dkim accepts, with or without the delivery's own header lines,
        and rejects once the message is changed. Returns the signature's value."""
        hdrs = headers_of(data)
        names = [n for n, _ in hdrs]
        self.assertEqual(names[:2], ["Return-Path", "Delivered-To"], names)
        sigs = [v for n, v in hdrs if n.lower() == "dkim-signature"]
        self.assertEqual(len(sigs), 1, data.decode(errors="replace"))
        sig = sigs[0]
        self.assertEqual(tag(sig, "a"), algorithm, sig)
        self.assertEqual(tag(sig, "d"), domain, sig)
        self.assertEqual(tag(sig, "s"), selector, sig)
        self.assertEqual(tag(sig, "c"), "simple/simple", sig)
        # What is signed: the message's own headers, never what postern adds
        # on the way (Received:) or at delivery (Return-Path:, Delivered-To:).
        signed = tag(sig, "h").lower().split(":")
        self.assertIn("from", signed)
        for added in ("return-path", "delivered-to", "received"):
            self.assertNotIn(added, signed, sig)
        # The filter's header lands above postern's Received: header, as in
        # OpenSMTPD (the Received: header is part of the filtered stream).
        self.assertLess(names.index("DKIM-Signature"), names.index("Received"), names)

        for strip in (False, True):
            ok, why = dkim_verify(wire_form(data, strip_delivery_headers=strip), records)
            self.assertTrue(ok, f"signature does not verify (delivery headers stripped: {strip}): {why}\n"
                                f"{data.decode(errors='replace')}")

        # A test that can fail: the same copy changed in its body, or in a
        # signed header, must not verify.
        body_at = data.index(b"\n\n") + 2
        tampered_body = data[:body_at] + data[body_at:].replace(b"line", b"LINE", 1)
        self.assertNotEqual(tampered_body, data)
        ok, why = dkim_verify(wire_form(tampered_body), records)
        self.assertFalse(ok, f"a changed body still verifies: {why}")
        tampered_subject = re.sub(rb"\nSubject: ", b"\nSubject: Re: ", data, count=1)
        self.assertNotEqual(tampered_subject, data)
        ok, why = dkim_verify(wire_form(tampered_subject), records)
        self.assertFalse(ok, f"a changed Subject still verifies: {why}")
        return sig


class DkimSign(DkimMixin, unittest.TestCase):
    """filter-dkimsign on a listener; python3-dkim verifies what lands in the maildir."""

    def setUp(self):
        check_prerequisites(self, programs=[os.path.join(LIBEXEC, "filter-dkimsign"), SYSTEM_PYTHON],
                            python_modules=["dkim"])

    def run_signing(self, name, key_maker, algorithm_option, algorithm):
        records = {}

        def prepare(folder):
            records["sel._domainkey.example.org"] = key_maker(folder, name="signing.key")
            # A second key, only to prove that verification depends on the key.
            records["other._domainkey.example.org"] = key_maker(folder, name="other.key")

        # A relative command: postern finds it in /usr/libexec/opensmtpd.
        cmd = f"filter-dkimsign {algorithm_option}-d example.org -s sel -k @DIR@/signing.key"
        with postern.Daemon(MAILDIR, name=name, prepare=prepare,
                            before_listen=f'filter "dkim" proc-exec "{cmd}"\n',
                            listen_options='filter "dkim"') as d:
            self.assertTrue(d.wait_log(r"filter ready filter=dkim pid=\d+"), d.log())
            check_filter_process(self, d, "dkim", "filter-dkimsign")
            msg = message("signed by filter-dkimsign",
                          ["first line", ".a line that starts with a dot", "..and two dots", "", "last line"])
            c, reply = transaction(d.port, msg)
            with c:
                qid = queue_id(reply)
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            [data] = delivered(d)
            # The message itself arrives intact below the filter's header and
            # postern's Received: (the filter got and gave back dot-stuffed
            # lines; postern undid the stuffing once).
            self.assertTrue(data.endswith(msg.replace("\r\n", "\n").encode()), data)
            self.assertIn(f"with ESMTP id {qid}".encode(), data)
            sig = self.check_signed(data, records, algorithm)
            # Under another selector's key the same signature is worthless.
            swapped = {"sel._domainkey.example.org": records["other._domainkey.example.org"]}
            ok, why = dkim_verify(wire_form(data), swapped)
            self.assertFalse(ok, f"verifies under the wrong key: {why}")
            # The default header list of filter-dkimsign, as far as this
            # message has them (Message-ID is not in that list).
            self.assertEqual(sorted(tag(sig, "h").lower().split(":")), ["date", "from", "subject", "to"], sig)

    def test_rsa_sha256(self):
        self.run_signing("dkim-rsa", make_rsa_key, "", "rsa-sha256")

    def test_ed25519_sha256(self):
        check_prerequisites(self, python_modules=["nacl"])
        self.run_signing("dkim-ed25519", make_ed25519_key, "-a ed25519-sha256 ", "ed25519-sha256")


class SenderScore(unittest.TestCase):
    """filter-senderscore: registered for every phase, it answers each after
    its DNS lookup at connect, which finds nothing here."""

    LOOKUP = "1.0.0.127.score.senderscore.com"  # what it asks for a client on 127.0.0.1

    def test_mail_goes_through_when_the_lookup_fails(self):
        check_prerequisites(self, programs=[os.path.join(LIBEXEC, "filter-senderscore")])
        # The filter resolves with the machine's resolver, as this does. With
        # no answer its score stays -1: no header, no delay, no block. On a
        # machine that gets an answer the filter must add the header it was
        # asked for instead; the mail goes through either way (no -blockBelow).
        try:
            answer = socket.getaddrinfo(self.LOOKUP, None, socket.AF_INET)[0][4][0]
        except socket.gaierror:
            answer = None
        with postern.Daemon(MAILDIR, name="senderscore",
                            before_listen='filter "senderscore" proc-exec "filter-senderscore -scoreHeader"\n',
                            listen_options='filter "senderscore"') as d:
            self.assertTrue(d.wait_log(r"filter ready filter=senderscore pid=\d+"), d.log())
            check_filter_process(self, d, "senderscore", "filter-senderscore")
            msg = message("senderscore", ["a line", ".starts with a dot", "last line"])
            started = time.monotonic()
            c, reply = transaction(d.port, msg)
            with c:
                qid = queue_id(reply)
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            took = time.monotonic() - started
            [data] = delivered(d)
            self.assertIn(f"with ESMTP id {qid}".encode(), data)
            if answer is None:
                self.assertNotIn(b"X-SenderScore", data)
                # The message passed through the filter's data-line echo
                # byte for byte below postern's own headers.
                self.assertTrue(data.endswith(msg.replace("\r\n", "\n").encode()), data)
            else:
                score = int(answer.split(".")[3])
                self.assertIn(f"X-SenderScore: {score}\n".encode(), data)
            self.assertNotRegex(d.log(), r"filter (failed|exited)|filter-failed")
            self.assertLess(took, 30, "the session took too long through filter-senderscore")


def free_udp_port():
    """A loopback UDP port nothing listens on (for a resolver that must not answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies, so that
    rspamd (in a session of its own) does not outlive a test run that was
    killed (CTest's timeout). Its main process stays root, which keeps this
    setting; it stops its workers on SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class RspamdServer:
    """A real rspamd on loopback, with Debian's stock rules.

    Its own folder holds the top-level config (one normal worker on a free
    loopback port, logging to the console), a LOCAL_CONFDIR whose local.d
    sets the resolver to a loopback port nobody serves, turns the fuzzy
    check (which would query rspamd.com) off and sets the action thresholds,
    and a local rule, POSTERN_ADD_HEADER (score 60), that fires on a subject
    containing "postern-add-header": with add_header at 50 and reject at
    100 such a message gets the "add header" action. No redis: the modules
    that need it stay off.
    """

    CONF = """\
.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "console";
    level = "notice";
}
worker "normal" {
    bind_socket = "127.0.0.1:@PORT@";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}
"""
    LOCAL = {
        "local.d/options.inc": """\
dns {
    nameserver = ["127.0.0.1:@DNSPORT@"];
    timeout = 1s;
    retransmits = 1;
}
""",
        "local.d/actions.conf": """\
reject = 100;
add_header = 50;
greylist = null;
rewrite_subject = null;
""",
        "local.d/fuzzy_check.conf": "enabled = false;\n",
        "rspamd.local.lua": """\
rspamd_config.POSTERN_ADD_HEADER = {
  callback = function(task)
    local s = task:get_header('Subject')
    return s ~= nil and s:find('postern-add-header', 1, true) ~= nil
  end,
  score = 60.0,
  description = 'postern test: a subject that asks for the add header action',
}
""",
    }

    def __init__(self):
        self.dir = None
        self.port = None
        self.proc = None

    @property
    def log_path(self):
        return os.path.join(self.dir, "rspamd.log")

    def log(self):
        try:
            return postern.read_bytes(self.log_path).decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="rspamd-")
        os.chmod(self.dir, 0o755)
        self.port = postern.free_port()
        dns_port = free_udp_port()
        for rel, text in self.LOCAL.items():
            path = os.path.join(self.dir, "local", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text.replace("@DNSPORT@", str(dns_port)))
        with open(os.path.join(self.dir, "rspamd.conf"), "w") as f:
            f.write(self.CONF.replace("@PORT@", str(self.port)))
        args = [RSPAMD, "-f", "-c", os.path.join(self.dir, "rspamd.conf"),
                "--var=LOCAL_CONFDIR=" + os.path.join(self.dir, "local"),
                "--var=DBDIR=" + os.path.join(self.dir, "db"),
                "--var=RUNDIR=" + os.path.join(self.dir, "run")]
        for sub in ("db", "run"):
            os.makedirs(os.path.join(self.dir, sub))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("_rspamd")
            for sub in ("db", "run"):
                os.chown(os.path.join(self.dir, sub), pw.pw_uid, pw.pw_gid)
            args += ["-u", "_rspamd", "-g", "_rspamd"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.dir, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + RSPAMD_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rspamd exited with {self.proc.returncode} while starting; "
                                     f"its folder {self.dir}, its log:\n{self.log()}")
            if self.ping():
                return
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"rspamd did not answer /ping on 127.0.0.1:{self.port} within "
                             f"{RSPAMD_START_TIMEOUT}s; its log:\n{self.log()}")

    def ping(self):
        # No proxy from the environment: this is loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                return r.read().strip() == b"pong"
        except OSError:
            return False

    def stop(self):
        """SIGTERM rspamd's main process (by its PID); SIGKILL what is left of
        its session after a bound."""
        if self.proc is None:
            return
        family = postern.descendants_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=RSPAMD_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"rspamd ignored SIGTERM for {RSPAMD_STOP_TIMEOUT}s; killing it\n")
                self.proc.kill()
                self.proc.wait(timeout=RSPAMD_STOP_TIMEOUT)
        # Workers that outlived it: still in the session we made for it.
        for p in family:
            if postern.process_alive(p) and postern.session_of(p) == self.proc.pid:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    def cleanup(self, keep):
        if self.dir and not keep and not os.environ.get("POSTERN_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            sys.stderr.write(f"[rspamd] kept {self.dir}\n")


class Rspamd(DkimMixin, unittest.TestCase):
    """filter-rspamd against one rspamd started for the whole class."""

    server = None
    failed = False

    @classmethod
    def setUpClass(cls):
        for p in (RSPAMD, os.path.join(LIBEXEC, "filter-rspamd"), os.path.join(LIBEXEC, "filter-dkimsign")):
            if not os.access(p, os.X_OK):
                raise AssertionError(f"{p} is missing: install its Debian package (packaging/dev.sh lists it)")
        cls.server = RspamdServer()
        try:
            cls.server.start()
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
        # Remember whether any test of this class failed, to keep rspamd's
        # folder and show its log at the end.
        before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self).failed = True
        return result

    def filter_line(self, name="rspamd", url=None):
        url = url or f"http://127.0.0.1:{self.server.port}"
        return f'filter "{name}" proc-exec "filter-rspamd -url {url}"\n'

    def daemon(self, name, before_listen=None, listen_options='filter "rspamd"', prepare=None):
        d = postern.Daemon(MAILDIR, name=name, prepare=prepare,
                           before_listen=self.filter_line() if before_listen is None else before_listen,
                           listen_options=listen_options)
        return d

    def test_gtube_is_refused_after_data(self):
        with self.daemon("rspamd-gtube") as d:
            msg = message("gtube", ["some line", GTUBE, "last line"])
            c, reply = transaction(d.port, msg)
            with c:
                # rspamd's own SMTP message, with filter-rspamd's 550. postern
                # puts an enhanced status code in front of a filter's reply
                # that has none (OpenSMTPD 6.8 sends "550 Gtube pattern").
                self.assertRegex(reply, r"^550 (5\.7\.1 )?Gtube pattern$")
                # The session goes on: the client may try again at once.
                self.assertEqual(c.cmd("RSET")[:3], "250")
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            refused = d.wait_log(r'^.* smtp message-refused filter=rspamd result="?550 (5\.7\.1 )?Gtube pattern"?$')
            self.assertEqual(len(refused), 1, d.log())
            self.assertNotRegex(d.log(), r"smtp message msgid=")
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
            time.sleep(0.5)
            self.assertEqual(postern.maildir_new(d.path("mail", "bob")), [])

    def test_clean_message_is_delivered(self):
        with self.daemon("rspamd-clean") as d:
            # A client's own X-Spam header: rspamd asks (milter remove_headers)
            # to remove it, and filter-rspamd 0.1.7 does.
            msg = message("a clean message", ["hello bob", ".a dotted line", "bye"],
                          extra_headers=["X-Spam: forged by the client"])
            c, reply = transaction(d.port, msg)
            with c:
                qid = queue_id(reply)
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            [data] = delivered(d)
            self.assertIn(f"with ESMTP id {qid}".encode(), data)
            # "no action": filter-rspamd adds nothing of its own.
            self.assertNotIn(b"X-Spam", data)
            expected = msg.replace("X-Spam: forged by the client\r\n", "").replace("\r\n", "\n").encode()
            self.assertTrue(data.endswith(expected), data)

    def test_add_header_action(self):
        # For rspamd's "add header" action filter-rspamd 0.1.7 writes its own
        # X-Spam, X-Spam-Score and X-Spam-Status headers (it would also copy
        # rspamd's milter add_headers, which Debian's stock rules do not
        # return here).
        with self.daemon("rspamd-add-header") as d:
            self.assertTrue(d.wait_log(r"filter ready filter=rspamd pid=\d+"), d.log())
            check_filter_process(self, d, "rspamd", "filter-rspamd")
            msg = message("postern-add-header please", ["hello bob", "bye"])
            c, reply = transaction(d.port, msg)
            with c:
                queue_id(reply)
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            [data] = delivered(d)
            self.check_spam_headers(data)
            self.assertTrue(data.endswith(msg.replace("\r\n", "\n").encode()), data)

    def check_spam_headers(self, data):
        """The headers filter-rspamd 0.1.7 writes for rspamd's "add header"
        action, above postern's Received: header."""
        hdrs = headers_of(data)
        names = [n for n, _ in hdrs]
        values = dict(hdrs)
        for h in ("X-Spam", "X-Spam-Score", "X-Spam-Status"):
            self.assertEqual(names.count(h), 1, data)
            self.assertLess(names.index(h), names.index("Received"), names)
        self.assertEqual(values["X-Spam"], "yes")
        self.assertRegex(values["X-Spam-Score"], r"^[0-9.]+ / 100$")
        self.assertGreaterEqual(float(values["X-Spam-Score"].split()[0]), 50)
        self.assertRegex(values["X-Spam-Status"], r"^Yes, score=[0-9.]+ required=100\.000\n\ttests=\[")
        self.assertIn("POSTERN_ADD_HEADER=60.000", values["X-Spam-Status"])
        return names

    def test_rspamd_unreachable_tempfails(self):
        # filter-rspamd pointed at a port nobody listens on: as with rspamd
        # stopped, the HTTP request fails and the filter answers
        # "reject|421 server internal error"; 421 closes the session.
        closed = postern.free_port()
        with self.daemon("rspamd-down", before_listen=self.filter_line(url=f"http://127.0.0.1:{closed}")) as d:
            msg = message("nobody home", ["hello bob"])
            c, reply = transaction(d.port, msg)
            with c:
                self.assertRegex(reply, r"^421 (4\.7\.1 )?server internal error$")
                self.assertTrue(c.closed_by_peer(5), "the connection stayed open after 421")
            self.assertTrue(d.wait_log(r"filter stderr filter=rspamd .*failed to receive a response from daemon"),
                            d.log())
            self.assertEqual(len(d.wait_log(r'^.* smtp message-refused filter=rspamd result="?421 ')), 1, d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
            time.sleep(0.5)
            self.assertEqual(postern.maildir_new(d.path("mail", "bob")), [])
            # The filter itself did not fail: it answered.
            self.assertNotRegex(d.log(), r"filter (failed|exited)|filter-failed")

    def test_chain_rspamd_then_dkimsign(self):
        check_prerequisites(self, programs=[SYSTEM_PYTHON], python_modules=["dkim"])
        records = {}

        def prepare(folder):
            records["sel._domainkey.example.org"] = make_rsa_key(folder, name="signing.key")

        # dkimsign also signs the X-Spam headers, which exist only in what
        # filter-rspamd passed on.
        dkim = ('filter "dkim" proc-exec "filter-dkimsign -d example.org -s sel -k @DIR@/signing.key '
                '-h from:to:subject:date:x-spam:x-spam-score:x-spam-status"\n')
        before = self.filter_line() + dkim + 'filter "chain" chain { "rspamd", "dkim" }\n'
        with self.daemon("rspamd-chain", before_listen=before, listen_options='filter "chain"',
                         prepare=prepare) as d:
            msg = message("postern-add-header, signed", ["first line", ".dotted line", "last line"])
            c, reply = transaction(d.port, msg)
            with c:
                queue_id(reply)
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            [data] = delivered(d)
            names = self.check_spam_headers(data)
            # dkimsign ran second: its header is above rspamd's.
            self.assertLess(names.index("DKIM-Signature"), names.index("X-Spam"), names)
            sig = self.check_signed(data, records, "rsa-sha256")
            self.assertEqual(sorted(tag(sig, "h").lower().split(":")),
                             ["date", "from", "subject", "to", "x-spam", "x-spam-score", "x-spam-status"], sig)
            tampered = re.sub(rb"\nX-Spam-Score: [^\n]*", b"\nX-Spam-Score: 0.0 / 100", data, count=1)
            self.assertNotEqual(tampered, data)
            ok, why = dkim_verify(wire_form(tampered), records)
            self.assertFalse(ok, f"a changed X-Spam-Score still verifies: {why}")


if __name__ == "__main__":
    postern.run_tests()
