#!/usr/bin/env python3
"""Where postern's CPU per message goes, by process and by user/system time.

  cpu-split.py snap ROOTPID             JSON: every process of the tree under
                                        ROOTPID (posternd, the root parent)
                                        with its user and system ticks, its
                                        reaped children's, and its threads'
  cpu-split.py diff BEFORE AFTER N      JSON: ms of CPU per message (N
                                        messages) between two snapshots, by role
  cpu-split.py pids ROOTPID             the tree's process ids, comma-separated
                                        (for perf record -p)
  cpu-split.py table RAW.jsonl          the Markdown tables of a cpu-split.sh
                                        run: medians over the repetitions

Roles (what start-postern.sh starts: the root posternd forks the serving
process, which drops to _postern, and starts the delivery agents):
  parent   the root posternd's own time
  serving  its posternd child (sessions, rules, the queue's commits), split
           into the main thread (the event loop) and the other threads
           (the worker pool, the spool's flush pool)
  agents   every other process of the tree (postern-local and what it
           runs), live ones' own and reaped children's time, plus what the
           parent has reaped (agents that ended during the window)
The load generator's time is measured by cpu-split.sh (bash's `time`).
/proc's ticks are 1/CLK_TCK s (10 ms here): over 3,000 messages that is
0.003 ms a message.
"""
import json, os, statistics, sys

TICK = os.sysconf("SC_CLK_TCK")


def _stat(path):
    with open(path) as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    return comm, s.rpartition(")")[2].split()  # fields from 3 (state) on


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(_stat(f"/proc/{d}/stat")[1][1]), []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass  # ended meanwhile
    return kids


def snap(root):
    kids, procs, todo = _children(), [], [int(root)]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            comm, f = _stat(f"/proc/{p}/stat")
            threads = []
            for t in os.listdir(f"/proc/{p}/task"):
                try:
                    _, tf = _stat(f"/proc/{p}/task/{t}/stat")
                    threads.append({"tid": int(t), "utime": int(tf[11]), "stime": int(tf[12])})
                except (OSError, IndexError):
                    pass
        except (OSError, IndexError):
            continue
        # utime stime cutime cstime: fields 14-17, i.e. f[11:15]
        procs.append({"pid": p, "ppid": int(f[1]), "comm": comm, "utime": int(f[11]), "stime": int(f[12]),
                      "cutime": int(f[13]), "cstime": int(f[14]), "threads": threads})
    return {"root": int(root), "procs": procs}


def _roles(s):
    """ticks by role: {role: [user, sys]} for one snapshot."""
    root = s["root"]
    r = {k: [0, 0] for k in ("parent", "serving", "serving_main", "serving_threads", "agents")}
    serving = [p for p in s["procs"] if p["ppid"] == root and p["comm"] == "posternd"]
    serving_pid = serving[0]["pid"] if serving else None
    for p in s["procs"]:
        if p["pid"] == root:
            r["parent"][0] += p["utime"]
            r["parent"][1] += p["stime"]
            # What the parent reaped: agents that ended (the serving process
            # ends only at the stop).
            r["agents"][0] += p["cutime"]
            r["agents"][1] += p["cstime"]
        elif p["pid"] == serving_pid:
            r["serving"][0] += p["utime"] + p["cutime"]
            r["serving"][1] += p["stime"] + p["cstime"]
            # The other threads: the process's time less its main
            # thread's, so that threads ended meanwhile count too.
            for t in p["threads"]:
                if t["tid"] == p["pid"]:
                    r["serving_main"][0] += t["utime"]
                    r["serving_main"][1] += t["stime"]
            r["serving_threads"][0] += p["utime"] - r["serving_main"][0]
            r["serving_threads"][1] += p["stime"] - r["serving_main"][1]
        else:
            r["agents"][0] += p["utime"] + p["cutime"]
            r["agents"][1] += p["stime"] + p["cstime"]
    return r


