/* dlcost: what loading a module costs (issue 16's diagnostics; not run by any make target).
 *
 *   cc -O2 -o dlcost bench/dlcost.c -ldl
 *   dlcost once SO...               dlopen(RTLD_NOW) each SO in turn in this (fresh) process;
 *                                   prints the ns each took. Run it many times and take the
 *                                   median: the first load of a module, as a sign-in helper pays.
 *   dlcost loop N TARGET [KEEP...]  dlopen each KEEP and keep it, then N times dlopen TARGET +
 *                                   dlclose it; prints the mean ns per pair (libpam's per-
 *                                   transaction load/unload of a module, with KEEP mapped).
 *
 *   dlcost nss SO SOURCE NAME       dlopen the NSS module SO (RTLD_NOW), then call its
 *                                   _nss_SOURCE_getpwnam_r(NAME) twice; prints the ns and the
 *                                   minor page faults of each step (`dlopen NS FAULTS call1 NS
 *                                   FAULTS call2 NS FAULTS`) and the status of each call: what
 *                                   a fresh process whose getpwnam reaches the module pays.
 *
 * E.g. `dlcost once /lib/x86_64-linux-gnu/libpam.so.0 target/release/libpam_accountmap.so`
 * (libpam first, as in a PAM host), `dlcost loop 3000 .../pam_permit.so
 * /lib/x86_64-linux-gnu/libpam.so.0 target/release/libpam_accountmap.so`. Exit 1 when a dlopen
 * fails (the message on stderr), 2 on a usage error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long minor_faults(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "loop") == 0) {
        int n = atoi(argv[2]);
        if (n <= 0 || n > 1000000)
            return 2;
        for (int i = 4; i < argc; i++) {
            if (dlopen(argv[i], RTLD_NOW) == NULL) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
            }
        }
        void *h = dlopen(argv[3], RTLD_NOW);
        if (h == NULL) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        dlclose(h);
        long long t0 = now_ns();
        for (int i = 0; i < n; i++) {
            h = dlopen(argv[3], RTLD_NOW);
            if (h == NULL)
                return 1;
            dlclose(h);
        }
        printf("%lld\n", (now_ns() - t0) / n);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "once") == 0) {
        for (int i = 2; i < argc; i++) {
            long long t0 = now_ns();
            void *h = dlopen(argv[i], RTLD_NOW);
            long long t1 = now_ns();
            if (h == NULL) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
            }
            printf("%lld ", t1 - t0);
        }
        printf("\n");
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "nss") == 0) {
        typedef int (*getpwnam_r_fn)(const char *, struct passwd *, char *, size_t, int *);
        char symbol[128];
        if (snprintf(symbol, sizeof symbol, "_nss_%s_getpwnam_r", argv[3]) >= (int)sizeof symbol)
            return 2;
        long f0 = minor_faults();
        long long t0 = now_ns();
        void *h = dlopen(argv[2], RTLD_NOW);
        long long t1 = now_ns();
        long f1 = minor_faults();
        if (h == NULL) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        getpwnam_r_fn call = (getpwnam_r_fn)dlsym(h, symbol);
        if (call == NULL) {
            fprintf(stderr, "%s: no %s\n", argv[2], symbol);
            return 1;
        }
        struct passwd pw;
        char buf[4096];
        int err = 0;
        long long t2 = now_ns();
        int s1 = call(argv[4], &pw, buf, sizeof buf, &err);
        long long t3 = now_ns();
        long f2 = minor_faults();
        int s2 = call(argv[4], &pw, buf, sizeof buf, &err);
        long long t4 = now_ns();
        long f3 = minor_faults();
        printf("dlopen %lld %ld call1 %lld %ld call2 %lld %ld status %d %d\n", t1 - t0, f1 - f0,
               t3 - t2, f2 - f1, t4 - t3, f3 - f2, s1, s2);
        return 0;
    }
    fprintf(stderr, "usage: dlcost once SO... | dlcost loop N TARGET [KEEP...] | dlcost nss SO "
                    "SOURCE NAME\n");
    return 2;
}
