#!/bin/bash
# relay-concurrency.sh: how many outbound SMTP sessions postern's relay holds
# at once, and what they cost in memory. All on 127.0.0.1.
#
# For each N of NS, with a fresh server, DNS and sink:
#   dnsmasq   on a free port answers every name under c.bench with
#             A 127.0.0.1 and no MX (NODATA: implicit MX), so mail for
#             rcpt@dI.c.bench goes to 127.0.0.1 port 25 (checked first)
#   smtp-sink on 127.0.0.1:25 (Postfix's, from /opt/postfix) waits DELAY s
#             before it answers DATA, so every relay session stays open that
#             long; it counts (-c) and dumps (-D) what it receives
#   posternd  `mta resolver` -> that dnsmasq, `action "out" relay`,
#             `match from any for any action "out"`; the mta is paused
#             (posternctl pause mta), N messages are injected, message I to
#             rcpt@dI.c.bench (N domains: N batches of one, each its own
#             postern-local agent and connection), then the mta is resumed
# relay-concurrency.py samples every 0.5 s from the resume until the spool
# is empty: established connections to 127.0.0.1:25 (ss), postern-local
# agents (children of the root posternd), their summed Pss and Private from
# /proc/PID/smaps_rollup (every 2 s only: it is costly), the RSS of both posternd processes, queued
# messages, `mta delivery ... result=Ok` lines, smtp-sink's counter; then it
# audits (each recipient accepted once, relayed once, in the sink's dump once).
#
# Environment (defaults): SET=final NS="1000 1500" DELAY=60 CONNS=4
#   TIMEOUT=300 (s, per run from the resume) POSTERN_BUILD=<tree>/build
# DELAY is longer than the time it takes to start 1000 agents on 2 cores
# (15-25 s), so that the first sessions are still open when the last start
# and the peak shows the limit, not a race between start-up and the sink.
# Smoke:  SET=smoke NS=100 DELAY=5 ./relay-concurrency.sh
# Writes results/relay-concurrency-SET.txt (this script's output),
#   relay-concurrency-SET.jsonl (one audit+peaks line per N) and
#   relay-concurrency-SET-timeline-N.tsv (every sample); the server log is
#   kept as relay-concurrency-SET-server-N.log when a run's audit fails.
# Needs root (port 25), dnsmasq, smtp-sink in /opt/postfix, the user
# _postern, and posternd postern-local posternctl plugins/delivery-relay.so
# tests/bench/bench_disk_flush in POSTERN_BUILD. Depends on the shared
# harness's lib/common.sh (PF_SBIN, LD_LIBRARY_PATH, wait_port,
# no_dns_resolv_conf; ../shared/bench beside this checkout or BENCH=..., see
# bench-lib.sh) and relay-concurrency.py. The output starts and ends with the
# disk's flush rate in /tmp.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
POSTERN_BUILD=${POSTERN_BUILD:-$(cd "$HERE"/../.. && pwd)/build}
SET=${SET:-final} NS=${NS:-1000 1500} DELAY=${DELAY:-60} CONNS=${CONNS:-4} TIMEOUT=${TIMEOUT:-300}
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
HELPER=$HERE/relay-concurrency.py
RES=$HERE/results
OUT=$RES/relay-concurrency-$SET.jsonl LOG=$RES/relay-concurrency-$SET.txt
W=/tmp/relay-concurrency-$SET             # work folder of the current run
CTL=$POSTERN_BUILD/posternctl

[ "$(id -u)" = 0 ] || die "run as root (the sink listens on port 25)"
for f in posternd postern-local posternctl plugins/delivery-relay.so; do
    [ -e "$POSTERN_BUILD/$f" ] || die "$POSTERN_BUILD/$f missing"
done
[ -x "$PF_SBIN"/smtp-sink ] || die "smtp-sink missing in $PF_SBIN"
[ -x "$DNSMASQ" ] || die "$DNSMASQ missing (Debian's dnsmasq-base)"
getent passwd _postern >/dev/null || die "user _postern missing"
need_disk_flush
# Port 25 of 127.0.0.1 must be ours: refuse if anything listens there or on
# the wildcard (other tests may hold 25 on other loopback addresses: fine).
busy=$(ss -Hltn '( sport = :25 )' | awk '$4 ~ /^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]):25$/')
[ -z "$busy" ] || die "something already listens on port 25: $busy"
mkdir -p "$RES"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
ulimit -n "$(ulimit -Hn)"                 # the sink holds N+ sockets; posternd 2 pipes per agent

# free_port: a port free for both TCP and UDP on 127.0.0.1 (dnsmasq takes both).
free_port() {
    python3 -c 'import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass'
}

# stop_pid FILE: stop the process whose PID is in FILE (TERM, KILL after 10 s).
stop_pid() {
    [ -f "$1" ] || return 0
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$1"
}

# agents_of PID: the postern-local children of the root posternd PID.
agents_of() {
    for s in /proc/[0-9]*/stat; do
        read -r line <"$s" 2>/dev/null || continue
        case $line in *"(postern-local) "?" $1 "*) p=${s#/proc/}; echo "${p%/stat}" ;; esac
    done
}

# stop_all: posternd (and any agent it leaves behind: ours too), sink, dnsmasq.
stop_all() {
    if [ -f "$W"/server.pid ]; then
        local left; left=$(agents_of "$(cat "$W"/server.pid)")
        stop_pid "$W"/server.pid
        for p in $left; do kill -9 "$p" 2>/dev/null; done
    fi
    stop_pid "$W"/sink.pid
    stop_pid "$W"/dns.pid
}

