"""`queue compression` and `queue encryption` end to end: a message queued
while local delivery is paused is in the spool compressed and encrypted (no
byte of its text readable there), and once delivery resumes it lands in the
maildir exactly as a plain queue delivers it. Without a key in the
configuration the key comes from queue.key beside it; a key file that others
can read, or a key of the wrong length, stops `posternd -n` with the reason.
A daemon restarted with another key is refused at start (-n says so too)
with the message still queued; a message whose file was changed in the spool
is set aside in quarantine/, never delivered, and `posternctl show
quarantine` lists it.
"""
import os
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
