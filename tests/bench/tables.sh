#!/bin/bash
# tables.sh: what a table backend costs (issue 13). Benchmark figures, not a
# test.
#
# Two parts, each repeated REPS times (interleaved: lookups, then delivery
# with sqlite, then file, then db tables, then the next repetition):
#
# lookup    bench_table_lookup (table_lookup.cpp, built in POSTERN_BUILD)
#           loads each table plugin through the C ABI and runs LOOKUPS
#           lookups of random keys (10% of them missing) from 1 and 2
#           threads, over ENTRIES-entry tables made in DATA:
#             file         table-file.so over DATA/virtuals (key value lines)
#             db           table-db.so over DATA/virtuals.db (postern-makemap
#                          of the same file, hash)
#             sqlite       table-sqlite.so, query_alias over DATA/mail.sqlite
#                          (indexed email column) through DATA/sqlite.conf
#             proc-sqlite  table-proc.so running Debian's
#                          /usr/libexec/opensmtpd/table-sqlite DATA/sqlite.conf
#                          (imsg protocol), the same database and query
#             proc-passwd  table-proc.so running table-passwd DATA/passwd
#                          (service userinfo, keys the user names)
#           The proc rows run PROC_LOOKUPS lookups (a round trip each).
#           Figures: open time, first lookup (a proc table starts its program
#           there), lookups/s, p50 and p99 latency in microseconds.
#
# delivery  posternd (POSTERN_BUILD) with
#               table vusers <t>   table ubase <t>
#               action "v" maildir "W/Maildir" virtual <vusers> userbase <ubase>
#               match from any for domain "bench.test" action "v"
#           where <t> is, in turn (DELIVERY_TABLES), sqlite:DATA/sqlite.conf
#           (both tables over mail.sqlite: virtuals, users), the same ENTRIES
#           entries as file: tables (DATA/virtuals, DATA/users), and as db:
#           maps (postern-makemap of those two files; a control: lookups
#           slower than file's, but nothing held in the daemon's memory).
#           smtp-source -N -s C -m N
#           -l S -t u@bench.test sends to 1u@bench.test, 2u@..., Nu@ (one
#           connection per message, each message one recipient, each
#           recipient once); key iu@bench.test maps to user vuP with P a
#           shuffled permutation, and every user maps to benchuser's uid and
#           gid with home DATA/home, so all mail lands in W/Maildir/new (the
#           harness's delivered.py counts it there) while each message is a
#           different user, hence its own delivery agent run (postern batches
#           deliveries of one user only). Figures as the harness's load.sh
#           phase 1: accepted msg/s (until smtp-source exits), delivered msg/s
#           (until W/Maildir/new holds N), server CPU ms/msg, peak PSS.
#           audit-postern.py then checks nothing was lost or duplicated.
#
# Environment (defaults): REPS=3 ENTRIES=100000 LOOKUPS=200000
#   PROC_LOOKUPS=50000 THREADS=1,2 N=5000 C=20 S=1024 TIMEOUT=300
#   PARTS="lookup delivery" DELIVERY_TABLES="sqlite file db" PORT=31225
#   DATA=/tmp/bench-tables-data
#   POSTERN_BUILD=<this tree>/build-bench if it has posternd, else build
#   NAME=tables (results/NAME-raw.jsonl, NAME-run.log, NAME-loadavg.log,
#   NAME-audit.jsonl, NAME-summary.md; refuses to append to an existing raw
#   file unless APPEND=1).
# Smoke run: REPS=1 N=300 LOOKUPS=20000 PROC_LOOKUPS=2000 NAME=tables-smoke ./tables.sh
# Needs root, the harness's setup.sh done (smtp-source in /opt/postfix,
# benchuser; the harness is ../shared/bench beside this checkout or BENCH=...,
# see bench-lib.sh), the user _postern, Debian's opensmtpd-extras
# (table-sqlite, table-passwd), python3 with sqlite3, and the targets posternd
# postern-local postern-makemap table_file table_db table_sqlite table_proc
# delivery_maildir bench_table_lookup bench_disk_flush.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
REPS=${REPS:-3} ENTRIES=${ENTRIES:-100000} LOOKUPS=${LOOKUPS:-200000} PROC_LOOKUPS=${PROC_LOOKUPS:-50000}
THREADS=${THREADS:-1,2} N=${N:-5000} C=${C:-20} S=${S:-1024} TIMEOUT=${TIMEOUT:-300}
PARTS=${PARTS:-lookup delivery} DELIVERY_TABLES=${DELIVERY_TABLES:-sqlite file db} PORT=${PORT:-31225} DATA=${DATA:-/tmp/bench-tables-data}
NAME=${NAME:-tables}
LIBEXEC=/usr/libexec/opensmtpd
RES=$HERE/results
OUT=$RES/$NAME-raw.jsonl LOG=$RES/$NAME-run.log LOADLOG=$RES/$NAME-loadavg.log
AUDIT=$RES/$NAME-audit.jsonl SUMMARY=$RES/$NAME-summary.md
LOOKUP=$POSTERN_BUILD/tests/bench/bench_table_lookup
PLUGINS=$POSTERN_BUILD/plugins

