"""MX routing: postern looks the recipient domain up in the DNS and relays to
its mail exchangers.

A dnsmasq started by the test on a loopback port serves the zone below;
postern is pointed at it with `mta resolver`. The exchangers are two more
posternd, each listening on port 25 of an address of their own in
127.0.0.0/8 (as a real MX listens on 25) and delivering to a maildir:

  pref.test      MX 10 mx1.pref.test (127.77.0.1), MX 20 mx2.pref.test (127.77.0.2)
  down.test      MX 10 mx0.down.test (127.77.0.9, nothing listens), MX 20 mx2.pref.test
  implicit.test  no MX, A 127.77.0.2                (implicit MX, RFC 5321 5.1)
  nullmx.test    MX 0 .                             (null MX, RFC 7505: 5.1.10)
  backup.test    MX 10 mx1.pref.test, MX 20 self.test  (a backup MX named self.test
                 relays only to mx1); loop.test: MX 10 self.test, MX 20 mx2 (nothing better)
  dual.test      MX 10 dual.mx.test: A 127.77.0.2 and AAAA ::1 (a third posternd on [::1]:25)
  anything else under .test: NXDOMAIN               (5.1.2)
"""

import email
import email.policy
import os
import shutil
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
MX1, MX2, DEAD = "127.77.0.1", "127.77.0.2", "127.77.0.9"


