"""Integration test harness: start the real posternd on loopback and talk to it.

Daemon(config_text) is a context manager. It makes a temporary folder (mode
0755, because the daemon's unprivileged child must be able to walk into it
when the tests run as root), picks a free loopback port, writes a config file
whose head sets `queue path`, `pidfile`, `mbox path` inside that folder and
`listen on 127.0.0.1 port PORT`, and starts `$POSTERN_BUILD_DIR/posternd -d -f
CONF` with its stderr in a log file. In config_text, `@DIR@` stands for the
temporary folder.

Every wait here is bounded in time; every signal goes to a process this
harness started (the daemon it spawned, and that daemon's own descendants).

RawClient is a plain socket SMTP client for what smtplib cannot do
(pipelining, bare LF, over-long lines); run_tests() runs a test module with
unittest, prints a summary and exits non-zero on failure.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_DIR = os.path.abspath(os.environ.get("POSTERN_BUILD_DIR", os.path.join(_HERE, "..", "..", "build-integ")))
SOURCE_DIR = os.path.abspath(os.environ.get("POSTERN_SOURCE_DIR", os.path.join(_HERE, "..", "..")))
POSTERND = os.path.join(BUILD_DIR, "posternd")

START_TIMEOUT = 10.0   # seconds until the daemon answers with its banner
STOP_TIMEOUT = 10.0    # seconds between SIGTERM and SIGKILL
IO_TIMEOUT = 10.0      # seconds any single socket read may take


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback TCP port that was free a moment ago.

    Taken below the kernel's ephemeral range: a port from that range (what
    binding port 0 gives) may meanwhile become the local end of some other
    test's outgoing connection, and the daemon's bind then fails.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate() until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def children_of(pid):
    """Direct children of pid, read from /proc (no external tools needed)."""
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def descendants_of(pid):
    """Every process below pid, children first-level before deeper ones."""
    out, todo, seen = [], [pid], {pid}
    while todo and len(out) < 10000:
        for k in children_of(todo.pop(0)):
            if k not in seen:
                seen.add(k)
                out.append(k)
                todo.append(k)
    return out


def process_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def session_of(pid):
    """The session id of pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def maildir_new(path):
    """Sorted file names in path/new (empty when the folder does not exist)."""
    try:
        return sorted(os.listdir(os.path.join(path, "new")))
    except FileNotFoundError:
        return []


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def system_user(name, comment=None):
    """The passwd entry of `name`, a user without a home made for the tests
    (useradd) if this host has none."""
    import pwd
    try:
        return pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
        if comment:
            cmd += ["--comment", comment]
        subprocess.run(cmd + [name], check=True, timeout=30)
        return pwd.getpwnam(name)


def copy_build(tree):
    """posternd, its agent, posternctl and the plugins, copied into `tree`
    laid out as a build tree (a CMakeCache.txt beside posternd marks one), for
    a daemon that must run from somewhere else than BUILD_DIR: below a 0700
    folder, or as a user who cannot enter the checkout."""
    os.makedirs(os.path.join(tree, "plugins"), exist_ok=True)
    for name in ("posternd", "postern-local", "posternctl"):
        shutil.copy2(os.path.join(BUILD_DIR, name), tree)
    open(os.path.join(tree, "CMakeCache.txt"), "w").close()
    for name in os.listdir(os.path.join(BUILD_DIR, "plugins")):
        if name.endswith(".so"):
            shutil.copy2(os.path.join(BUILD_DIR, "plugins", name), os.path.join(tree, "plugins"))


