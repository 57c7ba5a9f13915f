#!/bin/bash
# at-rest.sh: what `queue compression` and `queue encryption` cost (issue 16).
# Benchmark figures, not a test.
#
# Four configurations of postern, interleaved in each repetition, each on a
# freshly started server (start-postern.sh, maildir delivery of
# rcpt@bench.test, empty queue) with these lines before its listener:
#   plain     none;
#   zstd      queue compression;
#   aes       queue encryption KEY (a fixed test key);
#   zstd+aes  both.
# Each run is the harness's load.sh (smtp-source -s C -m N -l S, one
# connection per message, then LAT_N latency probes), then stop.sh and
# audit-postern.py (each accepted message delivered once, spool empty). One
# JSON line per run in OUT (load.sh's RESULT plus config, rep, load average,
# audit); the table is printed at the end (medians).
#
# Environment (defaults): REPS=3 N=2000 C=20 S=1024 LAT_N=100 PORT=31245
#   CONFIGS="plain zstd aes zstd+aes" POSTERN_BUILD=<build-bench or build>
#   OUT=results/raw-at-rest.jsonl (refused if it exists, unless APPEND=1)
# Needs root and the harness's setup.sh done (see bench-lib.sh).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
export POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
REPS=${REPS:-3} N=${N:-2000} C=${C:-20} S=${S:-1024} PORT=${PORT:-31245}
export LAT_N=${LAT_N:-100} TIMEOUT=${TIMEOUT:-600}
CONFIGS=${CONFIGS:-plain zstd aes zstd+aes}
KEY=0123456789abcdef0123456789abcdef
OUT=${OUT:-$HERE/results/raw-at-rest.jsonl}
case $OUT in /*) ;; *) OUT=$HERE/$OUT ;; esac

[ "$(id -u)" = 0 ] || die "run as root"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
[ -x "$PF_SBIN"/smtp-source ] || die "$PF_SBIN/smtp-source missing (run $BENCH/setup.sh)"
port_free "$PORT" || die "port $PORT is busy"

lines_of() { # CONFIG: the configuration lines it adds
    case $1 in
    plain) echo "" ;;
    zstd) printf 'queue compression\n' ;;
    aes) printf 'queue encryption %s\n' "$KEY" ;;
    zstd+aes) printf 'queue compression\nqueue encryption %s\n' "$KEY" ;;
    *) die "unknown configuration $1 (plain, zstd, aes, zstd+aes)" ;;
    esac
}
for cfg in $CONFIGS; do lines_of "$cfg" >/dev/null; done

run_one() { # REP CONFIG
    local rep=$1 cfg=$2 W=/tmp/bench-at-rest
    "$BENCH"/stop.sh "$W"
    echo "== rep $rep: $cfg ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    POSTERN_CONF=$(lines_of "$cfg") "$HERE"/start-postern.sh "$PORT" "$W" >/dev/null || {
        echo "start failed: $cfg"; "$BENCH"/stop.sh "$W"; return
    }
    local load0; load0=$(cut -d' ' -f1-3 /proc/loadavg)
    WORKDIR=$W TAG="postern+$cfg" "$BENCH"/load.sh 127.0.0.1 "$PORT" "$N" "$C" "$S" bench.test >"$W".last
    "$BENCH"/stop.sh "$W"
    local verdict line
    verdict=$(python3 "$HERE"/audit-postern.py "$W" "rep $rep $cfg")
    line=$(grep '^RESULT ' "$W".last | tail -1 | cut -c8-)
    [ -n "$line" ] || { echo "no RESULT line from load.sh ($cfg)"; return; }
    python3 - "$line" "$cfg" "$rep" "$load0" "$verdict" >>"$OUT" <<'PY'
import json, sys
line, cfg, rep, load0, verdict = sys.argv[1:]
r = json.loads(line)
r.update(config=cfg, rep=int(rep), loadavg_before=load0, audit_ok=json.loads(verdict)["ok"])
print(json.dumps(r))
PY
    tail -1 "$OUT" | python3 -c 'import json, sys
print("   accepted {accepted_per_s:.0f}/s, delivered {delivered_per_s:.0f}/s, {server_cpu_ms_per_msg:.2f} ms CPU/msg,"
      " audit ok: {audit_ok}".format(**json.load(sys.stdin)))'
}

mkdir -p "$(dirname "$OUT")"
echo "# $(date -Is) $(uname -srm), nproc $(nproc); posternd $POSTERN_BUILD/posternd," \
    "git $(git -C "$HERE" rev-parse --short HEAD)"
echo "# REPS=$REPS N=$N C=$C S=$S CONFIGS=\"$CONFIGS\"; before: $(disk_flush /tmp)"
for rep in $(seq "$REPS"); do
    for cfg in $CONFIGS; do run_one "$rep" "$cfg"; done
done
echo "# after: $(disk_flush /tmp)"
python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("| configuration | accepted msg/s | delivered msg/s | server CPU ms/msg | txn p99 ms | runs audited ok |")
print("| --- | --: | --: | --: | --: | --: |")
for cfg in dict.fromkeys(r["config"] for r in runs):
    rs = [r for r in runs if r["config"] == cfg]
    med = lambda k: statistics.median(k(r) for r in rs)
    print(f"| {cfg} | {med(lambda r: r['accepted_per_s']):,.0f} | {med(lambda r: r['delivered_per_s']):,.0f} | "
          f"{med(lambda r: r['server_cpu_ms_per_msg']):.2f} | {med(lambda r: r['latency']['txn_p99_ms']):.0f} | "
          f"{sum(r['audit_ok'] for r in rs)} of {len(rs)} |")
PY
