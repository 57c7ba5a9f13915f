"""`posternd -n`: configuration checks without starting anything.

A good file prints `configuration OK` and exits 0; a broken one exits 1 with
one `FILE:LINE:COL: message` line per problem; `-D name=value` overrides a
macro of the file; every seed in tests/config/seeds/ (real-world smtpd.conf
files) is either accepted or refused with a "not supported yet" message.

StartupChecks: what start-up would refuse because of this host (a table
backend without its plugin, a table file that is not there, an interface
that does not exist, an action method without its delivery plugin) -n
refuses too, with the same FILE:LINE:COL line, and the daemon started without
-n refuses it with that line before it writes a pid file or leaves a process.
"""

import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

GOOD = ('# a good file\n'
        'dom = "example.org"\n'
        'table aliases { root = admin, "postmaster" = root }\n'
        'listen on 127.0.0.1 port 2525\n'
        'smtp max-message-size 10M\n'
        'action "l" maildir "/tmp/%{rcpt.user}" user root\n'
        'action "m" mbox alias <aliases>\n'
        'match from any for domain $dom action "l"\n'
        'match from local for local action "m"\n'
        'match from any for any reject\n')

DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def check(path, *extra):
    r = subprocess.run([postern.POSTERND, "-n", "-f", path, *extra], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


class ConfigCheck(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="confcheck-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def diagnostics(self, stderr):
        # A pre-6.4 line's warning goes on with the modern lines, indented.
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]
        parsed = [DIAG.match(line) for line in lines]
        self.assertTrue(all(parsed), f"lines not in FILE:LINE:COL: form:\n{stderr}")
        return [(m["file"], int(m["line"]), int(m["col"]), m["msg"]) for m in parsed]

    def test_good_file(self):
        path = self.write("good.conf", GOOD)
        rc, out, err = check(path)
        self.assertEqual((rc, out, err), (0, "configuration OK\n", ""))

    def test_broken_file(self):
        path = self.write("broken.conf",
                          'action "l" maildir "/tmp/x"\n'
                          'listen on 127.0.0.1 port banana\n'
                          'frobnicate yes\n'
                          'match from local for local action "nosuch"\n')
        rc, out, err = check(path)
        self.assertEqual(rc, 1, err)
        self.assertNotIn("configuration OK", out)
        diags = self.diagnostics(err)
        where = [(f, line, col) for f, line, col, _ in diags]
        self.assertIn((path, 2, 26), where, err)   # the word "banana"
        self.assertIn((path, 3, 1), where, err)    # the unknown directive
        self.assertTrue(any(line == 4 and "nosuch" in msg for _, line, _, msg in diags), err)
        for f, line, col, msg in diags:
            self.assertEqual(f, path)
        self.assertIn("banana", err)
        self.assertIn("frobnicate", err)

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "absent.conf")
        rc, out, err = check(path)
        self.assertEqual(rc, 1)
        self.assertIn(path, err)
        self.assertIn("No such file or directory", err)

    def test_no_match_rule_refused(self):
        path = self.write("norules.conf", 'action "l" maildir "/tmp/x"\n')
        rc, out, err = check(path)
        self.assertEqual(rc, 1, out)
        self.assertTrue(self.diagnostics(err), err)

    def test_macro_override(self):
        path = self.write("macro.conf",
                          'act = "l"\n'
                          'action "l" maildir "/tmp/x"\n'
                          'match from local for local action $act\n')
        self.assertEqual(check(path)[:2], (0, "configuration OK\n"))
        rc, out, err = check(path, "-D", "act=missing")
        self.assertEqual(rc, 1, out)
        diags = self.diagnostics(err)
        self.assertEqual(len(diags), 1, err)
        self.assertEqual(diags[0][:2], (path, 3))
        self.assertIn("missing", diags[0][3])
        # And the other way round: -D supplies the value that makes the file good.
        path2 = self.write("macro2.conf",
                           'act = "wrong"\n'
                           'action "right" maildir "/tmp/x"\n'
                           'match from local for local action $act\n')
        self.assertEqual(check(path2)[0], 1)
        self.assertEqual(check(path2, "-D", "act=right")[:2], (0, "configuration OK\n"))

    def test_malformed_D_option(self):
        path = self.write("good.conf", GOOD)
        r = subprocess.run([postern.POSTERND, "-n", "-f", path, "-D", "novalue"], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("name=value", r.stderr.decode())

    # Seeds that are broken as the article printed them (OpenSMTPD refuses
    # them too): the refusal must name the real mistake.
    BROKEN_SEEDS = {
        "000_outgoing_relay.conf": "unknown table 'INCOMING-IP-OR-NETWORK'",  # a placeholder left for the reader
        # `listen on inet4` names no interface; OpenSMTPD refuses it as well.
        "001_listing1.conf": "after 'listen on', found 'inet4'",
        "003_macro_listen.conf": "'tls' needs a pki",
        # `deliver to maildmda`: the slides merged the maildir/mda choice.
        "003_prism.conf": "found 'maildmda'",
        # `queue encryption key YourKeyHere`: the article says to paste the
        # output of `openssl rand -hex 16` over the placeholder.
        "004_ehouse.conf": "the queue encryption key must be 32 characters",
        "004_pki_queue.conf": "the queue encryption key must be 32 characters",
    }
    # Seeds that parse; -n then checks their certificate files, which exist
    # only on the article author's machine: they pass with test certificates
    # put in their place (test_seeds_with_test_certificates).
    NEEDS_CERTIFICATES = {
        "002_lmtp_submission.conf": "pki example_com:",
    }
    # Seeds whose tables are files on the author's machine (db: maps, file:
    # lists): -n names each missing one (test_seeds.py runs them with their
    # tables built in a folder of the test's own).
    NEEDS_TABLE_FILES = {
        "001_assembled.conf": "table aliases: /etc/aliases.db: No such file or directory",
        "001_wildcard_domains.conf": "table users: /etc/users.db: No such file or directory",
        "003_baddies.conf": "table baddies: /etc/mail/bad_ips.db: No such file or directory",
        "003_first_config.conf": "table aliases: /etc/mail/aliases.db: No such file or directory",
    }

    def test_seeds(self):
        seeds = sorted(glob.glob(os.path.join(postern.SOURCE_DIR, "tests", "config", "seeds", "*.conf")))
        if not seeds:
            self.skipTest("tests/config/seeds/ has no *.conf files yet")
        print(f"\n  checking {len(seeds)} seed files", file=sys.stderr)
        for seed in seeds:
            with self.subTest(seed=os.path.basename(seed)):
                rc, out, err = check(seed)
                if rc == 0:
                    self.assertEqual(out, "configuration OK\n", err)
                    continue
                self.assertEqual(rc, 1, err)
                diags = self.diagnostics(err)
                name = os.path.basename(seed)
                expected = (self.BROKEN_SEEDS.get(name) or self.NEEDS_CERTIFICATES.get(name)
                            or self.NEEDS_TABLE_FILES.get(name) or "not supported yet")
                self.assertTrue(any(expected in msg for *_, msg in diags),
                                f"{os.path.basename(seed)} refused for a reason other than "
                                f"{expected!r}:\n{err}")


PLUGINS = os.path.join(postern.BUILD_DIR, "plugins")  # where posternd run from the build tree finds them


def processes_with(text):
    """PIDs of the processes whose command line holds `text` (a config path unique to a test)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


class StartupChecks(unittest.TestCase):
    """Each config below is good grammar that start-up cannot run with on this
    host. The tested line is line 1 of the file; the rest is a config that
    starts (it passes -n in test_control_config_starts)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="startcheck-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        os.chmod(self.dir, 0o755)
        self.port = postern.free_port()

    def config(self, first_line, tail=""):
        path = os.path.join(self.dir, "postern.conf")
        with open(path, "w") as f:
            f.write(first_line + "\n"
                    f'queue path "{self.dir}/spool"\n'
                    f'pidfile "{self.dir}/posternd.pid"\n'
                    f'control socket "{self.dir}/run/control.sock"\n'
                    f'mbox path "{self.dir}/mbox"\n'
                    f"listen on 127.0.0.1 port {self.port}\n"
                    f'action "local" maildir "{self.dir}/mail/%{{rcpt.user}}"\n'
                    'match from local for local action "local"\n' + tail)
        return path

    def start(self, path):
        """posternd started as the unit starts it (no -n, daemonizing): (exit status, stderr)."""
        proc = subprocess.Popen([postern.POSTERND, "-f", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.returncode, err.decode()

    def assert_refused(self, path, line, col, message, prefix_only=False):
        """-n and start-up both exit 1 with the line PATH:LINE:COL: MESSAGE and nothing else."""
        expected = f"{path}:{line}:{col}: {message}"

        def check_lines(err, what):
            lines = [x for x in err.splitlines() if x.strip()]
            self.assertEqual(len(lines), 1, f"{what}: expected one problem:\n{err}")
            if prefix_only:
                self.assertTrue(lines[0].startswith(expected), f"{what}:\n{lines[0]}\nshould start with\n{expected}")
            else:
                self.assertEqual(lines[0], expected, what)
            return lines[0]

        rc, out, err = check(path)
        self.assertEqual(rc, 1, f"-n: {out}{err}")
        self.assertNotIn("configuration OK", out)
        from_check = check_lines(err, "-n")

        try:
            rc, err = self.start(path)
            self.assertEqual(rc, 1, f"start-up: {err}")
            self.assertEqual(check_lines(err, "start-up"), from_check)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "posternd.pid")), "start-up left a pid file")
            self.assertEqual(processes_with(path), [], "start-up left a process")
        finally:
            for pid in processes_with(path):  # a daemon that started after all (the bug this tests)
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass

    def test_control_config_starts(self):
        self.assertEqual(check(self.config(""))[:2], (0, "configuration OK\n"))

    def test_db_table(self):
        missing = os.path.join(self.dir, "aliases.db")
        path = self.config(f"table aliases db:{missing}")
        self.assert_refused(path, 1, 7, f"table aliases: {missing}: No such file or directory; "
                                        f"create the file or correct the path")

    def test_sqlite_table(self):
        missing = os.path.join(self.dir, "sqlite.conf")
        path = self.config(f"table users sqlite:{missing}")
        self.assert_refused(path, 1, 7, f"table users: {missing}: No such file or directory; "
                                        f"create the file or correct the path")

    def test_unknown_table_backend(self):
        path = self.config("table users nosuch:/etc/mail/x.conf")
        self.assert_refused(path, 1, 7, f"table users: no table backend 'nosuch' (no plugin table-nosuch.so in "
                                        f"{PLUGINS}; installed: ", prefix_only=True)

    def test_missing_table_file(self):
        missing = os.path.join(self.dir, "aliasess")
        path = self.config(f"table aliases file:{missing}")
        self.assert_refused(path, 1, 7, f"table aliases: {missing}: No such file or directory; "
                                        f"create the file or correct the path")

    def test_interface_if0(self):
        path = self.config(f"listen on if0 port {self.port}")
        self.assert_refused(path, 1, 1, "listen on if0: no interface, address or host name 'if0' on this host; "
                                        "name an interface (here: ", prefix_only=True)

    def test_interface_lo0(self):
        path = self.config(f"listen on lo0 port {self.port}")
        self.assert_refused(path, 1, 1, "listen on lo0: no interface 'lo0' on this host (the loopback "
                                        "interface's name on the BSDs); on Linux it is 'lo': listen on lo, "
                                        "or on localhost")

    def test_interface_vio0(self):
        # An OpenBSD driver's name; `egress` itself: test_listen_egress.py.
        path = self.config(f"listen on vio0 port {self.port}")
        self.assert_refused(path, 1, 1, "listen on vio0: no interface 'vio0' on this host ('vio' is a BSD network "
                                        "driver; Linux names interfaces otherwise, such as eth0 or enp1s0)",
                            prefix_only=True)

    def test_address_of_another_host(self):
        path = self.config(f"listen on 198.51.100.7 port {self.port}")
        self.assert_refused(path, 1, 1, "listen on 198.51.100.7: 198.51.100.7 is not an address of this host; "
                                        "name one of its addresses (", prefix_only=True)


    def test_queue_path_is_a_file(self):
        path = self.config("")
        with open(os.path.join(self.dir, "spool"), "w") as f:
            f.write("not a folder\n")
        rc, out, err = check(path)
        self.assertEqual((rc, err), (1, f"{path}: queue path {self.dir}/spool: {self.dir}/spool is not a folder; "
                                        f"remove it, or set 'queue path' to a path where a folder can be made\n"))

    def test_control_socket_path_too_long(self):
        sock = os.path.join(self.dir, "x" * 120, "control.sock")
        path = self.config("", f'control socket "{sock}"\n')
        message = (f"{path}: control socket {sock}: longer than 107 bytes, the limit of a UNIX socket's path; "
                   "choose a shorter path\n")
        self.assertEqual(check(path), (1, "", message))
        rc, err = self.start(path)
        self.assertEqual((rc, err), (1, message))

    @unittest.skipUnless(os.geteuid() == 0, "needs root: the table file belongs to root")
    def test_root_only_table_passes_as_root(self):
        # /etc/mail/secrets is usually root:root 0600; the daemon reads it as root.
        secrets = os.path.join(self.dir, "secrets")
        with open(secrets, "w") as f:
            f.write("alice $6$salt$hash\n")
        os.chown(secrets, 0, 0)
        os.chmod(secrets, 0o600)
        path = self.config(f"table secrets file:{secrets}")
        self.assertEqual(check(path), (0, "configuration OK\n", ""))


