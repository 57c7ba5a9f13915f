"""The `mda "COMMAND"` action end to end, through the real daemon.

- exit 0: the command got the message (its output file holds exactly the
  Return-Path and Delivered-To lines and what the client sent);
- exit 75: the message stays queued and the log says the failure is
  temporary, with the first line the command wrote on stderr;
- exit 67 (EX_NOUSER): the delivery fails for good and the sender gets a
  report whose Status is 5.1.1 and whose Diagnostic-Code quotes that first
  line (not the second);
- envelope senders full of shell syntax, the CVE-2020-7247 kind, delivered
  through a command that puts %{sender.user} into a file name and through a
  plain `tee FILE`: the message arrives, and nothing in the sender ran (the
  marker files the senders would touch do not exist);
- `mda wrapper`, when the config grammar has it: the command runs inside the
  wrapper.
"""

import email
import email.policy
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

ACTIONS = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
           'action "ok" mda "/bin/cat > @DIR@/out/ok-%{sender.user}" user root\n'
           'action "tee" mda "/usr/bin/tee @DIR@/out/tee" user root\n'
           'action "temp" mda "echo \'mailbox busy, try later\' >&2; echo second >&2; exit 75" user root\n'
           'action "nouser" mda "cat >/dev/null; echo \'no such user: bob\' >&2; '
           'echo \'usage: deliver [-f sender]\' >&2; exit 67" user root\n')
MATCHES = ('match from local for rcpt-to "ok@localhost" action "ok"\n'
           'match from local for rcpt-to "tee@localhost" action "tee"\n'
           'match from local for rcpt-to "temp@localhost" action "temp"\n'
           'match from local for rcpt-to "nouser@localhost" action "nouser"\n'
           'match from local for local action "l"\n')

WRAPPER = ('mda wrapper "w" "/usr/bin/env WRAPPED=yes %{mda}"\n'
           'action "wrapped" mda "env > @DIR@/out/wrapped-%{rcpt.user}" wrapper "w" user root\n'
           'match from local for rcpt-to "wrapped@localhost" action "wrapped"\n')

BODY = "Subject: via mda\r\nX-Trace: t1\r\n\r\nline one\r\n..dot line\r\n"


def inert(value):
    """An envelope value as a %{...} gives it: every byte but letters, digits
    and @ . _ + - = becomes ':', and so does a leading '.'."""
    out = "".join(c if (c.isascii() and c.isalnum()) or c in "@._+-=" else ":" for c in value)
    return ":" + out[1:] if out.startswith(".") else out


def send(d, sender, rcpt, body=BODY):
    """One message over SMTP; returns its queue id."""
    with d.client() as c:
        assert c.cmd("EHLO client.example").startswith("250")
        reply = c.cmd(f"MAIL FROM:<{sender}>")
        assert reply.startswith("250"), reply
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        assert reply.startswith("250"), reply
        assert c.cmd("DATA").startswith("354")
        c.send(body.encode() + b".\r\n")
        reply = c.reply_line()
        assert reply.startswith("250 2.0.0 "), reply
        c.cmd("QUIT")
        return reply.split()[2]


def make_out(folder):
    os.mkdir(os.path.join(folder, "out"), 0o755)


