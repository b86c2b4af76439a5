/* bench_ops.c - per-op costs of the tensor backend (issue: tensor backend):
 *   1. dispatch of one op on 1-element tensors, no tape;
 *   2. scalar reverse mode: forward + backward + tape reset, per scalar op,
 *      on the eager tape, and the same ops recorded once and replayed
 *      (program.h: the fast path of MCMC's gradients);
 *   3. elementwise exp / log / lgamma on 10^6 contiguous doubles against a
 *      plain C loop over the same array;
 *   4. a vectorized log density (Normal, 10^6 points) per element: the
 *      Normal family's log_prob (one fused kernel), forward alone and
 *      forward + backward (loc and scale as leaves), and for reference the
 *      same formula composed of five backend ops.
 * Times are CPU time of the benchmark thread (CLOCK_THREAD_CPUTIME_ID), so
 * other load on the machine counts less; medians of REPS runs.
 * Build (after building the library in build/) and run, from the
 * repository root:
 *   gcc -O2 -std=gnu11 -Isrc/backend -Isrc/runtime -Istdlib bench/bench_ops.c \
 *       build/libppl.a -o /tmp/bench_ops -lopenblas -llapacke -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 /tmp/bench_ops */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "dist.h"
#include "program.h"
#include "tensor.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

#define REPS 7

