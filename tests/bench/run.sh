#!/bin/bash
# run.sh: measure postern with the shared harness that measured OpenSMTPD
# and Postfix (../shared/bench beside this checkout, or BENCH=...; see
# bench-lib.sh), then print the anchors' tables with postern's rows beside
# them.
#
# Only the bench.test (maildir) rows and the idle-connection rows run
# (DOMAINS=bench.test); relaying is measured by relay.sh, and all three
# servers in one run by side-by-side.sh. Everything else passes
# through to run-matrix.sh; the defaults are those of the anchor runs, except
# REPS (the anchors used 3):
#   REPS=1 N=2000 CS="1 20 100" SIZES="1024 102400" IDLE="500 2000" LAT_N=200
#   PORT=31225  NAME=postern  OUT=results/raw-postern.jsonl
# Smoke run:  REPS=1 N=200 CS=20 SIZES=1024 IDLE= OUT=results/smoke.jsonl ./run.sh
# Idle test with the session limit above 2000 (postern's default is 1000),
# added to the same raw file:
#   NAME=postern-ms2100 POSTERN_MAX_SESSIONS=2100 LOAD=0 APPEND=1 ./run.sh
#
# It refuses to append to an existing OUT (set APPEND=1 to add repetitions).
# Besides OUT it writes, next to it:
#   run-BASE.log      the harness output, with `uptime` and the disk's flush
#                     rate (bench_disk_flush in /tmp) before and after
#                     (BASE: OUT's name without raw- and .jsonl)
#   loadavg-BASE.log  /proc/loadavg every 15 s while the matrix runs
#   audit-BASE.jsonl  one audit-postern.py verdict per run (lost/duplicated
#                     mail, queue leftovers, unusual server log lines)
#   summary-BASE.md   summarize.py over the anchors' raw file and OUT
# Needs root (posternd binds, forks and delivers as benchuser), smtp-source in
# /opt/postfix, the users benchuser and _postern, and the build-bench targets
# posternd postern-local table_file delivery_maildir delivery_mbox
# bench_disk_flush (POSTERN_BUILD, default build-bench if built, else build).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
export POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
NAME=${NAME:-postern} PORT=${PORT:-31225}
RES=$HERE/results
mkdir -p "$RES"
OUT=${OUT:-$RES/raw-$NAME.jsonl}
case $OUT in /*) ;; *) OUT=$HERE/$OUT ;; esac
mkdir -p "$(dirname "$OUT")"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$PF_SBIN"/smtp-source ] || die "$PF_SBIN/smtp-source missing (see $BENCH/README.md, Setup)"
port_free "$PORT" || die "port $PORT is busy: set PORT="
need_disk_flush

export REPS=${REPS:-1} N=${N:-2000} CS=${CS:-1 20 100} SIZES=${SIZES:-1024 102400}
export IDLE=${IDLE-500 2000} LAT_N=${LAT_N:-200} DOMAINS=bench.test
base=$(basename "$OUT" .jsonl); base=${base#raw-}
LOG=$(dirname "$OUT")/run-$base.log
LOADLOG=$(dirname "$OUT")/loadavg-$base.log
POSTERN_AUDIT=$(dirname "$OUT")/audit-$base.jsonl
export POSTERN_AUDIT
[ "${APPEND:-0}" = 1 ] || : >"$POSTERN_AUDIT"
W=/tmp/bench-$NAME                           # run-matrix.sh's WORKDIR
"$BENCH"/stop.sh "$W"; rm -f "$W"/server.log "$W".last   # no audit of a stale run

disk_before=$(disk_flush /tmp)
{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc)"
    echo "# posternd: $POSTERN_BUILD/posternd," \
        "git $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)"
    echo "# NAME=$NAME LOAD=${LOAD:-1} REPS=$REPS N=$N CS=\"$CS\" SIZES=\"$SIZES\" IDLE=\"$IDLE\" LAT_N=$LAT_N" \
        "DOMAINS=$DOMAINS PORT=$PORT POSTERN_MAX_SESSIONS=${POSTERN_MAX_SESSIONS:-}"
    echo "# $disk_before"
    echo "# uptime before: $(uptime)"
    # Load average every 15 s while the matrix runs (bounded: 4 h).
    for _ in $(seq 960); do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 15; done >>"$LOADLOG" 2>&1 &
    sampler=$!
    "$BENCH"/run-matrix.sh "$NAME" "$HERE"/start-postern.sh "$PORT" "$OUT"
    kill "$sampler"
    echo "# uptime after: $(uptime)"
} 2>&1 | tee -a "$LOG"
disk_after=$(disk_flush /tmp)
echo "# after: $disk_after" | tee -a "$LOG"

# run-matrix.sh stops the last server but nothing starts after it: audit it here.
[ -f "$W"/server.log ] && python3 "$HERE"/audit-postern.py "$W" "$(date -Is) (last run)" >>"$POSTERN_AUDIT"
bad=$(grep -c '"ok": false' "$POSTERN_AUDIT")
echo "audit: $(wc -l <"$POSTERN_AUDIT") runs checked, $bad with a count mismatch or leftovers ($POSTERN_AUDIT)"

{
    "$BENCH"/summarize.py "$BENCH"/results/raw-anchors.jsonl "$OUT"
    echo
    echo "Before: $disk_before"
    echo "After:  $disk_after"
} | tee "$(dirname "$OUT")/summary-$base.md"
