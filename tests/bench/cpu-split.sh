#!/bin/bash
# cpu-split.sh: where postern's server CPU per message goes (issue 15).
# smtp-source sends N messages of S bytes at C sessions, one connection per
# message, all to the bench.test maildir (the same load as side-by-side.sh's
# maildir-C point, without its latency probes), and the CPU the server's
# process tree used from the first connection until every message is in
# Maildir/new and the spool is empty is split, per message, into user and
# system time of: the serving process (its event loop and its other
# threads), the delivery agents, the root parent; and the load generator's
# own (it shares the cores). Benchmark figures, not a test.
#
# Setups (SETUPS), each run with every build (BUILDS) in turn, the whole
# pass REPS times (A B A B ...: a slow minute hits both builds alike):
#   disk   WORKDIR (spool and Maildir) under DISK_DIR, /tmp (this machine's
#          root file system: ext4 without a journal)
#   tmpfs  WORKDIR on a tmpfs this script mounts on TMPFS_DIR and unmounts
#          when it ends: what is left once the disk and its file system are
#          out of the way
#   ext4j  WORKDIR on an ext4 file system WITH a journal (mkfs.ext4's
#          default), made in a file EXT4J_IMG on DISK_DIR and loop-mounted on
#          EXT4J_DIR, removed when the script ends: the same disk with the
#          file system a server would usually have (the loop device's own
#          kernel threads are not in the server's tree)
# Every run gets a fresh server (start-postern.sh, POSTERN_BUILD=the build's
# folder), is audited (audit-postern.py: each 250 delivered exactly once,
# nothing left in the spool) and stopped by PID (the harness's stop.sh).
#
# PERF=1 adds, after the measured repetitions, one run per setup and build
# under `perf record -e cpu-clock -g -p <the server's processes>` (agents
# started during the run inherit it), and writes `perf report` of the
# posternd and postern-local processes, user and kernel symbols and the
# time under each system call, to results/cpu-split-SET-perf-SETUP-BUILD.txt
# (perf.data stays in PERF_DIR). These runs are not in the medians.
#
# Environment (defaults):
#   SET=DATE REPS=3 N=3000 C=20 S=1024 TIMEOUT=600 SETTLE_S=60 WAIT_S=1
#   SETUPS="disk tmpfs" (ext4j may be added) DISK_DIR=/tmp
#   TMPFS_DIR=/tmp/bench-cpu-split-tmpfs TMPFS_SIZE=1g PORT=31235
#   EXT4J_DIR=/tmp/bench-cpu-split-ext4j EXT4J_IMG=DISK_DIR/bench-cpu-split-ext4j.img EXT4J_SIZE=1G
#   BUILDS="postern=<POSTERN_BUILD, or this tree's build-bench, else build>"
#     several as "before=/path/build after=/path/build"
#   PERF=0 PERF_DIR=/tmp/bench-cpu-split-perf PERF_FREQ=2000
#   APPEND=0 (1: add to an existing raw file)
#   MICRO=0 (1: at the end, compile cpu-split.cpp with c++ and libuv into a
#     temporary folder and print its three probes of the machine into the
#     run log: CPU a file creation costs in each setup's folder, a round
#     trip to libuv's worker pool, the name-service calls a session makes)
# WAIT_S: seconds between the server's start and the load. start-postern.sh
# has just deleted the previous run's files; on this ext4 without a journal
# the inode allocator passes over inodes freed in the last 30 s, so the first
# half minute after a run creates files more slowly (docs/benchmarks.md).
# An MTA deletes files all the time, so the default keeps that cost in
# (WAIT_S=35 measured the same on disk, 2.08-2.16 ms a message against 2.23:
# the run's own deletions are what count).
# Example, two builds side by side with profiles (about 7 minutes):
#   SET=try REPS=5 PERF=1 BUILDS="before=/tmp/a/build-bench after=/tmp/b/build-bench" ./cpu-split.sh
#
# Output: results/cpu-split-SET-raw.jsonl (one line per run, "env" lines
# before and after: the disk's flush rate, uptime, builds), -run.log,
# -summary.md (cpu-split.py table: medians).
# Needs root, the harness's setup (smtp-source in /opt/postfix, user
# benchuser), the user _postern, and in every build the targets posternd
# postern-local table_file delivery_maildir delivery_mbox bench_disk_flush.
# The harness is ../shared/bench beside this checkout, or BENCH=... (see
# bench-lib.sh); it is only read.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
SET=${SET:-$(date +%Y-%m-%d)} REPS=${REPS:-3} N=${N:-3000} C=${C:-20} S=${S:-1024}
TIMEOUT=${TIMEOUT:-600} SETTLE_S=${SETTLE_S:-60} WAIT_S=${WAIT_S:-1}
SETUPS=${SETUPS:-disk tmpfs} DISK_DIR=${DISK_DIR:-/tmp} TMPFS_DIR=${TMPFS_DIR:-/tmp/bench-cpu-split-tmpfs}
TMPFS_SIZE=${TMPFS_SIZE:-1g} PORT=${PORT:-31235}
EXT4J_DIR=${EXT4J_DIR:-/tmp/bench-cpu-split-ext4j} EXT4J_IMG=${EXT4J_IMG:-$DISK_DIR/bench-cpu-split-ext4j.img}
EXT4J_SIZE=${EXT4J_SIZE:-1G}
BUILDS=${BUILDS:-postern=${POSTERN_BUILD:-$(default_postern_build)}}
MICRO=${MICRO:-0} PERF=${PERF:-0} PERF_DIR=${PERF_DIR:-/tmp/bench-cpu-split-perf} PERF_FREQ=${PERF_FREQ:-2000}
RES=$HERE/results PREFIX=$HERE/results/cpu-split-$SET
OUT=$PREFIX-raw.jsonl LOG=$PREFIX-run.log SUMMARY=$PREFIX-summary.md
MOUNTED=0 MOUNTED_EXT4J=0

