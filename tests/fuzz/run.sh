#!/bin/sh
# Builds every fuzz target (tests/fuzz/fuzz_*.cpp) as a libFuzzer program with
# clang in build-fuzz, then runs each for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS]     (default 30 per target)
#
# The seeds in tests/fuzz/corpus/TARGET are read but never written: new inputs
# go to build-fuzz/fuzz-work/TARGET/corpus, crashes to .../artifacts. Exits
# non-zero when a target crashes, leaks or times out, after running them all.
set -eu

seconds=${1:-30}
case $seconds in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build-fuzz

targets=
for f in "$here"/fuzz_*.cpp; do
    targets="$targets $(basename "$f" .cpp)"
done

CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DPOSTERN_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# shellcheck disable=SC2086  # the list is split on purpose
cmake --build "$build" --target $targets -j2

status=0
for t in $targets; do
    work=$build/fuzz-work/$t
    mkdir -p "$work/corpus" "$work/artifacts"
    echo "== $t: $seconds s"
    if "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        "$work/corpus" "$here/corpus/$t" >"$work/log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$work/log" || true
    else
        echo "FAILED: $t (log: $work/log, inputs: $work/artifacts/)"
        tail -n 40 "$work/log"
        status=1
    fi
done
exit $status
