/* bench_dist.c - log_prob throughput of the distribution library (issue:
 * distributions): Normal, Gamma, Beta, Poisson and Categorical log_prob on
 * 10^6 values (scalar parameters, values inside the support, no tape), the
 * median of REPS runs, in ns per element.  bench/dist_peers.py runs this
 * program and PyTorch / SciPy on the same workloads and prints the table.
 *
 * Build and run (from the repository root, after a CMake build in build/):
 *   gcc -O2 -std=gnu11 -Iinclude -Isrc/backend -Isrc/runtime -Istdlib bench/bench_dist.c \
 *       build/libppl.a -o /tmp/bench_dist -lopenblas -llapacke -lm -lpthread
 *   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/bench_dist
 * Output: one line per family, "name ns_per_element checksum". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dist.h"
#include "rng.h"

#define N 1000000
#define REPS 9
#define K 10

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The same inputs as dist_peers.py: values from a fixed-formula grid inside
 * each support, so both sides see identical numbers. */
static void fill(const char *fam, double *x) {
    for (int64_t i = 0; i < N; i++) {
        double u = ((double)i + 0.5) / N;   /* (0, 1) */
        if (strcmp(fam, "Normal") == 0) x[i] = 8 * u - 4;
        else if (strcmp(fam, "Gamma") == 0) x[i] = 10 * u;
        else if (strcmp(fam, "Beta") == 0) x[i] = u;
        else if (strcmp(fam, "Poisson") == 0) x[i] = (double)(i % 20);
        else x[i] = (double)(i % K);
    }
}

int main(void) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_set_grad_enabled(ctx, false);
    const char *fams[] = {"Normal", "Gamma", "Beta", "Poisson", "Categorical"};
    double *x = malloc(N * sizeof *x);
    int64_t n = N;
    for (int f = 0; f < 5; f++) {
        bk_tensor *p[2] = {NULL, NULL};
        int np = 2;
        if (f == 0) { p[0] = bk_scalar(ctx, 0.5); p[1] = bk_scalar(ctx, 1.5); }
        if (f == 1) { p[0] = bk_scalar(ctx, 2.5); p[1] = bk_scalar(ctx, 0.7); }
        if (f == 2) { p[0] = bk_scalar(ctx, 2.0); p[1] = bk_scalar(ctx, 3.5); }
        if (f == 3) { p[0] = bk_scalar(ctx, 7.5); np = 1; }
        if (f == 4) {
            double pr[K];
            for (int k = 0; k < K; k++) pr[k] = (k + 1.0) / (K * (K + 1) / 2.0);
            p[0] = bk_from_f64(ctx, 1, (int64_t[]){K}, pr);
            np = 1;
        }
        sl_dist *d = sl_dist_make(ctx, sl_find_family(fams[f]), 0, np, p);
        if (!d) {
            fprintf(stderr, "%s: %s\n", fams[f], bk_errmsg(ctx));
            return 1;
        }
        fill(fams[f], x);
        bk_tensor *xt = bk_from_f64(ctx, 1, &n, x);
        double t[REPS], check = 0;
        for (int r = 0; r < REPS + 1; r++) {
            double t0 = now();
            bk_tensor *lp = sl_log_prob(ctx, d, xt);
            double dt = now() - t0;
            if (!lp) {
                fprintf(stderr, "%s: %s\n", fams[f], bk_errmsg(ctx));
                return 1;
            }
            if (r > 0) t[r - 1] = dt * 1e9 / N;   /* the first run warms the caches */
            check = 0;
            for (int64_t i = 0; i < N; i += 1000) check += bk_get(lp, i);
            bk_release(lp);
        }
        qsort(t, REPS, sizeof *t, cmp);
        printf("%s %.3f %.12g\n", fams[f], t[REPS / 2], check);
        bk_release(xt);
        sl_dist_release(d);
        for (int i = 0; i < np; i++) bk_release(p[i]);
    }
    free(x);
    bk_ctx_free(ctx);
    return 0;
}
