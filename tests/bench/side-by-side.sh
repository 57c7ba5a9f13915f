#!/bin/bash
# side-by-side.sh: postern, Postfix 3.7 and OpenSMTPD 6.8 through the same
# load in one run, interleaved point by point (A B C A B C ...), so that the
# comparison holds on a noisy, shared machine (issue 15). Benchmark figures,
# not a test. Everything runs on 127.0.0.1.
#
# Servers (SERVERS), each started fresh for every run (empty queue and
# maildir, smtp-sink on PORT+1, own mount namespace with the harness's no-DNS
# resolv.conf) and stopped by PID with the harness's stop.sh:
#   postern          start-postern.sh with POSTERN_RELAY=1 (bench.test to a
#                    maildir as benchuser, every other domain relayed to the sink)
#   postfix          the harness's start-postfix.sh (virtual(8) to the maildir,
#                    relayhost = the sink)
#   opensmtpd-bl128  the harness's start-opensmtpd.sh with its listen() backlog
#                    raised from 5 to 128 by the harness's LD_PRELOAD shim, as
#                    in the anchor runs (stock OpenSMTPD stalls on SYN-ACK
#                    retransmits at C >= 6); `opensmtpd` (stock) may be added
# Points (POINTS), each run on every server in turn before the next point:
#   maildir-C  the harness's load.sh 127.0.0.1 PORT N C S bench.test: phase 1
#              smtp-source -s C -m N -l S, one connection per message, then
#              LAT_N latency probes (latency.py, C at a time)
#   relay-C    the same to rcpt@relay.test, relayed to the smtp-sink
#   commit-1   LAT1_N messages one at a time (the harness's latency.py, C=1):
#              the time from "." to its 250 is the server's commit latency
# Repetitions are the outer loop: rep 1 runs every point on every server, then
# rep 2... After each postern run audit-postern.py checks that each message
# that got its 250 was delivered (maildir file or sink) exactly once and that
# nothing is left in the spool; after every run of every server the delivered
# count (Maildir/new or the sink's counter) must equal the messages accepted.
#
# Figures (side-by-side-summarize.py; medians over the repetitions, postern's
# ratio to the best anchor): accepted and delivered msg/s at maildir C=20 and
# C=100, relayed msg/s at C=20 and C=100, server CPU ms/msg (maildir C=20),
# txn p99 (maildir C=100), "." to 250 median and p99 (C=1), peak PSS
# (maildir C=100). The disk's flush rate (bench_disk_flush in /tmp, where the
# spools are) and `uptime` are recorded before and after; the 1-min load
# average before and after every run, and every 15 s in the loadavg log.
#
# Environment (defaults):
#   SET=final REPS=3 N=2000 S=1024 LAT_N=200 LAT1_N=500 TIMEOUT=600
#   SERVERS="postern postfix opensmtpd-bl128"
#   POINTS="maildir-20 maildir-100 relay-20 relay-100 commit-1"
#   PORT_POSTERN=31225 PORT_POSTFIX=31125 PORT_OSMTPD=31025 (sinks on +1)
#   POSTERN_BUILD=<this tree>/build-bench if it has posternd, else build
#   KEEP=0 (1: leave the work folders /tmp/bench-sbs-SERVER after the run)
#   SETTLE_S=60 (longest wait for postern's spool to empty before the stop)
#   SKIP="" (POINT:SERVER pairs not to run, e.g. "relay-20:opensmtpd-bl128
#   relay-100:opensmtpd-bl128": OpenSMTPD relays ~16 msg/s whatever C is,
#   so these two take more than half of a full run)
# Smoke run (about 3 minutes):
#   SET=smoke REPS=1 N=200 LAT_N=50 LAT1_N=50 ./side-by-side.sh
# Writes results/side-by-side-SET-raw.jsonl (one line per run, plus "env"
# lines before and after; refuses to append unless APPEND=1), -audit.jsonl
# (postern's audits), -run.log (this output), -loadavg.log, -summary.md; the
# server.log of a run whose audit or count check failed is kept as
# side-by-side-SET-SERVER-POINT-repR.log.
# Needs root, the harness's setup.sh done (Postfix unpacked in /opt/postfix,
# opensmtpd and swaks installed, the users postfix, postdrop, benchuser), the
# user _postern, cc (to build the backlog shim from the harness's source if
# the harness has not built it), and the targets posternd postern-local
# table_file delivery_maildir delivery_mbox delivery_relay bench_disk_flush.
# The harness is ../shared/bench beside this checkout, or BENCH=... (see
# bench-lib.sh); it is only read.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
export POSTERN_BUILD
SET=${SET:-final} REPS=${REPS:-3} N=${N:-2000} S=${S:-1024} LAT_N=${LAT_N:-200} LAT1_N=${LAT1_N:-500}
TIMEOUT=${TIMEOUT:-600} KEEP=${KEEP:-0} SKIP=${SKIP:-} SETTLE_S=${SETTLE_S:-60}
SERVERS=${SERVERS:-postern postfix opensmtpd-bl128}
POINTS=${POINTS:-maildir-20 maildir-100 relay-20 relay-100 commit-1}
PORT_POSTERN=${PORT_POSTERN:-31225} PORT_POSTFIX=${PORT_POSTFIX:-31125} PORT_OSMTPD=${PORT_OSMTPD:-31025}
RES=$HERE/results
PREFIX=$RES/side-by-side-$SET
OUT=$PREFIX-raw.jsonl AUDIT=$PREFIX-audit.jsonl LOG=$PREFIX-run.log
LOADLOG=$PREFIX-loadavg.log SUMMARY=$PREFIX-summary.md
SHIM_DIR=/tmp/bench-sbs-shim
SHIM=

