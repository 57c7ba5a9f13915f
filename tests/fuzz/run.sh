#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/fuzz_*.cpp) as a libFuzzer program built
# with clang, ASan and UBSan: first each seed corpus is replayed (every file
# once), then each target fuzzes for a bounded time, two at a time (one per
# core of a 2-core machine).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]   (default 30 s a target, every target)
#
# The targets are built in ./build-fuzz with the sanitizer build's flags
# (tests/sanitize/run.sh build TARGET...), unless POSTERN_FUZZ_BUILD names a
# sanitizer build that has them already (CI: tests/sanitize/run.sh all).
#
# The seeds in tests/fuzz/corpus/TARGET are read but never written: new
# inputs go to BUILD/fuzz-work/TARGET/corpus, crashes to .../artifacts. A
# crash, a leak, undefined behaviour, a timeout (10 s an input) or an input
# using 2 GB fails the run, after every target has run; the crashing input is
# named in the log. Add it to tests/fuzz/corpus/TARGET with the fix.
set -euo pipefail

seconds=${1:-30}
case $seconds in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
shift || true

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$here"/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

if [ -n "${POSTERN_FUZZ_BUILD:-}" ]; then
    build=$POSTERN_FUZZ_BUILD
else
    build=$src/build-fuzz
    POSTERN_SANITIZE_BUILD=$build "$src/tests/sanitize/run.sh" build "${targets[@]}"
fi

# The build's compiled-in defaults send reports to files (for the suite):
# here they go to the log, where libFuzzer's own report is.
export ASAN_OPTIONS=log_path=stderr:detect_leaks=1
export UBSAN_OPTIONS=log_path=stderr:print_stacktrace=1:halt_on_error=1

# One target: replay, then fuzz. Its output goes to $work/log.
run_one() {
    local t=$1 bin=$build/tests/fuzz/$1 work=$build/fuzz-work/$1
    rm -rf "$work/artifacts"
    mkdir -p "$work/corpus" "$work/artifacts"
    local seeds=("$here/corpus/$t"/*)
    if [ ! -e "${seeds[0]}" ]; then
        echo "FAILED: $t has no seed corpus (tests/fuzz/corpus/$t)" >"$work/log"
        return 1
    fi
    {
        echo "== $t: replaying ${#seeds[@]} seeds"
        "$bin" -timeout=10 -rss_limit_mb=2048 "${seeds[@]}" || return 1
        echo "== $t: fuzzing $seconds s"
        "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$work/artifacts/" "$work/corpus" "$here/corpus/$t" || return 1
    } >"$work/log" 2>&1
}

start=$SECONDS
status=0
declare -A pids=()
report() {
    local t=$1 rc=$2 work=$build/fuzz-work/$1
    if [ "$rc" -eq 0 ]; then
        echo "ok: $t ($(grep -E '^stat::number_of_executed_units' "$work/log" | awk '{print $2}') runs," \
            "$(grep -E '^stat::peak_rss_mb' "$work/log" | awk '{print $2}') MB)"
    else
        echo "FAILED: $t (log: $work/log, inputs: $work/artifacts/)"
        tail -n 60 "$work/log"
        status=1
    fi
}
# Two at a time; as one ends, the next starts.
for t in "${targets[@]}"; do
    if [ ${#pids[@]} -ge 2 ]; then
        wait -n -p done_pid && rc=0 || rc=$?
        for k in "${!pids[@]}"; do
            if [ "${pids[$k]}" = "$done_pid" ]; then
                report "$k" "$rc"
                unset "pids[$k]"
            fi
        done
    fi
    run_one "$t" &
    pids[$t]=$!
done
for k in "${!pids[@]}"; do
    wait "${pids[$k]}" && rc=0 || rc=$?
    report "$k" "$rc"
done
echo "fuzz: ${#targets[@]} targets, $seconds s each, took $((SECONDS - start)) s"
exit $status
