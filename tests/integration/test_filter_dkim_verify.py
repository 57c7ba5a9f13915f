"""postern's own filter-dkim in its verifying mode (-V, issue 12) on a real
posternd: each message comes out with an Authentication-Results field
(RFC 8601) on top, the keys looked up in a dnsmasq the test starts on a
loopback port (-r 127.0.0.1:PORT), the authserv-id given with -a.

Messages are signed by Debian's python3-dkim (another implementation than
ours), or by our own filter-dkim ahead of the verifier in a chain. What is
asserted, from the delivered bytes and the daemon's log:

- a good RSA signature (relaxed/relaxed) and a good Ed25519 one
  (simple/simple) give dkim=pass with header.d, header.s and header.b (the
  first 8 characters of b=); both of a message signed twice pass;
- a key too large for a UDP answer (RSA 4096: c-ares asks again over TCP)
  is found and passes;
- a changed body gives dkim=fail reason="body hash did not verify", a
  changed signed header dkim=fail reason="signature did not verify";
- a selector with no key in the DNS (NXDOMAIN) gives dkim=permerror
  reason="no key for signature" (RFC 6376 6.1.2: PERMFAIL), a revoked key
  (empty p=) dkim=permerror; a name server refusing to answer gives
  dkim=temperror reason="key lookup failed" (RFC 8601 2.7.1: a DNS error),
  and the lookup's failure is logged;
- an unsigned message gives "dkim=none";
- Authentication-Results fields that arrive claiming our authserv-id (any
  case, quoted, after a comment, folded) are removed (RFC 8601 section 5);
  one of another authserv-id stays; the signature still passes;
- the message under the field is the message as it came, byte for byte;
- without -a the authserv-id is the admd the daemon gives (its host name);
- what our signer signs, our verifier passes;
- bad option combinations stop the program with a usage message.
"""

import base64
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import unittest

import postern
from test_filter_debian import (MAILDIR, SYSTEM_PYTHON, check_prerequisites, headers_of, message, openssl,
                                readable_by_filters, stuffed, tag)

FILTER = os.path.join(postern.BUILD_DIR, "filter-dkim")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
AUTHSERV_ID = "mx.test"
DNS_START_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 20.0

# Run by the system python (python3-dkim): argv = key file, selector,
# algorithm, canonicalization; the message on stdin; the DKIM-Signature
# field (CRLF) on stdout.
SIGN_SCRIPT = r"""
import sys
import dkim
key_file, selector, alg, canon = sys.argv[1:5]
header, body = canon.encode().split(b"/")
sig = dkim.sign(sys.stdin.buffer.read(), selector.encode(), b"example.org", open(key_file, "rb").read(),
                canonicalize=(header, body), signature_algorithm=alg.encode())
sys.stdout.buffer.write(sig)
"""


def install_filter(folder):
    """The daemon runs the filter as _postern, which may not reach the build
    folder: each daemon gets its own copy."""
    shutil.copy(FILTER, os.path.join(folder, "filter-dkim"))
    os.chmod(os.path.join(folder, "filter-dkim"), 0o755)


