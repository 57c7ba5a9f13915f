"""A small scripted SMTP server for integration tests: the peer postern relays to.

SmtpSink listens on 127.0.0.1 on a port the kernel picks (or on `address`), answers each
command with a scripted or default reply, and records every connection: the
command lines it received, whether TLS was active, and each transaction's
envelope and DATA bytes. It can offer STARTTLS with a given certificate and
key (PEM files). Use it as a context manager, or call start() and stop().

Scripted replies: `replies` maps a step to either one reply line (used every
time) or a list of reply lines (used in turn, across all connections, then
the default). Steps are the command verbs (EHLO, HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT, STARTTLS), plus BANNER (the greeting) and EOM (the reply after
the message's final dot). A reply line is sent as given plus CRLF; a reply
whose code is 421 closes the connection after it is sent.

Every socket read has a timeout (IO_TIMEOUT), lines and messages are bounded
in size, and stop() waits a bounded time for the threads it started. Depends
only on the Python standard library.
"""

import socket
import ssl
import threading
import time

IO_TIMEOUT = 10.0          # seconds a single read from the client may take
MAX_LINE = 4096            # bytes in one command line (RFC 5321 says 512; be lenient)
MAX_MESSAGE = 32 << 20     # bytes of DATA kept per transaction
MAX_CONNECTIONS = 1000     # connections accepted over the sink's life
STOP_TIMEOUT = 5.0         # seconds stop() waits for each thread


class Transaction:
    """One MAIL .. end-of-data exchange (or the part of it that happened)."""

    def __init__(self, mail_from, tls):
        self.mail_from = mail_from   # the address between < >, "" for <>
        self.rcpts = []              # addresses whose RCPT got a 2xx reply
        self.refused_rcpts = []      # (address, reply) for the others
        self.tls = tls               # TLS active when MAIL was received
        self.data = None             # wire bytes between 354 and the final ".\r\n", dot-stuffed
        self.eom_reply = None        # the reply sent after the message (LMTP: the first)
        self.eom_replies = []        # LMTP: one per accepted recipient, in order

    @property
    def accepted(self):
        return self.data is not None and self.eom_reply is not None and self.eom_reply.startswith("2")

    @property
    def message(self):
        """The message as sent: dot-stuffing undone, CRLF line ends kept."""
        if self.data is None:
            return None
        lines = self.data.split(b"\r\n")
        return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


class Connection:
    """What one client connection did."""

    def __init__(self, peer):
        self.peer = peer
        self.commands = []       # command lines as received (str, latin-1), DATA content excluded
        self.pipelined = []      # those that arrived together with the next one (before their reply)
        self.tls = False         # TLS active (set once STARTTLS succeeded)
        self.tls_error = None    # why a STARTTLS handshake failed, if it did
        self.transactions = []
        self.closed = False      # the connection has ended (either side)
        self.opened_at = time.monotonic()
        self.closed_at = None    # time.monotonic() when it ended
        self.error = None        # what ended it if not QUIT (timeout, reset, ...)

    @property
    def verbs(self):
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    @property
    def accepted(self):
        return [t for t in self.transactions if t.accepted]


class _Closed(Exception):
    pass


