"""postern-sendmail and `listen on socket` (issue 14), against a real posternd.

One daemon serves its local socket (run/submit.sock, beside the control
socket) with a recording filter on it (filters/record_filter.py, adding
X-Filtered: yes), and a TCP listener without one. Mail from the socket is
matched by `from socket` and lands in md/USER; TCP clients from loopback
fall through to `from local` and land in tcp/USER, so which rule matched is
visible on disk.

postern-sendmail runs as root and as an ordinary user made for the test
(useradd; run through setpriv, no setuid bit anywhere): its options (-t with
To:/Cc:/Bcc: and with a resent message's Resent-To:/-Cc:/-Bcc:, -f,
-F, -i, -bs, -bp, -bi), the Received: header and log naming the submitting
user from the socket's peer credentials, and its exit codes (67 for refused
recipients, 75 when the daemon cannot be reached, 64/65 for usage and
address errors, 77 for mailq as a user).
"""

import os
import pwd
import re
import shutil
import smtplib
import subprocess
import unittest

from postern import BUILD_DIR, Daemon, maildir_new, posternctl, run_tests, system_user, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SENDMAIL = os.path.join(BUILD_DIR, "postern-sendmail")
SOURCE_FILTER = os.path.join(HERE, "filters", "record_filter.py")
USER = "pstsendtest"

HEAD = ('filter "rec" proc-exec "/usr/bin/python3 @DIR@/record_filter.py @DIR@/rec.rec '
        "--header 'X-Filtered: yes'\"\n")
CONFIG = """listen on socket filter "rec"
action "sock" maildir "@DIR@/md/%{user.username}"
action "tcp" maildir "@DIR@/tcp/%{user.username}"
match from socket for local action "sock"
match from local for local action "tcp"
"""


def prepare(folder):
    shutil.copy(SOURCE_FILTER, os.path.join(folder, "record_filter.py"))
    os.chmod(os.path.join(folder, "record_filter.py"), 0o755)
    os.chmod(folder, 0o777)  # the filter (as _postern) writes its record here
    for sub in ("md", "tcp"):  # deliveries run as the recipient
        os.makedirs(os.path.join(folder, sub))
        os.chmod(os.path.join(folder, sub), 0o1777)


