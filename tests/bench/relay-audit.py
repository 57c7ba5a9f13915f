#!/usr/bin/env python3
"""relay-audit.py WORKDIR N_A N_B RC_A RC_B [LABEL]: did a relay run lose,
duplicate or misroute mail?

Run by relay.sh on a stopped run's WORKDIR. smtp-source ran with -N, so each
message has its own recipient: 1rcpt@relay.test .. N_Arcpt@relay.test for
sink A (accepts everything) and 1rcpt@defer.test .. N_Brcpt@defer.test for
sink B (451 to every RCPT). It compares:

  client    smtp-source exit codes RC_A, RC_B (0: every message got its 250)
  accepted  "smtp message" lines and "smtp envelope" recipients in server.log
  relayed   "mta delivery ... result=Ok" lines: recipients and distinct evpids
  deferred  "result=TempFail" lines: which recipients, how often, which reply
  sink A/B  recipients in smtp-sink's dump (X-Rcpt-Args) and its counters
  queue     recipients `posternctl show queue` listed at the end (queue-end.txt)

ok is true when every relay.test message was accepted once, relayed once
(one Ok line, one copy in sink A's dump, sink A's counter = N_A), every
defer.test message was accepted once, refused by sink B (never in a dump) and
is still queued, and nothing failed for good. Unusual log lines are
histogrammed. Prints one JSON line.
Depends on: the log format of posternd (key=value lines) and smtp-sink -c/-D.
"""
import collections, json, os, re, sys

wd, n_a, n_b, rc_a, rc_b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
label = sys.argv[6] if len(sys.argv) > 6 else ""
want_a = {f"{i}rcpt@relay.test" for i in range(1, n_a + 1)}
want_b = {f"{i}rcpt@defer.test" for i in range(1, n_b + 1)}
KV = re.compile(r'(\w[\w-]*)=("[^"]*"|\S+)')
USUAL = re.compile(r"smtp (listening|connected|disconnected) |control listening |posternd (ready|stopping)")


def fields(line):
    return {k: v.strip('"') for k, v in KV.findall(line)}


def read_log():
    s = {"accepted": 0, "envelopes": collections.Counter(), "ok": collections.Counter(),
         "ok_evpids": collections.Counter(), "tempfail": collections.Counter(),
         "tempfail_stat": collections.Counter(), "permfail": collections.Counter(),
         "other": collections.Counter(), "samples": []}
    try:
        log = open(os.path.join(wd, "server.log"), errors="replace")
    except OSError:
        return s
    for line in log:
        line = line.rstrip("\n")
        if " smtp message " in line:
            s["accepted"] += 1
        elif " smtp envelope " in line:
            s["envelopes"][fields(line).get("to", "?")] += 1
        elif " delivery evpid=" in line:
            f = fields(line)
            result, to = f.get("result", "?"), f.get("to", "?")
            if result == "Ok":
                s["ok"][to] += 1
                s["ok_evpids"][f.get("evpid", "?")] += 1
            elif result == "TempFail":
                s["tempfail"][to] += 1
                s["tempfail_stat"][f.get("stat", "?")[:120]] += 1
            else:
                s["permfail"][to] += 1
        elif not USUAL.search(line):
            # Group unexpected lines by their text without timestamp, ids and numbers.
            s["other"][re.sub(r"\b[0-9a-f]{8,16}\b|\d+", "#", line[20:])[:120]] += 1
            if len(s["samples"]) < 5:
                s["samples"].append(line[:300])
    return s


def read_sink(name):
    """(recipients in the dump, last counters) of W/sink-NAME, or None if not started."""
    d = os.path.join(wd, f"sink-{name}")
    if not os.path.isdir(d):
        return None
    rcpts = collections.Counter()
    try:
        for line in open(os.path.join(d, "dump"), errors="replace"):
            if line.startswith("X-Rcpt-Args: "):
                rcpts[line.split()[1].strip("<>")] += 1
    except OSError:
        pass  # no transaction at all: no dump file
    counters = {}
    out = open(os.path.join(d, "sink.out"), "rb").read().decode(errors="replace")
    tail = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", out)
    if tail:
        counters = dict(zip(("sess", "quit", "mesg"), map(int, tail[-1])))
    return rcpts, counters


def queue_end():
    try:
        rows = [l.split("|") for l in open(os.path.join(wd, "queue-end.txt")) if "|" in l]
    except OSError:
        return collections.Counter()
    return collections.Counter(r[4] for r in rows if len(r) > 4)  # id|msgid|sender|rcpt|dest|...


def once(counter, want):
    """Problems of `counter` against the set `want` (each exactly once, nothing else)."""
    missing = sorted(want - set(counter))
    dup = sorted(k for k, v in counter.items() if v > 1 and k in want)
    extra = sorted(k for k in counter if k not in want)
    return {"missing": len(missing), "duplicated": len(dup), "unexpected": len(extra),
            "examples": (missing[:3] + dup[:3] + extra[:3])}


log = read_log()
sa, sb = read_sink("a"), read_sink("b")
queued = queue_end()
r = {"label": label, "workdir": wd, "n_a": n_a, "n_b": n_b, "smtp_source_rc": [rc_a, rc_b],
     "accepted": log["accepted"], "envelopes": once(log["envelopes"], want_a | want_b),
     "relayed_ok": sum(log["ok"].values()), "relayed_ok_check": once(log["ok"], want_a),
     "distinct_evpids_ok": len(log["ok_evpids"]),
     "tempfail_lines": sum(log["tempfail"].values()),
     "tempfail_recipients": len(log["tempfail"]),
     "tempfail_outside_share": sum(v for k, v in log["tempfail"].items() if k not in want_b),
     "tempfail_tries": dict(collections.Counter(log["tempfail"][k] for k in want_b)),
     "tempfail_stat": dict(log["tempfail_stat"].most_common(4)),
     "permfail": sum(log["permfail"].values()),
     "sink_a": sa[1] if sa else None, "sink_a_dump": once(sa[0], want_a) if sa else None,
     "sink_b": sb[1] if sb else None, "sink_b_dump_msgs": sum(sb[0].values()) if sb else None,
     "queued_end": sum(queued.values()), "queued_check": once(queued, want_b),
     "other_lines": dict(log["other"].most_common(8)), "other_samples": log["samples"]}


def clean(check):
    return check is not None and check["missing"] == check["duplicated"] == check["unexpected"] == 0


ok = (rc_a == rc_b == 0 and r["accepted"] == n_a + n_b and clean(r["envelopes"])
      and clean(r["relayed_ok_check"]) and r["distinct_evpids_ok"] == n_a
      and clean(r["sink_a_dump"]) and (r["sink_a"] or {}).get("mesg") == n_a
      and r["tempfail_outside_share"] == 0 and r["permfail"] == 0
      and all(log["tempfail"][k] >= 1 for k in want_b) and clean(r["queued_check"]))
if n_b:
    ok = ok and r["sink_b_dump_msgs"] == 0 and (r["sink_b"] or {}).get("mesg", 0) == 0
r["ok"] = ok
print(json.dumps(r))
