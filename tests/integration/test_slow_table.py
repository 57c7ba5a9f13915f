"""A slow table never stalls the SMTP sessions (issue 10, part 4).

A relay action routes by `domain <slow>`, a table whose every lookup takes
2 s (tests/plugins/table_slow.cpp, built as table-slow.so). The scheduler
asks it twice for each batch of relay mail: which batch an envelope joins,
and where that batch goes. Those lookups run on the scheduler's routing
threads, never on the event loop: while they wait, probe sessions to a
local action on the same daemon get their greeting and every reply in under
200 ms, and afterwards the relayed mail reaches the peer (smtp_sink.SmtpSink).

Depends on: postern.py, smtp_sink.py, posternd, the plugins and
tests/plugins/table-slow.so from $POSTERN_BUILD_DIR.
"""

import glob
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import postern  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

SLOW_PLUGIN = os.path.join(postern.BUILD_DIR, "tests", "plugins", "table-slow.so")
BOUND = 0.200         # seconds: the most any reply may take (the criterion)
RELAYED = 5           # relay messages queued behind the slow table
MAX_PROBES = 40       # local probe sessions, at most
PROBE_GAP = 0.25      # seconds between two probes
MIN_EARLY_PROBES = 6  # probes that must run before the first relayed message arrives
ARRIVAL_TIMEOUT = 60  # seconds for the relayed mail to reach the sink (generous: a loaded machine)


def prepare(sink_port):
    def run(folder):
        # `plugin path` names one folder: the real plugins and the slow table side by side.
        plugins = os.path.join(folder, "plugins")
        os.makedirs(plugins)
        for so in glob.glob(os.path.join(postern.BUILD_DIR, "plugins", "*.so")) + [SLOW_PLUGIN]:
            os.symlink(so, os.path.join(plugins, os.path.basename(so)))
        with open(os.path.join(folder, "slow.map"), "w") as f:
            f.write(f"far.test smtp://127.0.0.1:{sink_port}\n")
        os.chmod(os.path.join(folder, "slow.map"), 0o644)
        calls = os.path.join(folder, "slow.map.calls")  # the unprivileged daemon appends to it
        open(calls, "w").close()
        os.chmod(calls, 0o666)
    return run


CONFIG = ('plugin path "@DIR@/plugins"\n'
          'table slow slow:@DIR@/slow.map\n'
          'action "local" maildir "@DIR@/mail/%{rcpt.user}" user root\n'
          'action "out" relay domain <slow>\n'
          'match from local for domain "far.test" action "out"\n'
          'match from local for any action "local"\n')


