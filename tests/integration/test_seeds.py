"""The seed configs run end to end, as the articles they come from intend.

tests/config/seeds/ holds the smtpd.conf files of the articles our users
learned from (the articles are in ../shared/seeds/). Each test class here
takes one of them as it is and substitutes only paths, addresses and
interface names, through an explicit table printed with every failure:

  - file paths (tables, certificates and keys, the LMTP socket) become files
    in the daemon's folder (@DIR@) or, for 002's `lmtp "/var/run/lmtp"`, the
    UNIX socket of a real Dovecot LMTP server started for the class in the
    test's folder (dovecot.py; a path socket is reachable from the server
    namespace);
  - `db:` tables stay `db:` tables: the test writes their text and builds the
    .db map with build/postern-makemap or Debian's OpenSMTPD makemap
    (/usr/sbin/makemap), both used, as the articles say (`makemap -t
    aliases`, `-t set`);
  - interface names (eth0, if0, lo0) become the namespace's, and the
    placeholder <INCOMING-IP-OR-NETWORK> an address; 004's `egress` stays,
    since the server namespace's default route makes its interface that
    group;
  - 004's placeholder key YourKeyHere becomes the output of `openssl rand
    -hex 16`, as the article says to do;
  - 003_prism's source address 212.83.129.132 becomes a second address of
    the server interface, and its host names mx1.prism.mx and mail.prism.mx
    (its listeners) are the server's address in the lab's DNS;
    nothing else is swapped.

One seed is corrected, and the table printed with its failures shows the
correction apart: 003_prism's `deliver to maildmda` (the slides merged the
maildir and mda choices; OpenSMTPD refuses it too, and test_config_check.py
checks that -n does) becomes `deliver to mda`.

Seeds with no `listen` line (001_assembled, 001_wildcard_domains,
003_baddies) get `listen on SERVER_IF` added at the top, shown with the
table. Lines the harness adds before the seed's put the daemon's own state
(queue, pidfile, control socket, mbox folder) in the test's folder. Then each
class does what the article says the server is for and checks the bytes where
they land, and the refusals. Not run here: 001_listing1 and
003_macro_listen (refused as printed, by OpenSMTPD too) and the fragments
003_reject_order and 004_pki_queue; test_config_check.py checks every seed
with -n.

003_prism relays its submitters' mail through a DKIM proxy on
127.0.0.1:10027 that hands it back, signed, on port 10028: the article's is
dkimproxy (dkimproxy.out), which Debian 12 does not ship; a second posternd
running postern's filter-dkim stands in for it (see Seed003Prism).

The network is two namespaces made per class, joined by a veth pair, so that
clients come from addresses that are not the server's own (an authenticated
user "from another address" is what the old grammar's `from local` lost,
issue 9 §3) and the ports are the articles' own (25, 587):

  server namespace   SERVER_IF 192.0.2.1/24 (and 192.0.2.4/24 for
                     003_prism), lo; the default route via 192.0.2.2.
                     posternd with the seed's config; dnsmasq on
                     127.0.0.1:53 (the namespace's /etc/resolv.conf,
                     through /etc/netns/NS/) answering far.test MX 10
                     mx.far.test A 192.0.2.2, and the class's own names
  client namespace   CLIENT_IF 192.0.2.2/24 (an outsider, and far.test's MX:
                     a second posternd on port 25 delivering to a maildir)
                     and 192.0.2.3/24 (seed 000's "incoming" host, and
                     the one address in 003's <baddies>)

Clients are swaks (run with `ip netns exec`) and smtplib, whose socket is
made inside the namespace (setns(2) for this thread for the moment of the
connect). Namespaces are named after the test's PID and deleted, and every
process this file starts is stopped by its PID, in finally blocks.

Needs root, `ip netns`, swaks, dnsmasq, openssl and both makemaps (seed 002
also Debian's dovecot-core and dovecot-lmtpd, seed 003_prism the build's
filter-dkim and Debian's python3-dkim); skips with the reason when one is
missing.
"""

import contextlib
import os
import pwd
import grp
import json
import random
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import string
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot  # noqa: E402
import postern  # noqa: E402
from netns import inside  # noqa: E402
from test_filter_debian import SYSTEM_PYTHON, dkim_verify, make_rsa_key, wire_form  # noqa: E402

SEEDS = os.path.join(postern.SOURCE_DIR, "tests", "config", "seeds")
POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
SWAKS = shutil.which("swaks")
OUR_MAKEMAP = os.path.join(postern.BUILD_DIR, "postern-makemap")
FILTER_DKIM = os.path.join(postern.BUILD_DIR, "filter-dkim")
DEBIAN_MAKEMAP = "/usr/sbin/makemap"   # OpenSMTPD's, from Debian's opensmtpd package

SERVER_IP = "192.0.2.1"
OUTSIDER_IP = "192.0.2.2"   # also far.test's MX
INCOMING_IP = "192.0.2.3"   # seed 000's <INCOMING-IP-OR-NETWORK>; in 003's <baddies>
FAR = "far.test"            # a domain elsewhere: relayed by MX to the client namespace

CMD_TIMEOUT = 30            # seconds any command this file runs may take
DELIVERY_TIMEOUT = 30.0     # seconds a message may take to land

# ---- namespaces (netns.inside) ----


def run(argv, **kw):
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT, **kw)


STALE = re.compile(r"^pt(\d+)[a-z]-[sc]$")  # Lab's namespace names


def remove_stale_namespaces():
    """Namespaces a killed run of this file left (its PID is gone), with their
    /etc/netns folders: an interrupted run cannot clean up after itself."""
    listing = run(["ip", "netns", "list"]).stdout
    for line in listing.splitlines()[:1000]:
        name = line.split()[0] if line.split() else ""
        m = STALE.match(name)
        if m and int(m.group(1)) != os.getpid() and not postern.process_alive(int(m.group(1))):
            run(["ip", "netns", "del", name])
            shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


