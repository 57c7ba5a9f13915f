"""Crash recovery: a message acknowledged with 250 survives kill -9.

The action delivers as user nobody into DIR/blocked/Maildir, where DIR/blocked
is root's with mode 0755: nobody cannot write there, so the delivery fails
temporarily and the envelope stays queued. The daemon (root parent and
unprivileged child) is then killed with SIGKILL; the message and its envelope
must be on disk in the spool (messages/ and journal/). Once the folder is handed to nobody
and the daemon restarted with the same config, the message is delivered
exactly once. The same again with `queue compression` and `queue encryption`.
"""

import os
import pwd
import re
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

CONFIG = ('action "b" maildir "@DIR@/blocked/Maildir" user nobody\n'
          'match from local for local action "b"\n')

BODY = "Subject: survive\r\n\r\nthis message must not be lost\r\n"


@unittest.skipUnless(os.geteuid() == 0, "needs root: delivery as user nobody")
class CrashRecovery(unittest.TestCase):
    HEAD = ""  # queue options before the actions

    def test_acknowledged_message_survives_kill9(self):
        nobody = pwd.getpwnam("nobody")
        with postern.Daemon(self.HEAD + CONFIG, name="crash") as d:
            blocked = d.path("blocked")
            os.mkdir(blocked)
            os.chown(blocked, 0, 0)
            os.chmod(blocked, 0o755)
            maildir = os.path.join(blocked, "Maildir")

            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                s.ehlo()
                s.mail("keeper@example.org")
                self.assertEqual(s.rcpt("someone@localhost")[0], 250)
                code, text = s.data(BODY)
                self.assertEqual(code, 250, text)
                msgid = re.fullmatch(rb"2\.0\.0 (\S+) Message accepted for delivery", text).group(1).decode()

            self.assertTrue(d.wait_log(r"mda delivery .*to=someone@localhost .*result=TempFail"), d.log())
            self.assertEqual(postern.maildir_new(maildir), [])
            # The agent whose whole batch failed before any flush lives on
            # with its few threads (it once started helper threads without end).
            agents = 0
            for p in postern.descendants_of(d.pid):
                try:
                    with open(f"/proc/{p}/status") as f:
                        status = f.read()
                except OSError:
                    continue
                if re.search(r"^Name:\s+postern-local$", status, re.M):
                    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
                    self.assertLess(threads, 16, f"agent {p} has {threads} threads")
                    agents += 1
            self.assertGreater(agents, 0, "no living agent to look at")

            # The failed attempt's rewrite of the envelope is appended to the
            # journal after the result is logged: the kill comes once it is there.
            journal = d.path("spool", "journal")

            def records():
                return b"".join(postern.read_bytes(os.path.join(journal, f)) for f in sorted(os.listdir(journal)))

            # Sealed, a record's id is in clear after its header; plain, in its text.
            record_of = (rb"\nS \d+ [0-9a-f]{8} \d+\n" + msgid.encode() if self.HEAD
                         else re.escape(f"\nmsgid: {msgid}\n".encode()))
            self.assertTrue(postern.wait_until(lambda: len(re.findall(record_of, records())) >= 2, 10), records())
            parent = d.pid
            family = [parent] + postern.descendants_of(parent)
            self.assertGreaterEqual(len(family), 2, "expected the root parent and its unprivileged child")
            d.kill9()
            for p in family:
                self.assertFalse(postern.process_alive(p), f"process {p} survived SIGKILL")

            # The acknowledged message and its envelope are in the queue.
            entries = d.queue_entries()
            self.assertIn(msgid, entries)
            journaled = records()
            stored = postern.read_bytes(os.path.join(d.queue_dir, msgid))
            # Its record as committed, then as rewritten after the failed attempt.
            self.assertEqual(len(re.findall(record_of, journaled)), 2, journaled)
            if self.HEAD:  # sealed: neither addresses nor text in clear
                self.assertNotIn(b"keeper@example.org", journaled)
                self.assertNotIn(b"must not be lost", stored)
            else:
                self.assertIn(b"\nretry: 1\n", journaled)
                self.assertIn(b"this message must not be lost", stored)

            # Let nobody write, restart with the same config: delivered once.
            os.chown(blocked, nobody.pw_uid, nobody.pw_gid)
            d.restart()
            self.assertTrue(d.wait_log(r"queue loaded envelopes=1\b"), d.log())
            # The retry schedule may hold the envelope back a little (first retry
            # 10 s after arrival); allow for it, no more.
            files = d.wait_files(maildir, 1, timeout=20)
            self.assertEqual(len(files), 1, d.log())
            data = postern.read_bytes(files[0]).decode()
            self.assertTrue(data.startswith("Return-Path: <keeper@example.org>\nDelivered-To: someone@localhost\n"),
                            data)
            self.assertIn(f"with ESMTP id {msgid}\n", data)
            self.assertTrue(data.endswith("\nSubject: survive\n\nthis message must not be lost\n"), data)
            time.sleep(3)
            self.assertEqual(len(postern.maildir_new(maildir)), 1, "delivered more than once")
            self.assertTrue(d.wait_queue_empty(5), d.queue_entries())
            self.assertEqual(len(re.findall(r"mda delivery .*result=Ok", d.log())), 1, d.log())


class CrashRecoveryEncrypted(CrashRecovery):
    """The same with the queue compressed and encrypted (messages and envelopes)."""
    HEAD = "queue compression\nqueue encryption 00112233445566778899aabbccddeeff\n"


SLOW = ('action "slow" mda "sleep 3; cat > @DIR@/files/out-$$"\n'
        'match from local for local action "slow"\n')


@unittest.skipUnless(os.geteuid() == 0, "needs root: the mda runs as root@localhost")
class CrashDuringDelivery(unittest.TestCase):
    def test_kill9_while_delivering_means_a_retry(self):
        def prepare(folder):
            os.mkdir(os.path.join(folder, "files"), 0o755)

        with postern.Daemon(SLOW, name="crash-mid", prepare=prepare) as d:
            with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
                self.assertEqual(s.sendmail("keeper@example.org", ["root@localhost"], BODY), {})
            # The command sleeps 3 s before it writes: crash the daemon, its
            # agent and the command in the middle of the delivery.
            time.sleep(1)
            d.kill9()
            self.assertEqual(os.listdir(d.path("files")), [])
            self.assertEqual(len(d.queue_entries()), 1, d.queue_entries())
            d.restart()
            self.assertTrue(d.wait_log(r"queue loaded envelopes=1\b"), d.log())
            self.assertTrue(postern.wait_until(lambda: os.listdir(d.path("files")), 15), d.log())
            self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
            outs = os.listdir(d.path("files"))
            self.assertEqual(len(outs), 1, outs)
            data = postern.read_bytes(d.path("files", outs[0])).decode()
            self.assertTrue(data.startswith("Return-Path: <keeper@example.org>\nDelivered-To: root@localhost\n"), data)
            self.assertIn("this message must not be lost", data)


if __name__ == "__main__":
    postern.run_tests()
