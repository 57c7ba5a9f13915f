"""SQLite tables (table-sqlite.so) with the real daemon.

One SQLite file and one table-sqlite config, as opensmtpd-extras'
table-sqlite(5) example has them, used by four tables: `auth <creds>` on a
submission listener (AUTH PLAIN over STARTTLS, crypt hashes from `posternctl
encrypt`), `for domain <domains>`, `virtual <vusers>` and `userbase <ubase>`
(virtual users that exist only in the database, each delivered into its own
maildir as its own uid). The database is read live: rows added by another
writer count at the next lookup, without a reload; `posternctl update table`
reads a changed config; a writer holding the database locked makes the
recipient wait (4xx), not fail; `posternd -n` reports a query the database
refuses and a table used for a service it has no query for.
"""

import os
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
POSTERND = postern.POSTERND

SQLITE_CONF = """\
# table-sqlite config shared by the four tables
dbpath @DIR@/mail.sqlite
busy_timeout 300
query_credentials SELECT email, password FROM credentials WHERE email=?
query_domain SELECT domain FROM domains WHERE domain=?
query_alias SELECT destination FROM virtuals WHERE email=?
query_userinfo SELECT uid, gid, home FROM users WHERE name=?
"""

CONFIG = ('pki mail.test cert "@DIR@/server.crt"\n'
          'pki mail.test key "@DIR@/server.key"\n'
          'table creds sqlite:@DIR@/sqlite.conf\n'
          'table domains sqlite:@DIR@/sqlite.conf\n'
          'table vusers sqlite:@DIR@/sqlite.conf\n'
          'table ubase sqlite:@DIR@/sqlite.conf\n'
          'listen on 127.0.0.1 port @SUBMISSION@ tls-require hostname mail.test auth <creds>\n'
          'action "virt" maildir "@DIR@/vmail/%{user.username}" virtual <vusers> userbase <ubase>\n'
          'match from any for domain <domains> action "virt"\n')


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def encrypt(password):
    h = subprocess.run([POSTERNCTL, "encrypt", password], capture_output=True, text=True, check=True,
                       timeout=20).stdout.strip()
    assert h.startswith("$"), h
    return h


