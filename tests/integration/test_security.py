"""What the process model of docs/security.md promises, checked on a root
daemon (issue 17, "Privilege separation that holds").

- No envelope address in any process's command line: while an mda agent
  runs a sleeping command, /proc/PID/cmdline of every process the daemon
  started holds neither the sender, nor the recipient, nor the queue id
  (they reach the agent on --batch-fd, core/delivery/agent_batch.hpp).
- The network-facing child runs with no new privileges (NoNewPrivs: 1 in
  /proc/PID/status) and, where the kernel has Landlock, cannot read a file
  outside its folders even though its user may (a table file swapped for a
  link to such a file is not read on `posternctl update table`).
- A filter runs as its configured user and cannot read the spool, nor can
  one left at the default user (the spool's owner): the spool is hidden in
  its mount namespace.
"""

import os
import pwd
import re
import shutil
import smtplib
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

SENDER = "h17-sender-sentinel@example.org"
RCPT = "nobody@localhost"

SLOW = ('table aliases file:@DIR@/aliases\n'
        'action "slow" mda "/bin/sleep 4" alias <aliases>\n'
        'match from any for local action "slow"\n')


def write_aliases(folder, text="postmaster: root\n"):
    with open(os.path.join(folder, "aliases"), "w") as f:
        f.write(text)
    os.chmod(os.path.join(folder, "aliases"), 0o644)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def serving_child(d):
    uid = pwd.getpwnam("_postern").pw_uid
    kids = postern.wait_until(
        lambda: [p for p in postern.children_of(d.pid) if os.stat(f"/proc/{p}").st_uid == uid], 5)
    if not kids:
        raise AssertionError(f"no _postern child of {d.pid}\n{d.log()}")
    return kids[0]


@unittest.skipUnless(os.geteuid() == 0, "needs root: a daemon split into root parent and _postern child")
class Security(unittest.TestCase):
    def test_no_envelope_address_in_any_command_line(self):
        with postern.Daemon(SLOW, name="sec-argv", prepare=write_aliases) as d:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as s:
                s.ehlo("client.test")
                self.assertEqual(s.mail(SENDER)[0], 250)
                self.assertEqual(s.rcpt(RCPT)[0], 250)
                code, reply = s.data(b"Subject: argv\r\n\r\nx\r\n")
            self.assertEqual(code, 250, reply)
            qid = re.search(rb"\b([0-9a-f]{8})\b", reply)
            self.assertTrue(qid, reply)
            qid = qid.group(1).decode()
            # The agent's command sleeps: look while it does.
            sleeping = postern.wait_until(
                lambda: [p for p in postern.descendants_of(d.pid) if "/bin/sleep" in cmdline(p)], 10)
            self.assertTrue(sleeping, f"no mda command running\n{d.log()}")
            seen = {p: cmdline(p) for p in postern.descendants_of(d.pid)}
            agents = [p for p, c in seen.items() if "postern-local" in c]
            self.assertTrue(agents, seen)
            self.assertIn("--batch-fd", seen[agents[0]])
            for pid, line in seen.items():
                for secret in (SENDER, RCPT, "h17-sender-sentinel", qid):
                    self.assertNotIn(secret, line, f"process {pid}: {line}")
            self.assertTrue(d.wait_log(r"result=Ok", timeout=15), d.log())

    def test_the_serving_child_gains_no_privilege_and_reads_only_its_folders(self):
        outside = tempfile.mkdtemp(prefix="sec-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        os.chmod(outside, 0o755)
        secret = os.path.join(outside, "aliases")
        with open(secret, "w") as f:
            f.write("stolen: root\n")
        os.chmod(secret, 0o644)  # _postern may read it, as far as its user goes
        with postern.Daemon(SLOW, name="sec-confined", prepare=write_aliases) as d:
            child = serving_child(d)
            with open(f"/proc/{child}/status") as f:
                status = f.read()
            self.assertIn("NoNewPrivs:\t1", status)
            self.assertRegex(d.log(), r"serving process confined no-new-privs=yes")
            # A table file of its own folder is read again...
            write_aliases(d.dir, "postmaster: root\nother: root\n")
            self.assertIn("updated", postern.posternctl(d, "update", "table", "aliases"))
            landlock = "landlock-abi=" in d.log()
            if not landlock:
                self.skipTest("this kernel has no Landlock: " + d.log())
            # ...one swapped for a link to a file outside them is not.
            os.unlink(d.path("aliases"))
            os.symlink(secret, d.path("aliases"))
            out = postern.posternctl(d, "update", "table", "aliases", expect=1)
            self.assertRegex(out + d.log(), r"(?i)permission denied")

    def test_a_filter_runs_as_its_user_and_cannot_read_the_spool(self):
        probe = ("import os, sys\n"
                 "spool = sys.argv[1]\n"
                 "print('probe uid', os.getuid(), file=sys.stderr, flush=True)\n"
                 "try:\n"
                 "    os.listdir(spool)\n"
                 "    print('probe spool readable', file=sys.stderr, flush=True)\n"
                 "except OSError as e:\n"
                 "    print('probe spool denied', e.errno, file=sys.stderr, flush=True)\n"
                 "for line in sys.stdin:\n"
                 "    if line.startswith('config|ready'):\n"
                 "        print('register|ready', flush=True)\n")

        def prepare(folder):
            write_aliases(folder)
            with open(os.path.join(folder, "probe.py"), "w") as f:
                f.write(probe)
            os.chmod(os.path.join(folder, "probe.py"), 0o755)

        # As its configured user (nobody): the spool is _postern's, closed to others.
        # As the default user (_postern, the spool's owner): an empty folder
        # nobody may enter lies over the spool in the filter's mount namespace.
        for user, uid in (("nobody", pwd.getpwnam("nobody").pw_uid), (None, pwd.getpwnam("_postern").pw_uid)):
            option = f' user "{user}"' if user else ""
            with postern.Daemon(SLOW, name="sec-filter", prepare=prepare,
                                before_listen='filter "probe" proc-exec "/usr/bin/python3 @DIR@/probe.py @DIR@/spool"'
                                              f'{option}\n',
                                listen_options='filter "probe"') as d:
                self.assertTrue(d.wait_log(r"probe spool (denied|readable)", timeout=10), d.log())
                log = d.log()
                self.assertIn(f"probe uid {uid}", log)
                self.assertNotIn("cannot hide the spool", log)
                self.assertRegex(log, r"probe spool denied 13")
                self.assertNotIn("probe spool readable", log)


if __name__ == "__main__":
    postern.run_tests()
