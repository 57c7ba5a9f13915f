"""posternctl's table commands against the real daemon and real backends.

- `table lookup NAME SERVICE KEY` on file: tables (alias, userinfo; a domain
  list with a "*.example.org" wildcard; credentials, whose value never
  leaves the daemon), inline tables (netaddr masks, a relay source list), a
  db: map built by `posternctl makemap`, and a sqlite: table (a match the
  backend answers itself, a service it has no query for, a query that fails
  for a temporary failure); the exit statuses 0 / 1 / 2 of found / not
  found / anything else; an unknown table and an unknown service;
- `update table NAME` on file, db, inline and sqlite tables, each seen by
  the next lookup;
- `posternctl makemap` builds the map a daemon then delivers through, and
  posternctl under the names makemap and newaliases (links in a temporary
  folder) is makemap, its own options and all.
"""

import json
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
MAKEMAP = os.path.join(postern.BUILD_DIR, "postern-makemap")
HASH = "$6$salt1234$Zk3yVcx1pKZ0TKHr0pPZ3v2mB1AaF9xrx7Y0m1oUj0yZpFq6tY3rR7Sx7T1a2b3c4d5e6f7g8h9i0jklmnopq"

SQLITE_CONF = """\
dbpath @DIR@/mail.sqlite
query_domain SELECT domain FROM domains WHERE domain=?
query_alias SELECT destination FROM virtuals WHERE email=?
"""

CONFIG = ('table aliases file:@DIR@/aliases\n'
          'table users file:@DIR@/users\n'
          'table domains file:@DIR@/domains\n'
          'table creds file:@DIR@/creds\n'
          'table nets { 10.0.0.0/8, 192.0.2.1 }\n'
          'table srcs { 127.0.0.1 }\n'
          'table vdb db:@DIR@/virtual.db\n'
          'table sq sqlite:@DIR@/sqlite.conf\n'
          'action "l" maildir "@DIR@/mail/%{user.username}" alias <aliases>\n'
          'action "v" maildir "@DIR@/vmail/%{user.username}" virtual <vdb>\n'
          'match from local for domain "virt.test" action "v"\n'
          'match from local for local action "l"\n')


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def run(*argv, stdin=None):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, input=stdin)


