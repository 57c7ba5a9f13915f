"""Faults: the daemon under a memory limit (issue 17).

posternd's serving process (the unprivileged child that runs the sessions
and the queue) is held to a memory limit that is tight but lets it run: a
cgroup v2 `memory.max` made for the test under /sys/fs/cgroup and removed
after it, where the memory controller is there and writable; else its
address space (RLIMIT_AS, set with prlimit on the running process) a little
above what it has mapped once started. Then, at once: many idle sessions held
open, and clients sending large messages (several MiB, streamed to the
spool) and small ones.

Asserted: a reply is 250 or a temporary refusal (4xx), never a permanent one;
every message answered 250 is delivered (once, unless the process was killed
and a delivery repeated); the serving process lives through the load, and
once the load stops a new message is accepted and delivered; the queue ends
empty. The figures (replies by code, sessions refused, peak memory) are
printed for the report.
"""

import os
import re
import resource
import smtplib
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "m" maildir "@DIR@/mail" user root\n'
          'match from local for local action "m"\n')

MIB = 1 << 20
# Room above the serving process's size once started: RLIMIT_AS counts the
# address space mapped (thread stacks, malloc arenas), the cgroup the memory
# charged (pages written, page cache of the spool).
AS_MARGIN = int(os.environ.get("POSTERN_MEM_MARGIN_MB", "16")) * MIB
CGROUP_MAX = int(os.environ.get("POSTERN_CGROUP_MAX_MB", "64")) * MIB

SENDERS = 16           # concurrent clients sending
MESSAGES = 4           # each, one of them large
LARGE = 6 * MIB
IDLE_SESSIONS = int(os.environ.get("POSTERN_MEM_IDLE", "400"))  # held open during the load


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)


def kib(status, key):
    return int(status[key].split()[0]) * 1024


def serving_child(d):
    """The unprivileged posternd below the root parent."""
    for p in postern.children_of(d.pid):
        try:
            if status_of(p)["Name"].strip() == "posternd":
                return p
        except OSError:
            pass
    return None


class Cgroup:
    """A cgroup v2 of its own for one process, with memory.max; None if unavailable."""
    ROOT = "/sys/fs/cgroup"

    @classmethod
    def make(cls, pid, limit):
        try:
            with open(os.path.join(cls.ROOT, "cgroup.subtree_control")) as f:
                if "memory" not in f.read().split():
                    return None
        except OSError:
            return None
        path = os.path.join(cls.ROOT, f"postern-test-{os.getpid()}")
        try:
            os.mkdir(path)
        except OSError:
            return None
        g = cls(path, pid)
        try:
            g.write("memory.max", str(limit))
            try:
                g.write("memory.swap.max", "0")
            except OSError:
                pass  # no swap accounting
            g.write("cgroup.procs", str(pid))
            with open(f"/proc/{pid}/cgroup") as f:
                if f"::/{os.path.basename(path)}\n" not in f.read():
                    raise OSError("the process did not move")
        except OSError:
            g.remove()
            return None
        return g

    def __init__(self, path, pid):
        self.path, self.pid = path, pid

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def describe(self):
        return f"cgroup v2 memory.max={self.read('memory.max').strip()} peak={self.peak()}"

    def peak(self):
        try:
            return self.read("memory.peak").strip()
        except OSError:
            return self.read("memory.current").strip()

    def remove(self):
        # Empty once the daemon has stopped; bounded wait for the kernel to notice.
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