def wrapper_supported():
    """Whether this build's config grammar takes `mda wrapper` yet."""
    conf = "mda wrapper \"w\" \"x %{mda}\"\naction \"a\" mda \"y\" wrapper \"w\"\nmatch from local action \"a\"\n"
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(conf)
        f.flush()
        r = subprocess.run([postern.POSTERND, "-n", "-f", f.name], capture_output=True, text=True, timeout=20)
    return r.returncode == 0


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon delivers as the recipient")
class Mda(unittest.TestCase):
    def setUp(self):
        self.d = postern.Daemon(ACTIONS + MATCHES, name="mda", prepare=make_out).__enter__()

    def tearDown(self):
        self.d.__exit__(*sys.exc_info())

    def delivered(self, path, sender, rcpt):
        self.assertTrue(postern.wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 10),
                        self.d.log())
        self.assertTrue(self.d.wait_log(rf"mda delivery .*to={re.escape(rcpt)} .*result=Ok"), self.d.log())
        data = postern.read_bytes(path).decode()
        prefix = f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n"
        self.assertTrue(data.startswith(prefix), data[:300])
        # Then our Received: header, then the message as sent (LF, unstuffed).
        self.assertTrue(data.endswith(postern.lf_message(BODY)), data)
        self.assertIn("\nReceived: ", "\n" + data[len(prefix):])
        return data

    def test_exit_0_delivers_what_the_command_wrote(self):
        send(self.d, "alice@example.org", "ok@localhost")
        self.delivered(self.d.path("out", "ok-alice"), "alice@example.org", "ok@localhost")
        self.assertTrue(self.d.wait_queue_empty(timeout=10), self.d.queue_entries())

    def test_exit_75_defers(self):
        msgid = send(self.d, "alice@example.org", "temp@localhost")
        self.assertTrue(self.d.wait_log(r"mda delivery .*to=temp@localhost .*result=TempFail "
                                        r".*mda: command exited 75: mailbox busy, try later"), self.d.log())
        self.assertNotRegex(self.d.log(), r"result=TempFail .*second")
        entries = postern.queue(self.d)
        self.assertEqual(len(entries), 1, entries)
        self.assertIn(msgid, str(entries[0]))
        self.assertEqual(postern.maildir_new(self.d.path("mail", "alice")), [])  # no report: it is not over

    def test_exit_67_bounces_with_5_1_1_and_the_first_stderr_line(self):
        send(self.d, "alice@localhost", "nouser@localhost")
        files = self.d.wait_files(self.d.path("mail", "alice"), 1, timeout=30)
        self.assertEqual(len(files), 1, self.d.log())
        self.assertTrue(self.d.wait_log(r"mda delivery .*to=nouser@localhost .*result=PermFail"), self.d.log())
        with open(files[0], "rb") as f:
            report = email.message_from_binary_file(f, policy=email.policy.default)
        self.assertEqual(report["Return-Path"], "<>")
        self.assertEqual(report.get_content_type(), "multipart/report")
        status = report.get_payload()[1]
        self.assertEqual(status.get_content_type(), "message/delivery-status")
        group = status.get_payload()[1]
        self.assertEqual(group["Final-Recipient"], "rfc822; nouser@localhost")
        self.assertEqual(group["Action"], "failed")
        self.assertEqual(group["Status"], "5.1.1")
        diag = " ".join(group["Diagnostic-Code"].split())
        self.assertIn("mda: command exited 67: no such user: bob", diag)
        self.assertNotIn("usage", diag)
        self.assertIn("no such user: bob", report.get_payload()[0].get_content())
        self.assertTrue(self.d.wait_queue_empty(timeout=10), self.d.queue_entries())

    def test_shell_syntax_in_the_sender_never_runs(self):
        markers = [self.d.path(f"pwned{i}") for i in range(4)]
        senders = [
            f'"$(touch {markers[0]})"@example.org',          # a quoted local part, CVE-2020-7247's shape
            f"`touch${{IFS}}{markers[1]}`@example.org",       # backquotes are atext: a plain dot-atom
            f'";touch {markers[2]};"@example.org',
            f"a|touch${{IFS}}{markers[3]}|x@example.org",    # a pipe, in atext too
        ]
        for sender in senders:
            send(self.d, sender, "ok@localhost")
            user = sender[:sender.rfind("@")]
            self.delivered(self.d.path("out", "ok-" + inert(user)), sender, "ok@localhost")
        for i, sender in enumerate(senders):
            tee = self.d.path("out", "tee")
            if os.path.exists(tee):
                os.remove(tee)
            send(self.d, sender, "tee@localhost")
            self.delivered(tee, sender, "tee@localhost")
            self.assertTrue(self.d.wait_log(r"mda delivery .*to=tee@localhost .*result=Ok", count=i + 1), self.d.log())
        self.assertTrue(self.d.wait_queue_empty(timeout=10), self.d.queue_entries())
        for m in markers:
            self.assertFalse(os.path.exists(m), m)


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon delivers as the recipient")
class Wrapper(unittest.TestCase):
    @unittest.skipUnless(wrapper_supported(), "the config grammar has no `mda wrapper` yet")
    def test_the_command_runs_inside_its_wrapper(self):
        with postern.Daemon(ACTIONS + WRAPPER + MATCHES, name="wrapper", prepare=make_out) as d:
            send(d, "alice@example.org", "wrapped@localhost")
            out = d.path("out", "wrapped-wrapped")
            self.assertTrue(postern.wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 10), d.log())
            env = dict(line.split("=", 1) for line in postern.read_bytes(out).decode().splitlines() if "=" in line)
            self.assertEqual(env.get("WRAPPED"), "yes")
            self.assertEqual(env.get("SENDER"), "alice@example.org")


if __name__ == "__main__":
    postern.run_tests()
