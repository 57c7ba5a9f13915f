#!/usr/bin/env python3
"""memory.py: the memory of a running posternd under two loads (issue 15).

  memory.py big  HOST PORT WORKDIR [--clients 100] [--size-mib 10]
  memory.py idle HOST PORT WORKDIR N [--hold 5] [--inflight 200]

The server is the process tree of the PID in WORKDIR/server.pid (the root
posternd; its child and delivery agents are descendants). Its memory is the
harness's procstat.mem: RSS and PSS summed over the tree, from
/proc/PID/smaps_rollup. Both print a summary line and "RESULT {json}".

big: CLIENTS connections at once, each with one message of SIZE MiB. Every
client does EHLO, MAIL, RCPT (rcpt@bench.test) and DATA; once all have had
their 354 (or after 30 s) they all stream their bodies at the same time, in
chunks of 64 KiB, then "." and wait for the 250. The tree's memory is sampled
every 0.2 s (and at each 250), before, during the DATA phase (peak kept) and
while the messages are delivered (peak kept apart: the delivery agents run
then; until Maildir/new has the files and server.log a result=Ok line for
each). The audit: every client got 250, then (within --deliver-s) Maildir/new
holds exactly CLIENTS files and each ends with its own X-Memory-Bench header
and the body byte for byte (LF line ends, as the maildir stores them).
Exit 1 when a check fails.

idle: N sessions that have the greeting and the reply to EHLO, held HOLD s.
Loopback has about 28,000 ephemeral ports per source address, so the
sessions come from 127.0.0.2, 127.0.0.3, ... (20,000 each), each socket bound
to its source (IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect), and from
several worker processes when N is more than one process's descriptor limit
allows (each holds at most hard limit - 64). At most INFLIGHT handshakes at
a time per worker. Memory per session =
(peak PSS while holding - PSS of the fresh server) / sessions ready. Setup
gives up after --setup-s (300) or 20 s without progress; sessions that got
anything but 220 and 250 count as failed, with the first reply kept.
"""
import argparse, errno, json, os, resource, selectors, socket, sys, time

BENCH = os.environ.get("BENCH") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/bench")
sys.path.insert(0, BENCH)
import procstat  # noqa: E402  (the harness's)

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h


def per_process(root):
    """{pid: (name, rss KiB, pss KiB)} for the tree of root."""
    out = {}
    for p in procstat.tree(root):
        try:
            name = open(f"/proc/{p}/comm").read().strip()
            rss = pss = 0
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
            out[p] = (name, rss, pss)
        except (OSError, ValueError):
            pass
    return out


class Peak:
    """Highest summed RSS/PSS and process count seen, and the biggest process."""

    def __init__(self, root):
        self.root, self.rss, self.pss, self.nproc, self.samples = root, 0, 0, 0, 0
        self.top = (None, 0, 0)  # (name, rss, pss) of the process with the highest RSS

    def sample(self):
        procs = per_process(self.root)
        self.rss = max(self.rss, sum(v[1] for v in procs.values()))
        self.pss = max(self.pss, sum(v[2] for v in procs.values()))
        self.nproc = max(self.nproc, len(procs))
        for v in procs.values():
            if v[1] > self.top[1]:
                self.top = v
        self.samples += 1

    def json(self):
        return {"rss_mib": mib(self.rss), "pss_mib": mib(self.pss), "nproc": self.nproc, "samples": self.samples,
                "top_process": {"name": self.top[0], "rss_mib": mib(self.top[1]), "pss_mib": mib(self.top[2])}}


def mib(kib):
    return round(kib / 1024, 1)


