"""postern's outbound relay against real peers on loopback.

The peers: smtp_sink.SmtpSink (a scripted SMTP server in this folder, which
records what it received and whether TLS was on) and Debian's OpenSMTPD
(/usr/sbin/smtpd), in both directions. Checked: a temporary refusal keeps the
mail queued until `posternctl schedule all`, after which the peer gets it once;
a batch of queued messages goes over one connection; a permanent refusal
becomes a DSN quoting the peer; the TLS policy of each relay URL scheme; and
byte-for-byte bodies through OpenSMTPD.

OpenSMTPD's spool (/var/spool/smtpd) and control socket (/run/smtpd.sock) are
compiled in: each OpenSMTPD here runs under `unshare -m` with the test's own
folders bind-mounted on /var/spool and /run (and a loopback resolv.conf, so
its reverse lookups never leave the machine), so runs in parallel do not
clash and no lock is needed. It listens on a free loopback port.

Depends on: postern.py (Daemon harness), smtp_sink.py, posternctl and posternd
from $POSTERN_BUILD_DIR, openssl, and for the OpenSMTPD tests
/usr/sbin/smtpd and unshare.
"""

import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
SMTPD = "/usr/sbin/smtpd"
DELIVERY = r"m[td]a delivery"  # the relay's log lines may be renamed "mta delivery"
SENDER = "alice@localhost"

# A message with every header OpenSMTPD would otherwise add, and body lines
# that exercise dot-stuffing and trailing white space.
BODY_CRLF = ("first line\r\n.leading dot\r\n..two dots\r\n.\r\n\r\n"
             "trailing space \r\ntab\there\r\nlast line\r\n")
BODY_LF = BODY_CRLF.replace("\r\n", "\n")


def message(subject, to="bob@remote.test", body=BODY_CRLF):
    return (f"From: Alice <{SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@client.test>\r\n\r\n{body}")


