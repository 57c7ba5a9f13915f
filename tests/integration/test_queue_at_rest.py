"""`queue compression` and `queue encryption` end to end: a message queued
while local delivery is paused is in the spool compressed and encrypted (no
byte of its text readable there), and once delivery resumes it lands in the
maildir exactly as a plain queue delivers it. Without a key in the
configuration the key comes from queue.key beside it; a key file that others
can read, or a key of the wrong length, stops `posternd -n` with the reason.
A daemon restarted with another key is refused at start (-n says so too)
with the message still queued; a message whose file was changed in the spool
is set aside in quarantine/, never delivered, and `posternctl show
quarantine` lists it; `posternctl release` refuses it while it does not
decode, and queues it again once its bytes are restored. Envelopes are sealed in the journal too: one whose
record was changed (its CRC made good again) is set aside at start-up, once,
and the rest of the queue goes on. Either option can be switched on or off
with mail queued; encryption switched off needs the key in queue.key to read
what was written under it.
"""
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

KEY = "00112233445566778899aabbccddeeff"
ACTIONS = ('action "l" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
           'match from local for local action "l"\n')
SECRET = "Subject: the plans\r\n\r\nThe secret plans are in the usual place.\r\n" + "filler line\r\n" * 2000


def send(d, body=SECRET):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.sendmail("alice@example.org", ["bob@localhost"], body)


def queued_files(d):
    return [os.path.join(d.queue_dir, f) for f in d.queue_entries()]