class SeedsWithCertificates(unittest.TestCase):
    """The articles' TLS set-ups (000: outgoing relay with submission, 002:
    LMTP + submission) pass `posternd -n` once what names the article
    author's machine is swapped for this one's: certificate and table paths
    point at real files, the interfaces (eth0, if0) are `lo`, and the one
    placeholder table of 000 names a network, as the article asks. 002
    passes with its lmtp action as written."""

    def localise(self, seed, tmp):
        """The seed's text with this machine's paths, interfaces and network."""
        import re
        with open(os.path.join(postern.SOURCE_DIR, "tests", "config", "seeds", seed)) as f:
            text = f.read()
        text = re.sub(r'(pki \S+ (?:cert|certificate)) "[^"]*"', rf'\1 "{tmp}/test.crt"', text)
        text = re.sub(r'(pki \S+ key) "[^"]*"', rf'\1 "{tmp}/test.key"', text)
        text = text.replace("<INCOMING-IP-OR-NETWORK>", "{ 192.0.2.0/24 }")
        text = re.sub(r"listen on (eth0|if0)\b", "listen on lo", text)
        tables = {"secrets": "mail.example.org alice:$6$salt$hash\n",   # 000: relay credentials by label
                  "virtuals": "alice@example.com alice\n",               # 002: virtual users
                  "submitters": "alice $6$salt$hash\n"}                  # 002: AUTH credentials
        for name, content in tables.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(content)
            text = re.sub(rf'(table {name}) (?:file:)?"?/[^"\s]*"?', rf"\1 file:{tmp}/{name}", text)
        return text

    def test_seeds_with_test_certificates(self):
        import subprocess as sp
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            sp.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", "test.key", "-out", "test.crt", "-days", "2", "-subj", "/CN=mail.example.org"],
                   cwd=tmp, check=True, capture_output=True, timeout=60)
            for seed in ("000_outgoing_relay.conf", "002_lmtp_submission.conf"):
                with self.subTest(seed=seed):
                    text = self.localise(seed, tmp)
                    path = os.path.join(tmp, seed)
                    with open(path, "w") as f:
                        f.write(text)
                    rc, out, err = check(path)
                    self.assertEqual((rc, out), (0, "configuration OK\n"), err)


if __name__ == "__main__":
    postern.run_tests()
