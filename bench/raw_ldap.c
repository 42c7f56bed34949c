/* raw_ldap: the LDAP work one password sign-in needs, with nothing around it — the floor no PAM
 * stack can beat. Per sign-in: a search for the user by uid on one already-bound (anonymous)
 * connection, then a simple bind as the user's DN on a FRESH connection, which is then closed.
 * Built and run by bench/compare.sh:
 *
 *   cc -O2 -o raw_ldap bench/raw_ldap.c -lldap -llber
 *   raw_ldap URI BASE USERS_FILE COUNT MAX_SECONDS LABELS SLAPD_PID >> results.tsv
 *
 * USERS_FILE: `NAME PASSWORD allow|deny` lines; the allowed users are used in order (round
 * robin). Every bind must succeed, every search must find exactly one entry; otherwise exit 1.
 * Prints one row in compare-bench's TSV format; LABELS is "size" (the other labels are fixed).
 */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double proc_cpu(const char *pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long ut = 0, st = 0;
    /* after ')': state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static LDAP *connect_to(const char *uri) {
    LDAP *ld = NULL;
    int v3 = LDAP_VERSION3;
    if (ldap_initialize(&ld, uri) != LDAP_SUCCESS) return NULL;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    return ld;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: raw_ldap URI BASE USERS_FILE COUNT MAX_SECONDS SIZE SLAPD_PID\n");
        return 2;
    }
    const char *uri = argv[1], *base = argv[2];
    long count = atol(argv[4]);
    double max_seconds = atof(argv[5]);
    FILE *uf = fopen(argv[3], "r");
    if (!uf) { perror(argv[3]); return 2; }
    size_t cap = 1024, nusers = 0;
    char **names = malloc(cap * sizeof *names), **pws = malloc(cap * sizeof *pws);
    char name[512], pw[512], kind[16];
    while (fscanf(uf, "%511s %511s %15s", name, pw, kind) == 3) {
        if (strcmp(kind, "allow") != 0) continue;
        if (nusers == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
            pws = realloc(pws, cap * sizeof *pws);
        }
        names[nusers] = strdup(name);
        pws[nusers] = strdup(pw);
        nusers++;
    }
    fclose(uf);
    if (nusers == 0 || count <= 0) { fprintf(stderr, "raw_ldap: no users\n"); return 2; }

    LDAP *search = connect_to(uri);
    struct berval anon = {0, NULL};
    if (!search || ldap_sasl_bind_s(search, NULL, LDAP_SASL_SIMPLE, &anon, NULL, NULL, NULL) != LDAP_SUCCESS) {
        fprintf(stderr, "raw_ldap: cannot bind the search connection to %s\n", uri);
        return 1;
    }
    double *lat = malloc(count * sizeof *lat);
    char *attrs[] = {"1.1", NULL};
    char filter[600];
    long done = 0, errors = 0;
    double cpu0 = self_cpu(), slapd0 = proc_cpu(argv[7]);
    double t0 = now(), deadline = t0 + max_seconds;
    for (long i = 0; i < count; i++) {
        double s = now();
        if (s > deadline) break;
        const char *u = names[i % nusers];
        snprintf(filter, sizeof filter, "(&(objectClass=posixAccount)(uid=%s))", u);
        LDAPMessage *res = NULL;
        int rc = ldap_search_ext_s(search, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, NULL, 0, &res);
        LDAPMessage *e = rc == LDAP_SUCCESS ? ldap_first_entry(search, res) : NULL;
        if (!e || ldap_count_entries(search, res) != 1) {
            if (errors++ < 5) fprintf(stderr, "raw_ldap: search %s: %s\n", u, ldap_err2string(rc));
            if (res) ldap_msgfree(res);
            continue;
        }
        char *dn = ldap_get_dn(search, e);
        ldap_msgfree(res);
        LDAP *b = connect_to(uri);
        struct berval cred = {strlen(pws[i % nusers]), pws[i % nusers]};
        rc = b ? ldap_sasl_bind_s(b, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL) : -1;
        if (rc != LDAP_SUCCESS && errors++ < 5) fprintf(stderr, "raw_ldap: bind %s: %s\n", dn, ldap_err2string(rc));
        if (b) ldap_unbind_ext_s(b, NULL, NULL);
        ldap_memfree(dn);
        lat[done++] = (now() - s) * 1e6;
    }
    double secs = now() - t0;
    double cpu = self_cpu() - cpu0, slapd = proc_cpu(argv[7]) - slapd0;
    ldap_unbind_ext_s(search, NULL, NULL);
    /* A wrong password must be refused (checked once, not timed). */
    {
        LDAP *s = connect_to(uri);
        char dn[700];
        snprintf(dn, sizeof dn, "uid=%s,ou=People,%s", names[0], base);
        struct berval bad = {5, "wrong"};
        int rc = ldap_sasl_bind_s(s, dn, LDAP_SASL_SIMPLE, &bad, NULL, NULL, NULL);
        if (rc != LDAP_INVALID_CREDENTIALS) {
            fprintf(stderr, "raw_ldap: a wrong password was not refused: %s\n", ldap_err2string(rc));
            errors++;
        }
        ldap_unbind_ext_s(s, NULL, NULL);
    }
    if (done == 0) { fprintf(stderr, "raw_ldap: nothing measured\n"); return 1; }
    qsort(lat, done, sizeof *lat, cmp);
    double sum = 0;
    for (long i = 0; i < done; i++) sum += lat[i];
    long i50 = (done * 50 + 99) / 100 - 1, i99 = (done * 99 + 99) / 100 - 1;
    printf("%s\traw-ldap\tsignin\traw\t1\t-\t%ld\t%.4f\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t0.000\t%.3f\t%s\n",
           argv[6], done, secs, done / secs, lat[i50], lat[i99], sum / done, cpu, slapd,
           errors ? "ERRORS" : (done < count ? "capped" : "-"));
    fprintf(stderr, "raw_ldap: %ld search+bind in %.2f s = %.0f/s, p50 %.1f us, p99 %.1f us, %ld errors\n",
            done, secs, done / secs, lat[i50], lat[i99], errors);
    return errors ? 1 : 0;
}
