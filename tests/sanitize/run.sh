#!/usr/bin/env bash
# The sanitizer build: the whole tree (daemon, agents, plugins, filters,
# table programs, unit tests, fuzz targets) built once with clang,
# AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer, then
# the unit and integration suite run against it and every fuzz target run on
# its corpus. CI (.ci/run) runs `all`; the normal build and its run are left
# as they are.
#
#   tests/sanitize/run.sh build [TARGET...]
#                                        configure and build (./build-sanitize)
#   tests/sanitize/run.sh test [CTEST-ARGS...]
#                                        the CTest suite against that build
#   tests/sanitize/run.sh fuzz [SECONDS] replay each corpus, then fuzz each
#                                        target SECONDS (default 20), two at a time
#   tests/sanitize/run.sh all [SECONDS]  the three, as CI runs them
#
# POSTERN_SANITIZE_BUILD names another build folder.
#
# One build serves both: the fuzz targets are linked with -fsanitize=fuzzer,
# the libraries holding the parsers are compiled with fuzzer-no-link too
# (their coverage guides the fuzzer; elsewhere it costs a little speed, not
# a second build), everything else with ASan and UBSan only. -O1 with line
# tables: fast enough to run the suite, readable stacks.
#
# How a report fails the run: every program is linked with defaults.c, whose
# compiled-in options send each sanitizer report to $reports/report.PID, stop
# the process at the first error (UBSan included: -fno-sanitize-recover) and
# check for leaks at exit, in every process, whether the test started it or
# the daemon did (agents get no environment from the daemon). After the
# suite, any report file fails the run and is printed: a leak in an agent
# fails CI even where the test that caused it passed.
#
# Run as root (like packaging/dev.sh test, which installs the suite's
# packages); this script installs clang's packages when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${POSTERN_SANITIZE_BUILD:-$src/build-sanitize}
# Reports from processes that run as other users (the daemon's unprivileged
# child, agents as the recipient): a folder everyone can write, in /tmp so
# that no parent folder (a checkout under /root) keeps them out.
reports=/tmp/postern-sanitize-$(printf '%s' "$build" | cksum | cut -d' ' -f1)

# clang, its sanitizer and libFuzzer runtimes, llvm-symbolizer for the stacks.
install_clang() {
    local missing=() p
    for p in clang libclang-rt-dev llvm; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "sanitize: missing packages (${missing[*]}); run as root to install them" >&2
        exit 1
    fi
    echo "sanitize: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

do_build() {
    install_clang
    mkdir -p "$build"
    local flags="-O1 -gline-tables-only -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
    # The defaults are an object the linker is given by name, so that each
    # executable gets them without a line in the project's CMake files.
    clang -c -O1 -fPIC -DPOSTERN_SANITIZE_DIR="\"$reports\"" -DPOSTERN_SANITIZE_LOG="\"$reports/report\"" -o "$build/sanitize-defaults.o" "$here/defaults.c"
    # Build type "Sanitize": none of CMake's -O2/-g, and assert() left on.
    CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Sanitize -DPOSTERN_FUZZ=ON \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined $build/sanitize-defaults.o" \
        -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
        -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
    local start=$SECONDS
    if [ $# -gt 0 ]; then
        cmake --build "$build" -j"$(nproc)" --target "$@"
    else
        cmake --build "$build" -j"$(nproc)"
    fi
    echo "sanitize: build took $((SECONDS - start)) s"
}

# Any report left by a process of the suite fails it.
check_reports() {
    local files
    files=$(find "$reports" -type f -name 'report*' -exec grep -l -E 'ERROR|runtime error|WARNING' {} + 2>/dev/null | sort)
    [ -z "$files" ] && return 0
    echo "sanitize: $(echo "$files" | wc -l) sanitizer report(s):" >&2
    local f
    for f in $files; do
        echo "==== $f" >&2
        head -n 60 "$f" >&2
    done
    return 1
}

do_test() {
    [ -x "$build/posternd" ] || { echo "sanitize: no build in $build; run '$0 build' first" >&2; exit 1; }
    rm -rf "$reports"
    mkdir -p "$reports"
    chmod 1777 "$reports"
    local start=$SECONDS status=0
    # The suite's own bounds (10 s waits, 300 s per integration test) hold
    # under ASan; CTest's per-test limit stays the normal run's.
    # POSTERN_SANITIZER_BUILD: what a test cannot assert under ASan is left
    # out by name (test_filters.py: the serving process's peak RSS after a
    # 35 MB message, which ASan's quarantine of freed memory inflates).
    POSTERN_SANITIZER_BUILD=1 ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 600 "$@" || status=1
    echo "sanitize: suite took $((SECONDS - start)) s"
    check_reports || status=1
    return $status
}

do_fuzz() {
    [ -d "$build/tests/fuzz" ] || { echo "sanitize: no build in $build; run '$0 build' first" >&2; exit 1; }
    POSTERN_FUZZ_BUILD=$build "$src/tests/fuzz/run.sh" "${1:-20}"
}

case "${1:-}" in
build) shift; do_build "$@" ;;
test) shift; do_test "$@" ;;
fuzz) do_fuzz "${2:-}" ;;
all)
    do_build
    status=0
    do_test || status=1
    do_fuzz "${2:-}" || status=1
    exit $status
    ;;
*)
    echo "usage: $0 build|test [CTEST-ARGS...]|fuzz [SECONDS]|all [SECONDS]" >&2
    exit 2
    ;;
esac
