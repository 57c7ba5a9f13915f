"""Full reload (issue 14): SIGHUP and `posternctl reload` read the whole
configuration again.

The root parent checks the new configuration as start-up does; a bad one is
refused (logged, and posternctl exits 1 with every FILE:LINE:COL problem)
and the running one stays. A good one gets a new serving child; the old one
stops accepting, lets its sessions finish under the configuration they
began with, finishes its deliveries and ends; the new one takes the queue
over (the spool lock) and routes it by the new rules. Under load, every
message a client got 250 for is delivered exactly once.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")


def config(mail="mail", extra=""):
    return ('table aliases file:@DIR@/aliases\n'
            f'{extra}'
            f'action "local" maildir "@DIR@/{mail}" alias <aliases>\n'
            'match from local for local action "local"\n')


def write_aliases(folder, text):
    path = os.path.join(folder, "aliases")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def ctl(d, *args):
    return subprocess.run([POSTERNCTL, "-s", d.path("run", "control.sock"), *args],
                          capture_output=True, text=True, timeout=60)


def rewrite(d, text):
    d.config_text = text
    d._write_config()


def banner(port):
    """The daemon's first line on port, or None when nobody answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            data = s.recv(512)
            s.sendall(b"QUIT\r\n")
            return data.decode("latin-1")
    except OSError:
        return None


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def send(port, rcpt, body, msgid=None):
    headers = f"Subject: {body}\r\n" + (f"Message-ID: <{msgid}>\r\n" if msgid else "")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        return s.sendmail("a@localhost", [rcpt], headers + "\r\n" + body + "\r\n")


def message_ids(folder):
    out = []
    for path in postern.maildir_new(folder):
        with open(os.path.join(folder, "new", path), "rb") as f:
            m = re.search(rb"^Message-ID: <([^>]+)>", f.read(), re.M | re.I)
            if m:
                out.append(m.group(1).decode())
    return out


def serving_children(d):
    uid = os.stat("/proc/self").st_uid  # noqa: F841 (root); children are _postern's
    import pwd
    postern_uid = pwd.getpwnam("_postern").pw_uid
    return [p for p in postern.children_of(d.pid) if os.stat(f"/proc/{p}").st_uid == postern_uid]


