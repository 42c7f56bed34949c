# %preun of accountmap ($1: 0 = removal, 1 = upgrade). Edits no PAM file, but refuses the
# removal while the system-wide stacks still name pam_accountmap.so: a "requisite" line naming
# a missing module fails every sign-in on the host, root's included.
if [ "$1" -eq 0 ]; then
    in_use=$(grep -ls '^[^#]*pam_accountmap\.so' /etc/pam.d/system-auth /etc/pam.d/password-auth \
        /etc/pam.d/fingerprint-auth /etc/pam.d/smartcard-auth || :)
    if [ -n "$in_use" ]; then
        echo "accountmap: not removed: $(echo $in_use) still use pam_accountmap.so, and without" >&2
        echo "accountmap: the module nobody could sign in. Remove those lines (or select an" >&2
        echo "accountmap: authselect profile without them), then remove the package again." >&2
        exit 1
    fi
    services=$(grep -ls '^[^#]*pam_accountmap\.so' /etc/pam.d/* || :)
    if [ -n "$services" ]; then
        echo "accountmap: warning: $(echo $services) still name pam_accountmap.so: those services" >&2
        echo "accountmap: refuse every sign-in until you remove the lines." >&2
    fi
    # Stop and disable the daemon.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now accountmapd.service >/dev/null 2>&1 || :
    fi
fi
