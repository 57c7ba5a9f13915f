"""The options of postern's `relay` action, against real peers on loopback.

Covered: `auth <creds>` over STARTTLS (certificate checked with `ca`) and
over smtps (`tls no-verify`) to a second posternd that relays only for
authenticated users, and a wrong password (the mail waits, nothing arrives);
credentials never in an agent's argv or environment nor in the log (caught
while the agent waits for the peer's reply to AUTH); `host <list>` failover
in table order; `domain <map>` routing; the three forms of `mail-from`, and
the null sender left alone; `helo` and `src`; `pki` (a client certificate
presented to a listener with `tls-require verify`).

The peers are a second posternd (postern.Daemon) and smtp_sink.SmtpSink,
which records each connection's commands, TLS state, envelope and DATA.
Certificates are made once with `openssl` in a folder every user can read
(the relay agent runs unprivileged and opens the CA file itself): a CA, a
server certificate for mail.test and IP 127.0.0.1, and a client certificate
signed by the CA.

Depends on: postern.py, smtp_sink.py, posternd and posternctl from
$POSTERN_BUILD_DIR, openssl.
"""

import base64
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
import smtp_sink  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
SENDER = "alice@localhost"
USER, PASSWORD, WRONG = "carl", "Carl-Pass-93x", "Wrong-Pass-17q"
DELIVERY = r"mta delivery"
CERTS = None  # folder made by setUpModule


# ---- certificates ----

def openssl(*args):
    subprocess.run(["openssl", *args], cwd=CERTS, check=True, capture_output=True, timeout=60)


