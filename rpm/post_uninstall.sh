# %postun of accountmap ($1: 0 = removal, 1 = upgrade): restart the daemon after an upgrade.
ldconfig || :
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart accountmapd.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    # The NSS cache file stays behind only when the daemon was killed (a clean stop removes it).
    rm -f /run/accountmap/passwd.cache
    rmdir /run/accountmap 2>/dev/null || :
    # Directories the package created but cannot own (see mapper_daemon/Cargo.toml); kept
    # when not empty (an administrator's drop-ins, secrets, or *.rpmsave copies).
    for d in /usr/share/doc/accountmap/examples/pam.d /usr/share/doc/accountmap/examples \
        /usr/share/doc/accountmap /etc/accountmap/conf.d /etc/accountmap; do
        rmdir "$d" 2>/dev/null || :
    done
fi
