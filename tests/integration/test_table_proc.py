"""proc tables with the real daemon: OpenSMTPD's table programs run unchanged
through table-proc.so (issue 13).

- OpenSMTPD's short form `table users passwd:FILE` runs Debian's
  table-passwd with the table's name as argv[0];
- Debian's opensmtpd-extras table-sqlite answers `for domain <t>` (check
  domain) and `virtual <t>` (lookup alias); table-passwd answers `userbase
  <t>` (userinfo) and `auth <t>` (credentials) on an smtps listener: real
  mail lands in the virtual users' maildirs with their uids, AUTH PLAIN with
  the passwd file's hash is accepted and a wrong password refused;
- a line-protocol program (tests/integration/tables/table-test.py) that
  crashes in the middle of a lookup: the session gets a 4xx for that
  recipient, the daemon lives on, and after the restart backoff the same
  recipient is accepted and delivered;
- the table programs run as the daemon's unprivileged user, and none is
  left as a zombie.
"""

import os
import pwd
import shutil
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LIBEXEC = "/usr/libexec/opensmtpd"
TEST_PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tables", "table-test.py")
POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def prepare(smtps_port, alice_hash):
    def run(folder):
        for sub, mode in (("vmail", 0o1777), ("state", 0o1777), ("home", 0o755)):
            os.mkdir(os.path.join(folder, sub))
            os.chmod(os.path.join(folder, sub), mode)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", "server.key", "-out", "server.crt", "-days", "2",
                        "-subj", "/CN=mail.test", "-addext", "subjectAltName=DNS:mail.test"],
                       cwd=folder, check=True, capture_output=True, timeout=60)
        for f in ("server.key", "server.crt"):
            os.chmod(os.path.join(folder, f), 0o644)
        # table-sqlite's database and config (table-sqlite(5)).
        db = os.path.join(folder, "mail.sqlite")
        with sqlite3.connect(db) as c:
            c.executescript(
                "CREATE TABLE virtuals (email TEXT, destination TEXT);"
                "CREATE TABLE domains (domain TEXT);"
                "INSERT INTO virtuals VALUES ('alice@virt.test', 'alice');"
                "INSERT INTO virtuals VALUES ('sales@virt.test', 'alice, bob');"
                "INSERT INTO domains VALUES ('virt.test');")
        c.close()
        os.chmod(db, 0o644)
        write(os.path.join(folder, "sqlite.conf"),
              f"dbpath {db}\n"
              "query_alias SELECT destination FROM virtuals WHERE email=?;\n"
              "query_domain SELECT domain FROM domains WHERE domain=?;\n")
        # table-passwd's file (table-passwd(5)): passwd(5) lines, crypt hashes.
        write(os.path.join(folder, "passwd"),
              f"alice:{alice_hash}:4001:4001:Alice:{folder}/home/alice:/sbin/nologin\n"
              f"bob:*:4002:4002::{folder}/home/bob:/sbin/nologin\n")
        # The line-protocol program, readable and runnable by the daemon's user
        # (the source tree may not be), with a python3 it can reach.
        program = os.path.join(folder, "table-test.py")
        with open(TEST_PROGRAM) as src:
            text = src.read().replace("#!/usr/bin/env python3", "#!/usr/bin/python3", 1)
        write(program, text, 0o755)
        write(os.path.join(folder, "flaky.json"),
              '{"services": ["alias"], "alias": {"crash-once@flaky.test": "bob", "dave@flaky.test": "alice"},'
              f' "marker": "{folder}/state/crashed", "log": "{folder}/state/requests"}}\n')
    return run


