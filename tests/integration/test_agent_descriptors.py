"""No descriptor of the daemon's leaks into the processes it starts (issue 17).

A restart after a crash must never fail because a process the dead daemon
started still holds its listening socket, and a delivery agent running as
the recipient must hold nothing of the daemon's. With the daemon running, a
living maildir agent, an mda agent and the command it runs (held for a few
seconds by `sleep`), a filter process and a table program all exist at
once; every open descriptor of each, read from /proc/PID/fd, must be none of:

- a listening socket (TCP from /proc/net/tcp and tcp6, UNIX from
  /proc/net/unix: the SMTP listener, the control and local enqueue sockets);
- a socket the daemon's own processes hold too (a session, a control
  connection, another helper's channel);
- a file below the spool other than a message in messages/ (which an agent
  gets on purpose), the spool's lock, the journal, the pid file.

Then the daemon is killed (SIGKILL, every process of it) and restarted on the
same port at once: it must serve again (no `Address already in use`).
"""

import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILTER_SOURCE = os.path.join(HERE, "filters", "record_filter.py")
TABLE_SOURCE = os.path.join(HERE, "tables", "table-test.py")

HEAD = ('filter "rec" proc-exec "/usr/bin/python3 @DIR@/record_filter.py @DIR@/rec.rec"\n'
        'table doms "proc:@DIR@/table-test.py @DIR@/doms.json"\n')
CONFIG = ('action "slow" mda "sleep 6; cat > @DIR@/files/out"\n'
          'action "md" maildir "@DIR@/Maildir" user root\n'
          'match from any for domain <doms> action "md"\n'
          'match from any for local action "slow"\n')


def listening_inodes():
    """Inodes of every listening TCP and UNIX stream socket of this host."""
    out = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == "0A":
                        out.add(cols[9])
        except OSError:
            pass
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            # Flags 00010000: __SO_ACCEPTCON, a listening socket.
            if len(cols) > 6 and int(cols[3], 16) & 0x10000:
                out.add(cols[6])
    return out


def descriptors(pid):
    """{fd number: what it points at} of pid (empty when it has gone)."""
    out = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
    except OSError:
        pass
    return out


def command_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def socket_inode(target):
    return target[len("socket:["):-1] if target.startswith("socket:[") else None


def prepare(folder):
    os.mkdir(os.path.join(folder, "files"), 0o755)
    # Copies the daemon's users can reach; the table program with the
    # system's python (a pyenv one may be out of their reach).
    for src in (FILTER_SOURCE, TABLE_SOURCE):
        dst = os.path.join(folder, os.path.basename(src))
        with open(src) as f:
            text = f.read().replace("#!/usr/bin/env python3", "#!/usr/bin/python3", 1)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, 0o755)
    with open(os.path.join(folder, "doms.json"), "w") as f:
        f.write('{"services": ["domain"], "domain": ["md.test"]}\n')
    os.chmod(os.path.join(folder, "doms.json"), 0o644)
    os.chmod(folder, 0o777)  # the filter (as _postern) writes its record here


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon's privilege split")
class AgentDescriptors(unittest.TestCase):
    def test_helpers_hold_nothing_of_the_daemons(self):
        with postern.Daemon(CONFIG, name="agent-fds", prepare=prepare, before_listen=HEAD,
                            listen_options='filter "rec"') as d:
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=20) as s:
                self.assertEqual(s.sendmail("a@example.org", ["root@localhost"], "Subject: a\r\n\r\nslow\r\n"), {})
                self.assertEqual(s.sendmail("a@example.org", ["u@md.test"], "Subject: b\r\n\r\nmaildir\r\n"), {})
            self.assertTrue(d.wait_files(d.path("Maildir"), 1, timeout=10), d.log())

            def helpers():
                """(pid, command) of every process below the daemon that is not posternd itself."""
                return [(p, command_of(p)) for p in postern.descendants_of(d.pid)
                        if not command_of(p).startswith(postern.POSTERND)]

            # The mda agent waits on `sleep 6`; the maildir agent lives on idle.
            want = ("postern-local", "sleep 6", "record_filter.py", "table-test.py")
            found = postern.wait_until(lambda: all(any(w in c for _, c in helpers()) for w in want) and helpers(), 5)
            self.assertTrue(found, f"not every helper is running: {helpers()}\n{d.log()}")
            agents = [c for _, c in found if "postern-local" in c]
            self.assertGreaterEqual(len(agents), 2, found)  # the mda's and the maildir's

            daemon_pids = [p for p in [d.pid] + postern.descendants_of(d.pid) if p not in dict(found)]
            daemon_sockets = {socket_inode(t) for p in daemon_pids for t in descriptors(p).values()} - {None}
            self.assertTrue(daemon_sockets, "the daemon's own sockets were not seen")
            listening = listening_inodes()
            spool = os.path.realpath(d.spool)
            pid_file = d.path("posternd.pid")
            problems = []
            for pid, cmd in found:
                for fd, target in sorted(descriptors(pid).items()):
                    inode = socket_inode(target)
                    if inode and inode in listening:
                        problems.append(f"{pid} ({cmd[:60]}) fd {fd}: a listening socket {target}")
                    elif inode and inode in daemon_sockets:
                        problems.append(f"{pid} ({cmd[:60]}) fd {fd}: the daemon's socket {target}")
                    elif target.startswith(spool + "/") and not target.startswith(spool + "/messages/"):
                        problems.append(f"{pid} ({cmd[:60]}) fd {fd}: {target}")
                    elif target == pid_file:
                        problems.append(f"{pid} ({cmd[:60]}) fd {fd}: the pid file")
            self.assertEqual(problems, [], d.log())
            # The test can fail: the daemon itself holds what is looked for.
            daemon_targets = [t for p in daemon_pids for t in descriptors(p).values()]
            self.assertTrue(any(socket_inode(t) in listening for t in daemon_targets), daemon_targets)
            self.assertTrue(any(t.startswith(spool + "/journal") for t in daemon_targets), daemon_targets)

            # Killed whole and restarted at once on the same port: it serves.
            port = d.port
            d.kill9()
            started = time.monotonic()
            d.restart()
            self.assertEqual(d.port, port)
            self.assertLess(time.monotonic() - started, 5.0, d.log())
            # The mda message, killed with its agent, is delivered once.
            self.assertTrue(postern.wait_until(lambda: os.path.exists(d.path("files", "out")), 30), d.log())
            self.assertNotIn("Address already in use", d.log())


if __name__ == "__main__":
    postern.run_tests()
