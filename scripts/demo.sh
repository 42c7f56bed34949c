#!/usr/bin/env bash
# accountmap demo: start accountmapd on a temporary socket with made-up users, sign a handful of
# names in through a real PAM stack, and print for each the PAM verdict, the local account and
# the daemon's reason. Nothing on the host is changed: users come from nss_wrapper, the PAM
# stack from pam_wrapper, and everything lives in a temporary directory removed at the end.
#
# `make demo` builds first; this script builds nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
DAEMON=$BIN/accountmapd
CTL=$BIN/accountmapctl
MODULE=$BIN/libpam_accountmap.so
LIBDIR=/usr/lib/x86_64-linux-gnu
PAM_WRAPPER_LIB=$LIBDIR/libpam_wrapper.so
NSS_WRAPPER_LIB=$LIBDIR/libnss_wrapper.so

for f in "$DAEMON" "$CTL" "$MODULE"; do
    [ -e "$f" ] || { echo "demo: $f is missing: run \`make demo\` (it builds first)" >&2; exit 1; }
done
for f in "$PAM_WRAPPER_LIB" "$NSS_WRAPPER_LIB" /usr/bin/pamtester; do
    [ -e "$f" ] || { echo "demo: $f is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/accountmap-demo.XXXXXX)
chmod 755 "$TMP"
SOCKET=$TMP/accountmapd.sock
CONFIG=$TMP/accountmap.toml
DAEMON_PID=

cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# --- made-up users (nss_wrapper) ------------------------------------------------------------
cat >"$TMP/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
sysuser:x:500:500:a system account:/var/lib/sysuser:/bin/sh
alice:x:1001:1001:Alice:/home/alice:/bin/sh
bob:x:1002:1002:Bob:/home/bob:/bin/sh
jdoe:x:1003:1003:John Doe:/home/jdoe:/bin/sh
jsmith:x:1004:1004:Jane Smith:/home/jsmith:/bin/sh
rsuser24:x:1005:1005:shared RStudio account:/home/rsuser24:/bin/sh
carol:x:1006:2000:Carol:/home/carol:/bin/sh
mallory:x:1007:1007:Mallory:/home/mallory:/bin/sh
EOF
cat >"$TMP/group" <<'EOF'
root:x:0:
sysuser:x:500:
alice:x:1001:
bob:x:1002:
jdoe:x:1003:
jsmith:x:1004:
rsuser24:x:1005:
mallory:x:1007:
rstudio-users:x:2000:sysuser,alice,jdoe,jsmith,rsuser24,mallory
staff:x:2002:bob
EOF
cat >"$TMP/accounts" <<'EOF'
# external=local, as in /etc/rstudio/google-accounts
John.Doe@Company.com = jdoe
EOF

# --- config -----------------------------------------------------------------------------------
# The demo's policy, written over the shipped etc/accountmap.toml when there is one.
declare -A OVERRIDE=(
    [daemon.socket]="\"$SOCKET\""
    [daemon.cache_ttl]="0"
    [access.minimum_uid]="1000"
    [access.required_groups]='["rstudio-users"]'
    [access.denied_users]='["mallory"]'
    [mapping.lowercase]="true"
    [mapping.display_separator]='"/"'
    [mapping.accounts_file]="\"$TMP/accounts\""
    [mapping.rewrite]="['^UID-([a-z]+)\$ \$1', '^([a-z0-9._-]+)@company\\.com\$ \$1']"
)

inline_config() {
    for section in daemon access mapping; do
        echo "[$section]"
        for key in "${!OVERRIDE[@]}"; do
            [ "${key%%.*}" = "$section" ] && echo "${key#*.} = ${OVERRIDE[$key]}"
        done
        echo
    done
}

# Copies FILE, dropping the keys the demo sets (including multi-line arrays) and adding the
# demo's values at the top of their sections (or in new sections at the end).
config_from_shipped() {
    local overrides
    overrides=$(for key in "${!OVERRIDE[@]}"; do printf '%s\t%s\n' "$key" "${OVERRIDE[$key]}"; done)
    # (through the environment: awk -v would eat the backslashes of the rules)
    OVERRIDES=$overrides awk '
        BEGIN {
            n = split(ENVIRON["OVERRIDES"], rows, "\n")
            for (i = 1; i <= n; i++) {
                if (rows[i] == "") continue
                split(rows[i], kv, "\t")
                val[kv[1]] = kv[2]
                sec = kv[1]; sub(/\..*/, "", sec)
                secs[sec] = 1
            }
            section = ""
        }
        function flush(s,   k, name) {
            if (s in secs && !(s in done)) {
                for (k in val) {
                    name = k; sub(/^[^.]*\./, "", name)
                    if (index(k, s ".") == 1) print name " = " val[k]
                }
                done[s] = 1
            }
        }
        # a multi-line array ends at a line (not a comment) ending in "]"
        function closes(line) {
            return line !~ /^[ \t]*#/ && line ~ /\][ \t]*(#[^\047"]*)?$/
        }
        skipping {
            if (closes($0)) skipping = 0
            next
        }
        /^[ \t]*\[/ {
            section = $0
            gsub(/^[ \t]*\[+[ \t]*|[ \t]*\]+.*$/, "", section)
            print
            flush(section)
            next
        }
        /^[ \t]*[A-Za-z0-9_]+[ \t]*=/ {
            key = $0
            sub(/^[ \t]*/, "", key); sub(/[ \t]*=.*/, "", key)
            if ((section "." key) in val) {
                rest = $0; sub(/^[^=]*=[ \t]*/, "", rest)
                if (rest ~ /^\[/ && !closes(rest)) skipping = 1
                next
            }
        }
        { print }
        END {
            for (s in secs) if (!(s in done)) { print ""; print "[" s "]"; flush(s) }
        }
    ' "$1"
}

SHIPPED=$ROOT/etc/accountmap.toml
CONFIG_NOTE="inline demo config"
if [ -f "$SHIPPED" ]; then
    config_from_shipped "$SHIPPED" >"$CONFIG"
    CONFIG_NOTE="etc/accountmap.toml with the demo's socket and policy"
    if ! "$DAEMON" --check --config "$CONFIG" >/dev/null 2>"$TMP/check.err"; then
        echo "demo: the shipped config, adapted, did not validate; using an inline one:" >&2
        sed 's/^/  /' "$TMP/check.err" >&2
        inline_config >"$CONFIG"
        CONFIG_NOTE="inline demo config"
    fi
else
    inline_config >"$CONFIG"
fi
"$DAEMON" --check --config "$CONFIG" >/dev/null

# --- PAM service (pam_wrapper reads it from our directory) ------------------------------------
mkdir "$TMP/pam.d"
cat >"$TMP/pam.d/rstudio" <<EOF
auth     requisite  $MODULE socket=$SOCKET
account  required   $MODULE socket=$SOCKET
EOF

# --- start the daemon ------------------------------------------------------------------------
LD_PRELOAD=$NSS_WRAPPER_LIB NSS_WRAPPER_PASSWD=$TMP/passwd NSS_WRAPPER_GROUP=$TMP/group \
    "$DAEMON" --config "$CONFIG" --log-stderr 2>"$TMP/daemon.log" </dev/null &
DAEMON_PID=$!
ready=
for _ in $(seq 100); do
    if "$CTL" --socket "$SOCKET" status >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "demo: accountmapd did not start; its log:" >&2
    cat "$TMP/daemon.log" >&2
    exit 1
fi

cat <<EOF
accountmap demo
===============
accountmapd is running on $SOCKET
config: $CONFIG_NOTE, i.e.
  minimum uid 1000, required group rstudio-users, denied user mallory,
  accounts file: John.Doe@Company.com = jdoe,
  rewrite rules: '^UID-([a-z]+)\$ \$1' and '^([a-z0-9._-]+)@company\\.com\$ \$1'.
Made-up users: alice 1001, bob 1002 (not in rstudio-users), sysuser 500, jdoe 1003,
jsmith 1004, rsuser24 1005, carol 1006 (rstudio-users as primary group), mallory 1007.

Each name below signs in through a real PAM stack (pamtester, service "rstudio":
auth + account with pam_accountmap.so); ACCOUNT, RULE (which mapping step gave the
account) and REASON come from \`accountmapctl --json resolve NAME\`.

EOF

json_string() { # KEY < json: the value of a string field, unescaped enough for display
    sed -nE "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"(([^\"\\\\]|\\\\.)*)\".*/\\1/p" | head -n1 |
        sed -e 's/\\"/"/g' -e 's/\\\\/\\/g'
}

pam_verdict() {
    local out last
    out=$(LD_PRELOAD="$PAM_WRAPPER_LIB:$NSS_WRAPPER_LIB" PAM_WRAPPER=1 \
        PAM_WRAPPER_SERVICE_DIR="$TMP/pam.d" \
        NSS_WRAPPER_PASSWD="$TMP/passwd" NSS_WRAPPER_GROUP="$TMP/group" \
        timeout 20 pamtester rstudio "$1" authenticate acct_mgmt 2>&1 <<<"not-the-password") && {
        echo "allowed"
        return
    }
    # A refusal asks for the password too (README, "Timing"), so pamtester's verdict may
    # follow its "Password: " prompt on the same line.
    last=$(printf '%s\n' "$out" | grep 'pamtester: ' | tail -n1 | sed 's/^.*pamtester: //')
    case "$last" in
    "Authentication failure") echo "PAM_AUTH_ERR" ;;
    "Permission denied") echo "PAM_PERM_DENIED" ;;
    "User not known to the underlying authentication module") echo "PAM_USER_UNKNOWN" ;;
    "Authentication service cannot retrieve authentication info") echo "PAM_AUTHINFO_UNAVAIL" ;;
    *) echo "${last:-failed}" ;;
    esac
}

FORMAT="%-22s %-18s %-10s %-18s %s\n"
# shellcheck disable=SC2059
printf "$FORMAT" NAME "PAM VERDICT" ACCOUNT RULE REASON
# shellcheck disable=SC2059
printf "$FORMAT" ---- ----------- ------- ---- ------
for name in alice carol bob sysuser mallory John.Doe@Company.com UID-jsmith \
    jsmith@company.com rsuser24/jsmith ghost; do
    verdict=$(pam_verdict "$name")
    json=$("$CTL" --socket "$SOCKET" --json resolve "$name" 2>/dev/null || true)
    account=$(printf '%s' "$json" | json_string account)
    rule=$(printf '%s' "$json" | json_string rule | sed -E "s/^(rewrite rule [0-9]+) .*/\\1/")
    reason=$(printf '%s' "$json" | json_string reason)
    # shellcheck disable=SC2059
    printf "$FORMAT" "$name" "$verdict" "${account:--}" "${rule:--}" "${reason:--}"
done

cat <<EOF

The daemon logged one line per decision (verdict, name, account, rule, reason):
EOF
grep 'verdict=' "$TMP/daemon.log" | tail -n 4 | sed 's/^/  /' || true
echo
echo "Stopping accountmapd and removing $TMP."
