"""A real Dovecot LMTP server for integration tests (Debian's dovecot-core
and dovecot-lmtpd).

Dovecot's master runs in the foreground with a minimal config written into a
folder of its own (see docs/guide-lmtp-dovecot.md for the same set-up on a
real host): LMTP only, on a UNIX socket FOLDER/run/lmtp (mode 0666, so that
postern's delivery agent, running as the recipient, may connect) and, if
asked, on 127.0.0.1:PORT; users in a passwd-file, mail in
FOLDER/vmail/%n/Maildir (%n: the login's part before any @). A path socket
is reachable from any network namespace, which is what test_seeds.py needs.
Dovecot is stopped by its PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402

DOVECOT = "/usr/sbin/dovecot"
LMTP = "/usr/lib/dovecot/lmtp"
START_TIMEOUT = 30.0

CONF_HEAD = """\
# Minimal Dovecot for LMTP only, everything inside {dir}.
protocols = lmtp
ssl = no
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
mail_location = maildir:{dir}/vmail/%n/Maildir
first_valid_uid = 1000
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = passwd-file
  args = {dir}/users
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""

CONF_LMTP = """\
service lmtp {{
{inet}  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""

CONF_INET = """\
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
"""


def missing():
    """Why Dovecot cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root: Dovecot and deliveries as other uids"
    if not (os.path.exists(DOVECOT) and os.path.exists(LMTP)):
        return "needs Debian's dovecot-core and dovecot-lmtpd"
    return None


class Dovecot:
    """Dovecot's master in the foreground. users: (login, uid, gid) each; a
    login may be an address. folder: where everything goes (made here; a
    temporary folder if None). tcp: also listen on 127.0.0.1:self.port."""

    def __init__(self, users, folder=None, tcp=True):
        self.users = list(users)
        if folder is None:
            self.dir = tempfile.mkdtemp(prefix="lmtp-dovecot-")
        else:
            os.mkdir(folder)
            self.dir = folder
        os.chmod(self.dir, 0o755)
        self.port = postern.free_port() if tcp else None
        self.proc = None

    @property
    def socket_path(self):
        return os.path.join(self.dir, "run", "lmtp")

    def maildir(self, name):
        """The maildir of login name (its part before any @)."""
        return os.path.join(self.dir, "vmail", name.split("@")[0], "Maildir")

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _write_config(self):
        vmail = os.path.join(self.dir, "vmail")
        os.mkdir(vmail)
        os.chmod(vmail, 0o1777)  # Dovecot creates each user's folder as that user
        # name:password:uid:gid::home:: (the password is never used: LMTP only).
        with open(os.path.join(self.dir, "users"), "w") as f:
            for login, uid, gid in self.users:
                f.write(f"{login}:{{PLAIN}}unused:{uid}:{gid}::{vmail}/{login.split('@')[0]}::\n")
        inet = CONF_INET.format(port=self.port) if self.port else ""
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(CONF_HEAD.format(dir=self.dir) + CONF_LMTP.format(inet=inet))
        return conf

    def start(self):
        conf = self._write_config()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not postern.wait_until(self.ready, START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"dovecot did not start within {START_TIMEOUT}s:\n{self.log()}")
        return self

    @staticmethod
    def _greets(sock, address):
        with sock:
            sock.settimeout(2.0)
            sock.connect(address)
            return sock.recv(512).startswith(b"220 ")

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"dovecot exited with {self.proc.returncode}:\n{self.log()}")
        # One probe only: tests count Dovecot's connections in its log.
        try:
            if self.port is None:
                return self._greets(socket.socket(socket.AF_UNIX), self.socket_path)
            return (os.path.exists(self.socket_path) and
                    self._greets(socket.socket(socket.AF_INET), ("127.0.0.1", self.port)))
        except OSError:
            return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group we made for it
                self.proc.wait(timeout=15)
        self.proc = None

    def cleanup(self, keep):
        self.stop()
        if keep:
            sys.stderr.write(f"[dovecot] kept {self.dir}; log:\n{self.log()}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