build_dir() { echo "${1#*=}"; }
build_name() { echo "${1%%=*}"; }

checks() {
    [ "$(id -u)" = 0 ] || die "run as root"
    [ -x "$PF_SBIN"/smtp-source ] || die "smtp-source is not in $PF_SBIN (run $BENCH/setup.sh)"
    local b f
    for b in $BUILDS; do
        case $b in *=*) ;; *) die "BUILDS: NAME=DIR pairs, not '$b'" ;; esac
        for f in posternd postern-local plugins/delivery-maildir.so tests/bench/bench_disk_flush; do
            [ -e "$(build_dir "$b")/$f" ] || die "$(build_dir "$b")/$f missing: build posternd postern-local" \
                "table_file delivery_maildir delivery_mbox bench_disk_flush"
        done
    done
    for f in $SETUPS; do case $f in disk | tmpfs | ext4j) ;; *) die "unknown setup $f (disk, tmpfs, ext4j)" ;; esac; done
    [ "$PERF" = 1 ] && ! command -v perf >/dev/null && die "perf missing (apt-get install linux-perf)"
    port_free "$PORT" || die "port $PORT is busy: set PORT"
    mkdir -p "$RES"
    [ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
    true
}

mount_tmpfs() {
    case " $SETUPS " in *" tmpfs "*) ;; *) return 0 ;; esac
    mountpoint -q "$TMPFS_DIR" && die "$TMPFS_DIR is already a mount point"
    mkdir -p "$TMPFS_DIR" && mount -t tmpfs -o size="$TMPFS_SIZE",mode=755 tmpfs "$TMPFS_DIR" ||
        die "cannot mount a tmpfs on $TMPFS_DIR"
    MOUNTED=1
}

