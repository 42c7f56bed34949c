#!/usr/bin/env bash
# Installs the Debian packages accountmap's build, tests and demo need, only when missing:
#   pamtester, libpam-wrapper, libnss-wrapper  real PAM stacks with made-up users, no root setup
#   libpam0g-dev                                 links the PAM module
#   openssl                                      the reference recipe for proxy signatures
#   util-linux                                   setpriv (tests run a client as an unprivileged user),
#                                                unshare and su (the real-client suite)
#   openssh-server, openssh-client, sshpass      the real-client suite runs its own sshd on loopback
#                                                inside a private mount namespace and signs in with ssh;
#                                                the package's own ssh service is kept from starting
#                                                (policy-rc.d below); the host's sshd config is untouched
#   python3                                      the real-client suite answers su's prompt on a pty
#   python3-pamela                               ... and signs in as JupyterHub's PAMAuthenticator does
#   python3-venv                                 ... and JupyterHub's own PAMAuthenticator, from a
#                                                virtualenv (/opt/accountmap-test-venv, jupyterhub
#                                                pinned below, from PyPI; skipped when present)
#   slapd, ldap-utils                            the LDAP tests start their own slapd on loopback
#   samba-ad-dc, samba-ad-provision,             the Active Directory tests provision and start their
#   samba-dsdb-modules, winbind                  own Samba AD DC (samba-tool, samba) in a temporary
#                                                directory on loopback, ports 389/636; the packages'
#                                                services are kept from starting (policy-rc.d below)
#                                                and disabled; the host's /etc/samba is untouched
#   build-essential, pkg-config                  the C toolchain cargo links with
#   rpm, rpm2cpio, lintian                       inspect the built packages (make package)
#   binutils                                     strip (cargo-generate-rpm does not strip)
#   nodejs, npm (only when `node`/`npm` are missing: a NodeSource nodejs bundles npm)
#                                                the OIDC tests run a real OpenID Provider
#                                                (tests/oidc-provider, `npm ci` below; Node 18+)
#   valgrind                                     memcheck of the PAM and NSS modules (make valgrind)
#   nginx                                        the browser tests run their own nginx in front of
#                                                the gate, from a private nginx.conf; the package's
#                                                service is kept from starting (policy-rc.d below),
#                                                stopped and disabled
#   chromium, chromium-driver                    the browser tests drive a real headless Chromium
#                                                over WebDriver (chromedriver)
# then the cargo subcommands cargo-deb and cargo-generate-rpm (scripts/install-tools.sh).
# Runs `apt-get update` first when something is missing; uses sudo only when not root.
set -euo pipefail

# rustfmt and clippy: `make test` checks formatting and lints; a minimal rustup profile lacks them.
if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
            echo "install-deps: adding the Rust component $component"
            rustup component add "$component"
        fi
    done
fi

PACKAGES=(pamtester libpam-wrapper libnss-wrapper libpam0g-dev openssl util-linux build-essential pkg-config
    rpm rpm2cpio lintian binutils slapd ldap-utils valgrind openssh-server openssh-client sshpass python3
    python3-pamela python3-venv samba-ad-dc samba-ad-provision samba-dsdb-modules winbind nginx chromium
    chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
# By command, not by package: nodejs from NodeSource provides npm itself and conflicts with
# Debian's npm package.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

install_tools() {
    "$(dirname "$0")/install-tools.sh"
    install_oidc_provider
    install_jupyterhub
}

# JupyterHub for the real-client suite (tests/tests/real_clients.rs), in its own virtualenv
# from PyPI (Debian 12 has no jupyterhub package); nothing is reinstalled when the pinned
# version is there already.
JUPYTERHUB_VERSION=5.2.1
JUPYTERHUB_VENV=/opt/accountmap-test-venv
install_jupyterhub() {
    if [ "$("$JUPYTERHUB_VENV/bin/python" -c 'import jupyterhub; print(jupyterhub.__version__)' 2>/dev/null)" \
        = "$JUPYTERHUB_VERSION" ]; then
        return 0
    fi
    echo "install-deps: jupyterhub $JUPYTERHUB_VERSION into $JUPYTERHUB_VENV (pip, PyPI)"
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" /usr/bin/python3 -m venv "$JUPYTERHUB_VENV"
    "${sudo[@]}" "$JUPYTERHUB_VENV/bin/pip" install -q --disable-pip-version-check \
        "jupyterhub==$JUPYTERHUB_VERSION"
}

# The OIDC tests' provider, exactly as package-lock.json pins it, when not installed yet.
install_oidc_provider() {
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/oidc-provider"
    if [ ! -f "$dir/node_modules/oidc-provider/package.json" ] \
        || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "install-deps: npm ci in tests/oidc-provider"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all prerequisites present"
    install_tools
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
# The LDAP tests run their own slapd from a private slapd.conf; the package must not set up
# (and start) a system directory with a generated admin password. Preseeding
# slapd/no_configuration makes its postinst leave slapd unconfigured, so nothing listens.
if [[ " ${missing[*]} " == *" slapd "* ]] && command -v debconf-set-selections >/dev/null 2>&1; then
    echo "slapd slapd/no_configuration boolean true" | "${SUDO[@]}" debconf-set-selections
fi
# openssh-server's postinst starts the ssh service, nginx's starts nginx, samba's and winbind's
# start smbd, nmbd and winbind (samba-ad-dc's starts the DC when /etc/samba/smb.conf makes this
# host one): the suite starts its own sshd, nginx and Samba only, so a policy-rc.d that refuses
# every start (exit 101) is put in place for the install when there is none, and removed
# afterwards. (openssh-server still enables ssh.service for the next boot: `systemctl disable
# ssh` if this machine must not run one; the Samba and nginx services are disabled below.)
POLICY=/usr/sbin/policy-rc.d
own_policy=no
installing_samba=no
for pkg in samba-ad-dc samba-ad-provision samba-dsdb-modules winbind; do
    if [[ " ${missing[*]} " == *" $pkg "* ]]; then
        installing_samba=yes
    fi
done
installing_nginx=no
if [[ " ${missing[*]} " == *" nginx "* ]]; then
    installing_nginx=yes
fi
if { [[ " ${missing[*]} " == *" openssh-server "* ]] || [ "$installing_samba" = yes ] \
    || [ "$installing_nginx" = yes ]; } \
    && [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# accountmap install-deps: no service starts during this install\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    own_policy=yes
fi
remove_policy() {
    if [ "$own_policy" = yes ]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap remove_policy EXIT
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Samba tests need 127.0.0.1:389 and :636 (Samba cannot move them) and start their own DC
# from a private smb.conf: when this run installed Samba, any of its services that runs anyway
# (a policy-rc.d that allowed it, or systemd starting it) is stopped, and disabled for the next
# boot. A Samba that was installed before is left alone: the tests say who holds the ports.
stop_services() {
    local svc
    for svc in "$@"; do
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            "${SUDO[@]}" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            if command -v update-rc.d >/dev/null 2>&1; then
                "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
            fi
        fi
    done
}
if [ "$installing_samba" = yes ]; then
    stop_services samba-ad-dc smbd nmbd winbind
fi
# The same for nginx: the browser tests start their own on free loopback ports, and a system
# nginx left on port 80 serves nothing of ours.
if [ "$installing_nginx" = yes ]; then
    stop_services nginx
fi
install_tools
