# %post of accountmap ($1: 1 = install, 2 = upgrade). Never edits /etc/pam.d,
# /etc/nsswitch.conf or authselect profiles. systemctl only when systemd is running.
ldconfig || :
# The system user accountmap-gate runs as (accountmap-gate.service, not enabled by the package).
if command -v getent >/dev/null 2>&1 && command -v useradd >/dev/null 2>&1; then
    getent passwd accountmap-gate >/dev/null || \
        useradd --system --user-group --no-create-home --home-dir / \
            --shell /sbin/nologin --comment "accountmap-gate web front" accountmap-gate || :
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now accountmapd.service >/dev/null 2>&1 || :
        if ! systemctl is-active --quiet accountmapd.service; then
            echo "accountmap: accountmapd.service is not running; see: systemctl status accountmapd" >&2
        fi
    fi
else
    # No systemd as PID 1 (a container, a chroot): nothing was started; say how.
    echo "accountmap: systemd is not running here (a container or a chroot?), so accountmapd was not started." >&2
    echo "accountmap: start it as root:  accountmapd --log-stderr >>/var/log/accountmapd.log 2>&1 &" >&2
    echo "accountmap: then check it:     accountmapctl status" >&2
    echo "accountmap: see /usr/share/doc/accountmap/README.md, \"Hosts without systemd\"." >&2
fi