def diff(before, after, n):
    b, a = _roles(before), _roles(after)
    out = {}
    for k in a:
        u = (a[k][0] - b[k][0]) / TICK * 1000 / n
        s = (a[k][1] - b[k][1]) / TICK * 1000 / n
        out[k] = {"user": round(u, 4), "sys": round(s, 4)}
    tot_u = sum(out[k]["user"] for k in ("parent", "serving", "agents"))
    tot_s = sum(out[k]["sys"] for k in ("parent", "serving", "agents"))
    out["server"] = {"user": round(tot_u, 4), "sys": round(tot_s, 4)}
    root = after["root"]
    out["agent_procs"] = sorted({p["comm"] for p in after["procs"]
                                 if p["pid"] != root and not (p["ppid"] == root and p["comm"] == "posternd")})
    return out


ROWS = [("serving", "serving process"), ("serving_main", "&nbsp; its event loop (main thread)"),
        ("serving_threads", "&nbsp; its other threads"), ("agents", "delivery agents"),
        ("parent", "parent (root posternd)"), ("server", "**server total**"), ("client", "smtp-source (load)")]


def _fmt(xs):
    return f"{statistics.median(xs):.3f}" if xs else "-"


def _cells(runs, cols, value, fmt):
    out = []
    for b, s in cols:
        xs = [value(r) for r in runs if r["build"] == b and r["setup"] == s]
        out.append(fmt(xs) if xs else "-")
    return out


def table(raw):
    runs = [json.loads(l) for l in open(raw) if l.strip()]
    runs = [r for r in runs if r.get("kind") == "run"]
    measured = [r for r in runs if not r.get("perf")]
    ok = [r for r in measured if r["ok"]]
    builds = list(dict.fromkeys(r["build"] for r in runs))
    setups = list(dict.fromkeys(r["setup"] for r in runs))
    cols = [(b, s) for s in setups for b in builds]
    head = " | ".join(f"{s}, {b}" if len(builds) > 1 else s for b, s in cols)
    med = lambda xs: f"{statistics.median(xs):.3f}"
    spread = lambda xs: f"{min(xs):.3f}-{max(xs):.3f}"
    for title, fmt in (("median", med), ("min-max", spread)):
        print(f"ms CPU per message, user / system = total ({title} of {len({r['rep'] for r in ok})} repetitions)\n")
        print(f"| process | {head} |")
        print("| --- |" + " --: |" * len(cols))
        for key, name in ROWS:
            u = _cells(ok, cols, lambda r: r["cpu"][key]["user"], fmt)
            y = _cells(ok, cols, lambda r: r["cpu"][key]["sys"], fmt)
            t = _cells(ok, cols, lambda r: r["cpu"][key]["user"] + r["cpu"][key]["sys"], fmt)
            print(f"| {name} | " + " | ".join(f"{a} / {b} = {c}" for a, b, c in zip(u, y, t)) + " |")
        acc = _cells(ok, cols, lambda r: r["accepted_per_s"], fmt)
        dl = _cells(ok, cols, lambda r: r["delivered_per_s"], fmt)
        print("| accepted / delivered msg/s | " + " | ".join(f"{a} / {b}" for a, b in zip(acc, dl)) + " |\n")
    bad = [r for r in measured if not r["ok"]]
    print(f"{len(ok)} of {len(measured)} measured runs complete and audited ok" +
          "".join(f"; left out: rep {r['rep']} {r['setup']} {r['build']} ({r.get('why', '')})" for r in bad) +
          (f"; {len(runs) - len(measured)} profiled runs (perf), not in the tables" if len(runs) > len(measured) else ""))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "snap":
        print(json.dumps(snap(sys.argv[2])))
    elif cmd == "pids":
        print(",".join(str(p["pid"]) for p in snap(sys.argv[2])["procs"]))
    elif cmd == "diff":
        before, after = (json.load(open(p)) for p in sys.argv[2:4])
        print(json.dumps(diff(before, after, int(sys.argv[4]))))
    elif cmd == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
