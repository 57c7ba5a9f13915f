"""Our own filters (issue 12), unchanged, under Debian's OpenSMTPD 6.8
(/usr/sbin/smtpd): the same filter protocol as postern's, so the same
binaries must work there.

Each OpenSMTPD runs in the foreground (`smtpd -d -f CONF`) in a private mount
namespace whose /var/spool (its compiled-in queue), /run (its control
socket) and /etc/resolv.conf are the test's own (test_relay_peers.OpenSmtpd),
with a plaintext listener on a free loopback port that names the filter, and a
maildir action (as nobody: OpenSMTPD does not deliver as root). OpenSMTPD
runs proc-exec filters as its unprivileged user (`opensmtpd` on Debian): the
binaries are copied into the instance's folder (0755) and the keys given to
that user.

- filter-dkim signs with RSA and with Ed25519; python3-dkim (the system
  python) verifies what lands in the maildir, and refuses a changed copy.
- filter-rspamd against a real rspamd (one for the class,
  test_filter_rspamd.ScanServer): GTUBE refused after DATA with 550 5.7.1;
  a clean message delivered with rspamd's X-Spamd-Result and without the
  client's X-Spam; "add header" writes its X-Spam headers; rspamd
  unreachable gives 451 4.7.1.

Needs root (mount namespaces, deliveries as nobody): skipped otherwise. A
missing program makes the tests fail with the reason.
"""

import os
import pwd
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from test_filter_debian import (GTUBE, RSPAMD, SYSTEM_PYTHON, check_prerequisites, dkim_verify,  # noqa: E402
                                headers_of, make_ed25519_key, make_rsa_key, message, tag, wire_form)
from test_filter_rspamd import FILTER_DKIM, FILTER_RSPAMD, NOT_SCANNED, ScanServer, body_of, lf, send  # noqa: E402
from test_relay_peers import SMTPD, OpenSmtpd  # noqa: E402

FILTER_USER = "opensmtpd"  # Debian's OpenSMTPD runs proc-exec filters as this user
RCPT = "root@peer.test"  # an existing user: OpenSMTPD checks it (and delivers as nobody)
DELIVERY_TIMEOUT = 20.0

DELIVER = ('action "l" maildir "@DIR@/box/Maildir" user nobody\n'
           'match from any for domain "peer.test" action "l"\n')


def filter_user():
    pw = pwd.getpwnam(FILTER_USER)
    return pw.pw_uid, pw.pw_gid


def for_filters(path):
    """A key only OpenSMTPD's filter user may read."""
    os.chown(path, *filter_user())
    os.chmod(path, 0o600)


class FilteredOpenSmtpd(OpenSmtpd):
    """OpenSmtpd whose config starts with `before_listen` (the filter lines)
    and whose listener has `listen_options`; prepare(folder) runs before it
    starts; the maildir folder box/ belongs to nobody."""

    START_TIMEOUT = 20.0

    def __init__(self, config_text, name, before_listen, listen_options, prepare=None):
        super().__init__(config_text, name=name)
        self.before_listen = before_listen
        self.listen_options = listen_options
        self.prepare = prepare

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.dir, 0o755)
        try:
            for sub in ("spool", "run", "box"):
                os.mkdir(self.path(sub), 0o755)
            nobody = pwd.getpwnam("nobody")
            os.chown(self.path("box"), nobody.pw_uid, nobody.pw_gid)
            with open(self.path("resolv.conf"), "w") as f:
                # libasr: /etc/hosts only; glibc: a resolver on loopback, which fails at once.
                f.write("nameserver 127.0.0.1\nlookup file\n")
            if self.prepare:
                self.prepare(self.dir)
            self.port = postern.free_port()
            with open(self.path("smtpd.conf"), "w") as f:
                f.write(self.before_listen.replace("@DIR@", self.dir))
                f.write(f"listen on 127.0.0.1 port {self.port} {self.listen_options}\n")
                f.write(self.config_text.replace("@DIR@", self.dir))
            os.chmod(self.path("smtpd.conf"), 0o644)
            self._spawn()
        except BaseException:
            sys.stderr.write(f"[{self.name}] start failed; kept {self.dir}; log:\n{self.log()}\n")
            self.stop()
            raise
        return self

    def filter_process(self, program):
        """(pid, argv, real and effective uid) of the process below smtpd
        running our copy of program; None when there is none."""
        for pid in postern.descendants_of(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode() for a in f.read().split(b"\0") if a]
                with open(f"/proc/{pid}/status") as f:
                    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M)
            except OSError:
                continue
            if argv and argv[0] == self.path(program):
                return pid, argv, (int(uids.group(1)), int(uids.group(2)))
        return None

    def check_filter_process(self, testcase, program):
        """Our copy of program runs below smtpd as OpenSMTPD's filter user."""
        found = postern.wait_until(lambda: self.filter_process(program), 5)
        testcase.assertIsNotNone(found, f"no {program} below smtpd; smtpd log:\n{self.log()}")
        uid = filter_user()[0]
        testcase.assertEqual(found[2], (uid, uid), found)

    def maildir(self):
        return self.path("box", "Maildir")

    def delivered(self, n=1):
        files = postern.wait_until(lambda: len(postern.maildir_new(self.maildir())) >= n and
                                   postern.maildir_new(self.maildir()), DELIVERY_TIMEOUT) or []
        if len(files) != n:
            raise AssertionError(f"{len(files)} files delivered, expected {n}; smtpd log:\n{self.log()}")
        return [postern.read_bytes(os.path.join(self.maildir(), "new", f)) for f in files]


