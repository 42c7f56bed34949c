#!/usr/bin/env bash
# Checks the packages scripts/build-packages.sh made: every expected file is in each package
# and nothing else is, the configuration files are conffiles / %config(noreplace), no
# maintainer script touches PAM or nsswitch configuration, and lintian finds no error in the
# .deb. Prints `rpm -qpi`, the rpm's scriptlets and requirements, and lintian's findings.
#
#   scripts/check-packages.sh [DEB] [RPM]     default: the ones in <target>/packages/
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
DEB=${1:-$(ls "$TARGET"/packages/accountmap_*.deb 2>/dev/null | head -n1)}
RPM=${2:-$(ls "$TARGET"/packages/accountmap-*.rpm 2>/dev/null | head -n1)}
[ -f "$DEB" ] || { echo "check-packages: no .deb: run scripts/build-packages.sh" >&2; exit 1; }
[ -f "$RPM" ] || { echo "check-packages: no .rpm: run scripts/build-packages.sh" >&2; exit 1; }
for tool in dpkg-deb rpm lintian; do
    command -v "$tool" >/dev/null || { echo "check-packages: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

failed=0
fail() { echo "check-packages: FAIL: $*" >&2; failed=1; }

MAN="usr/share/man/man8/pam_accountmap.8.gz
usr/share/man/man8/nss_accountmap.8.gz
usr/share/man/man8/accountmapd.8.gz
usr/share/man/man1/accountmapctl.1.gz
usr/share/man/man8/accountmap-gate.8.gz
usr/share/man/man5/accountmap.toml.5.gz"
DOC="usr/share/doc/accountmap/README.md
usr/share/doc/accountmap/deployment.md
usr/share/doc/accountmap/examples/pam.d/rstudio.debian
usr/share/doc/accountmap/examples/pam.d/rstudio.rhel
usr/share/doc/accountmap/examples/pam.d/rstudio-session
usr/share/doc/accountmap/examples/pam.d/sshd.accountmap"

DEB_EXPECTED="usr/sbin/accountmapd
usr/bin/accountmapctl
usr/sbin/accountmap-gate
usr/lib/systemd/system/accountmap-gate.service
usr/lib/x86_64-linux-gnu/security/pam_accountmap.so
usr/lib/x86_64-linux-gnu/libnss_accountmap.so.2
usr/lib/systemd/system/accountmapd.service
etc/accountmap/accountmap.toml
etc/accountmap/accounts
usr/share/pam-configs/accountmap
usr/share/doc/accountmap/copyright
usr/share/doc/accountmap/changelog.Debian.gz
$DOC
$MAN"

RPM_EXPECTED="usr/sbin/accountmapd
usr/bin/accountmapctl
usr/sbin/accountmap-gate
usr/lib/systemd/system/accountmap-gate.service
usr/lib64/security/pam_accountmap.so
usr/lib64/libnss_accountmap.so.2
usr/lib/systemd/system/accountmapd.service
etc/accountmap/accountmap.toml
etc/accountmap/accounts
$DOC
$MAN"

# compare NAME EXPECTED ACTUAL: both newline-separated, paths without a leading "/" or "./"
compare() {
    local missing extra
    missing=$(comm -23 <(sort -u <<<"$2") <(sort -u <<<"$3"))
    extra=$(comm -13 <(sort -u <<<"$2") <(sort -u <<<"$3"))
    [ -z "$missing" ] || fail "$1 misses: $(echo $missing)"
    [ -z "$extra" ] || fail "$1 has files not on the expected list: $(echo $extra)"
    [ -n "$missing$extra" ] || echo "check-packages: $1 holds exactly the $(wc -l <<<"$2") expected files"
}

# --- .deb ----------------------------------------------------------------------------------
echo "== $DEB"
deb_files=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./||')
compare "the .deb" "$DEB_EXPECTED" "$deb_files"
dpkg-deb -c "$DEB" | grep -q ' \./usr/sbin/accountmapd$' && dpkg-deb -c "$DEB" | grep -q '^-rwxr-xr-x .* \./usr/sbin/accountmapd$' ||
    fail "the .deb: /usr/sbin/accountmapd is not mode 0755"

conffiles=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles 2>/dev/null || true)
for f in /etc/accountmap/accountmap.toml /etc/accountmap/accounts; do
    grep -qx "$f" <<<"$conffiles" || fail "the .deb: $f is not a conffile"