[ "$(id -u)" = 0 ] || die "run as root"
mkdir -p "$RES"
[ -s "$OUT" ] && [ "${APPEND:-0}" != 1 ] && die "$OUT exists: move it away or set APPEND=1"
[ -x "$PF_SBIN"/smtp-source ] || die "$PF_SBIN/smtp-source missing (run $BENCH/setup.sh)"
for f in posternd postern-local postern-makemap plugins/table-file.so plugins/table-db.so plugins/table-sqlite.so \
    plugins/table-proc.so plugins/delivery-maildir.so tests/bench/bench_table_lookup; do
    [ -e "$POSTERN_BUILD/$f" ] || die "$POSTERN_BUILD/$f missing: build posternd postern-local postern-makemap" \
        "table_file table_db table_sqlite table_proc delivery_maildir bench_table_lookup"
done
for p in table-sqlite table-passwd; do [ -x "$LIBEXEC/$p" ] || die "$LIBEXEC/$p missing (opensmtpd-extras)"; done
for u in _postern "$BENCH_USER"; do getent passwd "$u" >/dev/null || die "user $u missing"; done
port_free "$PORT" || die "port $PORT is busy"
need_disk_flush
ulimit -n "$(ulimit -Hn)"

# make_data: the ENTRIES-entry tables in DATA, every format from one list so
# that each backend holds the same entries. Keys "Iu@bench.test" (I from 1)
# map to users "vuP" (P a permutation of 1..ENTRIES, seed 13); lines and rows
# are written in shuffled order, so that consecutive keys are not neighbours
# in any file. Readable by _postern (the daemon reads sqlite live, and a
# proc table program runs as _postern).
make_data() {
    rm -rf "$DATA"
    mkdir -p "$DATA"/home
    chown "$BENCH_USER": "$DATA"/home
    python3 - "$DATA" "$ENTRIES" "$(id -u "$BENCH_USER")" "$(id -g "$BENCH_USER")" "$DATA/home" <<'PY' || return 1
import os, random, sqlite3, sys
d, n, uid, gid, home = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rng = random.Random(13)
users = list(range(1, n + 1)); rng.shuffle(users)
order = list(range(1, n + 1)); rng.shuffle(order)
pairs = [(f"{i}u@bench.test", f"vu{users[i - 1]}") for i in order]

def write(name, lines):
    with open(os.path.join(d, name), "w") as f:
        f.writelines(lines)

write("alias-keys", (k + "\n" for k, _ in pairs))
write("user-keys", (u + "\n" for _, u in pairs))
write("virtuals", (f"{k} {u}\n" for k, u in pairs))                 # file: virtual <t>
write("users", (f"{u} {uid}:{gid}:{home}\n" for _, u in pairs))     # file: userbase <t>
write("passwd", (f"{u}:*:{uid}:{gid}::{home}:/sbin/nologin\n" for _, u in pairs))
db = os.path.join(d, "mail.sqlite")
con = sqlite3.connect(db)
with con:
    con.execute("CREATE TABLE virtuals (email TEXT NOT NULL, destination TEXT NOT NULL)")
    con.execute("CREATE TABLE users (name TEXT NOT NULL, uid INTEGER, gid INTEGER, home TEXT)")
    con.executemany("INSERT INTO virtuals VALUES (?, ?)", pairs)
    con.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", ((u, int(uid), int(gid), home) for _, u in pairs))
    con.execute("CREATE UNIQUE INDEX virtuals_email ON virtuals (email)")
    con.execute("CREATE UNIQUE INDEX users_name ON users (name)")
con.close()
write("sqlite.conf", [f"dbpath {db}\n",
                      "query_alias SELECT destination FROM virtuals WHERE email=?\n",
                      "query_userinfo SELECT uid, gid, home FROM users WHERE name=?\n"])
PY
    "$POSTERN_BUILD"/postern-makemap -o "$DATA"/virtuals.db "$DATA"/virtuals || return 1
    "$POSTERN_BUILD"/postern-makemap -o "$DATA"/users.db "$DATA"/users || return 1
    chmod 755 "$DATA"
    find "$DATA" -maxdepth 1 -type f -exec chmod 644 {} +
}

