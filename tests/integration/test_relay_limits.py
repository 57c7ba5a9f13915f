"""`mta limit session-mail-max`, `mta limit session-keepalive` and `scheduler
limit max-evp-batch-size` (issue 16),
seen from the next server: a scripted SMTP sink on the loopback
(smtp_sink.SmtpSink) records every connection and its transactions.

session-mail-max N: no connection carries more than N messages, however
the messages fall into batches. session-keepalive 0: a connection is not
kept for the next batch (postern keeps one 5 s by default, test_relay_reuse).
max-evp-batch-size 5: no agent run (with keepalive 0, no connection) carries
more than 5 of 12 messages queued together.
"""

import os
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402


def send(port, rcpts, subject):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as s:
        refused = s.sendmail("alice@localhost", rcpts, f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
        if refused:
            raise AssertionError(f"refused: {refused}")


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class RelayLimits(unittest.TestCase):
    def start(self, sink, name, head):
        sink.start()
        self.addCleanup(sink.stop)
        d = postern.Daemon(postern.relay_config([(None, f"host smtp://127.0.0.1:{sink.port}")], head=head),
                           name=name)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def test_session_mail_max_bounds_the_messages_of_one_connection(self):
        sink = SmtpSink()
        d = self.start(sink, "limit-mail-max", "mta limit session-mail-max 2\n")
        # Seven messages queued at once: they go out in one or a few batches.
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            for i in range(7):
                s.sendmail("alice@localhost", [f"r{i}@remote.test"], f"Subject: m{i}\r\n\r\nbody {i}\r\n")
        self.assertEqual(len(sink.wait_messages(7, timeout=30)), 7, sink.describe() + "\n" + d.log())
        self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        per_connection = [len(c.accepted) for c in sink.connections]
        self.assertEqual(sum(per_connection), 7, sink.describe())
        self.assertLessEqual(max(per_connection), 2, sink.describe())
        self.assertGreaterEqual(len(per_connection), 4, sink.describe())
        # Each full connection ended with QUIT, not dropped.
        self.assertTrue(sink.wait_idle(20), sink.describe())
        for c in sink.connections:
            self.assertIsNone(c.error, sink.describe())
        self.assertNotIn("result=TempFail", d.log())

    def test_session_keepalive_0_keeps_no_connection_for_the_next_batch(self):
        sink = SmtpSink()
        d = self.start(sink, "limit-keepalive", "mta limit session-keepalive 0\n")
        send(d.port, ["bob@remote.test"], "first")
        self.assertEqual(len(sink.wait_messages(1, timeout=15)), 1, sink.describe() + "\n" + d.log())
        send(d.port, ["carol@remote.test"], "second")
        self.assertEqual(len(sink.wait_messages(2, timeout=15)), 2, sink.describe() + "\n" + d.log())
        self.assertEqual(len(sink.connections), 2, sink.describe())
        self.assertEqual([len(c.accepted) for c in sink.connections], [1, 1], sink.describe())

    def test_max_evp_batch_size_bounds_each_agent_run(self):
        # Twelve messages queued while relaying is paused make one batch of
        # twelve by default; with max-evp-batch-size 5, runs of at most 5.
        # session-keepalive 0: a connection per run, so each connection
        # shows one run's messages.
        sink = SmtpSink()
        d = self.start(sink, "limit-batch", "scheduler limit max-evp-batch-size 5\nmta limit session-keepalive 0\n")
        postern.posternctl(d, "pause", "mta")
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            for i in range(12):
                s.sendmail("alice@localhost", [f"r{i}@remote.test"], f"Subject: b{i}\r\n\r\nbody {i}\r\n")
        postern.posternctl(d, "resume", "mta")
        self.assertEqual(len(sink.wait_messages(12, timeout=30)), 12, sink.describe() + "\n" + d.log())
        per_connection = sorted(len(c.accepted) for c in sink.connections)
        self.assertEqual(sum(per_connection), 12, sink.describe())
        self.assertLessEqual(max(per_connection), 5, sink.describe())
        self.assertGreaterEqual(len(per_connection), 3, sink.describe())


if __name__ == "__main__":
    postern.run_tests()
