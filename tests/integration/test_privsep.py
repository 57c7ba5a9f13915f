"""The two processes of a root daemon, and what needs root at start-up.

posternd started as root is a privileged parent (starts delivery agents) and
an unprivileged `_postern` child (everything facing the network). If either
dies the other must stop accepting mail and end, so that a supervisor can
start a whole daemon again: the child answers 451 4.3.0 to a transaction in
progress and 421 4.3.0 to an idle session, then frees the port. SIGHUP to the
daemon reloads its configuration (test_reload.py): the parent stays, a new
child serves, the old one ends.

What needs root is opened before the split: a control socket and pid file
in a folder only root may write, a credentials file only root may read.
"""

import os
import pwd
import signal
import smtplib
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

LOCAL = ('table aliases file:@DIR@/aliases\n'
         'action "local" maildir "@DIR@/mail" alias <aliases>\n'
         'match from local for local action "local"\n')


def write_aliases(folder, text):
    with open(os.path.join(folder, "aliases"), "w") as f:
        f.write(text)


def unprivileged_child(d):
    """The daemon's _postern child (its only child while no delivery runs)."""
    uid = pwd.getpwnam("_postern").pw_uid
    kids = postern.wait_until(
        lambda: [p for p in postern.children_of(d.pid) if os.stat(f"/proc/{p}").st_uid == uid], 5)
    if len(kids) != 1:
        raise AssertionError(f"expected one _postern child of {d.pid}, found {kids}")
    return kids[0]


def in_transaction(d):
    c = d.client()
    for line in ("EHLO client.test", "MAIL FROM:<a@localhost>", "RCPT TO:<root@localhost>"):
        code = c.cmd(line)[:3]
        if code != "250":
            raise AssertionError(f"{line}: {code}")
    return c


@unittest.skipUnless(os.geteuid() == 0, "needs root: a daemon split into root parent and _postern child")
class ProcessDeath(unittest.TestCase):
    def test_kill9_of_the_parent_ends_the_child_and_nothing_more_is_acknowledged(self):
        with postern.Daemon(LOCAL, name="kill-parent", prepare=lambda f: write_aliases(f, "")) as d:
            child = unprivileged_child(d)
            busy = in_transaction(d)
            idle = d.client()
            self.assertEqual(idle.cmd("EHLO idle.test")[:3], "250")

            os.kill(d.pid, signal.SIGKILL)
            d.proc.wait(timeout=10)

            self.assertEqual(busy.reply_line()[:9], "451 4.3.0", d.log())
            self.assertEqual(idle.reply_line()[:9], "421 4.3.0", d.log())
            self.assertTrue(postern.wait_until(lambda: not postern.process_alive(child), 10),
                            f"child {child} still runs after its parent was killed\n{d.log()}")
            self.assertRegex(d.log(), r"posternd stopping: the privileged process is gone")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", d.port), timeout=2).close()

            # The port is free: a new daemon starts and takes mail again.
            d.restart()
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["root@localhost"], "Subject: after\r\n\r\nx\r\n"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 1)), 1, d.log())

    def test_kill9_of_the_child_ends_the_parent(self):
        with postern.Daemon(LOCAL, name="kill-child", prepare=lambda f: write_aliases(f, "")) as d:
            child = unprivileged_child(d)
            os.kill(child, signal.SIGKILL)
            self.assertEqual(d.proc.wait(timeout=10), 1, d.log())
            self.assertRegex(d.log(), r"posternd stopping: the unprivileged process is gone .*signal=9")
            self.assertFalse(os.path.exists(d.path("posternd.pid")), "stale pid file left behind")
            d.restart()
            self.assertEqual(d.client().banner[0], 220)


    def test_a_child_that_stops_on_its_own_ends_the_parent_with_an_error(self):
        # A clean exit of the child alone is still a daemon that stopped
        # serving: the parent must fail, so that a supervisor restarts it.
        with postern.Daemon(LOCAL, name="child-term", prepare=lambda f: write_aliases(f, "")) as d:
            os.kill(unprivileged_child(d), signal.SIGTERM)
            self.assertEqual(d.proc.wait(timeout=40), 1, d.log())
            self.assertRegex(d.log(), r"posternd stopping: the unprivileged process is gone exit=0")

    def test_sigterm_waits_for_the_delivery_under_way(self):
        slow = ('action "slow" mda "touch @DIR@/started; sleep 2; cat >> @DIR@/out" user root\n'
                'match from local for local action "slow"\n')
        with postern.Daemon(slow, name="drain") as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["root@localhost"], "Subject: once\r\n\r\nx\r\n"), {})
            self.assertTrue(postern.wait_until(lambda: os.path.exists(d.path("started")), 10), d.log())
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(timeout=20), 0, d.log())
            self.assertRegex(d.log(), r"mda delivery .*result=Ok")
            self.assertEqual(d.queue_entries(), [])
            d.restart()
            with open(d.path("out")) as f:
                self.assertEqual(f.read().count("Subject: once"), 1)


