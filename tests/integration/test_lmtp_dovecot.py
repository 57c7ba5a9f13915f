"""The lmtp action against Debian's real Dovecot LMTP server.

Dovecot 2.3 (dovecot-core, dovecot-lmtpd) runs in the foreground with a
config written into the test's folder (dovecot.py, shared with
test_seeds.py; see docs/guide-lmtp-dovecot.md for the same set-up on a real
host): LMTP on 127.0.0.1 and on a UNIX socket (mode 0666, so that postern's
delivery agent, running as the recipient, may connect), users in a
passwd-file, mail in TMP/vmail/%n/Maildir. posternd
delivers with `action "d" lmtp "127.0.0.1:PORT"` and with the socket path;
mail sent with smtplib must come out of Dovecot's side: the maildir file
carries the Received: line Dovecot writes ("with LMTP") and the folder its
index files. A user Dovecot does not know (carol) is refused by Dovecot at
RCPT with 550 5.1.1: postern logs that reply for carol alone, delivers the
other recipients, and bounces carol's copy to the sender (through Dovecot
again: the sender is alice).

With rcpt-to, the LMTP recipient is the address after expansion: every
virtual user is the one account vmail, and Dovecot knows them by address.
Dovecot is stopped by its PID at the end.
"""

import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dovecot  # noqa: E402
import postern  # noqa: E402

# uid:gid of each mailbox owner, on both sides (Dovecot's passwd-file and
# postern's userbase); accounts that exist nowhere else on the host.
UIDS = {"alice": 4101, "bob": 4102, "carol": 4103, "vmail": 4104}

# Dovecot's users: alice and bob by name; dave and erin by address, all in
# the account vmail (carol and frank exist only on postern's side).
DOVECOT_USERS = ([(n, UIDS[n], UIDS[n]) for n in ("alice", "bob")] +
                 [(f"{n}@rcpt.test", UIDS["vmail"], UIDS["vmail"]) for n in ("dave", "erin")])
WHY_NOT = dovecot.missing()


def start_dovecot(test):
    d = dovecot.Dovecot(DOVECOT_USERS)
    test.addCleanup(lambda: d.cleanup(keep=bool(os.environ.get("POSTERN_KEEP_TMP"))))
    return d.start()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def prepare(folder):
    write(os.path.join(folder, "vusers"),
          "alice@lmtp.test alice\nbob@lmtp.test bob\ncarol@lmtp.test carol\n"
          "dave@rcpt.test vmail\nerin@rcpt.test vmail\nfrank@rcpt.test vmail\n")
    write(os.path.join(folder, "userbase"),
          "".join(f"{n} {u}:{u}:{folder}/home/{n}\n" for n, u in UIDS.items()))


def config(destination):
    return ('table vusers file:@DIR@/vusers\n'
            'table ubase file:@DIR@/userbase\n'
            f'action "d" lmtp {destination} virtual <vusers> userbase <ubase>\n'
            f'action "r" lmtp {destination} rcpt-to virtual <vusers> userbase <ubase>\n'
            'match from any for domain "lmtp.test" action "d"\n'
            'match from any for domain "rcpt.test" action "r"\n')


def parse(path):
    with open(path, "rb") as f:
        return email.message_from_binary_file(f, policy=email.policy.default)


