"""docs/guide-sqlite-userbase.md, run as written.

The guide's files live in docs/examples/sqlite-userbase/ and the guide shows
each one in a fenced block whose info string names it (```sh add-user.sh);
the first test checks that every such block equals its file, byte for byte,
so the two cannot drift apart.

The rest runs those files against the real daemon. The guide's paths are the
real ones (/etc/postern, /etc/ssl, /var/lib/postern, /var/vmail); here the
test's temporary folder stands for the root directory: every path that
starts with /etc/ or /var/ gets that folder in front. The listeners' `eth0`
becomes 127.0.0.1 with a free port (port 25's listener on one, `port
submission` on another). Nothing else is changed: the shell files run with
bash from the examples folder (create-db.sh reads schema.sql there), with the
build folder first in PATH for posternctl.

While the daemon runs (one process for the whole test, never restarted or
reloaded): users are added with the guide's commands ($6$ from posternctl
encrypt, $2b$ from python3), log in over STARTTLS, send and receive; the
maildir files belong to the uid:gid of their database row; aliases deliver
to their destinations; `senders` lets a user send as their own address and
the ones the senders table gives them, and refuses another's with 553
5.7.1; a removed user's mail is refused at RCPT.
"""

import os
import re
import smtplib
import sqlite3
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

GUIDE = os.path.join(postern.SOURCE_DIR, "docs", "guide-sqlite-userbase.md")
EXAMPLES = os.path.join(postern.SOURCE_DIR, "docs", "examples", "sqlite-userbase")
HOST = "mail.example.org"

# A fenced block that shows one of the example files: ```LANG FILE
FENCE = re.compile(r"^```[\w-]+ ([\w.-]+)\n(.*?)^```$", re.M | re.S)


def guide_blocks():
    with open(GUIDE) as f:
        return FENCE.findall(f.read())