mount_ext4j() {
    case " $SETUPS " in *" ext4j "*) ;; *) return 0 ;; esac
    mountpoint -q "$EXT4J_DIR" && die "$EXT4J_DIR is already a mount point"
    [ -e "$EXT4J_IMG" ] && die "$EXT4J_IMG exists: remove it or set EXT4J_IMG"
    truncate -s "$EXT4J_SIZE" "$EXT4J_IMG" && mkfs.ext4 -q -F "$EXT4J_IMG" && mkdir -p "$EXT4J_DIR" &&
        mount -o loop "$EXT4J_IMG" "$EXT4J_DIR" && chmod 755 "$EXT4J_DIR" ||
        { rm -f "$EXT4J_IMG"; die "cannot make and mount an ext4 with a journal on $EXT4J_DIR"; }
    MOUNTED_EXT4J=1
}

cleanup() {
    "$BENCH"/stop.sh "$DISK_DIR"/bench-cpu-split
    [ "$MOUNTED" = 1 ] && { "$BENCH"/stop.sh "$TMPFS_DIR"/bench-cpu-split; umount "$TMPFS_DIR" && rmdir "$TMPFS_DIR"; }
    [ "$MOUNTED_EXT4J" = 1 ] && { "$BENCH"/stop.sh "$EXT4J_DIR"/bench-cpu-split; umount "$EXT4J_DIR" &&
        rmdir "$EXT4J_DIR" && rm -f "$EXT4J_IMG"; }
    rm -rf "$DISK_DIR"/bench-cpu-split "$DISK_DIR"/bench-cpu-split.last
}

workdir_of() {
    case $1 in
    tmpfs) echo "$TMPFS_DIR"/bench-cpu-split ;;
    ext4j) echo "$EXT4J_DIR"/bench-cpu-split ;;
    *) echo "$DISK_DIR"/bench-cpu-split ;;
    esac
}