@unittest.skipIf(WHY_NOT, WHY_NOT)
class LmtpToDovecot(unittest.TestCase):
    def setUp(self):
        self.dovecot = start_dovecot(self)

    def daemon(self, destination, name):
        d = postern.Daemon(config(destination), name=name, prepare=prepare)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def send(self, d, sender, rcpts, subject):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example", timeout=10) as s:
            refused = s.sendmail(sender, rcpts, f"Subject: {subject}\r\nMessage-ID: <{subject}@client.example>\r\n"
                                                f"\r\nhello from {subject}\r\n")
            self.assertEqual(refused, {})

    def delivered(self, d, name, n=1):
        """The files Dovecot wrote into NAME's maildir (at least n), once there are n."""
        maildir = self.dovecot.maildir(name)
        files = d.wait_files(maildir, n, timeout=20)
        self.assertEqual(len(files), n, f"{name}: {files}\n{d.log()}\n{self.dovecot.log()}")
        return maildir, files

    def check_dovecot_wrote(self, maildir, path, sender, subject, tcp=True):
        msg = parse(path)
        self.assertEqual(msg["Subject"], subject)
        self.assertEqual(msg["Return-Path"], f"<{sender}>")
        # Dovecot's own trace line, on top of postern's.
        received = msg.get_all("Received")
        self.assertRegex(received[0], r"^from \S+ \(\[127\.0\.0\.1\]\)\s+by \S+ with LMTP\s+id \S+" if tcp else
                         r"^from \S+\s+by \S+ with LMTP\s+id \S+")
        self.assertIn("with ESMTP", received[1])  # postern's, from the smtplib session
        # Files only Dovecot makes, next to the message.
        # Dovecot may update them a moment after the message file appears.
        uidlist = os.path.join(maildir, "dovecot-uidlist")
        name = os.path.basename(path).split(":")[0]

        def listed():
            try:
                with open(uidlist) as f:
                    return name in f.read()
            except OSError:
                return False
        self.assertTrue(postern.wait_until(listed, 10), os.listdir(maildir))
        self.assertTrue(os.path.exists(os.path.join(maildir, "dovecot.index.log")), os.listdir(maildir))

    def run_unknown_user(self, d, via):
        """alice and bob get the message through Dovecot; carol, unknown to
        Dovecot, is refused there and bounces to alice."""
        self.send(d, "alice@lmtp.test", ["bob@lmtp.test", "carol@lmtp.test", "alice@lmtp.test"], f"hello-{via}")
        maildir, files = self.delivered(d, "bob")
        self.check_dovecot_wrote(maildir, files[0], "alice@lmtp.test", f"hello-{via}", tcp=via.startswith("127."))
        self.assertEqual(os.stat(files[0]).st_uid, UIDS["bob"])
        # Each recipient's own result in postern's log: Dovecot's reply, for carol alone a refusal.
        for name, result, reply in (("bob", "Ok", r"250 2\.0\.0 <bob> \S+ Saved"),
                                    ("alice", "Ok", r"250 2\.0\.0 <alice> \S+ Saved"),
                                    ("carol", "PermFail", r"550 5\.1\.1 <carol> User doesn't exist: carol")):
            pattern = (rf"^.* mda delivery evpid=\S+ from=alice@lmtp\.test to={name}@lmtp\.test user={name} "
                       rf'delay=\S+ result={result} stat="lmtp: {re.escape(via)}: {reply}"$')
            self.assertEqual(len(d.wait_log(pattern, timeout=20)), 1, d.log())
        self.assertEqual(len(re.findall(r"mda delivery .* from=alice@lmtp\.test .*result=", d.log())), 3, d.log())
        # carol's bounce, from <>, to alice through Dovecot too.
        self.assertEqual(len(d.wait_log(r'^.* mda delivery evpid=\S+ from="" to=alice@lmtp\.test user=alice '
                                        r'delay=\S+ result=Ok stat="lmtp: .*: 250 2\.0\.0 <alice> \S+ Saved"$',
                                        timeout=20)), 1, d.log())
        # alice: her copy and carol's bounce, both filed by Dovecot.
        maildir, files = self.delivered(d, "alice", 2)
        msgs = [parse(f) for f in files]
        original = [m for m in msgs if m["Subject"] == f"hello-{via}"]
        reports = [m for m in msgs if m.get_content_type() == "multipart/report"]
        self.assertEqual((len(original), len(reports)), (1, 1), [m["Subject"] for m in msgs])
        status = reports[0].get_payload()[1]
        self.assertEqual(status.get_content_type(), "message/delivery-status")
        text = status.as_string()
        self.assertIn("Final-Recipient: rfc822; carol@lmtp.test", text)
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("550 5.1.1 <carol> User doesn't exist: carol", text)
        self.assertFalse(os.path.exists(self.dovecot.maildir("carol")))
        self.assertTrue(d.wait_queue_empty(20), d.queue_entries())
        # Dovecot saw each delivery.
        log = self.dovecot.log()
        self.assertRegex(log, r"lmtp\(bob\).*saved mail to INBOX")
        self.assertRegex(log, r"lmtp\(alice\).*saved mail to INBOX")

    def test_tcp(self):
        d = self.daemon(f'"127.0.0.1:{self.dovecot.port}"', "lmtp-tcp")
        self.run_unknown_user(d, "127.0.0.1 [127.0.0.1]")

    def test_unix_socket(self):
        d = self.daemon(f'"{self.dovecot.socket_path}"', "lmtp-unix")
        self.run_unknown_user(d, self.dovecot.socket_path)

    def test_unquoted_host_and_port(self):
        d = self.daemon(f"127.0.0.1:{self.dovecot.port}", "lmtp-bare")
        self.send(d, "alice@lmtp.test", ["bob@lmtp.test"], "bare")
        maildir, files = self.delivered(d, "bob")
        self.check_dovecot_wrote(maildir, files[0], "alice@lmtp.test", "bare")

    # With rcpt-to the LMTP recipient is the address; the three share the
    # account vmail, so they go in one transaction.
    def test_rcpt_to_sends_the_address_in_one_transaction(self):
        d = self.daemon(f'"{self.dovecot.socket_path}"', "lmtp-rcpt-to")
        self.send(d, "alice@lmtp.test", ["dave@rcpt.test", "erin@rcpt.test", "frank@rcpt.test"], "rcpt-to")
        for name in ("dave", "erin"):
            maildir, files = self.delivered(d, name)
            self.check_dovecot_wrote(maildir, files[0], "alice@lmtp.test", "rcpt-to", tcp=False)
            self.assertEqual(os.stat(files[0]).st_uid, UIDS["vmail"])
        found = d.wait_log(r"^.*frank@rcpt\.test.*User doesn't exist: frank@rcpt\.test.*$", timeout=20)
        self.assertTrue(found, d.log())
        # One LMTP session for the three (Dovecot names it; frank's bounce to
        # alice comes later, in a session of its own).
        log = self.dovecot.log()
        sessions = re.findall(r"lmtp\((?:dave|erin)@rcpt\.test\)<\d+><([^>:]+)[^>]*>: Info: "
                              r"msgid=<rcpt-to@client\.example>: saved mail", log)
        self.assertEqual(len(sessions), 2, log)
        self.assertEqual(len(set(sessions)), 1, log)


