#!/usr/bin/env bash
# The Debian package's posternd.service under a real systemd, in a virtual
# machine (this machine's PID 1 is no systemd, and a container cannot boot
# one):
#
#   1. build the packages with packaging/deb.sh from a `git archive` export
#      of HEAD (or take POSTERN_DEB_PREBUILT's), debootstrapping a minbase
#      bookworm root meanwhile;
#   2. in the root, apt-get install systemd, udev, a kernel, Dovecot's LMTP
#      server, python3 (the checks' SMTP client and DKIM verifier) and
#      man-db (for verify's Documentation= check), then
#      ./postern_*.deb and ./postern-filter-dkim_*.deb, as an administrator
#      would; add the users the checks deliver to, the check script and the
#      unit that runs it;
#   3. write the root into an ext4 image (mkfs.ext4 -d) and boot it with
#      qemu-system-x86_64 (KVM when /dev/kvm works, else TCG with longer
#      bounds; KVM whose guest kernel has not started in 20 s, as on this
#      machine's nested virtualisation, gives way to TCG, which boots in
#      about 30 s here), the root's own kernel and initrd, the console on
#      the first serial port (console.log), the checks' lines on the second
#      (results.log); the VM powers off when the checks end, and is killed
#      by its PID if it overruns its bound;
#   4. inside the VM, as root under systemd, with the packaged unit and its
#      hardening as installed (no drop-in):
#      - posternd.service is enabled and started at boot; the hardening is in
#        force (/usr and /etc read-only for the daemon, a private /tmp);
#        `systemd-analyze verify` of the unit says nothing; `systemctl
#        start` after a stop makes it active, its ExecStartPre `posternd -n`
#        ran (exit 0, "configuration OK" in the journal);
#      - SMTP to root@localhost lands in /var/mail/root (the default
#        configuration);
#      - a configuration written to /etc/postern/smtpd.conf and `systemctl
#        reload` (same main PID): one user's mail lands in ~/Maildir,
#        another's in /var/mail, a third's in Dovecot (LMTP over
#        /run/dovecot/lmtp), a fourth's through an mda command in its home;
#        filter-dkim on the listener signs the mail From example.org (its
#        DKIM-Signature verifies with the key's public half) and not the
#        rest;
#      - /usr/sbin/sendmail -t as an ordinary user lands in /var/mail/root;
#      - `systemctl reload` with a listener added serves it; with a syntax
#        error it exits non-zero, the journal shows FILE:LINE:COL, and the
#        daemon (same PID) serves the previous configuration;
#      - kill -9 of the main PID: systemd restarts it, mail lands again;
#      - the daemon's journal has no EROFS/EACCES/EPERM/EAFNOSUPPORT error;
#      - `systemctl stop posternd` ends every postern process and empties the
#        unit's control group.
#
# Needs root, debootstrap, the Debian mirror apt uses here, and
# qemu-system-x86 (installed when missing). Skipped, saying why, when not
# root, or when no VM can be run. Not part of CTest (minutes, root, a VM):
# .ci/run runs it after the test suite. Measured here (2 cores, shared, TCG):
# 6.5 to 8 min building the packages, 3.5 to 7 with POSTERN_DEB_PREBUILT.
# A hardening option that breaks delivery shows: with ProtectHome=read-only
# added, the maildir check fails ("maildir: mkdir /home/mdir/Maildir:
# Read-only file system" in the journal), and so does the mda one.
#
# POSTERN_DEB_MIRROR, POSTERN_DEB_BUILD_OPTIONS, POSTERN_DEB_PREBUILT=DIR
#                           as for test_deb.sh (see lib.sh)
# POSTERN_DEB_KEEP=1        keep the temporary folder (root, image, logs)
# POSTERN_VM_ACCEL=kvm|tcg  force the accelerator (default: kvm when it
#                           works, else tcg)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
start=$SECONDS
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }
fail() { echo "test_systemd: FAIL: $*" >&2; exit 1; }
skip() { echo "test_systemd: SKIP: $*"; exit 0; }
# shellcheck source=tests/package/lib.sh
. "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (the package build's dependencies, debootstrap, chroot, /dev/kvm)"