def install(folder, *programs):
    for program in programs:
        dest = os.path.join(folder, os.path.basename(program))
        shutil.copy(program, dest)
        os.chmod(dest, 0o755)


def require_opensmtpd(testcase):
    for p in (SMTPD, "/usr/bin/unshare"):
        testcase.assertTrue(os.access(p, os.X_OK), f"{p} is missing: install opensmtpd / util-linux")
    try:
        filter_user()
    except KeyError:
        testcase.fail(f"no user {FILTER_USER}: is Debian's opensmtpd package installed?")


@unittest.skipUnless(os.geteuid() == 0, "needs root: mount namespaces for OpenSMTPD, deliveries as nobody")
class DkimUnderOpenSmtpd(unittest.TestCase):
    """filter-dkim as an OpenSMTPD proc-exec filter."""

    def setUp(self):
        require_opensmtpd(self)
        check_prerequisites(self, programs=[FILTER_DKIM, SYSTEM_PYTHON], python_modules=["dkim", "nacl"])

    def sign(self, name, key_maker, algorithm):
        records = {}

        def prepare(folder):
            install(folder, FILTER_DKIM)
            records["sel._domainkey.example.org"] = key_maker(folder, name="signing.key")
            for_filters(os.path.join(folder, "signing.key"))

        before = 'filter "dkim" proc-exec "@DIR@/filter-dkim -d example.org -s sel -k @DIR@/signing.key"\n'
        with FilteredOpenSmtpd(DELIVER, name=name, prepare=prepare, before_listen=before,
                               listen_options='filter "dkim"') as o:
            o.check_filter_process(self, "filter-dkim")
            msg = message(f"signed under OpenSMTPD ({algorithm})",
                          ["first line", ".a line that starts with a dot", "a | pipe", "", "last line"],
                          extra_headers=["X-Note: left|right"])
            c, reply = send(o.port, msg, rcpt=RCPT)
            with c:
                self.assertRegex(reply, r"^250 ", o.log())
                self.assertEqual(c.cmd("QUIT")[:3], "221")
            [data] = o.delivered()
            # The message itself intact below the headers OpenSMTPD and the filter added.
            self.assertTrue(data.endswith(lf(msg)), data)
            hdrs = headers_of(data)
            names = [n for n, _ in hdrs]
            self.assertIn("Received", names)
            sigs = [v for n, v in hdrs if n.lower() == "dkim-signature"]
            self.assertEqual(len(sigs), 1, data)
            sig = sigs[0]
            self.assertEqual((tag(sig, "a"), tag(sig, "d"), tag(sig, "s"), tag(sig, "c")),
                             (algorithm, "example.org", "sel", "relaxed/relaxed"), sig)
            # The filter sees OpenSMTPD's Received: and puts its header above it.
            self.assertLess(names.index("DKIM-Signature"), names.index("Received"), names)
            self.assertIn("from", tag(sig, "h").lower().split(":"))
            ok, why = dkim_verify(wire_form(data), records)
            self.assertTrue(ok, f"the signature does not verify: {why}\n{data.decode(errors='replace')}")
            ok, why = dkim_verify(wire_form(data.replace(b"last line", b"LAST line")), records)
            self.assertFalse(ok, f"a changed body still verifies: {why}")
            ok, why = dkim_verify(wire_form(re.sub(rb"\nSubject: ", b"\nSubject: Re: ", data, count=1)), records)
            self.assertFalse(ok, f"a changed Subject still verifies: {why}")

    def test_rsa(self):
        self.sign("osmtpd-dkim-rsa", make_rsa_key, "rsa-sha256")

    def test_ed25519(self):
        self.sign("osmtpd-dkim-ed25519", make_ed25519_key, "ed25519-sha256")


