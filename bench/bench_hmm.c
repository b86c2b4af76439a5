/* bench_hmm.c - exact HMM inference in ppl (issue: HMM): ns per time step of
 * the forward algorithm (DiscreteHMM.log_prob), its gradient (log_prob +
 * backward: what NUTS and SVI pay), forward-backward (hmm_marginals) and
 * Viterbi (hmm_viterbi), and seconds per Baum-Welch iteration, against a
 * plain C scaled-forward loop (the roofline: alpha <- (alpha A) .* E[:, y_t],
 * renormalized, with the emission table E in probability space), written
 * with scalar loops and with one BLAS dgemv per step; ratio_forward_to_
 * best_plain compares with the faster of the two.
 *
 * K states in {2, 3, 8, 32, 64, 256}, Categorical emissions over V = 10
 * symbols, random parameters; one long sequence (T = 10^5; 10^4 for K = 256)
 * and a batch of 50 sequences of 100 (one batched DiscreteHMM with lengths=).
 * Medians of 9 runs (5 for K >= 64), the measures interleaved within each
 * run; ratio_forward_to_plain is the median of the per-run ratios.  Build
 * and run: bench/bench_hmm.sh.
 * The parallel-scan forward (bk_hmm_forward_scan, 2 and 4 threads) is timed
 * in wall time on the long sequence, next to the sequential op's wall time.
 * Output: one line per (K, shape, measure), "name K shape value unit";
 * ratio_bw_iter_to_forward is the median over the runs of one Baum-Welch
 * iteration's time over the same run's forward time.
 * usage: bench_hmm [K [bw]]: one K; "bw": only the plain loops, the forward
 * and Baum-Welch (no gradient, forward-backward, Viterbi or scan). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "dist.h"
#include "hmm.h"
#include "ops_hmm.h"
#include "rng.h"
#include "vm.h"

#define V 10

/* CPU time of this thread: the benchmark machine is shared, and a thread
 * that waits for a core is not charged (one thread: OPENBLAS_NUM_THREADS=1). */
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
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void simplex(bk_rng *r, double *p, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += p[i] = 0.1 + bk_rng_uniform(r);
    for (int i = 0; i < n; i++) p[i] /= s;
}

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------ plain C roofline --- */

static double plain_forward(int K, int64_t T, const double *restrict pi,
                            const double *restrict A, const double *restrict E,
                            const double *restrict y, double *restrict a, double *restrict p) {
    double ll = 0;
    int v0 = (int)y[0];
    double tot = 0;
    for (int k = 0; k < K; k++) tot += a[k] = pi[k] * E[k * V + v0];
    for (int k = 0; k < K; k++) a[k] /= tot;
    ll += log(tot);
    for (int64_t t = 1; t < T; t++) {
        int v = (int)y[t];
        for (int j = 0; j < K; j++) p[j] = 0;
        for (int i = 0; i < K; i++) {
            double ai = a[i];
            const double *Ai = A + i * K;
            for (int j = 0; j < K; j++) p[j] += ai * Ai[j];
        }
        tot = 0;
        for (int j = 0; j < K; j++) tot += a[j] = p[j] * E[j * V + v];
        double inv = 1.0 / tot;
        for (int j = 0; j < K; j++) a[j] *= inv;
        ll += log(tot);
    }
    return ll;
}

/* The same loop with the prediction as one BLAS dgemv: the roofline for
 * large K, where the scalar loop above is far from the machine's speed. */
static double plain_forward_blas(int K, int64_t T, const double *restrict pi,
                                 const double *restrict A, const double *restrict E,
                                 const double *restrict y, double *restrict a,
                                 double *restrict p) {
    double ll = 0, tot = 0;
    int v0 = (int)y[0];
    for (int k = 0; k < K; k++) tot += a[k] = pi[k] * E[k * V + v0];
    for (int k = 0; k < K; k++) a[k] /= tot;
    ll += log(tot);
    for (int64_t t = 1; t < T; t++) {
        int v = (int)y[t];
        cblas_dgemv(CblasRowMajor, CblasTrans, K, K, 1.0, A, K, a, 1, 0.0, p, 1);
        tot = 0;
        for (int j = 0; j < K; j++) tot += a[j] = p[j] * E[j * V + v];
        double inv = 1.0 / tot;
        for (int j = 0; j < K; j++) a[j] *= inv;
        ll += log(tot);
    }
    return ll;
}

