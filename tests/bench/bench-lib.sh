# shellcheck shell=bash
# bench-lib.sh: sourced by every script in tests/bench (not run by itself).
#
# It finds the shared harness (start, stop and load scripts, lib/common.sh)
# relative to this checkout: BENCH defaults to TOP/../shared/bench, TOP being
# the repository's root, so that a checkout next to a `shared` folder works
# wherever it is; set BENCH=/path/to/bench to use another copy. It then
# sources the harness's lib/common.sh (PF_SBIN, BENCH_DIR, die, port_free,
# wait_port, start_sink, fresh_maildir, no_dns_resolv_conf...), exports BENCH
# for the start scripts the harness runs, and defines:
#   default_postern_build   TOP/build-bench if it has posternd, else TOP/build
#   disk_flush DIR          the bench_disk_flush line for DIR (every script
#                           prints it beside its results)
#   need_disk_flush         die unless bench_disk_flush is built
#   backlog_shim DIR        path of the listen() backlog shim for OpenSMTPD
BENCH_LIB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH_LIB_HERE"/../.. && pwd)
BENCH=${BENCH:-$TOP/../shared/bench}
if [ ! -f "$BENCH"/lib/common.sh ]; then
    echo "the shared benchmark harness is not at $BENCH (expected next to this checkout, in" \
        "../shared/bench; set BENCH=/path/to/bench)" >&2
    exit 1
fi
BENCH=$(cd "$BENCH" && pwd)
export BENCH
# shellcheck source=/dev/null
source "$BENCH"/lib/common.sh

default_postern_build() {
    if [ -x "$TOP"/build-bench/posternd ]; then echo "$TOP"/build-bench; else echo "$TOP"/build; fi
}

# The tool: DISK_FLUSH if set, else the first built one of POSTERN_BUILD,
# build-bench and build.
disk_flush_tool() {
    local d
    [ -n "${DISK_FLUSH:-}" ] && { echo "$DISK_FLUSH"; return; }
    for d in "${POSTERN_BUILD:-}" "$TOP"/build-bench "$TOP"/build; do
        [ -n "$d" ] && [ -x "$d"/tests/bench/bench_disk_flush ] && { echo "$d"/tests/bench/bench_disk_flush; return; }
    done
    echo "${POSTERN_BUILD:-$TOP/build}/tests/bench/bench_disk_flush"
}

need_disk_flush() {
    [ -x "$(disk_flush_tool)" ] || die "$(disk_flush_tool) missing: build the target bench_disk_flush"
}

# disk_flush DIR: "disk flush DIR (FS): N file-write+fsync/s (one thread), M
# append+fdatasync/s (one file); S s each", measured now in DIR (the file
# system of the spools), DISK_FLUSH_S seconds per test (default 2).
disk_flush() {
    "$(disk_flush_tool)" "$1" "${DISK_FLUSH_S:-2}" 2>&1 || echo "disk flush: bench_disk_flush failed in $1"
}

# backlog_shim DIR: the harness's listen-backlog shim (BENCH_DIR/.build, made
# by its setup.sh) or, when that is missing, the same source
# (BENCH/lib/listen-backlog.c) compiled into DIR: the harness stays read-only.
backlog_shim() {
    local built=$BENCH_DIR/.build/listen-backlog.so
    if [ -f "$built" ]; then echo "$built"; return; fi
    mkdir -p "$1" || return 1
    cc -shared -fPIC -O2 -o "$1"/listen-backlog.so "$BENCH"/lib/listen-backlog.c -ldl || return 1
    echo "$1"/listen-backlog.so
}
