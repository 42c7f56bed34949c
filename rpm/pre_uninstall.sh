# %preun of accountmap ($1: 0 = removal, 1 = upgrade): stop and disable the daemon on removal.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now accountmapd.service >/dev/null 2>&1 || :
fi