class Sendmail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = system_user(USER, comment="Test Sender,,,")
        cls.d = Daemon(CONFIG, name="sendmail", prepare=prepare, before_listen=HEAD)
        cls.d.__enter__()
        cls.host = cls.d.hostname
        cls.socket = cls.d.path("run", "submit.sock")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        subprocess.run(["userdel", USER], timeout=30)

    # ---- helpers ----

    def sendmail(self, *args, stdin="", as_user=False, argv0=None, env=None):
        cmd = [SENDMAIL, "-C", self.d.conf_path, *args]
        if argv0:
            link = self.d.path(argv0)
            if not os.path.exists(link):
                os.symlink(SENDMAIL, link)
            cmd[0] = link
        if as_user:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups",
                   "--", *cmd]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env=env)

    def box(self, kind, user):
        return self.d.path(kind, user)

    def messages(self, kind, user, subject):
        """The messages in kind/user/new whose Subject: is `subject`."""
        out = []
        for name in maildir_new(self.box(kind, user)):
            with open(os.path.join(self.box(kind, user), "new", name), encoding="latin-1") as f:
                text = f.read()
            if f"\nSubject: {subject}\n" in text:
                out.append(text)
        return out

    def wait_msg(self, kind, user, subject):
        """The one message with that subject, once it is delivered."""
        wait_until(lambda: self.messages(kind, user, subject), 10)
        found = self.messages(kind, user, subject)
        self.assertEqual(len(found), 1, self.d.log())
        return found[0]

    # ---- the socket ----

    def test_socket_is_open_to_all_and_logged(self):
        st = os.stat(self.socket)
        self.assertEqual(st.st_mode & 0o777, 0o666)
        self.assertTrue(os.stat(os.path.dirname(self.socket)).st_mode & 0o001)
        self.assertIn(f"smtp listening address=unix:{self.socket}", self.d.log())
        # The control socket beside it stays closed to other users.
        self.assertEqual(os.stat(self.d.path("run", "control.sock")).st_mode & 0o777, 0o660)

    # ---- as root ----

    def test_recipients_on_the_command_line(self):
        r = self.sendmail("root", stdin="Subject: cli\n\nhello\n")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        msg = self.wait_msg("md", "root", "cli")
        self.assertIn(f"From: root <root@{self.host}>\n", msg)  # root's GECOS name is "root"
        self.assertRegex(msg, r"\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} ")
        self.assertRegex(msg, r"\nMessage-ID: <\d{14}\.\d+\.[0-9a-f]{8}@" + re.escape(self.host) + ">\n")
        # The daemon adds none of its own to a message that has them.
        self.assertEqual((msg.count("\nDate: "), msg.count("\nMessage-ID: ")), (1, 1))
        self.assertIn("Received: from localhost (local user root, uid 0)\n", msg)
        self.assertIn("X-Filtered: yes\n", msg)  # the socket listener's filter saw it
        self.assertIn(f"Return-Path: <root@{self.host}>", msg)

    def test_extract_recipients_bcc_removed_full_name(self):
        text = (f"To: Root <root@localhost>\nCc: \"X, Y\" <{USER}@localhost>\nBcc: root@localhost\n"
                "Subject: extract\n\nbody\n")
        r = self.sendmail("-t", "-F", "The Boss", "-f", "boss@example.org", stdin=text)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        for user in ("root", USER):
            msg = self.wait_msg("md", user, "extract")  # one copy each: root is in To: and Bcc:
            self.assertNotIn("Bcc", msg)
            self.assertIn("From: The Boss <boss@example.org>\n", msg)
            self.assertIn("Return-Path: <boss@example.org>", msg)
            self.assertIn("To: Root <root@localhost>\n", msg)

    def test_extract_resent_recipients(self):
        # Resent by boss: the newest block (on top) names the recipients;
        # the older block's Resent-To: and the first sending's To: (both
        # unknown users here: refused with 67 if they were read) are not.
        text = (f"Resent-From: boss@example.org\nResent-Date: Mon, 07 Dec 2026 10:00:00 +0000\n"
                f"Resent-To: Someone <{USER}@localhost>\nResent-Bcc: root@localhost\n"
                "Received: from old.example by mx.example; Mon, 07 Dec 2026 09:00:00 +0000\n"
                "Resent-From: first@example.org\nResent-To: no-such-older@localhost\n"
                "From: alice@example.org\nTo: no-such-first@localhost\nSubject: resent\n\nbody\n")
        r = self.sendmail("-t", stdin=text)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        for user in (USER, "root"):
            msg = self.wait_msg("md", user, "resent")
            self.assertNotIn("Resent-Bcc", msg)
            self.assertIn(f"\nResent-To: Someone <{USER}@localhost>\n", msg)
            self.assertIn("\nResent-To: no-such-older@localhost\nFrom: alice@example.org\n"
                          "To: no-such-first@localhost\n", msg)
        self.assertNotIn("no-such", "".join(re.findall(r"smtp envelope .*", self.d.log())))
        # A resent message whose newest block names nobody is not sent to its To:.
        r = self.sendmail("-t", stdin="Resent-From: boss@example.org\nTo: root@localhost\nSubject: r2\n\nx\n")
        self.assertEqual(r.returncode, 65)
        self.assertEqual(r.stderr, "postern-sendmail: no recipient addresses found in the message's most recent "
                                   "Resent-To:, Resent-Cc: or Resent-Bcc: (it has Resent- fields: it is being "
                                   "resent)\n")

    def test_dot_line_ends_input_unless_i(self):
        r = self.sendmail("-oi", "root", stdin="Subject: dots\n\nbefore\n.\n..two\nafter\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = self.wait_msg("md", "root", "dots")
        self.assertTrue(msg.endswith("\nbefore\n.\n..two\nafter\n"), msg)
        r = self.sendmail("root", stdin="Subject: dots2\n\nbefore\n.\nafter\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = self.wait_msg("md", "root", "dots2")
        self.assertTrue(msg.endswith("\nbefore\n"), msg)

    def test_smtp_on_stdin(self):
        dialogue = ("EHLO client.test\r\nMAIL FROM:<me@example.org>\r\nRCPT TO:<root>\r\nDATA\r\n"
                    "Subject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
        r = self.sendmail("-bs", stdin=dialogue)
        self.assertEqual(r.returncode, 0, r.stderr)
        codes = [l[:3] for l in r.stdout.splitlines() if l[3:4] == " "]
        self.assertEqual(codes, ["220", "250", "250", "250", "354", "250", "221"], r.stdout)
        msg = self.wait_msg("md", "root", "bs")
        self.assertIn("Received: from client.test (local user root, uid 0)\n", msg)
        # -bs passes the message as it is; the daemon adds what it lacks, as
        # to every message on its socket (test_submission_fields.py).
        self.assertEqual(msg.count("\nMessage-ID: "), 1)
        self.assertRegex(msg, r"\nSubject: bs\nDate: [^\n]+\nMessage-ID: <[0-9a-f]{16}\.[0-9a-f]{8}@" +
                         re.escape(self.host) + ">\n\nvia -bs\n$")
        self.assertEqual(msg.count("\nDate: "), 1)

    def test_refused_recipient_is_67(self):
        r = self.sendmail("no-such-user-here", stdin="Subject: x\n\nx\n")
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertRegex(r.stderr, r"^postern-sendmail: recipient <no-such-user-here> refused: 550 ")
        self.assertIn("postern-sendmail: the message was not sent\n", r.stderr)

    def test_partly_refused_goes_to_the_others_and_is_67(self):
        r = self.sendmail("no-such-user-here", "root", stdin="Subject: partly\n\nx\n")
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertIn("postern-sendmail: the message was sent to the other recipients\n", r.stderr)
        self.wait_msg("md", "root", "partly")

    def test_usage_and_data_errors(self):
        r = self.sendmail(stdin="x\n")
        self.assertEqual(r.returncode, 64)
        self.assertIn("postern-sendmail: no recipients given (name them, or use -t)\n", r.stderr)
        r = self.sendmail("-t", stdin="Subject: nobody\n\nx\n")
        self.assertEqual(r.returncode, 65)
        self.assertEqual(r.stderr, "postern-sendmail: no recipient addresses found in the message's To:, Cc: or Bcc:\n")
        r = self.sendmail("-t", stdin="To: Bob <bob@x\n\nx\n")
        self.assertEqual(r.returncode, 65)
        self.assertEqual(r.stderr, "postern-sendmail: To: unclosed '<' in address list: Bob <bob@x\n")
        r = self.sendmail("-q")
        self.assertEqual(r.returncode, 64)

    def test_daemon_unreachable_is_75_and_says_not_sent(self):
        env = dict(os.environ, POSTERN_CONTROL=self.d.path("nowhere", "control.sock"))
        r = subprocess.run([SENDMAIL, "root"], input="Subject: lost\n\nx\n", capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(r.returncode, 75)
        self.assertEqual(r.stderr, f"postern-sendmail: cannot reach the mail daemon at "
                                   f"{self.d.path('nowhere', 'submit.sock')}: No such file or directory; "
                                   "the message was not sent\n")

    def test_environment_names_the_control_socket(self):
        env = dict(os.environ, POSTERN_CONTROL=self.d.path("run", "control.sock"))
        r = subprocess.run([SENDMAIL, "root"], input="Subject: env\n\nx\n", capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_msg("md", "root", "env")

    # ---- as an ordinary user ----

    def test_ordinary_user_submits_and_is_named(self):
        r = self.sendmail("root", stdin="Subject: from a user\n\nhi\n", as_user=True)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        msg = self.wait_msg("md", "root", "from a user")
        uid = self.user.pw_uid
        self.assertIn(f"Received: from localhost (local user {USER}, uid {uid})\n", msg)
        self.assertIn(f"From: Test Sender <{USER}@{self.host}>\n", msg)  # the GECOS name
        self.assertIn(f"Return-Path: <{USER}@{self.host}>", msg)
        self.assertRegex(self.d.log(), rf"smtp connected address=local user={USER} uid={uid}\n")

    def test_uid_without_a_name_goes_by_its_number(self):
        uid = 54321
        while True:  # a uid the passwd database does not know
            try:
                pwd.getpwuid(uid)
                uid += 1
            except KeyError:
                break
        dialogue = ("EHLO nameless.test\r\nMAIL FROM:<me@example.org>\r\nRCPT TO:<root>\r\nDATA\r\n"
                    "Subject: nameless\r\n\r\nx\r\n.\r\nQUIT\r\n")
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", SENDMAIL, "-C",
                            self.d.conf_path, "-bs"], input=dialogue, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = self.wait_msg("md", "root", "nameless")
        self.assertIn(f"Received: from nameless.test (local user {uid}, uid {uid})\n", msg)
        self.assertRegex(self.d.log(), rf"smtp connected address=local user={uid} uid={uid}\n")

    def test_sessions_that_leave_before_the_greeting(self):
        # The user's name is looked up off the event loop before the
        # greeting; sessions gone meanwhile must leave the daemon serving.
        import socket as sock
        for _ in range(40):
            c = sock.socket(sock.AF_UNIX, sock.SOCK_STREAM)
            c.connect(self.socket)
            c.close()
        r = self.sendmail("root", stdin="Subject: after leavers\n\nx\n", as_user=True)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        msg = self.wait_msg("md", "root", "after leavers")
        self.assertIn(f"(local user {USER}, uid {self.user.pw_uid})", msg)

    def test_ordinary_user_cannot_forge_the_received_line(self):
        # -f sets the envelope sender (as with every sendmail), but the
        # Received: line names the uid the kernel saw connect.
        r = self.sendmail("-f", "root", "root", stdin="Subject: forged\n\nhi\n", as_user=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = self.wait_msg("md", "root", "forged")
        self.assertIn(f"(local user {USER}, uid {self.user.pw_uid})", msg)
        self.assertIn(f"Return-Path: <root@{self.host}>", msg)
        self.assertIn(f"From: root@{self.host}\n", msg)  # no GECOS name with someone else's address

    def test_mailq(self):
        posternctl(self.d, "pause", "mda")
        try:
            r = self.sendmail("root", stdin="Subject: held\n\nx\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            q = self.sendmail("-bp")
            self.assertEqual(q.returncode, 0, q.stderr)
            self.assertIn(f"root@{self.host}", q.stdout)
            self.assertEqual(self.sendmail(argv0="mailq").stdout, q.stdout)
            u = self.sendmail("-bp", as_user=True)
            self.assertEqual(u.returncode, 77)
            self.assertEqual(u.stderr, "postern-sendmail: only root may see the mail queue (it lists every "
                                       "user's mail); ask the administrator\n")
        finally:
            posternctl(self.d, "resume", "mda")
        self.wait_msg("md", "root", "held")

    def test_newaliases_modes(self):
        r = self.sendmail("-bi")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, f"newaliases: {self.d.conf_path}: no db: table named aliases or used by an "
                                   "action's alias\n")

    # ---- rules and filters ----

    def test_tcp_client_is_not_from_socket(self):
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=20) as s:
            s.sendmail("me@example.org", ["root@localhost"], "Subject: tcp\r\n\r\nx\r\n")
        msg = self.wait_msg("tcp", "root", "tcp")
        self.assertNotIn("X-Filtered", msg)
        self.assertIn("[127.0.0.1])", msg)

    def test_filter_sees_the_socket_as_unix_path(self):
        r = self.sendmail("root", stdin="Subject: filtered\n\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_msg("md", "root", "filtered")
        with open(self.d.path("rec.rec")) as f:
            lines = f.read().splitlines()
        connects = [l for l in lines if "|link-connect|" in l]
        self.assertTrue(connects, lines)
        self.assertTrue(connects[-1].endswith(f"|{self.host}|pass|unix:{self.socket}|unix:{self.socket}"),
                        connects[-1])
        self.assertTrue(any(l.startswith("filter|") and "|connect|" in l and l.endswith(f"|{self.host}|local")
                            for l in lines), lines)


if __name__ == "__main__":
    run_tests()
