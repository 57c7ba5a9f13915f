#!/bin/bash
# memory.sh: posternd's memory under issue 15's two memory loads, on a fresh
# server for each run (start-postern.sh, maildir delivery as $BENCH_USER):
#   big   CLIENTS sessions at once, each sending one SIZE_MIB MiB message
#         (memory.py big: peak RSS/PSS of the whole tree while receiving
#         and while delivering; every message must get 250 and arrive in
#         Maildir/new byte for byte; then audit-postern.py: exactly once,
#         spool empty)
#   idle  N sessions past EHLO held HOLD s, for each N in IDLE
#         (memory.py idle: PSS per session, sessions ready)
# Prints the disk's flush rate and uptime before and after, one summary line
# per run; raw lines go to OUT (JSON lines), the log beside it.
# SERVER=postfix or SERVER=opensmtpd-bl128 runs the idle test on an anchor
# instead, started by the harness's start script (OpenSMTPD with its listen
# backlog raised to 128, as side-by-side.sh does; Postfix with its default
# process limit of 100 unless PF_PROCESS_LIMIT is set); `big` and the audit
# are postern's only.
#
# Environment (defaults in brackets): PORT [31245], WORKDIR
# [/tmp/bench-memory], RUNS ["big idle"], CLIENTS [100], SIZE_MIB [10],
# IDLE ["1000 10000 50000"], HOLD [5], MAX_SESSIONS [60000: `smtp limit
# max-sessions`, above the largest N], NOFILE [unset: the inherited limit;
# N makes this script's shell take N descriptors, soft and hard, before it
# starts the server and the client; raising the hard limit needs
# CAP_SYS_RESOURCE],
# OUT [results/memory-DATE.jsonl], POSTERN_BUILD (see start-postern.sh).
# Run as root, from anywhere; one server at a time, stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
PORT=${PORT:-31245}
WORKDIR=${WORKDIR:-/tmp/bench-memory}
RUNS=${RUNS:-big idle}
CLIENTS=${CLIENTS:-100} SIZE_MIB=${SIZE_MIB:-10}
IDLE=${IDLE:-1000 10000 50000} HOLD=${HOLD:-5}
MAX_SESSIONS=${MAX_SESSIONS:-60000}
NOFILE=${NOFILE:-}
SERVER=${SERVER:-postern}
OUT=${OUT:-$HERE/results/memory-$(date +%Y-%m-%d).jsonl}
LOG=${OUT%.jsonl}.log
export POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
[ "$(id -u)" = 0 ] || die "run as root (the daemon binds, drops to _postern and delivers as $BENCH_USER)"
[ -e "$OUT" ] && die "$OUT exists; move it away"
case $SERVER in
postern) ;;
postfix | opensmtpd-bl128) [ "$RUNS" = idle ] || die "SERVER=$SERVER: only RUNS=idle" ;;
*) die "unknown SERVER $SERVER (postern, postfix, opensmtpd-bl128)" ;;
esac
mkdir -p "$(dirname "$OUT")"
if [ -n "$NOFILE" ]; then ulimit -Hn "$NOFILE" && ulimit -Sn "$NOFILE" || die "cannot raise the descriptor limit to $NOFILE"; fi

say() { echo "$*" | tee -a "$LOG"; }
env_line() {
    say "# $1: $(uptime | sed 's/^ *//')"
    say "# $1: $(disk_flush /tmp)"
}
server_pid=
stop_server() {
    [ -n "$server_pid" ] || return 0
    "$BENCH"/stop.sh "$WORKDIR" >/dev/null 2>&1 || true
    server_pid=
}
trap stop_server EXIT

# one_run NAME MODE ARGS...: fresh server, memory.py MODE ... ARGS, stop,
# audit; the JSON lines go to OUT with the run's name.
one_run() {
    local name=$1 mode=$2; shift 2
    case $SERVER in
    postern) server_pid=$(POSTERN_MAX_SESSIONS=$MAX_SESSIONS "$HERE"/start-postern.sh "$PORT" "$WORKDIR") ;;
    postfix) server_pid=$("$BENCH"/start-postfix.sh "$PORT" "$WORKDIR" | tail -1) ;;
    opensmtpd-bl128)
        local shim
        shim=$(backlog_shim "$WORKDIR.shim") || die "cannot build the listen-backlog shim"
        server_pid=$(env -u OSMTPD_BACKLOG LD_PRELOAD="$shim" LISTEN_BACKLOG_MIN=128 \
            "$BENCH"/start-opensmtpd.sh "$PORT" "$WORKDIR" | tail -1) ;;
    esac
    local limits
    limits=$(grep 'open files' /proc/"$server_pid"/limits | awk '{print $4 "/" $5}')
    say "## $name: $SERVER $server_pid (descriptors soft/hard at start: $limits), $(git -C "$TOP" rev-parse --short HEAD)"
    local rc=0 out
    out=$(timeout 900 python3 "$HERE"/memory.py "$mode" 127.0.0.1 "$PORT" "$WORKDIR" "$@" 2>&1) || rc=$?
    # The child's limit, as it ended up (the root may have raised its own).
    local child
    child=$(pgrep -P "$server_pid" -x posternd | head -1 || true)
    [ -n "$child" ] && say "   child $child descriptors soft/hard: $(grep 'open files' /proc/"$child"/limits | awk '{print $4 "/" $5}')"
    echo "$out" | grep -v '^RESULT ' | tee -a "$LOG"
    stop_server
    local audit='{"ok": true, "accepted": 0, "delivered_ok": 0, "maildir_new": 0, "spool_files": 0, "other_lines": "not audited (anchor)"}'
    [ "$SERVER" = postern ] && audit=$(python3 "$HERE"/audit-postern.py "$WORKDIR" "$name")
    say "   audit: $(echo "$audit" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("ok" if r["ok"] else "FAILED", "accepted", r["accepted"], "delivered", r["delivered_ok"], "maildir", r["maildir_new"], "spool", r["spool_files"], "other", r["other_lines"])')"
    local res
    res=$(echo "$out" | sed -n 's/^RESULT //p' | tail -1)
    python3 - "$SERVER" "$name" "$rc" "${res:-null}" "$audit" >>"$OUT" <<'PY'
import json, sys
server, name, rc, res, audit = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(json.dumps({"server": server, "run": name, "rc": rc, "result": res, "audit": audit}))
PY
    # A failed audit keeps postern's log (up to 20 MB of it: a run of many
    # refused sessions logs two lines each).
    if [ "$SERVER" = postern ] && ! echo "$audit" | grep -q '"ok": true'; then
        head -c 20000000 "$WORKDIR"/server.log >"${OUT%.jsonl}-$name.server.log"
        say "   kept the server log as ${OUT%.jsonl}-$name.server.log"
    fi
}

need_disk_flush
env_line before
for run in $RUNS; do
    case $run in
    big) one_run "big-$CLIENTS-x-${SIZE_MIB}MiB" big --clients "$CLIENTS" --size-mib "$SIZE_MIB" ;;
    idle) for n in $IDLE; do one_run "idle-$n" idle "$n" --hold "$HOLD"; done ;;
    *) die "unknown run $run (big, idle)" ;;
    esac
done
env_line after
rm -rf "$WORKDIR" "$WORKDIR.shim"