def netns_missing():
    """Why `ip netns` cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, system users, ports 25 and 587"
    if not shutil.which("ip"):
        return "needs iproute2's ip"
    probe = f"ptprobe{os.getpid()}"
    r = run(["ip", "netns", "add", probe])
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip()}"
    run(["ip", "netns", "del", probe])
    remove_stale_namespaces()
    for tool, path in (("swaks", SWAKS), ("dnsmasq", DNSMASQ), ("openssl", shutil.which("openssl")),
                       ("Debian's opensmtpd makemap", DEBIAN_MAKEMAP), ("postern-makemap", OUR_MAKEMAP)):
        if not path or not os.access(path, os.X_OK):
            return f"needs {tool}"
    return None


class Lab:
    """Two namespaces joined by a veth pair, dnsmasq in the server one and
    far.test's MX (a posternd) in the client one; see the module comment."""

    def __init__(self, tag, hosts=()):
        base = f"pt{os.getpid()}{tag}"
        self.hosts = hosts  # (name, address) pairs dnsmasq answers too
        self.server_ns, self.client_ns = f"{base}-s", f"{base}-c"
        # Interface names: at most 15 bytes.
        self.server_if, self.client_if = f"p{os.getpid() % 10**7}{tag}s"[:15], f"p{os.getpid() % 10**7}{tag}c"[:15]
        self.dnsmasq = None
        self.dnsmasq_log = tempfile.TemporaryFile()
        self.mx = None
        self._made = []

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _ip(self, *args):
        r = run(["ip", *args])
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def _build(self):
        for ns in (self.server_ns, self.client_ns):
            self._ip("netns", "add", ns)
            self._made.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
            # Resolver of processes run with `ip netns exec`: the server's
            # dnsmasq; in the client namespace nothing listens there, so that
            # the MX's lookups fail at once instead of timing out.
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\n")
        self._ip("link", "add", self.server_if, "netns", self.server_ns, "type", "veth",
                 "peer", "name", self.client_if, "netns", self.client_ns)
        self._ip("-n", self.server_ns, "addr", "add", f"{SERVER_IP}/24", "dev", self.server_if)
        self._ip("-n", self.client_ns, "addr", "add", f"{OUTSIDER_IP}/24", "dev", self.client_if)
        self._ip("-n", self.client_ns, "addr", "add", f"{INCOMING_IP}/24", "dev", self.client_if)
        for ns, ifname in ((self.server_ns, self.server_if), (self.client_ns, self.client_if)):
            self._ip("-n", ns, "link", "set", ifname, "up")
        # The server's default route, through the client: what makes its
        # interface the `egress` group (seed 004 listens there).
        self._ip("-n", self.server_ns, "route", "add", "default", "via", OUTSIDER_IP, "dev", self.server_if)
        # dnsmasq answers only from its command line.
        self.dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", self.server_ns, DNSMASQ, "--no-daemon", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
             "--user=root", "--group=root", "--pid-file=", "--local=/test/", "--local=/2.0.192.in-addr.arpa/",
             f"--mx-host={FAR},mx.{FAR},10", f"--host-record=mx.{FAR},{OUTSIDER_IP}",
             *(f"--local=/{name}/" for name, _ in self.hosts),
             *(f"--host-record={name},{address}" for name, address in self.hosts)],
            stdin=subprocess.DEVNULL, stdout=self.dnsmasq_log, stderr=self.dnsmasq_log, start_new_session=True)
        self.mx = NetnsDaemon(self.client_ns, (OUTSIDER_IP, 25), name="seeds-mx",
                              config_text=(f"listen on {OUTSIDER_IP} port 25\n"
                                           'action "mx" maildir "@DIR@/mx/%{rcpt.user}" user root\n'
                                           'match from any for any action "mx"\n'))
        self.mx.__enter__()
        # The server namespace reaches the MX, by name.
        if not postern.wait_until(lambda: self.dns_answers(), 10, interval=0.2):
            self.dnsmasq_log.seek(0)
            raise RuntimeError("dnsmasq did not answer in the server namespace:\n" +
                               self.dnsmasq_log.read(65536).decode("utf-8", "replace"))

    def dns_answers(self):
        r = run(["ip", "netns", "exec", self.server_ns, sys.executable, "-c",
                 f"import socket; print(socket.gethostbyname('mx.{FAR}'))"])
        return r.returncode == 0 and r.stdout.strip() == OUTSIDER_IP

    def __exit__(self, *exc):
        try:
            if self.mx:
                self.mx.__exit__(None, None, None)
        finally:
            if self.dnsmasq and self.dnsmasq.poll() is None:
                self.dnsmasq.send_signal(signal.SIGTERM)
                try:
                    self.dnsmasq.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.dnsmasq.kill()
                    self.dnsmasq.wait(timeout=10)
            self.dnsmasq_log.close()
            for ns in self._made:
                run(["ip", "netns", "del", ns])  # takes the veth pair with it
                shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir("/etc/netns")  # only if empty: it may have been there before
        return False

    def mx_mail(self, user):
        """The messages far.test's MX has delivered for user@far.test (bytes, by file name)."""
        folder = self.mx.path("mx", user)
        return [postern.read_bytes(os.path.join(folder, "new", f)) for f in postern.maildir_new(folder)]


class NetnsDaemon(postern.Daemon):
    """A posternd started with `ip netns exec NS`, its config written as
    given after lines that put its state in its folder (no `listen` added);
    ready when `probe` (address, port) answers inside NS."""

    def __init__(self, ns, probe, config_text, name, prepare=None):
        super().__init__(config_text, name=name, prepare=prepare)
        self.ns = ns
        self.probe = probe

    def config_head(self):
        return (f'queue path "{self.spool}"\n'
                f'pidfile "{self.path("posternd.pid")}"\n'
                f'control socket "{self.path("run", "control.sock")}"\n'
                f'mbox path "{self.mbox_dir}"\n')

    def _start_with_free_port(self):
        self.port = self.probe[1]
        self._write_config()
        self._spawn()

    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, postern.POSTERND, "-d", "-f", self.conf_path] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir, start_new_session=True)
        self.session = self.proc.pid  # `ip netns exec` execs: this is posternd itself
        self._wait_ready()

    def _connect(self, timeout):
        with inside(self.ns):
            return socket.create_connection(self.probe, timeout=timeout)


# ---- seeds, users, certificates ----

def substituted(seed, table):
    """The seed file's text with each (old, new) of table replaced; every old
    text must be there, so that a changed seed cannot pass unnoticed."""
    with open(os.path.join(SEEDS, seed)) as f:
        text = f.read()
    for old, new in table:
        if old not in text:
            raise AssertionError(f"{seed}: {old!r} is not in the seed any more; update the substitution table")
        text = text.replace(old, new)
    return text


def describe_table(seed, table, added=(), corrections=(), hosts=()):
    def rows(pairs):
        return "\n".join(f"    {old!r:48} -> {new!r}" for old, new in pairs)
    lines = "".join(f"\n    {line}" for line in added)
    return (f"{seed}, substituted:\n{rows(table)}" +
            (f"\ncorrected (the article's typo, the only change that is not a substitution):\n"
             f"{rows(corrections)}" if corrections else "") +
            (f"\nadded at the top:{lines}" if added else "") +
            (f"\nanswered by the lab's dnsmasq:\n{rows(hosts)}" if hosts else ""))


def makemap(tool, *args):
    """Builds a .db map with tool (OUR_MAKEMAP or DEBIAN_MAKEMAP), as root."""
    r = run([tool, *args])
    if r.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)}: exit {r.returncode}\n{r.stderr}")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def mail_spool(folder):
    """The daemon's mbox folder as Debian's /var/mail: root:mail 2775, no mailbox yet."""
    spool = os.path.join(folder, "mbox")
    os.chown(spool, 0, grp.getgrnam("mail").gr_gid)
    os.chmod(spool, 0o2775)


class SystemUser:
    """A system user `pt` + 6 random characters with a home in `folder`
    (mode 0700, its own), and a password if given; removed by remove()."""

    def __init__(self, folder, password=None):
        self.name = "pt" + "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
        self.home = os.path.join(folder, self.name)
        r = run(["useradd", "--no-create-home", "--home-dir", self.home, "--shell", "/usr/sbin/nologin",
                 "--user-group", self.name])
        if r.returncode != 0:
            raise RuntimeError(f"useradd {self.name}: {r.stderr.strip()}")
        try:
            pw = pwd.getpwnam(self.name)
            os.makedirs(self.home)
            os.chown(self.home, pw.pw_uid, pw.pw_gid)
            os.chmod(self.home, 0o700)
            if password:
                r = run(["chpasswd"], input=f"{self.name}:{password}\n")
                if r.returncode != 0:
                    raise RuntimeError(f"chpasswd {self.name}: {r.stderr.strip()}")
        except BaseException:
            self.remove()
            raise

    def remove(self):
        run(["userdel", self.name])
        with contextlib.suppress(KeyError):
            grp.getgrnam(self.name)  # the user's own group, if userdel left it
            run(["groupdel", self.name])
        shutil.rmtree(self.home, ignore_errors=True)


def encrypt(password):
    """A credentials-table hash made by `posternctl encrypt`."""
    r = run([POSTERNCTL, "encrypt", password])
    if r.returncode != 0 or not r.stdout.startswith("$"):
        raise RuntimeError(f"posternctl encrypt: {r.stdout}{r.stderr}")
    return r.stdout.strip()


def token():
    return "".join(random.choices(string.ascii_letters + string.digits, k=16))


# ---- the test base ----

WHY_NOT = netns_missing()


