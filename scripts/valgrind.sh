#!/usr/bin/env bash
# The PAM and NSS modules under valgrind memcheck, inside the programs that load them in real
# life: pamtester (through pam_wrapper) and getent (through nss_wrapper), against a running
# accountmapd with made-up users, and with the daemon stopped. Fails on any memcheck error and
# on any leak ("definitely" or "indirectly lost") whose stack passes through accountmap's code;
# leaks of libpam, pam_wrapper, nss_wrapper or the C library are listed, not counted.
#
#   scripts/valgrind.sh        (`make valgrind` builds first; this script builds nothing)
# VALGRIND_KEEP=1 keeps the temporary directory with every valgrind log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# ACCOUNTMAP_ARTIFACT_DIR: where the built binaries are (as for the tests); default target/debug.
BIN=${ACCOUNTMAP_ARTIFACT_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
DAEMON=$BIN/accountmapd
PAM_MODULE=$BIN/libpam_accountmap.so
NSS_MODULE=$BIN/libnss_accountmap.so
LIBDIR=/usr/lib/x86_64-linux-gnu
PAM_WRAPPER_LIB=$LIBDIR/libpam_wrapper.so
NSS_WRAPPER_LIB=$LIBDIR/libnss_wrapper.so
for f in "$DAEMON" "$PAM_MODULE" "$NSS_MODULE"; do
    [[ -e $f ]] || { echo "valgrind.sh: $f is missing: run \`make valgrind\` (it builds first)" >&2; exit 1; }
done
for f in "$PAM_WRAPPER_LIB" "$NSS_WRAPPER_LIB" /usr/bin/pamtester /usr/bin/valgrind; do
    [[ -e $f ]] || { echo "valgrind.sh: $f is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/accountmap-valgrind.XXXXXX)
chmod 755 "$TMP"
SOCKET=$TMP/accountmapd.sock
daemon_pid=
cleanup() {
    if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [[ -n ${VALGRIND_KEEP:-} ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

cat >"$TMP/passwd" <<P
root:x:0:0:root:/root:/bin/bash
alice:x:1001:1001:Alice:/home/alice:/bin/bash
jdoe:x:1003:1003:John Doe:/home/jdoe:/bin/bash
mallory:x:1007:1007:Mallory:/home/mallory:/bin/bash
P
cat >"$TMP/group" <<G
root:x:0:
alice:x:1001:
jdoe:x:1003:
mallory:x:1007:
rstudio-users:x:2000:alice,jdoe,mallory
G
echo "John.Doe@Company.com = jdoe" >"$TMP/accounts"
cat >"$TMP/accountmap.toml" <<C
[daemon]
socket = "$SOCKET"
[access]
minimum_uid = 1000
required_groups = ["rstudio-users"]
denied_users = ["mallory"]
[mapping]
accounts_file = "$TMP/accounts"
C
mkdir "$TMP/pam.d"
cat >"$TMP/pam.d/vg" <<S
auth     requisite  $PAM_MODULE socket=$SOCKET timeout=5
account  required   $PAM_MODULE socket=$SOCKET timeout=5
session  required   $PAM_MODULE socket=$SOCKET
S
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' >"$TMP/pam.d/other"

start_daemon() {
    env LD_PRELOAD="$NSS_WRAPPER_LIB" NSS_WRAPPER_PASSWD="$TMP/passwd" NSS_WRAPPER_GROUP="$TMP/group" \
        "$DAEMON" --config "$TMP/accountmap.toml" --log-stderr 2>>"$TMP/daemon.log" &
    daemon_pid=$!
    for _ in $(seq 100); do [[ -S $SOCKET ]] && return 0; sleep 0.1; done
    echo "valgrind.sh: the daemon did not start:" >&2; cat "$TMP/daemon.log" >&2; exit 1
}

VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=none --track-origins=yes
    --child-silent-after-fork=yes --trace-children=yes)
n=0
failed=0
# run NAME EXPECT COMMAND… : valgrind COMMAND; its output must contain EXPECT ("": be empty).
run() {
    local name=$1 expect=$2; shift 2
    n=$((n + 1))
    local log=$TMP/vg-$n-$name.log out=$TMP/out-$n-$name.txt rc=0
    "${VG[@]}" --log-file="$log" "$@" >"$out" 2>&1 </dev/null || rc=$?
    local errors ours=0
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -n1)
    # Leak records ("N bytes in M blocks are definitely lost …" up to the blank line) whose
    # stack names accountmap code: the modules' objects or the crates' symbols.
    ours=$(awk '/are (definitely|indirectly) lost/ {rec=1; buf=""} rec {buf=buf $0 "\n"}
                rec && /^==[0-9]+== $/ {if (buf ~ /accountmap|pam_accountmap|nss_accountmap/) c++; rec=0}
                END {print c+0}' "$log")
    local leaks
    leaks=$(grep -E 'definitely lost:|indirectly lost:' "$log" | sed 's/^==[0-9]*== *//' | tr '\n' ' ')
    local verdict=ok
    if [[ $rc -eq 99 || ${errors:-0} -ne 0 ]]; then verdict="MEMCHECK ERRORS ($errors)"; failed=1; fi
    if [[ $ours -ne 0 ]]; then verdict="$verdict; LEAKS IN ACCOUNTMAP CODE ($ours)"; failed=1; fi
    if [[ -z $expect ]]; then
        [[ -s $out ]] && { verdict="$verdict; unexpected output (wanted none)"; failed=1; }
    elif ! grep -q -- "$expect" "$out"; then verdict="$verdict; unexpected output (wanted '$expect')"; failed=1; fi
    printf '%-34s errors=%-3s ours=%-2s %s | %s\n' "$name" "${errors:-?}" "$ours" "$verdict" "$leaks"
    if [[ $verdict != ok ]]; then sed -n '1,200p' "$log" | grep -v '^==[0-9]*== *$' | head -n 80; cat "$out"; fi
}

# The preloads go to the program under test only, not to valgrind's launcher: valgrind runs
# env(1), which sets them and execs the program; --trace-children follows the exec.
PAM_ENV=(env "LD_PRELOAD=$PAM_WRAPPER_LIB:$NSS_WRAPPER_LIB" PAM_WRAPPER=1 "PAM_WRAPPER_SERVICE_DIR=$TMP/pam.d"
    "NSS_WRAPPER_PASSWD=$TMP/passwd" "NSS_WRAPPER_GROUP=$TMP/group")
NSS_ENV=(env "LD_PRELOAD=$NSS_WRAPPER_LIB" "NSS_WRAPPER_PASSWD=$TMP/passwd" "NSS_WRAPPER_GROUP=$TMP/group"
    "NSS_WRAPPER_MODULE_SO_PATH=$NSS_MODULE" NSS_WRAPPER_MODULE_FN_PREFIX=accountmap
    "ACCOUNTMAP_SOCKET=$SOCKET")

echo "== valgrind $(valgrind --version | sed 's/valgrind-//'): the modules in pamtester and getent"
start_daemon
run pam-allowed "successfully authenticated" "${PAM_ENV[@]}" pamtester vg alice authenticate acct_mgmt open_session close_session
run pam-alias "successfully authenticated" "${PAM_ENV[@]}" pamtester vg John.Doe@Company.com authenticate acct_mgmt
run pam-denied "Authentication failure" "${PAM_ENV[@]}" pamtester vg mallory authenticate
run pam-unknown "User not known" "${PAM_ENV[@]}" pamtester vg nosuchuser acct_mgmt
run nss-alias "jdoe:x:1003" "${NSS_ENV[@]}" getent passwd John.Doe@Company.com
# The same alias again: answered from the daemon's shared-memory cache (passwd.cache).
run nss-alias-cached "jdoe:x:1003" "${NSS_ENV[@]}" getent passwd John.Doe@Company.com
run nss-local "alice:x:1001" "${NSS_ENV[@]}" getent passwd alice
run nss-unknown "" "${NSS_ENV[@]}" getent passwd nobody@nowhere.example
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
run pam-daemon-down "cannot retrieve authentication info" "${PAM_ENV[@]}" pamtester vg alice authenticate
run nss-daemon-down "" "${NSS_ENV[@]}" getent passwd John.Doe@Company.com
if [[ $failed -ne 0 ]]; then echo "valgrind.sh: FAILED"; exit 1; fi
echo "valgrind.sh: $n runs, no memcheck errors, no leaks in accountmap code"