class Daemon:
    """A posternd started for one test; see the module comment."""

    def __init__(self, config_text, name="postern", extra_args=(), prepare=None, before_listen="",
                 listen_options=""):
        self.config_text = config_text
        # Lines that must come before the listener (filters it names), and
        # options for it (`filter "x"`); `@DIR@` works in both.
        self.before_listen = before_listen
        self.listen_options = listen_options
        self.prepare = prepare  # called with the temp folder before the daemon starts (table files...)
        self.name = name
        self.extra_args = list(extra_args)
        self.dir = None
        self.port = None
        self.proc = None
        self.hostname = None  # as the daemon names itself in its banner
        self.session = None   # the session id the daemon runs in (its first PID)

    # ---- paths ----

    @property
    def conf_path(self):
        return os.path.join(self.dir, "postern.conf")

    @property
    def log_path(self):
        return os.path.join(self.dir, "posternd.log")

    @property
    def spool(self):
        return os.path.join(self.dir, "spool")

    @property
    def queue_dir(self):
        """The spool's messages/ folder: a file per queued message."""
        return os.path.join(self.spool, "messages")

    @property
    def mbox_dir(self):
        return os.path.join(self.dir, "mbox")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # ---- life cycle ----

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.dir, 0o755)
        os.makedirs(self.mbox_dir, exist_ok=True)
        os.chmod(self.mbox_dir, 0o755)
        try:
            if self.prepare:
                self.prepare(self.dir)
            self._start_with_free_port()
        except BaseException:
            self._cleanup_dir_on_failure()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None or os.environ.get("POSTERN_KEEP_TMP"):
            sys.stderr.write(f"[{self.name}] kept {self.dir}; daemon log:\n{self.log()}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _cleanup_dir_on_failure(self):
        sys.stderr.write(f"[{self.name}] start failed; kept {self.dir}; daemon log:\n{self.log()}\n")

    def config_head(self):
        return (f'queue path "{self.spool}"\n'
                f'pidfile "{self.path("posternd.pid")}"\n'
                f'control socket "{self.path("run", "control.sock")}"\n'
                f'mbox path "{self.mbox_dir}"\n'
                f'{self.before_listen}\n'
                f'listen on 127.0.0.1 port {self.port} {self.listen_options}\n').replace("@DIR@", self.dir)

    def _write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_head())
            f.write(self.config_text.replace("@DIR@", self.dir))
        os.chmod(self.conf_path, 0o644)

    def _start_with_free_port(self):
        # A free port can be taken between our probe and the daemon's bind:
        # try a few, but only when the log says that is what happened.
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            try:
                self._spawn()
                return
            except RuntimeError:
                if "in use" not in self.log() or attempt == 2:
                    raise

    def _spawn(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [POSTERND, "-d", "-f", self.conf_path] + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.dir, start_new_session=True)
        self.session = self.proc.pid
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"posternd exited with {self.proc.returncode} at start-up:\n{self.log()}")
            banner = self._probe()
            if banner:
                m = re.match(r"220 (\S+) ", banner)
                self.hostname = m.group(1) if m else None
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"posternd did not answer on port {self.port} within {START_TIMEOUT}s:\n{self.log()}")

    def _connect(self, timeout):
        """A socket to the daemon's listener (a subclass may reach it otherwise)."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def _probe(self):
        """The banner line if the daemon serves (not only listens), else None."""
        try:
            with self._connect(1.0) as s:
                s.settimeout(1.0)
                data = b""
                while b"\n" not in data and len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        return None
                    data += chunk
                s.sendall(b"QUIT\r\n")
                return data.decode("latin-1").split("\n")[0].rstrip("\r")
        except OSError:
            return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM the daemon; SIGKILL it and its descendants if it lingers."""
        if self.proc is None:
            return
        family = descendants_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"[{self.name}] posternd ignored SIGTERM for {STOP_TIMEOUT}s; killing it\n")
                self.kill9()
                return
        self._kill_leftovers(family)
        self.proc = None

    def kill9(self):
        """Crash the daemon: SIGKILL the process we started and all below it.

        Everything is stopped first, so that no process can notice another's
        death and react (the child gets SIGTERM when its parent dies) before
        it is killed itself.
        """
        if self.proc is None:
            return
        pids = [self.proc.pid] + descendants_of(self.proc.pid)
        for p in pids:
            self._signal(p, signal.SIGSTOP)
        pids += [p for p in descendants_of(self.proc.pid) if p not in pids]
        for p in pids:
            self._signal(p, signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # The killed children are reaped by init; wait until they are gone.
        wait_until(lambda: not any(process_alive(p) for p in pids[1:]), STOP_TIMEOUT)
        self.proc = None

    def _kill_leftovers(self, pids):
        # Processes the daemon started and left behind (re-parented to init
        # once it exited). A PID is killed only while it is still in the
        # session we made for the daemon, so a reused PID is never hit.
        for p in pids:
            if process_alive(p) and session_of(p) == self.session:
                self._signal(p, signal.SIGKILL)

    @staticmethod
    def _signal(pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def restart(self):
        """Stop (if still running) and start again with the same config and port."""
        if self.running():
            self.stop()
        self.proc = None
        self._spawn()

    # ---- observation ----

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Wait until regex pattern matches at least count log lines; return the matches."""
        rx = re.compile(pattern, re.M)
        found = wait_until(lambda: len(rx.findall(self.log())) >= count and rx.findall(self.log()), timeout)
        return found or []

    def wait_files(self, maildir, n, timeout=10.0):
        """Wait until maildir/new holds at least n files; return their full paths."""
        wait_until(lambda: len(maildir_new(maildir)) >= n, timeout)
        return [os.path.join(maildir, "new", f) for f in maildir_new(maildir)]

    def queue_entries(self):
        """Every file below the spool's messages/ folder (the queued messages), relative to it."""
        out = []
        for root, _dirs, files in os.walk(self.queue_dir):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f), self.queue_dir))
            for d in _dirs:
                out.append(os.path.relpath(os.path.join(root, d), self.queue_dir) + "/")
        return sorted(out)

    def wait_queue_empty(self, timeout=10.0):
        return wait_until(lambda: not self.queue_entries(), timeout)

    def client(self):
        return RawClient(self.port)


