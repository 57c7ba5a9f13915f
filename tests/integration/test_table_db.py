"""db: tables with the real daemon: aliases, virtual users and domains read
from Berkeley DB maps through table-db.so.

- maps made by Debian's OpenSMTPD makemap (/usr/sbin/makemap) and by ours
  (postern-makemap), each in the other's role in the second configuration;
- an alias and a virtual address land in the right maildir;
- a `-t set` map of domains matched by `for domain <t>`;
- a map rebuilt by makemap while the daemon runs is used for the next
  recipient without any reload (the file is replaced by rename);
- an unknown alias is refused at RCPT;
- `posternctl update table` on a map replaced by a text file says why and
  keeps the old map in use.
"""

import os
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

DEBIAN_MAKEMAP = "/usr/sbin/makemap"
OUR_MAKEMAP = os.path.join(postern.BUILD_DIR, "postern-makemap")

CONFIG = ('table aliases db:@DIR@/aliases.db\n'
          'table vusers db:@DIR@/vusers.db\n'
          'table vdomains db:@DIR@/vdomains.db\n'
          'table ubase file:@DIR@/userbase\n'
          'action "local" maildir "@DIR@/mail/%{user.username}" alias <aliases>\n'
          'action "virt" maildir "@DIR@/vmail/%{user.username}" virtual <vusers> userbase <ubase>\n'
          'match from any for domain <vdomains> action "virt"\n'
          'match from local for local action "local"\n')


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def makemap(tool, *args):
    out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)}: {out.returncode}\n{out.stderr}")
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as other uids")
@unittest.skipUnless(os.path.exists(DEBIAN_MAKEMAP), "needs Debian's opensmtpd makemap")
class DbTables(unittest.TestCase):
    # Which makemap builds the aliases map; the virtual maps get the other.
    ALIASES_TOOL = DEBIAN_MAKEMAP
    OTHER_TOOL = OUR_MAKEMAP

    def setUp(self):
        self.d = postern.Daemon(CONFIG, name="table-db", prepare=self.write_tables)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def write_tables(self, folder):
        for sub, mode in (("vmail", 0o1777), ("home", 0o755)):
            os.mkdir(os.path.join(folder, sub))
            os.chmod(os.path.join(folder, sub), mode)
        write(os.path.join(folder, "aliases"),
              "# system aliases\n"
              "Postmaster:   root\n"
              "team: root,\\\n"
              "      postmaster\n")
        write(os.path.join(folder, "vusers"),
              "alice@virt.test alice\n"
              "bob@virt.test: bob\n")
        write(os.path.join(folder, "vdomains"), "virt.test\n")
        write(os.path.join(folder, "userbase"),
              f"alice 4001:4001:{folder}/home/alice\n"
              f"bob 4002:4002:{folder}/home/bob\n")
        makemap(self.ALIASES_TOOL, "-t", "aliases", os.path.join(folder, "aliases"))
        makemap(self.OTHER_TOOL, "-d", "btree", os.path.join(folder, "vusers"))
        makemap(self.OTHER_TOOL, "-t", "set", os.path.join(folder, "vdomains"))

    def send(self, rcpts, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            refused = s.sendmail("sender@localhost", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n")
            self.assertEqual(refused, {})

    def files(self, maildir, n):
        files = self.d.wait_files(maildir, n)
        self.assertEqual(len(files), n, self.d.log())
        return files

    def subjects(self, files):
        out = []
        for f in files:
            for line in postern.read_bytes(f).decode().splitlines():
                if line.startswith("Subject: "):
                    out.append(line[len("Subject: "):])
        return sorted(out)

    def test_alias_and_virtual_land_in_their_maildirs(self):
        self.send(["postmaster@localhost"], "via alias")
        self.send(["alice@virt.test"], "for alice")
        self.send(["bob@virt.test"], "for bob")
        root = self.files(self.d.path("mail", "root"), 1)
        self.assertEqual(self.subjects(root), ["via alias"])
        self.assertTrue(postern.read_bytes(root[0]).startswith(
            b"Return-Path: <sender@localhost>\nDelivered-To: postmaster@localhost\n"))
        alice = self.files(self.d.path("vmail", "alice"), 1)
        self.assertEqual(self.subjects(alice), ["for alice"])
        self.assertEqual(os.stat(alice[0]).st_uid, 4001)
        bob = self.files(self.d.path("vmail", "bob"), 1)
        self.assertEqual(self.subjects(bob), ["for bob"])
        self.assertEqual(os.stat(bob[0]).st_uid, 4002)
        # team -> root, postmaster -> root: one copy for root.
        self.send(["team@localhost"], "to the team")
        self.assertEqual(self.subjects(self.files(self.d.path("mail", "root"), 2)), ["to the team", "via alias"])
        self.assertTrue(self.d.wait_queue_empty(), self.d.queue_entries())
        self.assertEqual(sorted(os.listdir(self.d.path("mail"))), ["root"])

    def test_unknown_alias_and_domain_refused_at_rcpt(self):
        with self.d.client() as c:
            self.assertTrue(c.cmd("EHLO client.example").startswith("250"))
            self.assertTrue(c.cmd("MAIL FROM:<sender@localhost>").startswith("250"))
            self.assertEqual(c.cmd("RCPT TO:<nosuchuser@localhost>")[:10], "550 5.1.1 ")
            self.assertEqual(c.cmd("RCPT TO:<carol@virt.test>")[:10], "550 5.1.1 ")
            self.assertEqual(c.cmd("RCPT TO:<alice@other.test>")[:4], "550 ")
            c.cmd("RSET")
            c.cmd("QUIT")
        self.assertEqual(self.d.queue_entries(), [])

    def test_a_rebuilt_map_is_used_without_reload(self):
        with self.d.client() as c:
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<sender@localhost>")
            self.assertEqual(c.cmd("RCPT TO:<helpdesk@localhost>")[:10], "550 5.1.1 ")
            c.cmd("QUIT")
        with open(self.d.path("aliases"), "a") as f:
            f.write("helpdesk: root\n")
        makemap(self.ALIASES_TOOL, "-t", "aliases", self.d.path("aliases"))
        self.send(["helpdesk@localhost"], "after the rebuild")
        self.assertEqual(self.subjects(self.files(self.d.path("mail", "root"), 1)), ["after the rebuild"])

    def test_update_table_reports_a_broken_map_and_keeps_the_old(self):
        postern.posternctl(self.d, "update", "table", "aliases")
        # A text file where the map was: the update says why, the old map serves.
        os.rename(self.d.path("aliases"), self.d.path("aliases.db"))
        r = subprocess.run([os.path.join(postern.BUILD_DIR, "posternctl"), "-s", self.d.path("run", "control.sock"),
                            "update", "table", "aliases"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(self.d.path("aliases.db") + ": unexpected file type or format", r.stderr)
        self.send(["postmaster@localhost"], "old map")
        self.assertEqual(self.subjects(self.files(self.d.path("mail", "root"), 1)), ["old map"])


class DbTablesOtherWayRound(DbTables):
    ALIASES_TOOL = OUR_MAKEMAP
    OTHER_TOOL = DEBIAN_MAKEMAP


if __name__ == "__main__":
    postern.run_tests()
