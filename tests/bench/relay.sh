#!/bin/bash
# relay.sh: relay benchmark for postern: smtp-source -> posternd -> smtp-sink,
# all on 127.0.0.1, with a fresh server and fresh sinks for every run.
#
# Two cases, each at every concurrency C of CS:
#   accept  one smtp-source sends N messages to rcpt@relay.test over C
#           sessions; postern relays them (`action "out" relay host
#           smtp://127.0.0.1:SINK_A`, `match from any for any action "out"`)
#           to smtp-sink A, which accepts everything.
#   defer   the same, except that SHARE percent of the messages (and of the
#           sessions) come from a second smtp-source, to rcpt@defer.test, at
#           the same time. postern routes that domain to a second relay action
#           whose smtp-sink B answers every RCPT with 451 (smtp-sink -r RCPT):
#           those messages get a 4xx on the first try and stay queued for the
#           retry (10 s after creation, then 40 s...).
# smtp-source runs with -N (a sequence number in front of every recipient:
# 1rcpt@relay.test, 2rcpt@relay.test...) so that relay-audit.py can check
# that each message reached the sink it should, exactly once; the sinks dump
# every transaction to a file (smtp-sink -D) for that check.
#
# Figures per run (one JSON line in the raw file): accepted msg/s = N / wall
# time until every smtp-source has exited (every message had its 250);
# relayed msg/s = messages sink A counted / wall time until sink A has
# counted all it should get on the first try (N, or N - deferred share);
# server CPU = user+sys of the posternd tree (relay agents included) over
# that same time, also split into root / agents / _postern child; queued =
# envelopes `posternctl show queue` lists then.
# In the defer case the script then waits (at most RETRY_WAIT s past the
# first retry) until every deferred envelope has been tried twice, stops
# everything, audits, and wipes the queue.
#
# Environment (defaults): SET=final (results/relay-SET-*), REPS=3 N=2000
#   CS="20 100" SIZE=1024 SHARE=10 CASES="accept defer" TIMEOUT=600
#   RETRY_WAIT=20 POSTERN_BUILD=<this tree>/build-bench if it has posternd, else build
# Smoke run:  SET=smoke REPS=1 N=200 CS=20 ./relay.sh
# Writes results/relay-SET-raw.jsonl (refuses to append unless APPEND=1),
#   relay-SET-audit.jsonl (relay-audit.py, one verdict per run),
#   relay-SET-run.log (this script's output, uptime before/after each run,
#   the disk's flush rate in /tmp (bench_disk_flush) before and after),
#   relay-SET-loadavg.log (/proc/loadavg every 15 s), relay-SET-summary.md
#   (relay-summarize.py), and relay-SET-server-*.log for any failed audit.
# Needs root, smtp-source/smtp-sink in /opt/postfix, the user _postern, and
# the targets posternd postern-local posternctl delivery_relay bench_disk_flush.
# Depends on the shared harness, ../shared/bench beside this checkout or
# BENCH=... (lib/common.sh, procstat.py, delivered.py; see bench-lib.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
SET=${SET:-final} REPS=${REPS:-3} N=${N:-2000} CS=${CS:-20 100} SIZE=${SIZE:-1024}
SHARE=${SHARE:-10} CASES=${CASES:-accept defer} TIMEOUT=${TIMEOUT:-600} RETRY_WAIT=${RETRY_WAIT:-20}
W=/tmp/bench-relay-$SET                      # WORKDIR of the current run
RES=$HERE/results
OUT=$RES/relay-$SET-raw.jsonl AUDIT=$RES/relay-$SET-audit.jsonl
LOG=$RES/relay-$SET-run.log LOADLOG=$RES/relay-$SET-loadavg.log
CTL=$POSTERN_BUILD/posternctl
DEFER_REPLY="451 4.3.0 bench: deferred share"

[ "$(id -u)" = 0 ] || die "run as root"
for f in posternd postern-local posternctl plugins/delivery-relay.so; do
    [ -e "$POSTERN_BUILD/$f" ] || die "$POSTERN_BUILD/$f missing: build posternd postern-local posternctl delivery_relay"