def server_pid(workdir):
    return int(open(os.path.join(workdir, "server.pid")).read())


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root may raise the hard limit
            return
        except (ValueError, OSError):
            sys.exit(f"need {need} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))


def reply_complete(buf):
    """The last line of a complete reply ("NNN text\\r\\n"), or None."""
    if not buf.endswith(b"\r\n"):
        return None
    last = buf[:-2].rsplit(b"\r\n", 1)[-1]
    return last if last[3:4] == b" " or len(last) == 3 else None


# ---------------------------------------------------------------- big

def body_lines(size):
    """A deterministic body of `size` bytes or a little more: CRLF lines, none starting with a dot."""
    line = b"".join(bytes([33 + (i * 7) % 90]) for i in range(76))
    line = line.replace(b".", b"-") + b"\r\n"
    n = size // len(line) + 1
    # Each line differs (a counter), so a misplaced or repeated chunk is seen.
    return b"".join(b"%08d " % i + line[9:] for i in range(n))


class BigClient:
    def __init__(self, idx, tag, host, port, body):
        self.idx, self.tag = idx, tag
        self.header = (f"From: <bench@client.test>\r\nTo: <rcpt@bench.test>\r\nSubject: memory bench {idx}\r\n"
                       f"Message-ID: <{tag}.{idx}@client.test>\r\nX-Memory-Bench: {tag}-{idx}\r\n\r\n").encode()
        self.segments = [memoryview(self.header), memoryview(body), memoryview(b".\r\n")]
        self.seg, self.off = 0, 0
        self.phase, self.buf, self.error, self.final = "greet", b"", None, None
        self.t_dot = self.t_250 = None
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex((host, port))

    def send_body(self, chunk=65536):
        """Sends what the socket takes now; True when the "." has gone."""
        while self.seg < len(self.segments):
            seg = self.segments[self.seg]
            try:
                n = self.sock.send(seg[self.off:self.off + chunk])
            except BlockingIOError:
                return False
            self.off += n
            if self.off == len(seg):
                self.seg, self.off = self.seg + 1, 0
        return True


def run_big(a):
    root = server_pid(a.workdir)
    raise_nofile(a.clients + 64)
    body = body_lines(a.size_mib * 1024 * 1024)
    body_lf = body.replace(b"\r\n", b"\n")
    tag = "m%x" % int(time.time())
    maildir_new = os.path.join(a.workdir, "Maildir", "new")
    files_before = len(os.listdir(maildir_new))

    time.sleep(0.5)
    base = procstat.mem(root)
    base_procs = per_process(root)
    data_peak, deliver_peak = Peak(root), Peak(root)
    sel = selectors.DefaultSelector()
    clients = [BigClient(i, tag, a.host, a.port, body) for i in range(a.clients)]
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    commands = {"greet": (b"220", b"EHLO big.client.test\r\n", "ehlo"),
                "ehlo": (b"250", b"MAIL FROM:<bench@client.test>\r\n", "mail"),
                "mail": (b"250", b"RCPT TO:<rcpt@bench.test>\r\n", "rcpt"),
                "rcpt": (b"250", b"DATA\r\n", "data"),
                "data": (b"354", None, "wait")}
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    streaming = False
    t_stream = None
    last_sample = 0.0

    def fail(c, why):
        c.error = why
        c.phase = "failed"
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def pending():
        return [c for c in clients if c.phase not in ("done", "failed")]

    while pending() and time.monotonic() < deadline:
        now = time.monotonic()
        if not streaming and (all(c.phase in ("wait", "failed") for c in clients) or now - t0 > 30):
            streaming, t_stream = True, now
            for c in clients:
                if c.phase == "wait":
                    c.phase = "body"
                    sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        if now - last_sample >= 0.2:
            data_peak.sample()
            last_sample = time.monotonic()
        for key, ev in sel.select(timeout=0.1):
            c = key.data
            try:
                if ev & selectors.EVENT_WRITE and c.phase == "body":
                    if c.send_body():
                        c.phase, c.t_dot = "dot", time.monotonic()
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if not ev & selectors.EVENT_READ:
                    continue
                data = c.sock.recv(4096)
                if not data:
                    fail(c, f"closed by the server in phase {c.phase}")
                    continue
                c.buf += data
                last = reply_complete(c.buf)
                if last is None:
                    continue
                reply, c.buf = c.buf, b""
                if c.phase in commands:
                    want, nxt, phase = commands[c.phase]
                    if not reply.startswith(want):
                        fail(c, f"{c.phase}: {reply[:200]!r}")
                        continue
                    if nxt:
                        c.sock.sendall(nxt)
                    c.phase = phase
                elif c.phase == "dot":
                    c.final, c.t_250 = last.decode(errors="replace"), time.monotonic()
                    if not last.startswith(b"250"):
                        fail(c, f"after the dot: {c.final}")
                        continue
                    c.phase = "done"
                    data_peak.sample()
                    try:
                        c.sock.sendall(b"QUIT\r\n")
                    except OSError:
                        pass
                    sel.unregister(c.sock)
                    c.sock.close()
                else:
                    fail(c, f"unexpected reply in phase {c.phase}: {reply[:200]!r}")
            except OSError as e:
                fail(c, f"{c.phase}: {e}")
    for c in pending():
        fail(c, f"timed out in phase {c.phase}")
    t_data = time.monotonic() - t0
    stream_s = round(time.monotonic() - t_stream, 2) if t_stream else None
    accepted = sum(c.phase == "done" for c in clients)

    # Delivery: wait (bounded) for the files and the daemon's word that each
    # delivery is done (its result=Ok lines), sampling the tree meanwhile.
    t1 = time.monotonic()
    want = files_before + accepted
    while time.monotonic() - t1 < a.deliver_s:
        deliver_peak.sample()
        if len(os.listdir(maildir_new)) >= want and deliveries_logged(a.workdir) >= want:
            break
        time.sleep(0.2)
    t_deliver = time.monotonic() - t1
    time.sleep(1)
    after = procstat.mem(root)

    audit = audit_maildir(maildir_new, tag, clients, body_lf)
    errors = [f"client {c.idx}: {c.error}" for c in clients if c.error]
    dots = [c.t_250 - c.t_dot for c in clients if c.t_250 and c.t_dot]
    r = {"mode": "big", "clients": a.clients, "size_mib": a.size_mib, "message_bytes": len(clients[0].header) + len(body),
         "accepted": accepted, "errors": errors[:5], "n_errors": len(errors),
         "data_s": round(t_data, 2), "stream_s": stream_s,
         "dot_to_250_s_max": round(max(dots), 3) if dots else None,
         "deliver_s": round(t_deliver, 2),
         "base": {"rss_mib": mib(base["rss_kib"]), "pss_mib": mib(base["pss_kib"]), "nproc": base["nproc"],
                  "processes": {str(p): {"name": v[0], "rss_mib": mib(v[1])} for p, v in base_procs.items()}},
         "data_peak": data_peak.json(), "deliver_peak": deliver_peak.json(),
         "after": {"rss_mib": mib(after["rss_kib"]), "pss_mib": mib(after["pss_kib"]), "nproc": after["nproc"]},
         "audit": audit}
    r["ok"] = accepted == a.clients and audit["ok"]
    print(f"{accepted}/{a.clients} messages of {a.size_mib} MiB got 250 in {r['data_s']} s; "
          f"peak while receiving: RSS {r['data_peak']['rss_mib']} MiB, PSS {r['data_peak']['pss_mib']} MiB "
          f"(fresh server: RSS {r['base']['rss_mib']}, PSS {r['base']['pss_mib']}); while delivering: "
          f"PSS {r['deliver_peak']['pss_mib']} MiB; delivered byte-exact: {audit['exact']}/{a.clients}"
          + ("" if r["ok"] else "  FAILED"))
    print("RESULT " + json.dumps(r))
    return 0 if r["ok"] else 1


def deliveries_logged(workdir):
    """The "mda delivery ... result=Ok" lines in WORKDIR/server.log so far."""
    try:
        with open(os.path.join(workdir, "server.log"), errors="replace") as f:
            return sum(1 for line in f if "mda delivery " in line and "result=Ok" in line)
    except OSError:
        return 0


def audit_maildir(maildir_new, tag, clients, body_lf):
    """Each accepted message once in Maildir/new, its header and body intact."""
    seen, exact, bad = {}, 0, []
    for f in sorted(os.listdir(maildir_new)):
        data = open(os.path.join(maildir_new, f), "rb").read()
        marker = f"X-Memory-Bench: {tag}-".encode()
        at = data.find(marker)
        if at < 0:
            continue
        end = data.index(b"\n", at)
        idx = int(data[at + len(marker):end])
        seen[idx] = seen.get(idx, 0) + 1
        if data[end + 1:] == b"\n" + body_lf:
            exact += 1
        elif len(bad) < 3:
            bad.append(f"{f}: {len(data)} bytes, body differs")
    accepted = {c.idx for c in clients if c.phase == "done"}
    dup = sorted(i for i, n in seen.items() if n > 1)
    missing = sorted(accepted - set(seen))
    return {"files": sum(seen.values()), "exact": exact, "duplicates": dup[:10], "missing": missing[:10],
            "bad": bad, "ok": not dup and not missing and exact == len(accepted) == sum(seen.values())}


# ---------------------------------------------------------------- idle

PER_SOURCE = 20000  # sessions per source address (about 28,000 ephemeral ports each)


def idle_worker(first, count, a, report):
    """Opens sessions first..first+count-1, writes one JSON line of counts to
    `report` once set up, holds them until `report`'s other end closes or
    --hold + 60 s pass, then closes them."""
    sources = lambda i: f"127.0.0.{2 + i // PER_SOURCE}"
    sel = selectors.DefaultSelector()
    held, inflight, failures = [], {}, {}
    ready = failed = opened = 0

    def count_failure(why):
        nonlocal failed
        failed += 1
        failures[why] = failures.get(why, 0) + 1

    def drop(s, why):
        count_failure(why)
        sel.unregister(s)
        del inflight[s]
        s.close()

    t0 = time.monotonic()
    last_progress = t0
    while ready + failed < count:
        now = time.monotonic()
        if now - t0 > a.setup_s or now - last_progress > 20:
            break
        while opened < count and len(inflight) < a.inflight:
            i = first + opened
            opened += 1
            s = socket.socket()
            try:
                s.setblocking(False)
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((sources(i), 0))
                rc = s.connect_ex((a.host, a.port))
                if rc not in (0, errno.EINPROGRESS):
                    raise OSError(rc, os.strerror(rc))
            except OSError as e:
                s.close()
                count_failure(f"connect: {e.strerror}")
                continue
            inflight[s] = ["greet", b""]
            sel.register(s, selectors.EVENT_READ)
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            st = inflight[s]
            try:
                data = s.recv(4096)
            except OSError as e:
                drop(s, f"{st[0]}: {e.strerror}")
                continue
            if not data:
                drop(s, f"{st[0]}: closed by the server")
                continue
            st[1] += data
            last = reply_complete(st[1])
            if last is None:
                continue
            if st[0] == "greet":
                if not st[1].startswith(b"220"):
                    drop(s, "greeting: " + last.decode(errors="replace")[:80])
                    continue
                st[0], st[1] = "ehlo", b""
                s.sendall(b"EHLO idle.client.test\r\n")
            else:
                if not st[1].startswith(b"250"):
                    drop(s, "EHLO: " + last.decode(errors="replace")[:80])
                    continue
                sel.unregister(s)
                del inflight[s]
                held.append(s)
                ready += 1
                last_progress = time.monotonic()
    os.write(report, (json.dumps({"ready": ready, "failed": failed, "waiting": len(inflight),
                                  "setup_s": time.monotonic() - t0, "failures": failures}) + "\n").encode())
    # Hold until the parent has sampled (it closes its end), bounded.
    sel2 = selectors.DefaultSelector()
    sel2.register(report, selectors.EVENT_READ)
    sel2.select(timeout=a.hold + 60)
    # Did the held sessions stay open? Anything readable now is a close or a reply.
    closed = 0
    for s in held:
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) is not None:
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    os.write(report, (json.dumps({"closed_while_held": closed}) + "\n").encode())
    for s in held + list(inflight):
        s.close()


