#!/usr/bin/env bash
# Build postern from this working tree on Debian 12, installing what is missing.
#
#   packaging/dev.sh run    install, build, run posternd in the foreground on
#                           the embedded default configuration (127.0.0.1:2525)
#   packaging/dev.sh test   install, build, run the whole test suite (CTest)
#   packaging/dev.sh build  install and build only
#   packaging/dev.sh format-check
#                           fail if a C/C++ file differs from .clang-format's layout
#   packaging/dev.sh tidy FILE...
#                           clang-tidy (.clang-tidy's checks) on the files named,
#                           after a build (about 15 s a file: not run in CI)
#
# POSTERN_CMAKE_ARGS adds options to the configure step (CI: -DPOSTERN_WERROR=ON).
#
# Runs as root (apt-get, the _postern user); the build goes to ./build.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$(pwd)
build="${POSTERN_BUILD:-$top/build}"

packages=(build-essential cmake pkg-config libuv1-dev libssl-dev libsqlite3-dev
          libyaml-cpp-dev libzstd-dev libboost-dev nlohmann-json3-dev catch2 libcrypt-dev libc-ares-dev libcurl4-openssl-dev python3 swaks libnet-ssleay-perl openssl
          dnsmasq-base opensmtpd
          opensmtpd-filter-dkimsign opensmtpd-filter-rspamd opensmtpd-filter-senderscore rspamd
          python3-dkim python3-nacl
          libdb5.3-dev db5.3-util sqlite3 opensmtpd-extras dovecot-lmtpd
          libmicrohttpd-dev python3-prometheus-client curl libfaketime)

install_packages() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing packages (${missing[*]}); run as root to install them" >&2
        exit 1
    fi
    echo "dev.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The unprivileged user posternd drops to when started as root.
create_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    getent passwd _postern >/dev/null && return 0
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin _postern
}

build() {
    # shellcheck disable=SC2086 # POSTERN_CMAKE_ARGS is a list of words
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${POSTERN_CMAKE_ARGS:-} >/dev/null
    cmake --build "$build" -j"$(nproc)"
}

case "${1:-}" in
run)
    install_packages; create_user; build
    exec "$build/posternd" -d
    ;;
test)
    install_packages; create_user; build
    ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 600
    ;;
build)
    install_packages; create_user; build
    ;;
tidy)
    shift
    [ $# -gt 0 ] || { echo "usage: packaging/dev.sh tidy FILE..." >&2; exit 2; }
    [ -f "$build/compile_commands.json" ] || { install_packages; create_user; build; }
    packages=(clang-tidy); install_packages
    clang-tidy -p "$build" --quiet "$@"
    ;;
format-check)
    packages=(clang-format git); install_packages
    git -C "$top" ls-files -z '*.c' '*.h' '*.cpp' '*.hpp' | (cd "$top" && xargs -0 clang-format --dry-run --Werror)
    ;;
*)
    echo "usage: packaging/dev.sh run|test|build|format-check|tidy FILE..." >&2
    exit 2
    ;;
esac