@unittest.skipUnless(os.geteuid() == 0, "needs root: the reload is done by the root parent")
class Reload(unittest.TestCase):
    def test_a_changed_configuration_takes_effect(self):
        port2, port3 = postern.free_port(), postern.free_port()
        while port3 == port2:
            port3 = postern.free_port()
        extra2 = f"listen on 127.0.0.1 port {port2}\n"
        with postern.Daemon(config(extra=extra2), name="reload",
                            prepare=lambda f: write_aliases(f, "")) as d:
            self.assertTrue(banner(port2), d.log())
            # Queued under the old rules, routed by the new ones.
            ctl(d, "pause", "mda")
            self.assertEqual(send(d.port, "root@localhost", "queued before"), {})
            self.assertTrue(postern.wait_until(lambda: len(postern.queue(d)) == 1, 10), d.log())
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                s.ehlo("client.test")
                s.mail("a@localhost")
                self.assertEqual(s.rcpt("newname@localhost")[0], 550)

            write_aliases(d.dir, "newname: root\n")
            rewrite(d, config(mail="mail2", extra=f"listen on 127.0.0.1 port {port3}\n"))
            r = ctl(d, "reload")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + d.log())
            self.assertIn("configuration reloaded", r.stdout)

            # The new listener answers, the removed one is closed.
            self.assertTrue(postern.wait_until(lambda: banner(port3), 10), d.log())
            self.assertTrue(postern.wait_until(lambda: refused(port2), 10), d.log())
            # The pause carries over to the new process: the message waits
            # until delivery is resumed, then goes where the new action says.
            status = ctl(d, "show", "status")
            self.assertRegex(status.stdout, r"(?m)^mda: paused$", status.stdout + d.log())
            self.assertRegex(status.stdout, r"(?m)^smtp: running$", status.stdout)
            self.assertIn("paused as before the reload what=mda", d.log())
            time.sleep(1)
            self.assertEqual(postern.maildir_new(d.path("mail2")), [], d.log())
            self.assertEqual(ctl(d, "resume", "mda").returncode, 0, d.log())
            files = d.wait_files(d.path("mail2"), 1, timeout=20)
            self.assertEqual(len(files), 1, d.log())
            self.assertIn(b"Subject: queued before", postern.read_bytes(files[0]))
            self.assertEqual(postern.maildir_new(d.path("mail")), [])
            # The table's new alias.
            self.assertEqual(send(d.port, "newname@localhost", "new alias"), {})
            self.assertEqual(len(d.wait_files(d.path("mail2"), 2, timeout=20)), 2, d.log())
            self.assertRegex(d.log(), r"configuration reloaded pid=\d+")
            self.assertTrue(postern.wait_until(lambda: len(serving_children(d)) == 1, 20), d.log())

    def test_an_invalid_configuration_is_refused_and_the_old_one_serves(self):
        with postern.Daemon(config(), name="reload-bad", prepare=lambda f: write_aliases(f, "")) as d:
            child = serving_children(d)
            rewrite(d, config() + 'action "x" frobnicate\n')
            r = ctl(d, "reload")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("posternctl: configuration not reloaded; the running one stays", r.stderr)
            self.assertRegex(r.stderr, re.escape(d.conf_path) + r":\d+:\d+: ")
            self.assertRegex(d.log(), r"reload refused; the running configuration stays problems=\d")
            self.assertRegex(d.log(), r"reload refused: " + re.escape(d.conf_path) + r":\d+:\d+: ")
            # SIGHUP too.
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"reload refused; the running configuration stays", count=2), d.log())
            self.assertEqual(serving_children(d), child)
            self.assertEqual(send(d.port, "root@localhost", "still served"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 1)), 1, d.log())

    def test_a_session_in_progress_finishes_under_its_configuration(self):
        with postern.Daemon(config(), name="reload-session",
                            prepare=lambda f: write_aliases(f, "olduser: root\n")) as d:
            c = d.client()
            self.assertEqual(c.cmd("EHLO client.test")[:3], "250")
            write_aliases(d.dir, "")  # olduser is gone in the new configuration
            rewrite(d, config(mail="mail2"))
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(d.wait_log(r"posternd draining"), d.log())
            # A new session is served by the new configuration...
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                s.ehlo("client.test")
                s.mail("a@localhost")
                self.assertEqual(s.rcpt("olduser@localhost")[0], 550)
            # ...the one opened before goes on under the old one.
            self.assertEqual(c.cmd("MAIL FROM:<a@localhost>")[:3], "250")
            self.assertEqual(c.cmd("RCPT TO:<olduser@localhost>")[:3], "250")
            self.assertEqual(c.cmd("DATA")[:3], "354")
            self.assertEqual(c.cmd("Subject: in progress\r\n\r\nx\r\n.")[:3], "250")
            self.assertEqual(c.cmd("QUIT")[:3], "221")
            c.close()
            files = d.wait_files(d.path("mail2"), 1, timeout=20)
            self.assertEqual(len(files), 1, d.log())
            self.assertIn(b"Subject: in progress", postern.read_bytes(files[0]))

    def test_under_load_every_acknowledged_message_is_delivered_once(self):
        total, workers, per_connection = 200, 4, 5
        with postern.Daemon(config(), name="reload-load", prepare=lambda f: write_aliases(f, "")) as d:
            acked, failures, lock = [], [], threading.Lock()
            counter = iter(range(total))

            def worker(w):
                done = False
                while not done:
                    try:
                        with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
                            for _ in range(per_connection):
                                with lock:
                                    n = next(counter, None)
                                if n is None:
                                    done = True
                                    break
                                msgid = f"load-{n}@test"
                                body = f"Message-ID: <{msgid}>\r\nSubject: load {n}\r\n\r\nx\r\n"
                                try:
                                    if s.sendmail("a@localhost", ["root@localhost"], body) == {}:
                                        with lock:
                                            acked.append(msgid)
                                except smtplib.SMTPException as e:
                                    with lock:
                                        failures.append(f"{msgid}: {e!r}")
                    except (OSError, smtplib.SMTPException) as e:
                        with lock:
                            failures.append(f"connection: {e!r}")

            threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(workers)]
            for t in threads:
                t.start()
            for i in range(3):
                time.sleep(0.3)
                if i == 1:
                    os.kill(d.pid, signal.SIGHUP)
                else:
                    r = ctl(d, "reload")
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr + d.log())
            for t in threads:
                t.join(timeout=120)
                self.assertFalse(t.is_alive(), "a sending thread did not finish")
            self.assertEqual(failures, [], d.log()[-5000:])
            self.assertEqual(len(acked), total)
            self.assertEqual(len(re.findall(r"configuration reloaded pid=", d.log())), 3, d.log()[-5000:])

            mail = d.path("mail")
            postern.wait_until(lambda: len(postern.maildir_new(mail)) >= len(acked), 60)
            self.assertTrue(d.wait_queue_empty(30), d.log()[-5000:])
            time.sleep(1)  # anything delivered twice would show by now
            ids = message_ids(mail)
            twice = sorted({i for i in ids if ids.count(i) > 1})
            self.assertEqual(twice, [], "delivered more than once")
            self.assertEqual(sorted(set(acked) - set(ids)), [], "acknowledged but not delivered")
            self.assertEqual(len(ids), len(acked))