tmp=$(mktemp -d /tmp/postern-systemd.XXXXXX)
root=$tmp/root
out=$tmp/out
qemu_pid=""

cleanup() {
    local rc=$?
    set +e  # every step of the cleanup runs, whatever fails before it
    [ -n "$qemu_pid" ] && kill -KILL "$qemu_pid" 2>/dev/null
    pkg_release test_systemd "$tmp" "$root"
    printf 'test_systemd: %s after %d s\n' "$([ $rc -eq 0 ] && echo 'done' || echo failed)" $((SECONDS - start))
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inroot() { timeout 600 chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
apt_root() { inroot env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@"; }

# ---- 0. can a VM run here? Asked first: a build is minutes lost if not ----

step "qemu and the accelerator"
pkg_host_install qemu-system-x86_64 qemu-system-x86 ||
    skip "qemu-system-x86_64 is not installed and could not be installed"
accel_starts() {  # ACCEL: qemu starts with it (for KVM: /dev/kvm is there and usable)
    echo quit | timeout 20 qemu-system-x86_64 -accel "$1" -M none -nodefaults -display none -monitor stdio \
        >/dev/null 2>&1
}
# The bounds of each accelerator: the whole VM, and the factor of the
# checks' own waits. Under TCG (emulated) the VM boots in about 30 s, and the
# checks take about 100 s, several times what they take under KVM.
declare -A vm_bound=([kvm]=300 [tcg]=900) vm_scale=([kvm]=1 [tcg]=5)
accel=${POSTERN_VM_ACCEL:-}
case $accel in
"") if [ -c /dev/kvm ] && accel_starts kvm; then accel=kvm; else accel=tcg; fi ;;
kvm) accel_starts kvm || skip "POSTERN_VM_ACCEL=kvm, but KVM does not work here (/dev/kvm: $(ls -l /dev/kvm 2>&1))" ;;
tcg) ;;
*) fail "POSTERN_VM_ACCEL=$accel: kvm or tcg" ;;
esac
if [ "$accel" = tcg ] && ! accel_starts tcg; then
    skip "neither KVM nor qemu's TCG emulator works here"
fi
echo "ok: qemu-system-x86_64 with $accel"
command -v mkfs.ext4 >/dev/null || fail "mkfs.ext4 is missing (e2fsprogs)"

# ---- 1. the export and the build; debootstrap meanwhile ----

step "export HEAD of $top"
pkg_export "$top" "$tmp/tree"
step "debootstrap --variant=minbase bookworm from $(pkg_mirror) (in the background)"
pkg_debootstrap_start "$root" "$tmp/debootstrap.log" ||
    skip "debootstrap is not installed and could not be installed"
pkg_packages "$tmp/tree" "$out" "$tmp/build.log"
version=$pkg_version
pkg_check_built "$out" "$version" postern postern-filter-dkim

# ---- 2. the root ----

step "wait for debootstrap"
if ! pkg_debootstrap_wait; then
    tail -5 "$tmp/debootstrap.log"
    skip "debootstrap cannot run here (log above)"
fi

mount -t proc proc "$root/proc"
echo posternvm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tposternvm\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# A machine-id of its own: without one, the first boot would run systemd's
# first-boot steps (presets) before the checks.
tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# Nothing is started in the root while it is made: the VM starts it all.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# The initrd needs only the VM's disk and the root's file system: a short
# list is seconds faster to make than "most" and boots the same.
# (Files no package owns: /etc/initramfs-tools/modules is a conffile.)
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
echo MODULES=list >"$root/etc/initramfs-tools/conf.d/postern-vm.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' >"$root/usr/share/initramfs-tools/modules.d/postern-vm"

# man-db: systemd-analyze verify checks that the unit's Documentation=
# pages are there.
step "apt-get install systemd, a kernel, Dovecot's LMTP server, python3, man-db in the root"
apt_root update >"$tmp/apt.log" 2>&1 || { tail -20 "$tmp/apt.log"; fail "apt-get update in the root"; }
apt_root install --no-install-recommends systemd-sysv udev dbus linux-image-amd64 dovecot-lmtpd \
    python3 python3-dkim procps openssl man-db >>"$tmp/apt.log" 2>&1 ||
    { tail -30 "$tmp/apt.log"; fail "apt-get install of the VM's system"; }

