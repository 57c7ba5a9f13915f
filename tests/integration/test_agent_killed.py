"""A delivery agent killed mid-write (issue 17): the message is retried and
delivered once, and the half-written file does not stay in Maildir/tmp.

A 20 MB message goes to a maildir; as soon as its file appears in tmp/ the
agent writing it (a postern-local below the daemon) is stopped, then
killed with SIGKILL, so it dies with the file half-written. The daemon
logs a temporary failure; `posternctl schedule all` retries at once; the
new agent delivers the message (exactly the bytes sent) and clears tmp/ of
the dead agent's file.
"""

import os
import re
import signal
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "md" maildir "@DIR@/Maildir" user root\n'
          'match from any for domain "killed.test" action "md"\n')


def agents_of(d):
    out = []
    for p in postern.descendants_of(d.pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"postern-local" in f.read().split(b"\0")[0]:
                    out.append(p)
        except OSError:
            pass
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon's privilege split")
class AgentKilledMidWrite(unittest.TestCase):
    def test_killed_agent_retried_and_tmp_cleared(self):
        line = "y" * 76 + "\r\n"
        body = "Subject: big\r\n\r\n" + line * (20_000_000 // len(line))
        with postern.Daemon(CONFIG, name="agent-killed") as d:
            tmp = d.path("Maildir", "tmp")
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=60) as s:
                self.assertEqual(s.sendmail("a@example.org", ["u@killed.test"], body), {})
            # Its file in tmp/: stop every agent at once, then kill them.
            seen = postern.wait_until(lambda: os.path.isdir(tmp) and os.listdir(tmp), 20, interval=0.001)
            agents = agents_of(d)
            for p in agents:
                os.kill(p, signal.SIGSTOP)
            self.assertTrue(seen, "the agent's file never appeared in tmp/: " + d.log())
            self.assertEqual(postern.maildir_new(d.path("Maildir")), [], "delivered before it could be killed")
            left = os.listdir(tmp)
            self.assertTrue(left)
            for p in agents:
                os.kill(p, signal.SIGKILL)
            self.assertTrue(d.wait_log(r"mda delivery .*result=TempFail", timeout=20), d.log())
            self.assertTrue(all(os.path.exists(os.path.join(tmp, n)) for n in left), "tmp/ cleared before a retry")

            postern.posternctl(d, "schedule", "all")
            files = d.wait_files(d.path("Maildir"), 1, timeout=60)
            self.assertEqual(len(files), 1, d.log())
            self.assertTrue(d.wait_queue_empty(20), d.queue_entries())
            data = postern.read_bytes(files[0])
            self.assertTrue(data.endswith(postern.lf_message(body).encode()), "the delivered copy differs")
            self.assertEqual(os.listdir(tmp), [], "the killed agent's half-written file stayed in tmp/")
            time.sleep(1)
            self.assertEqual(len(postern.maildir_new(d.path("Maildir"))), 1, "delivered twice")
            self.assertEqual(len(re.findall(r"mda delivery .*result=Ok", d.log())), 1, d.log())


if __name__ == "__main__":
    postern.run_tests()