# port_of SERVER: its SMTP port (its sink listens on the next one).
port_of() {
    case $1 in
    postern) echo "$PORT_POSTERN" ;;
    postfix) echo "$PORT_POSTFIX" ;;
    opensmtpd | opensmtpd-bl128) echo "$PORT_OSMTPD" ;;
    *) return 1 ;;
    esac
}

checks() {
    [ "$(id -u)" = 0 ] || die "run as root"
    local s p f
    for s in $SERVERS; do port_of "$s" >/dev/null || die "unknown server $s (postern, postfix, opensmtpd-bl128, opensmtpd)"; done
    for p in $POINTS; do
        case $p in maildir-[0-9]* | relay-[0-9]* | commit-1) ;; *) die "unknown point $p (maildir-C, relay-C, commit-1)" ;; esac
    done
    [ -x "$PF_SBIN"/smtp-source ] && [ -x "$PF_SBIN"/smtp-sink ] && [ -x "$PF_SBIN"/postfix ] ||
        die "Postfix is not unpacked in $POSTFIX_ROOT (run $BENCH/setup.sh)"
    command -v smtpd >/dev/null || die "smtpd missing (package opensmtpd; see $BENCH/setup.sh)"
    for f in posternd postern-local plugins/delivery-maildir.so plugins/delivery-relay.so; do
        [ -e "$POSTERN_BUILD/$f" ] || die "$POSTERN_BUILD/$f missing: build posternd postern-local table_file" \
            "delivery_maildir delivery_mbox delivery_relay bench_disk_flush"
    done
    need_disk_flush
    for u in _postern postfix "$BENCH_USER"; do getent passwd "$u" >/dev/null || die "user $u missing"; done
    for s in $SERVERS; do
        p=$(port_of "$s")
        port_free "$p" && port_free $((p + 1)) || die "port $p or $((p + 1)) ($s) is busy: set PORT_..."
    done
    mkdir -p "$RES"
    [ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
    case " $SERVERS " in *" opensmtpd-bl128 "*)
        SHIM=$(backlog_shim "$SHIM_DIR") || die "cannot build the listen-backlog shim into $SHIM_DIR" ;;
    esac
}

# start SERVER W: start it into W (prints nothing; false on failure).
start() {
    local port; port=$(port_of "$1")
    case $1 in
    postern) env -u POSTERN_AUDIT POSTERN_RELAY=1 "$HERE"/start-postern.sh "$port" "$2" ;;
    postfix) "$BENCH"/start-postfix.sh "$port" "$2" ;;
    opensmtpd) env -u OSMTPD_BACKLOG -u LD_PRELOAD "$BENCH"/start-opensmtpd.sh "$port" "$2" ;;
    opensmtpd-bl128)
        # The harness's own way when its shim is built; else the same shim
        # built here, preloaded the same way (it only raises listen()
        # backlogs below 128: smtpd's, not the sink's 1024).
        if [ "$SHIM" = "$BENCH_DIR"/.build/listen-backlog.so ]; then
            OSMTPD_BACKLOG=128 "$BENCH"/start-opensmtpd.sh "$port" "$2"
        else
            env -u OSMTPD_BACKLOG LD_PRELOAD="$SHIM" LISTEN_BACKLOG_MIN=128 "$BENCH"/start-opensmtpd.sh "$port" "$2"
        fi ;;
    esac >/dev/null
}

# delivered W MODE: messages delivered so far (Maildir/new, or the sink's counter).
delivered() { python3 "$BENCH"/delivered.py "$1" "$2"; }

