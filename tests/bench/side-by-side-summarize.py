#!/usr/bin/env python3
"""side-by-side-summarize.py RAW.jsonl: the table of a side-by-side.sh run.

One row per figure, one column per server: the median over the repetitions
of the runs that completed (smtp-source and the latency probes without error,
every accepted message delivered); then postern's ratio to the best anchor
(the highest of the anchors' medians for a rate, the lowest for a cost or a
latency), marked "better" or "worse" for postern. A second table gives each
cell's min-max over the repetitions. Below them: the disk's flush rate and
`uptime` before and after, the range of the 1-min load average taken before
and after each run, and the checks (postern's audits, every server's counts).
Runs that did not complete are left out of the medians and listed.
"""
import json, statistics, sys

# (row label, point, key in the run's JSON ("a.b" looks into "latency"), higher is better, decimals)
FIGURES = [
    ("accepted msgs/s, maildir, C=20", "maildir-20", "accepted_per_s", True, 0),
    ("accepted msgs/s, maildir, C=100", "maildir-100", "accepted_per_s", True, 0),
    ("delivered to maildir msgs/s, C=20", "maildir-20", "delivered_per_s", True, 0),
    ("delivered to maildir msgs/s, C=100", "maildir-100", "delivered_per_s", True, 0),
    ("relayed to smtp-sink msgs/s, C=20", "relay-20", "delivered_per_s", True, 0),
    ("relayed to smtp-sink msgs/s, C=100", "relay-100", "delivered_per_s", True, 0),
    ("server CPU ms per message, maildir, C=20", "maildir-20", "server_cpu_ms_per_msg", False, 2),
    ("txn p99 ms, maildir, C=100", "maildir-100", "latency.txn_p99_ms", False, 0),
    ('"." to 250 ms, C=1, median', "commit-1", "latency.data_p50_ms", False, 2),
    ('"." to 250 ms, C=1, p99', "commit-1", "latency.data_p99_ms", False, 2),
    ("peak PSS MiB, maildir, C=100", "maildir-100", "peak_pss_mib", False, 0),
]

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in rows if r.get("kind") == "run"]
envs = {r["when"]: r for r in rows if r.get("kind") == "env"}
first = envs.get("before") or envs.get("after") or {}
servers = first.get("servers") or list(dict.fromkeys(r["server"] for r in runs))
anchors = [s for s in servers if s != "postern"]


def title(server):
    if server == "postfix":
        return f"Postfix {first.get('postfix', '')}".strip()
    if server.startswith("opensmtpd"):
        name = f"OpenSMTPD {first.get('opensmtpd', '').removeprefix('OpenSMTPD ')}".strip()
        return name + (" (backlog 128)" if server.endswith("bl128") else "")
    return server


def value(run, key):
    v = run
    for part in key.replace("latency.", "latency ").split(" "):
        v = (v or {}).get(part)
    return None if v is None else float(v)


def values(server, point, key):
    return [x for r in runs if r["server"] == server and r["point"] == point and r["count_ok"]
            for x in [value(r, key)] if x is not None]


def fmt(x, nd):
    return "-" if x is None else f"{x:,.{nd}f}"


def ratio(pm, best, higher):
    if pm is None or best is None or best == 0:
        return "-"
    q = pm / best
    good = q >= 1 if higher else q <= 1
    return f"{q:.2f} ({'better' if good else 'worse'})" if abs(q - 1) >= 0.005 else "1.00"


reps = first.get("reps", max((r["rep"] for r in runs), default=0))
print(f"Side by side, {first.get('date', '?')[:16]} (set {first.get('set', '?')}): N={first.get('n')} messages "
      f"of {first.get('size')} bytes per point, one connection per message, {reps} repetition(s), medians; "
      f"LAT_N={first.get('lat_n')} probes after each load point, LAT1_N={first.get('lat1_n')} at C=1.")
print()
print("| figure | " + " | ".join(title(s) for s in servers) + " | postern / best |")
print("| --- | " + " | ".join("--:" for _ in servers) + " | --: |")
spread = []
for label, point, key, higher, nd in FIGURES:
    med = {s: (statistics.median(v) if (v := values(s, point, key)) else None) for s in servers}
    got = [med[s] for s in anchors if med[s] is not None]
    best = (max(got) if higher else min(got)) if got else None
    cells = [fmt(med[s], nd) for s in servers]
    print(f"| {label} | " + " | ".join(cells) + f" | {ratio(med.get('postern'), best, higher)} |")
    spread.append((label, [(values(s, point, key), nd) for s in servers]))

if reps > 1:
    print()
    print("Spread (min-max over the repetitions):")
    print()
    print("| figure | " + " | ".join(title(s) for s in servers) + " |")
    print("| --- | " + " | ".join("--:" for _ in servers) + " |")
    for label, cols in spread:
        print(f"| {label} | " + " | ".join(f"{fmt(min(v), nd)}-{fmt(max(v), nd)}" if v else "-" for v, nd in cols)
              + " |")

print()
for when in ("before", "after"):
    e = envs.get(when)
    if e:
        print(f"- {when}: {e['disk']}; uptime: {e['uptime']}")
loads = [float(r[k].split()[0]) for r in runs for k in ("loadavg_before", "loadavg_after") if r.get(k)]
if loads:
    print(f"- load average (1 min) before/after each run: {min(loads):.2f}-{max(loads):.2f} "
          f"(median {statistics.median(loads):.2f})")
if first:
    print(f"- machine: {first.get('uname')}, {first.get('nproc')} CPUs; postern git {first.get('postern_git')} "
          f"({first.get('build_type') or '?'}, posternd built {first.get('posternd_built')})")
if envs.get("before") and envs.get("after"):
    print(f"- run from {envs['before']['date']} to {envs['after']['date']}")
audits = [r for r in runs if r["server"] == "postern"]
print(f"- postern audits (each accepted message delivered once, spool empty): "
      f"{sum(1 for r in audits if r['audit_ok'])} of {len(audits)} ok; "
      f"every server's counts: {sum(1 for r in runs if r['count_ok'])} of {len(runs)} runs delivered "
      f"exactly what was accepted")
bad = [r for r in runs if not r["count_ok"] or r["audit_ok"] is False]
for r in bad:
    print(f"- NOT COUNTED or FAILED: rep {r['rep']} {r['point']} {r['server']}: {r['delivered_final']} delivered "
          f"for {r['expected']} expected, smtp-source rc {r.get('smtp_source_rc')}, delivery rc "
          f"{r.get('delivery_rc')}, probe errors {(r.get('latency') or {}).get('errors')}, audit {r['audit_ok']}")
missing = [(p, s) for _, p, _, _, _ in FIGURES for s in servers
           if p in first.get("points", []) and not any(r["server"] == s and r["point"] == p for r in runs)]
for p, s in dict.fromkeys(missing):
    print(f"- no run recorded for {p} {s}")