def free_udp_and_tcp_port():
    """A loopback port free for both UDP and TCP (dnsmasq serves both)."""
    for _ in range(50):
        port = postern.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port for dnsmasq")


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT answering only from its command line:
    `records` (name -> TXT) under example.org, NXDOMAIN for any other name
    there, REFUSED for names elsewhere (it has no upstream server). Started
    and ended by its PID."""

    def __init__(self, records):
        self.records = records
        self.port = free_udp_and_tcp_port()
        self.proc = None

    def __enter__(self):
        args = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={self.port}",
                "--user=root", "--group=root", "--pid-file=", "--local=/example.org/",
                "--log-queries", "--log-facility=-"]
        # dnsmasq cuts a value longer than 255 bytes into several strings of
        # one record, as a DKIM key is published.
        args += [f"--txt-record={name},{value}" for name, value in self.records.items()]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not postern.wait_until(self._answers, DNS_START_TIMEOUT):
            self.__exit__()
            raise RuntimeError("dnsmasq did not start: " + self.log())
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            return False
        # A TXT query for example.org.
        query = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03org\x00" + bytes.fromhex("00100001")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 12
            except OSError:
                return False

    def log(self):
        """What dnsmasq logged so far, without waiting."""
        out = b""
        while self.proc.stderr and select.select([self.proc.stderr], [], [], 0)[0]:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        return False


def make_rsa(folder, name, bits=2048):
    """An RSA key (PEM) and the TXT record of its public half."""
    path = os.path.join(folder, name)
    openssl("genrsa", "-out", path, str(bits))
    spki = openssl("rsa", "-in", path, "-pubout", "-outform", "DER")
    return path, "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()


def make_ed25519(folder, name):
    """An Ed25519 key as our filter reads it (PEM) and as python3-dkim reads
    it (the base64 32-byte seed), and the TXT record (RFC 8463: the raw
    public key)."""
    pem = os.path.join(folder, name)
    openssl("genpkey", "-algorithm", "ed25519", "-out", pem)
    der = openssl("pkey", "-in", pem, "-outform", "DER")
    seed = os.path.join(folder, name + ".seed")
    with open(seed, "wb") as f:
        f.write(base64.b64encode(der[-32:]))
    spki = openssl("pkey", "-in", pem, "-pubout", "-outform", "DER")
    return pem, seed, "v=DKIM1; k=ed25519; p=" + base64.b64encode(spki[-32:]).decode()


def py_sign(msg_crlf, key_file, selector, alg="rsa-sha256", canon="relaxed/relaxed"):
    """The message with python3-dkim's DKIM-Signature on top."""
    r = subprocess.run([SYSTEM_PYTHON, "-c", SIGN_SCRIPT, key_file, selector, alg, canon], input=msg_crlf.encode(),
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"python3-dkim could not sign: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode() + msg_crlf


def results(data):
    """The Authentication-Results values of a delivered message, in order,
    unfolded."""
    return [re.sub(r"\n[ \t]+", " ", v) for n, v in headers_of(data) if n.lower() == "authentication-results"]


def short_b(signed_crlf, index=0):
    """header.b= as it should be written for a signature of the message:
    the first 8 characters of b=, quoted when they hold a '/' or '='."""
    sigs = [v for n, v in headers_of(signed_crlf.replace("\r\n", "\n").encode()) if n.lower() == "dkim-signature"]
    b = tag(sigs[index], "b")[:8]
    return f'"{b}"' if re.search(r"[/=]", b) else b


def pass_result(selector, b):
    return f"dkim=pass header.d=example.org header.s={selector} header.b={b}"


def send(testcase, d, msg_crlf):
    """One message through the daemon; its delivered copy (LF), found by
    its Message-ID."""
    msgid = re.search(r"^Message-ID: (<[^>]+>)", msg_crlf, re.M).group(1).encode()
    c = postern.RawClient(d.port, timeout=60)
    with c:
        testcase.assertEqual(c.banner[0], 220)
        for line, want in (("EHLO client.example", "250"), ("MAIL FROM:<sender@example.org>", "250"),
                           ("RCPT TO:<bob@localhost>", "250"), ("DATA", "354")):
            got = c.cmd(line)
            testcase.assertTrue(got.startswith(want), f"{line!r} answered {got!r}")
        c.send(stuffed(msg_crlf) + ".\r\n")
        reply = c.reply_line()
        testcase.assertTrue(reply.startswith("250 "), f"{reply}\n{d.log()}")
    box = d.path("mail", "bob", "new")

    def mine():
        for name in os.listdir(box) if os.path.isdir(box) else []:
            data = postern.read_bytes(os.path.join(box, name))
            if msgid in data:
                return data
        return None

    data = postern.wait_until(mine, DELIVERY_TIMEOUT)
    testcase.assertIsNotNone(data, f"{msgid} not delivered:\n{d.log()}")
    return data


def deliver(testcase, d, msg_crlf, expected=None):
    """send(), and the delivered copy checked: under the maildir's
    Return-Path and Delivered-To, our field (its lines folded under 78
    columns), then `expected` (by default the message as sent) byte for
    byte."""
    data = send(testcase, d, msg_crlf)
    rest = (msg_crlf if expected is None else expected).replace("\r\n", "\n").encode()
    testcase.assertTrue(data.endswith(rest), data)
    names = [n.lower() for n, _ in headers_of(data)]
    testcase.assertEqual(names[:3], ["return-path", "delivered-to", "authentication-results"], data)
    ours = data[:len(data) - len(rest)].decode().split("\n", 2)[2]
    testcase.assertTrue(ours.startswith("Authentication-Results: "), ours)
    testcase.assertTrue(all(len(line.expandtabs(8)) < 78 for line in ours.split("\n")), ours)
    return data


class VerifyMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="postern-dkim-verify-")
        cls.dns = cls.daemon = None
        try:
            cls.rsa, rsa_txt = make_rsa(cls.keys, "rsa.key")
            cls.big, big_txt = make_rsa(cls.keys, "big.key", 4096)
            _, cls.ed_seed, ed_txt = make_ed25519(cls.keys, "ed.key")
            cls.revoked, _ = make_rsa(cls.keys, "revoked.key")  # its record below has an empty p=
            cls.dns = Dnsmasq({"sel._domainkey.example.org": rsa_txt,
                               "big._domainkey.example.org": big_txt,
                               "ed._domainkey.example.org": ed_txt,
                               "revoked._domainkey.example.org": "v=DKIM1; k=rsa; p="}).__enter__()
            cls.daemon = postern.Daemon(
                MAILDIR, name="dkim-verify", prepare=install_filter,
                before_listen=(f'filter "verify" proc-exec '
                               f'"@DIR@/filter-dkim -V -r 127.0.0.1:{cls.dns.port} -a {AUTHSERV_ID}"\n'),
                listen_options='filter "verify"').__enter__()
            if not cls.daemon.wait_log(r"filter ready filter=verify pid=\d+"):
                raise RuntimeError("filter-dkim -V did not start:\n" + cls.daemon.log())
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.daemon:
            cls.daemon.__exit__(None, None, None)
        if cls.dns:
            cls.dns.__exit__()
        shutil.rmtree(cls.keys, ignore_errors=True)

    def setUp(self):
        check_prerequisites(self, programs=[FILTER, SYSTEM_PYTHON, DNSMASQ], python_modules=["dkim", "nacl"])

    def deliver(self, msg_crlf, expected=None):
        return deliver(self, self.daemon, msg_crlf, expected)

    def first_result(self, data):
        return results(data)[0]

    # --- signatures that verify ----------------------------------------------

    def test_rsa_pass(self):
        signed = py_sign(message("rsa", ["first line", "last line"]), self.rsa, "sel")
        data = self.deliver(signed)
        self.assertEqual(self.first_result(data), f"{AUTHSERV_ID}; " + pass_result("sel", short_b(signed)))

    def test_ed25519_simple_pass(self):
        signed = py_sign(message("ed25519", ["first line", "", "last line"]), self.ed_seed, "ed",
                         alg="ed25519-sha256", canon="simple/simple")
        self.assertIn("a=ed25519-sha256", signed.replace("\r\n", ""))
        data = self.deliver(signed)
        self.assertEqual(self.first_result(data), f"{AUTHSERV_ID}; " + pass_result("ed", short_b(signed)))

    def test_two_signatures_both_pass(self):
        msg = message("two signatures", ["first line", "last line"])
        once = py_sign(msg, self.rsa, "sel")
        twice = py_sign(once, self.ed_seed, "ed", alg="ed25519-sha256")
        data = self.deliver(twice)
        # One resinfo per signature, the top one (the Ed25519 one) first.
        self.assertEqual(self.first_result(data),
                         f"{AUTHSERV_ID}; " + pass_result("ed", short_b(twice, 0)) + "; " +
                         pass_result("sel", short_b(twice, 1)))

    def test_key_larger_than_a_udp_answer(self):
        signed = py_sign(message("rsa 4096", ["first line", "last line"]), self.big, "big")
        data = self.deliver(signed)
        self.assertEqual(self.first_result(data), f"{AUTHSERV_ID}; " + pass_result("big", short_b(signed)))
        # Asked twice: over UDP (a truncated answer), then over TCP.
        self.assertEqual(self.dns.log().count("query[TXT] big._domainkey.example.org"), 2)

    # --- signatures that do not ----------------------------------------------

    def test_changed_body_fails(self):
        signed = py_sign(message("changed body", ["first line", "last line"]), self.rsa, "sel")
        data = self.deliver(signed.replace("last line", "LAST line"))
        self.assertEqual(self.first_result(data),
                         f'{AUTHSERV_ID}; dkim=fail reason="body hash did not verify" header.d=example.org '
                         f"header.s=sel header.b={short_b(signed)}")

    def test_changed_header_fails(self):
        signed = py_sign(message("changed header", ["first line", "last line"]), self.ed_seed, "ed",
                         alg="ed25519-sha256")
        data = self.deliver(signed.replace("Subject: changed header", "Subject: a header changed"))
        self.assertEqual(self.first_result(data),
                         f'{AUTHSERV_ID}; dkim=fail reason="signature did not verify" header.d=example.org '
                         f"header.s=ed header.b={short_b(signed)}")

    def test_no_key_in_the_dns_is_a_permerror(self):
        signed = py_sign(message("unknown selector", ["first line", "last line"]), self.rsa, "gone")
        data = self.deliver(signed)
        self.assertEqual(self.first_result(data),
                         f'{AUTHSERV_ID}; dkim=permerror reason="no key for signature" header.d=example.org '
                         f"header.s=gone header.b={short_b(signed)}")

    def test_revoked_key_is_a_permerror(self):
        signed = py_sign(message("revoked key", ["first line", "last line"]), self.revoked, "revoked")
        data = self.deliver(signed)
        result = self.first_result(data)
        self.assertRegex(result, rf'^{re.escape(AUTHSERV_ID)}; dkim=permerror reason="[^"]+" header.d=example.org '
                                 rf"header.s=revoked header.b=")

    def test_dns_refusing_is_a_temperror(self):
        # example.net is not dnsmasq's: with no upstream server it answers
        # REFUSED, a failure for now, not a missing key.
        msg = message("dns refused", ["first line", "last line"])
        signed = py_sign(msg, self.rsa, "sel")
        signed = signed.replace("d=example.org", "d=example.net", 1).replace("i=@example.org", "i=@example.net", 1)
        self.assertIn("d=example.net", signed)
        data = self.deliver(signed)
        self.assertEqual(self.first_result(data),
                         f'{AUTHSERV_ID}; dkim=temperror reason="key lookup failed" header.d=example.net '
                         f"header.s=sel header.b={short_b(signed)}")
        self.assertTrue(self.daemon.wait_log(r'filter stderr filter=verify line="filter-dkim: key lookup '
                                             r'sel\._domainkey\.example\.net failed: [^"]+"'), self.daemon.log())

    def test_unsigned_is_none(self):
        data = self.deliver(message("unsigned", ["first line", "last line"]))
        self.assertEqual(results(data), [f"{AUTHSERV_ID}; dkim=none"])

    # --- forged fields -----------------------------------------------------------

    def test_forged_results_with_our_authserv_id_are_removed(self):
        signed = py_sign(message("forged results", ["first line", "last line"]), self.rsa, "sel")
        forged = [f"Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d=bank.example",
                  "Authentication-Results: (from the sender) \"MX.Test\";",
                  "\tdkim=pass header.d=bank.example",
                  "Authentication-Results: other.example; dkim=fail header.d=example.org"]
        # Added below the signature, as anyone on the way could.
        head, body = signed.split("\r\n\r\n", 1)
        sent = head + "\r\n" + "\r\n".join(forged) + "\r\n\r\n" + body
        d = self.daemon
        before = len(re.findall("removed an Authentication-Results field", d.log()))
        # Delivered without the two forged fields.
        data = self.deliver(sent, expected=head + "\r\n" + forged[3] + "\r\n\r\n" + body)
        self.assertEqual(results(data), [f"{AUTHSERV_ID}; " + pass_result("sel", short_b(signed)),
                                         "other.example; dkim=fail header.d=example.org"])
        self.assertTrue(d.wait_log(r'filter stderr filter=verify line="filter-dkim: removed an '
                                   r'Authentication-Results field claiming to be ours \(mx\.test\)"',
                                   count=before + 2), d.log())