# commit_point SERVER W: LAT1_N messages one at a time to rcpt@bench.test,
# then wait for their delivery; prints a load.sh-style RESULT line (n=0: no
# throughput phase) that audit-postern.py reads from W.last.
commit_point() {
    local port lat sent
    port=$(port_of "$1")
    lat=$(python3 "$BENCH"/latency.py 127.0.0.1 "$port" "$LAT1_N" 1 "$S" lat@bench.test "$TIMEOUT")
    sent=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sent"])' "$lat")
    python3 "$BENCH"/delivered.py "$2" maildir "$sent" "$TIMEOUT" >/dev/null ||
        echo "only $(delivered "$2" maildir) of $sent delivered within ${TIMEOUT}s" >&2
    python3 - "$1" "$port" "$S" "$lat" <<'PY'
import json, sys
srv, port, size, lat = sys.argv[1:]
L = json.loads(lat)
print(f'sent {L["sent"]} ({L["errors"]} errors) one at a time in {L["wall_s"]} s; "." to 250 p50/p99 '
      f'{L.get("data_p50_ms")}/{L.get("data_p99_ms")} ms; txn p50/p99 {L.get("txn_p50_ms")}/{L.get("txn_p99_ms")} ms')
print("RESULT " + json.dumps({"tag": srv, "target": f"127.0.0.1:{port}", "mode": "maildir", "n": 0, "c": 1,
                              "size": int(size), "latency": L}))
PY
}

# settle SERVER W: give postern up to SETTLE_S seconds to empty its spool
# before it is stopped. A message counts as delivered when its file is in
# Maildir/new (or the sink has it); the agent's result, and the envelope's
# removal, come after the agent's fsyncs, which can take seconds when the
# shared disk is busy (once, 15 s here). Says how long it waited if more
# than 1 s; the audit then finds what is still queued.
settle() {
    [ "$1" = postern ] || return 0
    local t0=$EPOCHREALTIME i
    for ((i = 0; i <= SETTLE_S * 10; i++)); do
        # A queued message is a file in messages/ until its last envelope's
        # removal is durable (the journal's segments stay until the stop).
        [ -z "$(find "$2"/spool/messages -type f -print -quit 2>/dev/null)" ] && break
        sleep 0.1
    done
    local waited; waited=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }")
    if [ "$i" -gt $((SETTLE_S * 10)) ]; then
        echo "   postern's spool still holds envelopes after ${waited} s"
    elif [ "$i" -gt 10 ]; then
        echo "   waited $waited s for postern's spool to empty"
    fi
}

# run_one REP POINT SERVER: one measured run, appended to OUT (and AUDIT).
run_one() {
    local rep=$1 point=$2 srv=$3 W=/tmp/bench-sbs-$3 kind=${2%-*} c=${2##*-} dom=bench.test mode=maildir
    local port load0 load1 verdict=null final
    port=$(port_of "$srv")
    [ "$kind" = relay ] && dom=relay.test mode=relay
    "$BENCH"/stop.sh "$W"
    rm -f "$W".last
    echo "== rep $rep $point $srv ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! start "$srv" "$W"; then
        echo "   start failed: $srv (see $W/server.log)"
        "$BENCH"/stop.sh "$W"
        return
    fi
    sync # the previous run's dirty pages are not this run's to flush
    sleep 1
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ "$kind" = commit ]; then
        commit_point "$srv" "$W" 2>&1 | tee "$W".last
    else
        WORKDIR=$W LAT_N=$LAT_N TIMEOUT=$TIMEOUT TAG=$srv \
            "$BENCH"/load.sh 127.0.0.1 "$port" "$N" "$c" "$S" "$dom" 2>&1 | tee "$W".last
    fi
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    settle "$srv" "$W"
    final=$(delivered "$W" "$mode")
    "$BENCH"/stop.sh "$W"
    if [ "$srv" = postern ]; then
        verdict=$(python3 "$HERE"/audit-postern.py "$W" "rep $rep $point $srv")
        echo "$verdict" >>"$AUDIT"
    fi
    local line; line=$(grep '^RESULT ' "$W".last | tail -1 | cut -c8-)
    if [ -z "$line" ]; then
        echo "   no RESULT line ($srv $point)"
        cp "$W"/server.log "$PREFIX-$srv-$point-rep$rep.log" 2>/dev/null
        return
    fi
    python3 - "$line" "$srv" "$point" "$rep" "$(date -Is)" "$load0" "$load1" "$final" "$verdict" >>"$OUT" <<'PY'
import json, sys
line, srv, point, rep, date, load0, load1, final, verdict = sys.argv[1:]
r = json.loads(line)
v = json.loads(verdict)
lat = r.get("latency") or {}
expected = r["n"] + lat.get("sent", 0)
complete = (r.get("smtp_source_rc", 0) == 0 and r.get("delivery_rc", 0) == 0 and lat.get("errors", 0) == 0
            and (r["n"] > 0 or lat.get("sent", 0) > 0))
r.update(kind="run", server=srv, point=point, rep=int(rep), date=date, loadavg_before=load0,
         loadavg_after=load1, expected=expected, delivered_final=int(final),
         count_ok=int(final) == expected and complete, audit_ok=None if v is None else v["ok"])
print(json.dumps(r))
PY
    tail -1 "$OUT" | python3 -c 'import json, sys; r = json.load(sys.stdin)
audit = "" if r["audit_ok"] is None else ", audit ok: {audit_ok}".format(**r)
print("   check: {delivered_final} delivered for {expected} accepted, count ok: {count_ok}".format(**r) + audit)'
    tail -1 "$OUT" | grep -q '"count_ok": true' && ! tail -1 "$OUT" | grep -q '"audit_ok": false' ||
        cp "$W"/server.log "$PREFIX-$srv-$point-rep$rep.log"
}