class SmtpSink:
    session_class = None  # a subclass of _Session to script more (None: _Session)

    def __init__(self, replies=None, starttls=False, cert=None, key=None, hostname="sink.test",
                 extensions=("PIPELINING", "8BITMIME", "SIZE 52428800"), eom_delay=0.0, lmtp=False,
                 address=("127.0.0.1", 0)):
        if starttls and not (cert and key):
            raise ValueError("starttls needs cert and key")
        self.hostname = hostname
        self.eom_delay = eom_delay  # seconds before the reply to each message: a slow peer
        self.lmtp = lmtp            # LHLO, and one reply per accepted recipient after the message
        self.extensions = list(extensions)
        self.starttls = starttls
        self._tls_ctx = None
        if starttls:
            self._tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls_ctx.load_cert_chain(cert, key)
        self._replies = {k.upper(): (list(v) if isinstance(v, (list, tuple)) else v)
                         for k, v in (replies or {}).items()}
        self._lock = threading.Condition()
        self.connections = []
        self._threads = []
        self._listener = None
        self._acceptor = None
        self._stopping = threading.Event()
        self.address = address  # where to listen: a loopback address and port (0: the kernel picks)
        self.port = None

    # ---- life cycle ----

    def start(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(self.address)
        self._listener.listen(64)
        self._listener.settimeout(0.2)  # so the accept loop notices stop()
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"sink-{self.port}", daemon=True)
        self._acceptor.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._acceptor:
            self._acceptor.join(STOP_TIMEOUT)
        if self._listener:
            self._listener.close()
            self._listener = None
        deadline = time.monotonic() + STOP_TIMEOUT
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- observation (thread-safe snapshots and bounded waits) ----

    def transactions(self):
        with self._lock:
            return [t for c in self.connections for t in c.transactions]

    def messages(self):
        """The accepted messages (dot-stuffing undone), in order of arrival."""
        with self._lock:
            return [t.message for c in self.connections for t in c.accepted]

    def wait_messages(self, n, timeout=10.0):
        """Wait until at least n messages were accepted; return them all."""
        self._wait(lambda: len(self.messages()) >= n, timeout)
        return self.messages()

    def wait_connections(self, n, timeout=10.0, closed=False):
        """Wait until at least n connections came (and ended, with closed=True)."""
        def enough():
            cs = [c for c in self.connections if c.closed or not closed]
            return len(cs) >= n
        self._wait(enough, timeout)
        with self._lock:
            return list(self.connections)

    def max_concurrent(self):
        """The most connections that were open at the same time."""
        with self._lock:
            events = []
            for c in self.connections:
                events.append((c.opened_at, 1))
                events.append((c.closed_at if c.closed_at is not None else float("inf"), -1))
        peak = now = 0
        for _t, delta in sorted(events):
            now += delta
            peak = max(peak, now)
        return peak

    def wait_idle(self, timeout=10.0):
        """Wait until every connection so far has ended."""
        return self._wait(lambda: all(c.closed for c in self.connections), timeout)

    def _wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
            return True

    def describe(self):
        """A readable summary for assertion messages."""
        with self._lock:
            out = []
            for i, c in enumerate(self.connections):
                out.append(f"connection {i} tls={c.tls} error={c.error} tls_error={c.tls_error} "
                           f"commands={c.commands}")
            return "\n".join(out) or "no connection"

    # ---- serving ----

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                if len(self.connections) >= MAX_CONNECTIONS:
                    sock.close()
                    continue
                conn = Connection(peer)
                self.connections.append(conn)
                self._lock.notify_all()
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            self._threads.append(t)
            t.start()

    def _reply_for(self, step, default):
        with self._lock:
            r = self._replies.get(step)
            if isinstance(r, list):
                return r.pop(0) if r else default
            return r if r is not None else default

    def _serve(self, sock, conn):
        session = (self.session_class or _Session)(self, sock, conn)
        try:
            session.run()
        except _Closed:
            pass
        except (OSError, ssl.SSLError, ValueError) as e:
            conn.error = f"{type(e).__name__}: {e}"
        finally:
            try:
                session.sock.close()
            except OSError:
                pass
            with self._lock:
                conn.closed = True
                conn.closed_at = time.monotonic()
                self._lock.notify_all()


