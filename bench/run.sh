#!/usr/bin/env bash
# The policy benchmark (issue 2): the same policy (uid >= 1000 and member of rstudio-users)
# through pam_succeed_if.so and through pam_accountmap.so + accountmapd, in full PAM
# transactions, 1 and 8 concurrent clients. Needs no root: users come from nss_wrapper, the PAM
# services from a private directory (pam_start_confdir).
#
#   bench/run.sh [policy-bench options, e.g. --transactions 50000]
#
# BENCH_KEEP=1 keeps the temporary directory (users, PAM services, daemon config and log).
# BENCH_DAEMON_LOG=1 also logs every daemon line to that directory's accountmapd.log (by default
# the daemon logs to syslog only, as in production; it costs the daemon one write per line).
# BENCH_PIN=1 keeps both modules loaded for the whole run (diagnostic: no per-transaction
# dlopen/dlclose of pam_succeed_if.so, which accountmap's nodelete module does not pay either).
# Exit status: policy-bench's (1 when any decision was wrong), or 1 when the setup fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

NSS_WRAPPER_SO=${NSS_WRAPPER_SO:-}
if [[ -z $NSS_WRAPPER_SO ]]; then
    for f in /usr/lib/x86_64-linux-gnu/libnss_wrapper.so /usr/lib64/libnss_wrapper.so \
        /usr/lib/libnss_wrapper.so; do
        [[ -e $f ]] && NSS_WRAPPER_SO=$f && break
    done
fi
[[ -n $NSS_WRAPPER_SO ]] || { echo "run.sh: libnss_wrapper.so not found (apt-get install libnss-wrapper)" >&2; exit 1; }
pam_dir=
for d in /usr/lib/x86_64-linux-gnu/security /usr/lib64/security /lib/x86_64-linux-gnu/security /lib/security; do
    [[ -e $d/pam_succeed_if.so ]] && pam_dir=$d && break
done
[[ -n $pam_dir ]] || { echo "run.sh: pam_succeed_if.so not found (apt-get install libpam-modules)" >&2; exit 1; }

echo "== building (release)" >&2
cargo build --release -p accountmap-daemon -p pam_accountmap -p accountmap-bench >&2
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target=${target:-$root/target}
daemon=$target/release/accountmapd
module=$target/release/libpam_accountmap.so
bench=$target/release/policy-bench
for f in "$daemon" "$module" "$bench"; do
    [[ -e $f ]] || { echo "run.sh: $f was not built" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/accountmap-bench.XXXXXX)