# emit KIND REP LOAD0 JSON: JSON plus kind, rep, date and load averages, to OUT.
emit() {
    python3 -c 'import json, sys
r = json.loads(sys.argv[4]); r.update(kind=sys.argv[1], rep=int(sys.argv[2]), loadavg_before=sys.argv[3],
    loadavg_after=" ".join(open("/proc/loadavg").read().split()[0:3]), date=sys.argv[5])
print(json.dumps(r))' "$1" "$2" "$3" "$4" "$(date -Is)" >>"$OUT"
}

# lookup_one REP LABEL COUNT SERVICE KEYS PLUGIN CONFIG: one backend's rows.
lookup_one() {
    local rep=$1 label=$2 count=$3 service=$4 keys=$5 plugin=$6 config=$7 load0 line
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    "$LOOKUP" --plugin "$PLUGINS/table-$plugin.so" --config "$config" --keys "$DATA/$keys" --service "$service" \
        --lookups "$count" --threads "$THREADS" --label "$label" --seed "$rep" 2>"$DATA/$label.err" |
        while read -r line; do
            case $line in
            "RESULT "*) emit lookup "$rep" "$load0" "${line#RESULT }" ;;
            *) echo "   $line" ;;
            esac
        done
    [ "${PIPESTATUS[0]}" = 0 ] || echo "   $label: bench_table_lookup failed: $(tail -c 300 "$DATA/$label.err")"
}

lookups() {
    local rep=$1
    echo "== rep $rep: lookups, $ENTRIES entries, threads $THREADS ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    lookup_one "$rep" file "$LOOKUPS" alias alias-keys file "$DATA/virtuals"
    lookup_one "$rep" db "$LOOKUPS" alias alias-keys db "$DATA/virtuals.db"
    lookup_one "$rep" sqlite "$LOOKUPS" alias alias-keys sqlite "$DATA/sqlite.conf"
    lookup_one "$rep" proc-sqlite "$PROC_LOOKUPS" alias alias-keys proc "$LIBEXEC/table-sqlite $DATA/sqlite.conf"
    lookup_one "$rep" proc-passwd "$PROC_LOOKUPS" userinfo user-keys proc "$LIBEXEC/table-passwd $DATA/passwd"
}

# start_server TABLE W: posternd on 127.0.0.1:PORT with the virtual action
# over TABLE (sqlite or file), as start-postern.sh starts it (own mount
# namespace with the harness's no-DNS resolv.conf, queue in W/spool, fresh
# W/Maildir owned by benchuser, log in W/server.log, PID in W/server.pid).
start_server() {
    local table=$1 W=$2 vusers ubase
    case $table in
    sqlite) vusers="sqlite:$DATA/sqlite.conf" ubase="sqlite:$DATA/sqlite.conf" ;;
    file) vusers="file:$DATA/virtuals" ubase="file:$DATA/users" ;;
    db) vusers="db:$DATA/virtuals.db" ubase="db:$DATA/users.db" ;;
    *) die "unknown table $table" ;;
    esac
    mkdir -p "$W"
    chmod 755 "$W"
    rm -rf "$W"/spool "$W"/posternd.pid "$W"/server.log
    fresh_maildir "$W"
    no_dns_resolv_conf "$W"
    cat >"$W"/smtpd.conf <<CONF
queue path "$W/spool"
pidfile "$W/posternd.pid"
control socket "$W/run/control.sock"
table vusers $vusers
table ubase $ubase
listen on 127.0.0.1 port $PORT hostname bench.localdomain
action "v" maildir "$W/Maildir" virtual <vusers> userbase <ubase>
match from any for domain "bench.test" action "v"
CONF
    "$POSTERN_BUILD"/posternd -n -f "$W"/smtpd.conf >/dev/null || { echo "posternd rejects $W/smtpd.conf"; return 1; }
    unshare --mount --propagation private -- bash -c '
        mount --bind "$1"/resolv.conf /etc/resolv.conf &&
        exec "$2" -d -f "$1"/smtpd.conf' _ "$W" "$POSTERN_BUILD"/posternd \
        >"$W"/server.log 2>&1 </dev/null &
    echo $! >"$W"/server.pid
    wait_port "$PORT" 30 || { echo "posternd did not come up on port $PORT (see $W/server.log)"; return 1; }
}