done
grep -q '^Default: no$' <(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./usr/share/pam-configs/accountmap) ||
    fail "the .deb: the pam-auth-update profile is not 'Default: no'"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$DEB" "$tmp/control"
rpm -qp --scripts "$RPM" >"$tmp/rpm-scripts"
for tag in POSTIN PREUN POSTUN; do
    rpm -qp --qf "%{$tag}" "$RPM" >"$tmp/rpm-$tag"
    [ -s "$tmp/rpm-$tag" ] || fail "the .rpm has no %{$tag} scriptlet"
done
for script in "$tmp"/control/{preinst,postinst,prerm,postrm} "$tmp"/rpm-{POSTIN,PREUN,POSTUN}; do
    [ -f "$script" ] || continue
    sh -n "$script" || fail "$(basename "$script"): shell syntax error"
done
for script in "$tmp"/control/{preinst,postinst,prerm,postrm} "$tmp/rpm-scripts"; do
    [ -f "$script" ] || continue
    # Reading /etc/pam.d is allowed (the removal guard greps it) and messages may name the
    # tools; changing PAM or NSS configuration is not: no PAM/NSS configuration tool run, no
    # write, move, copy, link or delete of /etc/pam.d or nsswitch.conf.
    if grep -vE '^[[:space:]]*(#|echo )' "$script" |
        grep -nE 'pam-auth-update|authselect|authconfig|(sed -i|perl -pi|>|tee|rm |mv |cp |ln |install ).*(/etc/pam\.d|nsswitch)'; then
        fail "$(basename "$script") changes PAM or NSS configuration"
    fi
done
grep -q 'deb-systemd-invoke \$_dh_action accountmapd.service' "$tmp/control/postinst" ||
    fail "the .deb's postinst does not start/restart accountmapd.service"
grep -q 'deb-systemd-invoke stop accountmapd.service' "$tmp/control/prerm" ||
    fail "the .deb's prerm does not stop accountmapd.service"

echo "== lintian $(basename "$DEB")"
# Exit status 0 unless lintian finds an error (its default --fail-on error).
if lintian --pedantic "$DEB" 2> >(grep -v 'running with root privileges' >&2); then
    echo "check-packages: lintian: no errors"
else
    fail "lintian reported errors"
fi

# --- .rpm ----------------------------------------------------------------------------------
echo "== $RPM"
rpm_files=$(rpm -qpl "$RPM" | sed 's|^/||')
compare "the .rpm" "$RPM_EXPECTED" "$rpm_files"
rpm_config=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM")
for f in /etc/accountmap/accountmap.toml /etc/accountmap/accounts; do
    grep -qE "^$f [a-z]*c[a-z]*n" <<<"$rpm_config" || fail "the .rpm: $f is not %config(noreplace)"
done
# The ELF files' newest glibc symbol version must be required (auto-req is off).
mkdir "$tmp/root"
rpm2archive - <"$RPM" | tar -xzf - -C "$tmp/root"
need_glibc=$(find "$tmp/root" -type f \( -name '*.so*' -o -perm -u+x \) -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
rpm -qpR "$RPM" | grep -qx "glibc >= $need_glibc" ||
    fail "the .rpm must require glibc >= $need_glibc (the newest GLIBC_ symbol its files use)"
grep -q 'systemctl enable --now accountmapd.service' "$tmp/rpm-scripts" ||
    fail "the .rpm's %post does not start accountmapd.service"
grep -q 'systemctl disable --now accountmapd.service' "$tmp/rpm-scripts" ||
    fail "the .rpm's %preun does not stop accountmapd.service"
echo "-- rpm -qpi"
rpm -qpi "$RPM"
echo "-- rpm -qp --requires"
rpm -qpR "$RPM"

if [ "$failed" -ne 0 ]; then
    echo "check-packages: FAILED" >&2
    exit 1
fi
echo "check-packages: both packages are complete"