USER = f"prld{os.getpid() % 100000}"


class AsUser(postern.Daemon):
    """posternd started by an ordinary user: its folder is that user's, and
    it runs from a copy of the build there (the user may not be able to
    enter the checkout: one under /root)."""

    def __init__(self, config_text, user):
        super().__init__(config_text, name="reload-user", prepare=self._hand_over)
        self.user = user

    def _hand_over(self, folder):
        write_aliases(folder, "")
        postern.copy_build(os.path.join(folder, "bin"))
        for root, dirs, files in os.walk(folder):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.chown(name, self.user.pw_uid, self.user.pw_gid)

    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups",
                 self.path("bin", "posternd"), "-d", "-f", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir, start_new_session=True)
        self.session = self.proc.pid
        self._wait_ready()


@unittest.skipUnless(os.geteuid() == 0, "needs root: to start the daemon as another user")
class ReloadNotRoot(unittest.TestCase):
    """A daemon started by an ordinary user reloads its whole configuration
    too: its parent runs with that user's rights, and so does the child."""

    def test_sighup_and_posternctl_reload_serve_a_changed_configuration(self):
        user = postern.system_user(USER)
        with AsUser(config(), user) as d:
            # The daemon's processes are all the user's.
            procs = [d.pid] + postern.children_of(d.pid)
            self.assertTrue(all(os.stat(f"/proc/{p}").st_uid == user.pw_uid for p in procs), procs)
            self.assertEqual(send(d.port, "root@localhost", "before"), {})
            self.assertEqual(len(d.wait_files(d.path("mail"), 1, timeout=20)), 1, d.log())

            rewrite(d, config(mail="mail2"))
            os.kill(d.pid, signal.SIGHUP)
            self.assertTrue(postern.wait_until(lambda: "configuration reloaded" in d.log(), 20), d.log())
            self.assertEqual(send(d.port, "root@localhost", "after sighup"), {})
            files = d.wait_files(d.path("mail2"), 1, timeout=20)
            self.assertEqual(len(files), 1, d.log())
            self.assertIn(b"Subject: after sighup", postern.read_bytes(files[0]))
            self.assertNotIn("table reloaded", d.log())

            rewrite(d, config(mail="mail3"))
            r = ctl(d, "reload")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + d.log())
            self.assertEqual(send(d.port, "root@localhost", "after posternctl"), {})
            self.assertEqual(len(d.wait_files(d.path("mail3"), 1, timeout=20)), 1, d.log())
            self.assertEqual(len(postern.maildir_new(d.path("mail"))), 1)
            self.assertEqual(len(postern.maildir_new(d.path("mail2"))), 1)

if __name__ == "__main__":
    postern.run_tests()