# delivery_one REP TABLE: one measured delivery run, to OUT and AUDIT.
delivery_one() {
    local rep=$1 table=$2 W=/tmp/bench-tables-$2 pid load0 t0 t1 t2 cpu0 cpu1 src_rc dl_rc delivered sampler watcher
    "$BENCH"/stop.sh "$W"
    echo "== rep $rep: delivery, virtual <$table> userbase <$table>, N=$N C=$C S=$S" \
        "($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    start_server "$table" "$W" || { "$BENCH"/stop.sh "$W"; return; }
    sleep 1
    pid=$(cat "$W"/server.pid)
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu0=$(python3 "$BENCH"/procstat.py cpu "$pid")
    python3 "$BENCH"/procstat.py sample "$pid" "$W"/peak.json "$TIMEOUT" &
    sampler=$!
    python3 "$BENCH"/delivered.py "$W" maildir "$N" "$TIMEOUT" >"$W"/done &
    watcher=$!
    sleep 0.3
    t0=$EPOCHREALTIME
    timeout "$TIMEOUT" "$PF_SBIN"/smtp-source -N -s "$C" -m "$N" -l "$S" -f from@client.test -t u@bench.test \
        -M client.test 127.0.0.1:"$PORT" 2>"$W"/source.err && src_rc=0 || src_rc=$?
    t1=$EPOCHREALTIME
    wait "$watcher" && dl_rc=0 || dl_rc=$?
    read -r delivered t2 <"$W"/done
    cpu1=$(python3 "$BENCH"/procstat.py cpu "$pid")
    kill "$sampler"; wait "$sampler"
    sleep 1   # let the last envelopes' removal reach the spool before the audit
    "$BENCH"/stop.sh "$W"
    [ "$src_rc" = 0 ] || echo "   smtp-source exit $src_rc: $(head -c 300 "$W"/source.err)"
    [ "$dl_rc" = 0 ] || echo "   only $delivered of $N delivered within ${TIMEOUT}s"
    local r
    r=$(python3 - "$W" "$table" "$N" "$C" "$S" "$t0" "$t1" "$t2" "$cpu0" "$cpu1" "$delivered" "$src_rc" "$dl_rc" <<'PY'
import json, sys
W, table, n, c, s, t0, t1, t2, cpu0, cpu1, delivered, src_rc, dl_rc = sys.argv[1:]
n, t0, t1, t2 = int(n), float(t0), float(t1), float(t2)
peak = json.load(open(f"{W}/peak.json"))
cpu = float(cpu1) - float(cpu0)
print(json.dumps({"table": table, "mode": "maildir", "n": n, "c": int(c), "size": int(s), "latency": {},
                  "accept_s": round(t1 - t0, 3), "deliver_s": round(t2 - t0, 3),
                  "accepted_per_s": round(n / (t1 - t0), 1), "delivered_per_s": round(n / (t2 - t0), 1),
                  "delivered": int(delivered), "server_cpu_s": round(cpu, 2),
                  "server_cpu_ms_per_msg": round(1000 * cpu / n, 3),
                  "peak_pss_mib": round(peak["pss_kib"] / 1024, 1), "peak_nproc": peak["nproc"],
                  "smtp_source_rc": int(src_rc), "delivery_rc": int(dl_rc)}))
PY
)
    echo "RESULT $r" >"$W".last   # what audit-postern.py reads: messages sent
    local verdict
    verdict=$(python3 "$HERE"/audit-postern.py "$W" "$NAME rep $rep $table")
    echo "$verdict" >>"$AUDIT"
    r=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["audit_ok"] = json.loads(sys.argv[2])["ok"]
print(json.dumps(r))' "$r" "$verdict")
    emit delivery "$rep" "$load0" "$r"
    tail -1 "$OUT" | python3 -c 'import json, sys; r = json.load(sys.stdin)
print("   accepted {accepted_per_s} msg/s ({accept_s} s), delivered {delivered_per_s} msg/s ({deliver_s} s,"
      " {delivered}/{n}); server CPU {server_cpu_ms_per_msg} ms/msg; peak PSS {peak_pss_mib} MiB;"
      " audit ok: {audit_ok}".format(**r))'
    tail -1 "$OUT" | grep -q '"audit_ok": true' || cp "$W"/server.log "$RES/$NAME-server-$table-rep$rep.log"
}