# settle W: wait (at most SETTLE_S) until the spool's messages/ is empty:
# the deliveries are reported and their envelopes removed.
settle() {
    local i
    for ((i = 0; i <= SETTLE_S * 10; i++)); do
        [ -z "$(find "$1"/spool/messages -type f -print -quit 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    return 1
}

# run_one REP SETUP BUILD [PERFDATA]: one measured run, appended to OUT.
run_one() {
    local rep=$1 setup=$2 b=$3 perfdata=${4:-} W T root t0 t1 src_rc dl_rc settled=true perfpid=
    W=$(workdir_of "$setup") T=$(mktemp -d)
    "$BENCH"/stop.sh "$W"
    echo "== rep $rep $setup $(build_name "$b")${perfdata:+ (perf)} ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! root=$(env -u POSTERN_AUDIT -u POSTERN_RELAY POSTERN_BUILD="$(build_dir "$b")" "$HERE"/start-postern.sh "$PORT" "$W"); then
        echo "   start failed (see $W/server.log)"
        "$BENCH"/stop.sh "$W"
        return
    fi
    sync # the previous run's dirty pages are not this run's to flush
    sleep "$WAIT_S"
    local load0; load0=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ -n "$perfdata" ]; then
        # The server's processes and threads, and whatever they start
        # (agents): perf's counters are inherited.
        perf record -q -e cpu-clock -F "$PERF_FREQ" -g -o "$perfdata" \
            -p "$(python3 "$HERE"/cpu-split.py pids "$root")" >/dev/null 2>"$T"/perf.err &
        perfpid=$!
        sleep 0.5
    fi
    python3 "$HERE"/cpu-split.py snap "$root" >"$T"/before.json
    t0=$EPOCHREALTIME
    TIMEFORMAT='%U %S'
    { time timeout "$TIMEOUT" "$PF_SBIN"/smtp-source -s "$C" -m "$N" -l "$S" \
        -f from@client.test -t rcpt@bench.test -M client.test 127.0.0.1:"$PORT" 2>"$T"/source.err; } \
        2>"$T"/client.cpu && src_rc=0 || src_rc=$?
    t1=$EPOCHREALTIME
    python3 "$BENCH"/delivered.py "$W" maildir "$N" "$TIMEOUT" >"$T"/done && dl_rc=0 || dl_rc=$?
    settle "$W" || settled=false
    python3 "$HERE"/cpu-split.py snap "$root" >"$T"/after.json
    if [ -n "$perfpid" ]; then kill -INT "$perfpid"; wait "$perfpid"; fi
    local load1; load1=$(cut -d' ' -f1-3 /proc/loadavg)
    [ "$src_rc" = 0 ] || echo "   smtp-source exit $src_rc: $(head -c 300 "$T"/source.err)"
    [ "$dl_rc" = 0 ] || echo "   only $(cut -d' ' -f1 "$T"/done) of $N delivered within ${TIMEOUT}s"
    [ "$settled" = true ] || echo "   the spool still holds messages after ${SETTLE_S}s"
    echo "RESULT {\"mode\": \"maildir\", \"n\": $N, \"c\": $C, \"size\": $S}" >"$W".last
    "$BENCH"/stop.sh "$W"
    local verdict; verdict=$(python3 "$HERE"/audit-postern.py "$W" "rep $rep $setup $(build_name "$b")")
    python3 - "$T" "$rep" "$setup" "$(build_name "$b")" "$N" "$C" "$S" "$t0" "$t1" "$src_rc" "$dl_rc" \
        "$settled" "$load0" "$load1" "$verdict" "${perfdata:+1}" >>"$OUT" <<'PY'
import json, os, subprocess, sys
(T, rep, setup, build, n, c, s, t0, t1, src_rc, dl_rc, settled, load0, load1, verdict, perf) = sys.argv[1:]
n = int(n)
split = json.loads(subprocess.check_output([sys.executable, os.environ["CPU_SPLIT_PY"], "diff",
                                            f"{T}/before.json", f"{T}/after.json", str(n)]))
cu, cs = (float(x) for x in open(f"{T}/client.cpu").read().split())
split["client"] = {"user": round(cu * 1000 / n, 4), "sys": round(cs * 1000 / n, 4)}
done = open(f"{T}/done").read().split()
v = json.loads(verdict)
t0, t1 = float(t0), float(t1)
r = {"kind": "run", "rep": int(rep), "setup": setup, "build": build, "perf": bool(perf), "n": n, "c": int(c),
     "size": int(s), "accepted_per_s": round(n / (t1 - t0), 1), "delivered_per_s": round(n / (float(done[1]) - t0), 1),
     "cpu": split, "loadavg_before": load0, "loadavg_after": load1, "audit_ok": v["ok"],
     "smtp_source_rc": int(src_rc), "delivery_rc": int(dl_rc), "settled": settled == "true"}
r["ok"] = r["audit_ok"] and r["smtp_source_rc"] == 0 and r["delivery_rc"] == 0 and r["settled"] and not r["perf"]
if not r["ok"]:
    r["why"] = "perf run" if r["perf"] else "audit or count failed"
print(json.dumps(r))
PY
    tail -1 "$OUT" | python3 -c 'import json, sys; r = json.load(sys.stdin); c = r["cpu"]
f = lambda k: "{:.3f}+{:.3f}".format(c[k]["user"], c[k]["sys"])
print("   accepted {accepted_per_s} msg/s, delivered {delivered_per_s} msg/s; ms/msg user+sys:".format(**r),
      "serving", f("serving"), "agents", f("agents"), "parent", f("parent"), "total", f("server"),
      "client", f("client"), "; audit ok:", r["audit_ok"])'
    tail -1 "$OUT" | grep -q '"audit_ok": true' || cp "$W"/server.log "$PREFIX-$setup-$(build_name "$b")-rep$rep.log"
    rm -rf "$T"
}

# perf_report SETUP BUILD DATA: the profile's top symbols, to the results.
# Shares are of the server tree's samples (the recording holds nothing
# else), split by process name with --sort comm (this perf's --comms filter
# mixed processes up).
perf_report() {
    local txt=$PREFIX-perf-$1-$2.txt
    local pr=(perf report -i "$3" --stdio -g none)
    {
        echo "# perf record -e cpu-clock -F $PERF_FREQ -g -p <posternd and its serving child, inherited by what"
        echo "# they start>, one run of N=$N C=$C S=$S, setup $1, build $2; % of the server tree's samples"
        echo "# by process and library (self)"
        "${pr[@]}" --no-children --sort comm,dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -14
        echo
        echo "# top symbols (self; [k] kernel, [.] user)"
        "${pr[@]}" --no-children --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
        echo
        echo "# top user-space symbols (self)"
        "${pr[@]}" --no-children --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' |
            grep -v '\[k\]' | head -30
        echo
        echo "# kernel time under each system call (with what it calls)"
        "${pr[@]}" --children --sort comm,sym 2>/dev/null | grep -E '\[k\] (__x64_sys_|__do_sys_|ksys_)' | head -24
    } >"$txt"
    echo "   profile: $txt"
}