step "apt-get install ./postern_${version}_*.deb ./postern-filter-dkim_${version}_*.deb in the root"
mkdir -p "$root/debs"
cp "$out"/postern_"$version"_*.deb "$out"/postern-filter-dkim_"$version"_*.deb "$root/debs/"
inroot sh -c "cd /debs && DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 install ./postern_${version}_*.deb ./postern-filter-dkim_${version}_*.deb" \
    >>"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log"; fail "apt-get install ./postern_*.deb"; }
rm -rf "$root/debs"
[ -L "$root/etc/systemd/system/multi-user.target.wants/posternd.service" ] ||
    fail "the package did not enable posternd.service"
# The unit is tested as packaged: whatever drop-in would change it is an error.
[ ! -e "$root/etc/systemd/system/posternd.service.d" ] || fail "a drop-in folder for posternd.service exists"

step "users, Dovecot's mail location, the check script and its unit"
for u in alice mdir mbx lmtpu mdau; do
    inroot useradd -m -s /bin/sh "$u"
    chmod 0700 "$root/home/$u"  # as Debian 12's adduser makes homes
done
# Dovecot files the system users' mail in ~/Maildir (the Debian default is
# mbox in /var/mail, where postern's own mbox delivery writes).
echo 'mail_location = maildir:~/Maildir' >"$root/etc/dovecot/local.conf"

cat >"$root/usr/local/sbin/postern-vmcheck" <<'VMCHECK'
#!/bin/bash
# postern-vmcheck: the checks of tests/package/test_systemd.sh, run as root
# by postern-vmcheck.service under the VM's systemd, with posternd.service
# as the package installed it. Every line goes to the second serial port,
# which the host reads: "vmcheck: ok: ...", "vmcheck: FAIL: ...", and last
# "vmcheck: RESULT: pass" or "vmcheck: RESULT: fail". The first failure ends
# the checks (with the unit's status and journal), and the VM powers off.
set -u
scale=$(sed -n 's/.*postern\.scale=\([0-9]*\).*/\1/p' /proc/cmdline)
scale=${scale:-1}
t0=$SECONDS
conf=/etc/postern/smtpd.conf
unit=/lib/systemd/system/posternd.service

say() { printf '%s\n' "$*" | sed 's/^/vmcheck: /'; }
step() { say "== [$((SECONDS - t0))s] $*"; }
ok() { say "ok: $*"; }
diag() { "$@" 2>&1 | tail -n 80 | sed 's/^/vmcheck: | /'; }
fail() {
    say "FAIL: $*"
    diag systemctl status --no-pager posternd
    diag journalctl -b --no-pager -u posternd
    diag journalctl -b --no-pager -u dovecot
    diag ps -eo pid,user,args
    say "RESULT: fail"
    exit 0
}
wait_for() {  # SECONDS COMMAND...: true once COMMAND is, false after SECONDS (scaled)
    local deadline=$((SECONDS + $1 * scale))
    shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}
prop() { systemctl show -p "$1" --value posternd; }
main_pid() { prop MainPID; }