/* ------------------------------------------------------ ppl calls --- */

static int call(rt_vm *vm, const char *name, int nargs, rt_value *args, int nkw,
                const char **kwn, rt_value *kwv, rt_value *out) {
    rt_loc loc[8];
    memset(loc, 0, sizeof loc);
    rt_call c;
    memset(&c, 0, sizeof c);
    c.nargs = nargs, c.args = args, c.argloc = loc, c.nkw = nkw, c.kwnames = kwn, c.kwargs = kwv;
    c.kwloc = loc, c.name = name, c.self = rt_none();
    for (int i = 0; inf_hmm_builtins[i].name; i++)
        if (strcmp(inf_hmm_builtins[i].name, name) == 0) return inf_hmm_builtins[i].fn(vm, &c, out);
    return -1;
}

typedef struct setup {
    int K;
    int64_t B, T;          /* B = 0: one sequence of T */
    double *pi, *A, *E, *y;
    bk_tensor *tpi, *tA, *tE, *ty, *tlen;
    sl_dist *em, *h;
} setup;

static void setup_make(bk_ctx *ctx, bk_rng *r, setup *s, int K, int64_t B, int64_t T) {
    memset(s, 0, sizeof *s);
    s->K = K, s->B = B, s->T = T;
    int64_t n = (B ? B : 1) * T;
    s->pi = malloc(K * sizeof(double));
    s->A = malloc((size_t)K * K * sizeof(double));
    s->E = malloc((size_t)K * V * sizeof(double));
    s->y = malloc((size_t)n * sizeof(double));
    simplex(r, s->pi, K);
    for (int i = 0; i < K; i++) simplex(r, s->A + i * K, K);
    for (int i = 0; i < K; i++) simplex(r, s->E + i * V, V);
    /* observations from the model itself */
    for (int64_t b = 0; b < (B ? B : 1); b++) {
        int z = (int)bk_rng_categorical(r, K, s->pi);
        for (int64_t t = 0; t < T; t++) {
            if (t) z = (int)bk_rng_categorical(r, K, s->A + z * K);
            s->y[b * T + t] = (double)bk_rng_categorical(r, V, s->E + z * V);
        }
    }
    s->tpi = bk_from_f64(ctx, 1, (int64_t[]){K}, s->pi);
    s->tA = bk_from_f64(ctx, 2, (int64_t[]){K, K}, s->A);
    s->tE = bk_from_f64(ctx, 2, (int64_t[]){K, V}, s->E);
    s->ty = B ? bk_from_f64(ctx, 2, (int64_t[]){B, T}, s->y) : bk_from_f64(ctx, 1, (int64_t[]){T}, s->y);
    s->em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &s->tE);
    if (B) {
        s->tlen = bk_full(ctx, BK_F64, 1, (int64_t[]){B}, (double)T);
        s->h = sl_hmm_make_batch(ctx, s->tpi, s->tA, s->em, 0, -1, s->tlen);
    } else {
        s->h = sl_hmm_make(ctx, s->tpi, s->tA, s->em, 0, -1);
    }
    if (!s->h) {
        fprintf(stderr, "bench_hmm: %s\n", bk_errmsg(ctx));
        exit(1);
    }
}

static void setup_free(setup *s) {
    sl_dist_release(s->h);
    sl_dist_release(s->em);
    bk_release(s->tpi);
    bk_release(s->tA);
    bk_release(s->tE);
    bk_release(s->ty);
    bk_release(s->tlen);
    free(s->pi);
    free(s->A);
    free(s->E);
    free(s->y);
}

static double total_lp(bk_tensor *lp) {
    double v = 0;
    for (int64_t i = 0; i < lp->numel; i++) v += bk_get(lp, i);
    return v;
}

enum { M_PLAIN, M_PLAIN_BLAS, M_FORWARD, M_GRAD, M_FB, M_VITERBI, M_BW, M_COUNT };
static const char *const MNAME[M_COUNT] = {"plain_c_forward", "plain_c_forward_blas",
                                           "ppl_forward", "ppl_forward_grad",
                                           "ppl_forward_backward", "ppl_viterbi",
                                           "ppl_baum_welch_iter"};

