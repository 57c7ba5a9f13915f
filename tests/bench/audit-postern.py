#!/usr/bin/env python3
"""audit-postern.py WORKDIR [LABEL]: did a postern bench run lose or duplicate mail?

Run on a stopped (or idle) server's WORKDIR, before start-postern.sh wipes it
(start-postern.sh calls it when POSTERN_AUDIT=FILE is set; run.sh sets that;
side-by-side.sh calls it after each postern run).
load.sh only waits until Maildir/new (or the sink's counter) holds *at least*
the expected count, so a duplicate or a late extra delivery would go unseen
there. This compares:

  client   messages the harness sent and got 250 for: n + latency "sent" from
           the RESULT line in WORKDIR.last (load runs only)
  accepted "smtp message" lines in WORKDIR/server.log (one per 250 after DATA)
  ok       "mda delivery ... result=Ok" and "mta delivery ... result=Ok"
           lines, and how many distinct evpids
  maildir  files in Maildir/new (and stray files left in Maildir/tmp)
  sink     messages the harness's smtp-sink counted (mesg= in WORKDIR/sink.out,
           present when start-postern.sh ran with POSTERN_RELAY=1)
  spool    files still under WORKDIR/spool (messages left in the queue; the
           daemon's scheduler.lock at its top, the queue key's key-check
           and the journal's segments do not count)

Every delivery is either a maildir file or a message the sink counted, so
maildir + sink must equal the Ok lines. It also histograms every log line
that is not one of the usual events, plus the disconnect reasons. Prints one
JSON line; "ok": false when counts disagree.
"""
import collections, json, os, re, sys

wd = os.path.abspath(sys.argv[1])
label = sys.argv[2] if len(sys.argv) > 2 else ""


def files_under(path):
    return sum(len(fs) for _, _, fs in os.walk(path)) if os.path.isdir(path) else 0


def spool_left(path):
    """Files under the spool except the daemon's lock files at its top and
    the journal's segments: a queued envelope always has its message file in
    messages/, and a running daemon keeps its current segment."""
    left = []
    for d, dirs, fs in os.walk(path):
        if d == path and "journal" in dirs:
            dirs.remove("journal")
        left += [os.path.join(d, f) for f in fs if not (d == path and (f.endswith(".lock") or f == "key-check"))]
    return left


def sink_count():
    """Messages the smtp-sink counted (its last "mesg=N"), or None without a sink."""
    try:
        out = open(os.path.join(wd, "sink.out"), "rb").read().decode(errors="replace")
    except OSError:
        return None
    counts = re.findall(r"mesg=(\d+)", out)
    return int(counts[-1]) if counts else 0


def last_run():
    """(messages the load run got 250 for or None, short run description)."""
    try:
        lines = open(wd + ".last").read().splitlines()
    except OSError:
        return None, ""
    res = [l[7:] for l in lines if l.startswith("RESULT ")]
    if not res:
        return None, ""
    r = json.loads(res[-1])
    if "mode" not in r:
        return None, f"idle N={r.get('requested')} ready={r.get('ready')}"
    return r["n"] + (r.get("latency") or {}).get("sent", 0), f"load C={r['c']} S={r['size']} {r['mode']}"


stats = collections.Counter()
results, reasons, other = collections.Counter(), collections.Counter(), collections.Counter()
samples, evpids = [], collections.Counter()
try:
    log = open(os.path.join(wd, "server.log"), errors="replace")
except OSError:
    log = []
for line in log:
    line = line.rstrip("\n")
    if " smtp message " in line:
        stats["accepted"] += 1
    elif " smtp envelope " in line:
        stats["envelopes"] += 1
    elif " smtp connected " in line:
        stats["connected"] += 1
    elif " smtp disconnected " in line:
        m = re.search(r'reason=("[^"]*"|\S+)', line)
        reasons[m.group(1) if m else "?"] += 1
    elif "mda delivery " in line or "mta delivery " in line:
        m = re.search(r"result=(\S+)", line)
        results[m.group(1) if m else "?"] += 1
        e = re.search(r"evpid=(\S+)", line)
        if e and m and m.group(1) == "Ok":
            evpids[e.group(1)] += 1
    elif re.search(r"smtp listening |control listening |posternd ready|posternd stopping", line):
        pass
    else:
        # Group unexpected lines by their text without timestamp, ids and numbers.
        key = re.sub(r"\b[0-9a-f]{8,16}\b|\d+", "#", line[20:])[:120]
        other[key] += 1
        if len(samples) < 5:
            samples.append(line[:300])

sent, run = last_run()
maildir_new = files_under(os.path.join(wd, "Maildir", "new"))
sink = sink_count()
left = spool_left(os.path.join(wd, "spool"))
r = {
    "label": label, "run": run, "workdir": wd, "client_sent": sent, "accepted": stats["accepted"],
    "envelopes": stats["envelopes"], "connected": stats["connected"],
    "delivered_ok": results.get("Ok", 0), "distinct_evpids_ok": len(evpids),
    "maildir_new": maildir_new, "maildir_tmp": files_under(os.path.join(wd, "Maildir", "tmp")),
    "sink_mesg": sink, "spool_files": len(left), "spool_left": [p[len(wd) + 1:] for p in left[:3]],
    "results": dict(results), "disconnect_reasons": dict(reasons.most_common(8)),
    "other_lines": dict(other.most_common(8)), "other_samples": samples,
}
ok = (r["accepted"] == r["envelopes"] == r["delivered_ok"] == r["distinct_evpids_ok"] == maildir_new + (sink or 0)
      and r["maildir_tmp"] == 0 and r["spool_files"] == 0 and sum(results.values()) == results.get("Ok", 0))
if sent is not None:
    ok = ok and sent == r["accepted"]
r["ok"] = ok
print(json.dumps(r))
