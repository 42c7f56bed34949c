#!/usr/bin/env bash
# make bench: accountmap against SSSD 2.8 and nslcd 0.9.12 (and pam_succeed_if for the policy
# alone), all against ONE slapd on loopback holding generated users, then docs/benchmarks.md
# and docs/benchmarks.png. Needs root: sssd and nslcd talk to pam_sss/pam_ldap over fixed
# sockets, and NSS is measured through the real /etc/nsswitch.conf.
#
# What it changes on the machine, and how it puts it back (bench/README.md, "make bench"):
#   - BEFORE installing anything, the files package scripts edit (EDITED_PATHS: pam-auth-update,
#     libnss-sss/libnss-ldapd's nsswitch.conf edits) are archived (or recorded as absent); AFTER
#     the install, the packages' own files the run changes (STATE_PATHS: nslcd.conf, sssd's
#     cache, …), so that they are put back as installed, not removed from under the packages.
#     All regular files under both are checksummed; at the end (EXIT trap, so also on failure
#     and Ctrl-C) each path is removed and unpacked again from its archive, and the checksums
#     are compared: a line "restore verified" or "RESTORE MISMATCH" is printed.
#   - apt-get installs the packages that are missing (with a temporary policy-rc.d so that no
#     service is started or enabled by the install).
#   - /etc/nslcd.conf (nslcd has no option for another file) and /etc/nsswitch.conf (passwd line
#     only, for the NSS measurements, restored right after each) are rewritten temporarily.
#   - sssd runs with -c on a config in the temporary directory; /var/lib/sss is restored.
#   - slapd, sssd, nslcd and accountmapd are started by this script and stopped by their PIDs.
#
# Knobs (environment):
#   BENCH_USERS=1000,50000   directory sizes, one run each
#   BENCH_SIGNINS=3000       measured warm sign-ins per case
#   BENCH_COLD=400           cold sign-ins per case (users never seen before, each once)
#   BENCH_LOOKUPS=20000      warm getpwnam calls per case
#   BENCH_STEP_TIMEOUT=240   wall-clock cap of every step (seconds)
#   BENCH_KEEP=1             keep the temporary directory (configs, logs, results)
#   BENCH_RESULTS=DIR        results directory (default target/bench-results)
#   BENCH_SKIP_INSTALL=1     do not call apt-get (fails when a package is missing)
#   BENCH_NO_DOCS=1          do not write docs/benchmarks.md and docs/benchmarks.png
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
started=$(date +%s)

SIZES=${BENCH_USERS:-1000,50000}
WARM=${BENCH_SIGNINS:-3000}
COLD=${BENCH_COLD:-400}
LOOKUPS=${BENCH_LOOKUPS:-20000}
STEP=${BENCH_STEP_TIMEOUT:-240}
PORT_BASE=${BENCH_PORT:-0}

PACKAGES=(sssd-ldap libpam-sss libnss-sss nslcd libpam-ldapd libnss-ldapd slapd ldap-utils
    libldap-dev libnss-wrapper libpam-wrapper gnuplot-nox)
# Files the package installs edit, snapshot before them (absent ones are removed again) ...
EDITED_PATHS=(/etc/nsswitch.conf /etc/pam.d /var/lib/pam /usr/sbin/policy-rc.d)
# ... and the packages' own files the run changes, snapshot after the install.
STATE_PATHS=(/etc/nslcd.conf /etc/sssd /etc/ldap /etc/default/nslcd /etc/default/slapd
    /var/lib/sss /var/lib/ldap /run/nslcd /var/log/sssd)
SNAP_PATHS=() # every path snapshot so far, restored by restore()

