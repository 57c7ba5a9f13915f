#!/usr/bin/env python3
"""tests/torture/torture.py — kill -9 torture of posternd under load (issue 17).

What it does, per mode (`maildir`, `relay`, or both in turn):

  load     CLIENTS (20) threads send messages over SMTP without pause, one to
           five per connection, one recipient (four in five) or two; each
           message is made from its id alone (make_message), so the audit can
           rebuild its bytes. A message counts as acknowledged when the reply
           to its DATA is 250; a client whose connection dies or is refused
           waits a moment and connects again.
  killer   every 0.3-3 s (uniform, --min/--max) the WHOLE daemon is killed
           with SIGKILL (the posternd this script started and every process
           below it, all stopped first, then killed: postern.Daemon.kill9),
           then restarted on the same spool, config and port; the time from
           the exec to the first banner is the restart time. A restart that
           fails (posternd exits, or no banner in 10 s) is counted, its
           reason kept, and it is tried again (at most 20 times).
  drain    after CYCLES kills the load stops; the last daemon delivers what
           is queued (`posternctl schedule all` every 2 s), then is stopped
           with SIGTERM, started once more (the final clean run: its start
           must not complain about the spool) and stopped again.
  audit    every acknowledged (message, recipient) pair delivered (lost = 0);
           every delivered file ends with exactly the bytes sent and has only
           Return-Path:, Delivered-To: and Received: lines before them
           (corrupt = 0); nothing left in the spool (messages/ and anything
           but the journal's segments and the lock files); no file in
           Maildir/tmp; no failed restart; no 'left alone' line in the log.
           Duplicates (copies beyond the first of a pair) are counted and
           reported, as a share of the acknowledged pairs; so are the pairs
           delivered that were never acknowledged (the connection died after
           the final dot: legitimate).

In relay mode the daemon under torture relays every message to a second
posternd (the sink, never killed) that delivers into its own maildir; the
audit reads the sink's maildir. Both run on loopback ports from
postern.free_port().

Prints one line of figures per mode and a JSON line (RESULT {...}); exits 1
when an audit fails. Needs root (the daemon's privilege split, delivery as
user nobody); without it, it prints why and exits 77 (CTest's skip code).

Usage:
  POSTERN_BUILD_DIR=build tests/torture/torture.py [--cycles 100] [--mode both]
      [--clients 20] [--min 0.3] [--max 3] [--seed N] [--keep] [--json FILE]
      [--conf 'LINE' ...]
Depends on: tests/integration/postern.py (the daemon harness), posternd,
postern-local, posternctl and the maildir and relay plugins in the build.
"""

import argparse
import collections
import hashlib
import json
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import postern  # noqa: E402

DOMAIN = "torture.test"
RESTART_ATTEMPTS = 20        # tries per restart before the run gives up
CLIENT_TIMEOUT = 10.0        # seconds any SMTP exchange may take
JOIN_TIMEOUT = 30.0          # seconds the clients get to finish after the load stops
LINE_RX = re.compile(rb"^(Return-Path|Delivered-To|Received): |^[ \t]")


# ---- messages ----

