#!/usr/bin/env python3
"""filters-summarize.py RAW.jsonl [...]: a Markdown table of filters.sh's runs.

One row per (server, filter), in filters.sh's order: accepted and delivered
msg/s as median (min-max) over repetitions, the rest medians. "vs none" is
the accepted rate divided by the same server's rate without a filter in the
same repetition (runs are interleaved point by point, so the two ran minutes
apart), median (min-max) over repetitions. "CPU +ms" is the server CPU per
message above the same server's none row (medians). "delivered / signed"
sums, over the repetitions, the files found in Maildir/new against the
messages accepted, and how many carry a DKIM-Signature header.
Depends on: the JSON lines filters.sh writes (load.sh's RESULT plus server,
filter, rep, maildir_new, dkim_signed, expected, count_ok, loadavg_*).
"""
import collections, json, statistics, sys

runs = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
groups = collections.defaultdict(list)
for r in runs:
    groups[(r["server"], r["filter"])].append(r)
by_rep = {(r["server"], r["filter"], r["rep"]): r for r in runs}

SERVERS = {"postern": 0, "opensmtpd": 1}
FILTERS = {"none": 0, "proceed": 1, "dkimsign": 2}


def spread(v, nd=1):
    if not v:
        return "-"
    m = statistics.median(v)
    return f"{m:.{nd}f}" if len(v) == 1 else f"{m:.{nd}f} ({min(v):.{nd}f}-{max(v):.{nd}f})"


def med(v, nd=1):
    return f"{statistics.median(v):.{nd}f}" if v else "-"


def ratios(srv, filt):
    """accepted(filter) / accepted(none) of the same repetition, per repetition."""
    out = []
    for r in groups[(srv, filt)]:
        base = by_rep.get((srv, "none", r["rep"]))
        if base and base["accepted_per_s"]:
            out.append(r["accepted_per_s"] / base["accepted_per_s"])
    return out


label = {"postern": "postern", "opensmtpd": "opensmtpd-bl128"}
print("| server | filter | reps | accepted msg/s | vs none | delivered msg/s | server CPU ms/msg | CPU +ms "
      "| txn p50 / p99 ms | peak PSS MiB | procs | delivered / signed | load 1 min |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
for (srv, filt), rows in sorted(groups.items(), key=lambda kv: (SERVERS.get(kv[0][0], 9), FILTERS.get(kv[0][1], 9))):
    col = lambda k: [float(r[k]) for r in rows if r.get(k) is not None]
    lat = lambda k: [float(r["latency"][k]) for r in rows if (r.get("latency") or {}).get(k) is not None]
    none_cpu = [float(r["server_cpu_ms_per_msg"]) for r in groups.get((srv, "none"), [])]
    extra = "-" if filt == "none" or not none_cpu else \
        f"{statistics.median(col('server_cpu_ms_per_msg')) - statistics.median(none_cpu):+.2f}"
    vs = "1" if filt == "none" else spread(ratios(srv, filt), 2)
    loads = [float(r[k].split()[0]) for r in rows for k in ("loadavg_before", "loadavg_after") if r.get(k)]
    got, want = sum(r["maildir_new"] for r in rows), sum(r["expected"] for r in rows)
    signed = sum(r["dkim_signed"] for r in rows)
    bad = sum(not r.get("count_ok") for r in rows)
    check = f"{got}/{want} / {signed}" + (f" ({bad} run(s) short)" if bad else "")
    print(f"| {label.get(srv, srv)} | {filt} | {len(rows)} | {spread(col('accepted_per_s'))} | {vs} "
          f"| {spread(col('delivered_per_s'))} | {med(col('server_cpu_ms_per_msg'), 2)} | {extra} "
          f"| {med(lat('txn_p50_ms'))} / {med(lat('txn_p99_ms'))} | {med(col('peak_pss_mib'))} "
          f"| {med(col('peak_nproc'), 0)} | {check} | {f'{min(loads):.1f}-{max(loads):.1f}' if loads else '-'} |")

lines = []
for srv in sorted({s for s, _ in groups}, key=lambda s: SERVERS.get(s, 9)):
    for filt in ("proceed", "dkimsign"):
        v = ratios(srv, filt)
        if v:
            lines.append(f"{label.get(srv, srv)} {filt}/none accepted: {spread(v, 2)}")
if lines:
    print()
    print("Ratios (median of per-repetition ratios, min-max): " + "; ".join(lines) + ".")
if runs:
    r = runs[0]
    print(f"\nN={r['n']} C={r['c']} S={r['size']} per run, LAT_N={(r.get('latency') or {}).get('sent', 0)}; "
          f"{len(runs)} runs, {sum(bool(x.get('count_ok')) for x in runs)} delivered every message.")
