"""The local socket's user name is looked up off the event loop (issue 14).

A session on `listen on socket` names its submitter (the socket's peer uid)
in the log and the Received: header; the name comes from the passwd
database, which NSS may take seconds to answer (LDAP, sssd). Here a small
LD_PRELOAD library, compiled by the test, makes getpwuid_r(3) take 3 seconds
for one user made for the test, so that the test can see:

- other sessions (TCP here) get their greeting at once meanwhile: the
  daemon's loop is not waiting for the lookup;
- the slow user's session gets no greeting before its name is known, and
  its message's Received: line and the log name the user;
- a session that leaves while its lookup runs costs nothing: the daemon
  serves the next one.
"""

import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import time
import unittest

from postern import BUILD_DIR, Daemon, maildir_new, run_tests, system_user, wait_until

SENDMAIL = os.path.join(BUILD_DIR, "postern-sendmail")
USER = "pstslowpw"
SLOW_SECONDS = 3

CONFIG = """listen on socket
action "md" maildir "@DIR@/md/%{user.username}"
match from socket for local action "md"
match from local for local action "md"
"""

# getpwuid_r(3), slow for one uid, the real one's answer after.
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <unistd.h>

int getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, struct passwd **found) {
    int (*real)(uid_t, struct passwd *, char *, size_t, struct passwd **) =
        (int (*)(uid_t, struct passwd *, char *, size_t, struct passwd **))dlsym(RTLD_NEXT, "getpwuid_r");
    if (uid == SLOW_UID) sleep(SLOW_SECONDS);
    return real(uid, pw, buf, len, found);
}
"""


class LocalUserLookup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("cc"):
            raise unittest.SkipTest("no C compiler (cc) to build the slow getpwuid_r library")
        cls.user = system_user(USER)

        def prepare(folder):
            src = os.path.join(folder, "slowpw.c")
            with open(src, "w") as f:
                f.write(SHIM)
            lib = os.path.join(folder, "slowpw.so")
            subprocess.run(["cc", "-shared", "-fPIC", f"-DSLOW_UID={cls.user.pw_uid}",
                            f"-DSLOW_SECONDS={SLOW_SECONDS}", "-o", lib, src, "-ldl"], check=True, timeout=60)
            os.makedirs(os.path.join(folder, "md"))
            os.chmod(os.path.join(folder, "md"), 0o1777)  # deliveries run as the recipient
            # The daemon inherits this; the library is in place before it starts.
            os.environ["LD_PRELOAD"] = lib

        cls.d = Daemon(CONFIG, name="slowpw", prepare=prepare)
        try:
            cls.d.__enter__()
        finally:
            os.environ.pop("LD_PRELOAD", None)
        cls.socket = cls.d.path("run", "submit.sock")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        subprocess.run(["userdel", USER], timeout=30)

    def as_user(self, *cmd):
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups", "--",
                *cmd]

    def delivered(self, subject):
        box = self.d.path("md", "root")

        def find():
            for name in maildir_new(box):
                with open(os.path.join(box, "new", name), encoding="latin-1") as f:
                    text = f.read()
                if f"\nSubject: {subject}\n" in text:
                    return text
            return None

        return wait_until(find, 10)

    def tcp_greeting_seconds(self):
        t0 = time.monotonic()
        with smtplib.SMTP("127.0.0.1", self.d.port, timeout=20) as s:
            s.noop()
        return time.monotonic() - t0

    def test_slow_lookup_holds_its_session_only(self):
        dialogue = ("EHLO slow.test\r\nMAIL FROM:<me@example.org>\r\nRCPT TO:<root>\r\nDATA\r\n"
                    "Subject: slow lookup\r\n\r\nx\r\n.\r\nQUIT\r\n")
        start = time.monotonic()
        p = subprocess.Popen(self.as_user(SENDMAIL, "-C", self.d.conf_path, "-bs"), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            p.stdin.write(dialogue)
            p.stdin.close()
            # The slow session is under way (connected, its lookup running).
            self.assertTrue(wait_until(lambda: time.monotonic() - start > 0.5, 1))
            self.assertLess(self.tcp_greeting_seconds(), 1.5)  # the loop was not held
            out = p.stdout.read()
            err = p.stderr.read()
            self.assertEqual(p.wait(timeout=60), 0, err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        took = time.monotonic() - start
        self.assertGreater(took, SLOW_SECONDS - 0.5)  # no greeting before the name was known
        self.assertEqual(out.splitlines()[0][:4], "220 ", out)
        msg = self.delivered("slow lookup")
        self.assertIsNotNone(msg, self.d.log())
        self.assertIn(f"Received: from slow.test (local user {USER}, uid {self.user.pw_uid})\n", msg)
        self.assertRegex(self.d.log(), rf"smtp connected address=local user={USER} uid={self.user.pw_uid}\n")

    def test_session_gone_during_the_lookup(self):
        leave = (f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({self.socket!r}); s.close()")
        before = len(re.findall(rf"smtp connected address=local user={USER} ", self.d.log()))
        r = subprocess.run(self.as_user("python3", "-c", leave), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Its lookup ends, then the session (nobody is there to greet).
        self.assertTrue(self.d.wait_log(rf"smtp connected address=local user={USER} ", timeout=SLOW_SECONDS + 5,
                                        count=before + 1), self.d.log())
        r = subprocess.run([SENDMAIL, "-C", self.d.conf_path, "root"], input="Subject: after\n\nx\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        msg = self.delivered("after")
        self.assertIsNotNone(msg, self.d.log())
        self.assertIn("(local user root, uid 0)", msg)
        self.assertTrue(self.d.running())


if __name__ == "__main__":
    run_tests()