def send(port, rcpt, subject, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as s:
        refused = s.sendmail(sender, [rcpt], message(subject, rcpt))
        if refused:
            raise AssertionError(f"refused: {refused}")


relay_config = postern.relay_config
ctl = postern.posternctl
queue = postern.queue


def body_of(data, eol="\n"):
    """The body of a message (bytes): what follows the first empty line."""
    return data.decode("latin-1").split(eol + eol, 1)[1]


def make_self_signed(folder):
    """A self-signed certificate for 127.0.0.1: its name is right, only trust is missing."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "sink.key", "-out", "sink.crt", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   cwd=folder, check=True, capture_output=True, timeout=60)
    return os.path.join(folder, "sink.crt"), os.path.join(folder, "sink.key")


class RelayCase(unittest.TestCase):
    """A sink and a posternd relaying every non-local domain to it."""

    def start(self, sink, url_template="smtp://127.0.0.1:{port}", name="peers"):
        sink.start()
        self.addCleanup(sink.stop)
        d = postern.Daemon(relay_config([(None, "host " + url_template.format(port=sink.port))]), name=name)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def assert_logged(self, d, pattern, timeout=10.0, count=1):
        found = d.wait_log(pattern, timeout=timeout, count=count)
        self.assertGreaterEqual(len(found), count, f"no log line {pattern!r}:\n{d.log()}")
        return found


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Retry(RelayCase):
    def check_retry(self, sink, d, to):
        send(d.port, to, "retried")
        self.assert_logged(d, DELIVERY + rf" .*to={to} .*result=TempFail .*451")
        q = queue(d)
        self.assertEqual([(e["rcpt"], e["state"], e["attempts"]) for e in q], [(to, "waiting", "1")], q)
        self.assertIn("451 4.3.0 sink-busy", q[0]["last-error"])
        self.assertEqual(sink.messages(), [], sink.describe())
        # The next retry is 10 s after the first attempt: schedule must not wait for it.
        started = time.monotonic()
        self.assertEqual(ctl(d, "schedule", "all"), "1 envelope scheduled\n")
        got = sink.wait_messages(1, timeout=5)
        self.assertEqual(len(got), 1, sink.describe() + "\n" + d.log())
        self.assertLess(time.monotonic() - started, 5)
        self.assert_logged(d, DELIVERY + rf" .*to={to} .*result=Ok")
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())
        self.assertEqual(queue(d), [])
        self.assertTrue(sink.wait_idle(5), sink.describe())
        time.sleep(0.5)  # a duplicate would come now, if at all
        self.assertEqual(len(sink.messages()), 1, sink.describe())
        self.assertEqual(body_of(got[0], "\r\n"), BODY_CRLF)
        self.assertIn("Subject: retried\r\n", got[0].decode())
        return got[0]

    def test_rcpt_tempfail_then_schedule_delivers_once(self):
        sink = SmtpSink(replies={"RCPT": ["451 4.3.0 sink-busy try later"]})
        d = self.start(sink, name="peers-retry")
        self.check_retry(sink, d, "bob@remote.test")
        refused = [r for t in sink.transactions() for r in t.refused_rcpts]
        self.assertEqual(refused, [("bob@remote.test", "451 4.3.0 sink-busy try later")])

    def test_tempfail_after_data_then_schedule_delivers_once(self):
        sink = SmtpSink(replies={"EOM": ["451 4.3.0 sink-busy after data"]})
        d = self.start(sink, name="peers-retry-data")
        self.check_retry(sink, d, "carl@remote.test")
        self.assertEqual([t.eom_reply for t in sink.transactions()],
                         ["451 4.3.0 sink-busy after data", "250 2.0.0 queued as sink"])


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Extensions(RelayCase):
    """PIPELINING and 8BITMIME are used when the peer offers them; an 8-bit
    message to a peer without 8BITMIME bounces (5.6.3), as documented."""

    EIGHT_BIT = "Subject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode()

    def send_8bit(self, d, rcpt):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail("alice@localhost", [rcpt], self.EIGHT_BIT, mail_options=["BODY=8BITMIME"]), {})

    def test_pipelining_when_offered(self):
        sink = SmtpSink()
        d = self.start(sink, name="peers-pipe")
        send(d.port, "p@remote.test", "pipelined")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe())
        conn = sink.connections[0]
        mail = [c for c in conn.commands if c.startswith("MAIL")]
        self.assertEqual(len(mail), 1, conn.commands)
        self.assertIn(mail[0], conn.pipelined, conn.commands)  # RCPT and DATA came with it

    def test_no_pipelining_when_not_offered(self):
        sink = SmtpSink(extensions=("8BITMIME", "SIZE 52428800"))
        d = self.start(sink, name="peers-nopipe")
        send(d.port, "q@remote.test", "one by one")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe())
        self.assertEqual(sink.connections[0].pipelined, [], sink.connections[0].commands)

    def test_8bit_body_declared_to_an_8bitmime_peer(self):
        sink = SmtpSink()
        d = self.start(sink, name="peers-8bit")
        self.send_8bit(d, "e@remote.test")
        got = sink.wait_messages(1)
        self.assertEqual(len(got), 1, sink.describe())
        self.assertIn("d\u00e9j\u00e0 vu".encode(), got[0])
        mail = [c for c in sink.connections[0].commands if c.startswith("MAIL")][0]
        self.assertIn(" BODY=8BITMIME", mail)

    def test_8bit_body_to_a_7bit_peer_bounces_with_5_6_3(self):
        sink = SmtpSink(extensions=("PIPELINING", "SIZE 52428800"))
        d = self.start(sink, name="peers-7bit")
        self.send_8bit(d, "f@remote.test")
        files = d.wait_files(d.path("mail", "alice"), 1, timeout=20)
        self.assertEqual(len(files), 1, d.log())
        with open(files[0], "rb") as f:
            report = email.message_from_binary_file(f, policy=email.policy.default)
        status = report.get_payload()[1].get_payload()[1]
        self.assertEqual((status["Action"], status["Status"]), ("failed", "5.6.3"))
        self.assertEqual(sink.transactions(), [], sink.describe())


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Recipients(RelayCase):
    def test_one_transaction_for_the_recipients_of_a_message(self):
        self.check_one_transaction(("PIPELINING", "8BITMIME"), "peers-multi")

    def test_one_transaction_without_pipelining(self):
        self.check_one_transaction(("8BITMIME",), "peers-multi-nopipe")

    def check_one_transaction(self, extensions, name):
        # The sink refuses the second RCPT: the other two get the message in one
        # transaction, the refused one bounces with the sink's reply.
        sink = SmtpSink(replies={"RCPT": ["250 2.1.5 ok", "550 5.1.1 no-such-user-QQ", "250 2.1.5 ok"]},
                        extensions=extensions)
        d = self.start(sink, name=name)
        ctl(d, "pause", "mta")  # all three envelopes in one batch
        rcpts = ["m1@remote.test", "m2@remote.test", "m3@remote.test"]
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail("alice@localhost", rcpts, "Subject: many\r\n\r\nbody\r\n"), {})
        ctl(d, "resume", "mta")
        got = sink.wait_messages(1)
        self.assertEqual(len(got), 1, sink.describe())
        self.assertTrue(sink.wait_idle(10), sink.describe())
        txns = sink.transactions()
        self.assertEqual(len(txns), 1, sink.describe())
        self.assertEqual(len(txns[0].rcpts) + len(txns[0].refused_rcpts), 3, sink.describe())
        refused = txns[0].refused_rcpts[0][0]
        self.assertEqual(sorted(txns[0].rcpts), sorted(r for r in rcpts if r != refused))
        self.assert_logged(d, DELIVERY + r" .*result=Ok", count=2)
        self.assert_logged(d, DELIVERY + rf" .*to={re.escape(refused)} .*result=PermFail .*no-such-user-QQ")
        files = d.wait_files(d.path("mail", "alice"), 1, timeout=20)
        self.assertEqual(len(files), 1, d.log())
        self.assertIn(b"no-such-user-QQ", postern.read_bytes(files[0]))
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())


    def test_lmtp_answers_each_recipient_after_the_message(self):
        sink = SmtpSink(lmtp=True, replies={"EOM": ["250 2.0.0 m1 saved", "452 4.2.2 m2 mailbox full"]})
        d = self.start(sink, url_template="lmtp://127.0.0.1:{port}", name="peers-lmtp")
        ctl(d, "pause", "mta")
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail("alice@localhost", ["m1@remote.test", "m2@remote.test"],
                                        "Subject: lmtp\r\n\r\nbody\r\n"), {})
        ctl(d, "resume", "mta")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe())
        self.assertEqual(sink.connections[0].commands[0].split()[0], "LHLO")
        ok = self.assert_logged(d, DELIVERY + r" .*result=Ok.*")[0]
        temp = self.assert_logged(d, DELIVERY + r" .*result=TempFail.*")[0]
        # Each recipient got its own reply, in RCPT order.
        first = sink.transactions()[0].rcpts[0]
        second = sink.transactions()[0].rcpts[1]
        self.assertIn(f"to={first}", ok)
        self.assertIn("m1 saved", ok)
        self.assertIn(f"to={second}", temp)
        self.assertIn("m2 mailbox full", temp)
        self.assertEqual([e["rcpt"] for e in queue(d)], [second])


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class DsnPassOn(RelayCase):
    """RFC 3461: DSN parameters go on to a server that offers DSN, which then
    reports; to one that does not, postern itself reports "relayed"."""

    def send_dsn(self, d, rcpt):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.sendmail("alice@localhost", [rcpt], "Subject: dsn\r\n\r\nbody\r\n",
                                        mail_options=["RET=HDRS", "ENVID=env+2B1"],
                                        rcpt_options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{rcpt}"]), {})

    def test_parameters_go_to_a_dsn_peer_which_reports(self):
        sink = SmtpSink(extensions=("PIPELINING", "8BITMIME", "DSN"))
        d = self.start(sink, name="peers-dsn")
        self.send_dsn(d, "g@remote.test")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe())
        commands = sink.connections[0].commands
        mail = [c for c in commands if c.startswith("MAIL")][0]
        rcpt = [c for c in commands if c.startswith("RCPT")][0]
        self.assertIn(" RET=HDRS", mail)
        self.assertIn(" ENVID=env+2B1", mail)
        self.assertIn(" NOTIFY=SUCCESS,FAILURE", rcpt)
        self.assertIn(" ORCPT=rfc822;g@remote.test", rcpt)
        self.assert_logged(d, DELIVERY + r" .*to=g@remote.test .*result=Ok .*DSN handed on")
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())
        time.sleep(0.5)
        self.assertEqual(postern.maildir_new(d.path("mail", "alice")), [])  # the peer reports, not us

    def test_a_peer_without_dsn_gets_none_and_the_sender_hears_relayed(self):
        sink = SmtpSink(extensions=("PIPELINING", "8BITMIME"))
        d = self.start(sink, name="peers-nodsn")
        self.send_dsn(d, "h@remote.test")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe())
        for c in sink.connections[0].commands:
            self.assertNotIn("NOTIFY=", c)
            self.assertNotIn("RET=", c)
        files = d.wait_files(d.path("mail", "alice"), 1, timeout=20)
        self.assertEqual(len(files), 1, d.log())
        with open(files[0], "rb") as f:
            report = email.message_from_binary_file(f, policy=email.policy.default)
        fields = report.get_payload()[1].get_payload()
        self.assertEqual(fields[0]["Original-Envelope-Id"], "env+1")
        self.assertEqual((fields[1]["Action"], fields[1]["Status"]), ("relayed", "2.0.0"))


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class ConnectionReuse(RelayCase):
    def test_queued_batch_goes_over_one_connection(self):
        sink = SmtpSink()
        d = self.start(sink, name="peers-reuse")
        ctl(d, "pause", "mta")  # hold relaying until all five are queued
        for i in range(5):
            send(d.port, f"rcpt{i}@remote.test", f"batch {i}")
        q = queue(d)
        self.assertEqual(sorted(e["state"] for e in q), ["ready"] * 5, q)
        self.assertEqual(sink.connections, [], sink.describe())
        ctl(d, "resume", "mta")
        got = sink.wait_messages(5, timeout=10)
        self.assertEqual(len(got), 5, sink.describe() + "\n" + d.log())
        self.assertTrue(sink.wait_idle(10), sink.describe())
        self.assertEqual(len(sink.connections), 1, sink.describe())
        conn = sink.connections[0]
        self.assertEqual(conn.verbs.count("MAIL"), 5, conn.commands)
        self.assertEqual(conn.verbs.count("EHLO"), 1, conn.commands)
        self.assertEqual(conn.verbs[-1], "QUIT", conn.commands)
        self.assertEqual(sorted(t.rcpts[0] for t in conn.accepted), [f"rcpt{i}@remote.test" for i in range(5)])
        self.assertEqual({m.decode().split("Subject: ", 1)[1].split("\r\n", 1)[0] for m in got},
                         {f"batch {i}" for i in range(5)})
        self.assert_logged(d, DELIVERY + r" .*result=Ok", count=5)
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())

    def test_connections_per_smarthost_are_limited(self):
        # 70 messages make three batches (32, 32, 6); a slow sink keeps them
        # open together, and max-conn-per-relay 2 lets only two run at once.
        # The third batch goes on a connection one of the first two left
        # open (the relay agents live on and keep it a few seconds).
        sink = SmtpSink(eom_delay=0.05)
        sink.start()
        self.addCleanup(sink.stop)
        d = postern.Daemon("mta limit max-conn-per-relay 2\n" +
                           relay_config([(None, f"host smtp://127.0.0.1:{sink.port}")]), name="peers-limit")
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        ctl(d, "pause", "mta")
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            for i in range(70):
                s.sendmail("alice@localhost", [f"r{i}@remote.test"], f"Subject: limited {i}\r\n\r\nbody\r\n")
        ctl(d, "resume", "mta")
        self.assertEqual(len(sink.wait_messages(70, timeout=30)), 70, sink.describe())
        self.assertTrue(sink.wait_idle(10), sink.describe())
        self.assertEqual(len(sink.connections), 2, sink.describe())
        self.assertEqual(sink.max_concurrent(), 2, sink.describe())

    def test_pause_mta_holds_relayed_mail(self):
        sink = SmtpSink()
        d = self.start(sink, name="peers-pause")
        ctl(d, "pause", "mta")
        self.assertIn("mta: paused", ctl(d, "show", "status"))
        send(d.port, "held@remote.test", "held")
        send(d.port, "alice@localhost", "local mail still flows")
        self.assertEqual(len(d.wait_files(d.path("mail", "alice"), 1)), 1, d.log())
        time.sleep(1)  # a relay that ignored the pause would have connected by now
        self.assertEqual(sink.connections, [], "relayed while mta was paused:\n" + sink.describe())
        self.assertEqual([e["state"] for e in queue(d)], ["ready"])
        ctl(d, "resume", "mta")
        self.assertEqual(len(sink.wait_messages(1)), 1, sink.describe() + "\n" + d.log())


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class PermanentRefusal(RelayCase):
    def test_refusal_becomes_a_dsn_quoting_the_peer(self):
        sink = SmtpSink(replies={"RCPT": "550 5.7.1 sink-says-no-XYZZY"})
        d = self.start(sink, name="peers-refuse")
        send(d.port, "nobody@remote.test", "refused")
        self.assert_logged(d, DELIVERY + r" .*to=nobody@remote.test .*result=PermFail .*sink-says-no-XYZZY")
        files = d.wait_files(d.path("mail", "alice"), 1, timeout=10)
        self.assertEqual(len(files), 1, d.log())
        raw = postern.read_bytes(files[0])
        report = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        human, status_part = report.get_payload()[0], report.get_payload()[1]
        self.assertIn("sink-says-no-XYZZY", human.get_content(), raw.decode())
        self.assertEqual(status_part.get_content_type(), "message/delivery-status")
        per_rcpt = status_part.get_payload()[1]
        self.assertEqual(per_rcpt["Action"], "failed")
        self.assertEqual(per_rcpt["Status"], "5.7.1")
        self.assertIn("rfc822;nobody@remote.test", per_rcpt["Final-Recipient"].replace(" ", ""))
        self.assertIn("550 5.7.1 sink-says-no-XYZZY", per_rcpt["Diagnostic-Code"])
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())
        # The peer saw the attempt once, and never the message.
        self.assertEqual([t.refused_rcpts for t in sink.transactions()],
                         [[("nobody@remote.test", "550 5.7.1 sink-says-no-XYZZY")]])
        self.assertEqual(sink.messages(), [])


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Tls(unittest.TestCase):
    """One posternd, one sink per relay action, chosen by recipient domain."""

    SCHEMES = {  # domain: (relay options, sink offers STARTTLS)
        "opportunistic.test": ("host smtp://127.0.0.1:{port}", True),
        "verified.test": ("host smtp+tls://127.0.0.1:{port}", True),
        "noverify.test": ("host smtp://127.0.0.1:{port} tls no-verify", True),
        "notls.test": ("host smtp+notls://127.0.0.1:{port}", True),
        "plain.test": ("host smtp://127.0.0.1:{port}", False),
    }

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="peers-certs-")
        cert, key = make_self_signed(cls.certs)
        cls.sinks = {}
        try:
            for domain, (_opts, tls) in cls.SCHEMES.items():
                cls.sinks[domain] = SmtpSink(starttls=tls, cert=cert, key=key).start()
            actions = [(dom, opts.format(port=cls.sinks[dom].port)) for dom, (opts, _t) in cls.SCHEMES.items()]
            cls.d = postern.Daemon(relay_config(actions), name="peers-tls")
            cls.d.__enter__()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "d", None):
            cls.d.__exit__(None, None, None)
            cls.d = None
        for s in cls.sinks.values():
            s.stop()
        shutil.rmtree(cls.certs, ignore_errors=True)

    def delivered(self, domain):
        sink = self.sinks[domain]
        send(self.d.port, f"user@{domain}", f"to {domain}")
        got = sink.wait_messages(1, timeout=10)
        self.assertEqual(len(got), 1, sink.describe() + "\n" + self.d.log())
        self.assertIn(f"Subject: to {domain}\r\n", got[0].decode())
        self.assertTrue(self.d.wait_log(DELIVERY + rf" .*to=user@{domain} .*result=Ok"), self.d.log())
        return sink.transactions()[-1], sink.connections[-1]

    def test_opportunistic_starttls(self):
        txn, conn = self.delivered("opportunistic.test")
        self.assertTrue(txn.tls, conn.commands)
        self.assertEqual(conn.verbs[:3], ["EHLO", "STARTTLS", "EHLO"], conn.commands)

    def test_verified_starttls_refuses_an_untrusted_certificate(self):
        domain = "verified.test"
        send(self.d.port, f"user@{domain}", f"to {domain}")
        found = self.d.wait_log(DELIVERY + rf" .*to=user@{domain} .*result=TempFail.*")
        self.assertTrue(found, self.d.log())
        line = found[0]
        self.assertRegex(line.split("stat=", 1)[1], "certificate", line)
        q = [e for e in queue(self.d) if e["rcpt"] == f"user@{domain}"]
        self.assertEqual([e["state"] for e in q], ["waiting"], q)
        sink = self.sinks[domain]
        self.assertTrue(sink.wait_idle(5), sink.describe())
        self.assertIn("STARTTLS", sink.connections[0].verbs, sink.describe())
        self.assertEqual(sink.transactions(), [], sink.describe())  # nothing sent, in clear or not

    def test_tls_no_verify_delivers_under_tls(self):
        txn, conn = self.delivered("noverify.test")
        self.assertTrue(txn.tls, conn.commands)

    def test_notls_scheme_stays_in_plaintext(self):
        txn, conn = self.delivered("notls.test")
        self.assertFalse(txn.tls)
        self.assertNotIn("STARTTLS", conn.verbs, conn.commands)

    def test_no_starttls_offered_delivers_in_plaintext(self):
        txn, conn = self.delivered("plain.test")
        self.assertFalse(txn.tls)
        self.assertNotIn("STARTTLS", conn.verbs, conn.commands)


class OpenSmtpd:
    """Debian's OpenSMTPD in the foreground on a free loopback port, in a
    private mount namespace whose /var/spool, /run and /etc/resolv.conf are
    this instance's own. In config_text, @DIR@ is its folder."""

    START_TIMEOUT = 10.0
    STOP_TIMEOUT = 10.0

    def __init__(self, config_text, name="opensmtpd"):
        self.config_text = config_text
        self.name = name
        self.dir = None
        self.port = None
        self.proc = None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def log(self):
        try:
            return postern.read_bytes(self.path("smtpd.log")).decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.dir, 0o755)
        for sub in ("spool", "run"):
            os.mkdir(self.path(sub), 0o755)
        with open(self.path("resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        self.port = postern.free_port()
        with open(self.path("smtpd.conf"), "w") as f:
            f.write(f"listen on 127.0.0.1 port {self.port}\n")
            f.write(self.config_text.replace("@DIR@", self.dir))
        os.chmod(self.path("smtpd.conf"), 0o644)
        try:
            self._spawn()
        except BaseException:
            sys.stderr.write(f"[{self.name}] start failed; kept {self.dir}; log:\n{self.log()}\n")
            self.stop()
            raise
        return self

    def _spawn(self):
        script = ("set -e\n"
                  f'mount --bind "{self.path("spool")}" /var/spool\n'
                  f'mount --bind "{self.path("run")}" /run\n'
                  f'mount --bind "{self.path("resolv.conf")}" /etc/resolv.conf\n'
                  f'exec {SMTPD} -d -f "{self.path("smtpd.conf")}"\n')
        with open(self.path("smtpd.log"), "ab") as log:
            # Its own session and process group: stop() signals that group only.
            self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smtpd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with postern.RawClient(self.port, timeout=2) as c:
                    if c.banner[0] == 220:
                        c.cmd("QUIT")
                        return
            except (OSError, AssertionError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"smtpd did not answer on port {self.port} within {self.START_TIMEOUT}s:\n{self.log()}")

    def stop(self):
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                continue
            # The parent is gone; its privilege-separated children follow it.
            if postern.wait_until(lambda: not self._group_alive(pgid), self.STOP_TIMEOUT):
                break
        self.proc = None

    @staticmethod
    def _group_alive(pgid):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                        return True
                except (OSError, IndexError, ValueError):
                    pass
        return False

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None or os.environ.get("POSTERN_KEEP_TMP"):
            sys.stderr.write(f"[{self.name}] kept {self.dir}; smtpd log:\n{self.log()}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


@unittest.skipUnless(os.geteuid() == 0, "needs root: OpenSMTPD and deliveries as root")
@unittest.skipUnless(os.access(SMTPD, os.X_OK), f"OpenSMTPD is not installed ({SMTPD} missing)")
class OpenSmtpdPeer(unittest.TestCase):
    def test_postern_relays_to_opensmtpd(self):
        # OpenSMTPD will not deliver as root: its maildir belongs to nobody.
        osmtpd_conf = ('action "l" maildir "@DIR@/box/Maildir" user nobody\n'
                       'match from any for domain "peer.test" action "l"\n')
        with OpenSmtpd(osmtpd_conf, name="peers-osmtpd-in") as o:
            os.mkdir(o.path("box"), 0o755)
            os.chown(o.path("box"), *_nobody())
            config = relay_config([(None, f"host smtp://127.0.0.1:{o.port}")])
            with postern.Daemon(config, name="peers-to-osmtpd") as d:
                send(d.port, "root@peer.test", "to opensmtpd")
                files = postern.wait_until(lambda: postern.maildir_new(o.path("box", "Maildir")), 15)
                self.assertEqual(len(files or []), 1, d.log() + "\n" + o.log())
                data = postern.read_bytes(o.path("box", "Maildir", "new", files[0]))
                self.assertEqual(body_of(data), BODY_LF, data)
                head = data.decode().split("\n\n", 1)[0]
                self.assertIn("(OpenSMTPD)", head)
                self.assertIn(f"by {d.hostname}", head)  # postern's own Received
                self.assertIn("\nSubject: to opensmtpd\n", head)
                self.assertIn("\nMessage-ID: <to-opensmtpd@client.test>", head)
                self.assertTrue(d.wait_log(DELIVERY + r" .*to=root@peer.test .*result=Ok"), d.log())
                self.assertTrue(d.wait_queue_empty(5), d.queue_entries())

    def test_opensmtpd_relays_to_postern(self):
        receiver = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                    'match from any for domain "inbound.test" action "l"\n')
        with postern.Daemon(receiver, name="peers-from-osmtpd") as d:
            osmtpd_conf = (f'action "out" relay host smtp://127.0.0.1:{d.port}\n'
                           'match from any for domain "inbound.test" action "out"\n')
            with OpenSmtpd(osmtpd_conf, name="peers-osmtpd-out") as o:
                send(o.port, "bob@inbound.test", "from opensmtpd", sender="carol@client.test")
                files = d.wait_files(d.path("mail", "bob"), 1, timeout=15)
                self.assertEqual(len(files), 1, d.log() + "\n" + o.log())
                data = postern.read_bytes(files[0])
                self.assertEqual(body_of(data), BODY_LF, data)
                head = data.decode().split("\n\n", 1)[0]
                self.assertEqual(head.count("Received: "), 2, head)  # OpenSMTPD's, then postern's
                self.assertIn("(OpenSMTPD)", head)
                self.assertIn("\nSubject: from opensmtpd\n", head)
                self.assertTrue(postern.wait_until(lambda: re.search(r'mta delivery .*to=<bob@inbound.test> .*result="?Ok', o.log()), 5), o.log())


def _nobody():
    p = pwd.getpwnam("nobody")
    return p.pw_uid, p.pw_gid


if __name__ == "__main__":
    postern.run_tests()