/* One timed run of measure m; returns seconds.  *check receives log p(y). */
static double run_once(rt_vm *vm, setup *s, int m, double *check) {
    bk_ctx *ctx = rt_vm_bk(vm);
    int64_t nb = s->B ? s->B : 1;
    double t0 = now(), ll = 0;
    switch (m) {
    case M_PLAIN:
    case M_PLAIN_BLAS: {
        double *a = malloc(s->K * sizeof(double)), *p = malloc(s->K * sizeof(double));
        t0 = now();
        for (int64_t b = 0; b < nb; b++)
            ll += (m == M_PLAIN ? plain_forward : plain_forward_blas)(s->K, s->T, s->pi, s->A,
                                                                      s->E, s->y + b * s->T, a, p);
        double dt = now() - t0;
        free(a);
        free(p);
        *check = ll;
        return dt;
    }
    case M_FORWARD: {
        bool g = bk_set_grad_enabled(ctx, false);
        bk_tensor *lp = sl_log_prob(ctx, s->h, s->ty);
        bk_set_grad_enabled(ctx, g);
        *check = total_lp(lp);
        bk_release(lp);
        break;
    }
    case M_GRAD: {
        bool g = bk_set_grad_enabled(ctx, true);
        bk_set_requires_grad(s->tA, true);
        bk_set_requires_grad(s->tE, true);
        bk_tensor *lp = sl_log_prob(ctx, s->h, s->ty);
        bk_tensor *tot = bk_sum_all(ctx, lp);
        *check = bk_item(tot);
        if (bk_backward(ctx, tot)) fprintf(stderr, "backward: %s\n", bk_errmsg(ctx));
        if (!s->tA->grad || !s->h->sub[0]->p[0]->grad) fprintf(stderr, "bench_hmm: no gradient\n");
        bk_release(tot);
        bk_release(lp);
        bk_tape_reset(ctx);
        bk_zero_grad(s->tA);
        bk_zero_grad(s->tE);
        bk_set_requires_grad(s->tA, false);
        bk_set_requires_grad(s->tE, false);
        bk_set_grad_enabled(ctx, g);
        break;
    }
    case M_FB:
    case M_VITERBI: {
        rt_value args[2] = {rt_obj_value(&s->h->h), rt_tensor(s->ty)}, out;
        if (call(vm, m == M_FB ? "hmm_marginals" : "hmm_viterbi", 2, args, 0, NULL, NULL, &out))
            fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        else
            rt_release(out);
        *check = NAN;
        break;
    }
    case M_BW: {
        /* ITERS E+M steps (tol < 0: never converges early); time per iteration */
        const int ITERS = 3;
        rt_value args[2] = {rt_obj_value(&s->h->h), rt_tensor(s->ty)}, out;
        const char *kwn[2] = {"iters", "tol"};
        rt_value kwv[2] = {rt_tensor(bk_scalar(ctx, ITERS)), rt_tensor(bk_scalar(ctx, -1.0))};
        t0 = now();
        if (call(vm, "baum_welch", 2, args, 2, kwn, kwv, &out) == 0) rt_release(out);
        else fprintf(stderr, "%s\n", rt_vm_errmsg(vm));
        double dt = (now() - t0) / ITERS;
        rt_release(kwv[0]);
        rt_release(kwv[1]);
        *check = NAN;
        return dt;
    }
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    int only = argc > 1 ? atoi(argv[1]) : 0;   /* optional: a single K */
    /* optional second argument "bw": only the plain loop, the forward and
     * Baum-Welch, with the per-repetition ratio of one iteration to one
     * forward (both timed in the same repetition) */
    bool bwonly = argc > 2 && strcmp(argv[2], "bw") == 0;
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 2026, 0);
    const int Ks[] = {2, 3, 8, 32, 64, 256};
    printf("# measure K shape ns_per_step (baum_welch: seconds per iteration)\n");
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        int K = Ks[ki];
        if (only && K != only) continue;
        for (int shape = 0; shape < 2; shape++) {
            setup s;
            int64_t T = shape ? 100 : (K >= 256 ? 10000 : 100000), B = shape ? 50 : 0;
            setup_make(ctx, &r, &s, K, B, T);
            int64_t steps = (B ? B : 1) * T;
            /* the measures interleaved within each repetition, so that all
             * of them see the same background load */
            int reps = K >= 64 ? 5 : 9;
            double t[M_COUNT][9] = {{0}}, chk[M_COUNT], ratio[9], ratio_b[9], ratio_bw[9];
#define SKIP(m) (bwonly && ((m) == M_GRAD || (m) == M_FB || (m) == M_VITERBI))
            for (int m = 0; m < M_COUNT; m++)
                if (!SKIP(m)) run_once(vm, &s, m, &chk[m]);   /* warm-up */
                else chk[m] = NAN;
            for (int i = 0; i < reps; i++) {
                for (int m = 0; m < M_COUNT; m++)
                    if (!SKIP(m)) t[m][i] = run_once(vm, &s, m, &chk[m]);
                ratio[i] = t[M_FORWARD][i] / t[M_PLAIN][i];
                ratio_b[i] = t[M_FORWARD][i] / fmin(t[M_PLAIN][i], t[M_PLAIN_BLAS][i]);
                ratio_bw[i] = t[M_BW][i] / t[M_FORWARD][i];
            }
            const char *sh = B ? "50x100" : (T == 100000 ? "1x100000" : "1x10000");
            for (int m = 0; m < M_COUNT; m++) {
                if (!isnan(chk[m]) && fabs(chk[m] - chk[M_PLAIN]) > 1e-8 * fabs(chk[M_PLAIN]))
                    fprintf(stderr, "bench_hmm: %s K=%d: log p %.12g differs from the plain "
                                    "loop's %.12g\n", MNAME[m], K, chk[m], chk[M_PLAIN]);
                if (SKIP(m)) continue;
                double med = median(t[m], reps);
                if (m == M_BW) printf("%s %d %s %.6f s\n", MNAME[m], K, sh, med);
                else printf("%s %d %s %.1f ns\n", MNAME[m], K, sh, med / (double)steps * 1e9);
            }
            printf("ratio_forward_to_plain %d %s %.2f x\n", K, sh, median(ratio, reps));
            printf("ratio_forward_to_best_plain %d %s %.2f x\n", K, sh, median(ratio_b, reps));
            printf("ratio_bw_iter_to_forward %d %s %.2f x\n", K, sh, median(ratio_bw, reps));
            /* the parallel-scan forward (long sequence only): wall time,
             * against the sequential op's wall time in the same runs */
            if (!B && !bwonly) {
                bool g = bk_set_grad_enabled(ctx, false);
                int64_t KV[2] = {K, V};
                double lpi[256];
                for (int k = 0; k < K; k++) lpi[k] = log(s.pi[k]);
                double *lE = malloc((size_t)K * V * sizeof *lE);
                for (int i = 0; i < K * V; i++) lE[i] = log(s.E[i]);
                bk_tensor *in[4] = {bk_from_f64(ctx, 1, (int64_t[]){K}, lpi), s.tA,
                                    bk_from_f64(ctx, 2, KV, lE), s.ty};
                double tw[3][9], out;
                for (int i = 0; i < reps; i++)
                    for (int m = 0; m < 3; m++) {
                        double t0 = wall();
                        if (m == 0) {
                            bk_tensor *lp = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
                            out = bk_item(lp);
                            bk_release(lp);
                        } else {
                            bk_hmm_forward_scan(ctx, in, true, m == 1 ? 2 : 4, &out);
                        }
                        tw[m][i] = wall() - t0;
                        if (fabs(out - chk[M_PLAIN]) > 1e-8 * fabs(chk[M_PLAIN]))
                            fprintf(stderr, "bench_hmm: scan K=%d: %.12g\n", K, out);
                    }
                printf("wall_ppl_forward %d %s %.1f ns\n", K, sh, median(tw[0], reps) / steps * 1e9);
                printf("wall_scan_2_threads %d %s %.1f ns\n", K, sh, median(tw[1], reps) / steps * 1e9);
                printf("wall_scan_4_threads %d %s %.1f ns\n", K, sh, median(tw[2], reps) / steps * 1e9);
                bk_release(in[0]);
                bk_release(in[2]);
                free(lE);
                bk_set_grad_enabled(ctx, g);
            }
            fflush(stdout);
            setup_free(&s);
        }
    }
    rt_vm_free(vm);
    return 0;
}
