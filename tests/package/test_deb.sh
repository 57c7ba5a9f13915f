#!/usr/bin/env bash
# The Debian packages, end to end, in a fresh Debian 12 root:
#
#   1. build them with packaging/deb.sh from a `git archive` export of HEAD
#      (committed files only, so the build is the same on every machine);
#   2. lintian: no errors (warnings are printed);
#   3. debootstrap a minbase bookworm root, `apt-get install ./postern_*.deb`
#      in it, as an administrator would, then the filters and the SDK;
#   4. start posternd the way posternd.service does (its ExecStartPre and
#      ExecStart lines, read from the installed unit), in the root and in a
#      network namespace of its own, so that the default configuration's
#      port 25 on the loopback address is the root's own;
#   5. mail over SMTP to root@localhost and postmaster@localhost (an alias in
#      /etc/aliases) lands in /var/mail/root, mail to an ordinary user in
#      /var/mail/USER; mail sent with /usr/sbin/sendmail by an ordinary user
#      and cron's way (sendmail -FCronDaemon ... root) lands in
#      /var/mail/root; newaliases runs, mailq lists a queued message;
#      `echo hi | mail -s ... root` (bsd-mailx) from an ordinary user lands too;
#      a SIGHUP after an alias was added serves it; `posternctl reload` (the
#      unit's ExecReload) of a configuration with metrics serves /metrics; a
#      broken configuration is refused by `posternctl reload` and by SIGHUP
#      while the running one keeps serving;
#   6. with local delivery paused and a message queued, upgrade to a rebuilt
#      package (version +test1): the edited conffile and the queued message
#      survive, the restarted daemon delivers it;
#   7. remove with a message queued (user, configuration and queue kept),
#      then purge (user, group, spool and configuration gone, /var/mail/root
#      kept).
#
# Needs root, debootstrap, and the Debian mirror apt uses here; the chroot
# part is skipped, saying so, where debootstrap cannot run. Not part of CTest
# (minutes, root, network): .ci/run runs it after the test suite.
#
# POSTERN_DEB_MIRROR        mirror for debootstrap (default: the bookworm
#                           mirror of /etc/apt/sources.list*)
# POSTERN_DEB_BUILD_OPTIONS DEB_BUILD_OPTIONS of the builds (default
#                           "nocheck noopt noddebs": the test checks the
#                           packaging, not the optimiser; it halves the build)
# POSTERN_DEB_KEEP=1        keep the temporary folder
# POSTERN_DEB_PREBUILT=DIR  use the packages of an earlier deb.sh output
#                           folder DIR (with its src/) instead of building
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
start=$SECONDS
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() { echo "test_deb: FAIL: $*" >&2; exit 1; }
skip() { echo "test_deb: SKIP: $*"; exit 0; }
# shellcheck source=tests/package/lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg-buildpackage's build dependencies, debootstrap, chroot)"

tmp=$(mktemp -d /tmp/postern-deb.XXXXXX)
root=$tmp/root
out=$tmp/out
holder=""  # the process holding the network namespace
daemon=""  # posternd's PID