# env_line WHEN: the machine, versions, disk flush rate and uptime, to OUT.
env_line() {
    local disk; disk=$(disk_flush /tmp)
    echo "# $1: $disk"
    echo "# $1: uptime $(uptime)"
    python3 - "$1" "$disk" "$(uptime)" "$(date -Is)" "$(uname -srm)" "$(nproc)" \
        "$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)$(git -C "$HERE" diff --quiet HEAD 2>/dev/null || echo '+')" \
        "$(date -r "$POSTERN_BUILD"/posternd -Is)" \
        "$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$POSTERN_BUILD"/CMakeCache.txt 2>/dev/null)" \
        "$("$PF_SBIN"/postconf -d -h mail_version 2>/dev/null)" "$(smtpd -h 2>&1 | sed -n 's/^version: //p')" \
        "$SET" "$REPS" "$N" "$S" "$LAT_N" "$LAT1_N" "$SERVERS" "$POINTS" >>"$OUT" <<'PY'
import json, re, sys
(when, disk, uptime, date, uname, nproc, git, built, build_type, postfix, opensmtpd,
 set_, reps, n, s, lat_n, lat1_n, servers, points) = sys.argv[1:]
m = re.search(r"([\d.]+) file-write\+fsync/s.*?([\d.]+) append\+fdatasync/s", disk)
print(json.dumps({"kind": "env", "when": when, "date": date, "disk": disk,
                  "file_fsync_per_s": float(m.group(1)) if m else None,
                  "append_fdatasync_per_s": float(m.group(2)) if m else None,
                  "uptime": uptime.strip(), "uname": uname, "nproc": int(nproc), "postern_git": git,
                  "posternd_built": built, "build_type": build_type, "postfix": postfix, "opensmtpd": opensmtpd,
                  "set": set_, "reps": int(reps), "n": int(n), "size": int(s), "lat_n": int(lat_n),
                  "lat1_n": int(lat1_n), "servers": servers.split(), "points": points.split()}))
PY
}

checks
[ "${APPEND:-0}" = 1 ] || : >"$AUDIT"
t_start=$EPOCHSECONDS
{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc); side-by-side.sh SET=$SET REPS=$REPS N=$N S=$S" \
        "LAT_N=$LAT_N LAT1_N=$LAT1_N"
    echo "# SERVERS=\"$SERVERS\" POINTS=\"$POINTS\" SKIP=\"$SKIP\""
    echo "# posternd: $POSTERN_BUILD/posternd (built $(date -r "$POSTERN_BUILD"/posternd -Is)), git" \
        "$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)$(git -C "$HERE" diff --quiet HEAD 2>/dev/null ||
            echo ' + working tree')"
    [ -n "$SHIM" ] && echo "# OpenSMTPD backlog shim: $SHIM"
    env_line before
    for _ in $(seq 960); do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 15; done >>"$LOADLOG" 2>&1 &
    sampler=$!
    trap 'kill $sampler 2>/dev/null; for s in $SERVERS; do "$BENCH"/stop.sh /tmp/bench-sbs-$s; done' EXIT
    for rep in $(seq "$REPS"); do
        for point in $POINTS; do
            for srv in $SERVERS; do
                case " $SKIP " in *" $point:$srv "*) continue ;; esac
                run_one "$rep" "$point" "$srv"
            done
        done
    done
    kill "$sampler" 2>/dev/null
    env_line after
    echo "# run time: $(((EPOCHSECONDS - t_start) / 60)) min $(((EPOCHSECONDS - t_start) % 60)) s"
    echo "checks: $(grep -c '"count_ok": true' "$OUT") of $(grep -c '"kind": "run"' "$OUT") runs delivered" \
        "exactly what was accepted; postern audits: $(grep -c '"ok": true' "$AUDIT") ok of $(wc -l <"$AUDIT")"
} 2>&1 | tee -a "$LOG"

if [ "$KEEP" != 1 ]; then
    for s in $SERVERS; do rm -rf /tmp/bench-sbs-"$s" /tmp/bench-sbs-"$s".last; done
    rm -rf "$SHIM_DIR"
fi
python3 "$HERE"/side-by-side-summarize.py "$OUT" | tee "$SUMMARY"
