"""TLS and authenticated submission with the real daemon and real clients.

Certificates are made with the `openssl` command in the test's folder: a CA,
a server certificate for mail.test, a client certificate signed by the CA and
a self-signed one. Listeners: STARTTLS on one port, submission with
tls-require + auth + senders on another, implicit TLS (smtps) with auth, and
tls-require verify (client certificates checked against the CA).
"""

import grp
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

POSTERNCTL = os.path.join(postern.BUILD_DIR, "posternctl")
# `smtpctl encrypt testpass` from Debian 12's OpenSMTPD: hashes made by the
# tool our users come from must work as they are.
SYSTEM_USER = "pstn-authtest"
SYSTEM_PASSWORD = "Sys-Pass-42"
SMTPCTL_HASH = ("$6$BEdlrMBHmt6UUO9y$s0HJPs53.LpoxTA8RCf3zew167aMg/2HfMixBhO61RermayYgPsGzWXHaWuK8tfkRQOc"
                "/RdD7E5bkxFM3H.uW0")


def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def make_certificates(folder):
    openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=postern test CA")
    for name, cn in (("server", "mail.test"), ("client", "alice client")):
        openssl(folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        with open(os.path.join(folder, f"{name}.ext"), "w") as f:
            f.write("subjectAltName=DNS:mail.test\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue")
    for f in os.listdir(folder):
        os.chmod(os.path.join(folder, f), 0o644)


@unittest.skipUnless(os.geteuid() == 0, "needs root: a system account, delivery as root")
class TlsAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ports = {name: postern.free_port()
                     for name in ("starttls", "submission", "smtps", "verify", "system", "named")}
        # A system account for `auth` without a table (checked by the root
        # parent against the shadow database); removed in tearDownClass.
        subprocess.run(["userdel", SYSTEM_USER], capture_output=True)  # left over by an interrupted run
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True, capture_output=True)
        subprocess.run(["chpasswd"], input=f"{SYSTEM_USER}:{SYSTEM_PASSWORD}\n", text=True, check=True)
        bob_hash = subprocess.run([POSTERNCTL, "encrypt", "bobpass"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        assert bob_hash.startswith("$6$"), bob_hash

        def prepare(folder):
            make_certificates(folder)
            with open(os.path.join(folder, "creds"), "w") as f:
                f.write(f"bob {bob_hash}\nalice {SMTPCTL_HASH}\n")
            with open(os.path.join(folder, "senders"), "w") as f:
                f.write("bob bob@mail.test, @bob.example\nalice alice@mail.test\n")
            with open(os.path.join(folder, "names"), "w") as f:
                f.write("127.0.0.1 banner.test\n")
            # Kept as admins keep /etc/mail/secrets: root's alone, or root's
            # and readable by the daemon's group.
            os.chmod(os.path.join(folder, "creds"), 0o600)
            os.chown(os.path.join(folder, "senders"), 0, grp.getgrnam("_postern").gr_gid)
            os.chmod(os.path.join(folder, "senders"), 0o640)

        p = cls.ports
        config = (
            'pki mail.test cert "@DIR@/server.crt"\n'
            'pki mail.test key "@DIR@/server.key"\n'
            'ca clients cert "@DIR@/ca.crt"\n'
            'table creds file:@DIR@/creds\n'
            'table senders file:@DIR@/senders\n'
            'table names file:@DIR@/names\n'
            f'listen on 127.0.0.1 port {p["starttls"]} tls hostname mail.test\n'
            f'listen on 127.0.0.1 port {p["submission"]} tls-require hostname mail.test auth <creds> '
            'senders <senders> masquerade received-auth\n'
            f'listen on 127.0.0.1 port {p["smtps"]} smtps hostname mail.test auth <creds>\n'
            f'listen on 127.0.0.1 port {p["verify"]} tls-require verify ca clients hostname mail.test\n'
            f'listen on 127.0.0.1 port {p["system"]} tls hostname mail.test auth\n'
            f'listen on 127.0.0.1 port {p["named"]} hostnames <names>\n'
            'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
            'action "out" maildir "@DIR@/outbound/%{rcpt.domain}" user root\n'
            'match from any for domain "mail.test" action "local"\n'
            'match auth from any for any action "out"\n')
        cls.d = postern.Daemon(config, name="tls", prepare=prepare)
        cls.d.__enter__()
        cls.ca = cls.d.path("ca.crt")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        subprocess.run(["userdel", SYSTEM_USER], capture_output=True)

    def context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = True
        if cert:
            ctx.load_cert_chain(self.d.path(f"{cert}.crt"), self.d.path(f"{cert}.key"))
        return ctx

    def smtp(self, port, tls=True, cert=None):
        s = smtplib.SMTP(timeout=10)
        s._host = "mail.test"  # the name checked against the certificate (SNI)
        s.connect("127.0.0.1", port)
        s.ehlo("client.test")
        if tls:
            s.starttls(context=self.context(cert))
            s.ehlo("client.test")
        return s

    def test_starttls_delivers_and_records_tls(self):
        with self.smtp(self.ports["starttls"]) as s:
            self.assertGreaterEqual(s.sock.version(), "TLSv1.2")
            self.assertNotIn("starttls", s.esmtp_features)  # gone once TLS is up
            self.assertEqual(s.sendmail("a@client.test", ["carol@mail.test"], "Subject: tls\r\n\r\nhi\r\n"), {})
        files = self.d.wait_files(self.d.path("mail", "carol"), 1)
        data = postern.read_bytes(files[0]).decode()
        self.assertRegex(data, r"with ESMTPS id \S+\n\t\(TLSv1\.[23]:[A-Z0-9_-]+:\d+\)\n\tfor <carol@mail.test>;")

    def test_swaks_starttls_and_implicit_tls(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.ports["starttls"]), "--tls",
                            "--to", "dave@mail.test", "--from", "a@client.test"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.ports["smtps"]), "--tlsc",
                            "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bobpass",
                            "--to", "erin@mail.test", "--from", "bob@mail.test"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "dave"), 1)), 1)
        self.assertEqual(len(self.d.wait_files(self.d.path("mail", "erin"), 1)), 1)

    def test_tls_require_refuses_mail_in_clear(self):
        with self.smtp(self.ports["submission"], tls=False) as s:
            self.assertNotIn("auth", s.esmtp_features)  # never offered in clear
            code, text = s.mail("bob@mail.test")
            self.assertEqual((code, text[:6]), (530, b"5.7.0 "))

    def test_starttls_injection_is_not_executed(self):
        raw = socket.create_connection(("127.0.0.1", self.ports["starttls"]), timeout=10)
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO client.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        # The injected MAIL rides in the same packet as STARTTLS.
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@client.test>\r\n")
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        tls = self.context().wrap_socket(raw, server_hostname="mail.test")
        g = tls.makefile("rb")
        tls.sendall(b"EHLO client.test\r\n")
        while not g.readline().startswith(b"250 "):
            pass
        tls.sendall(b"RCPT TO:<carol@mail.test>\r\n")
        self.assertTrue(g.readline().startswith(b"503 5.5.1"), "the injected MAIL FROM was executed")
        tls.sendall(b"QUIT\r\n")
        tls.close()
        self.assertTrue(self.d.wait_log(r"smtp starttls-discarded bytes=30\b"), self.d.log())

    def test_auth_plain_and_login_with_both_hash_makers(self):
        with self.smtp(self.ports["submission"]) as s:
            self.assertEqual(sorted(s.esmtp_features["auth"].split()), ["LOGIN", "PLAIN"])
            s.user, s.password = "bob", "bobpass"
            self.assertEqual(s.auth("PLAIN", s.auth_plain)[0], 235)
        with self.smtp(self.ports["submission"]) as s:
            s.user, s.password = "alice", "testpass"  # hash made by OpenSMTPD's smtpctl encrypt
            self.assertEqual(s.auth("LOGIN", s.auth_login)[0], 235)

    def test_system_accounts_without_a_table(self):
        with self.smtp(self.ports["system"]) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login(SYSTEM_USER, "not the password")
            self.assertEqual(s.login(SYSTEM_USER, SYSTEM_PASSWORD)[0], 235)
        with self.smtp(self.ports["system"]) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("no-such-user-here", "x")

    def test_wrong_password_refused(self):
        with self.smtp(self.ports["submission"]) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("bob", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)
            self.assertTrue(e.exception.smtp_error.startswith(b"5.7.8"), e.exception.smtp_error)
            code, _ = s.mail("bob@mail.test")
            self.assertEqual(code, 530)  # still not authenticated

    def test_relay_only_when_authenticated(self):
        with self.smtp(self.ports["starttls"]) as s:
            s.mail("bob@mail.test")
            code, text = s.rcpt("someone@far.example")
            self.assertEqual((code, text[:6]), (550, b"5.7.1 "))
        with self.smtp(self.ports["submission"]) as s:
            s.login("bob", "bobpass")
            self.assertEqual(s.sendmail("bob@mail.test", ["someone@far.example"], "Subject: out\r\n\r\nx\r\n"), {})
        files = self.d.wait_files(self.d.path("outbound", "far.example"), 1)
        data = postern.read_bytes(files[0]).decode()
        self.assertIn("with ESMTPSA", data)
        self.assertIn("(authenticated as bob)", data)

    def test_senders_table(self):
        with self.smtp(self.ports["submission"]) as s:
            s.login("bob", "bobpass")
            code, text = s.mail("alice@mail.test")
            self.assertEqual((code, text[:6]), (553, b"5.7.1 "))
            self.assertEqual(s.mail("anything@bob.example")[0], 250)

    def test_masquerade_rewrites_from(self):
        with self.smtp(self.ports["submission"]) as s:
            s.login("bob", "bobpass")
            msg = "From: Bobby Tables <root@elsewhere.example>\r\nSubject: masked\r\n\r\nx\r\n"
            self.assertEqual(s.sendmail("bob@mail.test", ["frank@mail.test"], msg), {})
        data = postern.read_bytes(self.d.wait_files(self.d.path("mail", "frank"), 1)[0]).decode()
        self.assertIn("\nFrom: Bobby Tables <bob@mail.test>\nSubject: masked\n", data)
        self.assertNotIn("elsewhere.example", data)

    def test_hostnames_table_names_the_banner(self):
        with postern.RawClient(self.ports["named"]) as c:
            self.assertEqual(c.banner, (220, ["banner.test ESMTP postern"]))

    def test_n_reports_bad_pki_files(self):
        bad = self.d.path("bad.conf")
        with open(bad, "w") as f:
            f.write(f'pki mail.test cert "{self.d.path("server.crt")}"\n'
                    f'pki mail.test key "{self.d.path("rogue.key")}"\n'
                    f'pki other cert "{self.d.path("missing.crt")}"\n'
                    f'pki other key "{self.d.path("server.key")}"\n'
                    'listen on 127.0.0.1 port 2 tls pki mail.test\n'
                    'action "l" maildir\nmatch for local action "l"\n')
        r = subprocess.run([postern.POSTERND, "-n", "-f", bad], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"{bad}:1:1: pki mail.test: {self.d.path('rogue.key')}: key does not match the certificate "
                      f"{self.d.path('server.crt')}", r.stderr)
        self.assertIn(f"pki other: {self.d.path('missing.crt')}: cannot read", r.stderr)

    def test_client_certificate_required_and_checked(self):
        with self.smtp(self.ports["verify"], cert="client") as s:
            self.assertEqual(s.mail("a@client.test")[0], 250)
        for cert in (None, "rogue"):
            with self.assertRaises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
                with self.smtp(self.ports["verify"], cert=cert) as s:
                    s.mail("a@client.test")
        self.assertTrue(self.d.wait_log(r"smtp cert-check result=verified subject=\"?CN ?= ?alice client"), self.d.log())

    def test_old_protocols_refused(self):
        ctx = self.context()
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            s = smtplib.SMTP("127.0.0.1", self.ports["starttls"], timeout=10)
            s.ehlo("client.test")
            s.starttls(context=ctx)


if __name__ == "__main__":
    postern.run_tests()
