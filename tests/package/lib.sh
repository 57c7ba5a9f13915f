# shellcheck shell=bash
# tests/package/lib.sh — the steps that the package tests share, sourced by
# test_systemd.sh and test_deb.sh: the export of HEAD, the
# package build (or an earlier build's packages), and the bookworm root made
# by debootstrap from the mirror apt uses here.
#
# The sourcing script defines step (prints a step line) and fail (prints its
# reason and exits non-zero) before calling these, and owns the clean-up:
# pkg_debootstrap_pid and pkg_build_pid hold the PIDs of a debootstrap and
# a package build still running, which its trap ends with pkg_release.
#
# POSTERN_DEB_MIRROR        mirror for debootstrap (default: the bookworm
#                           mirror of /etc/apt/sources.list*)
# POSTERN_DEB_BUILD_OPTIONS DEB_BUILD_OPTIONS of the build (default
#                           "nocheck noopt noddebs": the tests check the
#                           packaging, not the optimiser; it halves the build)
# POSTERN_DEB_PREBUILT=DIR  use the packages of an earlier deb.sh output
#                           folder DIR (with its src/) instead of building

pkg_debootstrap_pid=""
pkg_build_pid=""

# The bookworm mirror apt uses on this machine.
pkg_mirror() {
    if [ -n "${POSTERN_DEB_MIRROR:-}" ]; then echo "$POSTERN_DEB_MIRROR"; return; fi
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
                           if ($(i + 1) == "bookworm") { print $i; exit } }')
    [ -n "$m" ] || m=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u { print u; exit }' \
                           /etc/apt/sources.list.d/*.sources 2>/dev/null)
    echo "${m:-http://deb.debian.org/debian}"
}

# pkg_host_install COMMAND PACKAGE...: true once COMMAND exists, installing
# PACKAGE... from Debian's archive when it does not (bounded, quiet).
pkg_host_install() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
        { timeout 120 apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; } || true
    command -v "$cmd" >/dev/null
}

# pkg_export TOP DIR: the committed files of TOP's HEAD in DIR, so that the
# build is the same on every machine.
pkg_export() {
    mkdir -p "$2"
    git -C "$1" archive HEAD | tar -x -C "$2"
}

# pkg_debootstrap_start ROOT LOG [OPTION...]: a bookworm root in ROOT, made
# in the background (debootstrap --variant=minbase OPTION...); false when
# debootstrap is not there and cannot be installed. pkg_debootstrap_wait
# waits for it.
pkg_debootstrap_start() {
    local root=$1 log=$2
    shift 2
    pkg_host_install debootstrap debootstrap || return 1
    timeout 300 debootstrap --variant=minbase "$@" bookworm "$root" "$(pkg_mirror)" >"$log" 2>&1 &
    pkg_debootstrap_pid=$!
}

# pkg_debootstrap_wait: the started debootstrap's exit status.
pkg_debootstrap_wait() {
    local rc=0
    wait "$pkg_debootstrap_pid" || rc=$?
    pkg_debootstrap_pid=""
    return $rc
}

# pkg_packages TREE OUT LOG: the packages in OUT, built by TREE's
# packaging/deb.sh (its log in LOG) or copied from POSTERN_DEB_PREBUILT;
# sets pkg_version to their version. Fails (fail) when the build fails.
pkg_packages() {
    local tree=$1 out=$2 log=$3
    mkdir -p "$out"
    export DEB_BUILD_OPTIONS="${POSTERN_DEB_BUILD_OPTIONS:-nocheck noopt noddebs}"
    if [ -n "${POSTERN_DEB_PREBUILT:-}" ]; then
        step "packages of $POSTERN_DEB_PREBUILT (not built)"
        [ -f "$POSTERN_DEB_PREBUILT/src/debian/changelog" ] ||
            fail "POSTERN_DEB_PREBUILT=$POSTERN_DEB_PREBUILT is no deb.sh output folder (no src/debian/changelog)"
        cp -a "$POSTERN_DEB_PREBUILT"/. "$out"/
    else
        step "build the packages (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS)"
        # In the background, so that the caller's trap can end it (timeout
        # passes the signal on to the whole build) when the test is stopped.
        POSTERN_DEB_OUT=$out timeout 900 "$tree/packaging/deb.sh" >"$log" 2>&1 &
        pkg_build_pid=$!
        local rc=0
        wait "$pkg_build_pid" || rc=$?
        pkg_build_pid=""
        if [ $rc -ne 0 ]; then
            tail -40 "$log"
            fail "the package build failed (exit $rc; log above)"
        fi
    fi
    # shellcheck disable=SC2034  # for the sourcing script
    pkg_version=$(dpkg-parsechangelog -l "$out/src/debian/changelog" -S Version)
}

# pkg_check_built OUT VERSION PACKAGE...: each PACKAGE_VERSION_*.deb is in OUT.
pkg_check_built() {
    local out=$1 version=$2 p
    shift 2
    for p in "$@"; do
        compgen -G "$out/${p}_${version}_*.deb" >/dev/null || fail "$p $version was not built: $(ls "$out")"
    done
}

# pkg_release NAME TMP ROOT: the end of a test's clean-up. Ends the build
# and debootstrap still running, and any process left inside ROOT (the
# test's own: a daemon or package script), each by PID; unmounts ROOT/proc;
# removes TMP (kept with POSTERN_DEB_KEEP=1, or if anything is still mounted
# below it).
pkg_release() {
    local name=$1 tmp=$2 root=$3 pid
    [ -n "$pkg_debootstrap_pid" ] && kill "$pkg_debootstrap_pid" 2>/dev/null
    [ -n "$pkg_build_pid" ] && kill "$pkg_build_pid" 2>/dev/null
    for pid in /proc/[0-9]*; do
        [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ] && kill -KILL "${pid#/proc/}" 2>/dev/null
    done
    wait 2>/dev/null
    if mountpoint -q "$root/proc" 2>/dev/null; then
        umount "$root/proc" 2>/dev/null || umount -l "$root/proc"
    fi
    if grep -q " $tmp/" /proc/mounts; then
        echo "$name: $tmp still has mounts; not removed" >&2
    elif [ "${POSTERN_DEB_KEEP:-0}" = 1 ]; then
        echo "$name: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}

# Run rather than sourced, `bash tests/package/lib.sh build OUT` builds the
# packages of HEAD into OUT once, for several tests to share
# (POSTERN_DEB_PREBUILT=OUT), as .ci/run may do.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    if [ "${1:-}" != build ] || [ -z "${2:-}" ]; then echo "usage: bash $0 build OUT" >&2; exit 2; fi
    step() { printf '== %s\n' "$*"; }
    fail() { echo "lib.sh: FAIL: $*" >&2; exit 1; }
    unset POSTERN_DEB_PREBUILT
    pkg_tmp=$(mktemp -d /tmp/postern-debbuild.XXXXXX)
    trap '[ -z "$pkg_build_pid" ] || kill "$pkg_build_pid" 2>/dev/null; wait; rm -rf "$pkg_tmp"' EXIT
    trap 'exit 130' INT TERM
    pkg_export "$(cd "$(dirname "$0")/../.." && pwd)" "$pkg_tmp/tree"
    pkg_packages "$pkg_tmp/tree" "$2" "$pkg_tmp/build.log"
    echo "lib.sh: packages $pkg_version in $2"
fi
