#!/usr/bin/env python3
"""relay-summarize.py RAW.jsonl: a Markdown table of relay.sh's runs.

One row per (case, C): median (min-max) over repetitions for accepted and
relayed msg/s, medians for the rest. "msgs/conn" is what sink A counted per
SMTP session it saw, less the one connection relay.sh's readiness probe
made (it never says QUIT): how many messages one relay connection carried.
Depends on: the JSON lines relay.sh writes.
"""
import collections, json, statistics, sys

runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["case"], r["c"])].append(r)


def spread(rows, key):
    v = [r[key] for r in rows]
    m = statistics.median(v)
    return f"{m:.1f}" if len(v) == 1 else f"{m:.1f} ({min(v):.1f}-{max(v):.1f})"


def med(rows, key, fmt="{:.2f}"):
    v = [r[key] for r in rows if r.get(key) is not None]
    return fmt.format(statistics.median(v)) if v else "-"


print("| case | C | reps | accepted msg/s | relayed msg/s | server CPU ms/msg | queued when relayed -> at end "
      "| msgs/conn (sink A) | peak PSS MiB | procs | load 1 min | audit |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
order = {"accept": 0, "defer": 1}
for (case, c), rows in sorted(runs.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
    for r in rows:
        r["msgs_per_conn"] = r["relayed"] / (r["sink_a_sessions"] - 1) if (r.get("sink_a_sessions") or 0) > 1 else None
    loads = [float(r[k].split()[0]) for r in rows for k in ("loadavg_before", "loadavg_after")]
    label = "accept all" if case == "accept" else f"{rows[0]['n_deferred']} of {rows[0]['n']} get 4xx"
    print(f"| {label} | {c} | {len(rows)} | {spread(rows, 'accepted_per_s')} | {spread(rows, 'relayed_per_s')} "
          f"| {med(rows, 'server_cpu_ms_per_msg')} | {med(rows, 'queued_at_relayed', '{:.0f}')} -> "
          f"{med(rows, 'queued_end', '{:.0f}')} | {med(rows, 'msgs_per_conn', '{:.1f}')} "
          f"| {med(rows, 'peak_pss_mib', '{:.1f}')} | {med(rows, 'peak_nproc', '{:.0f}')} "
          f"| {min(loads):.1f}-{max(loads):.1f} | {sum(r['audit_ok'] for r in rows)}/{len(rows)} ok |")
