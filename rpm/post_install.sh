# %post of accountmap ($1: 1 = install, 2 = upgrade). Never edits /etc/pam.d,
# /etc/nsswitch.conf or authselect profiles. systemctl only when systemd is running.
ldconfig || :
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now accountmapd.service >/dev/null 2>&1 || :
    fi
fi
