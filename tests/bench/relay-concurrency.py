#!/usr/bin/env python3
"""relay-concurrency.py: helper of relay-concurrency.sh (concurrent outbound
relay sessions of postern). Four commands:

  dnscheck PORT NAME          the test DNS server answers NAME's A with
                              127.0.0.1 and its MX and AAAA with NODATA
                              (rcode 0, no answer: implicit MX, RFC 5321
                              5.1); exit 1 otherwise
  inject PORT N CONNS         N messages, message i to rcpt@d{i}.c.bench (a
                              domain of its own, so each is its own relay
                              batch and connection), over CONNS parallel
                              SMTP clients, at most 100 messages a session;
                              prints "accepted K refused R seconds S"
  sample W CTL N TIMEOUT OUT  resumes the paused mta (posternctl resume mta),
                              then every 0.5 s appends one line to OUT (TSV,
                              header first; agents' Pss on every 4th line
                              only, -1 in the others) until W/spool/queue
                              is empty and N `mta delivery ... result=Ok`
                              lines are in W/server.log, or TIMEOUT s passed
  audit W N LABEL TIMELINE    one JSON line: peaks read from TIMELINE, and
                              whether every rcpt@d{i}.c.bench was accepted
                              once, relayed once (log) and received once
                              (smtp-sink's dump), plus unusual log lines

W is the run's work folder: server.pid (root posternd), server.log,
spool/queue/<msgid>/ (one folder per queued message), run/control.sock,
sink/sink.out (smtp-sink -c counters) and sink/dump (smtp-sink -D).
Depends on: ss (iproute2), /proc (smaps_rollup, Linux 4.14+), posternd's
key=value log lines, smtp-sink's -c and -D output formats.
"""
import collections, json, os, re, smtplib, socket, struct, subprocess, sys, threading, time

PER_SESSION = 100      # messages per injecting SMTP session
PERIOD = 0.5           # seconds between samples
# Client side of the relay connections: agents' sockets to the sink.
SS = ["ss", "-Htn", "state", "established", "( dport = :25 and dst 127.0.0.1 )"]
KV = re.compile(r'(\w[\w-]*)=("[^"]*"|\S+)')
USUAL = re.compile(r" smtp (listening|connected|disconnected|message|envelope) | control listening "
                   r"| posternd (ready|stopping)| control (request .*(pause|resume|show queue)|paused|resumed) "
                   r"| mta delivery .*result=Ok")


# ---- dnscheck --------------------------------------------------------------

def dns_query(port, name, qtype):
    """(rcode, answer count) of one UDP query, 2 s at most."""
    head = struct.pack(">HHHHHH", 0x5a5a, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(head + qname + struct.pack(">HH", qtype, 1), ("127.0.0.1", port))
        reply = s.recv(512)
    flags, _, answers = struct.unpack(">HHH", reply[2:8])
    return flags & 0xF, answers, reply


def dnscheck(port, name):
    rcode, n, reply = dns_query(port, name, 1)
    a_ok = rcode == 0 and n == 1 and reply.endswith(socket.inet_aton("127.0.0.1"))
    mx, aaaa = dns_query(port, name, 15)[:2], dns_query(port, name, 28)[:2]
    print(f"{name}: A rcode={rcode} answers={n} ok={a_ok}; MX rcode/answers={mx}; AAAA rcode/answers={aaaa}")
    return 0 if a_ok and mx == (0, 0) and aaaa == (0, 0) else 1


# ---- inject ----------------------------------------------------------------

def message(i):
    return (f"From: bench@client.test\r\nTo: rcpt@d{i}.c.bench\r\nSubject: relay-concurrency {i}\r\n"
            f"Message-ID: <rc{i}@client.test>\r\n\r\nmessage {i} for d{i}.c.bench\r\n")


def inject(port, n, conns):
    sessions = [range(lo, min(lo + PER_SESSION, n + 1)) for lo in range(1, n + 1, PER_SESSION)]
    tally = collections.Counter()
    lock = threading.Lock()

    def client(mine):
        for rng in mine:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60) as s:
                for i in rng:
                    try:
                        bad = s.sendmail("bench@client.test", [f"rcpt@d{i}.c.bench"], message(i))
                        key = "refused" if bad else "accepted"
                    except smtplib.SMTPException as e:
                        key = "refused"
                        print(f"message {i}: {e}", file=sys.stderr)
                    with lock:
                        tally[key] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(sessions[k::conns],)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"accepted {tally['accepted']} refused {tally['refused']} seconds {time.monotonic() - t0:.1f}")
    return 0 if tally["accepted"] == n else 1


# ---- sample ----------------------------------------------------------------