done
[ -x "$PF_SBIN"/smtp-source ] && [ -x "$PF_SBIN"/smtp-sink ] || die "smtp-source/smtp-sink missing in $PF_SBIN"
getent passwd _postern >/dev/null || die "user _postern missing"
need_disk_flush
mkdir -p "$RES"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
ulimit -n "$(ulimit -Hn)"

# free_ports K: K distinct TCP ports free on 127.0.0.1 right now (the kernel
# picks them: bind port 0, all K sockets open at once so they differ).
free_ports() {
    python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$1"
}

# stop_pid FILE: stop the process whose PID is in FILE (TERM, then KILL after 10 s).
stop_pid() {
    [ -f "$1" ] || return 0
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$1"
}

stop_all() { stop_pid "$W"/server.pid; stop_pid "$W"/sink-a.pid; stop_pid "$W"/sink-b.pid; }

# sink NAME PORT [smtp-sink options...]: smtp-sink with running counters in
# W/sink-NAME/sink.out (what delivered.py reads) and every transaction
# appended to W/sink-NAME/dump.
sink() {
    local name=$1 port=$2; shift 2
    mkdir -p "$W/sink-$name"; chown "$SINK_USER" "$W/sink-$name"
    "$PF_SBIN"/smtp-sink -c -u "$SINK_USER" -m 1024 -D "$W/sink-$name/dump" "$@" 127.0.0.1:"$port" 1024 \
        >"$W/sink-$name/sink.out" 2>"$W/sink-$name/sink.log" </dev/null &
    echo $! >"$W/sink-$name.pid"
    wait_port "$port" 10 || die "smtp-sink $name did not come up on port $port"
}

# start_server PORT SINK_A SINK_B: posternd as in start-postern.sh (own mount
# namespace, no-DNS resolv.conf, queue in W/spool), relaying instead of delivering.
start_server() {
    cat >"$W"/smtpd.conf <<CONF
queue path "$W/spool"
pidfile "$W/posternd.pid"
control socket "$W/run/control.sock"
listen on 127.0.0.1 port $1 hostname bench.localdomain
action "out" relay host smtp://127.0.0.1:$2
action "defer" relay host smtp://127.0.0.1:$3
match from any for domain "defer.test" action "defer"
match from any for any action "out"
CONF
    "$POSTERN_BUILD"/posternd -n -f "$W"/smtpd.conf >/dev/null || die "posternd rejects $W/smtpd.conf"
    no_dns_resolv_conf "$W"
    unshare --mount --propagation private -- bash -c '
        mount --bind "$1"/resolv.conf /etc/resolv.conf && exec "$2" -d -f "$1"/smtpd.conf' \
        _ "$W" "$POSTERN_BUILD"/posternd >"$W"/server.log 2>&1 </dev/null &
    echo $! >"$W"/server.pid                 # unshare and bash exec: this is posternd
    wait_port "$1" 15 || die "posternd did not come up on port $1 (see $W/server.log)"
}

# cpu_split PID: "root reaped smtp live" CPU seconds so far: the root posternd's
# own time, its reaped children's (the delivery agents, postern-local), the
# _postern child's (SMTP, queue, scheduler; comm posternd) and agents still alive.
cpu_split() {
    python3 - "$1" <<'PY'
import os, sys
tick, root = os.sysconf("SC_CLK_TCK"), sys.argv[1]
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        head, _, rest = f.read().rpartition(")")
        return head.split("(", 1)[1], rest.split()
_, r = stat(root)
smtp = live = 0
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm, f = stat(d)
    except OSError:
        continue
    if f[1] == root:
        t = sum(int(x) for x in f[11:15])
        if comm == "posternd": smtp += t
        else: live += t
print(*(f"{x / tick:.2f}" for x in (int(r[11]) + int(r[12]), int(r[13]) + int(r[14]), smtp, live)))
PY
}

queued() { "$CTL" -s "$W"/run/control.sock show queue 2>/dev/null | grep -c '|'; }

# source_run COUNT SESSIONS DOMAIN OUTFILE: one smtp-source, bounded by TIMEOUT.
source_run() {
    timeout "$TIMEOUT" "$PF_SBIN"/smtp-source -s "$2" -m "$1" -l "$SIZE" -N \
        -f from@client.test -t rcpt@"$3" -M client.test 127.0.0.1:"$PORT" >"$4" 2>&1
}