def example(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return f.read()


def rooted(text, root):
    """The guide's text with `root` standing for /: /etc/... and /var/... move under it."""
    out, n = re.subn(r"(?<![\w.@/-])/(etc|var)/", root + r"/\1/", text)
    assert n > 0, text
    return out


def replace_once(text, old, new):
    assert text.count(old) == 1, f"expected {old!r} once in:\n{text}"
    return text.replace(old, new)


class GuideDaemon(postern.Daemon):
    """posternd with the guide's smtpd.conf, after a head that only moves the
    queue, pidfile and control socket into the test's folder."""

    def __init__(self, prepare):
        super().__init__("", name="guide-sqlite", prepare=prepare)
        self.submission = None

    def _write_config(self):
        self.submission = postern.free_port()
        conf = rooted(example("smtpd.conf"), self.dir)
        conf = replace_once(conf, "listen on eth0 port submission ", f"listen on 127.0.0.1 port {self.submission} ")
        conf = replace_once(conf, "listen on eth0 ", f"listen on 127.0.0.1 port {self.port} ")
        head = (f'queue path "{self.spool}"\n'
                f'pidfile "{self.path("posternd.pid")}"\n'
                f'control socket "{self.path("run", "control.sock")}"\n')
        with open(self.conf_path, "w") as f:
            f.write(head + conf)
        os.chmod(self.conf_path, 0o644)


class GuideMatchesFiles(unittest.TestCase):
    def test_every_file_is_shown_once_and_verbatim(self):
        blocks = guide_blocks()
        names = [name for name, _ in blocks]
        self.assertEqual(sorted(names), sorted(os.listdir(EXAMPLES)), "each example file, shown once")
        for name, body in blocks:
            self.assertEqual(body, example(name), f"the guide's {name} differs from {EXAMPLES}/{name}")


@unittest.skipUnless(os.geteuid() == 0, "needs root: the guide's commands, delivery as the database's uids")
class GuideRun(unittest.TestCase):
    def setUp(self):
        self.d = GuideDaemon(prepare=self.prepare)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.db = self.d.path("var", "lib", "postern", "mail.sqlite")
        self.pid = self.d.pid

    def prepare(self, root):
        # What the guide does by hand before the files: the vmail account's
        # folder (uid and gid 5000, as schema.sql's defaults) and the
        # certificate, here a self-signed one.
        for sub in ("etc/postern", "etc/ssl/certs", "etc/ssl/private", "var"):
            os.makedirs(os.path.join(root, sub), mode=0o755)
        vmail = os.path.join(root, "var", "vmail")
        os.mkdir(vmail)
        os.chown(vmail, 5000, 5000)
        os.chmod(vmail, 0o750)
        key = os.path.join(root, "etc/ssl/private", HOST + ".key")
        postern.make_self_signed_pki(os.path.join(root, "etc/ssl/certs", HOST + ".pem"), key, HOST)
        os.chmod(key, 0o600)
        with open(os.path.join(root, "etc/postern/sqlite.conf"), "w") as f:
            f.write(rooted(example("sqlite.conf"), root))
        self.run_file("create-db.sh", root)

    # ---- helpers ----

    def run_file(self, name, root=None):
        env = dict(os.environ, PATH=postern.BUILD_DIR + os.pathsep + os.environ.get("PATH", ""))
        r = subprocess.run(["bash", "-e", "-c", rooted(example(name), root or self.d.dir)], cwd=EXAMPLES, env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, f"{name}: {r.stdout}{r.stderr}")
        self.assertEqual(r.stderr, "", name)

    def row(self, sql, *args):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchone()
        finally:
            con.close()

    def submission(self, login=None, password=None):
        s = smtplib.SMTP(timeout=10)
        s._host = HOST  # the name the certificate is checked against
        s.connect("127.0.0.1", self.d.submission)
        s.ehlo("client.example")
        s.starttls(context=ssl.create_default_context(cafile=self.d.path("etc/ssl/certs", HOST + ".pem")))
        s.ehlo("client.example")
        if login:
            self.assertEqual(s.login(login, password)[0], 235)
        return s

    def login_fails(self, login, password):
        with self.submission() as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login(login, password)
            self.assertEqual(e.exception.smtp_code, 535)

    def mail_from(self, s, sender):
        """The reply to MAIL FROM, the transaction reset after it."""
        reply = s.mail(sender)
        s.rset()
        return reply

    def incoming_rcpt(self, address):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.mail("someone@client.example")[0], 250)
            return s.rcpt(address)

    def incoming(self, rcpts, subject):
        with smtplib.SMTP("127.0.0.1", self.d.port, local_hostname="client.example", timeout=10) as s:
            return s.sendmail("someone@client.example", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n")

    def maildir(self, user):
        return self.d.path("var", "vmail", "example.org", user, "Maildir")

    def delivered(self, user, n):
        """The n files of user's maildir, each checked to be owned by the row's uid:gid."""
        files = self.d.wait_files(self.maildir(user), n)
        self.assertEqual(len(files), n, self.d.log())
        uid, gid = self.row("SELECT uid, gid FROM users WHERE name = ?", user)
        for f in files:
            st = os.stat(f)
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid), f)
        return [postern.read_bytes(f) for f in files]

    # ---- the guide, in order ----

    def test_users_added_and_removed_while_running(self):
        r = subprocess.run([postern.POSTERND, "-n", "-f", self.d.conf_path], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "configuration OK\n", ""))  # section 4

        unknown = (550, b"5.1.1 <carol@example.org>: Recipient address rejected: User unknown")
        self.assertEqual(self.incoming_rcpt("carol@example.org"), unknown)
        self.login_fails("carol@example.org", "carol password")

        # Section 5: two users, one $6$ and one $2b$ hash.
        self.run_file("add-user.sh")
        self.run_file("add-user-bcrypt.sh")
        self.assertRegex(self.row("SELECT password FROM users WHERE name = 'carol'")[0], r"^\$6\$")
        self.assertRegex(self.row("SELECT password FROM users WHERE name = 'dave'")[0], r"^\$2b\$")
        self.assertEqual(self.row("SELECT uid, gid, home FROM users WHERE name = 'carol'"),
                         (5000, 5000, self.d.path("var/vmail/example.org/carol")))

        with self.submission("carol@example.org", "carol password") as s:
            self.assertEqual(s.sendmail("carol@example.org", ["carol@example.org", "dave@example.org"],
                                        "Subject: first\r\n\r\nhello\r\n"), {})
        with self.submission("dave@example.org", "dave password") as s:
            self.assertEqual(s.sendmail("dave@example.org", ["carol@example.org"], "Subject: from dave\r\n\r\nhi\r\n"),
                             {})
        self.login_fails("dave@example.org", "carol password")
        self.assertEqual(self.incoming(["dave@example.org"], "from the world"), {})
        carol = self.delivered("carol", 2)
        dave = self.delivered("dave", 2)
        self.assertTrue(any(b"Subject: from dave" in m for m in carol))
        self.assertTrue(any(b"Subject: from the world" in m for m in dave))

        # Section 6: sender rights, before and after the senders row.
        with self.submission("carol@example.org", "carol password") as s:
            self.assertEqual(self.mail_from(s, "carol@example.org")[0], 250)
            self.assertEqual(self.mail_from(s, "dave@example.org"),
                             (553, b"5.7.1 <dave@example.org>: Sender address rejected: "
                                   b"not owned by user carol@example.org"))
            self.assertEqual(self.mail_from(s, "sales@example.org")[0], 553)
        self.assertEqual(self.incoming_rcpt("sales@example.org")[0], 550)

        self.run_file("aliases.sh")
        with self.submission("carol@example.org", "carol password") as s:
            self.assertEqual(s.sendmail("sales@example.org", ["postmaster@example.org"],
                                        "Subject: as sales\r\n\r\nx\r\n"), {})
            self.assertEqual(self.mail_from(s, "dave@example.org")[0], 553)
        with self.submission("dave@example.org", "dave password") as s:
            self.assertEqual(self.mail_from(s, "sales@example.org"),
                             (553, b"5.7.1 <sales@example.org>: Sender address rejected: "
                                   b"not owned by user dave@example.org"))
        self.assertEqual(self.incoming(["sales@example.org"], "to sales"), {})
        carol = self.delivered("carol", 4)
        dave = self.delivered("dave", 3)
        self.assertTrue(any(b"Subject: as sales" in m for m in carol))
        self.assertTrue(any(b"Subject: to sales" in m for m in carol))
        self.assertTrue(any(b"Subject: to sales" in m for m in dave))

        # Section 7: dave removed; his mail is refused at RCPT, his login too,
        # and sales@ now reaches carol alone.
        self.run_file("remove-user.sh")
        self.assertEqual(self.incoming_rcpt("dave@example.org"),
                         (550, b"5.1.1 <dave@example.org>: Recipient address rejected: User unknown"))
        self.login_fails("dave@example.org", "dave password")
        self.assertEqual(self.incoming(["sales@example.org"], "sales again"), {})
        self.delivered("carol", 5)
        self.assertEqual(len(postern.maildir_new(self.maildir("dave"))), 3)

        # All of it without a restart or a reload.
        self.assertTrue(self.d.running())
        self.assertEqual(self.d.pid, self.pid)
        self.assertNotIn("reload", self.d.log())


if __name__ == "__main__":
    postern.run_tests()