class RawClient:
    """A socket SMTP client that sends bytes as given and parses replies."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.banner = self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line longer than 1 MiB")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unparsed bytes: {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def reply(self):
        """One whole (possibly multi-line) reply as (code, [texts])."""
        texts = []
        for _ in range(1000):
            line = self._line()
            m = re.match(r"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise AssertionError(f"malformed reply line {line!r}")
            texts.append(m.group(3))
            if m.group(2) == " ":
                return int(m.group(1)), texts
        raise AssertionError("reply of more than 1000 lines")

    def reply_line(self):
        """One reply as its last line's text "CODE TEXT" (for single-line replies)."""
        code, texts = self.reply()
        return f"{code} {texts[-1]}"

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply_line()

    def pending(self, wait=0.5):
        """Bytes the server sent that no reply() consumed yet, waiting up to `wait` s."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(IO_TIMEOUT)
        data, self.buf = self.buf, b""
        return data

    def closed_by_peer(self, timeout=5.0):
        """True if the server closes the connection within timeout (data before EOF is dropped)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        try:
            while time.monotonic() < deadline:
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    return True
                if not chunk:
                    return True
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT)


def lf_message(crlf_text):
    """What a delivered copy of a message sent over SMTP holds: CRLF turned
    into LF, dot-stuffing undone."""
    lines = crlf_text.split("\r\n")
    return "\n".join(line[1:] if line.startswith(".") else line for line in lines)


def posternctl(daemon, *args, expect=0):
    """Run posternctl against daemon's control socket; return its output."""
    r = subprocess.run([os.path.join(BUILD_DIR, "posternctl"), "-s", daemon.path("run", "control.sock"), *args],
                       capture_output=True, text=True, timeout=20)
    if r.returncode != expect:
        raise AssertionError(f"posternctl {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def queue(daemon):
    """posternctl show queue, as a list of dicts."""
    return json.loads(posternctl(daemon, "--json", "show", "queue"))


def relay_config(actions, head=""):
    """Local mail to maildirs; each (domain, relay options) pair gets its own
    relay action; a domain of None matches every other domain."""
    out = [head, 'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n']
    matches = ['match from local for local action "local"\n']
    for i, (domain, options) in enumerate(actions):
        out.append(f'action "out{i}" relay {options}\n')
        who = f'domain "{domain}"' if domain else "any"
        matches.append(f'match from local for {who} action "out{i}"\n')
    return "".join(out + matches)


def make_self_signed_pki(cert_path, key_path, hostname, days=2):
    """A self-signed certificate for hostname (EC P-256, subjectAltName
    DNS:hostname) and its key, made with the openssl command; both readable
    by all, as test files."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key_path, "-out", cert_path, "-days", str(days), "-subj", f"/CN={hostname}",
                    "-addext", f"subjectAltName=DNS:{hostname}"],
                   check=True, capture_output=True, timeout=60)
    for p in (cert_path, key_path):
        os.chmod(p, 0o644)


def swaks(*args, timeout=30):
    """Run swaks; return (exit code, combined output)."""
    r = subprocess.run(["swaks", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def run_tests(module_name="__main__"):
    """Run a test module's TestCases, print a summary, exit 1 on any failure."""
    if not os.access(POSTERND, os.X_OK):
        print(f"posternd not found at {POSTERND}; set POSTERN_BUILD_DIR", file=sys.stderr)
        sys.exit(1)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    name = os.path.basename(sys.modules[module_name].__file__ or module_name)
    print(f"SUMMARY {name}: {result.testsRun} run, {len(result.failures)} failed, "
          f"{len(result.errors)} errors, {len(result.skipped)} skipped")
    sys.exit(0 if result.wasSuccessful() else 1)