# run_one REP CASE C: one measured run; appends to OUT and AUDIT.
run_one() {
    local rep=$1 kase=$2 c=$3 nb=0 cb=0
    if [ "$kase" = defer ]; then
        nb=$((N * SHARE / 100)); cb=$((c * SHARE / 100)); [ "$cb" -ge 1 ] || cb=1
    fi
    local na=$((N - nb)) ca=$((c - cb))
    stop_all; rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"   # _postern must reach W/spool
    read -r PORT PA PB < <(free_ports 3)
    sink a "$PA"
    [ "$kase" = defer ] && sink b "$PB" -r RCPT -b "$DEFER_REPLY"
    start_server "$PORT" "$PA" "$PB"
    sleep 1
    local pid; pid=$(cat "$W"/server.pid)
    local load0; load0=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== rep $rep $kase C=$c: $na to sink A ($ca sessions), $nb to sink B ($cb sessions);" \
        "ports $PORT/$PA/$PB; load $load0 ($(date +%T))"

    local cpu0 split0; cpu0=$(python3 "$BENCH"/procstat.py cpu "$pid"); split0=$(cpu_split "$pid")
    python3 "$BENCH"/procstat.py sample "$pid" "$W"/peak.json "$TIMEOUT" & local sampler=$!
    python3 "$BENCH"/delivered.py "$W"/sink-a relay "$na" "$TIMEOUT" >"$W"/done & local watcher=$!
    sleep 0.3                                # let both helpers start
    local t0=$EPOCHREALTIME rca=0 rcb=0 pa pb=
    source_run "$na" "$ca" relay.test "$W"/source-a.out & pa=$!
    [ "$nb" -gt 0 ] && { source_run "$nb" "$cb" defer.test "$W"/source-b.out & pb=$!; }
    wait "$pa" || rca=$?
    [ -n "$pb" ] && { wait "$pb" || rcb=$?; }
    local t1=$EPOCHREALTIME
    local rc_relay=0; wait "$watcher" || rc_relay=$?
    local relayed t2; read -r relayed t2 <"$W"/done
    local cpu1 split1; cpu1=$(python3 "$BENCH"/procstat.py cpu "$pid"); split1=$(cpu_split "$pid")
    local q_relayed; q_relayed=$(queued)
    kill "$sampler"; wait "$sampler" 2>/dev/null

    # Deferred envelopes: wait for their first retry (ctime + 10 s), bounded.
    local tempfails=0
    if [ "$nb" -gt 0 ]; then
        local deadline=$(( ${t1%.*} + 10 + RETRY_WAIT ))
        while :; do
            tempfails=$(grep -c 'mta delivery .*result=TempFail' "$W"/server.log)
            [ "$tempfails" -ge $((2 * nb)) ] || [ "$(date +%s)" -ge "$deadline" ] && break
            sleep 0.5
        done
    fi
    "$CTL" -s "$W"/run/control.sock show queue >"$W"/queue-end.txt 2>&1
    local q_end; q_end=$(grep -c '|' "$W"/queue-end.txt)
    local load1; load1=$(cut -d' ' -f1-3 /proc/loadavg)
    stop_all
    [ "$rca" = 0 ] && [ "$rcb" = 0 ] || echo "smtp-source exit $rca/$rcb: $(head -c 300 "$W"/source-*.out)"
    [ "$rc_relay" = 0 ] || echo "sink A counted only $relayed of $na within ${TIMEOUT}s"

    local verdict
    verdict=$(python3 "$HERE"/relay-audit.py "$W" "$na" "$nb" "$rca" "$rcb" "rep $rep $kase C=$c")
    echo "$verdict" >>"$AUDIT"
    case $verdict in *'"ok": false'*)
        cp "$W"/server.log "$RES/relay-$SET-server-$kase-c$c-rep$rep.log"
        echo "AUDIT FAILED: $verdict" ;;
    esac
    python3 - "$W" "$rep" "$kase" "$c" "$ca" "$cb" "$na" "$nb" "$SIZE" "$t0" "$t1" "$t2" "$relayed" \
        "$cpu0" "$cpu1" "$q_relayed" "$q_end" "$tempfails" "$rca" "$rcb" "$rc_relay" "$load0" "$load1" \
        "$verdict" "$split0" "$split1" >>"$OUT" <<'PY'