class LimitedDaemon(postern.Daemon):
    """posternd started with its address space limited to as_limit bytes (if set).

    Set on the process the harness starts, so its children inherit it: the
    limit cannot be put on the running serving process, which has dropped to
    another user, without CAP_SYS_RESOURCE (which a container may not give).
    Only the soft limit is lowered, in this process for the moment of the
    start, and put back at once.
    """
    as_limit = None

    def _spawn(self):
        if self.as_limit is None:
            return super()._spawn()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (self.as_limit, hard))
        try:
            super()._spawn()
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Client(threading.Thread):
    """Sends MESSAGES messages over one session; records each DATA reply."""

    def __init__(self, port, n, results):
        super().__init__(daemon=True)
        self.port, self.n, self.results = port, n, results

    def run(self):
        for j in range(MESSAGES):
            token = f"t{self.n}-{j}"
            size = LARGE if j == 1 else 4096
            body = "x" * 70 + "\r\n"
            text = (f"Subject: {token}\r\nX-Token: {token}\r\n\r\n" + body * (size // len(body)) + f"end {token}\r\n")
            self.results[token] = self.send(text)

    def send(self, text):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example", timeout=60) as s:
                code, msg = s.ehlo()
                if code != 250:
                    return ("ehlo", code)
                code, msg = s.mail("sender@example.org")
                if code != 250:
                    return ("mail", code)
                code, msg = s.rcpt("someone@localhost")
                if code != 250:
                    return ("rcpt", code)
                code, msg = s.data(text)
                return ("data", code)
        except smtplib.SMTPResponseException as e:
            return ("reply", e.smtp_code)
        except (OSError, smtplib.SMTPException) as e:
            return ("dropped", type(e).__name__)


def hold_idle(port, n, socks, refused):
    """Open n sessions and say EHLO on each; refused ones are counted by reply code."""
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.settimeout(10)
            banner = s.recv(512)
            if not banner.startswith(b"220"):
                refused.append(banner[:3].decode("latin-1"))
                s.close()
                continue
            s.sendall(b"EHLO idle.example\r\n")
            socks.append(s)
        except OSError as e:
            refused.append(type(e).__name__)


def delivered_tokens(maildir):
    """Token -> copies, from the Subject of each file in maildir/new."""
    copies = {}
    for name in postern.maildir_new(maildir):
        with open(os.path.join(maildir, "new", name), "rb") as f:
            head = f.read(4096).decode("latin-1")
        m = re.search(r"^X-Token: (\S+)$", head, re.M)
        if m:
            copies[m.group(1)] = copies.get(m.group(1), 0) + 1
    return copies


@unittest.skipUnless(os.geteuid() == 0, "needs root: prlimit on another user's process, cgroups")
class MemoryLimit(unittest.TestCase):
    def test_load_under_memory_limit(self):
        with LimitedDaemon(CONFIG, name="memlimit") as d:
            child = postern.wait_until(lambda: serving_child(d), 5)
            self.assertTrue(child, "no serving process")
            group = Cgroup.make(child, CGROUP_MAX)
            self.addCleanup(lambda: group and group.remove())
            if group:
                how = group.describe()
            else:
                # Started once to see its size, then again under the limit.
                size = kib(status_of(child), "VmSize")
                d.as_limit = size + AS_MARGIN
                d.restart()
                child = postern.wait_until(lambda: serving_child(d), 5)
                self.assertTrue(child, "no serving process")
                how = f"RLIMIT_AS {d.as_limit // MIB} MiB for the daemon (serving process mapped {size // MIB} MiB)"
            print(f"\nmemory limit: {how}", file=sys.stderr)

            socks, refused = [], []
            results = {}
            idle = threading.Thread(target=hold_idle, args=(d.port, IDLE_SESSIONS, socks, refused), daemon=True)
            idle.start()
            clients = [Client(d.port, n, results) for n in range(SENDERS)]
            for c in clients:
                c.start()
            for c in clients + [idle]:
                c.join(timeout=300)
                self.assertFalse(c.is_alive(), "a client still running after 300 s")
            peak = status_of(child) if postern.process_alive(child) else {}
            for s in socks:
                s.close()

            codes = {}
            for step, code in results.values():
                codes[f"{step} {code}"] = codes.get(f"{step} {code}", 0) + 1
            acked = sorted(t for t, r in results.items() if r == ("data", 250))
            print(f"replies: {codes}; idle sessions held {len(socks)}, refused {refused[:5]} ({len(refused)}); "
                  f"serving process at the end: VmSize {peak.get('VmSize', '-').strip()} "
                  f"VmHWM {peak.get('VmHWM', '-').strip()}" + (f"; {group.describe()}" if group else ""),
                  file=sys.stderr)

            # Never a permanent refusal; a session cut is no acknowledgement.
            for token, (step, code) in results.items():
                if isinstance(code, int):
                    self.assertTrue(code < 500, f"{token}: {step} {code}")
            self.assertTrue(acked, f"nothing accepted under the limit: {codes}\n{d.log()}")
            # A crash is a failure, but first the audit: started again on the
            # same spool, every acknowledged message must still come out.
            died = not (postern.process_alive(child) and d.running())
            if died:
                crash_log = d.log()[-4000:]
                d.restart()

            # The load over, the daemon serves again: a message accepted and delivered.
            def accepted():
                r = Client(d.port, 999, {}).send("Subject: after\r\nX-Token: after\r\n\r\nafter the load\r\n")
                return r == ("data", 250)
            self.assertTrue(postern.wait_until(accepted, 30, interval=1), d.log()[-4000:])

            maildir = d.path("mail")
            postern.wait_until(lambda: set(acked + ["after"]) <= set(delivered_tokens(maildir)), 120, interval=0.5)
            copies = delivered_tokens(maildir)
            lost = [t for t in acked + ["after"] if t not in copies]
            self.assertEqual(lost, [], f"acknowledged and not delivered\n{d.log()[-4000:]}")
            twice = {t: n for t, n in copies.items() if n > 1}
            if not died:
                self.assertEqual(twice, {}, "delivered more than once")
            self.assertTrue(d.wait_queue_empty(30), d.queue_entries())
            errors = re.findall(r"^.*(?:bad_alloc|Cannot allocate|out of memory|ENOMEM).*$", d.log(), re.M)
            print(f"memory errors logged: {len(errors)}: {errors[:5]}", file=sys.stderr)
            self.assertFalse(died, f"the serving process died under the limit: {codes}\n{crash_log if died else ''}")


if __name__ == "__main__":
    postern.run_tests()