def encode_frame(fields):
    """util/frame.hpp: a netstring of netstrings (ASCII fields here)."""
    inner = "".join(f"{len(f.encode())}:{f}," for f in fields)
    return f"{len(inner.encode())}:{inner},"


def decode_frames(data):
    """util/frame.hpp: each frame a netstring of netstrings."""
    def netstring(buf, at):
        colon = buf.index(b":", at)
        n = int(buf[at:colon])
        end = colon + 1 + n
        assert buf[end:end + 1] == b",", buf
        return buf[colon + 1:end], end + 1
    frames, at = [], 0
    while at < len(data):
        body, at = netstring(data, at)
        fields, i = [], 0
        while i < len(body):
            field, i = netstring(body, i)
            fields.append(field.decode())
        frames.append(fields)
    return frames


@unittest.skipIf(WHY_NOT, WHY_NOT)
class AgentToDovecot(unittest.TestCase):
    """The delivery agent as the daemon starts it for one account's batch,
    given rcpt-to directly: two messages, the first to three recipients that
    share the account vmail, the second to one. Dovecot sees one connection,
    one transaction per message (RSET between them), a reply per recipient."""

    def setUp(self):
        self.dovecot = start_dovecot(self)
        self.dir = tempfile.mkdtemp(prefix="lmtp-agent-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def message(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return os.open(path, os.O_RDONLY)

    def test_one_transaction_per_message_and_a_result_per_recipient(self):
        sock = self.dovecot.socket_path
        m1 = "Subject: first\nMessage-ID: <first@client.example>\n\nfirst\n"
        m2 = "Subject: second\nMessage-ID: <second@client.example>\n\nsecond\n"
        deliveries = [("m1", m1, "dave@rcpt.test"), ("m1", m1, "erin@rcpt.test"), ("m1", m1, "frank@rcpt.test"),
                      ("m2", m2, "dave@rcpt.test")]
        fds = [self.message(f"{i}-{msgid}", text) for i, (msgid, text, _) in enumerate(deliveries)]
        rd, wr = os.pipe()
        args = [os.path.join(postern.BUILD_DIR, "postern-local"),
                "--plugin-dir", os.path.join(postern.BUILD_DIR, "plugins"), "--method", "lmtp",
                "--user", "vmail", "--home", "/nonexistent", "--options", "rcpt-to",
                "--as", f"{UIDS['vmail']}:{UIDS['vmail']}", "--result-fd", str(wr)]
        # The envelopes go on --batch-fd (core/delivery/agent_batch.hpp), never in argv.
        fields = ["first-batch"]
        for fd, (msgid, _, dest) in zip(fds, deliveries):
            fields += [str(fd), "0", "alice@lmtp.test", dest, dest, sock, msgid, "", ""]
        batch = self.message("batch", encode_frame(fields))
        args += ["--batch-fd", str(batch)]
        proc = subprocess.run(args, pass_fds=fds + [wr, batch], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60)
        os.close(wr)
        os.close(batch)
        for fd in fds:
            os.close(fd)
        with os.fdopen(rd, "rb") as f:
            frames = decode_frames(f.read())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = {int(fr[0]): fr for fr in frames}
        self.assertEqual(sorted(got), [0, 1, 2, 3], frames)
        for i, name in ((0, "dave@rcpt.test"), (1, "erin@rcpt.test"), (3, "dave@rcpt.test")):
            self.assertEqual(got[i][1], "ok", got[i])
            self.assertRegex(got[i][2], rf"^lmtp: {re.escape(sock)}: 250 2\.0\.0 <{re.escape(name)}> \S+ Saved$")
        self.assertEqual(got[2][1:3], ["perm", f"lmtp: {sock}: 550 5.1.1 <frank@rcpt.test> User doesn't exist: "
                                               f"frank@rcpt.test"])
        # The typed fields: enhanced code, no host name (a socket), the code and the reply, no DSN handed on.
        self.assertEqual(got[2][3:], ["5.1.1", "", "", "550", "5.1.1 <frank@rcpt.test> User doesn't exist: "
                                                               "frank@rcpt.test", "0"])
        self.assertEqual(got[0][3:7], ["2.0.0", "", "", "250"])
        # In the maildirs: dave has both messages, erin the first, frank nothing.
        dave = self.dovecot.maildir("dave")
        erin = self.dovecot.maildir("erin")
        subjects = sorted(parse(os.path.join(dave, "new", f))["Subject"] for f in os.listdir(os.path.join(dave, "new")))
        self.assertEqual(subjects, ["first", "second"])
        self.assertEqual([parse(os.path.join(erin, "new", f))["Subject"] for f in os.listdir(os.path.join(erin, "new"))],
                         ["first"])
        self.assertFalse(os.path.exists(self.dovecot.maildir("frank")))
        # One connection for the batch: one "Connect from local" in Dovecot's log.
        log = self.dovecot.log()
        self.assertEqual(len(re.findall(r"lmtp\(\d+\): Info: Connect from local", log)), 1, log)
        self.assertEqual(len(re.findall(r"saved mail to INBOX", log)), 3, log)


if __name__ == "__main__":
    postern.run_tests()