@unittest.skipUnless(os.geteuid() == 0, "needs root: mount namespaces for OpenSMTPD, deliveries as nobody")
class RspamdUnderOpenSmtpd(unittest.TestCase):
    """filter-rspamd as an OpenSMTPD proc-exec filter, against one real rspamd."""

    server = None
    failed = False

    @classmethod
    def setUpClass(cls):
        for p in (RSPAMD, FILTER_RSPAMD, SMTPD):
            if not os.access(p, os.X_OK):
                raise AssertionError(f"{p} is missing (rspamd, opensmtpd: their Debian packages; "
                                     f"the filter: the build)")
        cls.server = ScanServer()
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
        before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            type(self).failed = True
        return result

    def setUp(self):
        require_opensmtpd(self)

    def smtpd(self, name, port=None):
        port = port or self.server.port
        before = f'filter "rspamd" proc-exec "@DIR@/filter-rspamd -url http://127.0.0.1:{port}"\n'
        return FilteredOpenSmtpd(DELIVER, name=name, prepare=lambda folder: install(folder, FILTER_RSPAMD),
                                 before_listen=before, listen_options='filter "rspamd"')

    def accepted(self, o, msg):
        c, reply = send(o.port, msg, rcpt=RCPT)
        with c:
            self.assertRegex(reply, r"^250 ", o.log())
            self.assertEqual(c.cmd("QUIT")[:3], "221")
        [data] = o.delivered()
        return data

    def refused(self, o, msg, expected):
        c, reply = send(o.port, msg, rcpt=RCPT)
        with c:
            self.assertEqual(reply, expected, o.log())
            # The session goes on.
            self.assertEqual(c.cmd("RSET")[:3], "250")
            self.assertEqual(c.cmd("QUIT")[:3], "221")
        time.sleep(1.0)
        self.assertEqual(postern.maildir_new(o.maildir()), [], o.log())

    def check_spamd_result(self, hdrs):
        names = [n for n, _ in hdrs]
        self.assertEqual(names.count("X-Spamd-Result"), 1, hdrs)
        self.assertEqual(names[-1], "X-Spamd-Result", names)
        self.assertRegex(dict(hdrs)["X-Spamd-Result"], r"^default: False \[-?[0-9.]+ / 100\.00\];\n\t\S")

    def test_gtube_is_refused(self):
        with self.smtpd("osmtpd-rspamd-gtube") as o:
            o.check_filter_process(self, "filter-rspamd")
            self.refused(o, message("gtube", ["some line", GTUBE, "last line"]), "550 5.7.1 Gtube pattern")

    def test_clean_message_passes(self):
        with self.smtpd("osmtpd-rspamd-clean") as o:
            msg = message("a clean message", ["hello bob", ".a dotted line", "bye"],
                          extra_headers=["X-Spam: forged by the client"])
            data = self.accepted(o, msg)
            hdrs = headers_of(data)
            names = [n for n, _ in hdrs]
            self.assertNotIn("X-Spam", names, data)
            self.assertNotIn(b"forged", data)
            self.check_spamd_result(hdrs)
            self.assertEqual(names[-6:], ["From", "To", "Subject", "Date", "Message-ID", "X-Spamd-Result"], names)
            self.assertIn(lf(msg.split("X-Spam:")[0]), data)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    def test_add_header_action(self):
        with self.smtpd("osmtpd-rspamd-add-header") as o:
            msg = message("postern-add-header please", ["hello bob", "bye"])
            data = self.accepted(o, msg)
            hdrs = headers_of(data)
            names = [n for n, _ in hdrs]
            values = dict(hdrs)
            for h in ("X-Spam", "X-Spam-Score", "X-Spam-Status"):
                self.assertEqual(names.count(h), 1, data)
                self.assertLess(names.index(h), names.index("Received"), names)
            self.assertEqual(values["X-Spam"], "Yes")
            self.assertRegex(values["X-Spam-Score"], r"^[0-9.]+ / 100\.00$")
            self.assertIn("POSTERN_ADD_HEADER=60.000", values["X-Spam-Status"])
            self.check_spamd_result(hdrs)
            self.assertEqual(body_of(data), lf(msg.split("\r\n\r\n", 1)[1]))

    def test_rspamd_unreachable_tempfails(self):
        with self.smtpd("osmtpd-rspamd-down", port=postern.free_port()) as o:
            self.refused(o, message("nobody home", ["hello bob"]), NOT_SCANNED)


if __name__ == "__main__":
    postern.run_tests()