def db_exec(path, *statements):
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            for s in statements:  # SQL text, or (SQL, parameters)
                if isinstance(s, tuple):
                    con.execute(*s)
                else:
                    con.execute(s)
    finally:
        con.close()


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as the userbase's uids")
class SqliteTables(unittest.TestCase):
    def setUp(self):
        self.submission = postern.free_port()
        self.bob_hash = encrypt("bob-secret")
        self.d = postern.Daemon(CONFIG.replace("@SUBMISSION@", str(self.submission)), name="sqlite",
                                prepare=self.prepare)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.db = self.d.path("mail.sqlite")

    def prepare(self, folder):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", "server.key", "-out", "server.crt", "-days", "2",
                        "-subj", "/CN=mail.test", "-addext", "subjectAltName=DNS:mail.test"],
                       cwd=folder, check=True, capture_output=True, timeout=60)
        os.chmod(os.path.join(folder, "server.key"), 0o600)
        for sub, mode in (("vmail", 0o1777), ("home", 0o755)):
            os.mkdir(os.path.join(folder, sub))
            os.chmod(os.path.join(folder, sub), mode)
        db = os.path.join(folder, "mail.sqlite")
        db_exec(db,
                "CREATE TABLE credentials (email TEXT NOT NULL, password TEXT NOT NULL)",
                "CREATE TABLE domains (domain TEXT NOT NULL)",
                "CREATE TABLE virtuals (email TEXT NOT NULL, destination TEXT NOT NULL)",
                "CREATE TABLE users (name TEXT NOT NULL, uid INTEGER, gid INTEGER, home TEXT)",
                ("INSERT INTO credentials VALUES (?, ?)", ("bob@mail.test", self.bob_hash)),
                "INSERT INTO domains VALUES ('mail.test')",
                "INSERT INTO virtuals VALUES ('bob@mail.test', 'vbob'), ('team@mail.test', 'vbob'),"
                " ('team@mail.test', 'valice')",
                ("INSERT INTO users VALUES ('vbob', 4201, 4201, ?), ('valice', 4202, 4202, ?)",
                 (f"{folder}/home/vbob", f"{folder}/home/valice")))
        os.chmod(db, 0o644)  # reload reopens it as the daemon's user
        write(os.path.join(folder, "sqlite.conf"), SQLITE_CONF.replace("@DIR@", folder))

    # ---- helpers ----

    def send(self, rcpts, subject, port=None):
        with smtplib.SMTP("127.0.0.1", port or self.d.port, local_hostname="client.example", timeout=10) as s:
            return s.sendmail("sender@client.example", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n")

    def rcpt(self, address):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.mail("sender@client.example")[0], 250)
            return s.rcpt(address)

    def submission_session(self):
        s = smtplib.SMTP(timeout=10)
        s._host = "mail.test"
        s.connect("127.0.0.1", self.submission)
        s.ehlo("client.example")
        ctx = ssl.create_default_context(cafile=self.d.path("server.crt"))
        s.starttls(context=ctx)
        s.ehlo("client.example")
        return s

    def maildir(self, user, n):
        files = self.d.wait_files(self.d.path("vmail", user), n)
        self.assertEqual(len(files), n, self.d.log())
        return files

    def ctl(self, *args):
        return subprocess.run([POSTERNCTL, "-s", self.d.path("run", "control.sock"), *args], capture_output=True,
                              text=True, timeout=20)

    # ---- tests ----

    def test_virtual_users_from_the_database(self):
        self.assertEqual(self.send(["bob@mail.test"], "to bob"), {})
        files = self.maildir("vbob", 1)
        self.assertIn(b"Subject: to bob", postern.read_bytes(files[0]))
        self.assertEqual(os.stat(files[0]).st_uid, 4201)  # userinfo's uid

        # Two rows for one address: an alias list.
        self.assertEqual(self.send(["team@mail.test"], "to the team"), {})
        self.maildir("vbob", 2)
        files = self.maildir("valice", 1)
        self.assertEqual(os.stat(files[0]).st_uid, 4202)

        code, _ = self.rcpt("nobody@mail.test")
        self.assertEqual(code, 550)  # no virtual row
        code, _ = self.rcpt("bob@other.test")
        self.assertEqual(code, 550)  # no domain row: no rule, no relaying

    def test_auth_plain_over_starttls(self):
        with self.submission_session() as s:
            self.assertIn("auth", s.esmtp_features)
            s.user, s.password = "bob@mail.test", "wrong"
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.auth("PLAIN", s.auth_plain)
            self.assertEqual(e.exception.smtp_code, 535)
        with self.submission_session() as s:
            s.user, s.password = "bob@mail.test", "bob-secret"
            code, _ = s.auth("PLAIN", s.auth_plain)
            self.assertEqual(code, 235)
            self.assertEqual(s.sendmail("bob@mail.test", ["team@mail.test"], "Subject: submitted\r\n\r\nx\r\n"), {})
        self.assertIn(b"Subject: submitted", postern.read_bytes(self.maildir("valice", 1)[0]))
        with self.submission_session() as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("eve@mail.test", "bob-secret")  # no such row

    def test_new_rows_count_without_reload(self):
        code, _ = self.rcpt("carol@new.test")
        self.assertEqual(code, 550)
        db_exec(self.db,
                "INSERT INTO domains VALUES ('new.test')",
                "INSERT INTO virtuals VALUES ('carol@new.test', 'vcarol')",
                ("INSERT INTO users VALUES ('vcarol', 4203, 4203, ?)", (self.d.path("home", "vcarol"),)),
                ("INSERT INTO credentials VALUES (?, ?)", ("carol@new.test", encrypt("carol-secret"))))
        self.assertEqual(self.send(["carol@new.test"], "to carol"), {})
        self.assertEqual(os.stat(self.maildir("vcarol", 1)[0]).st_uid, 4203)
        with self.submission_session() as s:
            self.assertEqual(s.login("carol@new.test", "carol-secret")[0], 235)

        db_exec(self.db, "DELETE FROM virtuals WHERE email = 'carol@new.test'")
        code, _ = self.rcpt("carol@new.test")
        self.assertEqual(code, 550)

    def test_update_table_reads_a_changed_config(self):
        # A config the database refuses: the update fails, the old queries stay.
        conf = self.d.path("sqlite.conf")
        write(conf, SQLITE_CONF.replace("@DIR@", self.d.dir).replace("FROM virtuals", "FROM nosuch"))
        r = self.ctl("update", "table", "vusers")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"posternctl: table vusers: {conf}:6: query_alias: no such table: nosuch\n")
        self.assertEqual(self.send(["bob@mail.test"], "still routed"), {})
        self.maildir("vbob", 1)

        # Everything for bob goes to valice now.
        write(conf, SQLITE_CONF.replace("@DIR@", self.d.dir).replace(
            "SELECT destination FROM virtuals WHERE email=?", "SELECT 'valice' WHERE ?1 LIKE 'bob@%'"))
        r = self.ctl("update", "table", "vusers")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.send(["bob@mail.test"], "rerouted"), {})
        self.assertIn(b"Subject: rerouted", postern.read_bytes(self.maildir("valice", 1)[0]))
        self.assertEqual(len(postern.maildir_new(self.d.path("vmail", "vbob"))), 1)

    def test_a_locked_database_makes_the_recipient_wait(self):
        con = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            con.execute("INSERT INTO domains VALUES ('locked.test')")
            start = time.monotonic()
            code, msg = self.rcpt("bob@mail.test")
            self.assertEqual((code, msg), (451, b"4.3.0 <bob@mail.test>: Temporary lookup failure"))
            self.assertLess(time.monotonic() - start, 5)  # busy_timeout 300 ms, not a hang
            detail = f"table domains: {self.db}: query_domain: database is locked"
            self.assertTrue(postern.wait_until(lambda: detail in self.d.log(), 5), self.d.log())
        finally:
            con.execute("COMMIT")
            con.close()
        self.assertEqual(self.send(["bob@mail.test"], "after the lock"), {})
        self.maildir("vbob", 1)