start_dns() {
    local port=$1
    "$DNSMASQ" --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
        --bind-interfaces --port="$port" --user=root --group=root --pid-file= \
        --local=/c.bench/ --address=/c.bench/127.0.0.1 >"$W"/dns.log 2>&1 </dev/null &
    echo $! >"$W"/dns.pid
    # --local makes the other types NODATA instead of REFUSED (no upstream).
    for _ in $(seq 50); do
        python3 "$HELPER" dnscheck "$port" d1.c.bench >"$W"/dnscheck.txt 2>&1 && break
        sleep 0.2
    done
    cat "$W"/dnscheck.txt
    python3 "$HELPER" dnscheck "$port" d1.c.bench >/dev/null 2>&1 || die "dnsmasq: unexpected answers (see above)"
}

start_sink() {
    mkdir -p "$W"/sink; chown "$SINK_USER" "$W"/sink
    # -m: sessions served at once (the default 256 would queue the rest in
    # the kernel); backlog 4096 (the kernel caps it at somaxconn).
    "$PF_SBIN"/smtp-sink -c -u "$SINK_USER" -m 4000 -w "$DELAY" -D "$W"/sink/dump 127.0.0.1:25 4096 \
        >"$W"/sink/sink.out 2>"$W"/sink/sink.log </dev/null &
    echo $! >"$W"/sink.pid
    wait_port 25 10 || die "smtp-sink did not come up on 127.0.0.1:25: $(cat "$W"/sink/sink.log)"
}

start_server() {
    local port=$1 dnsport=$2
    cat >"$W"/smtpd.conf <<CONF
queue path "$W/spool"
pidfile "$W/posternd.pid"
control socket "$W/run/control.sock"
mta resolver "127.0.0.1:$dnsport"
listen on 127.0.0.1 port $port hostname bench.localdomain
action "out" relay
match from any for any action "out"
CONF
    "$POSTERN_BUILD"/posternd -n -f "$W"/smtpd.conf >/dev/null || die "posternd rejects $W/smtpd.conf"
    no_dns_resolv_conf "$W"               # anything not asking dnsmasq stays on the loopback
    unshare --mount --propagation private -- bash -c '
        mount --bind "$1"/resolv.conf /etc/resolv.conf && exec "$2" -d -f "$1"/smtpd.conf' \
        _ "$W" "$POSTERN_BUILD"/posternd >"$W"/server.log 2>&1 </dev/null &
    echo $! >"$W"/server.pid              # unshare and bash exec: this is the root posternd
    wait_port "$port" 15 || die "posternd did not come up on port $port (see $W/server.log)"
}

# on_exit: stop what runs; a run cut short (die) leaves W: show its logs, drop it.
on_exit() {
    stop_all
    [ -d "$W" ] || return 0
    for f in "$W"/server.log "$W"/dns.log "$W"/sink/sink.log; do
        [ -s "$f" ] && { echo "--- last lines of $f"; tail -5 "$f"; }
    done
    rm -rf "$W"
}

run_one() {
    local n=$1
    stop_all; rm -rf "$W"; mkdir -p "$W"; chmod 755 "$W"     # _postern must reach W/spool
    local port dnsport; port=$(free_port); dnsport=$(free_port)
    echo "== N=$n DELAY=${DELAY}s: smtp port $port, dns port $dnsport; $(date +%T); load $(cut -d' ' -f1-3 /proc/loadavg)"
    start_dns "$dnsport"
    start_sink
    start_server "$port" "$dnsport"
    "$CTL" -s "$W"/run/control.sock pause mta || die "posternctl pause mta failed"
    echo "inject: $(timeout 600 python3 "$HELPER" inject "$port" "$n" "$CONNS" 2>"$W"/inject.err)"
    [ -s "$W"/inject.err ] && head -5 "$W"/inject.err
    local queued; queued=$("$CTL" -s "$W"/run/control.sock show queue | grep -c '|')
    echo "queued before resume: $queued (posternctl show queue)"
    local tl=$RES/relay-concurrency-$SET-timeline-$n.tsv
    timeout $((TIMEOUT + 60)) python3 "$HELPER" sample "$W" "$CTL" "$n" "$TIMEOUT" "$tl"
    echo "sample exit: $? (0: queue empty and $n Ok lines)"
    echo "queue at the end: $("$CTL" -s "$W"/run/control.sock show queue | grep -c '|') (posternctl show queue)"
    sleep 1                               # let smtp-sink rewrite its counters
    stop_all
    echo "sink counters: $(tr '\r' '\n' <"$W"/sink/sink.out | grep mesg= | tail -1); sink log: $(head -c 300 "$W"/sink/sink.log)"
    local verdict; verdict=$(python3 "$HELPER" audit "$W" "$n" "N=$n" "$tl")
    echo "$verdict" >>"$OUT"
    echo "$verdict"
    case $verdict in *'"ok": false'*)
        cp "$W"/server.log "$RES/relay-concurrency-$SET-server-$n.log"
        echo "AUDIT FAILED: server log kept" ;;
    esac
    rm -rf "$W"
}

{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc), $(grep MemTotal /proc/meminfo | tr -s ' ')"
    echo "# posternd: $POSTERN_BUILD/posternd (built $(date -r "$POSTERN_BUILD"/posternd -Is)," \
        "relay plugin built $(date -r "$POSTERN_BUILD"/plugins/delivery-relay.so -Is))"
    echo "# SET=$SET NS=\"$NS\" DELAY=$DELAY CONNS=$CONNS TIMEOUT=$TIMEOUT; ulimit -n $(ulimit -n)"
    echo "# $(disk_flush /tmp)"
    echo "# uptime before: $(uptime)"
    trap on_exit EXIT                     # also when a start fails (die)
    for n in $NS; do run_one "$n"; done
    echo "# uptime after: $(uptime)"
    echo "# after: $(disk_flush /tmp)"
} 2>&1 | tee -a "$LOG"