class _Session:
    """One connection's dialogue; records into conn under the sink's lock."""

    def __init__(self, sink, sock, conn):
        self.sink = sink
        self.sock = sock
        self.conn = conn
        self.buf = b""
        self.txn = None
        self.sock.settimeout(IO_TIMEOUT)

    def send(self, line):
        self.sock.sendall(line.encode("latin-1") + b"\r\n")
        if line.startswith("421"):
            raise _Closed()

    def reply(self, step, default):
        line = self.sink._reply_for(step, default)
        self.send(line)
        return line

    def read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_LINE and not self.in_data:
                raise ValueError("line too long")
            if self.sink._stopping.is_set():
                raise _Closed()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _Closed()
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    in_data = False

    def record(self, line):
        with self.sink._lock:
            self.conn.commands.append(line)
            if self.buf:
                self.conn.pipelined.append(line)
            self.sink._lock.notify_all()

    def run(self):
        self.reply("BANNER", f"220 {self.sink.hostname} ESMTP smtp_sink")
        while True:
            line = self.read_line().decode("latin-1")
            self.record(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.reply(verb, "500 5.5.1 command not recognized")
                continue
            handler(arg)

    def do_EHLO(self, arg):
        ext = list(self.sink.extensions)
        if self.sink.starttls and not self.conn.tls:
            ext.append("STARTTLS")
        scripted = self.sink._reply_for("EHLO", None)
        if scripted is not None:
            self.send(scripted)
            return
        lines = [self.sink.hostname + " hello " + arg] + ext
        for i, text in enumerate(lines):
            self.sock.sendall(f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode("latin-1"))
        self.txn = None

    def do_LHLO(self, arg):
        if not self.sink.lmtp:
            self.reply("LHLO", "500 5.5.1 command not recognized")
            return
        self.do_EHLO(arg)

    def do_HELO(self, arg):
        self.reply("HELO", f"250 {self.sink.hostname} hello {arg}")
        self.txn = None

    def do_STARTTLS(self, arg):
        if not self.sink.starttls or self.conn.tls:
            self.reply("STARTTLS", "502 5.5.1 STARTTLS not available")
            return
        r = self.reply("STARTTLS", "220 2.0.0 ready to start TLS")
        if not r.startswith("220"):
            return
        if self.buf:  # bytes pipelined before the handshake must not count as TLS input
            self.buf = b""
        try:
            self.sock = self.sink._tls_ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.sink._lock:
                self.conn.tls_error = str(e)
            raise _Closed()
        self.sock.settimeout(IO_TIMEOUT)
        with self.sink._lock:
            self.conn.tls = True
        self.txn = None

    def do_MAIL(self, arg):
        r = self.reply("MAIL", "250 2.1.0 sender ok")
        if r.startswith("2"):
            with self.sink._lock:
                self.txn = Transaction(_address(arg), self.conn.tls)
                self.conn.transactions.append(self.txn)

    def do_RCPT(self, arg):
        if self.txn is None:
            self.send("503 5.5.1 MAIL first")
            return
        r = self.reply("RCPT", "250 2.1.5 recipient ok")
        with self.sink._lock:
            if r.startswith("2"):
                self.txn.rcpts.append(_address(arg))
            else:
                self.txn.refused_rcpts.append((_address(arg), r))

    def do_DATA(self, arg):
        if self.txn is None or not self.txn.rcpts:
            self.send("503 5.5.1 no valid recipient")
            return
        r = self.reply("DATA", "354 end with <CRLF>.<CRLF>")
        if not r.startswith("3"):
            return
        data = self.read_data()
        if self.sink.eom_delay:
            time.sleep(self.sink.eom_delay)
        # LMTP (RFC 2033) answers the message once per accepted recipient.
        replies = [self.sink._reply_for("EOM", "250 2.0.0 queued as sink")
                   for _ in (self.txn.rcpts if self.sink.lmtp else [None])]
        with self.sink._lock:
            self.txn.data = data
            self.txn.eom_reply = replies[0]
            self.txn.eom_replies = replies
            self.sink._lock.notify_all()
        self.txn = None
        for r in replies:
            self.send(r)

    def read_data(self):
        self.in_data = True
        try:
            parts = []
            size = 0
            while True:
                line = self.read_line()
                if line == b".":
                    return b"".join(parts)
                size += len(line) + 2
                if size > MAX_MESSAGE:
                    raise ValueError("message too large")
                parts.append(line + b"\r\n")
        finally:
            self.in_data = False

    def do_RSET(self, arg):
        self.reply("RSET", "250 2.0.0 reset")
        self.txn = None

    def do_NOOP(self, arg):
        self.reply("NOOP", "250 2.0.0 ok")

    def do_QUIT(self, arg):
        self.reply("QUIT", "221 2.0.0 bye")
        raise _Closed()


def _address(arg):
    """The address in 'FROM:<a@b> SIZE=1' or 'TO:<a@b>'."""
    start, end = arg.find("<"), arg.find(">")
    return arg[start + 1:end] if 0 <= start < end else arg.partition(":")[2].strip()