# micro: cpu-split.cpp's probes (MICRO=1), compiled into a temporary folder.
micro() {
    local dir d
    dir=$(mktemp -d) || return
    if c++ -std=c++20 -O2 -o "$dir"/cpu-split-micro "$HERE"/cpu-split.cpp -luv 2>"$dir"/cc.err; then
        "$dir"/cpu-split-micro nss "$BENCH_USER" rcpt
        "$dir"/cpu-split-micro handoff
        for d in "$DISK_DIR" $([ "$MOUNTED" = 1 ] && echo "$TMPFS_DIR") $([ "$MOUNTED_EXT4J" = 1 ] && echo "$EXT4J_DIR"); do
            "$dir"/cpu-split-micro files "$d" 3000 4
        done
    else
        echo "micro: cpu-split.cpp does not compile: $(head -c 300 "$dir"/cc.err)"
    fi
    rm -rf "$dir"
}

env_line() {
    local d disk=""
    for d in "$DISK_DIR" $([ "$MOUNTED" = 1 ] && echo "$TMPFS_DIR") $([ "$MOUNTED_EXT4J" = 1 ] && echo "$EXT4J_DIR"); do
        disk+="$(DISK_FLUSH=$(build_dir "${BUILDS%% *}")/tests/bench/bench_disk_flush disk_flush "$d"); "
    done
    echo "# $1: $disk"
    echo "# $1: uptime $(uptime)"
    python3 -c 'import json, sys; w, d, u, g, b, *a = sys.argv[1:]; print(json.dumps({"kind": "env", "when": w,
        "disk": d, "uptime": u.strip(), "postern_git": g, "builds": b, "args": a}))' "$1" "$disk" "$(uptime)" \
        "$(git -C "$HERE" rev-parse --short HEAD)" "$BUILDS" "REPS=$REPS N=$N C=$C S=$S SETUPS=$SETUPS WAIT_S=$WAIT_S" >>"$OUT"
}

checks
export CPU_SPLIT_PY=$HERE/cpu-split.py
trap cleanup EXIT
mount_tmpfs
mount_ext4j
{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc); cpu-split.sh SET=$SET REPS=$REPS N=$N C=$C S=$S"
    echo "# SETUPS=\"$SETUPS\" BUILDS=\"$BUILDS\""
    for b in $BUILDS; do
        echo "# $(build_name "$b"): $(build_dir "$b")/posternd, built $(date -r "$(build_dir "$b")"/posternd -Is)," \
            "$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(build_dir "$b")"/CMakeCache.txt 2>/dev/null)"
    done
    env_line before
    for rep in $(seq "$REPS"); do
        for setup in $SETUPS; do
            for b in $BUILDS; do run_one "$rep" "$setup" "$b"; done
        done
    done
    if [ "$PERF" = 1 ]; then
        mkdir -p "$PERF_DIR"
        for setup in $SETUPS; do
            for b in $BUILDS; do
                data=$PERF_DIR/$SET-$setup-$(build_name "$b").data
                run_one 0 "$setup" "$b" "$data"
                perf_report "$setup" "$(build_name "$b")" "$data"
            done
        done
    fi
    # Last: its files probe deletes 12,000 files, which would slow the
    # next file creations on the disk for half a minute.
    [ "$MICRO" = 1 ] && micro
    env_line after
} 2>&1 | tee -a "$LOG"
python3 "$HERE"/cpu-split.py table "$OUT" | tee "$SUMMARY"