class VerifyModeDefaults(unittest.TestCase):
    def setUp(self):
        check_prerequisites(self, programs=[FILTER, SYSTEM_PYTHON, DNSMASQ], python_modules=["dkim", "nacl"])

    def test_authserv_id_is_the_daemons_admd(self):
        with postern.Daemon(MAILDIR, name="dkim-verify-admd", prepare=install_filter,
                            before_listen='filter "verify" proc-exec "@DIR@/filter-dkim -V -r 127.0.0.1:9"\n',
                            listen_options='filter "verify"') as d:
            self.assertTrue(d.wait_log(r"filter ready filter=verify pid=\d+"), d.log())
            self.assertTrue(d.hostname)
            data = deliver(self, d, message("admd", ["a line"]))
            self.assertEqual(results(data), [f"{d.hostname}; dkim=none"])

    def test_a_silent_name_server_holds_up_its_own_message_only(self):
        # A signature that parses (whether it verifies does not matter: its
        # key is never found).
        sig = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel; h=from:subject;\r\n"
               "\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAAAAAAAAAAAAAA")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))  # takes the queries, never answers
            port = silent.getsockname()[1]
            with postern.Daemon(MAILDIR, name="dkim-verify-slow", prepare=install_filter,
                                before_listen=f'filter "verify" proc-exec "@DIR@/filter-dkim -V -r 127.0.0.1:{port} '
                                              f'-a {AUTHSERV_ID}"\n',
                                listen_options='filter "verify"') as d:
                self.assertTrue(d.wait_log(r"filter ready filter=verify pid=\d+"), d.log())
                slow = sig + "\r\n" + message("waits for its key", ["a line"])
                c = postern.RawClient(d.port, timeout=60)
                with c:
                    for line in ("EHLO client.example", "MAIL FROM:<sender@example.org>", "RCPT TO:<bob@localhost>",
                                 "DATA"):
                        c.cmd(line)
                    c.send(stuffed(slow) + ".\r\n")
                    self.assertTrue(postern.wait_until(lambda: select.select([silent], [], [], 0)[0], 10),
                                    "no DNS query reached the name server")
                    # Another session meanwhile: unsigned, no lookup; not
                    # held up by the first.
                    quick = deliver(self, d, message("no key to wait for", ["a line"]))
                    self.assertEqual(results(quick), [f"{AUTHSERV_ID}; dkim=none"])
                    self.assertEqual(len(os.listdir(d.path("mail", "bob", "new"))), 1)
                    # The first ends when c-ares gives up (2 + 4 s): a
                    # failure for now.
                    reply = c.reply_line()
                    self.assertTrue(reply.startswith("250 "), reply)
                files = d.wait_files(d.path("mail", "bob"), 2, timeout=DELIVERY_TIMEOUT)
                [data] = [postern.read_bytes(f) for f in files if b"waits for its key" in postern.read_bytes(f)]
                self.assertRegex(results(data)[0], rf'^{re.escape(AUTHSERV_ID)}; dkim=temperror '
                                                   r'reason="key lookup failed" header\.d=example\.org header\.s=sel')
                self.assertTrue(d.wait_log(r'filter-dkim: key lookup sel\._domainkey\.example\.org failed: '
                                           r'.*[Tt]imeout'), d.log())

    def test_our_signer_then_our_verifier(self):
        keys = tempfile.mkdtemp(prefix="postern-dkim-chain-")
        try:
            rsa, rsa_txt = make_rsa(keys, "rsa.key")
            ed, _, ed_txt = make_ed25519(keys, "ed.key")

            def prep(folder):
                install_filter(folder)
                for path in (rsa, ed):
                    shutil.copy(path, folder)
                    readable_by_filters(os.path.join(folder, os.path.basename(path)))

            with Dnsmasq({"sel._domainkey.example.org": rsa_txt, "ed._domainkey.example.org": ed_txt}) as dns:
                head = ('filter "sign" proc-exec "@DIR@/filter-dkim -d example.org -s sel -k @DIR@/rsa.key '
                        '-d example.org -s ed -k @DIR@/ed.key"\n'
                        f'filter "verify" proc-exec "@DIR@/filter-dkim -V -r 127.0.0.1:{dns.port} -a {AUTHSERV_ID}"\n'
                        'filter "both" chain { "sign", "verify" }\n')
                with postern.Daemon(MAILDIR, name="dkim-sign-verify", prepare=prep, before_listen=head,
                                    listen_options='filter "both"') as d:
                    self.assertTrue(d.wait_log(r"filter ready filter=verify pid=\d+"), d.log())
                    self.assertTrue(d.wait_log(r"filter ready filter=sign pid=\d+"), d.log())
                    msg = message("signed and verified", ["first line", ".a dot", "last line"])
                    data = deliver(self, d, msg)
                    [result] = results(data)
                    self.assertRegex(result, rf"^{re.escape(AUTHSERV_ID)}; dkim=pass header\.d=example\.org "
                                             r"header\.s=(sel|ed) header\.b=\S+; dkim=pass header\.d=example\.org "
                                             r"header\.s=(sel|ed) header\.b=\S+$")
                    self.assertEqual(sorted(re.findall(r"header\.s=(\w+)", result)), ["ed", "sel"])
        finally:
            shutil.rmtree(keys, ignore_errors=True)

    def test_bad_options(self):
        for args, status, said in ((["-V", "-d", "example.org"], 2, "do not go with it"),
                                   (["-a", "mx.test"], 2, "-a and -r go with -V"),
                                   (["-V", "-a", "mx test"], 2, "-a: a host name"),
                                   (["-V", "-r", "not an address"], 1, "bad resolver address")):
            r = subprocess.run([FILTER, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, status, (args, r.stderr))
            self.assertIn(said, r.stderr.decode(), args)


if __name__ == "__main__":
    postern.run_tests()