int main(void) {
    bk_ctx *c = bk_ctx_new(NULL);
    double t[REPS];

    /* 1. dispatch: a = a * b on 0-d tensors, grad off */
    bk_set_grad_enabled(c, false);
    bk_tensor *a = bk_scalar(c, 1.0), *b = bk_scalar(c, 1.0000001);
    const int N1 = 2000000;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (int i = 0; i < N1; i++) {
            bk_tensor *x = bk_mul(c, a, b);
            bk_release(a);
            a = x;
        }
        t[r] = (now() - t0) / N1 * 1e9;
    }
    printf("dispatch of one op on a 1-element tensor: %.1f ns (median of %d)\n", median(t, REPS), REPS);

    /* 2. scalar reverse mode: y = sum of 100 chained ops, backward, reset */
    bk_set_grad_enabled(c, true);
    bk_tensor *x = bk_scalar(c, 0.3);
    bk_set_requires_grad(x, true);
    const int N2 = 20000, OPS = 100;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (int i = 0; i < N2; i++) {
            bk_tensor *y = bk_retain(x);
            for (int k = 0; k < OPS / 2; k++) {
                bk_tensor *z = bk_mul(c, y, x);
                bk_tensor *w = bk_add(c, z, x);
                bk_release(y);
                bk_release(z);
                y = w;
            }
            bk_backward(c, y);
            bk_release(y);
            bk_tape_reset(c);
        }
        t[r] = (now() - t0) / ((double)N2 * OPS) * 1e9;
    }
    printf("scalar reverse mode (forward + backward + reset), eager tape: %.1f ns per op\n", median(t, REPS));

    /* 2b. the same chain recorded once (program.h) and replayed: forward +
     * reverse sweep on double buffers, per scalar op */
    bk_prog *prog = NULL;
    {
        if (bk_prog_begin(c)) return 1;
        bk_tensor *x0 = bk_scalar(c, 0.3);
        bk_set_requires_grad(x0, true);
        bk_prog_input(c, x0, 0);
        bk_tensor *y = bk_retain(x0);
        for (int k = 0; k < OPS / 2; k++) {
            bk_tensor *z = bk_mul(c, y, x0);
            bk_tensor *w = bk_add(c, z, x0);
            bk_release(y);
            bk_release(z);
            y = w;
        }
        prog = bk_prog_end(c, y, NULL, 0);
        bk_release(y);
        bk_release(x0);
        bk_tape_reset(c);
    }
    if (!prog || !bk_prog_native(prog)) {
        fprintf(stderr, "no native program\n");
        return 1;
    }
    double xin = 0.3, val = 0, gr = 0, sinkp = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (int i = 0; i < N2 * 10; i++) {
            bk_prog_run(prog, c, &xin, &val, &gr);
            sinkp += gr;
        }
        t[r] = (now() - t0) / ((double)N2 * 10 * OPS) * 1e9;
    }
    printf("scalar reverse mode, recorded program replayed (program.h): %.1f ns per op (grad %g)\n",
           median(t, REPS), sinkp / (REPS * N2 * 10));
    bk_prog_free(prog);
    bk_set_grad_enabled(c, false);

    /* 3. elementwise throughput vs a plain C loop */
    int64_t n = 1000000;
    bk_tensor *v = bk_empty(c, BK_F64, 1, &n);
    double *p = bk_data(v), *o = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = 0.5 + (double)i / (double)n;
    const int ops[3] = {BK_OP_EXP, BK_OP_LOG, BK_OP_LGAMMA};
    const char *names[3] = {"exp", "log", "lgamma"};
    for (int k = 0; k < 3; k++) {
        double tb[REPS], tc[REPS];
        for (int r = 0; r < REPS; r++) {
            double t0 = now();
            bk_tensor *y = bk_unop(c, ops[k], v);
            tb[r] = now() - t0;
            bk_release(y);
            t0 = now();
            for (int64_t i = 0; i < n; i++) o[i] = k == 0 ? exp(p[i]) : k == 1 ? log(p[i]) : lgamma(p[i]);
            tc[r] = now() - t0;
        }
        double mb = median(tb, REPS), mc = median(tc, REPS);
        printf("%-6s 10^6 elements: backend %.2f ns/elt, plain C loop %.2f ns/elt, ratio %.2f (sink %g)\n", names[k],
               mb / n * 1e9, mc / n * 1e9, mb / mc, o[n / 2]);
    }

    /* 4. Normal log density, vectorized: the family's log_prob (fused) */
    bk_tensor *mu = bk_scalar(c, 0.7), *s = bk_scalar(c, 1.3);
    sl_dist *nd = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){mu, s});
    if (!nd) {
        fprintf(stderr, "Normal: %s\n", bk_errmsg(c));
        return 1;
    }
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        bk_tensor *lp = sl_log_prob(c, nd, v);
        t[r] = (now() - t0) / n * 1e9;
        bk_release(lp);
    }
    printf("Normal log density, vectorized (fused log_prob): %.2f ns per element\n", median(t, REPS));
    sl_dist_release(nd);
    bk_set_grad_enabled(c, true);
    bk_set_requires_grad(mu, true);
    bk_set_requires_grad(s, true);
    nd = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){mu, s});
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        bk_tensor *lp = sl_log_prob(c, nd, v);
        bk_tensor *tot = bk_sum_all(c, lp);
        bk_backward(c, tot);
        bk_release(lp);
        bk_release(tot);
        bk_tape_reset(c);
        t[r] = (now() - t0) / n * 1e9;
    }
    printf("Normal log density, forward + backward (d/dloc %.6g, d/dscale %.6g): %.2f ns per element\n",
           bk_item(mu->grad), bk_item(s->grad), median(t, REPS));
    sl_dist_release(nd);
    bk_set_grad_enabled(c, false);
    /* the same formula as five separate ops: -((x - mu) / s)^2 / 2 - log s - log sqrt(2 pi) */
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        bk_tensor *d = bk_sub(c, v, mu);
        bk_tensor *z = bk_div(c, d, s);
        bk_tensor *z2 = bk_mul(c, z, z);
        bk_tensor *h = bk_mul_s(c, z2, -0.5);
        bk_tensor *lp = bk_add_s(c, h, -log(1.3) - 0.91893853320467274);
        t[r] = (now() - t0) / n * 1e9;
        bk_release(d);
        bk_release(z);
        bk_release(z2);
        bk_release(h);
        bk_release(lp);
    }
    printf("Normal log density as 5 separate ops (reference): %.2f ns per element\n", median(t, REPS));
    bk_release(a);
    bk_release(b);
    bk_release(x);
    bk_release(v);
    bk_release(mu);
    bk_release(s);
    free(o);
    bk_ctx_free(c);
    return 0;
}