class Timed:
    """One SMTP session whose every reply is timed; raw socket, bounded reads."""

    def __init__(self, port):
        self.times = {}
        self.buf = b""
        start = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=postern.IO_TIMEOUT)
        self.sock.settimeout(postern.IO_TIMEOUT)
        self.expect("greeting", "220", start)

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk or len(self.buf) > 65536:
                    raise AssertionError(f"connection closed or reply too long after {lines!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.decode("latin-1").rstrip("\r"))
            if len(lines[-1]) < 4 or lines[-1][3] != "-":
                return lines

    def expect(self, step, code, start):
        lines = self.reply()
        self.times[step] = time.monotonic() - start
        if not lines[-1].startswith(code):
            raise AssertionError(f"{step}: expected {code}, got {lines!r}")

    def command(self, step, line, code):
        start = time.monotonic()
        self.sock.sendall(line.encode() + b"\r\n")
        self.expect(step, code, start)

    def close(self):
        self.sock.close()


def session(port, rcpt, subject):
    """Send one message; return how long each reply took (seconds, by step)."""
    s = Timed(port)
    try:
        s.command("EHLO", "EHLO client.test", "250")
        s.command("MAIL", "MAIL FROM:<alice@localhost>", "250")
        s.command("RCPT", f"RCPT TO:<{rcpt}>", "250")
        s.command("DATA", "DATA", "354")
        s.command("end of data", f"Subject: {subject}\r\n\r\nbody of {subject}\r\n.", "250")
        s.command("QUIT", "QUIT", "221")
    finally:
        s.close()
    return s.times


DIRECT = ('action "direct" relay host smtp://127.0.0.1:{port}\n'
          'match from local for domain "near.test" action "direct"\n'
          'match from local for domain "*.far.test" action "out"\n')
BUSY = 8             # relay domains whose routing waits on the slow table: 4 threads, 2 s a lookup
DIRECT_BOUND = 1.5   # seconds for mail through an action without tables to reach its peer


@unittest.skipUnless(os.geteuid() == 0, "needs root: deliveries as root")
class SlowTable(unittest.TestCase):
    def test_an_action_without_tables_does_not_wait_behind_a_slow_one(self):
        self.assertTrue(os.path.exists(SLOW_PLUGIN), f"{SLOW_PLUGIN} not built")
        with SmtpSink() as slow_sink, SmtpSink() as near_sink:
            out = 'action "out" relay domain <slow>\n'
            config = CONFIG.replace(out, out + DIRECT.format(port=near_sink.port))
            with postern.Daemon(config, name="slowtable-direct", prepare=prepare(slow_sink.port)) as d:
                for i in range(BUSY):  # a lookup each: the routing threads are all busy for 4 s
                    session(d.port, f"r@d{i}.far.test", f"busy {i}")
                start = time.monotonic()
                session(d.port, "n@near.test", "direct")
                got = near_sink.wait_messages(1, timeout=ARRIVAL_TIMEOUT)
                took = time.monotonic() - start
                self.assertEqual(len(got), 1, near_sink.describe() + "\n" + d.log())
                self.assertLess(took, DIRECT_BOUND, f"the direct relay took {took:.1f} s\n" + d.log())


    def test_sessions_are_answered_while_relay_routing_waits_on_the_table(self):
        self.assertTrue(os.path.exists(SLOW_PLUGIN), f"{SLOW_PLUGIN} not built")
        with SmtpSink() as sink, postern.Daemon(CONFIG, name="slowtable", prepare=prepare(sink.port)) as d:
            timings = []  # (what, step, seconds)

            def record(what, times):
                timings.extend((what, step, t) for step, t in times.items())

            for i in range(RELAYED):
                record(f"relay {i}", session(d.port, f"r{i}@far.test", f"relayed {i}"))
            early = 0
            for i in range(MAX_PROBES):
                arrived = bool(sink.messages())
                record(f"probe {i}", session(d.port, f"p{i}@localhost", f"probe {i}"))
                early += not arrived
                if arrived and i + 1 >= MIN_EARLY_PROBES * 2:
                    break
                time.sleep(PROBE_GAP)

            got = sink.wait_messages(RELAYED, timeout=ARRIVAL_TIMEOUT)
            self.assertEqual(len(got), RELAYED, sink.describe() + "\n" + d.log())
            rcpts = sorted(r for t in sink.transactions() if t.accepted for r in t.rcpts)
            self.assertEqual(rcpts, sorted(f"r{i}@far.test" for i in range(RELAYED)))
            self.assertTrue(d.wait_queue_empty(ARRIVAL_TIMEOUT), d.queue_entries())
            # The probes ran while the relay mail still waited on the table, which was asked
            # (which batch, then where it goes: two lookups at least, 2 s each).
            self.assertGreaterEqual(early, MIN_EARLY_PROBES, "the relay mail arrived before the probes ran")
            with open(d.path("slow.map.calls")) as f:
                self.assertGreaterEqual(f.read().split("\n").count("lookup far.test"), 2)

            worst = max(timings, key=lambda t: t[2])
            by_step = {}
            for _what, step, t in timings:
                by_step[step] = max(by_step.get(step, 0.0), t)
            summary = ", ".join(f"{step} {t * 1000:.0f} ms" for step, t in by_step.items())
            print(f"\n{len(timings)} replies in {len({w for w, _s, _t in timings})} sessions during routing and after; "
                  f"slowest by step: {summary}", file=sys.stderr)
            slow = [f"{what} {step}: {t * 1000:.0f} ms" for what, step, t in timings if t >= BOUND]
            self.assertEqual(slow, [], f"replies over {BOUND * 1000:.0f} ms (worst {worst})")


if __name__ == "__main__":
    postern.run_tests()