log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
die() { echo "compare.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (sssd, nslcd and NSS need the real system; see bench/README.md)"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
tmp=$(mktemp -d /tmp/accountmap-compare.XXXXXX)
chmod 755 "$tmp"
results=${BENCH_RESULTS:-$CARGO_TARGET_DIR/bench-results}
snap=$tmp/snapshot
mkdir -p "$snap"
: >"$snap/md5-before"

# ---------------------------------------------------------------- snapshot and restore
sums() { # sums PATH...: md5sum of every file under them, one line each, sorted by name
    local p
    for p in "$@"; do
        [[ -e $p ]] && find "$p" -xdev \( -type f -o -type l \) -print0 2>/dev/null
    done | sort -z | xargs -0 -r md5sum 2>/dev/null | grep -v '/run/nslcd/socket' || true
}
snapshot() { # snapshot PATH...: archive each (or record it absent), checksum, add to SNAP_PATHS
    local p i
    for p in "$@"; do
        i=${#SNAP_PATHS[@]}
        if [[ -e $p || -L $p ]]; then
            tar -C / -cpf "$snap/$i.tar" "${p#/}"
            echo present >"$snap/$i.state"
        else
            echo absent >"$snap/$i.state"
        fi
        SNAP_PATHS+=("$p")
    done
    local list
    list=$(sums "$@")
    [[ -z $list ]] || printf '%s\n' "$list" >>"$snap/md5-before"
    log "snapshot of $# paths ($(grep -c . <<<"$list" || true) files) in $snap"
}
snapshot "${EDITED_PATHS[@]}"

PIDS=()          # every daemon this script started, stopped by PID in stop_all
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
stop_all() {
    local p c
    for p in "${PIDS[@]}"; do
        [[ -n $p ]] || continue
        # sssd's monitor stops its children on SIGTERM; kill leftovers by their own PIDs.
        local kids
        kids=$(children_of "$p")
        stop_pid "$p"
        for c in $kids; do stop_pid "$c"; done
    done
    PIDS=()
}
restore() {
    local i=0 p
    for p in "${SNAP_PATHS[@]}"; do
        rm -rf "$p"
        if [[ $(cat "$snap/$i.state") == present ]]; then
            tar -C / -xpf "$snap/$i.tar"
        fi
        i=$((i + 1))
    done
    sums "${SNAP_PATHS[@]}" | sort >"$snap/md5-after"
    sort -o "$snap/md5-before" "$snap/md5-before"
    if cmp -s "$snap/md5-before" "$snap/md5-after"; then
        echo "restore verified: $(wc -l <"$snap/md5-after") files under ${SNAP_PATHS[*]} are byte-identical to the snapshot (md5sum)" >&2
        return 0
    fi
    echo "RESTORE MISMATCH:" >&2
    diff "$snap/md5-before" "$snap/md5-after" >&2 || true
    return 1
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_all
    [[ -n ${slapd_pid:-} ]] && stop_pid "$slapd_pid"
    restore || rc=1
    if [[ -n ${BENCH_KEEP:-} ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
    for p in $(pgrep -x sssd 2>/dev/null) $(pgrep -x nslcd 2>/dev/null); do
        echo "note: a $(cat /proc/$p/comm 2>/dev/null) (pid $p) is running that this script did not start" >&2
    done
    echo "compare.sh: total $(($(date +%s) - started)) s, exit $rc" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f '${Status}' "$p" 2>/dev/null || true) == 'install ok installed' ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ -z ${BENCH_SKIP_INSTALL:-} ]] || die "missing packages: ${missing[*]}"
    log "installing ${missing[*]}"
    made_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 apt-get update -qq
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    [[ -n $made_policy ]] && rm -f /usr/sbin/policy-rc.d
fi
# Debian's sssd package may leave a running sssd when systemd is present; ours must be alone.
for name in sssd nslcd; do
    if pgrep -x "$name" >/dev/null; then
        die "a $name is already running (pid $(pgrep -x "$name" | tr '\n' ' ')): stop it first, this script does not touch daemons it did not start"
    fi
done
snapshot "${STATE_PATHS[@]}"

nss_wrapper=
for f in /usr/lib/x86_64-linux-gnu/libnss_wrapper.so /usr/lib64/libnss_wrapper.so; do
    [[ -e $f ]] && nss_wrapper=$f && break
done
[[ -n $nss_wrapper ]] || die "libnss_wrapper.so not found"
secdir=/lib/x86_64-linux-gnu/security
[[ -e $secdir/pam_sss.so ]] || secdir=/usr/lib/x86_64-linux-gnu/security

# ---------------------------------------------------------------- build
log "building (release)"
timeout 1800 cargo build --release --workspace >&2
rel=$CARGO_TARGET_DIR/release
cb=$rel/compare-bench
cc -O2 -Wall -o "$tmp/raw_ldap" bench/raw_ldap.c -lldap -llber

rm -rf "$results"
mkdir -p "$results"
out=$results/results.tsv
: >"$results/memory.tsv"
echo "# the commands of this run (\$T = its temporary directory)" >"$results/commands.txt"
cmdlog() { echo "$*" | sed "s#$tmp#\$T#g" >>"$results/commands.txt"; }

free_port() { # a random port in 20000-59999 that nothing on 127.0.0.1 accepts connections on
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    die "no free port found"
}
wait_for() { # wait_for SECONDS TEST...
    local limit=$1; shift
    for _ in $(seq $((limit * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}
status_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status" 2>/dev/null || echo 0; }
memory() { # memory SIZE SYSTEM PID...
    local size=$1 system=$2; shift 2
    local p
    for p in "$@"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$system" "$(cat /proc/$p/comm)" "$p" \
            "$(status_kb "$p" VmRSS)" "$(status_kb "$p" VmHWM)" >>"$results/memory.tsv"
    done
}
set_passwd_line() { # the passwd: line of /etc/nsswitch.conf (restored by restore_nsswitch)
    sed -i "s/^passwd:.*/passwd:         $1/" /etc/nsswitch.conf
}
restore_nsswitch() { tar -C / -xpf "$snap/0.tar"; }

# ---------------------------------------------------------------- one directory size
run_size() {
    local size=$1
    local d=$tmp/s$size
    mkdir -p "$d/data"
    local base=dc=example,dc=test
    log "[$size] generating $size users"
    # Users u00000..: uid 10000+i; every 50th (i % 50 == 7) is NOT in benchusers (primary group
    # outsiders, not listed); the others have benchusers as primary group AND are listed as
    # memberUid. sys00..sys04: uid 900..904, in benchusers: refused for the uid alone.
    # Passwords: cleartext userPassword "pw-NAME" (the same scheme for everyone).
    awk -v n="$size" -v base="$base" -v PASSWD="$d/passwd.users" -v KINDS="$d/kinds" '
    BEGIN {
        printf "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n", base
        printf "dn: ou=People,%s\nobjectClass: organizationalUnit\nou: People\n\n", base
        printf "dn: ou=Groups,%s\nobjectClass: organizationalUnit\nou: Groups\n\n", base
        for (i = 0; i < n + 5; i++) {
            if (i < n) { name = sprintf("u%05d", i); uid = 10000 + i; out = (i % 50 == 7) }
            else { name = sprintf("sys%02d", i - n); uid = 900 + i - n; out = 0 }
            gid = out ? 5001 : 5000
            printf "dn: uid=%s,ou=People,%s\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n", name, base
            printf "uid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\nuidNumber: %d\ngidNumber: %d\n", name, name, name, name, uid, gid
            printf "homeDirectory: /home/%s\nloginShell: /bin/bash\nuserPassword: pw-%s\n\n", name, name
            print name ":x:" uid ":" gid ":" name ":/home/" name ":/bin/bash" > PASSWD
            if (!out) members[++m] = name
            print name, (i >= n ? "lowuid" : (out ? "outsider" : "allow")) > KINDS
        }
        printf "dn: cn=benchusers,ou=Groups,%s\nobjectClass: posixGroup\ncn: benchusers\ngidNumber: 5000\n", base
        for (j = 1; j <= m; j++) printf "memberUid: %s\n", members[j]
        printf "\ndn: cn=outsiders,ou=Groups,%s\nobjectClass: posixGroup\ncn: outsiders\ngidNumber: 5001\n\n", base
    }' >"$d/data.ldif"
    { echo "root:x:0:0:root:/root:/bin/bash"; echo "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"; cat "$d/passwd.users"; } >"$d/passwd"
    printf 'root:x:0:\nbenchusers:x:5000:\noutsiders:x:5001:\nnogroup:x:65534:\n' >"$d/group"

    # The user lists of the client. Allowed users are cut into disjoint slices: one for each
    # cold run (never seen by any system before), re-used by the warm runs; the NSS runs have
    # their own slices; the spare ones give the wrong-password refusals (2 new users per run,
    # so accountmap's brute-force brake, 5 free failures per account, never engages).
    awk '$2 == "allow" { print $1 }' "$d/kinds" >"$d/allowed"
    local nallow c1 c8 nslice
    nallow=$(wc -l <"$d/allowed")
    c1=$(( COLD < (nallow - 60) / 8 ? COLD : (nallow - 60) / 8 ))
    nslice=$c1
    # slices: 0 cold/warm x1, 1 cold/warm x8, 2 unpinned x1, 3..6 NSS cold, spares after 8
    awk -v n="$nslice" -v p="$d/slice." '{ s = int((NR - 1) / n); if (s < 8) print > (p sprintf("%02d", s)) }' "$d/allowed"
    spare_idx=0
    local refuse_out refuse_low
    refuse_out=$(awk '$2 == "outsider" && k++ < 3 { print $1 }' "$d/kinds")
    refuse_low=$(awk '$2 == "lowuid" && k++ < 3 { print $1 }' "$d/kinds")
    tail -n +$((8 * nslice + 1)) "$d/allowed" >"$d/spares"
    users_file() { # users_file SLICE: sets UF to a new users file: the slice + refusals
        # (not called in $(...): spare_idx must advance in this shell)
        local f=$d/users.$spare_idx
        awk '{ print $1, "pw-" $1, "allow" }' "$d/slice.$1" >"$f"
        for u in $refuse_out $refuse_low; do echo "$u pw-$u deny"; done >>"$f"
        sed -n "$((2 * spare_idx + 1)),$((2 * spare_idx + 2))p" "$d/spares" | awk '{ print $1, "wrong-" $1, "deny" }' >>"$f"
        spare_idx=$((spare_idx + 1))
        UF=$f
    }

    # ---- slapd
    local port
    port=$(free_port)
    cat >"$d/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $d/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "$base"
rootdn "cn=admin,$base"
directory $d/data
maxsize 4294967296
index objectClass,uid,mail,memberUid,member,uniqueMember,cn eq
access to attrs=userPassword by anonymous auth by * none
access to * by * read
EOF
    log "[$size] slapadd"
    timeout "$STEP" /usr/sbin/slapadd -q -f "$d/slapd.conf" -l "$d/data.ldif"
    cmdlog "slapadd -q -f \$T/s$size/slapd.conf -l \$T/s$size/data.ldif   # $size users"
    local try
    for try in 1 2 3; do
        port=$(free_port)
        /usr/sbin/slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 </dev/null >"$d/slapd.log" 2>&1 &
        slapd_pid=$!
        if wait_for 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
        echo "slapd (try $try, port $port) did not accept connections within 60 s: $(tail -3 "$d/slapd.log")" >&2
        stop_pid "$slapd_pid"
        slapd_pid=
    done
    [[ -n $slapd_pid ]] || die "slapd did not start"
    cmdlog "slapd -f \$T/s$size/slapd.conf -h ldap://127.0.0.1:PORT/ -d 0"
    local uri=ldap://127.0.0.1:$port
    log "[$size] slapd pid $slapd_pid on $uri"

    local common=(--out "$out" --slapd-pid "$slapd_pid" --max-seconds "$STEP")
    pam() { # pam SYSTEM PHASE CLIENTS PINNED SLICE CONFDIR SERVICE CPU_PIDS...
        local system=$1 phase=$2 clients=$3 pinned=$4 slice=$5 confdir=$6 service=$7; shift 7
        local count=$WARM extra=()
        [[ $phase == cold ]] && count=$nslice
        [[ $pinned == no ]] && extra+=(--unpinned)
        local cpu=() p
        for p in "$@"; do cpu+=(--cpu-pid "$p"); done
        users_file "$slice"
        local uf=$UF
        [[ $phase == warm ]] && extra+=(--warmup "$nslice")
        cmdlog "compare-bench pam --confdir $confdir --service $service --users $uf --threads $clients --count $count ${extra[*]}"
        timeout -k 5 $((STEP + 30)) "$cb" pam "${common[@]}" "${cpu[@]}" --confdir "$confdir" --service "$service" \
            --users "$uf" --threads "$clients" --count "$count" "${extra[@]}" \
            --label "size=$size" --label "system=$system" --label case=signin --label "phase=$phase" --label "pinned=$pinned" \
            || die "[$size] $system $phase x$clients pinned=$pinned: FAILED (see above)"
    }
    signins() { # signins SYSTEM CONFDIR SERVICE CPU_PIDS...
        local system=$1 confdir=$2 service=$3; shift 3
        pam "$system" cold 1 yes 00 "$confdir" "$service" "$@"
        pam "$system" cold 8 yes 01 "$confdir" "$service" "$@"
        pam "$system" warm 1 yes 00 "$confdir" "$service" "$@"
        pam "$system" warm 8 yes 01 "$confdir" "$service" "$@"
        pam "$system" warm 1 no 00 "$confdir" "$service" "$@"
    }
    nss() { # nss SYSTEM CASE SLICE QUERY_SUFFIX CPU_PIDS... (env: NSS_ENV)
        local system=$1 case=$2 slice=$3 suffix=$4; shift 4
        local cpu=() p
        for p in "$@"; do cpu+=(--cpu-pid "$p"); done
        awk -v s="$suffix" '{ print $1 s, $1 }' "$d/slice.$slice" >"$d/names.$system.$case"
        cmdlog "$(grep '^passwd:' /etc/nsswitch.conf) ; ${NSS_ENV[*]} compare-bench nss --names NAMES --cold ; ... --count $LOOKUPS"
        for phase in cold warm; do
            local flag=(--count "$LOOKUPS")
            [[ $phase == cold ]] && flag=(--cold --count "$nslice")
            timeout -k 5 $((STEP + 30)) env "${NSS_ENV[@]}" "$cb" nss "${common[@]}" "${cpu[@]}" --names "$d/names.$system.$case" "${flag[@]}" \
                --label "size=$size" --label "system=$system" --label "case=$case" --label "phase=$phase" \
                || { restore_nsswitch; die "[$size] NSS $system $case $phase FAILED"; }
        done
    }

    # ---- the raw LDAP floor
    log "[$size] raw LDAP search + fresh-connection bind"
    users_file 00
    local rawusers=$UF
    cmdlog "raw_ldap $uri $base USERS $WARM $STEP $size SLAPD_PID   # cc -O2 bench/raw_ldap.c -lldap -llber"
    timeout -k 5 $((STEP + 30)) "$tmp/raw_ldap" "$uri" "$base" "$rawusers" "$WARM" "$STEP" "$size" "$slapd_pid" >>"$out" \
        || die "[$size] raw_ldap failed"

    # ---- accountmap
    log "[$size] accountmap"
    local am=$d/accountmap sock=$d/accountmap/accountmapd.sock
    mkdir -p "$am/pam.d" "$am/nsslib"
    : >"$am/accounts"
    cat >"$am/accountmap.toml" <<EOF
[daemon]
socket = "$sock"

[access]
minimum_uid = 1000

[mapping]
accounts_file = "$am/accounts"

[[ldap]]
name = "bench"
server_address = ["127.0.0.1:$port"]
anonymous_bind = true
user_search_base_dn = "ou=People,$base"
user_object_class = "posixAccount"
username_attribute = "uid"
user_email_attribute = "mail"
whitelisted_login_groups = ["cn=benchusers,ou=Groups,$base"]
group_member_attribute = "memberUid"
EOF
    # The one required group is checked in the directory, as nslcd's pam_authz_search does:
    # whitelisted_login_groups, matched by memberUid (SSSD: ldap_schema = rfc2307). Without
    # group_search_base_dn the daemon reads no group names it would not use.
    printf 'auth     required  %s verify=ldap socket=%s\naccount  required  %s socket=%s\n' \
        "$rel/libpam_accountmap.so" "$sock" "$rel/libpam_accountmap.so" "$sock" >"$am/pam.d/bench-accountmap"
    ln -sf "$rel/libnss_accountmap.so" "$am/nsslib/libnss_accountmap.so.2"
    local nssw=(env "LD_PRELOAD=$nss_wrapper" "NSS_WRAPPER_PASSWD=$d/passwd" "NSS_WRAPPER_GROUP=$d/group")
    "${nssw[@]}" "$rel/accountmapd" --config "$am/accountmap.toml" --check >&2
    "${nssw[@]}" "$rel/accountmapd" --config "$am/accountmap.toml" </dev/null >"$am/accountmapd.log" 2>&1 &
    local am_pid=$!
    PIDS+=("$am_pid")
    cmdlog "LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_PASSWD=\$T/s$size/passwd NSS_WRAPPER_GROUP=\$T/s$size/group accountmapd --config \$T/s$size/accountmap/accountmap.toml"
    wait_for 20 test -S "$sock" || die "accountmapd did not start: $(tail -5 "$am/accountmapd.log")"
    "$rel/accountmapctl" --socket "$sock" cache flush >&2 || true
    cmdlog "accountmapctl --socket SOCK cache flush"
    signins accountmap "$am/pam.d" bench-accountmap "$am_pid"
    memory "$size" accountmap "$am_pid"
    # nss_wrapper keeps a parsed copy of the passwd and group files inside accountmapd, which a
    # daemon reading /etc/passwd through glibc would not. Its size: two idle daemons without
    # [[ldap]], one over these files and one over a 3-line passwd file, each after one lookup.
    printf 'root:x:0:0:root:/root:/bin/sh\nu00000:x:10000:5000::/home/u00000:/bin/sh\n' >"$am/tiny-passwd"
    printf 'root:x:0:\nbenchusers:x:5000:\n' >"$am/tiny-group"
    local base_kind files_pw files_gr base_pid base_dir
    for base_kind in full tiny; do
        if [[ $base_kind == full ]]; then files_pw=$d/passwd files_gr=$d/group; else files_pw=$am/tiny-passwd files_gr=$am/tiny-group; fi
        # A directory of its own: a daemon keeps its NSS cache file (passwd.cache) next to its
        # socket, and this one must not replace the measured daemon's.
        base_dir=$am/base-$base_kind
        mkdir -p "$base_dir"
        printf '[daemon]\nsocket = "%s"\n[access]\nminimum_uid = 1000\n' "$base_dir/accountmapd.sock" >"$base_dir/accountmap.toml"
        env "LD_PRELOAD=$nss_wrapper" "NSS_WRAPPER_PASSWD=$files_pw" "NSS_WRAPPER_GROUP=$files_gr" \
            "$rel/accountmapd" --config "$base_dir/accountmap.toml" </dev/null >"$base_dir/accountmapd.log" 2>&1 &
        base_pid=$!
        PIDS+=("$base_pid")
        wait_for 20 test -S "$base_dir/accountmapd.sock" || die "baseline accountmapd did not start"
        timeout 30 "$rel/accountmapctl" --socket "$base_dir/accountmapd.sock" resolve u00000 >/dev/null 2>&1 || true
        memory "$size" "accountmap-baseline-$base_kind" "$base_pid"
        stop_pid "$base_pid"
    done
    NSS_ENV=("LD_LIBRARY_PATH=$am/nsslib" "ACCOUNTMAP_SOCKET=$sock")
    set_passwd_line "files accountmap"
    nss accountmap nss-alias 03 "@example.test" "$am_pid"
    restore_nsswitch
    NSS_ENV=()
    stop_all

    # ---- SSSD
    log "[$size] sssd"
    local ss=$d/sssd
    mkdir -p "$ss/pam.d"
    sssd_conf() { # sssd_conf EXTRA_PAM_LINE
        cat >"$ss/sssd.conf" <<EOF
[sssd]
services = nss, pam
domains = bench

[nss]

[pam]
$1

[domain/bench]
id_provider = ldap
auth_provider = ldap
access_provider = simple
simple_allow_groups = benchusers
min_id = 1000
ldap_uri = $uri
ldap_search_base = $base
ldap_schema = rfc2307
ldap_id_use_start_tls = false
ldap_tls_reqcert = never
ldap_auth_disable_tls_never_use_in_production = true
EOF
        chmod 600 "$ss/sssd.conf"
    }
    printf 'auth     required  pam_sss.so\naccount  required  pam_sss.so\n' >"$ss/pam.d/bench-sssd"
    start_sssd() {
        rm -f /var/lib/sss/pipes/nss /var/lib/sss/pipes/pam /var/lib/sss/pipes/private/pam
        sssd -i -c "$ss/sssd.conf" --logger=stderr -d 0 </dev/null >>"$ss/sssd.log" 2>&1 &
        sssd_pid=$!
        PIDS+=("$sssd_pid")
        wait_for 30 test -S /var/lib/sss/pipes/pam -a -S /var/lib/sss/pipes/nss \
            || die "sssd did not start: $(tail -5 "$ss/sssd.log")"
        sleep 1
    }
    sssd_pids() { echo "$sssd_pid" $(children_of "$sssd_pid"); }
    # Cold: no cache at all (the snapshot of /var/lib/sss is restored at the end).
    rm -f /var/lib/sss/db/*.ldb /var/lib/sss/mc/*
    sssd_conf ""
    start_sssd
    cmdlog "sssd -i -c \$T/s$size/sssd/sssd.conf --logger=stderr   # after rm /var/lib/sss/db/*.ldb /var/lib/sss/mc/*"
    # shellcheck disable=SC2046
    signins sssd "$ss/pam.d" bench-sssd $(sssd_pids)
    local p
    for p in $(sssd_pids); do memory "$size" sssd "$p"; done
    NSS_ENV=()
    set_passwd_line "sss files"
    # shellcheck disable=SC2046
    nss sssd nss-sss-files 04 "" $(sssd_pids)
    set_passwd_line "files sss"
    # shellcheck disable=SC2046
    nss sssd nss-files-sss 05 "" $(sssd_pids)
    restore_nsswitch
    stop_all
    # The same, warm cache, with pam_initgroups_scheme = never (no /proc scan per request).
    sssd_conf "pam_initgroups_scheme = never"
    start_sssd
    cmdlog "sssd -i -c SSSD_CONF_WITH_pam_initgroups_scheme=never"
    # shellcheck disable=SC2046
    pam sssd-initgroups-never warm 1 yes 00 "$ss/pam.d" bench-sssd $(sssd_pids)
    # shellcheck disable=SC2046
    pam sssd-initgroups-never warm 8 yes 01 "$ss/pam.d" bench-sssd $(sssd_pids)
    stop_all

    # ---- nslcd
    log "[$size] nslcd"
    local nl=$d/nslcd
    mkdir -p "$nl/pam.d" /run/nslcd
    chown nslcd:nslcd /run/nslcd 2>/dev/null || true
    cat >/etc/nslcd.conf <<EOF
uid nslcd
gid nslcd
uri $uri/
base $base
ssl off
tls_reqcert never
nss_min_uid 1000
pam_authz_search (&(objectClass=posixGroup)(cn=benchusers)(memberUid=\$username))
EOF
    chmod 640 /etc/nslcd.conf
    chgrp nslcd /etc/nslcd.conf 2>/dev/null || true
    cp /etc/nslcd.conf "$nl/nslcd.conf.used"
    printf 'auth     required  pam_ldap.so minimum_uid=1000\naccount  required  pam_ldap.so minimum_uid=1000\n' >"$nl/pam.d/bench-nslcd"
    rm -f /run/nslcd/socket /run/nslcd/nslcd.pid
    nslcd -n </dev/null >"$nl/nslcd.log" 2>&1 &
    local nslcd_pid=$!
    PIDS+=("$nslcd_pid")
    cmdlog "nslcd -n   # /etc/nslcd.conf: $(grep -v '^uid\|^gid' /etc/nslcd.conf | tr '\n' ';')"
    wait_for 20 test -S /run/nslcd/socket || die "nslcd did not start: $(tail -5 "$nl/nslcd.log")"
    signins nslcd "$nl/pam.d" bench-nslcd "$nslcd_pid"
    memory "$size" nslcd "$nslcd_pid"
    set_passwd_line "files ldap"
    nss nslcd nss-user 06 "" "$nslcd_pid"
    restore_nsswitch
    stop_all
    tar -C / -xpf "$snap/3.tar" 2>/dev/null || rm -f /etc/nslcd.conf

    stop_pid "$slapd_pid"
    slapd_pid=
    log "[$size] done"
}

# ---------------------------------------------------------------- machine
{
    printf 'cpu\t%s\n' "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    printf 'cores\t%s (nproc %s)\n' "$(lscpu | sed -n 's/^CPU(s):[[:space:]]*//p' | head -n1)" "$(nproc)"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'Debian\t%s\n' "$(cat /etc/debian_version 2>/dev/null || echo unknown)"
    for p in sssd-common nslcd slapd libpam0g libc6; do
        printf '%s\t%s\n' "$p" "$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null || echo unknown)"
    done
    printf 'accountmap commit\t%s%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
        "$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    printf 'load average at start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'counts\twarm sign-ins %s per case, cold = users never seen (%s per case at most), NSS warm %s calls\n' "$WARM" "$COLD" "$LOOKUPS"
} >"$results/machine.tsv"

IFS=, read -r -a sizes <<<"$SIZES"
for s in "${sizes[@]}"; do
    run_size "$s"
done

# ---------------------------------------------------------------- policy only (policy-bench)
log "policy only: bench/run.sh (policy-bench, pam_succeed_if vs accountmap)"
cmdlog "bench/run.sh --transactions 5000 --rounds 5 --warmup 500 --max-seconds $STEP"
# run.sh's realistic rows (issue 16: stacks with pam_permit/pam_unix, fresh processes, a busy
# machine) follow its first table and take a few minutes more; they go to policy-realistic.md.
timeout -k 5 $((STEP + 1200)) env -u BENCH_KEEP -u BENCH_PIN -u BENCH_DAEMON_LOG bench/run.sh --transactions 5000 --rounds 5 --warmup 500 --max-seconds "$STEP" \
    >"$results/policy-bench.txt" || die "policy-bench failed: $(tail -5 "$results/policy-bench.txt")"
# clients stack txns us/txn txn/s p50 p99 max wrong cpu ...
awk '/^== realistic/ { exit }
$2 == "succeed_if" || $2 == "accountmap" {
    sys = ($2 == "succeed_if") ? "pam_succeed_if" : "accountmap"
    n = $3; secs = n / $5
    printf "-\t%s\tpolicy\twarm\t%d\t-\t%d\t%.4f\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t0.000\t0.000\tpolicy-bench\n", sys, $1, n, secs, $5, $6, $7, $4, $10 * n / 1e6
}' "$results/policy-bench.txt" >>"$out"
sed -n '/^== realistic/,$p' "$results/policy-bench.txt" >"$results/policy-realistic.md"
# The NSS rows of issue 16 (fresh processes: a miss, a repeated miss, a new name, an alias from
# the shared cache against a `files` hit), as `make bench-nss` prints them, go in the same section.
log "NSS: nss-cache-bench (fresh processes, glibc NSS in a private mount namespace)"
cmdlog "nss-cache-bench   # make bench-nss"
{
    echo "== nss-cache-bench (make bench-nss): getpwnam in one process and in fresh processes"
    timeout -k 5 $((STEP + 300)) env ACCOUNTMAP_ARTIFACT_DIR="$CARGO_TARGET_DIR/release" \
        cargo run --release -q -p accountmap-bench --bin nss-cache-bench
} >>"$results/policy-realistic.md" 2>"$results/nss-cache-bench.err" \
    || die "nss-cache-bench failed: $(tail -5 "$results/nss-cache-bench.err")"

printf 'duration of the run\t%s s (until the policy benchmark ended; restore follows)\n' "$(($(date +%s) - started))" >>"$results/machine.tsv"
if [[ -z ${BENCH_NO_DOCS:-} ]]; then
    "$cb" render --results "$results" --out docs/benchmarks.md --plot-data "$results/plot.dat"
    gnuplot <<EOF || echo "gnuplot failed: docs/benchmarks.png not written" >&2
set terminal pngcairo size 1400,700 noenhanced font ",10"
set output "docs/benchmarks.png"
set title "PAM password sign-in, p50 latency (µs, log scale); raw-ldap = search + fresh-connection bind floor"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "p50 µs"
set xtics rotate by -30
set key top left
set datafile missing "-"
plot for [i=2:6] "$results/plot.dat" using i:xtic(1) title columnheader(i)
EOF
    log "wrote docs/benchmarks.md and docs/benchmarks.png (results: $results)"
fi
