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
#
# Realistic rows (issue 16), after the module-alone table; BENCH_REALISTIC=0 skips them:
# - long-lived process, stacks of the RStudio profile's shape: the module (pam_succeed_if or
#   pam_accountmap, requisite) then pam_permit (`-permit`) or pam_unix (`-unix`, the password
#   hash in the nss_wrapper passwd file, no /etc/shadow) in both phases; policy-bench, 1 and 8
#   clients, BENCH_LONG_TRANSACTIONS (default 10000; BENCH_LONG_UNIX, default 2000, for the
#   pam_unix stacks) per stack and level;
# - a fresh process per sign-in: fresh-bench starts bench/fresh.c's helper (pam_start_confdir +
#   pam_authenticate + pam_acct_mgmt + pam_end, then exit) BENCH_FRESH (default 500) times per
#   stack and round, BENCH_FRESH_ROUNDS (default 5) interleaved rounds, 1 and 8 drivers;
# - the same while BENCH_BUSY (default 4; 0 skips) busy-loop processes (`bash -c 'while :; do
#   :; done'`, each under `timeout`, killed by PID at the end) keep both CPUs busy.
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
fresh=$target/release/fresh-bench
for f in "$daemon" "$module" "$bench" "$fresh"; do
    [[ -e $f ]] || { echo "run.sh: $f was not built" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/accountmap-bench.XXXXXX)
daemon_pid=
busy_pids=()
stop_busy() {
    local p
    for p in "${busy_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${busy_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    busy_pids=()
}
cleanup() {
    stop_busy
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
# Every user's password is pw-bench, its SHA-512 crypt hash (5000 rounds, the `$6$` default) in
# the passwd file's second field: pam_unix, run as root, checks it there without /etc/shadow.
password=pw-bench
hash=$(openssl passwd -6 -salt benchsalt "$password")
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
            echo "$name:$hash:$uid:$uid:Allowed $i:/home/$name:/bin/bash" >>"$passwd"
            echo "$name:x:$uid:" >>"$group"
            members+=("$name")
        else
            echo "$name:$hash:$uid:1500:Allowed $i:/home/$name:/bin/bash" >>"$passwd"
        fi
        echo "$name allow" >>"$users"
    done
    name=$(printf 'sys%03d' "$k"); uid=$((500 + k))   # in the group: only the uid refuses it
    echo "$name:$hash:$uid:1500:Low uid $k:/home/$name:/bin/bash" >>"$passwd"
    echo "$name deny-uid" >>"$users"
    name=$(printf 'other%03d' "$k"); uid=$((4000 + k))
    echo "$name:$hash:$uid:$uid:Not in group $k:/home/$name:/bin/bash" >>"$passwd"
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
# pam_accountmap gets fail_delay=0: by default its auth phase registers pam_unix's 2 s failure
# delay on every refusal (issue 13), which libpam sleeps at the end of pam_authenticate; a
# deliberate wait, not a cost, and pam_succeed_if registers none. A refusal also asks for the
# password once, for appearances (issue 13): policy-bench answers it (--password), as rserver
# would.
mkdir "$tmp/pam.d"
policy="quiet uid >= 1000 user ingroup rstudio-users"
cat >"$tmp/pam.d/policy-succeed-if" <<EOF
auth     required   pam_succeed_if.so $policy
account  required   pam_succeed_if.so $policy
EOF
cat >"$tmp/pam.d/policy-accountmap" <<EOF
auth     requisite  $module socket=$sock fail_delay=0
account  required   $module socket=$sock fail_delay=0
EOF

# The RStudio profile's shape (issue 16): the policy module, requisite, then pam_permit or
# pam_unix, in both phases. Same control flags for both stacks.
for shape in permit unix; do
    for m in "pam_succeed_if.so $policy:succeed-if" "$module socket=$sock fail_delay=0:accountmap"; do
        line=${m%:*} name=${m##*:}
        printf 'auth     requisite  %s\nauth     required   pam_%s.so\naccount  requisite  %s\naccount  required   pam_%s.so\n' \
            "$line" "$shape" "$line" "$shape" >"$tmp/pam.d/policy-$name-$shape"
    done
done

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
    --group rstudio-users --daemon-pid "$daemon_pid" --rss-pid "$daemon_pid" "${pin[@]}" \
    --password "$password" "$@" || rc=$?

# --- realistic rows (issue 16)
if [[ ${BENCH_REALISTIC:-1} != 0 && $rc -eq 0 ]]; then
    echo
    echo "== realistic: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for shape in permit unix; do
        # pam_unix's SHA-512 check (~2 ms here) dominates its rows: fewer transactions.
        long=${BENCH_LONG_TRANSACTIONS:-10000}
        [[ $shape == unix ]] && long=${BENCH_LONG_UNIX:-2000}
        echo "== policy-bench, long-lived process, the module then pam_$shape (both phases)"
        "${nss_env[@]}" "$bench" --confdir "$tmp/pam.d" --users "$users" --minimum-uid 1000 \
            --group rstudio-users --daemon-pid "$daemon_pid" --variant "-$shape" --password "$password" \
            --transactions "$long" --rounds 10 --warmup 500 --max-seconds 240 || rc=$?
    done
    # One job a line for fresh-bench: the verdict the helper must print, then its command.
    # PAM codes: 0 PAM_SUCCESS, 6 PAM_PERM_DENIED, 7 PAM_AUTH_ERR.
    cases=()
    for shape in permit unix; do
        for stack in succeed-if accountmap; do
            jobs=$tmp/fresh-$stack-$shape.jobs
            : >"$jobs"
            while read -r name expect; do
                case $expect:$stack in
                allow:*) want="0 0 " ;;
                *:succeed-if) want="7 7 " ;;
                *:accountmap) want="7 6 " ;;
                esac
                printf '%s\t@pam %s policy-%s-%s %s %s\n' "$want" "$tmp/pam.d" "$stack" "$shape" "$name" "$password" >>"$jobs"
            done <"$users"
            cases+=(--case "${stack/succeed-if/succeed_if}+$shape=$jobs")
        done
    done
    fresh_args=(--per-round "${BENCH_FRESH:-500}" --rounds "${BENCH_FRESH_ROUNDS:-5}" --clients 1,8
        --inner "start,auth,acct,end,main" --max-seconds 600)
    echo "== fresh-bench, a fresh process per sign-in, quiet machine"
    timeout -k 5 700 "${nss_env[@]}" "$fresh" "${fresh_args[@]}" "${cases[@]}" \
        --title "fresh process per sign-in (fork+exec of bench/fresh.c's helper, one transaction, exit), quiet machine" || rc=$?
    busy=${BENCH_BUSY:-4}
    if ((busy > 0)); then
        for _ in $(seq "$busy"); do
            timeout 900 bash -c 'while :; do :; done' &
            busy_pids+=($!)
        done
        sleep 5
        echo "== fresh-bench, a fresh process per sign-in, busy machine: $busy busy-loop processes on $(nproc) CPUs"
        timeout -k 5 700 "${nss_env[@]}" "$fresh" "${fresh_args[@]}" "${cases[@]}" \
            --title "the same, busy machine: $busy busy-loop processes (bash while-true loops) on $(nproc) CPUs" || rc=$?
        stop_busy
    fi
fi

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