cleanup() {
    local rc=$?
    set +e  # every step of the cleanup runs, whatever fails before it
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && sleep 1
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
    [ -n "${rebuild_pid:-}" ] && kill "$rebuild_pid" 2>/dev/null
    pkg_release test_deb "$tmp" "$root"
    printf 'test_deb: %s after %d s\n' "$([ $rc -eq 0 ] && echo 'done' || echo failed)" $((SECONDS - start))
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {  # SECONDS COMMAND...: true once COMMAND is, false after SECONDS
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

inroot() { timeout 120 chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
inns() { nsenter --net="/proc/$holder/ns/net" "$@"; }
apt_root() { inroot env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@"; }

# ---- 1. the export and the build; debootstrap meanwhile ----

step "export HEAD of $top"
pkg_export "$top" "$tmp/tree"
if pkg_debootstrap_start "$root" "$tmp/debootstrap.log"; then
    step "debootstrap --variant=minbase bookworm from $(pkg_mirror) (in the background)"
fi
pkg_packages "$tmp/tree" "$out" "$tmp/build.log"
version=$pkg_version
pkg_check_built "$out" "$version" postern postern-filter-dkim postern-filter-rspamd postern-dev

# The upgrade's package: the same tree with a new changelog entry, built in
# the background (the compiled objects are reused: -nc) while the root is
# tested with the first one.
new_version="$version+test1"
{
    printf 'postern (%s) unstable; urgency=medium\n\n  * Rebuilt by tests/package/test_deb.sh for its upgrade.\n\n' "$new_version"
    printf ' -- postern test <test@localhost>  %s\n\n' "$(date -R)"
    cat "$out/src/debian/changelog"
} >"$tmp/changelog" && mv "$tmp/changelog" "$out/src/debian/changelog"
(cd "$out/src" && timeout 600 dpkg-buildpackage -us -uc -b -nc >"$tmp/rebuild.log" 2>&1) &
rebuild_pid=$!

# ---- 2. lintian ----

if command -v lintian >/dev/null || DEBIAN_FRONTEND=noninteractive timeout 180 apt-get install -y -q lintian >/dev/null 2>&1; then
    step "lintian"
    changes=$(ls "$out"/postern_"$version"_*.changes)
    timeout 300 lintian --tag-display-limit 0 "$changes" 2>&1 | grep -v '^running with root privileges' | tee "$tmp/lintian.log" || true
    ! grep -q '^E: ' "$tmp/lintian.log" || fail "lintian reports errors"
    [ -s "$tmp/lintian.log" ] || echo "ok: lintian: no errors, no warnings"
else
    echo "test_deb: lintian could not be installed; not run"
fi

# ---- 3. the fresh root ----

[ -n "$pkg_debootstrap_pid" ] || skip "debootstrap is not installed and could not be installed; the packages built, lintian ran"
step "wait for debootstrap"
if ! pkg_debootstrap_wait; then
    tail -5 "$tmp/debootstrap.log"
    skip "debootstrap cannot run here (log above); the packages built, lintian ran"
fi

mount -t proc proc "$root/proc"
# What a Debian 12 system has and debootstrap does not make: localhost.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# Services are not started by package scripts here; the test starts posternd.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/debs"
cp "$out"/*_"$version"_*.deb "$root/debs/"

step "apt-get install ./postern_${version}_*.deb in the root"
apt_root update >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log"; fail "apt-get update in the root"; }
inroot sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get -q -y install ./postern_${version}_*.deb" \
    >>"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log"; fail "apt-get install ./postern_*.deb"; }
inroot sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get -q -y install ./postern-filter-dkim_${version}_*.deb ./postern-filter-rspamd_${version}_*.deb ./postern-dev_${version}_*.deb" \
    >>"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log"; fail "apt-get install of the filters and the SDK"; }

step "what the package installed"
for f in /usr/sbin/posternd /usr/sbin/posternctl /usr/sbin/postern-makemap /usr/sbin/postern-sendmail \
         /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases \
         /usr/libexec/postern/postern-local /usr/libexec/postern/filter-dkim /usr/libexec/postern/filter-rspamd \
         /usr/include/postern; do
    [ -e "$root$f" ] || fail "$f is missing"
done
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -f "$root/usr/lib/$multiarch/postern/delivery-mbox.so" ] || fail "no plugins in /usr/lib/$multiarch/postern"
[ -f "$root/usr/lib/$multiarch/cmake/postern/postern-config.cmake" ] || fail "postern-dev: no CMake package"
grep -qx /etc/postern/smtpd.conf "$root/var/lib/dpkg/info/postern.conffiles" || fail "smtpd.conf is not a conffile"
inroot getent passwd _postern | grep -q ':/nonexistent:/usr/sbin/nologin$' || fail "no _postern system user"
spool=$(inroot stat -c '%U %G %a' /var/spool/postern)
[ "$spool" = "_postern _postern 700" ] || fail "spool: $spool"
[ -f "$root/etc/aliases" ] || fail "no /etc/aliases"
grep -q 'restart' "$root/var/lib/dpkg/info/postern.postinst" || fail "postinst does not restart the unit on upgrade"
inroot useradd -m -s /bin/sh alice
chmod 0700 "$root/home/alice"  # as Debian 12's adduser makes homes
echo "ok: layout, conffile, user, spool, aliases"

if command -v systemd-analyze >/dev/null; then
    # The root has no systemd for `verify --root`: the installed unit is
    # verified with this machine's, where only its commands are missing.
    unit=$root/lib/systemd/system/posternd.service
    r=$(systemd-analyze verify --man=no "$unit" 2>&1 |
        grep -Ev 'Command /usr/sbin/postern(d|ctl) is not executable: No such file or directory$' || true)
    [ -z "$r" ] || fail "systemd-analyze verify $unit: $r"
    echo "ok: systemd-analyze verify"
fi

# ---- 4. posternd as the unit starts it ----

unit_line() {  # KEY: the command of the installed unit's KEY= line, prefixes stripped
    sed -n "s/^$1=[-@:+!]*//p" "$root/lib/systemd/system/posternd.service" | head -1
}
start_daemon() {
    local pre exec
    pre=$(unit_line ExecStartPre)
    exec=$(unit_line ExecStart)
    [[ "$pre" == *" -n "* && "$exec" == *" -F "* ]] || fail "unit commands: '$pre' / '$exec'"
    read -r -a argv <<<"$pre"
    inns chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${argv[@]}" || fail "ExecStartPre: ${argv[*]}"
    read -r -a argv <<<"$exec"
    # nsenter, chroot and env each exec the next (no shell function here, it
    # would fork): $! is posternd itself, which signals must reach.
    nsenter --net="/proc/$holder/ns/net" chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${argv[@]}" \
        >>"$tmp/posternd.log" 2>&1 &
    daemon=$!
    wait_for 20 inns python3 -c 'import socket; socket.create_connection(("127.0.0.1", 25), 1).close()' 2>/dev/null ||
        { tail -20 "$tmp/posternd.log"; fail "posternd does not answer on 127.0.0.1:25"; }
}
stop_daemon() {  # as systemd stops it: SIGTERM to posternd, then wait
    kill -TERM "$daemon"
    wait_for 45 sh -c "! kill -0 $daemon 2>/dev/null" || fail "posternd did not stop on SIGTERM"
    wait "$daemon" 2>/dev/null || true
    daemon=""
}

unshare --net sleep 3600 &
holder=$!
sleep 0.2
inns ip link set lo up

step "start posternd as posternd.service does"
start_daemon
kill -HUP "$daemon"  # ExecReload
sleep 0.5
kill -0 "$daemon" 2>/dev/null || fail "posternd died on SIGHUP (ExecReload)"
echo "ok: started, reloaded"

# ---- 5. mail ----

smtp() {  # RCPT SUBJECT: one message over SMTP to the default listener
    inns python3 - "$1" "$2" <<'EOF'
import smtplib, sys
rcpt, subject = sys.argv[1], sys.argv[2]
msg = f"From: someone@localhost\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nsent by test_deb\r\n"
with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
    s.sendmail("someone@localhost", [rcpt], msg)
EOF
}
in_mbox() { [ -f "$root/var/mail/$1" ] && grep -q "^Subject: $2\$" "$root/var/mail/$1"; }
expect_mail() {  # USER SUBJECT
    wait_for 30 in_mbox "$1" "$2" || { tail -20 "$tmp/posternd.log"; fail "'$2' did not reach /var/mail/$1"; }
    echo "ok: '$2' in /var/mail/$1"
}

step "mail over SMTP"
smtp root@localhost "smtp-to-root"
smtp postmaster@localhost "smtp-to-postmaster"
smtp alice@localhost "smtp-to-alice"
expect_mail root "smtp-to-root"
expect_mail root "smtp-to-postmaster"
expect_mail alice "smtp-to-alice"
[ "$(inroot stat -c %U /var/mail/alice)" = alice ] || fail "/var/mail/alice is not alice's"

step "mail from an ordinary user and from cron (sendmail)"
inns chroot "$root" setpriv --reuid=alice --regid=alice --init-groups env -i PATH=/usr/bin:/bin HOME=/home/alice \
    sh -c 'printf "Subject: sendmail-from-alice\n\nhello\n" | /usr/sbin/sendmail root' || fail "sendmail as alice"
inns chroot "$root" setpriv --reuid=alice --regid=alice --init-groups env -i PATH=/usr/bin:/bin HOME=/home/alice \
    sh -c 'printf "Subject: cron-output\n\njob output\n" | /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem root' ||
    fail "sendmail as cron calls it"
expect_mail root "sendmail-from-alice"
expect_mail root "cron-output"
inroot newaliases || fail "newaliases (as a package script runs it after editing /etc/aliases)"

step "mail(1) from an ordinary user (bsd-mailx, which calls /usr/sbin/sendmail)"
inroot sh -c "DEBIAN_FRONTEND=noninteractive apt-get -q -y install bsd-mailx" >>"$tmp/apt.log" 2>&1 ||
    { tail -20 "$tmp/apt.log"; fail "apt-get install bsd-mailx"; }
inns chroot "$root" setpriv --reuid=alice --regid=alice --init-groups env -i PATH=/usr/bin:/bin HOME=/home/alice \
    sh -c 'echo hi | mail -s mailx-from-alice root' || fail "mail -s ... root as alice"
expect_mail root "mailx-from-alice"

step "reload (ExecReload) with a changed configuration, then with a broken one"
# posternd -F logs to syslog, which the root has not: results are checked by what the daemon does.
cp "$root/etc/postern/smtpd.conf" "$tmp/smtpd.conf.orig"
echo "reloadtest: root" >>"$root/etc/aliases"
kill -HUP "$daemon"
wait_for 20 smtp reloadtest@localhost "after-reload" 2>/dev/null || fail "the new alias is not served after SIGHUP"
expect_mail root "after-reload"
# Metrics, switched on and reloaded as the unit's ExecReload does it.
echo "metrics listen on 127.0.0.1 port 9154" >>"$root/etc/postern/smtpd.conf"
r=$(inroot posternctl -f /etc/postern/smtpd.conf reload 2>&1) || fail "posternctl reload with metrics: $r"
wait_for 20 smtp root@localhost "with-metrics" 2>/dev/null || fail "no mail served after the reload with metrics"
expect_mail root "with-metrics"
wait_for 20 sh -c "nsenter --net=/proc/$holder/ns/net curl -sf http://127.0.0.1:9154/metrics >'$tmp/metrics.txt'" ||
    fail "no /metrics on 127.0.0.1:9154 after the reload"
for family in postern_sessions_total postern_messages_accepted_total postern_deliveries_total postern_queue_envelopes; do
    grep -q "^$family" "$tmp/metrics.txt" || fail "/metrics has no $family: $(head -c 300 "$tmp/metrics.txt")"
done
echo "ok: /metrics scrapes after metrics were switched on by a reload"
echo "this is no directive" >>"$root/etc/postern/smtpd.conf"
# -s: posternctl cannot read the socket path from the broken file itself.
r=$(inroot posternctl -s /run/postern/control.sock reload 2>&1) && fail "posternctl reload accepted a broken configuration: $r"
grep -q "not reloaded" <<<"$r" || fail "posternctl reload: $r"
kill -HUP "$daemon"
sleep 1
kill -0 "$daemon" 2>/dev/null || fail "posternd died on SIGHUP with a broken configuration"
smtp reloadtest@localhost "after-refused-reload" || fail "the running configuration did not stay"
expect_mail root "after-refused-reload"
cp "$tmp/smtpd.conf.orig" "$root/etc/postern/smtpd.conf"
echo "ok: reloaded, and a broken configuration refused while the running one serves"

# ---- 6. upgrade with mail queued ----

step "upgrade to $new_version with a message queued"
echo "# the administrator's own line" >>"$root/etc/postern/smtpd.conf"
inroot posternctl pause mda >/dev/null || fail "posternctl pause mda"
smtp root@localhost "queued-over-upgrade"
wait_for 10 sh -c "chroot '$root' posternctl show queue | grep -q ." || fail "nothing queued while mda is paused"
queued=$(inroot posternctl show queue | cut -d'|' -f1)
inroot mailq | grep -q "$queued" || fail "mailq does not list envelope $queued"
! in_mbox root "queued-over-upgrade" || fail "delivered while mda was paused"

wait "$rebuild_pid" || { tail -30 "$tmp/rebuild.log"; rebuild_pid=""; fail "the rebuild of $new_version failed"; }
rebuild_pid=""
cp "$out"/*_"$new_version"_*.deb "$root/debs/"
inroot sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get -q -y install ./postern_${new_version}_*.deb ./postern-filter-dkim_${new_version}_*.deb ./postern-filter-rspamd_${new_version}_*.deb ./postern-dev_${new_version}_*.deb" \
    >>"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log"; fail "upgrade to $new_version"; }
[ "$(inroot dpkg-query -W -f '${Version}' postern)" = "$new_version" ] || fail "postern was not upgraded"
grep -qx "# the administrator's own line" "$root/etc/postern/smtpd.conf" || fail "the upgrade lost the edited conffile"
for id in $queued; do
    inroot posternctl show queue | grep -q "^$id|" || fail "envelope $id lost over the upgrade"
done
# No systemd here: restart as the postinst's `deb-systemd-invoke restart` would.
stop_daemon
start_daemon
inroot posternctl resume mda >/dev/null 2>&1 || true  # (the pause need not outlive a restart)
expect_mail root "queued-over-upgrade"
n=$(grep -c '^Subject: queued-over-upgrade$' "$root/var/mail/root")
[ "$n" -eq 1 ] || fail "the queued message was delivered $n times"
wait_for 10 sh -c "! chroot '$root' posternctl show queue | grep -q ." || fail "queue not empty after delivery"

# ---- 7. remove and purge ----

step "remove, with a message queued"
inroot posternctl pause mda >/dev/null || fail "posternctl pause mda"
smtp root@localhost "queued-at-remove"
wait_for 10 sh -c "chroot '$root' posternctl show queue | grep -q ." || fail "nothing queued while mda is paused"
stop_daemon  # what the prerm's `deb-systemd-invoke stop` does under systemd
apt_root remove postern >>"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log"; fail "apt-get remove postern"; }
[ ! -e "$root/usr/sbin/posternd" ] || fail "posternd still there after remove"
inroot getent passwd _postern >/dev/null || fail "remove dropped the _postern user"
[ -f "$root/etc/postern/smtpd.conf" ] || fail "remove dropped the configuration"
grep -rqs '^Subject: queued-at-remove' "$root/var/spool/postern" || fail "remove dropped the queued message"
echo "ok: user, configuration and queued mail kept"

step "purge"
apt_root purge postern >>"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log"; fail "apt-get purge postern"; }
! inroot getent passwd _postern >/dev/null || fail "purge kept the _postern user"
! inroot getent group _postern >/dev/null || fail "purge kept the _postern group"
[ ! -e "$root/var/spool/postern" ] || fail "purge kept the spool"
[ ! -e "$root/etc/postern" ] || fail "purge kept /etc/postern"
in_mbox root "smtp-to-root" || fail "purge touched /var/mail/root"
echo "ok: user, group, spool and configuration gone; mailboxes kept"