summarize() {
    python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def span(xs, fmt):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})" if len(xs) > 1 else fmt.format(med(xs))

look = [r for r in rows if r["kind"] == "lookup"]
if look:
    print("| table | entries | lookups | threads | reps | open ms | first lookup ms | lookups/s | p50 µs | p99 µs | errors |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    seen = []
    for r in look:
        k = (r["label"], r["threads"])
        if k not in seen:
            seen.append(k)
    for label, threads in seen:
        g = [r for r in look if r["label"] == label and r["threads"] == threads]
        print(f"| {label} | {g[0]['entries']} | {g[0]['lookups']} | {threads} | {len(g)} "
              f"| {med([r['open_ms'] for r in g]):.1f} | {med([r['first_ms'] for r in g]):.2f} "
              f"| {span([r['lookups_per_s'] for r in g], '{:.0f}')} | {med([r['p50_us'] for r in g]):.2f} "
              f"| {med([r['p99_us'] for r in g]):.2f} | {sum(r['errors'] for r in g)} |")
    print()
dl = [r for r in rows if r["kind"] == "delivery"]
if dl:
    print("| virtual/userbase table | N | C | reps | accepted msg/s | delivered msg/s | server CPU ms/msg | peak PSS MiB | audits ok |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for table in dict.fromkeys(r["table"] for r in dl):
        g = [r for r in dl if r["table"] == table]
        print(f"| {table} | {g[0]['n']} | {g[0]['c']} | {len(g)} | {span([r['accepted_per_s'] for r in g], '{:.1f}')} "
              f"| {span([r['delivered_per_s'] for r in g], '{:.1f}')} | {med([r['server_cpu_ms_per_msg'] for r in g]):.2f} "
              f"| {med([r['peak_pss_mib'] for r in g]):.1f} | {sum(1 for r in g if r.get('audit_ok'))} of {len(g)} |")
PY
}

[ "${APPEND:-0}" = 1 ] || : >"$AUDIT"
{
    echo "# $(date -Is) $(uname -srm), nproc $(nproc)"
    echo "# posternd: $POSTERN_BUILD/posternd (built $(date -r "$POSTERN_BUILD"/posternd -Is)," \
        "$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$POSTERN_BUILD"/CMakeCache.txt 2>/dev/null))," \
        "git $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null)$(git -C "$HERE" diff --quiet HEAD 2>/dev/null || echo ' + working tree')"
    echo "# opensmtpd-extras $(dpkg-query -W -f='${Version}' opensmtpd-extras 2>/dev/null)," \
        "sqlite $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
    echo "# REPS=$REPS ENTRIES=$ENTRIES LOOKUPS=$LOOKUPS PROC_LOOKUPS=$PROC_LOOKUPS THREADS=$THREADS N=$N C=$C S=$S" \
        "PARTS=\"$PARTS\" DELIVERY_TABLES=\"$DELIVERY_TABLES\""
    echo "# $(disk_flush /tmp)"
    echo "# uptime before: $(uptime)"
    for _ in $(seq 240); do echo "$(date +%T) $(cat /proc/loadavg)"; sleep 15; done >>"$LOADLOG" 2>&1 &
    sampler=$!
    trap 'kill $sampler 2>/dev/null' EXIT
    t=$EPOCHSECONDS
    make_data || die "making the tables in $DATA failed"
    echo "# data: $ENTRIES entries in $DATA, made in $((EPOCHSECONDS - t)) s"
    for rep in $(seq "$REPS"); do
        case " $PARTS " in *" lookup "*) lookups "$rep" ;; esac
        case " $PARTS " in *" delivery "*) for t in $DELIVERY_TABLES; do delivery_one "$rep" "$t"; done ;; esac
    done
    echo "# after: $(disk_flush /tmp)"
    echo "# uptime after: $(uptime)"
    echo "checks: $(grep -c '"errors": 0' "$OUT") lookup rows without error," \
        "$(grep -c '"ok": true' "$AUDIT") of $(wc -l <"$AUDIT") delivery audits ok"
} 2>&1 | tee -a "$LOG"

summarize | tee "$SUMMARY"