@unittest.skipUnless(os.geteuid() == 0, "needs root: a daemon split into root parent and _postern child")
class Reload(unittest.TestCase):
    def test_sighup_reloads_tables_and_both_processes_live_on(self):
        with postern.Daemon(LOCAL, name="hup", prepare=lambda f: write_aliases(f, "")) as d:
            child = unprivileged_child(d)
            with d.client() as c:
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<a@localhost>")
                self.assertEqual(c.cmd("RCPT TO:<newname@localhost>")[:9], "550 5.1.1")

            write_aliases(d.dir, "newname: root\n")
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"configuration reloaded pid=\d+"), d.log())
            self.assertTrue(postern.wait_until(lambda: not postern.process_alive(child), 10), d.log())
            self.assertTrue(d.running(), d.log())

            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["newname@localhost"], "Subject: hup\r\n\r\nx\r\n"), {})
            files = d.wait_files(d.path("mail"), 1)
            self.assertEqual(len(files), 1, d.log())
            self.assertIn(b"Subject: hup", postern.read_bytes(files[0]))

    def test_a_table_that_cannot_be_read_keeps_its_contents(self):
        with postern.Daemon(LOCAL, name="hup-bad", prepare=lambda f: write_aliases(f, "old: root\n")) as d:
            os.remove(d.path("aliases"))
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"reload refused: .*table aliases: .*aliases: No such file or directory"),
                            d.log())
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["old@localhost"], "Subject: old\r\n\r\nx\r\n"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 1)), 1, d.log())


class RootFolders(postern.Daemon):
    """The control socket and pid file in a folder that is root's (0755)."""

    def config_head(self):
        return (f'queue path "{self.spool}"\n'
                f'pidfile "{self.path("rootrun", "posternd.pid")}"\n'
                f'control socket "{self.path("rootrun", "control.sock")}"\n'
                f'mbox path "{self.mbox_dir}"\n'
                f'listen on 127.0.0.1 port {self.port}\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: files only root may read or write")
class RootOnlyFiles(unittest.TestCase):
    def test_control_socket_and_pid_file_in_a_root_folder(self):
        def prepare(folder):
            os.mkdir(os.path.join(folder, "rootrun"), 0o755)
            write_aliases(folder, "")

        with RootFolders(LOCAL, name="rootrun", prepare=prepare) as d:
            sock = d.path("rootrun", "control.sock")
            pid_file = d.path("rootrun", "posternd.pid")
            with open(pid_file) as f:
                self.assertEqual(int(f.read()), d.pid)
            r = subprocess.run([os.path.join(postern.BUILD_DIR, "posternctl"), "-s", sock, "show", "status"],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + d.log())
            d.stop()
            self.assertFalse(os.path.exists(pid_file), "pid file left behind")
            self.assertFalse(os.path.exists(sock), "control socket left behind")

    def test_alias_table_readable_by_root_only(self):
        def prepare(folder):
            write_aliases(folder, "secretname: root\n")
            os.chmod(os.path.join(folder, "aliases"), 0o600)

        with postern.Daemon(LOCAL, name="root-table", prepare=prepare) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["secretname@localhost"], "Subject: s\r\n\r\nx\r\n"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 1)), 1, d.log())
            # A reload reads the configuration as root again: the file too.
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"configuration reloaded pid=\d+"), d.log())
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                self.assertEqual(s.sendmail("a@localhost", ["secretname@localhost"], "Subject: s\r\n\r\nx\r\n"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 2)), 2, d.log())


@unittest.skipUnless(os.geteuid() == 0, "needs root: the parent opens messages as root")
class SpoolTrust(unittest.TestCase):
    """The spool belongs to _postern: what it holds must not make root open
    another file for an agent."""

    CONFIG = ('action "b" maildir "@DIR@/blocked/Maildir" user nobody\n'
              'match from local for local action "b"\n')

    def test_a_link_in_the_spool_is_not_followed(self):
        for kind in ("symlink", "hardlink"):
            with self.subTest(kind=kind), postern.Daemon(self.CONFIG, name=f"spool-{kind}") as d:
                blocked = d.path("blocked")
                os.mkdir(blocked, 0o755)  # root's: nobody cannot deliver yet
                secret = d.path("secret")
                with open(secret, "w") as f:
                    f.write("root's secret\n")
                os.chmod(secret, 0o600)
                with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                    self.assertEqual(s.sendmail("a@localhost", ["someone@localhost"], "Subject: x\r\n\r\nx\r\n"), {})
                self.assertTrue(d.wait_log(r"mda delivery .*result=TempFail"), d.log())
                [message] = [os.path.join(d.queue_dir, e) for e in d.queue_entries()]
                os.remove(message)
                (os.symlink if kind == "symlink" else os.link)(secret, message)
                nobody = pwd.getpwnam("nobody")
                os.chown(blocked, nobody.pw_uid, nobody.pw_gid)
                postern.posternctl(d, "schedule", "all")
                self.assertTrue(d.wait_log(r"mda delivery .*result=TempFail .*cannot open .*message", count=1), d.log())
                for root, _dirs, files in os.walk(blocked):
                    for f in files:
                        self.assertNotIn(b"secret", postern.read_bytes(os.path.join(root, f)))


if __name__ == "__main__":
    postern.run_tests()