def proc_stat(pid):
    """(comm, ppid) of PID, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, _, rest = f.read().rpartition(")")
    except OSError:
        return None
    return head.split("(", 1)[1], int(rest.split()[1])


def kib(path, keys):
    """Sum of the named 'Key: N kB' fields of a /proc file (0 if gone)."""
    total = 0
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    total += int(v.split()[0])
    except OSError:
        pass
    return total


class LogTail:
    """Counts `mta delivery` results in a growing log without rereading it."""

    def __init__(self, path):
        self.path, self.pos, self.ok, self.other = path, 0, 0, 0

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        end = data.rfind(b"\n") + 1   # a half-written last line waits for the next poll
        self.pos += end
        for line in data[:end].split(b"\n"):
            if b" mta delivery " in line:
                if b"result=Ok" in line:
                    self.ok += 1
                else:
                    self.other += 1


def sink_mesg(w):
    """smtp-sink's last 'mesg=N' counter (it rewrites its counters in place)."""
    try:
        with open(os.path.join(w, "sink", "sink.out"), "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 200))
            tail = f.read().split(b"mesg=")
        return int(tail[-1].split()[0]) if len(tail) > 1 else 0
    except (OSError, ValueError):
        return -1


def children_cpu(root):
    """CPU seconds of the root posternd's reaped children (the agents that ended)."""
    try:
        with open(f"/proc/{root}/stat") as f:
            rest = f.read().rpartition(")")[2].split()
        return (int(rest[14]) + int(rest[15])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return -1


def one_sample(w, root, t0, log, with_pss):
    """One timeline row. Reading smaps_rollup costs about 1 ms of CPU per agent
    (the kernel walks its page tables): with 1000 agents on 2 cores that would
    slow the very start-up being measured, so Pss is read on every PSS_EVERY-th
    sample only (-1 in the others); the plateau lasts DELAY seconds anyway."""
    t = time.monotonic()
    conns = subprocess.run(SS, capture_output=True, text=True, timeout=10).stdout.count("\n")
    agents, children = [], []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(d)
            if st and st[1] == root:
                if st[0] == "postern-local":
                    agents.append(d)
                elif st[0] == "posternd":   # the _postern child (SMTP, queue, scheduler)
                    children.append(d)
    pss = priv = -1
    if with_pss:
        pss = sum(kib(f"/proc/{p}/smaps_rollup", ("Pss",)) for p in agents)
        priv = sum(kib(f"/proc/{p}/smaps_rollup", ("Private_Clean", "Private_Dirty")) for p in agents)
    rss_root = kib(f"/proc/{root}/status", ("VmRSS",))
    rss_child = sum(kib(f"/proc/{p}/status", ("VmRSS",)) for p in children)
    log.poll()
    try:
        queued = len(os.listdir(os.path.join(w, "spool", "queue")))
    except OSError:
        queued = -1
    mem_avail = kib("/proc/meminfo", ("MemAvailable",))
    load1 = open("/proc/loadavg").read().split()[0]
    return [round(t - t0, 2), conns, len(agents), pss, priv, rss_root, rss_child, queued, log.ok, log.other,
            sink_mesg(w), mem_avail, load1, round(children_cpu(root), 2), round(time.monotonic() - t, 3)]


COLUMNS = ["t_s", "conns_est", "agents", "agents_pss_kib", "agents_private_kib", "posternd_root_rss_kib",
           "posternd_child_rss_kib", "queued", "log_ok", "log_other", "sink_mesg", "mem_available_kib",
           "load1", "reaped_agents_cpu_s", "sample_cost_s"]
PSS_EVERY = 4


def sample(w, ctl, n, timeout, out):
    root = int(open(os.path.join(w, "server.pid")).read())
    log = LogTail(os.path.join(w, "server.log"))
    sock = os.path.join(w, "run", "control.sock")
    with open(out, "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        t0 = time.monotonic()
        f.write("\t".join(map(str, one_sample(w, root, t0, log, True))) + "\n")   # paused: the baseline
        r = subprocess.run([ctl, "-s", sock, "resume", "mta"], capture_output=True, text=True, timeout=10)
        t0 = time.monotonic()   # times below count from the resume
        print(f"resume mta: rc={r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
        k = 0
        while True:
            row = one_sample(w, root, t0, log, k % PSS_EVERY == 0)
            k += 1
            f.write("\t".join(map(str, row)) + "\n")
            f.flush()
            if row[7] == 0 and row[8] >= n:
                print(f"sampler CPU: {sum(os.times()[:2]):.1f} s (itself), {sum(os.times()[2:4]):.1f} s (ss)")
                return 0
            if row[0] > timeout:
                print(f"timeout: {row[7]} still queued, {row[8]} Ok lines after {timeout} s")
                return 1
            time.sleep(max(0.0, PERIOD - (time.monotonic() - t0 - row[0])))


# ---- audit -----------------------------------------------------------------

def read_timeline(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, (float(x) for x in line.split("\t")))) for line in f]


def peaks(rows):
    runs = rows[1:]   # rows[0] is the paused baseline
    top = max(runs, key=lambda r: r["conns_est"])
    top_agents = max(runs, key=lambda r: r["agents"])
    top_pss = max((r for r in runs if r["agents_pss_kib"] >= 0), key=lambda r: r["agents_pss_kib"])
    empty = next((r["t_s"] for r in runs if r["queued"] == 0), None)
    return {"peak_conns": int(top["conns_est"]), "t_peak_conns_s": top["t_s"],
            "peak_agents": int(top_agents["agents"]), "t_peak_agents_s": top_agents["t_s"],
            "peak_agents_pss_mib": round(top_pss["agents_pss_kib"] / 1024, 1),
            "pss_agents_at_peak": int(top_pss["agents"]),
            "pss_per_agent_kib": round(top_pss["agents_pss_kib"] / max(1, top_pss["agents"])),
            "private_per_agent_kib": round(top_pss["agents_private_kib"] / max(1, top_pss["agents"])),
            "peak_root_rss_mib": round(max(r["posternd_root_rss_kib"] for r in rows) / 1024, 1),
            "peak_child_rss_mib": round(max(r["posternd_child_rss_kib"] for r in rows) / 1024, 1),
            "baseline_root_rss_mib": round(rows[0]["posternd_root_rss_kib"] / 1024, 1),
            "baseline_child_rss_mib": round(rows[0]["posternd_child_rss_kib"] / 1024, 1),
            "min_mem_available_mib": round(min(r["mem_available_kib"] for r in rows) / 1024),
            "mem_available_drop_mib": round((rows[0]["mem_available_kib"]
                                             - min(r["mem_available_kib"] for r in rows)) / 1024),
            "t_queue_empty_s": empty, "agents_cpu_s": round(rows[-1]["reaped_agents_cpu_s"] - rows[0]["reaped_agents_cpu_s"], 1),
             "max_load1": max(r["load1"] for r in rows),
            "max_sample_cost_s": max(r["sample_cost_s"] for r in rows)}


def audit(w, n, label, timeline):
    want = {f"rcpt@d{i}.c.bench" for i in range(1, n + 1)}
    accepted, ok, ok_evpids, unusual = collections.Counter(), collections.Counter(), collections.Counter(), \
        collections.Counter()
    for line in open(os.path.join(w, "server.log"), errors="replace"):
        f = {k: v.strip('"') for k, v in KV.findall(line)}
        if " smtp envelope " in line:
            accepted[f.get("to", "?")] += 1
        if " mta delivery " in line and f.get("result") == "Ok":
            ok[f.get("to", "?")] += 1
            ok_evpids[f.get("evpid", "?")] += 1
        if not USUAL.search(line):
            unusual[re.sub(r"\d+", "N", line.strip())[:160]] += 1
    dumped = collections.Counter()
    try:
        for line in open(os.path.join(w, "sink", "dump"), errors="replace"):
            if line.startswith("X-Rcpt-Args: "):
                dumped[line.split()[1].strip("<>")] += 1
    except OSError:
        pass

    def exactly_once(counter):
        return {"missing": len(want - set(counter)), "duplicated": sum(1 for k in want if counter[k] > 1),
                "unexpected": len(set(counter) - want)}

    r = {"label": label, "n": n, "accepted": exactly_once(accepted), "relayed_log": exactly_once(ok),
         "distinct_ok_evpids": len(ok_evpids), "sink_dump": exactly_once(dumped), "sink_mesg": sink_mesg(w)}
    r["ok"] = (all(v == {"missing": 0, "duplicated": 0, "unexpected": 0}
                   for v in (r["accepted"], r["relayed_log"], r["sink_dump"]))
               and r["distinct_ok_evpids"] == n and r["sink_mesg"] == n)
    r["unusual_log_lines"] = dict(unusual.most_common(12))
    r.update(peaks(read_timeline(timeline)))
    print(json.dumps(r))
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "dnscheck":
        return dnscheck(int(args[0]), args[1])
    if cmd == "inject":
        return inject(int(args[0]), int(args[1]), int(args[2]))
    if cmd == "sample":
        return sample(args[0], args[1], int(args[2]), float(args[3]), args[4])
    if cmd == "audit":
        return audit(args[0], int(args[1]), args[2], args[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