@unittest.skipIf(WHY_NOT, WHY_NOT)
class SeedCase(unittest.TestCase):
    """setUpClass makes the lab and users, starts the services the seed talks
    to, writes the files the seed names and starts the seed's daemon in the
    server namespace. Subclasses set SEED, TABLE (substitutions, may use @IF@
    for the server interface, @DIR@ and the placeholders() of the class),
    ADDED (lines put before the seed's own, for a seed with no `listen`),
    PROBE (where the daemon answers once ready) and prepare_files();
    CORRECTIONS (old, new) pairs mend a seed that no one could run as printed
    (applied after TABLE and printed apart from it), HOSTS (name, address)
    pairs are answered by the lab's dnsmasq."""

    SEED = None
    TABLE = ()
    CORRECTIONS = ()
    ADDED = ()
    HOSTS = ()
    PROBE = (SERVER_IP, 25)
    TAG = "x"   # short: it goes into interface names

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="seeds-")
        os.chmod(cls.folder, 0o755)
        cls.users = []
        cls.lab = None
        cls.d = None
        try:
            cls.lab = Lab(cls.TAG, hosts=cls.HOSTS).__enter__()
            cls.make_users()
            cls.start_services()
            cls.table = [(old, cls.fill(new)) for old, new in cls.TABLE]
            cls.added = [cls.fill(line) for line in cls.ADDED]
            text = "".join(line + "\n" for line in cls.added) + substituted(cls.SEED, cls.table + list(cls.CORRECTIONS))
            cls.d = NetnsDaemon(cls.lab.server_ns, cls.PROBE, text, name=f"seed-{cls.SEED[:3]}",
                                prepare=cls.prepare_files)
            cls.d.__enter__()
        except BaseException:
            sys.stderr.write(describe_table(cls.SEED, getattr(cls, "table", cls.TABLE), cls.ADDED, cls.CORRECTIONS,
                                            cls.HOSTS) + "\n")
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        # Each step runs even when the one before failed.
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, cls.folder, ignore_errors=True)
            for u in cls.users:
                stack.callback(u.remove)
            if cls.lab:
                stack.callback(cls.lab.__exit__, None, None, None)
            stack.callback(cls.stop_services)
            if cls.d:
                stack.callback(cls.d.__exit__, None, None, None)
        cls.d = cls.lab = None

    @classmethod
    def fill(cls, text):
        for name, value in {"@IF@": cls.lab.server_if, **cls.placeholders()}.items():
            text = text.replace(name, value)
        return text

    @classmethod
    def placeholders(cls):
        return {}

    @classmethod
    def make_users(cls):
        pass

    @classmethod
    def start_services(cls):
        pass

    @classmethod
    def stop_services(cls):
        pass

    @classmethod
    def prepare_files(cls, folder):
        pass

    @classmethod
    def user(cls, password=None):
        u = SystemUser(cls.folder, password)
        cls.users.append(u)
        return u

    # ---- what a failure prints ----

    def context(self):
        """The substitution table, the config the daemon ran and its log (and the MX's)."""
        conf = ""
        with contextlib.suppress(OSError):
            with open(self.d.conf_path) as f:
                conf = f.read()
        return (f"\n{describe_table(self.SEED, self.table, self.added, self.CORRECTIONS, self.HOSTS)}\n"
                f"config:\n{conf}\n"
                f"server log (last 40 lines):\n" + "\n".join(self.d.log().splitlines()[-40:]) +
                "\nMX log (last 15 lines):\n" + "\n".join(self.lab.mx.log().splitlines()[-15:]))

    # ---- clients ----

    def smtp(self, port, source=OUTSIDER_IP, server=SERVER_IP, ns=None, starttls=False, hostname=None):
        """smtplib client in the client namespace (or ns), from address source."""
        with inside(ns or self.lab.client_ns):
            s = smtplib.SMTP(timeout=15, source_address=(source, 0) if source else None)
            s._host = server  # what STARTTLS names (SNI); the certificate is not checked
            s.connect(server, port)
        s.ehlo("client.test")
        if starttls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("client.test")
        return s

    def swaks(self, *args, source=OUTSIDER_IP):
        """swaks in the client namespace, from address source: (exit code, transcript)."""
        r = subprocess.run(["ip", "netns", "exec", self.lab.client_ns, SWAKS, "--server", SERVER_IP,
                            "--local-interface", source, "--timeout", "20", *args],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=CMD_TIMEOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def message(self, subject, tag):
        return f"From: sender@client.test\r\nSubject: {subject}\r\n\r\nbody {tag}\r\n"

    def assert_relay_denied(self, port, source=OUTSIDER_IP, starttls=False, rcpt=f"someone@{FAR}"):
        with self.smtp(port, source=source, starttls=starttls) as s:
            self.assertEqual(s.mail("spammer@client.test")[0], 250, self.context())
            code, text = s.rcpt(rcpt)
            self.assertEqual((code, text[:6]), (550, b"5.7.1 "), f"{code} {text!r}" + self.context())

    def assert_relayed(self, tag, user="someone"):
        """The MX of far.test got the message carrying tag, once; its bytes."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        found = []
        while time.monotonic() < deadline:
            found = [m for m in self.lab.mx_mail(user) if tag.encode() in m]
            if found:
                break
            time.sleep(0.1)
        self.assertEqual(len(found), 1, f"message {tag} at far.test's MX" + self.context())
        return found[0]


# ---- 000: outgoing-only server for authenticated users ----

class Seed000OutgoingRelay(SeedCase):
    """000_outgoing_relay.conf ("Simple outgoing-only SMTP server", pre-6.4
    grammar): authenticated users (a secrets table of `smtpctl encrypt`
    hashes) submit on 587 with STARTTLS, from anywhere, and the server relays
    their mail; so does the "incoming" host of the placeholder table; no one
    else relays. `accept from local for any relay` is what lets authenticated
    users relay (before 6.4 they counted as local: issue 9 §3)."""

    SEED = "000_outgoing_relay.conf"
    TAG = "a"
    TABLE = (
        ('"/etc/ssl/private/mail.example.org.key"', '"@DIR@/mail.example.org.key"'),
        ('"/etc/ssl/pem/mail.example.org.pem"', '"@DIR@/mail.example.org.pem"'),
        ("file:/etc/opensmtpd/secrets", "file:@DIR@/secrets"),
        ("eth0", "@IF@"),
        # The article's placeholder for "an IP or network" that may relay.
        ("<INCOMING-IP-OR-NETWORK>", INCOMING_IP),
    )
    PASSWORD = "notif-Pass-9"

    @classmethod
    def prepare_files(cls, folder):
        postern.make_self_signed_pki(os.path.join(folder, "mail.example.org.pem"),
                                     os.path.join(folder, "mail.example.org.key"), "mail.example.org")
        # As the article shows it: `user@domain.tld $(smtpctl encrypt mypassword)`.
        with open(os.path.join(folder, "secrets"), "w") as f:
            f.write(f"notification@example.org {encrypt(cls.PASSWORD)}\n"
                    f"promotions@example.org {encrypt('other-Pass-1')}\n")

    def test_authenticated_user_from_another_address_relays(self):
        # swaks from 192.0.2.2, a host that is not the server's: STARTTLS, AUTH, relay.
        tag = token()
        code, out = self.swaks("--port", "587", "--tls", "--auth", "LOGIN",
                               "--auth-user", "notification@example.org", "--auth-password", self.PASSWORD,
                               "--from", "notification@example.org", "--to", f"someone@{FAR}",
                               "--header", f"Subject: notify {tag}", "--body", f"body {tag}")
        self.assertEqual(code, 0, out + self.context())
        self.assertIn("235 ", out, out)
        data = self.assert_relayed(tag)
        self.assertIn(f"Subject: notify {tag}".encode(), data)
        self.assertIn(f"body {tag}".encode(), data)
        # mask-source: the client's address is not in the server's Received: header.
        self.assertNotIn(f"[{OUTSIDER_IP}]".encode(), data, data)
        self.assertIn(b"ESMTPSA", data, data)

    def test_the_translation_says_so(self):
        # The pre-6.4 rule's warning shows the line that lets authenticated users relay.
        log = self.d.log()
        self.assertIn('    match from local for any action "relay"\n'
                      '    match auth from any for any action "relay"\n', log)
        self.assertIn(f"    match !auth from src {INCOMING_IP} for any action \"relay\"\n", log)

    def test_authenticated_with_plain_over_starttls_too(self):
        tag = token()
        with self.smtp(587, starttls=True) as s:
            s.user, s.password = "promotions@example.org", "other-Pass-1"
            self.assertEqual(s.auth("PLAIN", s.auth_plain)[0], 235)
            self.assertEqual(s.sendmail("promotions@example.org", [f"promo@{FAR}"],
                                        self.message("promo", tag)), {}, self.context())
        self.assert_relayed(tag, user="promo")

    def test_outsider_without_auth_is_refused_relaying(self):
        # The same outside address, no AUTH: port 25 (STARTTLS offered, or not used) ...
        self.assert_relay_denied(25)
        self.assert_relay_denied(25, starttls=True)
        # ... and swaks says the same.
        code, out = self.swaks("--port", "25", "--from", "x@client.test", "--to", f"someone@{FAR}")
        self.assertNotEqual(code, 0, out)
        self.assertIn("550 5.7.1", out, out)

    def test_submission_needs_tls_and_auth(self):
        with self.smtp(587) as s:
            code, _ = s.mail("x@client.test")
            self.assertEqual(code // 100, 5, "MAIL in clear on a tls-require port")
        with self.smtp(587, starttls=True) as s:
            code, _ = s.mail("x@client.test")
            self.assertEqual(code, 530, "MAIL without AUTH on an auth port")
        with self.smtp(587, starttls=True) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("notification@example.org", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)

    def test_incoming_host_relays_without_auth(self):
        # `accept from source <INCOMING-IP-OR-NETWORK>`: that host, no AUTH, port 25.
        tag = token()
        with self.smtp(25, source=INCOMING_IP) as s:
            self.assertEqual(s.sendmail("app@client.test", [f"user@{FAR}"], self.message("app", tag)), {},
                             self.context())
        data = self.assert_relayed(tag, user="user")
        self.assertIn(f"[{INCOMING_IP}]".encode(), data)  # no mask-source on port 25

    def test_the_server_itself_relays(self):
        # `from local`: a connection from the server's own address.
        tag = token()
        with self.smtp(25, source=None, ns=self.lab.server_ns) as s:
            self.assertEqual(s.sendmail("cron@example.org", [f"ops@{FAR}"], self.message("cron", tag)), {},
                             self.context())
        self.assert_relayed(tag, user="ops")


# ---- 001: aliases and virtual users, assembled from the article's snippets ----

class Seed001Assembled(SeedCase):
    """001_assembled.conf (ADMIN 29/2015, its snippets put together): local
    mail, through the aliases table, to the users' mbox; mail for
    example.org from anyone through the virtual users table to the mbox of
    the user it ends at (Listing 2's chain max.muster@ <- max@ <- mm@; its
    catch-all and its forward to another domain left out, so that an unknown
    address is refused). Both maps are built from text as the article says,
    `makemap -t aliases`: aliases by Debian's makemap, virtusers by
    postern-makemap. The seed has no `listen`: one on the server interface
    is added."""

    SEED = "001_assembled.conf"
    TAG = "e"
    ADDED = ("listen on @IF@",)
    TABLE = (
        ("db:/etc/aliases.db", "db:@DIR@/aliases.db"),
        ("db:/etc/virtusers.db", "db:@DIR@/virtusers.db"),
    )

    @classmethod
    def make_users(cls):
        cls.admin = cls.user()
        cls.max = cls.user()

    @classmethod
    def prepare_files(cls, folder):
        write(os.path.join(folder, "aliases"), f"postmaster: {cls.admin.name}\nroot: {cls.admin.name}\n")
        write(os.path.join(folder, "virtusers"),
              f"max.muster@example.org   {cls.max.name}\n"
              "max@example.org          max.muster@example.org\n"
              "mm@example.org           max@example.org\n")
        makemap(DEBIAN_MAKEMAP, "-t", "aliases", os.path.join(folder, "aliases"))
        makemap(OUR_MAKEMAP, "-t", "aliases", os.path.join(folder, "virtusers"))
        mail_spool(folder)

    def assert_mbox(self, user, tags):
        mbox = os.path.join(self.d.mbox_dir, user.name)
        ok = postern.wait_until(lambda: os.path.exists(mbox) and
                                all(f"body {t}".encode() in postern.read_bytes(mbox) for t in tags),
                                DELIVERY_TIMEOUT)
        self.assertTrue(ok, f"{len(tags)} messages in {mbox}" + self.context())
        self.assertEqual(os.stat(mbox).st_uid, pwd.getpwnam(user.name).pw_uid)
        return postern.read_bytes(mbox)

    def test_local_mail_through_aliases_to_mbox(self):
        # `accept for local`: the server's own address, as a local program would.
        tags = {rcpt: token() for rcpt in ("postmaster@localhost", "root@localhost")}
        with self.smtp(25, source=None, ns=self.lab.server_ns) as s:
            for rcpt, tag in tags.items():
                self.assertEqual(s.sendmail("cron@localhost", [rcpt], self.message("local", tag)), {},
                                 self.context())
        self.assert_mbox(self.admin, tags.values())

    def test_virtual_users_of_example_org_to_mbox(self):
        tags = {rcpt: token() for rcpt in ("max.muster@example.org", "max@example.org", "mm@example.org")}
        with self.smtp(25) as s:
            for rcpt, tag in tags.items():
                self.assertEqual(s.sendmail("friend@client.test", [rcpt], self.message("virtual", tag)), {},
                                 self.context())
        data = self.assert_mbox(self.max, tags.values())
        self.assertEqual(data.count(b"\nFrom friend@client.test "), 2, data)  # three messages, mbox-separated
        self.assertTrue(data.startswith(b"From friend@client.test "), data[:80])

    def test_unknown_user_local_alias_and_relay_refused_from_outside(self):
        with self.smtp(25) as s:
            self.assertEqual(s.mail("friend@client.test")[0], 250)
            for rcpt, want in (("nobody@example.org", b"5.1.1 "),       # not in virtusers
                               ("postmaster@localhost", b"5.7.1 "),     # aliases are for local mail
                               (f"someone@{FAR}", b"5.7.1 ")):         # no relaying
                code, text = s.rcpt(rcpt)
                self.assertEqual((code, text[:6]), (550, want), f"{rcpt}: {code} {text!r}" + self.context())


class Seed001WildcardDomains(SeedCase):
    """001_wildcard_domains.conf (ADMIN 29/2015, Listing 3's text): the same
    accounts in many domains. The domains table (a plain text list, as
    written) holds example.org, example.net, example.com and `*.example.*`
    (the article's max@*.example.*); the users map (`makemap -t aliases
    users`, Debian's makemap) sends max to a local user; delivery to mbox.
    The article's moritz line (to moritz@example.com, itself in the domains)
    is left out. The seed has no `listen`: one on the server interface is
    added."""

    SEED = "001_wildcard_domains.conf"
    TAG = "f"
    ADDED = ("listen on @IF@",)
    TABLE = (
        ("db:/etc/users.db", "db:@DIR@/users.db"),
        ("'/etc/domains'", "'@DIR@/domains'"),
    )

    @classmethod
    def make_users(cls):
        cls.max = cls.user()

    @classmethod
    def prepare_files(cls, folder):
        write(os.path.join(folder, "users"), f"max     {cls.max.name}\n")
        write(os.path.join(folder, "domains"), "example.org\nexample.net\nexample.com\n*.example.*\n")
        makemap(DEBIAN_MAKEMAP, "-t", "aliases", os.path.join(folder, "users"))
        mail_spool(folder)

    def test_max_in_every_domain_and_subdomain_to_one_mbox(self):
        tags = {rcpt: token() for rcpt in ("max@example.org", "max@example.net", "max@mail.example.com")}
        with self.smtp(25) as s:
            for rcpt, tag in tags.items():
                self.assertEqual(s.sendmail("friend@client.test", [rcpt], self.message("wild", tag)), {},
                                 self.context())
        mbox = os.path.join(self.d.mbox_dir, self.max.name)
        ok = postern.wait_until(lambda: os.path.exists(mbox) and
                                all(f"body {t}".encode() in postern.read_bytes(mbox) for t in tags.values()),
                                DELIVERY_TIMEOUT)
        self.assertTrue(ok, f"three messages in {mbox}" + self.context())
        self.assertEqual(os.stat(mbox).st_uid, pwd.getpwnam(self.max.name).pw_uid)
        self.assertEqual(sorted(os.listdir(self.d.mbox_dir)), [self.max.name])

    def test_other_domains_and_unknown_users_refused(self):
        with self.smtp(25) as s:
            self.assertEqual(s.mail("friend@client.test")[0], 250)
            for rcpt, want in (("max@example.invalid", b"5.7.1 "),           # not in the domains
                               ("max@example.org.evil.test", b"5.7.1 "),     # nor matched by *.example.*
                               ("nobody@example.net", b"5.1.1 ")):           # not in users
                code, text = s.rcpt(rcpt)
                self.assertEqual((code, text[:6]), (550, want), f"{rcpt}: {code} {text!r}" + self.context())


# ---- 002: receive for example.com over LMTP, submission with auth ----

@unittest.skipIf(dovecot.missing(), dovecot.missing())
class Seed002Submission(SeedCase):
    """002_lmtp_submission.conf ("Running you own mail server I"): mail for
    example.com from anyone goes over LMTP to the mail store (Cyrus in the
    article; here a real Dovecot on a UNIX socket in the test's folder,
    reachable from the server namespace since it is a path), with rcpt-to:
    the store is given the address, and the delivery agent runs as the user
    the virtual table names ("cyrus" there). Submitters authenticated on 587
    (tls-require, a credentials table of `smtpctl encrypt` hashes) send
    anywhere; port 25 relays for no one."""

    SEED = "002_lmtp_submission.conf"
    TAG = "b"
    TABLE = (
        ('"/usr/local/etc/mail/virtuals"', '"@DIR@/virtuals"'),
        ('"/usr/local/etc/mail/submitters"', '"@DIR@/submitters"'),
        ('"/etc/ssl/certs/example_com.crt"', '"@DIR@/example_com.crt"'),
        ('"/etc/ssl/private/example_com.key"', '"@DIR@/example_com.key"'),
        ("if0", "@IF@"),
        ('"/var/run/lmtp"', '"@LMTP@"'),
    )
    PASSWORD = "john-Pass-7"
    ADDRESSES = ("john.doe@example.com", "info@example.com")
    dovecot = None

    @classmethod
    def make_users(cls):
        cls.cyrus = cls.user()

    @classmethod
    def start_services(cls):
        # Dovecot knows the two addresses (rcpt-to), both stored as cyrus.
        pw = pwd.getpwnam(cls.cyrus.name)
        cls.dovecot = dovecot.Dovecot([(a, pw.pw_uid, pw.pw_gid) for a in cls.ADDRESSES],
                                      folder=os.path.join(cls.folder, "dovecot"), tcp=False)
        cls.dovecot.start()

    @classmethod
    def stop_services(cls):
        if cls.dovecot:
            cls.dovecot.stop()

    @classmethod
    def placeholders(cls):
        return {"@LMTP@": cls.dovecot.socket_path}

    def context(self):
        return super().context() + "\nDovecot log (last 15 lines):\n" + "\n".join(
            self.dovecot.log().splitlines()[-15:])

    @classmethod
    def prepare_files(cls, folder):
        postern.make_self_signed_pki(os.path.join(folder, "example_com.crt"),
                                     os.path.join(folder, "example_com.key"), "example.com")
        with open(os.path.join(folder, "virtuals"), "w") as f:
            f.write(f"john.doe@example.com {cls.cyrus.name}\ninfo@example.com {cls.cyrus.name}\n")
        with open(os.path.join(folder, "submitters"), "w") as f:
            f.write(f"john.doe@example.com {encrypt(cls.PASSWORD)}\ninfo@example.com {encrypt('info-Pass-3')}\n")

    def test_receives_for_example_com_from_anyone_over_lmtp(self):
        tags = {rcpt: token() for rcpt in self.ADDRESSES}
        with self.smtp(25, starttls=True) as s:
            for rcpt, tag in tags.items():
                self.assertEqual(s.sendmail("friend@client.test", [rcpt], self.message("hi", tag)), {},
                                 self.context())
        owner = pwd.getpwnam(self.cyrus.name).pw_uid
        sock = re.escape(self.dovecot.socket_path)
        for rcpt, tag in tags.items():
            # In Dovecot's maildir for that address, written by Dovecot.
            found = [p for p in self.d.wait_files(self.dovecot.maildir(rcpt), 1, timeout=DELIVERY_TIMEOUT)
                     if f"body {tag}".encode() in postern.read_bytes(p)]
            self.assertEqual(len(found), 1, f"{rcpt} in Dovecot's maildir" + self.context())
            data = postern.read_bytes(found[0])
            self.assertRegex(data, rb"^Return-Path: <friend@client\.test>\r?\nDelivered-To: " +
                             re.escape(rcpt).encode() + rb"\r?\nReceived: from \S+\r?\n\s+by \S+ with LMTP")
            self.assertIn(b"with ESMTPS", data)  # postern's own Received: line, under Dovecot's
            self.assertEqual(os.stat(found[0]).st_uid, owner, "stored as the virtual user")
            # rcpt-to: Dovecot was given the address, and said so.
            self.assertEqual(len(self.d.wait_log(
                rf"^.* mda delivery evpid=\S+ from=friend@client\.test to={re.escape(rcpt)} "
                rf'user={self.cyrus.name} delay=\S+ result=Ok stat="lmtp: {sock}: 250 2\.0\.0 '
                rf'<{re.escape(rcpt)}> \S+ Saved"$', timeout=DELIVERY_TIMEOUT)), 1, self.context())
        self.assertFalse(os.path.exists(os.path.join(self.cyrus.home, "Maildir")))

    def test_unknown_example_com_user_refused(self):
        with self.smtp(25) as s:
            s.mail("friend@client.test")
            code, _ = s.rcpt("nobody@example.com")
            self.assertEqual(code // 100, 5, self.context())

    def test_submitter_sends_anywhere(self):
        tag = token()
        code, out = self.swaks("--port", "587", "--tls", "--auth", "PLAIN",
                               "--auth-user", "john.doe@example.com", "--auth-password", self.PASSWORD,
                               "--from", "john.doe@example.com", "--to", f"pen.pal@{FAR}",
                               "--header", f"Subject: out {tag}", "--body", f"body {tag}")
        self.assertEqual(code, 0, out + self.context())
        data = self.assert_relayed(tag, user="pen.pal")
        self.assertIn(b"ESMTPSA", data)

    def test_no_relay_on_port_25(self):
        self.assert_relay_denied(25)
        self.assert_relay_denied(25, starttls=True)

    def test_submission_needs_tls_then_auth(self):
        with self.smtp(587) as s:
            self.assertEqual(s.mail("x@client.test")[0] // 100, 5)
        with self.smtp(587, starttls=True) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("john.doe@example.com", "wrong")
            self.assertEqual(s.mail("john.doe@example.com")[0], 530)


# ---- 003: "my first config" ----

class Seed003FirstConfig(SeedCase):
    """003_first_config.conf (Colorado BSD Users Group, "my first config"):
    listens on loopback only; local mail (aliases) to mbox, and the host's
    own mail relayed anywhere. The aliases map is built from text by
    postern-makemap (`makemap -t aliases`); the mbox folder is a root:mail
    2775 folder made here, as Debian's /var/mail, holding no mailbox yet."""

    SEED = "003_first_config.conf"
    TAG = "c"
    PROBE = ("127.0.0.1", 25)
    TABLE = (
        ("lo0", "lo"),
        ("db:/etc/mail/aliases.db", "db:@DIR@/aliases.db"),
    )

    @classmethod
    def make_users(cls):
        cls.alice = cls.user()

    @classmethod
    def prepare_files(cls, folder):
        write(os.path.join(folder, "aliases"), f"root: {cls.alice.name}\npostmaster: {cls.alice.name}\n")
        makemap(OUR_MAKEMAP, "-t", "aliases", os.path.join(folder, "aliases"))
        mail_spool(folder)

    def local(self):
        return self.smtp(25, source=None, server="127.0.0.1", ns=self.lab.server_ns)

    def test_local_mail_and_aliases_to_mbox(self):
        tags = [token(), token()]
        with self.local() as s:
            self.assertEqual(s.sendmail("cron@localhost", [f"{self.alice.name}@localhost"],
                                        self.message("direct", tags[0])), {}, self.context())
            self.assertEqual(s.sendmail("cron@localhost", ["root@localhost"], self.message("alias", tags[1])), {},
                             self.context())
        mbox = os.path.join(self.d.mbox_dir, self.alice.name)
        ok = postern.wait_until(lambda: os.path.exists(mbox) and
                                all(t.encode() in postern.read_bytes(mbox) for t in tags), DELIVERY_TIMEOUT)
        self.assertTrue(ok, f"both messages in {mbox}" + self.context())
        st = os.stat(mbox)
        self.assertEqual(st.st_uid, pwd.getpwnam(self.alice.name).pw_uid)
        self.assertEqual(st.st_mode & 0o777, 0o600)

    def test_own_mail_relayed_anywhere(self):
        tag = token()
        with self.local() as s:
            self.assertEqual(s.sendmail("cron@localhost", [f"admin@{FAR}"], self.message("report", tag)), {},
                             self.context())
        self.assert_relayed(tag, user="admin")

    def test_nothing_listens_outside(self):
        # "listen on lo0": the network cannot even connect.
        with self.assertRaises(ConnectionRefusedError):
            self.smtp(25).close()


# ---- 003: "not not not": everyone but the baddies, expand-only ----

class Seed003Baddies(SeedCase):
    """003_baddies.conf (Colorado BSD Users Group, "Not not not"): mail for
    example.org from any address but those of the <baddies> map (a `makemap
    -t set` list, postern-makemap, holding 192.0.2.3). The rule has no
    delivery clause, so before 6.4 (and here, as expand-only) mail goes only
    where aliases and ~/.forward send it: a user whose .forward names a file
    gets it there, one without a .forward is refused (550 5.2.4). The seed
    has no `listen`: one on the server interface is added."""

    SEED = "003_baddies.conf"
    TAG = "g"
    ADDED = ("listen on @IF@",)
    TABLE = (
        ("db:/etc/mail/bad_ips.db", "db:@DIR@/bad_ips.db"),
    )

    @classmethod
    def make_users(cls):
        cls.fwd = cls.user()
        cls.plain = cls.user()
        cls.saved = os.path.join(cls.fwd.home, "saved")
        forward = os.path.join(cls.fwd.home, ".forward")
        write(forward, f"# keep it in a file\n{cls.saved}\n")
        pw = pwd.getpwnam(cls.fwd.name)
        os.chown(forward, pw.pw_uid, pw.pw_gid)

    @classmethod
    def prepare_files(cls, folder):
        write(os.path.join(folder, "bad_ips"), f"{INCOMING_IP}\n")
        makemap(OUR_MAKEMAP, "-t", "set", os.path.join(folder, "bad_ips"))

    def test_a_listed_address_is_refused(self):
        with self.smtp(25, source=INCOMING_IP) as s:
            self.assertEqual(s.mail("bad@client.test")[0], 250)
            code, text = s.rcpt(f"{self.fwd.name}@example.org")
            self.assertEqual((code, text[:6]), (550, b"5.7.1 "), f"{code} {text!r}" + self.context())

    def test_others_go_where_dot_forward_says(self):
        tag = token()
        with self.smtp(25) as s:
            self.assertEqual(s.sendmail("friend@client.test", [f"{self.fwd.name}@example.org"],
                                        self.message("fwd", tag)), {}, self.context())
        ok = postern.wait_until(lambda: os.path.exists(self.saved) and
                                f"body {tag}".encode() in postern.read_bytes(self.saved), DELIVERY_TIMEOUT)
        self.assertTrue(ok, f"message in {self.saved}" + self.context())
        self.assertTrue(postern.read_bytes(self.saved).startswith(b"From friend@client.test "))
        self.assertEqual(os.stat(self.saved).st_uid, pwd.getpwnam(self.fwd.name).pw_uid)
        self.assertEqual(os.listdir(self.d.mbox_dir), [], "nothing delivered to an mbox")

    def test_a_user_without_dot_forward_is_refused(self):
        with self.smtp(25) as s:
            self.assertEqual(s.mail("friend@client.test")[0], 250)
            code, text = s.rcpt(f"{self.plain.name}@example.org")
            self.assertEqual((code, text[:6]), (550, b"5.2.4 "), f"{code} {text!r}" + self.context())


# ---- 003: "complex examples", prism.mx ----

SOURCE_IP = "192.0.2.4"     # 003_prism's 212.83.129.132: the source of relayed mail, on the server interface
DKIM_SELECTOR = "prism"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # the start of a zstd frame (RFC 8878)
MDA_SCRIPT = """#!/usr/bin/python3
# Stands for the article's /usr/local/bin/prism-mda.py: keeps its arguments
# and what it reads on standard input in OUT, one pair of files a delivery.
import json, os, sys, time
OUT = {out!r}
name = f"{{time.time_ns()}}.{{os.getpid()}}"
data = sys.stdin.buffer.read()
with open(os.path.join(OUT, "tmp-" + name), "wb") as f:
    f.write(data)
with open(os.path.join(OUT, name + ".args"), "w") as f:
    json.dump(sys.argv[1:], f)
os.rename(os.path.join(OUT, "tmp-" + name), os.path.join(OUT, name + ".msg"))
"""


def dkim_missing():
    """Why 003_prism's DKIM hop cannot run here, or None."""
    if not os.access(FILTER_DKIM, os.X_OK):
        return f"needs {FILTER_DKIM} (build it)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import dkim"], capture_output=True, timeout=CMD_TIMEOUT)
    if r.returncode != 0:
        return f"needs Debian's python3-dkim for {SYSTEM_PYTHON}"
    return None


DKIM_WHY_NOT = dkim_missing()


@unittest.skipIf(DKIM_WHY_NOT, DKIM_WHY_NOT)
class Seed003Prism(SeedCase):
    """003_prism.conf (Colorado BSD Users Group, "complex examples"), with
    the one correction the slides need: `deliver to maildmda` (maildir and
    mda run together) becomes `deliver to mda`. Mail for prism.mx from anyone
    (STARTTLS on mx1.prism.mx's listener) goes through the aliases (admin,
    postmaster, root, abuse -> gilles) and the sqlite userbase <userinfo> to
    the mda command, a script standing for prism-mda.py, run as the uid of
    gilles' row with %{user.username} as its argument. Users of the sqlite
    <userauth> table authenticate on mail.prism.mx's submission port (one
    hash from `posternctl encrypt`, one from `openssl passwd -6`); their mail
    for elsewhere goes to the DKIM proxy on 127.0.0.1:10027, which signs it
    and hands it back on port 10028 (tagged DKIM), and the tagged rule relays
    it to far.test's MX from the source address of <sources> with the HELO
    name <names> gives it.

    The proxy the article implies is dkimproxy (dkimproxy.out, listening on
    10027 and relaying to 10028), which Debian 12 does not ship any more: in
    its place runs a second posternd with postern's filter-dkim signing for
    prism.mx, listening on 127.0.0.1:10027 and relaying to 127.0.0.1:10028,
    with an RSA key made here; far.test's copy is checked with python3-dkim.

    The queue is compressed and encrypted with the key of queue.key beside
    the configuration (0600, from `openssl rand -hex 16`, as postern.conf(5)
    says): a message held while delivery is paused leaves none of its text
    readable in the spool. mx1.prism.mx and mail.prism.mx are the server's
    address in the lab's DNS; 212.83.129.132 is a second address of the
    server interface."""

    SEED = "003_prism.conf"
    TAG = "p"
    HOSTS = (("mx1.prism.mx", SERVER_IP), ("mail.prism.mx", SERVER_IP))
    TABLE = (
        ('"/etc/ssl/mx1.prism.mx.crt"', '"@DIR@/mx1.prism.mx.crt"'),
        ('"/etc/ssl/private/mx1.prism.mx.key"', '"@DIR@/mx1.prism.mx.key"'),
        ('"/etc/ssl/mail.prism.mx.crt"', '"@DIR@/mail.prism.mx.crt"'),
        ('"/etc/ssl/private/mail.prism.mx.key"', '"@DIR@/mail.prism.mx.key"'),
        ("sqlite:/etc/mail/prism-sqlite.conf", "sqlite:@DIR@/prism-sqlite.conf"),
        ("lo0", "lo"),
        ("212.83.129.132", SOURCE_IP),
        ('"/usr/local/bin/prism-mda.py ', '"@DIR@/prism-mda.py '),
    )
    CORRECTIONS = (
        ("maildmda", "mda"),
    )
    PASSWORDS = {"gilles@prism.mx": "gilles-Pass-3", "eric@prism.mx": "eric-Pass-8"}
    proxy = None

    @classmethod
    def make_users(cls):
        # The uid, gid and home the userinfo row of gilles gives: the mda runs as them.
        cls.gilles = cls.user()
        cls.outbox = cls.gilles.home

    @classmethod
    def start_services(cls):
        r = run(["ip", "-n", cls.lab.server_ns, "addr", "add", f"{SOURCE_IP}/24", "dev", cls.lab.server_if])
        if r.returncode != 0:
            raise RuntimeError(f"ip addr add {SOURCE_IP}: {r.stderr.strip()}")
        cls.dkim_records = {}

        def prepare(folder):
            filter_path = os.path.join(folder, "filter-dkim")
            shutil.copy(FILTER_DKIM, filter_path)  # the daemon runs it as _postern
            os.chmod(filter_path, 0o755)
            cls.dkim_records[f"{DKIM_SELECTOR}._domainkey.prism.mx"] = make_rsa_key(folder, "dkim.key")

        # The dkimproxy.out of the article: signs what comes in on 10027 and
        # hands it back to the seed's daemon on 10028.
        cls.proxy = NetnsDaemon(
            cls.lab.server_ns, ("127.0.0.1", 10027), name="seed-003-dkimproxy", prepare=prepare,
            config_text=(f'filter "dkim" proc-exec "@DIR@/filter-dkim -d prism.mx -s {DKIM_SELECTOR} '
                         '-k @DIR@/dkim.key"\n'
                         'listen on 127.0.0.1 port 10027 filter "dkim"\n'
                         'action "back" relay host smtp://127.0.0.1:10028\n'
                         'match from local for any action "back"\n'))
        cls.proxy.__enter__()

    @classmethod
    def stop_services(cls):
        if cls.proxy:
            cls.proxy.__exit__(None, None, None)

    @classmethod
    def prepare_files(cls, folder):
        for host in ("mx1.prism.mx", "mail.prism.mx"):
            postern.make_self_signed_pki(os.path.join(folder, f"{host}.crt"), os.path.join(folder, f"{host}.key"),
                                         host)
        # `queue encryption` without a key: queue.key beside the configuration.
        fd = os.open(os.path.join(folder, "queue.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(run(["openssl", "rand", "-hex", "16"]).stdout)
        db = os.path.join(folder, "prism.sqlite")
        pw = pwd.getpwnam(cls.gilles.name)
        with contextlib.closing(sqlite3.connect(db)) as c, c:
            c.execute("CREATE TABLE credentials (username TEXT PRIMARY KEY, password TEXT NOT NULL)")
            c.execute("CREATE TABLE users (name TEXT PRIMARY KEY, uid INTEGER, gid INTEGER, home TEXT)")
            c.execute("INSERT INTO credentials VALUES (?, ?)",
                      ("gilles@prism.mx", encrypt(cls.PASSWORDS["gilles@prism.mx"])))
            c.execute("INSERT INTO credentials VALUES (?, ?)",
                      ("eric@prism.mx", run(["openssl", "passwd", "-6", "-stdin"],
                                            input=cls.PASSWORDS["eric@prism.mx"] + "\n").stdout.strip()))
            c.execute("INSERT INTO users VALUES (?, ?, ?, ?)", ("gilles", pw.pw_uid, pw.pw_gid, cls.gilles.home))
        os.chmod(db, 0o644)
        # As postern-table-sqlite(5) says: the database and one query per service.
        write(os.path.join(folder, "prism-sqlite.conf"),
              f"dbpath {db}\n"
              "query_credentials SELECT username, password FROM credentials WHERE username = ?\n"
              "query_userinfo SELECT uid, gid, home FROM users WHERE name = ?\n")
        write(os.path.join(folder, "prism-mda.py"), MDA_SCRIPT.format(out=cls.outbox), mode=0o755)

    def context(self):
        return super().context() + "\nDKIM proxy log (last 15 lines):\n" + "\n".join(
            self.proxy.log().splitlines()[-15:])

    # ---- helpers ----

    def mda_deliveries(self, tag, count=1):
        """The (arguments, bytes, owner uid) of each delivery by the mda
        script whose message holds tag, once count of them are there."""
        found = []
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            found = []
            for name in sorted(os.listdir(self.outbox)):
                if name.endswith(".msg"):
                    path = os.path.join(self.outbox, name)
                    data = postern.read_bytes(path)
                    if tag.encode() in data:
                        with open(path[:-4] + ".args") as f:
                            found.append((json.load(f), data, os.stat(path).st_uid))
            if len(found) >= count:
                break
            time.sleep(0.1)
        self.assertEqual(len(found), count, f"{count} deliveries of {tag} by the mda" + self.context())
        return found

    def presented_certificate(self, s, host):
        with open(self.d.path(f"{host}.crt")) as f:
            own = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(s.sock.getpeercert(binary_form=True), own, f"the certificate of pki {host}")

    def submit(self, user, rcpt, msg):
        with self.smtp(587, starttls=True) as s:
            self.presented_certificate(s, "mail.prism.mx")
            self.assertEqual(s.login(user, self.PASSWORDS[user])[0], 235)
            self.assertEqual(s.sendmail(user, [rcpt], msg), {}, self.context())

    # ---- the tests ----

    def test_mail_for_prism_mx_through_aliases_and_userbase_to_the_mda(self):
        tags = {rcpt: token() for rcpt in ("admin@prism.mx", "postmaster@prism.mx", "root@prism.mx",
                                           "abuse@prism.mx", "gilles@prism.mx")}
        sent = {}
        with self.smtp(25, starttls=True) as s:
            self.presented_certificate(s, "mx1.prism.mx")
            for rcpt, tag in tags.items():
                sent[rcpt] = self.message(f"to {rcpt}", tag)
                self.assertEqual(s.sendmail("friend@client.test", [rcpt], sent[rcpt]), {}, self.context())
        uid = pwd.getpwnam(self.gilles.name).pw_uid
        for rcpt, tag in tags.items():
            [(args, data, owner)] = self.mda_deliveries(tag)
            self.assertEqual(args, ["gilles"], "%{user.username}: the user the aliases and userbase give")
            self.assertEqual(owner, uid, "run as the uid of gilles' userinfo row")
            self.assertTrue(data.startswith(b"Return-Path: <friend@client.test>\n"), data[:200])
            self.assertRegex(data, rb"\nReceived: from client\.test \(\S* ?\[192\.0\.2\.2\]\)\n\s+by mx1\.prism\.mx "
                             rb"\(postern\) with ESMTPS ")
            self.assertTrue(data.endswith(postern.lf_message(sent[rcpt]).encode()), data)

    def test_unknown_prism_mx_user_is_refused(self):
        with self.smtp(25, starttls=True) as s:
            self.assertEqual(s.mail("friend@client.test")[0], 250)
            code, text = s.rcpt("nobody@prism.mx")
            self.assertEqual((code, text[:6]), (550, b"5.1.1 "), f"{code} {text!r}" + self.context())

    def test_submission_is_signed_by_the_proxy_and_relayed_from_the_source(self):
        tags = {}
        for user in self.PASSWORDS:  # one posternctl encrypt hash, one openssl passwd -6
            tags[user] = token()
            msg = (f"From: {user}\r\nTo: pal@{FAR}\r\nSubject: signed {tags[user]}\r\n"
                   f"Message-ID: <{tags[user]}@prism.mx>\r\n\r\nbody {tags[user]}\r\nlast line\r\n")
            self.submit(user, f"pal@{FAR}", msg)
        for user, tag in tags.items():
            data = self.assert_relayed(tag, user="pal")
            # The proxy's hop, then the tagged listener's, then the MX's.
            self.assertRegex(data, rb"Received: from mx1\.prism\.mx \(\S* ?\[" + SOURCE_IP.encode() + rb"\]\)",
                             "relayed from <sources> with the HELO of <names>")
            self.assertIn(b"\nDKIM-Signature: ", data, data)
            ok, why = dkim_verify(wire_form(data, strip_delivery_headers=True), self.dkim_records)
            self.assertTrue(ok, why + self.context())
            self.assertIn(b"d=prism.mx;", data)
        # The proxy signed them: a changed copy does not verify.
        ok, why = dkim_verify(wire_form(data.replace(b"last line", b"LAST line"), strip_delivery_headers=True),
                              self.dkim_records)
        self.assertFalse(ok, why)

    def test_submission_needs_auth_and_refuses_a_wrong_password(self):
        with self.smtp(587, starttls=True) as s:
            self.assertEqual(s.mail("gilles@prism.mx")[0], 530)
        with self.smtp(587, starttls=True) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("gilles@prism.mx", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)

    def test_outsider_cannot_relay(self):
        self.assert_relay_denied(25)
        self.assert_relay_denied(25, starttls=True)
        # Nor through the DKIM listener: it is on the server's loopback only.
        with self.assertRaises(ConnectionRefusedError):
            self.smtp(10028).close()

    def test_queue_is_compressed_and_encrypted(self):
        tag = token()
        text = f"the secret plans {tag}"
        msg = (f"From: friend@client.test\r\nSubject: held {tag}\r\n\r\n" +
               f"{text}\r\n" * 400)
        postern.posternctl(self.d, "pause", "mda")
        try:
            with self.smtp(25, starttls=True) as s:
                self.assertEqual(s.sendmail("friend@client.test", ["admin@prism.mx"], msg), {}, self.context())
            self.assertTrue(postern.wait_until(lambda: self.d.queue_entries(), 10), self.context())
            files = []
            for root, _dirs, names in os.walk(self.d.spool):
                files += [os.path.join(root, n) for n in names]
            for path in files:
                if os.path.isfile(path):
                    data = postern.read_bytes(path)
                    for clear in (tag, "secret plans", "Subject: held"):
                        self.assertNotIn(clear.encode(), data, f"{path} holds {clear!r} in clear")
            queued = [os.path.join(self.d.queue_dir, e) for e in self.d.queue_entries() if not e.endswith("/")]
            self.assertEqual(len(queued), 1, queued)
            # Compressed before it was encrypted: 400 equal lines take little
            # room, and no zstd frame shows (compression alone leaves one, with
            # no text in clear either).
            self.assertLess(os.path.getsize(queued[0]), len(msg) // 4, "the message is compressed in the spool")
            self.assertNotIn(ZSTD_MAGIC, postern.read_bytes(queued[0]), "a zstd frame in clear: not encrypted")
        finally:
            postern.posternctl(self.d, "resume", "mda")
        [(args, data, _)] = self.mda_deliveries(tag)
        self.assertEqual(args, ["gilles"])
        self.assertTrue(data.endswith(postern.lf_message(msg).encode()), data[-300:])


# ---- 004: ehouse.io ----

class Seed004Ehouse(SeedCase):
    """004_ehouse.conf ("Basic SMTP Email Server"), its queue compressed and
    encrypted with a key from `openssl rand -hex 16` pasted over the
    article's YourKeyHere, as it says to: mail for ehouse.io from anyone, with aliases (a map built by Debian's
    OpenSMTPD makemap), to the users' ~/Maildir; system users authenticated
    (587 tls-require auth, or 25 auth-optional after STARTTLS) and the host
    itself relay anywhere; no one else. `listen on egress` is left as
    written: the server interface holds the namespace's default route."""

    SEED = "004_ehouse.conf"
    TAG = "d"
    TABLE = (
        ('"/etc/ssl/certs/mail.crt"', '"@DIR@/mail.crt"'),
        ('"/etc/ssl/private/mail.key"', '"@DIR@/mail.key"'),
        # The article: "run the command above and paste it over the YourKeyHere text".
        ("YourKeyHere", subprocess.run(["openssl", "rand", "-hex", "16"], capture_output=True, text=True,
                                       check=True).stdout.strip()),
        ("db:/etc/mail/aliases.db", "db:@DIR@/aliases.db"),
    )
    PASSWORD = "ethan-Pass-5"

    @classmethod
    def make_users(cls):
        cls.ethan = cls.user(password=cls.PASSWORD)

    @classmethod
    def prepare_files(cls, folder):
        postern.make_self_signed_pki(os.path.join(folder, "mail.crt"), os.path.join(folder, "mail.key"),
                                     "ehouse.io")
        write(os.path.join(folder, "aliases"), f"postmaster: {cls.ethan.name}\nethan: {cls.ethan.name}\n")
        makemap(DEBIAN_MAKEMAP, "-t", "aliases", os.path.join(folder, "aliases"))

    def test_receives_for_ehouse_io_with_aliases(self):
        tags = {f"{self.ethan.name}@ehouse.io": token(), "postmaster@ehouse.io": token(), "ethan@ehouse.io": token()}
        with self.smtp(25, starttls=True) as s:
            for rcpt, tag in tags.items():
                self.assertEqual(s.sendmail("friend@client.test", [rcpt], self.message("hi", tag)), {},
                                 self.context())
        maildir = os.path.join(self.ethan.home, "Maildir")
        files = self.d.wait_files(maildir, 3, timeout=DELIVERY_TIMEOUT)
        self.assertEqual(len(files), 3, self.context())
        got = b"".join(postern.read_bytes(p) for p in files)
        for tag in tags.values():
            self.assertIn(f"body {tag}".encode(), got)

    def test_system_user_submits_on_587(self):
        tag = token()
        code, out = self.swaks("--port", "587", "--tls", "--auth", "LOGIN",
                               "--auth-user", self.ethan.name, "--auth-password", self.PASSWORD,
                               "--from", "ethan@ehouse.io", "--to", f"friend@{FAR}",
                               "--header", f"Subject: out {tag}", "--body", f"body {tag}")
        self.assertEqual(code, 0, out + self.context())
        self.assert_relayed(tag, user="friend")

    def test_auth_optional_on_25_relays_once_authenticated(self):
        tag = token()
        with self.smtp(25, starttls=True) as s:
            self.assertEqual(s.login(self.ethan.name, self.PASSWORD)[0], 235)
            self.assertEqual(s.sendmail("ethan@ehouse.io", [f"pal@{FAR}"], self.message("via 25", tag)), {},
                             self.context())
        self.assert_relayed(tag, user="pal")

    def test_outsider_is_refused_relaying(self):
        self.assert_relay_denied(25)
        self.assert_relay_denied(25, starttls=True)
        with self.smtp(587, starttls=True) as s:
            self.assertEqual(s.mail("x@client.test")[0], 530)

    def test_the_host_itself_relays(self):
        # "listen on localhost" and the implicit `from local`.
        tag = token()
        with self.smtp(25, source=None, server="127.0.0.1", ns=self.lab.server_ns) as s:
            self.assertEqual(s.sendmail("root@ehouse.io", [f"ops@{FAR}"], self.message("cron", tag)), {},
                             self.context())
        self.assert_relayed(tag, user="ops")


if __name__ == "__main__":
    postern.run_tests()
