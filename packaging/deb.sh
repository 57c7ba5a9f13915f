#!/usr/bin/env bash
# Build postern's Debian packages from this tree on Debian 12:
#
#   packaging/deb.sh            install the build dependencies (as root), then
#                               build; the .deb files land in ./build-deb/
#   apt install ./build-deb/postern_*.deb
#
# The tree's files (tracked and untracked, not ignored, as they are now in a
# git checkout; everything but build folders otherwise) are copied to
# build-deb/src with packaging/debian as its debian/ folder, and built there
# with `dpkg-buildpackage -us -uc -b`, so the working tree is left as it was.
#
# POSTERN_DEB_OUT   where the packages go (default ./build-deb)
# DEB_BUILD_OPTIONS passed on; nocheck by default (the tests are not built;
#                   packaging/dev.sh test runs them), parallel=$(nproc) added
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
out=$(mkdir -p "${POSTERN_DEB_OUT:-$top/build-deb}" && cd "${POSTERN_DEB_OUT:-$top/build-deb}" && pwd)
src="$out/src"

copy_tree() {
    rm -rf "$src"
    mkdir -p "$src"
    if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Not the output folder itself, when it is inside the tree.
        git -C "$top" ls-files -z --cached --others --exclude-standard |
            grep -z -v "^${out#"$top"/}/" |
            tar -C "$top" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$src" -xf -
    else
        tar -C "$top" --exclude=./build --exclude='./build-*' --exclude=./obj-\* -cf - . | tar -C "$src" -xf -
    fi
    rm -rf "$src/debian"
    cp -a "$top/packaging/debian" "$src/debian"
}

install_build_deps() {
    if command -v dpkg-checkbuilddeps >/dev/null && (cd "$src" && dpkg-checkbuilddeps) 2>/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "deb.sh: build dependencies are missing; run as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends build-essential dpkg-dev debhelper
    apt-get build-dep -y -q "$src"
}

copy_tree
install_build_deps
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS-nocheck} parallel=$(nproc)"
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
(cd "$src" && dpkg-buildpackage -us -uc -b)
echo "deb.sh: built" "$out"/*.deb