def prepare(folder):
    write(os.path.join(folder, "aliases"), "team: root, bob\npostmaster: root\n")
    write(os.path.join(folder, "users"), "bob 1001:1001:/home/bob\n")
    write(os.path.join(folder, "domains"), "example.com\n*.example.org\n")
    write(os.path.join(folder, "creds"), f"bob {HASH}\n", mode=0o640)
    write(os.path.join(folder, "virtual"), "alice@virt.test root\n")
    r = run(POSTERNCTL, "makemap", os.path.join(folder, "virtual"))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    os.chmod(os.path.join(folder, "virtual.db"), 0o644)
    db = os.path.join(folder, "mail.sqlite")
    con = sqlite3.connect(db)
    with con:
        con.execute("CREATE TABLE domains (domain TEXT NOT NULL)")
        con.execute("CREATE TABLE virtuals (email TEXT NOT NULL, destination TEXT NOT NULL)")
        con.execute("INSERT INTO domains VALUES ('sql.test')")
        con.execute("INSERT INTO virtuals VALUES ('carol@sql.test', 'carol')")
    con.close()
    os.chmod(db, 0o666)
    os.chmod(folder, 0o777)  # sqlite writes its journal beside the file, as the daemon's user
    write(os.path.join(folder, "sqlite.conf"), SQLITE_CONF.replace("@DIR@", folder))


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon runs as root, then drops to _postern")
class TableLookup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = postern.Daemon(CONFIG, name="ctl-tables", prepare=prepare)
        cls.d.__enter__()
        cls.socket = cls.d.path("run", "control.sock")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def ctl(self, *args):
        return run(POSTERNCTL, "-s", self.socket, *args)

    def lookup(self, table, service, key, status, out, err=""):
        r = self.ctl("table", "lookup", table, service, key)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (status, out, err),
                         f"table lookup {table} {service} {key}")

    def test_file_table_values(self):
        self.lookup("aliases", "alias", "team", 0, "found: root, bob\n")
        self.lookup("aliases", "alias", "TEAM", 0, "found: root, bob\n")  # keys are compared in lower case
        self.lookup("aliases", "alias", "nobody-here", 1, "not found\n")
        self.lookup("users", "userinfo", "bob", 0, "found: 1001:1001:/home/bob\n")
        self.lookup("users", "userinfo", "alice", 1, "not found\n")

    def test_domain_list_with_a_wildcard(self):
        self.lookup("domains", "domain", "example.com", 0, "found (matches example.com)\n")
        self.lookup("domains", "domain", "mx.example.org", 0, "found (matches *.example.org)\n")
        self.lookup("domains", "domain", "example.net", 1, "not found\n")
        self.lookup("domains", "domain", "example.com.evil.test", 1, "not found\n")

    def test_inline_tables(self):
        self.lookup("nets", "netaddr", "10.1.2.3", 0, "found (matches 10.0.0.0/8)\n")
        self.lookup("nets", "netaddr", "192.0.2.2", 1, "not found\n")
        self.lookup("srcs", "source", "127.0.0.1", 0, "found: 127.0.0.1\n")

    def test_credentials_are_never_shown(self):
        self.lookup("creds", "credentials", "bob", 0, "found (value hidden)\n")
        self.lookup("creds", "credentials", "eve", 1, "not found\n")
        r = self.ctl("--json", "table", "lookup", "creds", "credentials", "bob")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"table": "creds", "service": "credentials", "key": "bob",
                                                "how": "lookup", "result": "found", "hidden": "yes"})
        self.assertNotIn("$6$", r.stdout)
        self.assertNotIn("Zk3yV", self.d.log())  # nor in the daemon's log

    def test_json_answers(self):
        r = self.ctl("--json", "table", "lookup", "users", "userinfo", "bob")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, '{"table":"users","service":"userinfo","key":"bob","how":"lookup",'
                                   '"result":"found","value":"1001:1001:/home/bob"}\n')
        r = self.ctl("--json", "table", "lookup", "domains", "domain", "a.example.org")
        self.assertEqual(json.loads(r.stdout)["entry"], "*.example.org")
        r = self.ctl("--json", "table", "lookup", "users", "userinfo", "zed")
        self.assertEqual((r.returncode, json.loads(r.stdout)["result"]), (1, "not-found"))

    def test_db_map_built_by_posternctl_makemap(self):
        self.lookup("vdb", "alias", "alice@virt.test", 0, "found: root\n")
        self.lookup("vdb", "alias", "bob@virt.test", 1, "not found\n")
        # The daemon delivers through the same map.
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            self.assertEqual(s.sendmail("sender@localhost", ["alice@virt.test"], "Subject: v\r\n\r\nx\r\n"), {})
        self.assertEqual(len(self.d.wait_files(self.d.path("vmail", "root"), 1)), 1, self.d.log())

    def test_sqlite_backend(self):
        # A match the backend answers itself (no list to show the entry from).
        self.lookup("sq", "domain", "sql.test", 0, "found\n")
        self.lookup("sq", "domain", "other.test", 1, "not found\n")
        self.lookup("sq", "alias", "carol@sql.test", 0, "found: carol\n")
        # No query_userinfo in its configuration: an error, not "not found".
        self.lookup("sq", "userinfo", "carol", 2, "",
                    "posternctl: table sq does not answer the userinfo service (its backend has no query for it)\n")

    def test_errors(self):
        r = self.ctl("table", "lookup", "nosuch", "alias", "x")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (2, "", "posternctl: no table named 'nosuch'\n"))
        r = self.ctl("table", "lookup", "aliases", "aliases", "x")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertEqual(r.stderr.splitlines()[0],
                         "posternctl: invalid service 'aliases': expected one of alias, credentials, domain, "
                         "netaddr, userinfo, source, string, mailaddr, mailaddrmap, addrname, relayhost")
        self.assertIn("  table lookup NAME SERVICE KEY\n", r.stderr)
        r = self.ctl("table", "lookup", "aliases", "alias")
        self.assertEqual((r.returncode, r.stderr.splitlines()[0]),
                         (2, "posternctl: unknown command: table lookup aliases alias"))
        # The daemon is not there: 2 as well, so that 1 always means "not in the table".
        r = run(POSTERNCTL, "-s", self.d.path("nothere.sock"), "table", "lookup", "aliases", "alias", "team")
        self.assertEqual(r.returncode, 2)
        self.assertIn("does not seem to be running", r.stderr)


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon runs as root, then drops to _postern")
class UpdateTable(unittest.TestCase):
    """update table reloads every kind of table; the next lookup sees it."""

    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="ctl-update", prepare=prepare)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.socket = self.d.path("run", "control.sock")

    def ctl(self, *args, expect=0):
        r = run(POSTERNCTL, "-s", self.socket, *args)
        self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r.stdout

    def test_file_table(self):
        self.ctl("table", "lookup", "users", "userinfo", "alice", expect=1)
        with open(self.d.path("users"), "a") as f:
            f.write("alice 1002:1002:/home/alice\n")
        self.ctl("table", "lookup", "users", "userinfo", "alice", expect=1)  # not before the reload
        self.assertEqual(self.ctl("update", "table", "users"), "table users updated\n")
        self.assertEqual(self.ctl("table", "lookup", "users", "userinfo", "alice"), "found: 1002:1002:/home/alice\n")

    def test_db_table(self):
        write(self.d.path("virtual"), "alice@virt.test root\nbob@virt.test root\n")
        r = run(POSTERNCTL, "makemap", self.d.path("virtual"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.ctl("update", "table", "vdb"), "table vdb updated\n")
        self.assertEqual(self.ctl("table", "lookup", "vdb", "alias", "bob@virt.test"), "found: root\n")

    def test_inline_and_sqlite_tables(self):
        # Nothing to re-read in either (sqlite reads its rows live): the
        # reload succeeds and the table still answers.
        self.assertEqual(self.ctl("update", "table", "nets"), "table nets updated\n")
        self.ctl("table", "lookup", "sq", "domain", "new.test", expect=1)
        con = sqlite3.connect(self.d.path("mail.sqlite"))
        with con:
            con.execute("INSERT INTO domains VALUES ('new.test')")
        con.close()
        self.assertEqual(self.ctl("update", "table", "sq"), "table sq updated\n")
        self.assertEqual(self.ctl("table", "lookup", "sq", "domain", "new.test"), "found\n")

    def test_sqlite_failure_is_a_temporary_failure(self):
        con = sqlite3.connect(self.d.path("mail.sqlite"))
        with con:
            con.execute("DROP TABLE virtuals")
        con.close()
        r = run(POSTERNCTL, "-s", self.socket, "table", "lookup", "sq", "alias", "carol@sql.test")
        self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
        self.assertRegex(r.stderr, r"^posternctl: temporary failure: table sq: .*virtuals")


class Makemap(unittest.TestCase):
    """posternctl makemap, and posternctl under the names makemap and newaliases."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ctl-makemap-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.aliases = os.path.join(self.dir, "aliases")
        write(self.aliases, "team: root, bob\nbob: bob\n")

    def dump(self, db):
        r = run(MAKEMAP, "-U", db)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_posternctl_makemap_is_postern_makemap(self):
        r = run(POSTERNCTL, "makemap", "-t", "aliases", "-d", "btree", "-o", os.path.join(self.dir, "a.db"),
                self.aliases)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(self.dump(os.path.join(self.dir, "a.db")), "bob\tbob\nteam\troot, bob\n")
        # The same bytes of records as postern-makemap's own map.
        self.assertEqual(run(MAKEMAP, "-t", "aliases", "-o", os.path.join(self.dir, "b.db"), self.aliases).returncode, 0)
        r = run(POSTERNCTL, "makemap", "-U", os.path.join(self.dir, "b.db"))
        self.assertEqual((r.returncode, r.stdout), (0, "bob\tbob\nteam\troot, bob\n"))
        # From standard input.
        r = run(POSTERNCTL, "makemap", "-t", "set", "-o", os.path.join(self.dir, "d.db"), "-", stdin="x.test\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.dump(os.path.join(self.dir, "d.db")), "x.test\t<set>\n")

    def test_makemap_errors_and_options(self):
        write(os.path.join(self.dir, "bad"), "team: root\nteam: bob\n")
        r = run(POSTERNCTL, "makemap", os.path.join(self.dir, "bad"))
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(f"posternctl makemap: {self.dir}/bad:2: duplicate key \"team\""),
                        r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bad.db")))
        r = run(POSTERNCTL, "makemap", "-t", "bogus", self.aliases)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "posternctl makemap: -t bogus: expected aliases or set\n"
                             "usage: posternctl makemap [-U] [-d hash|btree] [-o dbfile] [-t aliases|set] file\n"))
        r = run(POSTERNCTL, "makemap")
        self.assertEqual(r.returncode, 2)
        # posternctl's own options say where the daemon is: refused here.
        r = run(POSTERNCTL, "-f", "/etc/postern/smtpd.conf", "makemap", self.aliases)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.splitlines()[0], "posternctl: makemap takes none of posternctl's options "
                                                   "(-s, -f, --json); give its own after the word makemap")
        self.assertFalse(os.path.exists(self.aliases + ".db"))
        # makemap's -t after posternctl's name is posternctl's unknown option.
        r = run(POSTERNCTL, "-t", "aliases", "makemap", self.aliases)
        self.assertEqual((r.returncode, r.stderr.splitlines()[0]), (2, "posternctl: unknown option '-t'"))

    def test_run_as_makemap_by_name(self):
        link = os.path.join(self.dir, "makemap")
        os.symlink(POSTERNCTL, link)
        r = run(link, "-t", "aliases", "-o", os.path.join(self.dir, "l.db"), self.aliases)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(self.dump(os.path.join(self.dir, "l.db")), "bob\tbob\nteam\troot, bob\n")
        r = run(link, "-U", os.path.join(self.dir, "l.db"))
        self.assertEqual((r.returncode, r.stdout), (0, "bob\tbob\nteam\troot, bob\n"))
        r = run(link, "-s", "x")
        self.assertEqual((r.returncode, r.stderr),
                         (2, "makemap: unknown option '-s'\n"
                             "usage: makemap [-U] [-d hash|btree] [-o dbfile] [-t aliases|set] file\n"))
        r = run(link, "show", "queue")  # not a posternctl command line under this name
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: makemap ", r.stderr)

    def test_run_as_newaliases_by_name(self):
        link = os.path.join(self.dir, "newaliases")
        os.symlink(POSTERNCTL, link)
        conf = os.path.join(self.dir, "smtpd.conf")
        write(conf, f"table aliases db:{self.aliases}.db\n"
                    'action "l" maildir alias <aliases>\n'
                    'match from local for local action "l"\n')
        r = run(link, "-f", conf)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, f"{self.aliases}: 2 aliases\n", ""))
        self.assertEqual(self.dump(self.aliases + ".db"), "bob\tbob\nteam\troot, bob\n")
        write(self.aliases, "team: <bob>\n")
        r = run(link, "-f", conf)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(f"newaliases: {self.aliases}:1: invalid alias"), r.stderr)
        self.assertEqual(self.dump(self.aliases + ".db"), "bob\tbob\nteam\troot, bob\n")  # the old map stays


if __name__ == "__main__":
    postern.run_tests()