class SqliteConfigCheck(unittest.TestCase):
    """posternd -n reports what is wrong with a sqlite table before start."""

    def check(self, folder, sqlite_conf, uses):
        write(os.path.join(folder, "sqlite.conf"), sqlite_conf)
        conf = os.path.join(folder, "postern.conf")
        write(conf, f"table t sqlite:{folder}/sqlite.conf\n"
                    f"queue path \"{folder}/spool\"\n"
                    "listen on 127.0.0.1 port 2525 " + uses.get("listen", "") + "\n"
                    "action \"a\" maildir \"" + folder + "/m\" " + uses.get("action", "") + "\n"
                    "match from any for domain " + uses.get("domain", "\"x.test\"") + " action \"a\"\n")
        return subprocess.run([POSTERND, "-n", "-f", conf], capture_output=True, text=True, timeout=30)

    def test_errors_named_before_start(self):
        with tempfile.TemporaryDirectory() as folder:
            db = os.path.join(folder, "mail.sqlite")
            db_exec(db, "CREATE TABLE domains (domain TEXT)")
            head = f"dbpath {db}\n"

            r = self.check(folder, head + "query_domain SELECT domain FROM domains WHERE domain=?\n",
                           {"domain": "<t>"})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

            r = self.check(folder, head + "query_domain SELECT domain FROM nosuch WHERE domain=?\n",
                           {"domain": "<t>"})
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"{folder}/sqlite.conf:2: query_domain: no such table: nosuch", r.stderr + r.stdout)

            r = self.check(folder, head + "query_domain SELECT domain FROM domains WHERE domain=?\n",
                           {"domain": "<t>", "action": "virtual <t>"})
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("table t cannot answer alias lookups", r.stderr + r.stdout)

            r = self.check(folder, f"dbpath {folder}/missing.sqlite\nquery_domain SELECT 1 WHERE ?\n",
                           {"domain": "<t>"})
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"dbpath {folder}/missing.sqlite: unable to open database file (No such file or "
                          "directory)", r.stderr + r.stdout)


if __name__ == "__main__":
    postern.run_tests()
