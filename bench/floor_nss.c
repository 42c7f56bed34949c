/* floor_nss: the least any NSS module can cost (issue 16). `libnss_amfloor.so.2` answers every
 * getpwnam with NOTFOUND at once: no file, no socket, no allocation. make bench-nss times a
 * fresh process whose getpwnam misses with `passwd: files amfloor` beside `passwd: files`, so
 * that the cost of loading *a* module (glibc's dlopen of a second source, which `files` alone,
 * built into libc, never pays) is measured on the same machine as libnss_accountmap's.
 * Built by bench/build.rs (cc -O2 -shared -fPIC). */
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <stddef.h>

enum nss_status _nss_amfloor_getpwnam_r(const char *name, struct passwd *result, char *buffer,
                                        size_t buflen, int *errnop)
{
    (void)name;
    (void)result;
    (void)buffer;
    (void)buflen;
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}
