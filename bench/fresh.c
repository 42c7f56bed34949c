/* fresh: what one sign-in helper process does, once, then exits (issue 16). fresh-bench runs it
 * N times, a new process each time, as rserver runs one `rserver-pam` per sign-in.
 *
 *   fresh pam CONFDIR SERVICE USER [PASSWORD]
 *       pam_start_confdir + pam_authenticate + pam_acct_mgmt + pam_end, like rserver-pam. The
 *       conversation answers an echo-off prompt with PASSWORD (none given: every prompt fails).
 *       Prints one line: `AUTH ACCT t_start t_auth t_acct t_end t_main`, the two return codes
 *       and the ns spent in each call, t_main = ns from main() to before pam_start (the
 *       process's own start-up after the loader is not in it).
 *   fresh getpwnam NAME WANT
 *       getpwnam(NAME), like `id NAME` or rserver's name canonicalisation. Prints `ok t_call`
 *       when it finds an entry whose pw_name is WANT (WANT `-`: when it finds none), else
 *       `wrong ...`.
 *
 * Exit status 0 when the calls ran (the verdict is checked by fresh-bench from the line), 2 on
 * a usage error. Compiled by bench/build.rs (cc -O2) twice: `fresh-pam` (-lpam, both modes) and
 * `fresh-nss` (-DFRESH_NSS_ONLY, no libpam: the getpwnam process loads only libc, as `id` would
 * load little more). */
#define _GNU_SOURCE
#include <pwd.h>
#ifndef FRESH_NSS_ONLY
#include <security/pam_appl.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#ifndef FRESH_NSS_ONLY
/* Linux-PAM >= 1.4; declared here so that older headers still compile the getpwnam mode. */
extern int pam_start_confdir(const char *service_name, const char *user,
                             const struct pam_conv *pam_conversation, const char *confdir,
                             pam_handle_t **pamh);

static int conversation(int n, const struct pam_message **msg, struct pam_response **resp,
                        void *data)
{
    const char *password = data;
    if (password == NULL || n <= 0 || n > PAM_MAX_NUM_MSG)
        return PAM_CONV_ERR;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
            r[i].resp = strdup(password);
            if (r[i].resp == NULL)
                goto fail;
        } else if (msg[i]->msg_style != PAM_TEXT_INFO && msg[i]->msg_style != PAM_ERROR_MSG) {
            goto fail;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
fail:
    for (int i = 0; i < n; i++)
        free(r[i].resp);
    free(r);
    return PAM_CONV_ERR;
}
#endif

int main(int argc, char **argv)
{
    long long t0 = now_ns();
#ifndef FRESH_NSS_ONLY
    if (argc >= 5 && strcmp(argv[1], "pam") == 0 && argc <= 6) {
        struct pam_conv conv = {conversation, argc == 6 ? argv[5] : NULL};
        pam_handle_t *pamh = NULL;
        long long t1 = now_ns();
        int rc = pam_start_confdir(argv[3], argv[4], &conv, argv[2], &pamh);
        long long t2 = now_ns();
        if (rc != PAM_SUCCESS || pamh == NULL) {
            printf("start-failed %d\n", rc);
            return 0;
        }
        int auth = pam_authenticate(pamh, 0);
        long long t3 = now_ns();
        int acct = pam_acct_mgmt(pamh, 0);
        long long t4 = now_ns();
        pam_end(pamh, acct);
        long long t5 = now_ns();
        printf("%d %d %lld %lld %lld %lld %lld\n", auth, acct, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
               t1 - t0);
        return 0;
    }
#else
    (void)t0;
#endif
    if (argc == 4 && strcmp(argv[1], "getpwnam") == 0) {
        long long t1 = now_ns();
        struct passwd *pw = getpwnam(argv[2]);
        long long t2 = now_ns();
        int want_none = strcmp(argv[3], "-") == 0;
        if ((pw == NULL && want_none) || (pw != NULL && !want_none && strcmp(pw->pw_name, argv[3]) == 0))
            printf("ok %lld\n", t2 - t1);
        else
            printf("wrong %s\n", pw == NULL ? "(none)" : pw->pw_name);
        return 0;
    }
    fprintf(stderr, "usage: fresh pam CONFDIR SERVICE USER [PASSWORD] | fresh getpwnam NAME WANT\n");
    return 2;
}