import json, sys
(w, rep, kase, c, ca, cb, na, nb, size, t0, t1, t2, relayed, cpu0, cpu1, q_rel, q_end, tempfails,
 rca, rcb, rc_relay, load0, load1, verdict, split0, split1) = sys.argv[1:]
n = int(na) + int(nb)
t0, t1, t2 = float(t0), float(t1), float(t2)
peak = json.load(open(f"{w}/peak.json"))
audit = json.loads(verdict)
r = {"server": "postern", "kind": "relay", "case": kase, "rep": int(rep), "c": int(c),
     "c_split": [int(ca), int(cb)], "n": n, "n_sink_a": int(na), "n_deferred": int(nb), "size": int(size),
     "accept_s": round(t1 - t0, 3), "relay_s": round(t2 - t0, 3),
     "accepted_per_s": round(n / (t1 - t0), 1), "relayed_per_s": round(int(relayed) / (t2 - t0), 1),
     "relayed": int(relayed), "server_cpu_s": round(float(cpu1) - float(cpu0), 2),
     "queued_at_relayed": int(q_rel), "queued_end": int(q_end), "tempfail_lines": int(tempfails),
     "sink_a_sessions": audit.get("sink_a", {}).get("sess"),
     "peak_rss_mib": round(peak["rss_kib"] / 1024, 1), "peak_pss_mib": round(peak["pss_kib"] / 1024, 1),
     "peak_nproc": peak["nproc"], "smtp_source_rc": [int(rca), int(rcb)], "relay_rc": int(rc_relay),
     "loadavg_before": load0, "loadavg_after": load1, "audit_ok": audit["ok"]}
r["server_cpu_ms_per_msg"] = round(1000 * r["server_cpu_s"] / n, 3)
# Where the CPU went, ms per message: root posternd, agents (reaped + still alive), _postern child.
d = [float(b) - float(a) for a, b in zip(split0.split(), split1.split())]
r["cpu_split_ms_per_msg"] = {"root": round(1000 * d[0] / n, 2), "agents": round(1000 * (d[1] + d[3]) / n, 2),
                             "smtp_queue": round(1000 * d[2] / n, 2)}
print(json.dumps(r))
PY
    tail -1 "$OUT" | python3 -c 'import json, sys; print("accepted {accepted_per_s} msg/s ({accept_s} s),"
        " relayed {relayed_per_s} msg/s ({relay_s} s, {relayed}/{n_sink_a}), CPU {server_cpu_ms_per_msg} ms/msg,"
        " queued {queued_at_relayed} then {queued_end}, audit ok={audit_ok}".format(**json.load(sys.stdin)))'
    rm -rf "$W"/spool "$W"/sink-*/dump       # clean up: drop the deferred mail and the dumps
}

{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc)"
    echo "# posternd: $POSTERN_BUILD/posternd (built $(date -r "$POSTERN_BUILD"/posternd -Is)," \
        "relay plugin built $(date -r "$POSTERN_BUILD"/plugins/delivery-relay.so -Is)), git $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)"
    echo "# SET=$SET REPS=$REPS N=$N CS=\"$CS\" SIZE=$SIZE SHARE=$SHARE CASES=\"$CASES\" RETRY_WAIT=$RETRY_WAIT"
    echo "# $(disk_flush /tmp)"
    echo "# uptime before: $(uptime)"
    for _ in $(seq 960); do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 15; done >>"$LOADLOG" 2>&1 &
    sampler=$!
    trap 'stop_all; kill $sampler 2>/dev/null' EXIT   # also when a start fails (die)
    for rep in $(seq "$REPS"); do
        for kase in $CASES; do for c in $CS; do run_one "$rep" "$kase" "$c"; done; done
    done
    kill "$sampler"
    echo "# uptime after: $(uptime)"
    echo "# after: $(disk_flush /tmp)"
    bad=$(grep -c '"ok": false' "$AUDIT")
    echo "audit: $(wc -l <"$AUDIT") runs checked, $bad failed ($AUDIT)"
} 2>&1 | tee -a "$LOG"
python3 "$HERE"/relay-summarize.py "$OUT" | tee "$RES/relay-$SET-summary.md"