# Byte values mapped onto printable ASCII and spaces (the body's alphabet).
_ALPHABET = (b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:-_!?()" * 4)[:256]
_TABLE = bytes.maketrans(bytes(range(256)), _ALPHABET)


def make_message(mid):
    """The message with id `mid`, CRLF line ends, made from the id alone.

    Sizes from 300 bytes to 20 KiB (one in fifty about 200 KiB); lines of 0
    to 200 characters, one in twenty starting with a dot (dot-stuffing), all
    printable ASCII.
    """
    rng = random.Random(mid)
    head = (f"From: Torture <torture@client.test>\r\n"
            f"To: <user@{DOMAIN}>\r\n"
            f"Subject: torture {mid}\r\n"
            f"Message-ID: <{mid}@client.test>\r\n"
            "Date: Tue, 08 Dec 2026 01:00:00 +0000\r\n"
            f"X-Torture-Id: {mid}\r\n\r\n").encode()
    size = rng.randint(200_000, 210_000) if rng.random() < 0.02 else rng.randint(300, 20_000)
    text = rng.randbytes(size).translate(_TABLE)
    lines, pos = [], 0
    while pos < size:
        n = rng.randint(0, 200)
        line = text[pos:pos + n].rstrip(b" ")
        pos += n
        lines.append(b"." + line if rng.random() < 0.05 else line)
    return head + b"\r\n".join(lines) + b"\r\n"


def expected_tail(mid):
    """What a delivered copy must end with: the message as a maildir holds it (LF)."""
    return make_message(mid).replace(b"\r\n", b"\n")


def recipients_of(mid):
    rng = random.Random("rcpt" + mid)
    return [f"u1@{DOMAIN}"] + ([f"u2@{DOMAIN}"] if rng.random() < 0.2 else [])


# ---- the load ----

class Load:
    """CLIENTS threads sending until stop(); every outcome is recorded."""

    def __init__(self, port, clients, tag, seed):
        self.port = port
        self.clients = clients
        self.tag = tag
        self.seed = seed
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}           # mid -> [recipients accepted]
        self.attempted = 0        # DATA sent
        self.refused_data = collections.Counter()   # reply code to DATA other than 250
        self.refused_cmd = collections.Counter()    # 4xx/5xx before DATA
        self.broken = 0           # connection died during a transaction
        self.connect_failures = 0
        self.threads = []

    def start(self):
        for c in range(self.clients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def _client(self, c):
        rng = random.Random(f"{self.seed}-{c}")
        seq = 0
        while not self.stopping.is_set():
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=CLIENT_TIMEOUT)
            except OSError:
                with self.lock:
                    self.connect_failures += 1
                time.sleep(rng.uniform(0.01, 0.05))
                continue
            try:
                s.ehlo()
                for _ in range(rng.randint(1, 5)):
                    if self.stopping.is_set():
                        break
                    seq += 1
                    mid = f"{self.tag}.{c}.{seq}"
                    self._send_one(s, mid)
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    pass
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.broken += 1
                time.sleep(rng.uniform(0.01, 0.05))
            finally:
                try:
                    s.close()
                except OSError:
                    pass

    def _send_one(self, s, mid):
        code, _ = s.mail("torture@client.test")
        if code != 250:
            with self.lock:
                self.refused_cmd[code] += 1
            s.rset()
            return
        accepted = []
        for r in recipients_of(mid):
            code, _ = s.rcpt(r)
            if code == 250:
                accepted.append(r)
            else:
                with self.lock:
                    self.refused_cmd[code] += 1
        if not accepted:
            s.rset()
            return
        with self.lock:
            self.attempted += 1
        code, _ = s.data(make_message(mid))
        with self.lock:
            if code == 250:
                self.acked[mid] = accepted
            else:
                self.refused_data[code] += 1

    def acked_count(self):
        with self.lock:
            return len(self.acked)


# ---- the daemon ----

