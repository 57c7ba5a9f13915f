#!/bin/bash
# start-postern.sh PORT WORKDIR
# postern on 127.0.0.1:PORT for the shared benchmark harness
# (../shared/bench beside this checkout, or BENCH=...; see its README
# "Measuring a new MTA"): mail for bench.test goes to the maildir
# WORKDIR/Maildir as the user $BENCH_USER.
# Prints the PID of the root posternd (the parent that starts delivery agents;
# its child serves SMTP as _postern) and writes it to WORKDIR/server.pid.
#
# Differences from start-opensmtpd.sh, and why:
# - By default no relay action and no smtp-sink (as run.sh, filters.sh and
#   the runs recorded with them had it): mail for any other domain is refused
#   at RCPT. POSTERN_RELAY=1 completes the harness's contract: every other
#   domain is relayed (`action "relay" relay host smtp://127.0.0.1:PORT+1`,
#   `match from any for any action "relay"`) to the harness's smtp-sink,
#   started on PORT+1 with its start_sink as the anchors' start scripts do
#   (side-by-side.sh uses this).
# - postern's queue and pid file are set in the config (`queue path`,
#   `pidfile`), so nothing compiled-in has to be bind-mounted: the queue is
#   WORKDIR/spool, wiped here at every start.
# - It still runs in its own mount namespace with the no-DNS resolv.conf
#   (lib/common.sh), like the anchors: posternd makes no DNS query for this
#   config, and if a later version does, it stays on the loopback.
# Environment: POSTERN_BUILD (default: this tree's build-bench folder if it
#   has posternd, else build),
#   POSTERN_RELAY=1 relays other domains to an smtp-sink on PORT+1 (above),
#   POSTERN_VERBOSE=1 adds -v (more log lines; not for measuring),
#   POSTERN_MAX_SESSIONS=N adds `smtp limit max-sessions N` (postern's
#   default is 1000 simultaneous sessions; the 1001st gets 421 at once),
#   POSTERN_AUDIT=FILE appends audit-postern.py's verdict on the previous run
#   in WORKDIR to FILE before wiping it,
#   POSTERN_QUEUE_FILL="MESSAGES RECIPIENTS" starts with that many messages
#   already queued (bench_queue_fill, all waiting for a retry a day away;
#   big-queue.sh uses this), instead of an empty queue,
#   POSTERN_FILTER_CMD=CMD puts the listener behind one filter process:
#   `filter "f" proc-exec "CMD"` before the listen line and `filter "f"` on it
#   (CMD must not hold a double quote; it runs as _postern, so its binary and
#   any file it reads must be reachable by that user; filters.sh uses this),
#   POSTERN_CONF=LINES adds global configuration lines (at-rest.sh: queue
#   compression, queue encryption),
#   POSTERN_FILTER=LINES adds configuration lines of one's own before the
#   listen line instead (e.g. a proc with `user`, or a chain) and
#   POSTERN_FILTER_NAME=NAME (default f) is then the filter put on the listener.
#   Unset, the configuration is the one without filters, as before.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE"/bench-lib.sh
[ $# -eq 2 ] || die "usage: $0 PORT WORKDIR"
PORT=$1 SINK_PORT=$(($1 + 1)) RELAY=${POSTERN_RELAY:-0}
POSTERN_BUILD=${POSTERN_BUILD:-$(default_postern_build)}
POSTERND=$POSTERN_BUILD/posternd
[ -x "$POSTERND" ] || die "$POSTERND missing: build the targets posternd postern-local table_file delivery_maildir delivery_mbox"
[ -x "$POSTERN_BUILD"/postern-local ] || die "$POSTERN_BUILD/postern-local missing"
[ -f "$POSTERN_BUILD"/plugins/delivery-maildir.so ] || die "$POSTERN_BUILD/plugins/delivery-maildir.so missing"
if [ "$RELAY" = 1 ]; then
    [ -f "$POSTERN_BUILD"/plugins/delivery-relay.so ] || die "$POSTERN_BUILD/plugins/delivery-relay.so missing"
    port_free "$SINK_PORT" || die "port $SINK_PORT (the sink's) is already in use"
fi
getent passwd _postern >/dev/null || die "user _postern missing"
getent passwd "$BENCH_USER" >/dev/null || die "user $BENCH_USER missing"
mkdir -p "$2"; WORKDIR=$(cd "$2" && pwd)
port_free "$PORT" || die "port $PORT is already in use"
if [ -f "$WORKDIR"/server.pid ] && kill -0 "$(cat "$WORKDIR"/server.pid)" 2>/dev/null; then
    die "a server from $WORKDIR is still running; run stop.sh $WORKDIR first"
fi

# The previous run's WORKDIR is about to be wiped: audit it first (lost or
# duplicated mail, queue leftovers, unusual log lines) if asked to, and keep
# its log when the audit fails.
if [ -n "${POSTERN_AUDIT:-}" ] && [ -f "$WORKDIR"/server.log ]; then
    audit=$(python3 "$HERE"/audit-postern.py "$WORKDIR" "$(date -Is)") && echo "$audit" >>"$POSTERN_AUDIT"
    case $audit in *'"ok": false'*)
        cp "$WORKDIR"/server.log "$(dirname "$POSTERN_AUDIT")/server-$(date +%H%M%S).log" ;;
    esac
