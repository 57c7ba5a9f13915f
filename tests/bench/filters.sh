#!/bin/bash
# filters.sh: what a filter process costs, postern beside OpenSMTPD 6.8
# (issue 11). Benchmark figures, not a test.
#
# Six configurations, each a listener delivering rcpt@bench.test to a maildir
# exactly as in the anchor runs (start-postern.sh; start-opensmtpd-filter.sh,
# OpenSMTPD with the harness's backlog shim, OSMTPD_BACKLOG=128 as
# opensmtpd-bl128), with:
#   none      no filter;
#   proceed   bench_filter_proceed (filter_proceed.cpp, built in build-bench):
#             registers connect, helo, ehlo, mail-from, rcpt-to, data,
#             data-line, commit and the link-connect/link-disconnect reports,
#             answers proceed and echoes every data line: the cost of the
#             protocol alone;
#   dkimsign  Debian's filter-dkimsign -d bench.test -s sel -k KEY (RSA 2048,
#             generated once into KEYDIR): data-line and commit, holds the
#             message until "." and signs it;
#   dkimsign-ed25519  the same with -a ed25519-sha256 and an Ed25519 key;
#   dkim-rsa, dkim-ed25519  postern's own filter-dkim (build-bench/filter-dkim)
#             with the same RSA key, or the Ed25519 key (relaxed/relaxed);
#             it signs by the From domain, so the key is the table's "*"
#             default (smtp-source's From is @client.test; filter-dkimsign
#             signs whatever the From).
# The filter runs as the daemon's filter user (postern: _postern; OpenSMTPD:
# opensmtpd), so the key is made readable by exactly those two (owner
# _postern, group opensmtpd, mode 0440).
#
# Each repetition runs the six configurations one after the other (servers
# interleaved point by point: postern none, proceed, dkimsign, then
# opensmtpd none, proceed, dkimsign), each on a freshly started server
# (empty queue and maildir) in /tmp/bench-filters-SERVER-FILTER, which waits
# for a 220 greeting (so the filter has finished its handshake), then runs
# the harness's load.sh (smtp-source -s C -m N -l S to rcpt@bench.test, one
# connection per message, then LAT_N latency probes) and stops the server
# with the harness's stop.sh (by PID).
#
# Figures per run (one JSON line in OUT): load.sh's RESULT (accepted and
# delivered msg/s, server CPU of the whole process tree, the filter
# included, peak RSS/PSS, latency) plus server, filter, rep, the 1-min load
# average before and after, the files in Maildir/new and how many carry a
# DKIM-Signature header, and for postern audit-postern.py's verdict (lost or
# duplicated mail, queue leftovers). filters-summarize.py prints the table.
#
# Environment (defaults): REPS=3 N=2000 C=20 S=1024 LAT_N=100 TIMEOUT=600
#   CONFIGS="postern:none postern:proceed postern:dkimsign opensmtpd:none
#            opensmtpd:proceed opensmtpd:dkimsign"
#   PORT_POSTERN=31225 PORT_OSMTPD=31025 (and 31026 for its smtp-sink)
#   OSMTPD_BACKLOG=128 KEYDIR=/tmp/bench-filters-key
#   POSTERN_BUILD=<this tree>/build-bench OUT=results/raw-filters.jsonl
# Smoke run:  REPS=1 N=200 OUT=results/raw-filters-smoke.jsonl ./filters.sh
# Refuses to append to an existing OUT unless APPEND=1. Next to OUT (BASE is
# OUT's name without raw- and .jsonl) it writes run-BASE.log (this output,
# uptime and the disk's flush rate in /tmp (bench_disk_flush) before and
# after), loadavg-BASE.log
# (/proc/loadavg every 15 s), audit-BASE.jsonl (postern runs) and
# summary-BASE.md; the server.log of a run that lost mail is kept as
# server-BASE-SERVER-FILTER-repR.log.
# Needs root, the harness's setup.sh done (smtp-source in /opt/postfix,
# benchuser; the harness is ../shared/bench beside this checkout or BENCH=...,
# see bench-lib.sh; without the harness's backlog shim, one is compiled from
# its source into SHIM_DIR, default /tmp/bench-filters-shim), the users
# _postern and opensmtpd, the package opensmtpd-filter-dkimsign, openssl, and
# the targets posternd postern-local table_file delivery_maildir delivery_mbox
# bench_filter_proceed filter-dkim bench_disk_flush in POSTERN_BUILD
# (build-bench if it has posternd, else build).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
export POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
REPS=${REPS:-3} N=${N:-2000} C=${C:-20} S=${S:-1024}
export LAT_N=${LAT_N:-100} TIMEOUT=${TIMEOUT:-600}
CONFIGS=${CONFIGS:-postern:none postern:proceed postern:dkimsign opensmtpd:none opensmtpd:proceed opensmtpd:dkimsign}
PORT_POSTERN=${PORT_POSTERN:-31225} PORT_OSMTPD=${PORT_OSMTPD:-31025}
export OSMTPD_BACKLOG=${OSMTPD_BACKLOG:-128}
OSMTPD_USER=${OSMTPD_USER:-opensmtpd}
KEYDIR=${KEYDIR:-/tmp/bench-filters-key} KEY=
PROCEED=$POSTERN_BUILD/tests/bench/bench_filter_proceed
DKIMSIGN=${DKIMSIGN:-/usr/libexec/opensmtpd/filter-dkimsign}
OWN_DKIM=$POSTERN_BUILD/filter-dkim
RES=$HERE/results
OUT=${OUT:-$RES/raw-filters.jsonl}
case $OUT in /*) ;; *) OUT=$HERE/$OUT ;; esac
base=$(basename "$OUT" .jsonl); base=${base#raw-}
LOG=$(dirname "$OUT")/run-$base.log
LOADLOG=$(dirname "$OUT")/loadavg-$base.log
AUDIT=$(dirname "$OUT")/audit-$base.jsonl

[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$(dirname "$OUT")"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
[ -x "$PF_SBIN"/smtp-source ] || die "$PF_SBIN/smtp-source missing (run $BENCH/setup.sh)"
OSMTPD_BACKLOG_SHIM=$(backlog_shim "${SHIM_DIR:-/tmp/bench-filters-shim}") || die "cannot build the backlog shim"
export OSMTPD_BACKLOG_SHIM
need_disk_flush
for f in posternd postern-local plugins/delivery-maildir.so tests/bench/bench_filter_proceed filter-dkim; do
    [ -e "$POSTERN_BUILD/$f" ] || die "$POSTERN_BUILD/$f missing: build posternd postern-local table_file delivery_maildir delivery_mbox bench_filter_proceed"
done
[ -x "$DKIMSIGN" ] || die "$DKIMSIGN missing (package opensmtpd-filter-dkimsign)"
command -v smtpd >/dev/null || die "smtpd missing (package opensmtpd)"
for u in _postern "$OSMTPD_USER" "$BENCH_USER"; do getent passwd "$u" >/dev/null || die "user $u missing"; done
for p in "$PORT_POSTERN" "$PORT_OSMTPD" $((PORT_OSMTPD + 1)); do port_free "$p" || die "port $p is busy"; done
ulimit -n "$(ulimit -Hn)"

# The DKIM key, made once: readable by both daemons' filter users and nobody else.
mkdir -p "$KEYDIR"; chmod 755 "$KEYDIR"
KEY=$KEYDIR/sel.key
if [ ! -s "$KEY" ]; then
    openssl genrsa -out "$KEY.tmp" 2048 2>/dev/null || die "openssl genrsa failed"
    openssl rsa -in "$KEY.tmp" -pubout -outform DER 2>/dev/null | base64 -w0 |
        sed 's/^/v=DKIM1; k=rsa; p=/' >"$KEYDIR"/sel.txt   # the TXT record sel._domainkey.bench.test
    mv "$KEY.tmp" "$KEY"
fi
ED_KEY=$KEYDIR/ed.key
if [ ! -s "$ED_KEY" ]; then
    openssl genpkey -algorithm ed25519 -out "$ED_KEY.tmp" 2>/dev/null || die "openssl genpkey failed"
    mv "$ED_KEY.tmp" "$ED_KEY"
fi
chown _postern:"$(id -gn "$OSMTPD_USER")" "$KEY" "$ED_KEY"; chmod 440 "$KEY" "$ED_KEY"

# filter_cmd FILTER: the proc-exec command of a configuration.
filter_cmd() {
    case $1 in
    none) echo "" ;;
    proceed) echo "$PROCEED" ;;
    dkimsign) echo "$DKIMSIGN -d bench.test -s sel -k $KEY" ;;
    dkimsign-ed25519) echo "$DKIMSIGN -a ed25519-sha256 -d bench.test -s ed -k $ED_KEY" ;;
    dkim-rsa) echo "$OWN_DKIM -d '*' -s sel -k $KEY" ;;
    dkim-ed25519) echo "$OWN_DKIM -d '*' -s ed -k $ED_KEY" ;;
    *) die "unknown filter $1 (none, proceed, dkimsign, dkimsign-ed25519, dkim-rsa, dkim-ed25519)" ;;
    esac
}

for cfg in $CONFIGS; do
    case ${cfg%%:*}:$(filter_cmd "${cfg#*:}" >/dev/null && echo ok) in
    postern:ok | opensmtpd:ok) ;;
    *) die "bad configuration $cfg in CONFIGS (SERVER:FILTER, SERVER postern or opensmtpd, FILTER none, proceed or dkimsign)" ;;
    esac
done

# Every filter must be runnable, and the key readable, by both filter users.
for u in _postern "$OSMTPD_USER"; do
    for f in "$PROCEED" "$DKIMSIGN" "$OWN_DKIM"; do
        runuser -u "$u" -- test -x "$f" || die "$u cannot run $f (folders on the way must be searchable)"
    done
    runuser -u "$u" -- test -r "$KEY" || die "$u cannot read $KEY"
    runuser -u "$u" -- test -r "$ED_KEY" || die "$u cannot read $ED_KEY"
done

# wait_banner PORT SECONDS: until a session gets its 220 greeting (then QUIT).
# Both servers open the port before their filters are ready; the greeting
# comes only once the connect phase went through the filter.
wait_banner() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
            f = s.makefile("rb")
            if f.readline().startswith(b"220"):
                s.sendall(b"QUIT\r\n"); f.readline()
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
}

# maildir_check WORKDIR: "FILES SIGNED": files in Maildir/new, and how many
# of them have a DKIM-Signature header.
maildir_check() {
    python3 - "$1"/Maildir/new <<'PY'
import os, sys
files = signed = 0
for e in os.scandir(sys.argv[1]):
    files += 1
    with open(e.path, "rb") as f:
        for line in f:
            if line in (b"\n", b"\r\n"):
                break
            if line[:15].lower() == b"dkim-signature:":
                signed += 1
                break
print(files, signed)
PY
}

# run_one REP SERVER FILTER: one measured run, appended to OUT.
run_one() {
    local rep=$1 srv=$2 filt=$3 start port cmd
    cmd=$(filter_cmd "$filt")
    case $srv in
    postern) start=$HERE/start-postern.sh port=$PORT_POSTERN ;;
    opensmtpd) start=$HERE/start-opensmtpd-filter.sh port=$PORT_OSMTPD ;;
    *) die "unknown server $srv (postern, opensmtpd)" ;;
    esac
    local W=/tmp/bench-filters-$srv-$filt
    "$BENCH"/stop.sh "$W"
    echo "== rep $rep: $srv, filter $filt, N=$N C=$C S=$S ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! POSTERN_FILTER_CMD=$cmd OSMTPD_FILTER_CMD=$cmd "$start" "$port" "$W" >/dev/null; then
        echo "start failed: $srv $filt"; "$BENCH"/stop.sh "$W"; return
    fi
    if ! wait_banner "$port" 30; then
        echo "no 220 greeting from $srv $filt within 30 s (see $W/server.log)"; "$BENCH"/stop.sh "$W"; return
    fi
    sleep 1
    local load0 load1; load0=$(cut -d' ' -f1-3 /proc/loadavg)
    WORKDIR=$W TAG="$srv+$filt" "$BENCH"/load.sh 127.0.0.1 "$port" "$N" "$C" "$S" bench.test | tee "$W".last
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    "$BENCH"/stop.sh "$W"
    local files signed verdict=null
    read -r files signed < <(maildir_check "$W")
    if [ "$srv" = postern ]; then
        verdict=$(python3 "$HERE"/audit-postern.py "$W" "rep $rep $srv+$filt")
        echo "$verdict" >>"$AUDIT"
    fi
    local line; line=$(grep '^RESULT ' "$W".last | tail -1 | cut -c8-)
    [ -n "$line" ] || { echo "no RESULT line from load.sh ($srv $filt)"; return; }
    python3 - "$line" "$srv" "$filt" "$rep" "$(date -Is)" "$load0" "$load1" "$files" "$signed" "$verdict" "$cmd" \
        >>"$OUT" <<'PY'
import json, sys
line, srv, filt, rep, date, load0, load1, files, signed, verdict, cmd = sys.argv[1:]
r = json.loads(line)
v = json.loads(verdict)
expected = r["n"] + (r.get("latency") or {}).get("sent", 0)
r.update(server=srv, filter=filt, filter_cmd=cmd, kind="load", rep=int(rep), date=date,
         loadavg_before=load0, loadavg_after=load1, maildir_new=int(files), dkim_signed=int(signed),
         expected=expected, audit_ok=None if v is None else v["ok"])
r["count_ok"] = r["maildir_new"] == expected and (r["audit_ok"] is not False)
print(json.dumps(r))
PY
    tail -1 "$OUT" | python3 -c 'import json, sys
print("   check: {maildir_new} files in Maildir/new for {expected} accepted, {dkim_signed} with"
      " DKIM-Signature, postern audit ok: {audit_ok}; count_ok={count_ok}".format(**json.load(sys.stdin)))'
    tail -1 "$OUT" | grep -q '"count_ok": true' ||
        cp "$W"/server.log "$(dirname "$OUT")/server-$base-$srv-$filt-rep$rep.log"
}

[ "${APPEND:-0}" = 1 ] || : >"$AUDIT"
{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc)"
    echo "# posternd: $POSTERN_BUILD/posternd (built $(date -r "$POSTERN_BUILD"/posternd -Is))," \
        "git $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)$(git -C "$HERE" diff --quiet HEAD 2>/dev/null || echo ' + working tree')"
    echo "# opensmtpd: $(smtpd -h 2>&1 | sed -n 's/^version: //p'), OSMTPD_BACKLOG=$OSMTPD_BACKLOG;" \
        "filter-dkimsign $(dpkg-query -W -f='${Version}' opensmtpd-filter-dkimsign 2>/dev/null)"
    echo "# REPS=$REPS N=$N C=$C S=$S LAT_N=$LAT_N CONFIGS=\"$CONFIGS\" KEY=$KEY"
    echo "# $(disk_flush /tmp)"
    echo "# uptime before: $(uptime)"
    for _ in $(seq 960); do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 15; done >>"$LOADLOG" 2>&1 &
    sampler=$!
    trap 'kill $sampler 2>/dev/null' EXIT
    for rep in $(seq "$REPS"); do
        for cfg in $CONFIGS; do run_one "$rep" "${cfg%%:*}" "${cfg#*:}"; done
    done
    echo "# uptime after: $(uptime)"
    echo "# after: $(disk_flush /tmp)"
    echo "checks: $(grep -c '"count_ok": true' "$OUT") of $(wc -l <"$OUT") runs delivered every message" \
        "(postern audits: $(grep -c '"ok": true' "$AUDIT") ok of $(wc -l <"$AUDIT"))"
} 2>&1 | tee -a "$LOG"

case $OSMTPD_BACKLOG_SHIM in "${SHIM_DIR:-/tmp/bench-filters-shim}"/*) rm -rf "${SHIM_DIR:-/tmp/bench-filters-shim}" ;; esac
python3 "$HERE"/filters-summarize.py "$OUT" | tee "$(dirname "$OUT")/summary-$base.md"