def receiver(address):
    return (f"listen on {address} port 25\n"
            'action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
            'match from any for domain { pref.test, down.test, implicit.test, backup.test, dual.test } action "l"\n'
            f'match from any for domain "[{address}]" action "l"\n')


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT answering only from its command line."""

    def __init__(self, extra=()):
        self.port = postern.free_port()
        self.proc = None
        self.extra = list(extra)  # more dnsmasq records (--mx-host=..., --host-record=...)

    def __enter__(self):
        args = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={self.port}",
                "--user=root", "--group=root", "--pid-file=", "--local=/test/",
                "--mx-host=pref.test,mx1.pref.test,10", "--mx-host=pref.test,mx2.pref.test,20",
                f"--host-record=mx1.pref.test,{MX1}", f"--host-record=mx2.pref.test,{MX2}",
                "--mx-host=down.test,mx0.down.test,10", "--mx-host=down.test,mx2.pref.test,20",
                f"--host-record=mx0.down.test,{DEAD}",
                f"--host-record=implicit.test,{MX2}",
                "--mx-host=nullmx.test,.,0",
                "--mx-host=backup.test,mx1.pref.test,10", "--mx-host=backup.test,self.test,20",
                "--mx-host=loop.test,self.test,10", "--mx-host=loop.test,mx2.pref.test,20",
                f"--host-record=self.test,{DEAD}",
                "--mx-host=dual.test,dual.mx.test,10", f"--host-record=dual.mx.test,{MX2},::1",
                *self.extra, "--log-queries", "--log-facility=-"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Ready once it answers on its port (bounded).
        import socket
        ok = postern.wait_until(lambda: self._answers(socket), 10)
        if not ok:
            self.proc.kill()
            raise RuntimeError("dnsmasq did not start: " + self.proc.stderr.read().decode(errors="replace"))
        return self

    def _answers(self, socket):
        if self.proc.poll() is not None:
            return False
        query = bytes.fromhex("abcd01000001000000000000") + b"\x04pref\x04test\x00" + bytes.fromhex("000f0001")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 12
            except OSError:
                return False

    def log(self):
        """What dnsmasq logged so far (its queries), without waiting."""
        import select
        out = b""
        while self.proc.stderr and select.select([self.proc.stderr], [], [], 0)[0]:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            out += chunk
        self.logged = getattr(self, "logged", "") + out.decode(errors="replace")
        return self.logged

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return False


def sender_config(dns_port, head="", relay_options=""):
    return (f'mta resolver "127.0.0.1:{dns_port}"\n' + head +
            'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
            f'action "out" relay {relay_options}\n'
            'match from local for local action "local"\n'
            'match from local for any action "out"\n')


def report_status(path):
    with open(path, "rb") as f:
        report = email.message_from_binary_file(f, policy=email.policy.default)
    human = report.get_payload()[0].get_content()
    status = report.get_payload()[1].get_payload()[1]
    return status["Action"], status["Status"], human


@unittest.skipUnless(os.geteuid() == 0, "needs root: port 25 and deliveries as root")
@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (Debian's dnsmasq-base)")
class MxRouting(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Class cleanups run even when a later start fails (tearDownClass
        # would not: a port in use left dnsmasq running).
        cls.dns = Dnsmasq().__enter__()
        cls.addClassCleanup(cls.dns.__exit__)
        cls.mx1, cls.mx2, cls.mx6, cls.a = (
            cls.started(postern.Daemon(receiver(MX1), name="mx1")),
            cls.started(postern.Daemon(receiver(MX2), name="mx2")),
            cls.started(postern.Daemon(receiver("::1"), name="mx6")),
            cls.started(postern.Daemon(sender_config(cls.dns.port), name="mx-sender")))

    @classmethod
    def started(cls, daemon):
        daemon.__enter__()
        cls.addClassCleanup(daemon.__exit__, None, None, None)
        return daemon

    def send(self, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", self.a.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail("alice@localhost", [rcpt], f"Subject: {subject}\r\n\r\nbody\r\n"), {})

    def delivered_to(self, daemon, user, subject, timeout=20):
        def found():
            folder = daemon.path("mail", user, "new")
            for name in postern.maildir_new(daemon.path("mail", user)):
                if f"Subject: {subject}".encode() in postern.read_bytes(os.path.join(folder, name)):
                    return True
            return False
        return postern.wait_until(found, timeout)

    def test_the_preferred_exchanger_gets_the_mail(self):
        self.send("bob@pref.test", "pref-1")
        self.assertTrue(self.delivered_to(self.mx1, "bob", "pref-1"), self.a.log())
        self.assertFalse(self.delivered_to(self.mx2, "bob", "pref-1", timeout=0.5))
        line = self.a.wait_log(r"mta delivery .*to=bob@pref.test .*result=Ok.*", count=1)[0]
        self.assertIn(f"mx1.pref.test [{MX1}]", line)

    def test_a_dead_exchanger_falls_back_to_the_next(self):
        self.send("carol@down.test", "down-1")
        self.assertTrue(self.delivered_to(self.mx2, "carol", "down-1"), self.a.log())
        line = self.a.wait_log(r"mta delivery .*to=carol@down.test .*result=Ok.*", count=1)[0]
        self.assertIn(f"mx2.pref.test [{MX2}]", line)

    def test_a_domain_without_mx_gets_its_address_record(self):
        self.send("dave@implicit.test", "implicit-1")
        self.assertTrue(self.delivered_to(self.mx2, "dave", "implicit-1"), self.a.log())

    def test_null_mx_bounces_at_once_with_5_1_10(self):
        before = len(postern.maildir_new(self.a.path("mail", "alice")))
        self.send("erin@nullmx.test", "null-1")
        files = self.a.wait_files(self.a.path("mail", "alice"), before + 1, timeout=20)
        report = [p for p in files if b"erin@nullmx.test" in postern.read_bytes(p)]
        self.assertEqual(len(report), 1, self.a.log())
        action, status, human = report_status(report[0])
        self.assertEqual((action, status), ("failed", "5.1.10"))
        self.assertIn("null MX", human)

    def test_an_unknown_domain_bounces_with_5_1_2(self):
        before = len(postern.maildir_new(self.a.path("mail", "alice")))
        self.send("frank@nowhere.test", "nx-1")
        files = self.a.wait_files(self.a.path("mail", "alice"), before + 1, timeout=20)
        report = [p for p in files if b"frank@nowhere.test" in postern.read_bytes(p)]
        self.assertEqual(len(report), 1, self.a.log())
        action, status, _ = report_status(report[0])
        self.assertEqual((action, status), ("failed", "5.1.2"))

    def sender(self, name, head="", relay_options=""):
        d = postern.Daemon(sender_config(self.dns.port, head, relay_options), name=name)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def send_via(self, d, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.test", timeout=10) as s:
            self.assertEqual(s.sendmail("alice@localhost", [rcpt], f"Subject: {subject}\r\n\r\nbody\r\n"), {})

    def test_a_backup_mx_relays_only_to_better_exchangers(self):
        b = self.sender("mx-backup", relay_options="backup mx self.test")
        self.send_via(b, "gina@backup.test", "backup-1")
        self.assertTrue(self.delivered_to(self.mx1, "gina", "backup-1"), b.log())
        # Where self.test is the best exchanger, there is nowhere better to go.
        self.send_via(b, "hal@loop.test", "loop-1")
        line = b.wait_log(r"mta delivery .*to=hal@loop.test .*result=TempFail.*", count=1)
        self.assertTrue(line, b.log())
        self.assertIn("no exchanger is preferred over this server (self.test)", line[0])
        self.assertFalse(self.delivered_to(self.mx2, "hal", "loop-1", timeout=0.5))

    def test_no_dns_answer_is_a_temporary_failure(self):
        dead = postern.free_port()  # nothing answers there
        d = postern.Daemon(sender_config(dead), name="mx-nodns")
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        self.send_via(d, "kim@pref.test", "no-dns")
        line = d.wait_log(r"mta delivery .*to=kim@pref.test .*result=TempFail.*", timeout=40)
        self.assertTrue(line, d.log())
        self.assertIn("pref.test MX: DNS lookup failed", line[0])
        self.assertEqual(len(d.queue_entries()), 1, d.queue_entries())

    def test_an_address_literal_goes_to_that_address_without_dns(self):
        self.send(f"lou@[{MX2}]", "literal-1")
        self.assertTrue(self.delivered_to(self.mx2, "lou", "literal-1"), self.a.log())
        self.send("max@pref.test", "literal-control")  # a lookup that must show in dnsmasq's log
        self.assertTrue(self.delivered_to(self.mx1, "max", "literal-control"), self.a.log())
        queries = "".join(l for l in self.dns.log().splitlines(True) if "query[" in l)
        self.assertIn("query[MX] pref.test", queries)
        self.assertNotIn(f"[{MX2}]", queries)  # the literal was never looked up

    def test_ipv4_first_and_mta_limit_inet6(self):
        self.send("ivy@dual.test", "dual-any")
        self.assertTrue(self.delivered_to(self.mx2, "ivy", "dual-any"), self.a.log())
        six = self.sender("mx-inet6", head="mta limit inet6\n")
        self.send_via(six, "jay@dual.test", "dual-6")
        self.assertTrue(self.delivered_to(self.mx6, "jay", "dual-6"), six.log())
        line = six.wait_log(r"mta delivery .*to=jay@dual.test .*result=Ok.*", count=1)[0]
        self.assertIn("dual.mx.test [::1]", line)


SLOW_MX, FREE_MX = "127.77.0.5", "127.77.0.6"


@unittest.skipUnless(os.geteuid() == 0, "needs root: port 25 and deliveries as root")
@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (Debian's dnsmasq-base)")
class PerDomainLimits(unittest.TestCase):
    """`mta limit for domain D max-conn-per-domain N` holds D's exchangers to
    N connections at once, while another domain keeps the default (10): two
    slow sinks, each the MX of one domain, count the connections open at
    once while 70 messages (three batches of at most 32) go to each."""

    def test_one_domain_held_to_one_connection_the_other_not(self):
        dns = Dnsmasq(extra=["--mx-host=slow.test,mx.slow.test,10", f"--host-record=mx.slow.test,{SLOW_MX}",
                             "--mx-host=free.test,mx.free.test,10", f"--host-record=mx.free.test,{FREE_MX}"])
        dns.__enter__()
        self.addCleanup(dns.__exit__)
        sinks = {}
        for domain, address in (("slow.test", SLOW_MX), ("free.test", FREE_MX)):
            sinks[domain] = SmtpSink(eom_delay=0.05, address=(address, 25)).start()
            self.addCleanup(sinks[domain].stop)
        a = postern.Daemon(sender_config(dns.port, head="mta limit for domain slow.test max-conn-per-domain 1\n"),
                           name="per-domain")
        a.__enter__()
        self.addCleanup(a.__exit__, None, None, None)
        postern.posternctl(a, "pause", "mta")
        for domain in sinks:
            with smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test", timeout=10) as s:
                for i in range(70):
                    s.sendmail("alice@localhost", [f"r{i}@{domain}"], f"Subject: m{i}\r\n\r\nbody\r\n")
        postern.posternctl(a, "resume", "mta")
        for domain, sink in sinks.items():
            self.assertEqual(len(sink.wait_messages(70, timeout=60)), 70, domain + ": " + sink.describe() + a.log())
        self.assertEqual(sinks["slow.test"].max_concurrent(), 1, sinks["slow.test"].describe())
        self.assertGreaterEqual(sinks["free.test"].max_concurrent(), 2, sinks["free.test"].describe())
        self.assertTrue(a.wait_queue_empty(10), a.queue_entries())


if __name__ == "__main__":
    postern.run_tests()