fi
chmod 755 "$WORKDIR"                          # _postern must reach WORKDIR/spool
rm -rf "$WORKDIR"/spool "$WORKDIR"/posternd.pid "$WORKDIR"/sink.out "$WORKDIR"/sink.log
fresh_maildir "$WORKDIR"
no_dns_resolv_conf "$WORKDIR"
if [ -n "${POSTERN_QUEUE_FILL:-}" ]; then
    # shellcheck disable=SC2086  # MESSAGES RECIPIENTS, split on purpose
    "$POSTERN_BUILD"/tests/bench/bench_queue_fill "$WORKDIR"/spool $POSTERN_QUEUE_FILL local "$BENCH_USER" >&2 ||
        die "bench_queue_fill failed"
    chown -R _postern: "$WORKDIR"/spool
fi

FILTER_DECL=${POSTERN_FILTER:-} LISTEN_FILTER=
if [ -n "${POSTERN_FILTER_CMD:-}" ]; then
    case $POSTERN_FILTER_CMD in *'"'*) die "POSTERN_FILTER_CMD must not hold a double quote" ;; esac
    FILTER_DECL="filter \"${POSTERN_FILTER_NAME:-f}\" proc-exec \"$POSTERN_FILTER_CMD\""
fi
[ -n "$FILTER_DECL" ] && LISTEN_FILTER=" filter \"${POSTERN_FILTER_NAME:-f}\""

cat >"$WORKDIR"/smtpd.conf <<CONF
queue path "$WORKDIR/spool"
pidfile "$WORKDIR/posternd.pid"
control socket "$WORKDIR/run/control.sock"
${POSTERN_CONF:+$POSTERN_CONF
}${POSTERN_MAX_SESSIONS:+smtp limit max-sessions $POSTERN_MAX_SESSIONS
}${FILTER_DECL:+$FILTER_DECL
}listen on 127.0.0.1 port $PORT hostname bench.localdomain$LISTEN_FILTER
action "local" maildir "$WORKDIR/Maildir" user $BENCH_USER
match from any for domain "bench.test" action "local"
CONF
if [ "$RELAY" = 1 ]; then
    printf '%s\n' "action \"relay\" relay host smtp://127.0.0.1:$SINK_PORT" \
        'match from any for any action "relay"' >>"$WORKDIR"/smtpd.conf
fi
"$POSTERND" -n -f "$WORKDIR"/smtpd.conf >/dev/null || die "posternd rejects $WORKDIR/smtpd.conf"
if [ "$RELAY" = 1 ]; then start_sink "$SINK_PORT" "$WORKDIR"; fi

ulimit -n "$(ulimit -Hn)"                     # room for many sessions
VFLAG=; [ "${POSTERN_VERBOSE:-0}" = 1 ] && VFLAG=-v
unshare --mount --propagation private -- bash -c '
    mount --bind "$1"/resolv.conf /etc/resolv.conf &&
    exec "$2" -d $3 -f "$1"/smtpd.conf' _ "$WORKDIR" "$POSTERND" "$VFLAG" \
    >"$WORKDIR"/server.log 2>&1 </dev/null &
echo $! >"$WORKDIR"/server.pid                # unshare and bash exec: this is posternd
wait_port "$PORT" 15 || { "$BENCH"/stop.sh "$WORKDIR"; die "posternd did not come up on port $PORT (see $WORKDIR/server.log)"; }
cat "$WORKDIR"/server.pid