def run_idle(a):
    root = server_pid(a.workdir)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # One process holds at most what its descriptor limit allows: several
    # workers when N is larger (the hard limit cannot be raised without
    # CAP_SYS_RESOURCE).
    per_worker = min(hard - 64, PER_SOURCE)
    workers = (a.n + per_worker - 1) // per_worker
    time.sleep(0.5)
    base = procstat.mem(root)
    t0 = time.monotonic()
    kids = []
    for w in range(workers):
        first = w * per_worker
        r_up, w_up = os.pipe()      # worker -> parent: its counts
        r_down, w_down = os.pipe()  # parent -> worker: closed when done
        pid = os.fork()
        if pid == 0:
            os.close(r_up)
            os.close(w_down)
            try:
                idle_worker(first, min(per_worker, a.n - first), a, w_up)
            finally:
                os._exit(0)
        os.close(w_up)
        os.close(r_down)
        kids.append((pid, os.fdopen(r_up), w_down))
    counts = []
    for pid, up, down in kids:  # each worker bounds its own setup in time
        line = up.readline()
        counts.append(json.loads(line) if line else {"ready": 0, "failed": 0, "waiting": 0, "failures": {"worker": 1}})
    setup_s = time.monotonic() - t0
    ready = sum(c["ready"] for c in counts)
    failed = sum(c["failed"] for c in counts)
    waiting = sum(c["waiting"] for c in counts)
    failures = {}
    for c in counts:
        for k, v in c["failures"].items():
            failures[k] = failures.get(k, 0) + v

    peak = Peak(root)
    end = time.monotonic() + a.hold
    while True:
        peak.sample()
        if time.monotonic() >= end:
            break
        time.sleep(0.5)
    closed_meanwhile = 0
    for pid, up, down in kids:
        os.close(down)
        line = up.readline()
        closed_meanwhile += json.loads(line)["closed_while_held"] if line else 0
        up.close()
        os.waitpid(pid, 0)
    time.sleep(1)
    after = procstat.mem(root)
    per = lambda k: round((getattr(peak, k) - base[k + "_kib"]) / ready, 2) if ready else None
    r = {"mode": "idle", "requested": a.n, "ready": ready, "failed": failed, "waiting": waiting,
         "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])[:5]),
         "closed_while_held": closed_meanwhile, "workers": workers,
         "sources": (a.n + PER_SOURCE - 1) // PER_SOURCE, "setup_s": round(setup_s, 2),
         "hold_s": a.hold, "base_rss_mib": mib(base["rss_kib"]), "base_pss_mib": mib(base["pss_kib"]),
         "hold": peak.json(), "rss_kib_per_session": per("rss"), "pss_kib_per_session": per("pss"),
         "after_close_pss_mib": mib(after["pss_kib"])}
    print(f"{ready}/{a.n} sessions ready in {r['setup_s']} s ({failed} failed, {waiting} still waiting, "
          f"{closed_meanwhile} closed while held); PSS {r['base_pss_mib']} -> {r['hold']['pss_mib']} MiB: "
          f"+{r['pss_kib_per_session']} KiB/session (RSS +{r['rss_kib_per_session']})"
          + (f"; failures: {r['failures']}" if failed else ""))
    print("RESULT " + json.dumps(r))
    return 0 if ready == a.n and not closed_meanwhile else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("big")
    i = sub.add_parser("idle")
    for s in (b, i):
        s.add_argument("host")
        s.add_argument("port", type=int)
        s.add_argument("workdir")
    b.add_argument("--clients", type=int, default=100)
    b.add_argument("--size-mib", type=int, default=10)
    b.add_argument("--timeout", type=float, default=300, help="s for the SMTP part")
    b.add_argument("--deliver-s", type=float, default=300, help="s to wait for the deliveries")
    i.add_argument("n", type=int)
    i.add_argument("--hold", type=float, default=5)
    i.add_argument("--inflight", type=int, default=200)
    i.add_argument("--setup-s", type=float, default=300)
    a = p.parse_args()
    return run_big(a) if a.mode == "big" else run_idle(a)


if __name__ == "__main__":
    sys.exit(main())
