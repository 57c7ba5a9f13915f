"""Relay connections kept between batches (issue 15): the relay agent lives
on after its batch and keeps its connection open a few seconds, so that the
next batch to the same smarthost goes on it (RSET, no new connection,
greeting or EHLO); a kept connection the peer dropped meanwhile is replaced
by a fresh one, and no message is lost or sent twice.

The peer is smtp_sink.SmtpSink (a scripted SMTP server on the loopback),
which records every connection and every transaction: one connect and two
transactions is what "one connection for two batches" looks like from the
other side. Each batch here is one message, sent once the one before was
delivered, so the two can never share a batch.
"""

import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
import smtp_sink  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

SENDER = "alice@localhost"
DELIVERY = r"mta delivery"


def send(port, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as s:
        refused = s.sendmail(SENDER, [rcpt], f"Subject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n"
                                             f"\r\nbody of {subject}\r\n")
        if refused:
            raise AssertionError(f"refused: {refused}")


def subjects(sink):
    return sorted(m.decode("latin-1").split("Subject: ", 1)[1].split("\r\n", 1)[0] for m in sink.messages())


class _DropAfterFirstMessage(smtp_sink._Session):
    """Closes the connection right after the reply to its first message, as
    a server that ends an idle connection without a word."""

    def do_DATA(self, arg):
        super().do_DATA(arg)
        if self.conn.accepted:
            raise smtp_sink._Closed()


class _DropAtSecondMail(smtp_sink._Session):
    """Answers RSET, then closes the connection when the next MAIL comes,
    before any reply: the connection dies after RSET, before the message."""

    def do_MAIL(self, arg):
        if self.conn.transactions:
            raise smtp_sink._Closed()
        super().do_MAIL(arg)


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class ConnectionKept(unittest.TestCase):
    def start(self, sink, name):
        sink.start()
        self.addCleanup(sink.stop)
        d = postern.Daemon(postern.relay_config([(None, f"host smtp://127.0.0.1:{sink.port}")]), name=name)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def two_batches(self, sink, d):
        """Two one-message batches, the second sent once the first is delivered."""
        send(d.port, "bob@remote.test", "first")
        self.assertEqual(len(sink.wait_messages(1, timeout=15)), 1, sink.describe() + "\n" + d.log())
        send(d.port, "carol@remote.test", "second")
        self.assertEqual(len(sink.wait_messages(2, timeout=15)), 2, sink.describe() + "\n" + d.log())

    def assert_each_delivered_once(self, sink, d):
        self.assertTrue(d.wait_queue_empty(10), d.queue_entries())
        time.sleep(0.5)  # a duplicate would come now, if at all
        self.assertEqual(subjects(sink), ["first", "second"], sink.describe())
        oks = d.wait_log(DELIVERY + r" .*result=Ok", count=2)
        self.assertEqual(len(oks), 2, d.log())
        self.assertNotIn("result=TempFail", d.log())

    def test_two_batches_to_one_smarthost_share_one_connection(self):
        sink = SmtpSink()
        d = self.start(sink, "reuse-one")
        self.two_batches(sink, d)
        self.assert_each_delivered_once(sink, d)
        conns = sink.connections
        self.assertEqual(len(conns), 1, sink.describe())
        self.assertEqual(conns[0].verbs[:8], ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA"],
                         sink.describe())
        self.assertEqual(len(conns[0].accepted), 2, sink.describe())
        # Idle, the agent ends within seconds and closes the connection politely.
        self.assertTrue(sink.wait_idle(20), sink.describe())
        self.assertEqual(conns[0].verbs[-1], "QUIT", sink.describe())
        self.assertIsNone(conns[0].error, sink.describe())

    def test_a_kept_connection_the_peer_dropped_is_replaced(self):
        sink = SmtpSink()
        sink.session_class = _DropAfterFirstMessage
        d = self.start(sink, "reuse-dropped")
        self.two_batches(sink, d)
        self.assert_each_delivered_once(sink, d)
        conns = sink.connections
        self.assertEqual(len(conns), 2, sink.describe())
        # Seen closed before any command: the second batch did not even try RSET on it.
        self.assertEqual(conns[0].verbs, ["EHLO", "MAIL", "RCPT", "DATA"], sink.describe())
        self.assertEqual(conns[1].verbs[:4], ["EHLO", "MAIL", "RCPT", "DATA"], sink.describe())

    def test_a_421_to_rset_means_a_fresh_connection(self):
        sink = SmtpSink(replies={"RSET": "421 4.4.2 sink.test idle too long, closing"})
        d = self.start(sink, "reuse-421")
        self.two_batches(sink, d)
        self.assert_each_delivered_once(sink, d)
        conns = sink.connections
        self.assertEqual(len(conns), 2, sink.describe())
        self.assertEqual(conns[0].verbs, ["EHLO", "MAIL", "RCPT", "DATA", "RSET"], sink.describe())
        self.assertEqual(conns[1].verbs[:4], ["EHLO", "MAIL", "RCPT", "DATA"], sink.describe())

    def test_a_connection_lost_before_the_message_is_retried_at_once(self):
        sink = SmtpSink()
        sink.session_class = _DropAtSecondMail
        d = self.start(sink, "reuse-lost")
        self.two_batches(sink, d)
        self.assert_each_delivered_once(sink, d)
        conns = sink.connections
        self.assertEqual(len(conns), 2, sink.describe())
        self.assertEqual(conns[0].verbs, ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL"], sink.describe())
        self.assertEqual(len(conns[1].accepted), 1, sink.describe())


if __name__ == "__main__":
    postern.run_tests()