def setUpModule():
    global CERTS
    CERTS = tempfile.mkdtemp(prefix="relayopt-certs-")
    os.chmod(CERTS, 0o755)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=relayopt test CA")
    exts = {"server": "subjectAltName=DNS:mail.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "client": "extendedKeyUsage=clientAuth\n"}
    for name, cn in (("server", "mail.test"), ("client", "relay client")):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        with open(cert(f"{name}.ext"), "w") as f:
            f.write(exts[name])
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    for f in os.listdir(CERTS):
        os.chmod(cert(f), 0o644)  # test keys: the unprivileged agent reads the CA next to them


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def cert(name):
    return os.path.join(CERTS, name)


# ---- helpers ----

def send(port, rcpt, subject, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as s:
        refused = s.sendmail(sender, [rcpt], f"From: <{sender or 'nobody@client.test'}>\r\nTo: <{rcpt}>\r\n"
                                             f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")
        if refused:
            raise AssertionError(f"refused: {refused}")


relay_config = postern.relay_config
queue = postern.queue


def plain_token(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Case(unittest.TestCase):
    def daemon(self, config, name, prepare=None):
        d = postern.Daemon(config, name=name, prepare=prepare)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def sink(self, sink=None):
        sink = (sink or SmtpSink()).start()
        self.addCleanup(sink.stop)
        return sink

    def assert_logged(self, d, pattern, timeout=10.0, count=1):
        found = d.wait_log(pattern + ".*", timeout=timeout, count=count)  # whole lines
        self.assertGreaterEqual(len(found), count, f"no log line {pattern!r}:\n{d.log()}")
        return found

    def assert_waiting(self, d, rcpt):
        q = [e for e in queue(d) if e["rcpt"] == rcpt]
        self.assertEqual([e["state"] for e in q], ["waiting"], q)
        return q[0]

    def assert_no_secret(self, *daemons):
        for d in daemons:
            log = d.log()
            for secret in (PASSWORD, WRONG, plain_token(USER, PASSWORD), plain_token(USER, WRONG)):
                self.assertNotIn(secret, log, f"{d.name}'s log shows a credential")


# ---- 1, 2: AUTH to a posternd that relays for authenticated users only ----

def receiver_prepare(folder):
    h = subprocess.run([POSTERNCTL, "encrypt", PASSWORD], capture_output=True, text=True, check=True, timeout=20)
    with open(os.path.join(folder, "users"), "w") as f:
        f.write(f"{USER} {h.stdout.strip()}\n")
    os.chmod(os.path.join(folder, "users"), 0o644)


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Auth(Case):
    @classmethod
    def setUpClass(cls):
        cls.tls_port, cls.smtps_port = postern.free_port(), postern.free_port()
        receiver = (f'pki mail.test cert "{cert("server.crt")}"\n'
                    f'pki mail.test key "{cert("server.key")}"\n'
                    'table users file:@DIR@/users\n'
                    f'listen on 127.0.0.1 port {cls.tls_port} tls pki mail.test hostname mail.test auth <users>\n'
                    f'listen on 127.0.0.1 port {cls.smtps_port} smtps pki mail.test hostname mail.test auth <users>\n'
                    'action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                    'match from any auth for any action "l"\n')
        cls.b = postern.Daemon(receiver, name="relayopt-authrcv", prepare=receiver_prepare)
        cls.b.__enter__()
        try:
            head = (f'table creds {{ "good" = "{USER}:{PASSWORD}", "bad" = "{USER}:{WRONG}" }}\n'
                    f'ca testca cert "{cert("ca.crt")}"\n')
            sender = relay_config([
                ("starttls.test", f"host smtp+tls://good@127.0.0.1:{cls.tls_port} auth <creds> ca testca"),
                ("smtps.test", f"host smtps://good@127.0.0.1:{cls.smtps_port} auth <creds> tls no-verify"),
                ("wrong.test", f"host smtp+tls://bad@127.0.0.1:{cls.tls_port} auth <creds> tls no-verify"),
                # A failover pair sharing one account: one credential for both.
                ("shared.test", f"host {{ smtp+tls://good@127.0.0.1:{postern.free_port()}, "
                                f"smtp+tls://good@127.0.0.1:{cls.tls_port} }} auth <creds> tls no-verify"),
            ], head)
            cls.a = postern.Daemon(sender, name="relayopt-authsnd")
            cls.a.__enter__()
        except BaseException:
            cls.b.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.a.__exit__(None, None, None)
        cls.b.__exit__(None, None, None)

    def delivered_authenticated(self, user, domain):
        send(self.a.port, f"{user}@{domain}", f"auth to {domain}")
        files = self.b.wait_files(self.b.path("mail", user), 1, timeout=20)
        self.assertEqual(len(files), 1, self.a.log() + "\n" + self.b.log())
        data = postern.read_bytes(files[0]).decode()
        self.assertIn(f"Subject: auth to {domain}\n", data)
        self.assertRegex(data, r"with ESMTPSA id ", data)  # B's Received: TLS and authenticated
        line = self.assert_logged(self.a, DELIVERY + rf" .*to={user}@{domain} .*result=Ok")[0]
        self.assertRegex(line, r'stat="?relay: \S+ \[127\.0\.0\.1\] TLSv1\.[23] ', line)
        self.assert_logged(self.b, rf"smtp authentication user={USER} result=ok")
        self.assertTrue(self.a.wait_queue_empty(5), self.a.queue_entries())
        self.assert_no_secret(self.a, self.b)
        return data

    def test_auth_over_starttls_with_ca(self):
        self.delivered_authenticated("dora", "starttls.test")

    def test_auth_over_smtps(self):
        self.delivered_authenticated("eddy", "smtps.test")

    def test_failover_hosts_sharing_one_account(self):
        self.delivered_authenticated("gus", "shared.test")

    def test_wrong_password_keeps_the_mail_queued(self):
        send(self.a.port, "fred@wrong.test", "wrong password")
        line = self.assert_logged(self.a, DELIVERY + r" .*to=fred@wrong.test .*result=TempFail", timeout=20)[0]
        self.assertIn("authentication failed", line.split("stat=", 1)[-1], line)
        self.assertIn("535", line)
        self.assert_logged(self.b, rf"smtp authentication user={USER} result=permfail")
        entry = self.assert_waiting(self.a, "fred@wrong.test")
        self.assertIn("authentication failed", entry["last-error"])
        self.assertEqual(postern.maildir_new(self.b.path("mail", "fred")), [])
        self.assert_no_secret(self.a, self.b)


# ---- 3: the credentials are not on the agent's command line ----

class _GatedSession(smtp_sink._Session):
    def do_AUTH(self, arg):
        if not self.conn.tls:
            self.send("538 5.7.11 encryption required")
            return
        self.sink.auth_seen.set()
        self.sink.gate.wait(smtp_sink.IO_TIMEOUT - 1)
        self.send("235 2.7.0 authenticated")


class GatedAuthSink(SmtpSink):
    """A sink offering AUTH PLAIN after STARTTLS that holds its reply to AUTH
    until release() (or IO timeout), so the agent is alive and waiting."""

    session_class = _GatedSession

    def __init__(self, **kw):
        super().__init__(starttls=True, cert=cert("server.crt"), key=cert("server.key"),
                         extensions=("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"), **kw)
        self.auth_seen = threading.Event()
        self.gate = threading.Event()

    def release(self):
        self.gate.set()


def proc_text(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        return ""


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root, other processes' /proc")
class SecretsOffArgv(Case):
    def test_password_not_in_agent_argv_environment_or_log(self):
        sink = self.sink(GatedAuthSink())
        self.addCleanup(sink.release)
        head = f'table creds {{ "lbl" = "{USER}:{PASSWORD}" }}\n'
        d = self.daemon(relay_config([(None, f"host smtp+tls://lbl@127.0.0.1:{sink.port} auth <creds> tls no-verify")],
                                     head), "relayopt-argv")
        send(d.port, "gina@remote.test", "gated")
        self.assertTrue(sink.auth_seen.wait(15), sink.describe() + "\n" + d.log())
        # The agent now waits for the reply to AUTH: look at every process of the daemon.
        procs = {p: proc_text(p, "cmdline") for p in postern.descendants_of(d.pid)}
        procs[d.pid] = proc_text(d.pid, "cmdline")
        agents = [p for p, cmd in procs.items() if "--secret-fd" in cmd]
        self.assertTrue(agents, f"no agent with --secret-fd among {procs}")
        self.assertIn("--method relay", " ".join(procs[p] for p in agents))
        for p, cmd in procs.items():
            for secret in (PASSWORD, plain_token(USER, PASSWORD)):
                self.assertNotIn(secret, cmd, f"argv of {p}")
                self.assertNotIn(secret, proc_text(p, "environ"), f"environment of {p}")
        sink.release()
        self.assertEqual(len(sink.wait_messages(1, timeout=15)), 1, sink.describe() + "\n" + d.log())
        auth = [c for c in sink.connections[0].commands if c.upper().startswith("AUTH ")]
        self.assertEqual(auth, [f"AUTH PLAIN {plain_token(USER, PASSWORD)}"])  # what the table said, sent once
        self.assertTrue(sink.transactions()[0].tls)
        self.assert_logged(d, DELIVERY + r" .*to=gina@remote.test .*result=Ok")
        self.assert_no_secret(d)


# ---- 4: host <list> failover ----

def refused_port(before):
    """A loopback port nothing listens on whose URL sorts before the URL
    `before`: tried first whether a list keeps its order or is sorted."""
    for port in range(1, 1000):
        url = f"smtp://127.0.0.1:{port}"
        if url >= before:
            continue
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return port
        except OSError:
            continue
    raise unittest.SkipTest(f"no refused loopback port sorts before {before}")


def inline_list(urls):
    return "{ " + ", ".join(f'"{u}"' for u in urls) + " }"


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class Failover(Case):
    def test_first_host_down_second_gets_the_mail(self):
        sink = self.sink()
        live = f"smtp://127.0.0.1:{sink.port}"
        dead = f"smtp://127.0.0.1:{refused_port(live)}"
        d = self.daemon(relay_config([(None, "host <hosts>")], f"table hosts {inline_list([dead, live])}\n"),
                        "relayopt-failover")
        send(d.port, "hank@remote.test", "failover")
        got = sink.wait_messages(1, timeout=20)
        self.assertEqual(len(got), 1, sink.describe() + "\n" + d.log())
        self.assertIn("Subject: failover\r\n", got[0].decode())
        self.assertEqual(sink.transactions()[0].rcpts, ["hank@remote.test"])
        line = self.assert_logged(d, DELIVERY + r" .*to=hank@remote.test .*result=Ok")[0]
        self.assertRegex(line.split("stat=", 1)[-1], r'^"?relay: 127\.0\.0\.1 \[127\.0\.0\.1\]: 250 ', line)
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())

    def check_table_order(self, name, table_line, prepare=None):
        """Two live sinks, listed so that table order and sorted order differ:
        every message must go to the one listed first."""
        a, b = self.sink(), self.sink()
        urls = sorted([f"smtp://127.0.0.1:{a.port}", f"smtp://127.0.0.1:{b.port}"], reverse=True)
        first, second = (a, b) if urls[0].endswith(f":{a.port}") else (b, a)
        d = self.daemon(relay_config([(None, "host <hosts>")], table_line(urls)), name,
                        prepare=prepare and (lambda folder: prepare(folder, urls)))
        for i in range(3):
            send(d.port, f"ida{i}@remote.test", f"order {i}")
        self.assert_logged(d, DELIVERY + r" .*result=Ok", count=3, timeout=20)
        self.assertEqual(len(first.messages()), 3,
                         f"hosts listed {urls}; first listed got {len(first.messages())}, "
                         f"second listed got {len(second.messages())}")
        self.assertEqual(second.connections, [], second.describe())

    def test_hosts_are_tried_in_table_order(self):
        self.check_table_order("relayopt-order", lambda urls: f"table hosts {inline_list(urls)}\n")

    def test_urls_in_a_file_table_are_refused_clearly(self):
        # A file table reads "smtp://h:p" as key "smtp", value "//h:p" (its first
        # ':' separates them): the mail waits and the log says why.
        def write(folder):
            with open(os.path.join(folder, "hosts"), "w") as f:
                f.write("smtp://127.0.0.1:1\nsmtp://127.0.0.1:2\n")
        d = self.daemon(relay_config([(None, "host <hosts>")], "table hosts file:@DIR@/hosts\n"),
                        "relayopt-filehosts", prepare=write)
        send(d.port, "jo@remote.test", "file table")
        line = self.assert_logged(d, DELIVERY + r" .*to=jo@remote.test .*result=TempFail", timeout=20)[0]
        self.assertIn("table hosts is a mapping, not a list of relay URLs", line)
        self.assert_waiting(d, "jo@remote.test")

    def test_all_hosts_down_is_a_temporary_failure(self):
        dead1, dead2 = postern.free_port(), postern.free_port()
        head = f'table hosts {{ "smtp://127.0.0.1:{dead1}", "smtp://127.0.0.1:{dead2}" }}\n'
        d = self.daemon(relay_config([(None, "host <hosts>")], head), "relayopt-alldown")
        send(d.port, "ivan@remote.test", "nobody home")
        line = self.assert_logged(d, DELIVERY + r" .*to=ivan@remote.test .*result=TempFail", timeout=20)[0]
        self.assertIn("Connection refused", line)
        self.assert_waiting(d, "ivan@remote.test")
        self.assertEqual(len(d.queue_entries()), 1, d.queue_entries())


# ---- 5: domain <routes> ----

@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class DomainRoutes(Case):
    def test_each_domain_goes_to_its_smarthost(self):
        s1, s2 = self.sink(), self.sink()
        head = (f'table routes {{ "a.test" = "smtp://127.0.0.1:{s1.port}", '
                f'"b.test" = "smtp://127.0.0.1:{s2.port}" }}\n')
        d = self.daemon(relay_config([(None, "domain <routes>")], head), "relayopt-domain")
        send(d.port, "jan@a.test", "to a")
        send(d.port, "kim@b.test", "to b")
        send(d.port, "lou@a.test", "to a again")
        self.assertEqual(len(s1.wait_messages(2, timeout=20)), 2, s1.describe() + "\n" + d.log())
        self.assertEqual(len(s2.wait_messages(1, timeout=20)), 1, s2.describe() + "\n" + d.log())
        self.assertEqual(sorted(r for t in s1.transactions() for r in t.rcpts), ["jan@a.test", "lou@a.test"])
        self.assertEqual([r for t in s2.transactions() for r in t.rcpts], ["kim@b.test"])
        self.assert_logged(d, DELIVERY + r" .*result=Ok", count=3)
        self.assertTrue(d.wait_queue_empty(5), d.queue_entries())


# ---- 6: mail-from ----

@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class MailFrom(Case):
    FORMS = {  # recipient domain: (mail-from option, expected wire sender for alice@localhost)
        "full.test": ("bounces@rewritten.test", "bounces@rewritten.test"),
        "domain.test": ("@rewritten.test", "alice@rewritten.test"),
        "user.test": ("relayer", "relayer@localhost"),
    }

    def test_the_three_forms_and_the_null_sender(self):
        sink = self.sink()
        actions = [(dom, f'host smtp://127.0.0.1:{sink.port} mail-from "{opt}"')
                   for dom, (opt, _exp) in self.FORMS.items()]
        d = self.daemon(relay_config(actions), "relayopt-mailfrom")
        for dom in self.FORMS:
            send(d.port, f"mo@{dom}", f"from rewritten via {dom}")
        for dom in self.FORMS:
            send(d.port, f"null@{dom}", f"bounce via {dom}", sender="")
        n = 2 * len(self.FORMS)
        self.assertEqual(len(sink.wait_messages(n, timeout=20)), n, sink.describe() + "\n" + d.log())
        seen = {t.rcpts[0]: t.mail_from for t in sink.transactions() if t.accepted}
        for dom, (_opt, expected) in self.FORMS.items():
            self.assertEqual(seen.get(f"mo@{dom}"), expected, sink.describe())
            self.assertEqual(seen.get(f"null@{dom}"), "", sink.describe())
        self.assertIn("MAIL FROM:<>", " ".join(c for conn in sink.connections for c in conn.commands))
        self.assert_logged(d, DELIVERY + r" .*result=Ok", count=n)


# ---- 7: helo and src ----

@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class HeloSrc(Case):
    def test_helo_name_and_source_address(self):
        sink = self.sink()
        d = self.daemon(relay_config([(None, f'host smtp://127.0.0.1:{sink.port} helo "out.example" src 127.0.0.1')]),
                        "relayopt-helo")
        send(d.port, "mia@remote.test", "helo")
        self.assertEqual(len(sink.wait_messages(1, timeout=20)), 1, sink.describe() + "\n" + d.log())
        conn = sink.connections[0]
        self.assertEqual(conn.commands[0], "EHLO out.example", conn.commands)
        self.assertEqual(conn.peer[0], "127.0.0.1")
        self.assert_logged(d, DELIVERY + r" .*to=mia@remote.test .*result=Ok")

    def test_helo_chosen_by_source_address(self):
        sink = self.sink()
        head = 'table sources { 127.0.0.1 }\ntable names { "127.0.0.1" = "src-named.example" }\n'
        d = self.daemon(relay_config([(None, f"host smtp://127.0.0.1:{sink.port} src <sources> helo-src <names>")],
                                     head), "relayopt-helosrc")
        send(d.port, "ned@remote.test", "helo-src")
        self.assertEqual(len(sink.wait_messages(1, timeout=20)), 1, sink.describe() + "\n" + d.log())
        self.assertEqual(sink.connections[0].commands[0], "EHLO src-named.example", sink.connections[0].commands)


# ---- 8: pki (client certificate) ----

@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class ClientCertificate(Case):
    def test_client_certificate_presented_or_refused(self):
        port = postern.free_port()
        receiver = (f'pki mail.test cert "{cert("server.crt")}"\n'
                    f'pki mail.test key "{cert("server.key")}"\n'
                    f'ca clients cert "{cert("ca.crt")}"\n'
                    f'listen on 127.0.0.1 port {port} tls-require verify pki mail.test ca clients hostname mail.test\n'
                    'action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
                    'match from any for domain { "pki.test", "nopki.test" } action "l"\n')
        b = self.daemon(receiver, "relayopt-pkircv")
        head = (f'pki client cert "{cert("client.crt")}"\n'
                f'pki client key "{cert("client.key")}"\n'
                f'ca testca cert "{cert("ca.crt")}"\n')
        a = self.daemon(relay_config([
            ("pki.test", f"host smtp+tls://127.0.0.1:{port} pki client ca testca"),
            ("nopki.test", f"host smtp+tls://127.0.0.1:{port} ca testca"),
        ], head), "relayopt-pkisnd")
        send(a.port, "nora@pki.test", "with a certificate")
        files = b.wait_files(b.path("mail", "nora"), 1, timeout=20)
        self.assertEqual(len(files), 1, a.log() + "\n" + b.log())
        self.assertIn("Subject: with a certificate\n", postern.read_bytes(files[0]).decode())
        self.assert_logged(b, r'smtp cert-check result=verified subject="?CN ?= ?relay client')
        self.assert_logged(a, DELIVERY + r" .*to=nora@pki.test .*result=Ok")

        send(a.port, "otto@nopki.test", "without a certificate")
        self.assert_logged(a, DELIVERY + r" .*to=otto@nopki.test .*result=TempFail", timeout=20)
        self.assert_waiting(a, "otto@nopki.test")
        self.assertEqual(postern.maildir_new(b.path("mail", "otto")), [])


if __name__ == "__main__":
    postern.run_tests()