smtp() {  # PORT FROM RCPT SUBJECT: one message over SMTP on the loopback address
    python3 - "$@" <<'EOF'
import smtplib, sys
port, sender, rcpt, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
msg = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
       f"Message-ID: <{subject}@vmcheck.test>\r\n\r\nsent by test_systemd\r\n")
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.sendmail(sender, [rcpt], msg)
EOF
}
port_open() { python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2).close()" "$1" 2>/dev/null; }
mbox_has() { grep -qsx "Subject: $2" "$1"; }
maildir_file() { grep -lsx "Subject: $2" "$1"/new/* | head -1; }
maildir_has() { [ -n "$(maildir_file "$1" "$2")" ]; }
expect_mbox() {  # FILE SUBJECT
    wait_for 30 mbox_has "$1" "$2" || fail "'$2' did not reach $1"
    ok "'$2' in $1"
}
expect_maildir() {  # DIR SUBJECT
    wait_for 30 maildir_has "$1" "$2" || fail "'$2' did not reach $1/new"
    ok "'$2' in $(maildir_file "$1" "$2")"
}
journal_since() { journalctl -b --no-pager -o cat -u posternd --since "@$1"; }
postern_processes() {  # every process of a postern program, or of user _postern
    ps -eo pid=,user=,args= | awk '$2 == "_postern" || $3 ~ /^\/usr\/(sbin\/postern|libexec\/postern\/)/'
}

write_conf() {  # [LISTEN-LINE]: the configuration of the delivery checks
    cat >"$conf" <<EOF
# Written by test_systemd's check in the VM: one user per delivery method,
# and mail From example.org signed by filter-dkim on the listener.
table aliases file:/etc/aliases

filter "dkim" proc-exec "/usr/libexec/postern/filter-dkim -d example.org -s vm2026 -k /etc/postern/dkim/example.org.key"

listen on localhost filter "dkim"
${1:-}

action "maildir" maildir
action "mbox" mbox
action "lmtp" lmtp "/run/dovecot/lmtp"
action "mda" mda "cat >> \$HOME/mda-inbox"
action "local" mbox alias <aliases>

match from local for rcpt-to "mdir@localhost" action "maildir"
match from local for rcpt-to "mbx@localhost" action "mbox"
match from local for rcpt-to "lmtpu@localhost" action "lmtp"
match from local for rcpt-to "mdau@localhost" action "mda"
match from local for local action "local"
EOF
}

# ---- the unit as installed, started at boot ----

step "posternd.service at boot"
say "systemd $(systemctl --version | head -1), kernel $(uname -r)"
[ "$(systemctl is-enabled posternd 2>&1)" = enabled ] || fail "posternd.service is not enabled: $(systemctl is-enabled posternd 2>&1)"
wait_for 30 systemctl is-active -q posternd || fail "posternd.service is not active after boot: $(systemctl is-active posternd)"
[ "$(prop FragmentPath)" = "$unit" ] || fail "posternd.service is loaded from $(prop FragmentPath)"
[ -z "$(prop DropInPaths)" ] || fail "drop-ins change the packaged unit: $(prop DropInPaths)"
# The options in force, as systemd read them (one call: each is seconds under TCG).
systemctl show posternd -p ProtectSystem -p PrivateTmp -p ProtectHome -p NoNewPrivileges \
    -p ProtectKernelTunables -p ProtectKernelModules -p ProtectKernelLogs -p ProtectControlGroups \
    -p RestrictRealtime -p LockPersonality -p RestrictAddressFamilies -p Restart -p KillMode | sed 's/^/  /' |
    while read -r l; do say "$l"; done
{ [ "$(prop ProtectSystem)" = full ] && [ "$(prop PrivateTmp)" = yes ]; } || fail "the unit's hardening is not the packaged one"
pid=$(main_pid)
# The sandbox is in force for the daemon: /usr and /etc read-only, /tmp its own.
r=$(nsenter -t "$pid" -m touch /etc/postern/vmcheck-write 2>&1) && fail "/etc is writable for posternd"
grep -q 'Read-only file system' <<<"$r" || fail "/etc for posternd: $r"
r=$(nsenter -t "$pid" -m touch /usr/vmcheck-write 2>&1) && fail "/usr is writable for posternd"
touch /tmp/vmcheck-host-tmp
nsenter -t "$pid" -m test -e /tmp/vmcheck-host-tmp && fail "posternd sees the host's /tmp (PrivateTmp)"
nsenter -t "$pid" -m test -w /var/spool/postern || fail "/var/spool/postern is not writable for posternd"
ok "enabled, active at boot (main PID $pid), no drop-in; /usr and /etc read-only, /tmp private for posternd"

step "systemd-analyze verify $unit"
r=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify exited $?: $r"
[ -z "$r" ] || fail "systemd-analyze verify: $r"
ok "systemd-analyze verify: exit 0, nothing to say"

step "systemctl stop posternd; systemctl start posternd"
systemctl stop posternd || fail "systemctl stop posternd exited $?"
since=$(date +%s)
systemctl start posternd || fail "systemctl start posternd exited $?"
[ "$(systemctl is-active posternd)" = active ] || fail "not active after systemctl start: $(systemctl is-active posternd)"
pre=$(prop ExecStartPre)
say "  ExecStartPre: $pre"
[[ $pre == *"argv[]=/usr/sbin/posternd -n -f /etc/postern/smtpd.conf "* ]] || fail "ExecStartPre is not posternd -n: $pre"
[[ $pre =~ code=exited\ \;\ status=0[/\ ] ]] || fail "ExecStartPre did not exit 0: $pre"
[[ $pre =~ pid=[1-9] ]] || fail "ExecStartPre did not run: $pre"
wait_for 10 sh -c "journalctl -b --no-pager -o cat -u posternd --since @$since | grep -qx 'configuration OK'" ||
    fail "no 'configuration OK' of posternd -n in the journal"
tr '\0' ' ' </proc/"$(main_pid)"/cmdline | grep -q '^/usr/sbin/posternd -F -f /etc/postern/smtpd.conf' ||
    fail "the main process is not posternd -F: $(tr '\0' ' ' </proc/"$(main_pid)"/cmdline)"
wait_for 20 port_open 25 || fail "nothing answers on 127.0.0.1:25"
ok "active, main PID $(main_pid); ExecStartPre posternd -n exited 0 and logged 'configuration OK'"

# ---- mail with the packaged configuration ----

step "SMTP to root@localhost with the default configuration"
smtp 25 someone@localhost root@localhost vm-smtp-root || fail "SMTP to root@localhost refused"
expect_mbox /var/mail/root vm-smtp-root

# ---- the delivery methods, after a reload ----

step "maildir, mbox, LMTP to Dovecot, mda, and DKIM signing: write $conf, systemctl reload"
wait_for 30 test -S /run/dovecot/lmtp || fail "Dovecot's socket /run/dovecot/lmtp is missing ($(systemctl is-active dovecot))"
install -d -o root -g _postern -m 0750 /etc/postern/dkim
(umask 077 && openssl genrsa -out /etc/postern/dkim/example.org.key 2048 2>/dev/null) || fail "openssl genrsa"
chown root:_postern /etc/postern/dkim/example.org.key
chmod 0640 /etc/postern/dkim/example.org.key
cp "$conf" /root/smtpd.conf.packaged
write_conf
posternd -n -f "$conf" >/dev/null || fail "posternd -n refuses the new configuration: $(posternd -n -f "$conf" 2>&1)"
pid=$(main_pid)
since=$(date +%s)
systemctl reload posternd || fail "systemctl reload exited $?: $(journal_since "$since" | tail -5)"
[ "$(main_pid)" = "$pid" ] || fail "the reload changed the main PID ($pid -> $(main_pid)): a restart, not a reload"
wait_for 10 sh -c "journalctl -b --no-pager -o cat -u posternd --since @$since | grep -q 'configuration reloaded'" ||
    fail "no 'configuration reloaded' in the journal"
ok "reloaded (main PID $pid kept)"
smtp 25 signer@example.org mdir@localhost vm-maildir || fail "SMTP to mdir refused"
smtp 25 someone@localhost mbx@localhost vm-mbox || fail "SMTP to mbx refused"
smtp 25 someone@localhost lmtpu@localhost vm-lmtp || fail "SMTP to lmtpu refused"
smtp 25 someone@localhost mdau@localhost vm-mda || fail "SMTP to mdau refused"

expect_maildir /home/mdir/Maildir vm-maildir
f=$(maildir_file /home/mdir/Maildir vm-maildir)
[ "$(stat -c %U "$f")" = mdir ] || fail "$f belongs to $(stat -c %U "$f")"
grep -q '^DKIM-Signature: ' "$f" || fail "no DKIM-Signature in the message From example.org: $(head -20 "$f")"
# The signature verifies with the public half of the key, as a receiver
# would check it with the DNS record vm2026._domainkey.example.org.
pub=$(openssl rsa -in /etc/postern/dkim/example.org.key -pubout -outform DER 2>/dev/null | base64 -w0)
r=$(python3 - "$f" "$pub" <<'EOF' 2>&1
import sys, dkim
path, pub = sys.argv[1], sys.argv[2]
msg = open(path, "rb").read()
def dns(name, timeout=5):
    if name == b"vm2026._domainkey.example.org.":
        return b"v=DKIM1; k=rsa; p=" + pub.encode()
    return None
sig = dkim.DKIM(msg)
ok = sig.verify(dnsfunc=dns)
print("verified" if ok else "NOT verified", sig.domain.decode() if sig.domain else "-", sig.selector.decode() if sig.selector else "-")
sys.exit(0 if ok else 1)
EOF
) || fail "the DKIM signature does not verify: $r"
[ "$r" = "verified example.org vm2026" ] || fail "DKIM: $r"
ok "DKIM-Signature d=example.org s=vm2026 verifies"

expect_mbox /var/mail/mbx vm-mbox
[ "$(stat -c %U /var/mail/mbx)" = mbx ] || fail "/var/mail/mbx belongs to $(stat -c %U /var/mail/mbx)"
! grep -q '^DKIM-Signature: ' /var/mail/mbx || fail "mail From localhost was signed"
ok "mail not From example.org is not signed"

expect_maildir /home/lmtpu/Maildir vm-lmtp
f=$(maildir_file /home/lmtpu/Maildir vm-lmtp)
grep -q 'with LMTP' "$f" || fail "$f has no Received line of Dovecot's LMTP: $(head -12 "$f")"
wait_for 10 sh -c "journalctl -b --no-pager -o cat -u posternd | grep 'to=lmtpu@localhost' | grep -q 'result=Ok stat=\"lmtp: /run/dovecot/lmtp'" ||
    fail "no 'result=Ok stat=\"lmtp: /run/dovecot/lmtp' delivery line in the journal"
ok "Dovecot filed it (Received ... with LMTP), the journal has the LMTP delivery"

expect_mbox /home/mdau/mda-inbox vm-mda
[ "$(stat -c %U /home/mdau/mda-inbox)" = mdau ] || fail "/home/mdau/mda-inbox belongs to $(stat -c %U /home/mdau/mda-inbox)"
grep -qx 'Delivered-To: mdau@localhost' /home/mdau/mda-inbox || fail "the mda command got no Delivered-To line"
ok "the mda command ran as mdau in its home"

step "/usr/sbin/sendmail -t as an ordinary user (alice)"
setpriv --reuid=alice --regid=alice --init-groups env -i PATH=/usr/bin:/bin HOME=/home/alice USER=alice LOGNAME=alice \
    sh -c 'printf "To: root@localhost\nSubject: vm-sendmail-t\n\nhello from alice\n" | /usr/sbin/sendmail -t' ||
    fail "sendmail -t as alice exited $?"
expect_mbox /var/mail/root vm-sendmail-t
grep -q 'local user alice' /var/mail/root || fail "the Received line does not name alice"

# ---- reloads ----

step "systemctl reload with a changed configuration: a listener on port 2525"
! port_open 2525 || fail "port 2525 answers before the reload"
pid=$(main_pid)
write_conf 'listen on localhost port 2525 filter "dkim"'
systemctl reload posternd || fail "systemctl reload exited $?"
[ "$(main_pid)" = "$pid" ] || fail "the reload changed the main PID"
wait_for 20 port_open 2525 || fail "port 2525 is not served after the reload"
smtp 2525 signer@example.org mdir@localhost vm-port-2525 || fail "SMTP on port 2525 refused"
expect_maildir /home/mdir/Maildir vm-port-2525

step "systemctl reload with a broken configuration"
cp "$conf" /root/smtpd.conf.good
echo 'this is no directive' >>"$conf"
line=$(wc -l <"$conf")
since=$(date +%s)
r=$(systemctl reload posternd 2>&1) && fail "systemctl reload accepted a broken configuration"
rc=$?
say "  systemctl reload exited $rc: $r"
wait_for 10 sh -c "journalctl -b --no-pager -o cat -u posternd --since @$since | grep -Eq '/etc/postern/smtpd.conf:$line:[0-9]+: '" ||
    fail "no /etc/postern/smtpd.conf:$line:COL error in the journal: $(journal_since "$since")"
journal_since "$since" | grep -E "smtpd.conf:$line:[0-9]+: " | head -3 | sed 's/^/  journal: /' | while read -r l; do say "$l"; done
[ "$(systemctl is-active posternd)" = active ] || fail "posternd is $(systemctl is-active posternd) after a refused reload"
[ "$(main_pid)" = "$pid" ] || fail "the refused reload changed the main PID"
smtp 2525 signer@example.org mdir@localhost vm-after-refused || fail "the running configuration (port 2525) does not serve"
expect_maildir /home/mdir/Maildir vm-after-refused
cp /root/smtpd.conf.good "$conf"
systemctl reload posternd || fail "systemctl reload of the repaired configuration exited $?"
ok "refused with exit $rc and FILE:LINE:COL in the journal; the running configuration served on"

# ---- Restart=on-failure ----

step "kill -9 of the main PID"
pid=$(main_pid)
n=$(prop NRestarts)
t=$SECONDS
kill -KILL "$pid"
restarted() { local p; p=$(main_pid); [ "$p" != 0 ] && [ "$p" != "$pid" ] && systemctl is-active -q posternd; }
wait_for 60 restarted || fail "posternd.service was not restarted after kill -9 ($(systemctl is-active posternd))"
[ "$(prop NRestarts)" = $((n + 1)) ] || fail "NRestarts $(prop NRestarts), not $((n + 1))"
wait_for 20 port_open 25 || fail "nothing answers on port 25 after the restart"
ok "restarted by systemd in $((SECONDS - t)) s, main PID $pid -> $(main_pid)"
smtp 25 someone@localhost root@localhost vm-after-restart || fail "SMTP after the restart refused"
expect_mbox /var/mail/root vm-after-restart

step "the journal of posternd.service: nothing the sandbox refused"
r=$(journalctl -b --no-pager -o cat -u posternd |
    grep -E 'Read-only file system|Permission denied|Operation not permitted|Address family not supported|Bad system call')
[ -z "$r" ] || fail "the sandbox refused something: $r"
ok "no EROFS, EACCES, EPERM or EAFNOSUPPORT in the journal"

# ---- stop ----

step "systemctl stop posternd"
cg=/sys/fs/cgroup$(prop ControlGroup)
say "  processes: $(postern_processes | tr '\n' ';')"
t=$SECONDS
systemctl stop posternd || fail "systemctl stop exited $?"
ok "stopped in $((SECONDS - t)) s"
[ "$(systemctl is-active posternd)" = inactive ] || fail "posternd is $(systemctl is-active posternd) after stop"
left=$(postern_processes)
[ -z "$left" ] || fail "postern processes left after stop: $left"
[ ! -s "$cg/cgroup.procs" ] || fail "the unit's control group still has processes: $(cat "$cg/cgroup.procs")"
! port_open 25 || fail "port 25 still answers after stop"
ok "no postern process left, control group empty, port 25 closed"

say "checks done in $((SECONDS - t0)) s"
say "RESULT: pass"
VMCHECK
chmod 0755 "$root/usr/local/sbin/postern-vmcheck"

# Pulled in by systemd.wants= on the kernel command line; powers the VM off
# when it ends, however it ends.
unit_timeout=$((vm_bound[tcg] - 120))  # (under KVM, the host's bound comes first)
cat >"$root/etc/systemd/system/postern-vmcheck.service" <<EOF
[Unit]
Description=test_systemd's checks of posternd.service
After=multi-user.target posternd.service dovecot.service
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/postern-vmcheck
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS1
TimeoutStartSec=$unit_timeout
EOF

# What the image does not keep of the making.
rm -f "$root/usr/sbin/policy-rc.d"
: >"$root/etc/resolv.conf"
inroot apt-get clean
umount "$root/proc"
for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/root" 2>/dev/null)" != "$root" ] || fail "a process is running in the root: $(tr '\0' ' ' <"$pid/cmdline")"
done

# ---- 3. the image and the VM ----

kernels=("$root"/boot/vmlinuz-*)
kernel=${kernels[-1]}
initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
if [ ! -f "$kernel" ] || [ ! -f "$initrd" ]; then fail "no kernel or initrd in $root/boot: $(ls "$root/boot")"; fi
cp "$kernel" "$tmp/vmlinuz"
cp "$initrd" "$tmp/initrd.img"

step "mkfs.ext4 -d of the root"
size=$(($(du -sm "$root" | cut -f1) + 512))
mkfs.ext4 -q -F -L posternvm -d "$root" "$tmp/root.img" "${size}M" || fail "mkfs.ext4 -d"
echo "ok: $tmp/root.img, ${size} MiB"

# run_vm ACCEL: boots the image; prints the checks' lines as they come.
# Returns 3 when, under KVM, qemu failed or the kernel printed nothing
# within 20 s (seen here, on nested virtualisation: /dev/kvm opens, but the
# guest crawls through the kernel's decompressor), after killing the VM;
# fails when the VM overruns its bound or qemu fails.
run_vm() {
    local accel=$1 args deadline seen=0 n rc=0 started
    case $accel in
    # -arch-capabilities: some hosts' KVM refuses the MSR that -cpu host
    # would set, and qemu aborts ("failed to set MSR 0x10a").
    kvm) args=(-accel kvm -cpu "host,-arch-capabilities") ;;
    tcg) args=(-accel tcg -cpu max) ;;
    esac
    : >"$tmp/console.log"
    : >"$tmp/results.log"
    started=$SECONDS
    qemu-system-x86_64 "${args[@]}" -m 1536 -smp 2 -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$tmp/vmlinuz" -initrd "$tmp/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.wants=postern-vmcheck.service postern.scale=${vm_scale[$accel]}" \
        -drive "file=$tmp/root.img,format=raw,if=virtio" \
        -device virtio-rng-pci \
        -serial "file:$tmp/console.log" -serial "file:$tmp/results.log" \
        >"$tmp/qemu.log" 2>&1 &
    qemu_pid=$!
    deadline=$((SECONDS + ${vm_bound[$accel]}))
    while kill -0 "$qemu_pid" 2>/dev/null; do
        n=$(wc -l <"$tmp/results.log")
        if [ "$n" -gt "$seen" ]; then
            sed -n "$((seen + 1)),${n}p" "$tmp/results.log" | tr -d '\r' | sed 's/^vmcheck: /  vm: /'
            seen=$n
        fi
        if [ "$accel" = kvm ] && [ $((SECONDS - started)) -ge 20 ] && ! grep -q 'Linux version' "$tmp/console.log"; then
            kill -KILL "$qemu_pid" 2>/dev/null
            wait "$qemu_pid" 2>/dev/null || true
            qemu_pid=""
            return 3
        fi
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$qemu_pid" 2>/dev/null
            wait "$qemu_pid" 2>/dev/null || true
            qemu_pid=""
            tail -30 "$tmp/console.log" | tr -d '\r'
            fail "the VM did not finish in ${vm_bound[$accel]} s (console above)"
        fi
        sleep 1
    done
    wait "$qemu_pid" || rc=$?
    qemu_pid=""
    if [ "$accel" = kvm ] && [ "$rc" -ne 0 ] && ! grep -q 'Linux version' "$tmp/console.log"; then
        cat "$tmp/qemu.log"
        return 3
    fi
    tr -d '\r' <"$tmp/results.log" | sed -n "$((seen + 1)),\$p" | sed 's/^vmcheck: /  vm: /'
    [ "$rc" -eq 0 ] || { cat "$tmp/qemu.log"; fail "qemu exited $rc"; }
    echo "ok: the VM ran $((SECONDS - started)) s under $accel"
}

step "boot the VM ($accel, $(basename "$kernel")), the checks run under its systemd"
rc=0
run_vm "$accel" || rc=$?
if [ "$rc" -eq 3 ]; then
    # The kernel had not started: the image is untouched, and booted again.
    echo "test_systemd: KVM opens, but the guest's kernel did not start in 20 s (nested virtualisation?): booting with TCG"
    accel=tcg
    step "boot the VM again ($accel)"
    run_vm "$accel"
fi

results=$(tr -d '\r' <"$tmp/results.log")
if ! grep -qx 'vmcheck: RESULT: pass' <<<"$results"; then
    grep -q '^vmcheck: RESULT: fail' <<<"$results" ||
        { tail -40 "$tmp/console.log" | tr -d '\r'; fail "the checks gave no result (console above)"; }
    fail "$(grep -m1 '^vmcheck: FAIL: ' <<<"$results" | sed 's/^vmcheck: FAIL: //') (in the VM; lines above)"
fi
echo "ok: every check passed in the VM"