CONFIG = ('pki mail.test cert "@DIR@/server.crt"\n'
          'pki mail.test key "@DIR@/server.key"\n'
          f'table vusers "proc:{LIBEXEC}/table-sqlite name=vusers @DIR@/sqlite.conf"\n'
          f'table vdomains "proc:{LIBEXEC}/table-sqlite @DIR@/sqlite.conf"\n'
          # OpenSMTPD's own short form: /usr/libexec/opensmtpd/table-passwd, argv[0] "users".
          'table users passwd:@DIR@/passwd\n'
          'table flaky "proc:@DIR@/table-test.py @DIR@/flaky.json"\n'
          'listen on 127.0.0.1 port {smtps} smtps hostname mail.test auth <users>\n'
          'action "virt" maildir "@DIR@/vmail/%{{user.username}}" virtual <vusers> userbase <users>\n'
          'action "flaky" maildir "@DIR@/vmail/%{{user.username}}" virtual <flaky> userbase <users>\n'
          'action "out" maildir "@DIR@/outbound" user root\n'
          'match from any for domain <vdomains> action "virt"\n'
          'match from any for domain "flaky.test" action "flaky"\n'
          'match auth from any for any action "out"\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as other uids")
@unittest.skipUnless(os.access(f"{LIBEXEC}/table-sqlite", os.X_OK) and os.access(f"{LIBEXEC}/table-passwd", os.X_OK),
                     "needs Debian's opensmtpd-extras")
class ProcTables(unittest.TestCase):
    def setUp(self):
        self.smtps = postern.free_port()
        alice_hash = subprocess.run([POSTERNCTL, "encrypt", "alicepass"], capture_output=True, text=True,
                                    check=True).stdout.strip()
        self.d = postern.Daemon(CONFIG.format(smtps=self.smtps), name="table-proc",
                                prepare=prepare(self.smtps, alice_hash))
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def send(self, rcpts, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@client.example", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n"), {})

    def subjects(self, user, n):
        files = self.d.wait_files(self.d.path("vmail", user), n)
        self.assertEqual(len(files), n, self.d.log())
        out = []
        for f in files:
            for line in postern.read_bytes(f).decode().splitlines():
                if line.startswith("Subject: "):
                    out.append(line[len("Subject: "):])
        return sorted(out), [os.stat(f).st_uid for f in files]

    def table_programs(self):
        """(pid, uid, state, argv) of every table program below the daemon."""
        out = []
        for pid in postern.descendants_of(self.d.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            except OSError:
                continue
            # Not a delivery agent: agents live on, and their --home may
            # hold "table-" too.
            if os.path.basename(argv[0]) != b"postern-local" and any(b"table-" in a for a in argv):
                out.append((pid, int(status["Uid"].split()[0]), status["State"].split()[0], argv))
        return out

    def test_sqlite_virtual_and_domain_passwd_userbase(self):
        self.send(["alice@virt.test"], "for alice")
        self.send(["sales@virt.test"], "for sales")
        self.assertEqual(self.subjects("alice", 2), (["for alice", "for sales"], [4001, 4001]))
        self.assertEqual(self.subjects("bob", 1), (["for sales"], [4002]))
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<sender@client.example>")
            self.assertEqual(c.cmd("RCPT TO:<carol@virt.test>")[:10], "550 5.1.1 ")  # not in virtuals
            self.assertEqual(c.cmd("RCPT TO:<alice@other.test>")[:4], "550 ")        # not in domains
            c.cmd("QUIT")
        # The programs run as the daemon's user, started by the lookups.
        postern_uid = pwd.getpwnam("_postern").pw_uid
        programs = self.table_programs()
        self.assertTrue(programs, self.d.log())
        for pid, uid, state, argv in programs:
            self.assertEqual(uid, postern_uid, argv)
            self.assertNotEqual(state, "Z", argv)
        self.assertIn([b"vusers", self.d.path("sqlite.conf").encode(), b""],
                      [argv for _, _, _, argv in programs])

    def test_auth_with_table_passwd(self):
        ctx = ssl.create_default_context(cafile=self.d.path("server.crt"))
        with smtplib.SMTP_SSL(context=ctx, timeout=10, local_hostname="client.example") as s:
            s._host = "mail.test"  # the name checked against the certificate (SNI)
            s.connect("127.0.0.1", self.smtps)
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("alice", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
            self.assertEqual(s.login("alice", "alicepass")[0], 235)
            self.assertEqual(s.sendmail("alice@virt.test", ["someone@far.example"], "Subject: out\r\n\r\nx\r\n"), {})
        files = self.d.wait_files(self.d.path("outbound"), 1)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertIn("with ESMTPSA", postern.read_bytes(files[0]).decode())
        # The credentials lookup started table-passwd in the unprivileged process too.
        postern_uid = pwd.getpwnam("_postern").pw_uid
        programs = [p for p in self.table_programs() if any(b"passwd" in a for a in p[3])]
        self.assertEqual([p[1] for p in programs], [postern_uid], programs)
        # `passwd:FILE` ran OpenSMTPD's program with the table's name, as OpenSMTPD does.
        self.assertEqual(programs[0][3], [b"users", self.d.path("passwd").encode(), b""])

    def test_a_program_that_crashes_mid_lookup(self):
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<sender@client.example>")
            reply = c.cmd("RCPT TO:<crash-once@flaky.test>")
            self.assertEqual(reply[:1], "4", reply)
            # Inside the backoff window the table answers at once, still 4xx.
            reply = c.cmd("RCPT TO:<dave@flaky.test>")
            self.assertEqual(reply[:1], "4", reply)
            c.cmd("QUIT")
        self.assertTrue(self.d.running())
        self.assertTrue(self.d.wait_log(r"table flaky: table program table-test\.py closed its output.*"
                                        r"exited with status 3"), self.d.log())
        self.assertFalse([p for p in self.table_programs() if p[2] == "Z"])
        time.sleep(1.2)  # the first backoff is 1 s
        self.send(["crash-once@flaky.test", "dave@flaky.test"], "after the restart")
        self.assertEqual(self.subjects("bob", 1), (["after the restart"], [4002]))
        self.assertEqual(self.subjects("alice", 1), (["after the restart"], [4001]))
        with open(self.d.path("state", "requests")) as f:
            self.assertEqual(f.read().count("handshake"), 2)  # started, crashed, started once more


if __name__ == "__main__":
    postern.run_tests()