daemon_pid=
cleanup() {
    if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    if [[ -n ${BENCH_KEEP:-} ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- users: 300, interleaved 4 allowed : 1 uid < 1000 : 1 not in the group.
# Membership of rstudio-users (gid 1500) comes both ways: 40 allowed users are listed in the
# group file (supplementary), the other allowed users and the low-uid ones have it as their
# primary group. pam_succeed_if's `user ingroup` (Linux-PAM 1.5) and getgrouplist both count
# either way, so the stacks agree. The member list is kept short (~0.4 KiB): nss_wrapper 1.1.12's
# getgrgid_r returns -1/errno ERANGE instead of ERANGE for a short buffer, which accountmapd
# (1 KiB first buffer) takes for a failed lookup (PAM_AUTHINFO_UNAVAIL) when the entry is larger.
passwd=$tmp/passwd group=$tmp/group users=$tmp/users
{
    echo "root:x:0:0:root:/root:/bin/bash"
    echo "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"
} >"$passwd"
{
    echo "root:x:0:"
    echo "nogroup:x:65534:"
} >"$group"
: >"$users"
members=()
for k in $(seq 0 49); do
    for j in 0 1 2 3; do
        i=$((k * 4 + j)); name=$(printf 'allow%03d' "$i"); uid=$((2000 + i))
        if ((j == 0 && k < 40)); then
            echo "$name:x:$uid:$uid:Allowed $i:/home/$name:/bin/bash" >>"$passwd"
            echo "$name:x:$uid:" >>"$group"
            members+=("$name")
        else
            echo "$name:x:$uid:1500:Allowed $i:/home/$name:/bin/bash" >>"$passwd"
        fi
        echo "$name allow" >>"$users"
    done
    name=$(printf 'sys%03d' "$k"); uid=$((500 + k))   # in the group: only the uid refuses it
    echo "$name:x:$uid:1500:Low uid $k:/home/$name:/bin/bash" >>"$passwd"
    echo "$name deny-uid" >>"$users"
    name=$(printf 'other%03d' "$k"); uid=$((4000 + k))
    echo "$name:x:$uid:$uid:Not in group $k:/home/$name:/bin/bash" >>"$passwd"
    echo "$name:x:$uid:" >>"$group"
    echo "$name deny-group" >>"$users"
done
(IFS=,; echo "rstudio-users:x:1500:${members[*]}") >>"$group"
echo "staff:x:1600:$(printf 'other%03d,' $(seq 0 9) | sed 's/,$//')" >>"$group"

# --- the daemon
sock=$tmp/accountmapd.sock
: >"$tmp/accounts"
cat >"$tmp/accountmap.toml" <<EOF
[daemon]
socket = "$sock"

[access]
minimum_uid = 1000
required_groups = ["rstudio-users"]

[mapping]
accounts_file = "$tmp/accounts"
EOF

# --- the two PAM services, same policy
mkdir "$tmp/pam.d"
policy="quiet uid >= 1000 user ingroup rstudio-users"
cat >"$tmp/pam.d/policy-succeed-if" <<EOF
auth     required   pam_succeed_if.so $policy
account  required   pam_succeed_if.so $policy
EOF
cat >"$tmp/pam.d/policy-accountmap" <<EOF
auth     requisite  $module socket=$sock
account  required   $module socket=$sock
EOF

# pam_permit only: the driver's first transaction, so that libpam's first-use costs in the
# process fall on neither stack's "first transaction" sample.
printf 'auth     required   pam_permit.so\naccount  required   pam_permit.so\n' >"$tmp/pam.d/policy-warm"

nss_env=(env "LD_PRELOAD=$NSS_WRAPPER_SO" "NSS_WRAPPER_PASSWD=$passwd" "NSS_WRAPPER_GROUP=$group")

"${nss_env[@]}" "$daemon" --config "$tmp/accountmap.toml" --check >&2 \
    || { echo "run.sh: accountmapd --check refused the config" >&2; exit 1; }
log_flag=()
[[ -n ${BENCH_DAEMON_LOG:-} ]] && log_flag=(--log-stderr)
"${nss_env[@]}" "$daemon" --config "$tmp/accountmap.toml" "${log_flag[@]}" 2>"$tmp/accountmapd.log" &
daemon_pid=$!
for _ in $(seq 100); do
    [[ -S $sock ]] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ ! -S $sock ]]; then
    echo "run.sh: accountmapd did not create $sock within 10 s; its stderr:" >&2
    tail -n 20 "$tmp/accountmapd.log" >&2
    exit 1
fi

echo "== machine"
echo "cpus: $(nproc); cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "kernel: $(uname -sr); libpam: $(dpkg-query -W -f '${Version}' libpam0g 2>/dev/null || rpm -q pam 2>/dev/null || echo unknown)"
echo "rustc: $(rustc --version 2>/dev/null || echo unknown); commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "== policy-bench"
pin=()
[[ -n ${BENCH_PIN:-} ]] && pin=(--pin "$pam_dir/pam_succeed_if.so" --pin "$module")
rc=0
"${nss_env[@]}" "$bench" --confdir "$tmp/pam.d" --users "$users" --minimum-uid 1000 \
    --group rstudio-users --daemon-pid "$daemon_pid" --rss-pid "$daemon_pid" "${pin[@]}" "$@" || rc=$?

if kill -0 "$daemon_pid" 2>/dev/null; then
    echo "accountmapd peak RSS (VmHWM): $(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$daemon_pid/status")"
    kill -TERM "$daemon_pid"
    drc=0
    wait "$daemon_pid" || drc=$?
    daemon_pid=
    [[ $drc -eq 0 ]] || echo "note: accountmapd exited $drc on SIGTERM (SPEC: 0)"
    if [[ $rc -ne 0 ]]; then
        if [[ -n ${BENCH_DAEMON_LOG:-} ]]; then
            echo "accountmapd log, last lines other than allowed decisions:"
            grep -v 'verdict=allowed' "$tmp/accountmapd.log" | tail -n 10 || true
        else
            echo "(BENCH_DAEMON_LOG=1 bench/run.sh shows why the daemon answered as it did)"
        fi
    fi
else
    echo "accountmapd DIED during the run; its stderr:"
    tail -n 20 "$tmp/accountmapd.log"
    rc=1
fi
exit "$rc"