class QueueAtRest(unittest.TestCase):
    def start(self, head, prepare=None):
        d = postern.Daemon(head + ACTIONS, name="atrest", prepare=prepare)
        d.__enter__()
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def deliver_held(self, d):
        """Sends SECRET with delivery paused; returns the spool file's bytes."""
        postern.posternctl(d, "pause", "mda")
        send(d)
        self.assertTrue(postern.wait_until(lambda: len(queued_files(d)) == 1, 10), d.log())
        with open(queued_files(d)[0], "rb") as f:
            return f.read()

    def check_delivered(self, d):
        postern.posternctl(d, "resume", "mda")
        files = d.wait_files(d.path("mail", "bob"), 1)
        self.assertEqual(len(files), 1, d.log())
        delivered = postern.read_bytes(files[0]).decode()
        self.assertTrue(delivered.endswith(postern.lf_message(SECRET)), delivered[-300:])
        self.assertTrue(d.wait_queue_empty(), d.queue_entries())

    def test_compressed_and_encrypted_in_the_spool_delivered_exactly(self):
        d = self.start(f"queue compression\nqueue encryption {KEY}\n")
        spooled = self.deliver_held(d)
        self.assertTrue(spooled.startswith(b"\0postern\x01\x03"), spooled[:20])
        self.assertNotIn(b"secret plans", spooled)
        self.assertNotIn(b"filler", spooled)
        self.assertLess(len(spooled), len(SECRET) // 4)  # compressed before it was encrypted
        self.check_delivered(d)

    def test_compression_alone(self):
        d = self.start("queue compression\n")
        spooled = self.deliver_held(d)
        self.assertTrue(spooled.startswith(b"\0postern\x01\x01"), spooled[:20])
        self.check_delivered(d)

    def test_key_file_beside_the_configuration(self):
        def prepare(folder):
            path = os.path.join(folder, "queue.key")
            with open(path, "w") as f:
                f.write(KEY + "\n")
            os.chmod(path, 0o600)

        d = self.start("queue encryption\n", prepare=prepare)
        spooled = self.deliver_held(d)
        self.assertTrue(spooled.startswith(b"\0postern\x01\x02"), spooled[:20])
        self.assertNotIn(b"secret plans", spooled)
        self.check_delivered(d)

    def test_another_key_after_a_restart_is_refused_at_start(self):
        d = self.start(f"queue encryption {KEY}\n")
        self.deliver_held(d)
        self.assertTrue(os.path.exists(os.path.join(d.spool, "key-check")))
        d.stop()
        d.config_text = f"queue encryption {'f' * 32}\n" + ACTIONS
        d._write_config()
        r = subprocess.run([postern.POSTERND, "-n", "-f", d.conf_path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # The harness's own lines come first: `queue encryption` is line 7.
        self.assertIn(f"{d.conf_path}:7:7: the queue key does not open {d.spool}/key-check", r.stderr)
        self.assertIn("the queue was written with another key", r.stderr)
        with self.assertRaises(RuntimeError):
            d.restart()
        self.assertIn("the queue was written with another key", d.log())
        self.assertEqual(len(queued_files(d)), 1)  # nothing lost, nothing delivered

    def test_a_damaged_message_is_set_aside_never_delivered(self):
        d = self.start(f"queue compression\nqueue encryption {KEY}\n")
        spooled = self.deliver_held(d)
        path = queued_files(d)[0]
        msgid = os.path.basename(path)
        damaged = bytearray(spooled)
        damaged[len(damaged) // 2] ^= 1
        with open(path, "r+b") as f:
            f.write(damaged)
        postern.posternctl(d, "resume", "mda")
        self.assertTrue(d.wait_log(r"queue quarantine evpid=" + msgid + r"\w+ .*reason=.*does not decrypt"), d.log())
        quarantine = os.path.join(d.spool, "quarantine")
        self.assertTrue(postern.wait_until(lambda: os.path.exists(os.path.join(quarantine, msgid + ".envelopes")), 10),
                        d.log())
        self.assertEqual(postern.read_bytes(os.path.join(quarantine, msgid)), bytes(damaged))
        self.assertTrue(d.wait_queue_empty(), d.queue_entries())
        self.assertEqual(postern.posternctl(d, "show", "quarantine"), f"{msgid}|1|{len(damaged)}\n")
        self.assertIn("scheduler.envelope.quarantined=1", postern.posternctl(d, "show", "stats"))
        new = d.path("mail", "bob", "new")
        self.assertFalse(os.path.isdir(new) and os.listdir(new))
        # Released: refused while it does not decode; once its bytes are
        # restored (from a backup, say), back in the queue and delivered.
        r = subprocess.run([os.path.join(postern.BUILD_DIR, "posternctl"), "-s", d.path("run", "control.sock"),
                            "release", msgid], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(f"quarantine/{msgid}: does not decrypt", r.stderr)
        self.assertIn("left in quarantine", r.stderr)
        with open(os.path.join(quarantine, msgid), "wb") as f:
            f.write(spooled)
        self.assertEqual(postern.posternctl(d, "release", msgid),
                         f"message {msgid} released: 1 envelope queued again\n")
        self.check_delivered(d)
        self.assertEqual(postern.posternctl(d, "show", "quarantine"), "")
        self.assertTrue(d.wait_log(f"queue released msgid={msgid} envelopes=1"), d.log())


    def journal(self, d):
        folder = os.path.join(d.spool, "journal")
        return b"".join(postern.read_bytes(os.path.join(folder, f)) for f in sorted(os.listdir(folder)))

    def test_envelopes_are_sealed_in_the_journal(self):
        d = self.start(f"queue encryption {KEY}\n")
        self.deliver_held(d)
        records = self.journal(d)
        self.assertRegex(records, rb"^postern-journal 1\nS \d+ [0-9a-f]{8} \d+\n[0-9a-f]{16}")
        for clear in (b"alice@example.org", b"bob@localhost", b"127.0.0.1", b"sender:"):
            self.assertNotIn(clear, records)
        self.check_delivered(d)

    def test_a_changed_envelope_record_is_set_aside_at_start_the_rest_delivered(self):
        d = self.start(f"queue encryption {KEY}\n")
        self.deliver_held(d)
        msgid = os.path.basename(queued_files(d)[0])
        size = os.path.getsize(queued_files(d)[0])
        d.stop()
        # Someone who can write the spool but lacks the key changes a byte of
        # the sealed envelope and makes its CRC good again.
        folder = os.path.join(d.spool, "journal")
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            records = parse_journal(postern.read_bytes(path))
            with open(path, "wb") as f:
                f.write(b"postern-journal 1\n")
                for op, rsize, payload in records:
                    if op == b"S" and payload.startswith(msgid.encode()):
                        payload = payload[:30] + bytes([payload[30] ^ 1]) + payload[31:]
                    f.write(journal_record(op, rsize, payload))
        d.restart()
        self.assertTrue(d.wait_log(r"queue corrupt-envelope error=.*envelope " + msgid +
                                   r"\w{8}: does not decrypt .*: set aside in \S*quarantine/"), d.log())
        self.assertEqual(postern.posternctl(d, "show", "quarantine"), f"{msgid}|1|{size}\n")
        self.assertEqual(d.queue_entries(), [])
        # The queue is not blocked: the next message goes through.
        send(d)
        files = d.wait_files(d.path("mail", "bob"), 1)
        self.assertEqual(len(files), 1, d.log())
        self.assertNotIn(msgid, os.path.basename(files[0]))
        # Set aside once: the next start does not find it again (once a
        # message sent after it is delivered, the queue was read).
        d.restart()
        send(d)
        self.assertEqual(len(d.wait_files(d.path("mail", "bob"), 2)), 2, d.log())
        self.assertEqual(postern.posternctl(d, "show", "quarantine"), f"{msgid}|1|{size}\n")
        self.assertEqual(len(re.findall(r"set aside in ", d.log())), 1, d.log())

    def test_switching_either_option_on_and_off_with_mail_queued(self):
        d = self.start("")
        self.deliver_held(d)  # written plain
        d.stop()
        d.config_text = f"queue compression\nqueue encryption {KEY}\n" + ACTIONS
        d._write_config()
        d.restart()
        # The plain message is read with both options on.
        files = d.wait_files(d.path("mail", "bob"), 1)
        self.assertEqual(len(files), 1, d.log())
        self.deliver_held(d)  # written compressed and encrypted
        d.stop()
        # Both off, the key gone: the queue cannot be read, and start-up says what to do.
        d.config_text = ACTIONS
        d._write_config()
        r = subprocess.run([postern.POSTERND, "-n", "-f", d.conf_path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        key_file = os.path.join(os.path.dirname(d.conf_path), "queue.key")
        self.assertIn(f"{d.conf_path}: the queue may hold mail written with `queue encryption` ({d.spool}/key-check "
                      f"exists): to read it with encryption off, put the key it was written with in {key_file}",
                      r.stderr)
        with self.assertRaises(RuntimeError):
            d.restart()
        self.assertEqual(len(queued_files(d)), 1)
        # With the key in queue.key it is read, and what is new is written plain.
        with open(key_file, "w") as f:
            f.write(KEY + "\n")
        os.chmod(key_file, 0o600)
        d.restart()
        files = d.wait_files(d.path("mail", "bob"), 2)
        self.assertEqual(len(files), 2, d.log())
        for path in files:
            self.assertTrue(postern.read_bytes(path).decode().endswith(postern.lf_message(SECRET)))
        spooled = self.deliver_held(d)
        self.assertTrue(spooled.startswith(b"Received: "), spooled[:40])
        self.assertIn(b"alice@example.org", self.journal(d))
        self.check_delivered_count(d, 3)

    def check_delivered_count(self, d, n):
        postern.posternctl(d, "resume", "mda")
        self.assertEqual(len(d.wait_files(d.path("mail", "bob"), n)), n, d.log())
        self.assertTrue(d.wait_queue_empty(), d.queue_entries())


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def parse_journal(data):
    """The (op, size, payload) records of one segment (format: core/queue/journal.hpp)."""
    assert data.startswith(b"postern-journal 1\n")
    pos, out = len(b"postern-journal 1\n"), []
    while pos < len(data):
        eol = data.index(b"\n", pos)
        op, length, _crc, size = data[pos:eol].split(b" ")
        payload = data[eol + 1:eol + 1 + int(length)]
        out.append((op, int(size), payload))
        pos = eol + 1 + int(length) + 1
    return out


def journal_record(op, size, payload):
    crc = crc32c(op + b" " + str(size).encode() + b"\n" + payload)
    return op + b" %d %08x %d\n" % (len(payload), crc, size) + payload + b"\n"


class KeyRefusals(unittest.TestCase):
    def check_n(self, conf_text, key_mode=None, key_text=KEY):
        folder = self.enterContext(tempfile.TemporaryDirectory(prefix="atrest-n-"))
        conf = os.path.join(folder, "postern.conf")
        with open(conf, "w") as f:
            f.write(f'queue path "{folder}/spool"\n' + conf_text + 'action "l" maildir\nmatch for local action "l"\n')
        if key_mode is not None:
            key = os.path.join(folder, "queue.key")
            with open(key, "w") as f:
                f.write(key_text)
            os.chmod(key, key_mode)
        r = subprocess.run([postern.POSTERND, "-n", "-f", conf], capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr, conf, folder

    def test_key_file_others_can_read(self):
        rc, err, conf, folder = self.check_n("queue encryption\n", key_mode=0o644)
        self.assertNotEqual(rc, 0)
        self.assertIn(f"{conf}:2:7: the queue key file {folder}/queue.key must be readable by its owner alone", err)

    def test_missing_key_file(self):
        rc, err, conf, folder = self.check_n("queue encryption\n")
        self.assertNotEqual(rc, 0)
        self.assertIn(f"{conf}:2:7: cannot read the queue key file {folder}/queue.key: No such file or directory "
                      f"(make one with: (umask 077; openssl rand -hex 16 > {folder}/queue.key))", err)

    def test_key_file_of_the_wrong_length(self):
        rc, err, conf, folder = self.check_n("queue encryption\n", key_mode=0o600, key_text="short\n")
        self.assertNotEqual(rc, 0)
        self.assertIn(f"{conf}:2:7: the queue key file {folder}/queue.key must hold the 32-character key", err)

    def test_good_key_file(self):
        rc, err, _conf, _folder = self.check_n("queue compression\nqueue encryption\n", key_mode=0o600)
        self.assertEqual(rc, 0, err)

    def test_inline_placeholder_key(self):
        rc, err, conf, _folder = self.check_n("queue encryption key YourKeyHere\n")
        self.assertNotEqual(rc, 0)
        self.assertIn(f"{conf}:2:22: the queue encryption key must be 32 characters", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
