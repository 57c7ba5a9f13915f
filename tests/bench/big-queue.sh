#!/bin/bash
# big-queue.sh: postern with a queue of a million envelopes (issue 15):
# how long start-up takes to load it, what it costs in memory per envelope,
# and how fast new mail is accepted while it loads and once it is loaded,
# against the same load on an empty queue.
#
#   tests/bench/big-queue.sh            MESSAGES=100000 RECIPIENTS=10 (1,000,000 envelopes)
#   MESSAGES=10000 tests/bench/big-queue.sh     (a smaller queue, for a quick look)
#   SETTLE=35: seconds between the empty queue's start and its measurement
#
# Each phase: start-postern.sh (with POSTERN_QUEUE_FILL for the full queue,
# whose envelopes all wait for a retry a day away, so none is delivered),
# then smtp-source sends N=2000 new 1-KiB messages at C=20, one connection
# each, to the maildir. Printed: the disk's flush rate, the fill, the time
# from posternd's start to "queue loaded", the accept rates, and the serving
# process's RSS and PSS (smaps_rollup) empty and loaded, per envelope, and
# its peak RSS (VmHWM) while it loaded.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
MESSAGES=${MESSAGES:-100000} RECIPIENTS=${RECIPIENTS:-10} N=${N:-2000} C=${C:-20} PORT=${PORT:-25470}
W=${WORKDIR:-/tmp/bench-big-queue}
export POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
export LD_LIBRARY_PATH=/opt/postfix/usr/lib/postfix
SMTP_SOURCE=/opt/postfix/usr/sbin/smtp-source

# Seconds since boot, the clock /proc gives a process's start time in.
now() { cut -d' ' -f1 /proc/uptime; }
started_at() { # PID
    python3 -c "import os,sys; f=open(f'/proc/{sys.argv[1]}/stat').read().rsplit(')', 1)[1].split(); print(int(f[19]) / os.sysconf('SC_CLK_TCK'))" "$1"
}
# The unprivileged serving process: the root posternd's child.
child_pid() { pgrep -P "$(cat "$W"/server.pid)" -x posternd | head -1; }
memory() { # "RSS_KB PSS_KB" of the serving process
    awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' /proc/"$(child_pid)"/smaps_rollup
}
peak() { # the serving process's highest RSS so far (VmHWM), KiB
    awk '/^VmHWM:/ {print $2}' /proc/"$(child_pid)"/status
}
accept_rate() { # sends N messages; prints messages per second
    local t0 t1
    t0=$(now)
    "$SMTP_SOURCE" -s "$C" -m "$N" -l 1024 -f from@client.test -t rcpt@bench.test -M client.test 127.0.0.1:"$PORT"
    t1=$(now)
    python3 -c "print(f'{$N / ($t1 - $t0):.0f}')"
}
wait_loaded() { # seconds to wait; prints the time it was seen
    local i
    for ((i = 0; i < $1 * 20; i++)); do
        grep -q "queue loaded envelopes=" "$W"/server.log 2>/dev/null && { now; return 0; }
        sleep 0.05
    done
    return 1
}

disk_flush /tmp
echo "== empty queue"
"$HERE"/start-postern.sh "$PORT" "$W" >/dev/null
# start-postern.sh has just deleted the previous run's files: on an ext4
# without a journal (this machine's), creating files costs more for about
# 30 s after many were deleted (the allocator skips recently freed inodes).
sleep "${SETTLE:-35}"
empty_mem=$(memory)
empty_rate=$(accept_rate)
"$BENCH"/stop.sh "$W" >/dev/null
echo "   accepted $empty_rate msgs/s; serving process RSS/PSS $empty_mem KiB"

echo "== $MESSAGES messages x $RECIPIENTS recipients queued"
t0=$(now)
POSTERN_QUEUE_FILL="$MESSAGES $RECIPIENTS" "$HERE"/start-postern.sh "$PORT" "$W" >/dev/null
t_up=$(now)
# start-postern.sh fills the spool first: the start is the daemon's own.
started=$(started_at "$(cat "$W"/server.pid)")
loading_rate=$(accept_rate)
t_loaded=$(wait_loaded 600) || die "the queue did not load in 600 s (see $W/server.log)"
loaded_mem=$(memory)
loaded_peak=$(peak)
loaded_rate=$(accept_rate)
envelopes=$((MESSAGES * RECIPIENTS))
grep -o "queue loaded envelopes=[0-9]*" "$W"/server.log
python3 - "$t0" "$t_up" "$t_loaded" "$started" "$envelopes" "$empty_mem" "$loaded_mem" "$empty_rate" "$loading_rate" "$loaded_rate" "$loaded_peak" <<'PY'
import sys
t0, up, loaded, started = (float(x) for x in sys.argv[1:5])
n = int(sys.argv[5])
er, ep = (int(x) for x in sys.argv[6].split())
lr, lp = (int(x) for x in sys.argv[7].split())
empty, loading, full = (int(x) for x in sys.argv[8:11])
print(f"   listening {up - started:.1f} s after posternd started; queue loaded {loaded - started:.1f} s after")
print(f"   serving process loaded: RSS {lr / 1024:.0f} MiB, PSS {lp / 1024:.0f} MiB; "
      f"per envelope {(lr - er) * 1024 / n:.0f} B RSS, {(lp - ep) * 1024 / n:.0f} B PSS")
print(f"   peak RSS while loading {int(sys.argv[11]) / 1024:.0f} MiB ({(int(sys.argv[11]) - er) * 1024 / n:.0f} B per envelope)")
print(f"   accepted while loading {loading} msgs/s ({loading / empty:.0%} of empty), "
      f"loaded {full} msgs/s ({full / empty:.0%} of empty)")
PY
"$BENCH"/stop.sh "$W" >/dev/null
disk_flush /tmp