class TortureDaemon(postern.Daemon):
    """postern.Daemon whose start is timed and polled finely, and whose
    failed starts are counted rather than raised."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.restart_ms = []
        self.failed_restarts = []   # (cycle, first lines of the reason)

    def _wait_ready(self):
        deadline = time.monotonic() + postern.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"posternd exited with {self.proc.returncode} at start-up")
            if self._probe():
                return
            time.sleep(0.002)
        raise RuntimeError(f"posternd did not answer on port {self.port} within {postern.START_TIMEOUT}s")

    def timed_start(self, cycle):
        """Start (after a kill) until it serves; False when every attempt failed."""
        for attempt in range(RESTART_ATTEMPTS):
            log_size = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            t0 = time.monotonic()
            try:
                self._spawn()
                self.restart_ms.append((time.monotonic() - t0) * 1000)
                return True
            except RuntimeError as e:
                with open(self.log_path, "rb") as f:
                    f.seek(log_size)
                    tail = f.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                self.failed_restarts.append((cycle, f"{e}: " + " | ".join(tail)))
                if self.proc is not None and self.proc.poll() is None:
                    self.kill9()
                self.proc = None
                time.sleep(0.1)
        return False


def spool_leftovers(spool):
    """Files under the spool other than the lock files and key-check at its
    top and the journal's segments, and empty folders below the store's own."""
    left = []
    for d, dirs, files in os.walk(spool):
        if d == spool and "journal" in dirs:
            dirs.remove("journal")
        for f in files:
            if d == spool and (f.endswith(".lock") or f == "key-check"):
                continue
            left.append(os.path.relpath(os.path.join(d, f), spool))
        # The store's own folders (incoming/, messages/, quarantine/) stay.
        if os.path.dirname(d) != spool and d != spool and not files and not dirs:
            left.append(os.path.relpath(d, spool) + "/")
    return sorted(left)


def posternctl(d, *args):
    try:
        return subprocess.run([os.path.join(postern.BUILD_DIR, "posternctl"), "-f", d.conf_path] + list(args),
                              capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None


def drain(d, timeout):
    """Wait until the daemon's messages/ is empty, asking for every envelope
    to be tried now every 2 s; True when it emptied in time."""
    deadline = time.monotonic() + timeout
    last_kick = 0.0
    while time.monotonic() < deadline:
        if not d.queue_entries():
            return True
        if time.monotonic() - last_kick > 2:
            posternctl(d, "schedule", "all")
            last_kick = time.monotonic()
        time.sleep(0.1)
    return not d.queue_entries()


# ---- the audit ----

def read_maildir(maildir):
    """(mid, recipient) -> [(intact, queue id) per delivered copy], plus
    files that name no message. Only the verdicts are kept, not the bytes."""
    copies = collections.defaultdict(list)
    strays = []
    new = os.path.join(maildir, "new")
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        data = postern.read_bytes(os.path.join(new, name))
        m = re.search(rb"^X-Torture-Id: (\S+)$", data, re.M)
        r = re.search(rb"^Delivered-To: (\S+)$", data, re.M)
        if not m or not r:
            strays.append(name)
            continue
        mid = m.group(1).decode()
        copies[(mid, r.group(1).decode())].append((is_intact(mid, data), queue_id(data)))
    return copies, strays


def ok_lines(log):
    """(queue msgid, recipient) -> how many 'delivery ... result=Ok' lines the log has."""
    out = collections.Counter()
    for m in re.finditer(r"(?:mda|mta) delivery evpid=([0-9a-f]{8})[0-9a-f]* .*?\bto=(\S+) .*?result=Ok", log):
        out[(m.group(1), m.group(2))] += 1
    return out


def queue_id(data):
    """The id the daemon under torture gave the copy: its Received: line, the
    last one above the message (in relay mode the sink's comes first)."""
    ids = re.findall(rb"with \S+ id ([0-9a-f]{8})\b", data)
    return ids[-1].decode() if ids else None


def classify_duplicates(copies, extra, log):
    """Duplicates whose every copy the daemon logged as delivered (the spool
    removal lagged behind a result it had logged), and the others (a result
    never read before the kill: the agent's batch was unfinished, or the
    copy was made in the instant before its result could be sent)."""
    oks = ok_lines(log)
    logged = unlogged = 0
    for (mid, rcpt), n_extra in extra.items():
        ids = {qid for _, qid in copies[(mid, rcpt)]}
        n_ok = sum(oks[(i, rcpt)] for i in ids if i)
        n_copies = n_extra + 1
        logged += min(n_extra, max(0, n_ok - 1))
        unlogged += max(0, n_copies - max(n_ok, 1))
    return logged, unlogged


def is_intact(mid, data):
    tail = expected_tail(mid)
    if not data.endswith(tail):
        return False
    head = data[:-len(tail)]
    return all(LINE_RX.match(line) for line in head.split(b"\n")[:-1]) and head.endswith(b"\n")


def files_in(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def audit(load, maildir, daemons, kills, restart_ms, failed_restarts, drained, clients_joined):
    copies, strays = read_maildir(maildir)
    acked_pairs = {(mid, r) for mid, rs in load.acked.items() for r in rs}
    lost = sorted(p for p in acked_pairs if p not in copies)
    corrupt = sorted(p for p, verdicts in copies.items() for intact, _ in verdicts if not intact)
    extra = {p: len(datas) - 1 for p, datas in copies.items() if len(datas) > 1}
    dup_copies = sum(extra.values())
    unacked_delivered = sorted(p for p in copies if p not in acked_pairs)
    tmp_left = files_in(os.path.join(maildir, "tmp"))
    spool_left = {d.name: spool_leftovers(d.spool) for d in daemons}
    left_alone = {d.name: len(re.findall(r"left alone", d.log())) for d in daemons}
    acked_n = max(1, len(acked_pairs))
    dup_logged, dup_unlogged = classify_duplicates(copies, extra, daemons[0].log())
    r = {
        "kills": kills,
        "acked_messages": len(load.acked),
        "acked_pairs": len(acked_pairs),
        "attempted": load.attempted,
        "refused_data": dict(load.refused_data),
        "refused_cmd": dict(load.refused_cmd),
        "broken_sessions": load.broken,
        "delivered_files": sum(len(v) for v in copies.values()),
        "lost": len(lost),
        "lost_sample": lost[:5],
        "corrupt": len(corrupt),
        "corrupt_sample": corrupt[:5],
        "stray_files": len(strays),
        "duplicates": dup_copies,
        "duplicate_pct": round(100.0 * dup_copies / acked_n, 3),
        "duplicated_pairs_acked": sum(1 for p in extra if p in acked_pairs),
        "duplicates_result_logged": dup_logged,
        "duplicates_result_unlogged": dup_unlogged,
        "unacked_delivered": len(unacked_delivered),
        "maildir_tmp_left": len(tmp_left),
        "spool_left": {k: len(v) for k, v in spool_left.items()},
        "spool_left_sample": {k: v[:5] for k, v in spool_left.items() if v},
        "left_alone_lines": left_alone,
        "restarts": len(restart_ms),
        "failed_restarts": len(failed_restarts),
        "failed_restart_reasons": [f"cycle {c}: {w[:300]}" for c, w in failed_restarts[:5]],
        "restart_ms_median": round(statistics.median(restart_ms), 1) if restart_ms else None,
        "restart_ms_p95": round(sorted(restart_ms)[int(0.95 * (len(restart_ms) - 1))], 1) if restart_ms else None,
        "restart_ms_max": round(max(restart_ms), 1) if restart_ms else None,
        "drained": drained,
        "clients_joined": clients_joined,
    }
    r["ok"] = (r["lost"] == 0 and r["corrupt"] == 0 and r["stray_files"] == 0 and r["maildir_tmp_left"] == 0
               and not any(spool_left.values()) and not any(left_alone.values()) and r["failed_restarts"] == 0
               and drained and clients_joined and r["acked_messages"] > 0)
    return r


# ---- one mode ----

def run_mode(mode, args):
    tag = f"{mode[0]}{args.seed}"
    rng = random.Random(args.seed)
    nobody = pwd.getpwnam("nobody")
    sink = None

    def make_maildir(folder):
        md = os.path.join(folder, "Maildir")
        os.mkdir(md, 0o700)
        os.chown(md, nobody.pw_uid, nobody.pw_gid)

    maildir_action = (f'action "local" maildir "@DIR@/Maildir" user nobody\n'
                      f'match from any for domain "{DOMAIN}" action "local"\n')
    extra = "".join(line + "\n" for line in args.conf)
    if mode == "relay":
        sink = postern.Daemon(maildir_action, name="torture-sink", prepare=make_maildir).__enter__()
        config = (f'action "out" relay host smtp://127.0.0.1:{sink.port}\n'
                  f'match from any for domain "{DOMAIN}" action "out"\n')
        d = TortureDaemon(extra + config, name=f"torture-{mode}")
    else:
        d = TortureDaemon(extra + maildir_action, name=f"torture-{mode}", prepare=make_maildir)
    daemons = [d] + ([sink] if sink else [])
    ok = False
    try:
        d.__enter__()
        load = Load(d.port, args.clients, tag, args.seed)
        t_start = time.monotonic()
        load.start()
        kills = 0
        gave_up = False
        for cycle in range(args.cycles):
            time.sleep(rng.uniform(args.min, args.max))
            d.kill9()
            kills += 1
            if not d.timed_start(cycle):
                gave_up = True
                break
            if args.verbose:
                print(f"  {mode} cycle {cycle + 1}/{args.cycles}: acked {load.acked_count()}, "
                      f"restart {d.restart_ms[-1]:.1f} ms", flush=True)
        load_s = time.monotonic() - t_start
        clients_joined = load.stop()
        drained = not gave_up and drain(d, args.drain)
        if sink:
            drained = drained and drain(sink, args.drain)
        # The final clean run: a stop, a start on the same spool, a stop.
        d.stop()
        if not gave_up:
            d.timed_start(args.cycles)
            time.sleep(1.0)
            d.stop()
        if sink:
            sink.stop()
        maildir = (sink or d).path("Maildir")
        r = audit(load, maildir, daemons, kills, d.restart_ms[:kills], d.failed_restarts, drained, clients_joined)
        r.update({"mode": mode, "cycles": args.cycles, "clients": args.clients, "seed": args.seed, "conf": args.conf,
                  "load_seconds": round(load_s, 1),
                  "acked_per_s": round(r["acked_messages"] / load_s, 1) if load_s else None,
                  "ok_lines": len(re.findall(r"(mda|mta) delivery .*result=Ok", d.log()))})
        ok = r["ok"]
        return r
    finally:
        keep = args.keep or not ok
        for x in daemons:
            if x.dir is None:
                continue
            x.stop()
            if keep:
                sys.stderr.write(f"[{x.name}] kept {x.dir}\n")
            else:
                shutil.rmtree(x.dir, ignore_errors=True)
            x.dir = None


def summary(r):
    return (f"{r['mode']:7} kills={r['kills']} acked={r['acked_messages']} (pairs {r['acked_pairs']}, "
            f"{r['acked_per_s']}/s) lost={r['lost']} corrupt={r['corrupt']} "
            f"duplicates={r['duplicates']} ({r['duplicate_pct']}%; result logged {r['duplicates_result_logged']}, "
            f"not logged {r['duplicates_result_unlogged']}) unacked-delivered={r['unacked_delivered']} "
            f"restart ms median={r['restart_ms_median']} p95={r['restart_ms_p95']} max={r['restart_ms_max']} "
            f"failed-restarts={r['failed_restarts']} spool-left={sum(r['spool_left'].values())} "
            f"maildir-tmp-left={r['maildir_tmp_left']} left-alone={sum(r['left_alone_lines'].values())} "
            f"{'OK' if r['ok'] else 'FAILED'}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cycles", type=int, default=100, help="kills per mode (default 100)")
    p.add_argument("--mode", choices=("maildir", "relay", "both"), default="both")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--min", type=float, default=0.3, help="shortest time between kills, s")
    p.add_argument("--max", type=float, default=3.0, help="longest time between kills, s")
    p.add_argument("--drain", type=float, default=120.0, help="seconds allowed to deliver what is queued at the end")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work folders even when the audit passes")
    p.add_argument("--json", help="append the result lines to this file")
    p.add_argument("--conf", action="append", default=[],
                   help="a configuration line for the daemon under torture (repeatable), e.g. "
                        "'scheduler limit max-evp-batch-size 1'")
    p.add_argument("-v", "--verbose", action="store_true", help="a line per kill")
    args = p.parse_args()
    # Stopped (a CTest timeout, kill PID): unwind, so that the daemons,
    # which run in sessions of their own, are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("torture.py: needs root (posternd's privilege split, delivery as user nobody); skipped")
        return 77
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    modes = ["maildir", "relay"] if args.mode == "both" else [args.mode]
    failed = False
    for mode in modes:
        r = run_mode(mode, args)
        print(summary(r), flush=True)
        print("RESULT " + json.dumps(r), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r) + "\n")
        failed = failed or not r["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
