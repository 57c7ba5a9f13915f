#!/bin/bash
# start-opensmtpd-filter.sh PORT WORKDIR
# OpenSMTPD 6.8 as the shared harness's start-opensmtpd.sh starts it
# (../shared/bench beside this checkout, or BENCH=...: same configuration,
# own mount namespace with WORKDIR/var-spool as /var/spool, a private /run and
# the no-DNS resolv.conf, smtp-sink on PORT+1 for other domains,
# OSMTPD_BACKLOG through its listen-backlog shim, or the shim at
# OSMTPD_BACKLOG_SHIM if set), with one filter process on the listener when
# OSMTPD_FILTER_CMD is set:
#     filter "f" proc-exec "OSMTPD_FILTER_CMD"
#     listen on 127.0.0.1 port PORT hostname bench.localdomain filter "f"
# Unset, the configuration is exactly start-opensmtpd.sh's. The harness script
# is read-only and writes its configuration itself, hence this copy.
# OpenSMTPD runs filter processes as its own user (Debian: opensmtpd, group
# opensmtpd; _smtpd upstream), forked from the smtpd parent, so they count in
# the server's process tree; the command (no double quote in it) and any file
# it reads must be reachable by that user. A relative command is looked up in
# /usr/libexec/opensmtpd. smtpd opens its listener but serves no session
# until every filter has sent register|ready, and any filter exiting takes
# the whole daemon down (logged as "lost processor" in WORKDIR/server.log).
# Prints the smtpd parent's PID and writes it to WORKDIR/server.pid; stop it
# with the harness's stop.sh WORKDIR.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)"/bench-lib.sh
[ $# -eq 2 ] || die "usage: $0 PORT WORKDIR"
PORT=$1; SINK_PORT=$((PORT + 1))
mkdir -p "$2"; WORKDIR=$(cd "$2" && pwd)
port_free "$PORT" || die "port $PORT is already in use"
if [ -f "$WORKDIR"/server.pid ] && kill -0 "$(cat "$WORKDIR"/server.pid)" 2>/dev/null; then
    die "a server from $WORKDIR is still running; run stop.sh $WORKDIR first"
fi
FILTER_DECL='' LISTEN_FILTER=''
if [ -n "${OSMTPD_FILTER_CMD:-}" ]; then
    case $OSMTPD_FILTER_CMD in *'"'*) die "OSMTPD_FILTER_CMD must not hold a double quote" ;; esac
    FILTER_DECL="filter \"f\" proc-exec \"$OSMTPD_FILTER_CMD\""
    LISTEN_FILTER=' filter "f"'
fi

rm -rf "$WORKDIR"/var-spool && mkdir -m 755 "$WORKDIR"/var-spool
fresh_maildir "$WORKDIR"
no_dns_resolv_conf "$WORKDIR"
start_sink "$SINK_PORT" "$WORKDIR"

echo "@ $BENCH_USER" >"$WORKDIR"/vusers        # catch-all virtual mapping
cat >"$WORKDIR"/smtpd.conf <<CONF
table vusers file:$WORKDIR/vusers
${FILTER_DECL:+$FILTER_DECL
}listen on 127.0.0.1 port $PORT hostname bench.localdomain$LISTEN_FILTER
action "local" maildir "$WORKDIR/Maildir" virtual <vusers>
action "relay" relay host smtp://127.0.0.1:$SINK_PORT
match from any for domain "bench.test" action "local"
match from local for any action "relay"
CONF
smtpd -n -f "$WORKDIR"/smtpd.conf >/dev/null 2>&1 || {
    "$BENCH"/stop.sh "$WORKDIR"               # the sink
    die "smtpd rejects $WORKDIR/smtpd.conf: $(smtpd -n -f "$WORKDIR"/smtpd.conf 2>&1 | head -3)"
}

ulimit -n "$(ulimit -Hn)"                     # room for many sessions
if [ -n "${OSMTPD_BACKLOG:-}" ]; then
    export LD_PRELOAD=${OSMTPD_BACKLOG_SHIM:-$BENCH_DIR/.build/listen-backlog.so} LISTEN_BACKLOG_MIN=$OSMTPD_BACKLOG
    [ -f "$LD_PRELOAD" ] || die "$LD_PRELOAD missing: run setup.sh"
fi
unshare --mount --propagation private -- bash -c '
    mount --bind "$1"/var-spool /var/spool && mount -t tmpfs tmpfs /run &&
    mount --bind "$1"/resolv.conf /etc/resolv.conf &&
    exec smtpd -d -f "$1"/smtpd.conf' _ "$WORKDIR" \
    >"$WORKDIR"/server.log 2>&1 </dev/null &
echo $! >"$WORKDIR"/server.pid                # unshare execs: this is smtpd
wait_port "$PORT" 15 || die "smtpd did not come up on port $PORT (see $WORKDIR/server.log)"
cat "$WORKDIR"/server.pid
