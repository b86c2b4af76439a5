/* test_hmm_kernels.c - the fast kernels of the HMM ops and built-ins against
 * independent references written here: the vectorized Viterbi (max-plus
 * step, back-pointers recovered in the backtrack) against the classic
 * back-pointer Viterbi on the same log parameters and against brute force;
 * the forward op's paths (constant-K kernels, the AVX vector-matrix kernel,
 * the batched GEMM forward, the redo of steps that leave the range of the
 * unnormalized rows) against a log-space forward with a logsumexp per
 * entry; its backward (one sweep, Z-normalized marginals, blocked pair-sum
 * GEMMs) against log-space forward-backward and finite differences; and
 * one fused Baum-Welch step against an EM step computed here. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "hmm.h"
#include "ops_hmm.h"
#include "rng.h"
#include "vm.h"

static bk_tensor *tensor(bk_ctx *ctx, int nd, const int64_t *shape, const double *v) {
    bk_tensor *t = bk_from_f64(ctx, nd, shape, v);
    ck_assert(t != NULL);
    return t;
}

static void rand_simplex(bk_rng *r, double *p, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += p[i] = 0.05 + bk_rng_uniform(r);
    for (int i = 0; i < n; i++) p[i] /= s;
}

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
    ck_abort_msg("no built-in %s", name);
    return -1;
}

static double lse(const double *v, int n) {
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = fmax(m, v[i]);
    if (!isfinite(m)) return m;
    for (int i = 0; i < n; i++) s += exp(v[i] - m);
    return m + log(s);
}

/* Log-space forward-backward (a logsumexp per entry): returns log p(y) and,
 * when gam is not NULL, the posterior marginals gam [T*K].  lA [K*K], lB
 * [T*K], lpi [K]. */
static double logspace_fb(int K, int T, const double *lpi, const double *lA, const double *lB,
                          double *gam) {
    double *la = malloc((size_t)T * K * sizeof *la), *lb = malloc((size_t)T * K * sizeof *lb);
    double *tmp = malloc((size_t)K * sizeof *tmp);
    for (int k = 0; k < K; k++) la[k] = lpi[k] + lB[k];
    for (int t = 1; t < T; t++)
        for (int j = 0; j < K; j++) {
            for (int i = 0; i < K; i++) tmp[i] = la[(t - 1) * K + i] + lA[i * K + j];
            la[t * K + j] = lse(tmp, K) + lB[t * K + j];
        }
    double ll = lse(la + (T - 1) * K, K);
    if (gam) {
        for (int k = 0; k < K; k++) lb[(T - 1) * K + k] = 0;
        for (int t = T - 2; t >= 0; t--)
            for (int i = 0; i < K; i++) {
                for (int j = 0; j < K; j++)
                    tmp[j] = lA[i * K + j] + lB[(t + 1) * K + j] + lb[(t + 1) * K + j];
                lb[t * K + i] = lse(tmp, K);
            }
        for (int i = 0; i < T * K; i++) gam[i] = exp(la[i] + lb[i] - ll);
    }
    free(la);
    free(lb);
    free(tmp);
    return ll;
}

/* ------------------------------------------------------------ Viterbi --- */

/* The classic Viterbi with back-pointers (strict > keeps the first best
 * predecessor, as the built-in documents). */
static double viterbi_ref(int K, int T, const double *lpi, const double *lA, const double *lB,
                          int *z) {
    double *d = malloc((size_t)T * K * sizeof *d);
    int *bp = malloc((size_t)T * K * sizeof *bp);
    for (int k = 0; k < K; k++) d[k] = lpi[k] + lB[k];
    for (int t = 1; t < T; t++)
        for (int j = 0; j < K; j++) {
            double best = -INFINITY;
            int arg = 0;
            for (int i = 0; i < K; i++) {
                double v = d[(t - 1) * K + i] + lA[i * K + j];
                if (v > best) {
                    best = v;
                    arg = i;
                }
            }
            d[t * K + j] = best + lB[t * K + j];
            bp[t * K + j] = arg;
        }
    double top = -INFINITY;
    z[T - 1] = 0;
    for (int k = 0; k < K; k++)
        if (d[(T - 1) * K + k] > top) {
            top = d[(T - 1) * K + k];
            z[T - 1] = k;
        }
    for (int t = T - 1; t > 0; t--) z[t - 1] = bp[t * K + z[t]];
    free(d);
    free(bp);
    return top;
}

/* Random K up to 64 (the scalar, 4-wide and 16-wide max-plus blocks and
 * their tails), transition probabilities drawn from a few values so that
 * ties between predecessors occur, and some zero transitions (-inf): the
 * path and its log-probability equal the back-pointer Viterbi's exactly
 * (the reference runs on the HMM's own log parameters); for few states and
 * steps, the log-probability is the best over all K^T paths. */
START_TEST(viterbi_matches_backpointers) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 77, 0);
    const int Ks[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 24, 31, 33, 64};
    enum { V = 4 };
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (int rep = 0; rep < 3; rep++) {
            int K = Ks[ki], T = rep == 0 && K <= 3 ? 5 : 1 + (int)(bk_rng_u32(&r) % 150);
            double *A = malloc((size_t)K * K * sizeof *A), E[64 * V], pi[64], y[150];
            for (int i = 0; i < K; i++) {
                double s = 0;
                for (int j = 0; j < K; j++) {
                    double u = (double)(bk_rng_u32(&r) % 4);   /* 0 (a zero), 1, 2, 3 */
                    s += A[i * K + j] = j == i ? 1 + u : u;
                }
                for (int j = 0; j < K; j++) A[i * K + j] /= s;
            }
            for (int k = 0; k < K; k++) rand_simplex(&r, E + k * V, V);
            rand_simplex(&r, pi, K);
            for (int t = 0; t < T; t++) y[t] = (double)(bk_rng_u32(&r) % V);
            bk_tensor *tp = tensor(ctx, 1, (int64_t[]){K}, pi);
            bk_tensor *tA = tensor(ctx, 2, (int64_t[]){K, K}, A);
            bk_tensor *tE = tensor(ctx, 2, (int64_t[]){K, V}, E);
            bk_tensor *ty = tensor(ctx, 1, (int64_t[]){T}, y);
            sl_dist *em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &tE);
            sl_dist *h = sl_hmm_make(ctx, tp, tA, em, 0, -1);
            ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
            bk_tensor *lpi = sl_hmm_log_init(ctx, h), *lA = sl_hmm_log_trans(ctx, h);
            bk_tensor *lB = sl_hmm_emission_logp(ctx, h, ty);
            ck_assert(lpi && lA && lB);
            int z[150];
            double want = viterbi_ref(K, T, bk_data(lpi), bk_data(lA), bk_data(lB), z);
            rt_value args[2] = {rt_obj_value(&h->h), rt_tensor(ty)}, out;
            ck_assert_msg(call(vm, "hmm_viterbi", 2, args, 0, NULL, NULL, &out) == 0, "%s",
                          rt_vm_errmsg(vm));
            rt_record *rec = (rt_record *)out.u.o;
            bk_tensor *path = rt_record_get(rec, "path")->u.t;
            double got = bk_item(rt_record_get(rec, "log_prob")->u.t);
            ck_assert_msg(got == want, "K=%d T=%d: %.17g vs %.17g", K, T, got, want);
            for (int t = 0; t < T; t++)
                ck_assert_msg((int)bk_get(path, t) == z[t], "K=%d T=%d t=%d: %g vs %d", K, T, t,
                              bk_get(path, t), z[t]);
            if (T == 5) {
                /* brute force over the K^5 paths */
                double best = -INFINITY;
                int p[5] = {0};
                for (;;) {
                    double v = bk_data(lpi)[p[0]] + bk_data(lB)[p[0]];
                    for (int t = 1; t < 5; t++)
                        v += bk_data(lA)[p[t - 1] * K + p[t]] + bk_data(lB)[t * K + p[t]];
                    best = fmax(best, v);
                    int t = 4;
                    while (t >= 0 && ++p[t] == K) p[t--] = 0;
                    if (t < 0) break;
                }
                ck_assert(fabs(best - got) <= 1e-12 * fabs(best));
            }
            rt_release(out);
            bk_release(lpi);
            bk_release(lA);
            bk_release(lB);
            bk_release(tp);
            bk_release(tA);
            bk_release(tE);
            bk_release(ty);
            sl_dist_release(em);
            sl_dist_release(h);
            free(A);
        }
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------------------------- forward op --- */

/* A random homogeneous HMM for the op: lpi [K], A [K*K], lE [K*V]. */
static void rand_params(bk_rng *r, int K, int V, double *lpi, double *A, double *lE) {
    double *p = malloc((size_t)(K > V ? K : V) * sizeof *p);
    rand_simplex(r, p, K);
    for (int k = 0; k < K; k++) lpi[k] = log(p[k]);
    for (int i = 0; i < K; i++) rand_simplex(r, A + i * K, K);
    for (int k = 0; k < K; k++) {
        rand_simplex(r, p, V);
        for (int v = 0; v < V; v++) lE[k * V + v] = log(p[v]);
    }
    free(p);
}

/* Both op forms, one sequence and padded batches (B >= 4 with K >= 24 takes
 * the GEMM forward; lengths 0 and 1 included), K around every kernel
 * boundary: log p equals the log-space forward to 1e-11 relative. */
START_TEST(forward_paths_match_logspace) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 5, 0);
    const int Ks[] = {1, 2, 3, 4, 5, 8, 23, 24, 33, 45, 64};
    enum { V = 5, T = 300, B = 6 };
    const double L[B] = {300, 1, 0, 129, 257, 300};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        int K = Ks[ki];
        double *A = malloc((size_t)K * K * sizeof *A), *lE = malloc((size_t)K * V * sizeof *lE);
        double *lpi = malloc((size_t)K * sizeof *lpi), *lA = malloc((size_t)K * K * sizeof *lA);
        double *lB = malloc((size_t)B * T * K * sizeof *lB), y[B * T];
        rand_params(&r, K, V, lpi, A, lE);
        for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                y[b * T + t] = t < L[b] ? (double)(bk_rng_u32(&r) % V) : -1.0;
                for (int k = 0; k < K; k++)
                    lB[(b * T + t) * K + k] = t < L[b] ? lE[k * V + (int)y[b * T + t]] : 0.0;
            }
        bk_tensor *tpi = tensor(ctx, 1, (int64_t[]){K}, lpi);
        bk_tensor *tA = tensor(ctx, 2, (int64_t[]){K, K}, A);
        bk_tensor *tE = tensor(ctx, 2, (int64_t[]){K, V}, lE);
        bk_tensor *ty = tensor(ctx, 2, (int64_t[]){B, T}, y);
        bk_tensor *tB = tensor(ctx, 3, (int64_t[]){B, T, K}, lB);
        bk_tensor *tL = tensor(ctx, 1, (int64_t[]){B}, L);
        for (int cat = 0; cat <= 1; cat++) {
            bk_tensor *in[4] = {tpi, tA, cat ? tE : tB, cat ? ty : tL};
            bk_tensor *f = bk_apply(ctx, cat ? BK_OP_HMM_FORWARD_CAT : BK_OP_HMM_FORWARD, 4, in,
                                    NULL);
            ck_assert_msg(f != NULL, "%s", bk_errmsg(ctx));
            for (int b = 0; b < B; b++) {
                double want = L[b] ? logspace_fb(K, (int)L[b], lpi, lA, lB + b * T * K, NULL) : 0;
                ck_assert_msg(fabs(bk_get(f, b) - want) <= 1e-11 * fmax(1, fabs(want)),
                              "K=%d cat=%d seq %d: %.15g vs %.15g", K, cat, b, bk_get(f, b), want);
            }
            bk_release(f);
        }
        bk_release(tpi);
        bk_release(tA);
        bk_release(tE);
        bk_release(ty);
        bk_release(tB);
        bk_release(tL);
        free(A);
        free(lE);
        free(lpi);
        free(lA);
        free(lB);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* Emission log-likelihoods spread over hundreds of nats per step (steps
 * whose unnormalized rows would underflow: the forward and the backward
 * redo them from rows scaled to sum 1): log p and the gradient w.r.t. logB
 * (the posterior marginals) equal log-space forward-backward. */
START_TEST(extreme_steps_match_logspace) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 9, 0);
    const int Ks[] = {2, 3, 8, 33};
    enum { T = 400 };
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        int K = Ks[ki];
        double *A = malloc((size_t)K * K * sizeof *A), *lA = malloc((size_t)K * K * sizeof *lA);
        double *lpi = malloc((size_t)K * sizeof *lpi), *lB = malloc((size_t)T * K * sizeof *lB);
        double *gam = malloc((size_t)T * K * sizeof *gam), *lE = malloc((size_t)K * sizeof *lE);
        rand_params(&r, K, 1, lpi, A, lE);
        /* a few transitions close to 0, so that a step can lose 1e-150 */
        for (int i = 0; i < K; i++) {
            A[i * K + (i + 1) % K] *= 1e-120;
            double s = 0;
            for (int j = 0; j < K; j++) s += A[i * K + j];
            for (int j = 0; j < K; j++) A[i * K + j] /= s;
        }
        for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
        for (int i = 0; i < T * K; i++) lB[i] = -300 * bk_rng_uniform(&r);
        bk_tensor *tpi = tensor(ctx, 1, (int64_t[]){K}, lpi);
        bk_tensor *tA = tensor(ctx, 2, (int64_t[]){K, K}, A);
        bk_tensor *tB = tensor(ctx, 2, (int64_t[]){T, K}, lB);
        bk_tensor *tL = bk_scalar(ctx, T);
        bk_set_requires_grad(tB, true);
        bool g = bk_set_grad_enabled(ctx, true);
        bk_tensor *in[4] = {tpi, tA, tB, tL};
        bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD, 4, in, NULL);
        ck_assert_msg(f != NULL && bk_backward(ctx, f) == 0, "%s", bk_errmsg(ctx));
        bk_set_grad_enabled(ctx, g);
        double want = logspace_fb(K, T, lpi, lA, lB, gam);
        ck_assert_msg(fabs(bk_item(f) - want) <= 1e-11 * fabs(want), "K=%d: %.15g vs %.15g", K,
                      bk_item(f), want);
        for (int i = 0; i < T * K; i++)
            ck_assert_msg(fabs(bk_get(tB->grad, i) - gam[i]) <= 1e-9, "K=%d entry %d: %.12g vs %.12g",
                          K, i, bk_get(tB->grad, i), gam[i]);
        bk_release(f);
        bk_tape_reset(ctx);
        bk_release(tpi);
        bk_release(tA);
        bk_release(tB);
        bk_release(tL);
        free(A);
        free(lA);
        free(lpi);
        free(lB);
        free(gam);
        free(lE);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* The Categorical op at K = 8 (the AVX2 kernels), 33 and 45 over 300
 * steps (three blocks of pair sums, the AVX-512 kernels and their tails) and a padded batch of 4 (the GEMM
 * forward): gradients w.r.t. logpi, A and logE against central finite
 * differences of the op itself, at sampled entries. */
START_TEST(wide_gradients_match_fd) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 13, 0);
    enum { KM = 45, V = 4, T = 300, B = 4 };
    const double L[B] = {300, 129, 1, 200};
    double lpi[KM], A[KM * KM], lE[KM * V], y[B * T];
    /* K = 33: one 32-column block and a scalar column; K = 45: 11 blocks
     * of 4 rows and one row, 32 + 8 + 5 columns; the batch (B = 4) of
     * K = 33 and 45 runs the GEMM forward */
    const int Ks[3] = {8, 33, KM};
    for (int c = 0; c < 6; c++) {
        int K = Ks[c / 2], batch = c % 2;
        rand_params(&r, K, V, lpi, A, lE);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) y[b * T + t] = t < L[b] ? (double)(bk_rng_u32(&r) % V) : -1.0;
        bk_tensor *leaf[3] = {tensor(ctx, 1, (int64_t[]){K}, lpi),
                              tensor(ctx, 2, (int64_t[]){K, K}, A),
                              tensor(ctx, 2, (int64_t[]){K, V}, lE)};
        bk_tensor *ty = batch ? tensor(ctx, 2, (int64_t[]){B, T}, y)
                              : tensor(ctx, 1, (int64_t[]){T}, y);
        bk_tensor *in[4] = {leaf[0], leaf[1], leaf[2], ty};
        for (int i = 0; i < 3; i++) bk_set_requires_grad(leaf[i], true);
        bool g = bk_set_grad_enabled(ctx, true);
        bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
        bk_tensor *tot = f ? bk_sum_all(ctx, f) : NULL;
        ck_assert_msg(tot != NULL && bk_backward(ctx, tot) == 0, "%s", bk_errmsg(ctx));
        bk_set_grad_enabled(ctx, g);
        bk_release(tot);
        bk_release(f);
        bk_tape_reset(ctx);
        for (int i = 0; i < 3; i++) {
            double *v = bk_data(leaf[i]);
            for (int s = 0; s < 12; s++) {
                int64_t k = (int64_t)(bk_rng_u32(&r) % (uint32_t)leaf[i]->numel);
                double x = v[k], e = 1e-5, fd[2];
                for (int d = 0; d < 2; d++) {
                    v[k] = x + (d ? -e : e);
                    bk_tensor *fp = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
                    fd[d] = 0;
                    for (int64_t b = 0; b < fp->numel; b++) fd[d] += bk_get(fp, b);
                    bk_release(fp);
                }
                v[k] = x;
                double want = (fd[0] - fd[1]) / (2 * e), got = bk_get(leaf[i]->grad, k);
                ck_assert_msg(fabs(got - want) <= 1e-5 * fmax(1, fabs(want)),
                              "K=%d batch=%d leaf %d entry %lld: %.10g vs fd %.10g", K, batch,
                              i, (long long)k, got, want);
            }
            bk_release(leaf[i]);
        }
        bk_release(ty);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* Sum over steps of the pair marginals, xs[i*K + j] = sum_t p(z_{t-1} = i,
 * z_t = j | y), from log-space alphas and betas. */
static void logspace_xi(int K, int T, const double *lpi, const double *lA, const double *lB,
                        double ll, double *xs) {
    double *la = malloc((size_t)T * K * sizeof *la), *lb = malloc((size_t)T * K * sizeof *lb);
    double tmp[256];
    for (int k = 0; k < K; k++) la[k] = lpi[k] + lB[k];
    for (int t = 1; t < T; t++)
        for (int j = 0; j < K; j++) {
            for (int i = 0; i < K; i++) tmp[i] = la[(t - 1) * K + i] + lA[i * K + j];
            la[t * K + j] = lse(tmp, K) + lB[t * K + j];
        }
    for (int k = 0; k < K; k++) lb[(T - 1) * K + k] = 0;
    for (int t = T - 2; t >= 0; t--)
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) tmp[j] = lA[i * K + j] + lB[(t + 1) * K + j] + lb[(t + 1) * K + j];
            lb[t * K + i] = lse(tmp, K);
        }
    for (int i = 0; i < K * K; i++) xs[i] = 0;
    for (int t = 1; t < T; t++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                xs[i * K + j] += exp(la[(t - 1) * K + i] + lA[i * K + j] + lB[t * K + j] +
                                     lb[t * K + j] - ll);
    free(la);
    free(lb);
}

/* The Categorical op at K = 1..4: few symbols take the per-symbol table
 * kernels (scalar forward, AVX2 backward sweep, pair sums by symbol),
 * many symbols (V = 400 over 50 steps) the generic constant-K kernels.
 * Each on a padded batch of different lengths (0, 1, 2, ...) with weights
 * on the sequences' log p, in a plain and an extreme setting (emission
 * log-probabilities down to -300 nats and transitions of 1e-120: the
 * rescaling redo paths).  log p equals the log-space forward to 1e-11;
 * the gradients equal the exact ones from log-space forward-backward
 * (d/dlogpi = gamma_0, d/dA = sum_t xi_t / A, d/dlogE[k, v] = the sum of
 * gamma_t(k) over y_t = v) to 1e-9, and central finite differences at
 * sampled entries in the plain setting. */
START_TEST(small_cat_paths_match_reference) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 31, 0);
    enum { B = 5, TM = 300 };
    for (int c = 0; c < 16; c++) {
        int K = 1 + c % 4, many = (c / 4) % 2, extreme = c / 8;
        int V = many ? 400 : 3 + c % 3, T = many ? 50 : TM;
        double Ls[B] = {T, 1, 0, 2, T - 37};
        double *lpi = malloc(K * sizeof *lpi), *A = malloc(K * K * sizeof *A);
        double *lA = malloc(K * K * sizeof *lA), *lE = malloc((size_t)K * V * sizeof *lE);
        double *y = malloc((size_t)B * T * sizeof *y), *lB = malloc((size_t)T * K * sizeof *lB);
        double *gam = malloc((size_t)T * K * sizeof *gam), xs[16], wts[B] = {1.0, 0.5, 2.0, -1.5, 0.75};
        rand_params(&r, K, V, lpi, A, lE);
        if (extreme) {
            for (int i = 0; K > 1 && i < K; i++) {
                A[i * K + (i + 1) % K] *= 1e-120;
                double sum = 0;
                for (int j = 0; j < K; j++) sum += A[i * K + j];
                for (int j = 0; j < K; j++) A[i * K + j] /= sum;
            }
            for (int i = 0; i < K * V; i++) lE[i] = -300 * bk_rng_uniform(&r);
        }
        for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) y[b * T + t] = t < Ls[b] ? (double)(bk_rng_u32(&r) % V) : -1.0;
        bk_tensor *leaf[3] = {tensor(ctx, 1, (int64_t[]){K}, lpi), tensor(ctx, 2, (int64_t[]){K, K}, A),
                              tensor(ctx, 2, (int64_t[]){K, V}, lE)};
        bk_tensor *ty = tensor(ctx, 2, (int64_t[]){B, T}, y), *tw = tensor(ctx, 1, (int64_t[]){B}, wts);
        bk_tensor *in[4] = {leaf[0], leaf[1], leaf[2], ty};
        for (int i = 0; i < 3; i++) bk_set_requires_grad(leaf[i], true);
        bool g = bk_set_grad_enabled(ctx, true);
        bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
        bk_tensor *fw = f ? bk_mul(ctx, f, tw) : NULL, *tot = fw ? bk_sum_all(ctx, fw) : NULL;
        ck_assert_msg(tot != NULL && bk_backward(ctx, tot) == 0, "%s", bk_errmsg(ctx));
        bk_set_grad_enabled(ctx, g);
        /* the reference, summed over the weighted sequences */
        double *wpi = calloc(K, sizeof *wpi), *wA = calloc(K * K, sizeof *wA);
        double *wE = calloc((size_t)K * V, sizeof *wE);
        for (int b = 0; b < B; b++) {
            int L = (int)Ls[b];
            for (int t = 0; t < L; t++)
                for (int k = 0; k < K; k++) lB[t * K + k] = lE[k * V + (int)y[b * T + t]];
            double want = L ? logspace_fb(K, L, lpi, lA, lB, gam) : 0;
            ck_assert_msg(fabs(bk_get(f, b) - want) <= 1e-11 * fmax(1, fabs(want)),
                          "case %d K=%d seq %d: %.15g vs %.15g", c, K, b, bk_get(f, b), want);
            if (!L) continue;
            logspace_xi(K, L, lpi, lA, lB, want, xs);
            for (int k = 0; k < K; k++) wpi[k] += wts[b] * gam[k];
            for (int i = 0; i < K * K; i++) wA[i] += wts[b] * xs[i] / A[i];
            for (int t = 0; t < L; t++)
                for (int k = 0; k < K; k++) wE[k * V + (int)y[b * T + t]] += wts[b] * gam[t * K + k];
        }
        const double *want[3] = {wpi, wA, wE};
        for (int i = 0; i < 3; i++)
            for (int64_t k = 0; k < leaf[i]->numel; k++) {
                double got = bk_get(leaf[i]->grad, k), w = want[i][k];
                /* d/dA at a 1e-120 entry is xi / A: relative */
                ck_assert_msg(fabs(got - w) <= 1e-9 * fmax(1, fabs(w)),
                              "case %d K=%d V=%d leaf %d entry %lld: %.12g vs %.12g", c, K, V, i,
                              (long long)k, got, w);
            }
        bk_release(tot);
        bk_release(fw);
        bk_release(f);
        bk_tape_reset(ctx);
        for (int i = 0; !extreme && i < 3; i++) {
            double *v = bk_data(leaf[i]);
            for (int sm = 0; sm < 4; sm++) {
                int64_t k = (int64_t)(bk_rng_u32(&r) % (uint32_t)leaf[i]->numel);
                double x = v[k], e = 1e-6, fd[2];
                for (int d = 0; d < 2; d++) {
                    v[k] = x + (d ? -e : e);
                    bk_tensor *fp = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, NULL);
                    fd[d] = 0;
                    for (int64_t b = 0; b < fp->numel; b++) fd[d] += wts[b] * bk_get(fp, b);
                    bk_release(fp);
                }
                v[k] = x;
                double wfd = (fd[0] - fd[1]) / (2 * e), got = bk_get(leaf[i]->grad, k);
                ck_assert_msg(fabs(got - wfd) <= 1e-5 * fmax(1, fabs(wfd)),
                              "case %d K=%d leaf %d entry %lld: %.10g vs fd %.10g", c, K, i,
                              (long long)k, got, wfd);
            }
        }
        for (int i = 0; i < 3; i++) bk_release(leaf[i]);
        bk_release(ty);
        bk_release(tw);
        free(lpi), free(A), free(lA), free(lE), free(y), free(lB), free(gam);
        free(wpi), free(wA), free(wE);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* A weighted batch through the forward op (the Categorical table form
 * when cat, else logB [B, T, K] with lengths Ls) and its backward, against
 * exact log-space forward-backward: each sequence's log p to 1e-11 (with
 * estep, the E-step's log p of bk_hmm_expected_counts too), the gradients
 * to 1e-9 (d/dlogpi = gamma_0, d/dA = sum_t xi_t / A, the emissions' the
 * gamma_t summed as they enter). */
static void check_batch_against_logspace(bk_ctx *ctx, int K, int B, int T, int V, const double *Ls,
                                         const double *wts, bool cat, bool estep, const double *lpi,
                                         const double *A, const double *lA, const double *lE, const double *y,
                                         const double *lB, const char *label) {
    double *gam = malloc((size_t)T * K * sizeof *gam), *xs = malloc((size_t)K * K * sizeof *xs);
    double *ell = malloc((size_t)B * sizeof *ell);
    bk_tensor *leaf[3] = {tensor(ctx, 1, (int64_t[]){K}, lpi), tensor(ctx, 2, (int64_t[]){K, K}, A),
                          cat ? tensor(ctx, 2, (int64_t[]){K, V}, lE) : tensor(ctx, 3, (int64_t[]){B, T, K}, lB)};
    bk_tensor *last = cat ? tensor(ctx, 2, (int64_t[]){B, T}, y) : tensor(ctx, 1, (int64_t[]){B}, Ls);
    bk_tensor *tw = tensor(ctx, 1, (int64_t[]){B}, wts);
    bk_tensor *in[4] = {leaf[0], leaf[1], leaf[2], last};
    for (int i = 0; i < 3; i++) bk_set_requires_grad(leaf[i], true);
    bool g = bk_set_grad_enabled(ctx, true);
    bk_tensor *f = bk_apply(ctx, cat ? BK_OP_HMM_FORWARD_CAT : BK_OP_HMM_FORWARD, 4, in, NULL);
    bk_tensor *fw = f ? bk_mul(ctx, f, tw) : NULL, *tot = fw ? bk_sum_all(ctx, fw) : NULL;
    ck_assert_msg(tot != NULL && bk_backward(ctx, tot) == 0, "%s", bk_errmsg(ctx));
    bk_set_grad_enabled(ctx, g);
    double *wpi = calloc(K, sizeof *wpi), *wA = calloc((size_t)K * K, sizeof *wA);
    double *wE = calloc(cat ? (size_t)K * V : (size_t)B * T * K, sizeof *wE);
    /* the E-step's log p (Baum-Welch's trace) comes from the stored
     * forward, not from the op's forward */
    if (estep) ck_assert(bk_hmm_expected_counts(ctx, in, cat, ell, NULL, NULL, NULL, NULL) == 0);
    for (int b = 0; b < B; b++) {
        int L = (int)Ls[b];
        const double *lb = lB + (size_t)b * T * K;
        double want = L ? logspace_fb(K, L, lpi, lA, lb, gam) : 0;
        ck_assert_msg(fabs(bk_get(f, b) - want) <= 1e-11 * fmax(1, fabs(want)),
                      "%s K=%d seq %d: %.15g vs %.15g", label, K, b, bk_get(f, b), want);
        if (estep)
            ck_assert_msg(fabs(ell[b] - want) <= 1e-11 * fmax(1, fabs(want)),
                          "%s K=%d seq %d: E-step log p %.15g vs %.15g", label, K, b, ell[b], want);
        if (!L) continue;
        logspace_xi(K, L, lpi, lA, lb, want, xs);
        for (int k = 0; k < K; k++) wpi[k] += wts[b] * gam[k];
        for (int i = 0; i < K * K; i++) wA[i] += wts[b] * xs[i] / A[i];
        for (int t = 0; t < L; t++)
            for (int k = 0; k < K; k++) {
                if (cat) wE[k * V + (int)y[b * T + t]] += wts[b] * gam[t * K + k];
                else wE[(b * T + t) * K + k] += wts[b] * gam[t * K + k];
            }
    }
    const double *want[3] = {wpi, wA, wE};
    for (int i = 0; i < 3; i++)
        for (int64_t k = 0; k < leaf[i]->numel; k++) {
            double got = bk_get(leaf[i]->grad, k), w = want[i][k];
            ck_assert_msg(fabs(got - w) <= 1e-9 * fmax(1, fabs(w)), "%s K=%d cat=%d leaf %d entry %lld: %.12g vs %.12g",
                          label, K, cat, i, (long long)k, got, w);
        }
    bk_release(tot);
    bk_release(fw);
    bk_release(f);
    bk_tape_reset(ctx);
    for (int i = 0; i < 3; i++) bk_release(leaf[i]);
    bk_release(last);
    bk_release(tw);
    free(gam), free(xs), free(ell), free(wpi), free(wA), free(wE);
}

/* Batches at K >= 128 (the lock-step forward and backward sweep, one GEMM
 * per step, pair sums over all steps), both op forms (Categorical table
 * and logB), lengths 0, 1, 2, ... with weights on the sequences' log p,
 * plain and extreme (emission log-likelihoods down to -300 nats per step,
 * transitions of 1e-120: the redo paths): log p against the log-space
 * forward (1e-11) and all gradients against exact log-space
 * forward-backward (1e-9). */
START_TEST(batch_lockstep_matches_reference) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 37, 0);
    enum { B = 6, T = 50, V = 5 };
    const double Ls[B] = {T, 1, 0, 2, T - 37, T};
    const double wts[B] = {1.0, 0.5, 2.0, -1.5, 0.75, 1.25};
    for (int c = 0; c < 4; c++) {
        int K = c % 2 ? 131 : 128, cat = c % 2, extreme = c / 2;
        double *lpi = malloc(K * sizeof *lpi), *A = malloc(K * K * sizeof *A);
        double *lA = malloc(K * K * sizeof *lA), *lE = malloc((size_t)K * V * sizeof *lE);
        double *y = malloc((size_t)B * T * sizeof *y), *lB = malloc((size_t)B * T * K * sizeof *lB);
        rand_params(&r, K, V, lpi, A, lE);
        for (int i = 0; extreme && cat && i < K * V; i++) lE[i] = -300 * bk_rng_uniform(&r);
        /* extreme: a nearly deterministic cycle (other transitions 1e-120),
         * so that the predicted mass often sits on states that can hardly
         * emit the next observation and a row sum drops below 1e-100 */
        for (int i = 0; extreme && i < K; i++) {
            for (int j = 0; j < K; j++) A[i * K + j] = j == (i + 1) % K ? 1.0 : 1e-120;
            double sum = 0;
            for (int j = 0; j < K; j++) sum += A[i * K + j];
            for (int j = 0; j < K; j++) A[i * K + j] /= sum;
        }
        for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int live = t < Ls[b];
                y[b * T + t] = live ? (double)(bk_rng_u32(&r) % V) : -1.0;
                for (int k = 0; k < K; k++)
                    lB[(b * T + t) * K + k] = !live ? 0.0
                                              : extreme && !cat ? -300 * bk_rng_uniform(&r)
                                                                : lE[k * V + (int)y[b * T + t]];
            }
        char label[32];
        snprintf(label, sizeof label, "case %d", c);
        check_batch_against_logspace(ctx, K, B, T, V, Ls, wts, cat, true, lpi, A, lA, lE, y, lB, label);
        free(lpi), free(A), free(lA), free(lE), free(y), free(lB);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* ------------------------------------------------------- Baum-Welch --- */

/* One fused EM step with Normal emissions on two sequences equals the EM
 * step computed here from log-space forward-backward (gamma and xi summed
 * over both sequences); and on K = 32 (the GEMM and AVX paths) the
 * log-likelihood trace never decreases. */
START_TEST(baum_welch_step_matches_reference) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 21, 0);
    enum { K = 3, T = 120, N = 2 };
    double pi[K], A[K * K], mu[K], sd[K], y[N * T];
    rand_simplex(&r, pi, K);
    for (int i = 0; i < K; i++) rand_simplex(&r, A + i * K, K);
    for (int k = 0; k < K; k++) mu[k] = 2.0 * k - 2 + 0.3 * bk_rng_normal(&r), sd[k] = 0.6 + 0.3 * k;
    for (int i = 0; i < N * T; i++) y[i] = 3 * bk_rng_normal(&r);
    bk_tensor *tp = tensor(ctx, 1, (int64_t[]){K}, pi), *tA = tensor(ctx, 2, (int64_t[]){K, K}, A);
    bk_tensor *p[2] = {tensor(ctx, 1, (int64_t[]){K}, mu), tensor(ctx, 1, (int64_t[]){K}, sd)};
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Normal"), 0, 2, p);
    sl_dist *h = sl_hmm_make(ctx, tp, tA, em, 0, -1);
    ck_assert(h != NULL);
    /* the reference E-step */
    double lpi[K], lA[K * K], lB[T * K], gam[T * K], c_pi[K] = {0}, c_g[K] = {0}, c_y[K] = {0},
           c_yy[K] = {0}, xi[K * K] = {0}, ll0 = 0;
    for (int k = 0; k < K; k++) lpi[k] = log(pi[k]);
    for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
    for (int n = 0; n < N; n++) {
        const double *yn = y + n * T;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) {
                double z = (yn[t] - mu[k]) / sd[k];
                lB[t * K + k] = -0.5 * z * z - log(sd[k]) - 0.5 * log(2 * M_PI);
            }
        double ll = logspace_fb(K, T, lpi, lA, lB, gam);
        ll0 += ll;
        for (int k = 0; k < K; k++) c_pi[k] += gam[k];
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) {
                c_g[k] += gam[t * K + k];
                c_y[k] += gam[t * K + k] * yn[t];
                c_yy[k] += gam[t * K + k] * yn[t] * yn[t];
            }
        /* pair marginals xi_t(i, j) = p(z_{t-1} = i, z_t = j | y) from
         * log-space alphas and betas */
        double *la = malloc(T * K * sizeof *la), *lbt = malloc(T * K * sizeof *lbt), tmp[K];
        for (int k = 0; k < K; k++) la[k] = lpi[k] + lB[k];
        for (int t = 1; t < T; t++)
            for (int j = 0; j < K; j++) {
                for (int i = 0; i < K; i++) tmp[i] = la[(t - 1) * K + i] + lA[i * K + j];
                la[t * K + j] = lse(tmp, K) + lB[t * K + j];
            }
        for (int k = 0; k < K; k++) lbt[(T - 1) * K + k] = 0;
        for (int t = T - 2; t >= 0; t--)
            for (int i = 0; i < K; i++) {
                for (int j = 0; j < K; j++)
                    tmp[j] = lA[i * K + j] + lB[(t + 1) * K + j] + lbt[(t + 1) * K + j];
                lbt[t * K + i] = lse(tmp, K);
            }
        for (int t = 1; t < T; t++)
            for (int i = 0; i < K; i++)
                for (int j = 0; j < K; j++)
                    xi[i * K + j] += exp(la[(t - 1) * K + i] + lA[i * K + j] + lB[t * K + j] +
                                         lbt[t * K + j] - ll);
        free(la);
        free(lbt);
    }
    rt_value args[2] = {rt_obj_value(&h->h), rt_tensor(tensor(ctx, 2, (int64_t[]){N, T}, y))}, out;
    const char *kwn[1] = {"iters"};
    rt_value kwv[1] = {rt_tensor(bk_scalar(ctx, 1))};
    ck_assert_msg(call(vm, "baum_welch", 2, args, 1, kwn, kwv, &out) == 0, "%s", rt_vm_errmsg(vm));
    rt_record *rec = (rt_record *)out.u.o;
    bk_tensor *gi = rt_record_get(rec, "init")->u.t, *gA = rt_record_get(rec, "trans")->u.t;
    bk_tensor *gm = rt_record_get(rec, "loc")->u.t, *gs = rt_record_get(rec, "scale")->u.t;
    ck_assert(fabs(bk_get(rt_record_get(rec, "log_likelihoods")->u.t, 0) - ll0) <= 1e-11 * fabs(ll0));
    for (int i = 0; i < K; i++) {
        double row = 0;
        for (int j = 0; j < K; j++) row += xi[i * K + j];
        for (int j = 0; j < K; j++)
            ck_assert_msg(fabs(bk_get(gA, i * K + j) - xi[i * K + j] / row) <= 1e-10,
                          "trans[%d, %d]: %.12g vs %.12g", i, j, bk_get(gA, i * K + j),
                          xi[i * K + j] / row);
        double m = c_y[i] / c_g[i], s = sqrt(c_yy[i] / c_g[i] - m * m);
        ck_assert(fabs(bk_get(gi, i) - c_pi[i] / N) <= 1e-10);
        ck_assert_msg(fabs(bk_get(gm, i) - m) <= 1e-10, "loc[%d]: %.12g vs %.12g", i,
                      bk_get(gm, i), m);
        ck_assert(fabs(bk_get(gs, i) - s) <= 1e-10);
    }
    rt_release(out);
    rt_release(args[1]);
    rt_release(kwv[0]);
    sl_dist_release(h);
    sl_dist_release(em);
    bk_release(tp);
    bk_release(tA);
    bk_release(p[0]);
    bk_release(p[1]);

    /* K = 32, 2000 Categorical steps: monotone trace */
    enum { KL = 32, VL = 6, TL = 2000 };
    double *AL = malloc(KL * KL * sizeof *AL), EL[KL * VL], piL[KL], *yL = malloc(TL * sizeof *yL);
    rand_simplex(&r, piL, KL);
    for (int i = 0; i < KL; i++) rand_simplex(&r, AL + i * KL, KL);
    for (int k = 0; k < KL; k++) rand_simplex(&r, EL + k * VL, VL);
    for (int t = 0; t < TL; t++) yL[t] = (double)(bk_rng_u32(&r) % VL);
    bk_tensor *tpL = tensor(ctx, 1, (int64_t[]){KL}, piL);
    bk_tensor *tAL = tensor(ctx, 2, (int64_t[]){KL, KL}, AL);
    bk_tensor *tEL = tensor(ctx, 2, (int64_t[]){KL, VL}, EL);
    sl_dist *emL = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &tEL);
    sl_dist *hL = sl_hmm_make(ctx, tpL, tAL, emL, 0, -1);
    rt_value argsL[2] = {rt_obj_value(&hL->h), rt_tensor(tensor(ctx, 1, (int64_t[]){TL}, yL))};
    rt_value kwvL[1] = {rt_tensor(bk_scalar(ctx, 6))};
    ck_assert(call(vm, "baum_welch", 2, argsL, 1, kwn, kwvL, &out) == 0);
    bk_tensor *lls = rt_record_get((rt_record *)out.u.o, "log_likelihoods")->u.t;
    ck_assert_int_eq(lls->numel, 6);
    for (int64_t i = 1; i < lls->numel; i++)
        ck_assert(bk_get(lls, i) >= bk_get(lls, i - 1) - 1e-9 * fabs(bk_get(lls, i)));
    ck_assert(bk_get(lls, 5) > bk_get(lls, 0));
    rt_release(out);
    rt_release(argsL[1]);
    rt_release(kwvL[0]);
    sl_dist_release(hL);
    sl_dist_release(emL);
    bk_release(tpL);
    bk_release(tAL);
    bk_release(tEL);
    free(AL);
    free(yL);
    rt_vm_free(vm);
}
END_TEST

/* bk_hmm_pair_sums against the per-step rank-1 updates on random rows, at
 * K around the kernels' thresholds (8: the AVX-512 register-blocked kernel
 * on CPUs with it, 24: BLAS on others, the 4-row, 8- and 32-column blocks
 * and their tails), n of 1, a few and more than one block: 1e-12 relative. */
START_TEST(pair_sums_match_per_step) {
    bk_rng r;
    bk_rng_init(&r, 41, 0);
    const int Ks[] = {1, 3, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 45, 64, 65};
    const int ns[] = {1, 5, 130};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            int K = Ks[ki], n = ns[ni];
            double *a = malloc((size_t)n * K * sizeof *a), *v = malloc((size_t)n * K * sizeof *v);
            double *G = malloc((size_t)K * K * sizeof *G), *W = malloc((size_t)K * K * sizeof *W);
            for (int i = 0; i < n * K; i++) a[i] = bk_rng_uniform(&r), v[i] = bk_rng_uniform(&r);
            for (int i = 0; i < K * K; i++) G[i] = W[i] = bk_rng_uniform(&r);
            double g = 0.75;
            bk_hmm_pair_sums(K, n, g, a, v, G);
            for (int t = 0; t < n; t++)
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) W[i * K + j] += g * a[t * K + i] * v[t * K + j];
            for (int i = 0; i < K * K; i++)
                ck_assert_msg(fabs(G[i] - W[i]) <= 1e-12 * fabs(W[i]), "K=%d n=%d entry %d: %.17g vs %.17g",
                              K, n, i, G[i], W[i]);
            free(a), free(v), free(G), free(W);
        }
}
END_TEST

/* The backward sweep at K from 7 to 65 (on AVX-512 CPUs: the 8-wide sweep
 * at multiples of 8 up to 64, the generic AVX-512 build elsewhere from 8),
 * both op forms (Categorical table, logB with lengths), a padded batch of 5
 * (lengths T = 140: two blocks of pair sums, 1, 0, 2, T - 37) with weights,
 * plain and extreme (emission log-likelihoods down to -300 nats, transitions
 * of 1e-120: the redo paths): log p against the log-space forward (1e-11),
 * the gradients against exact log-space forward-backward (1e-9). */
START_TEST(sweep_paths_match_reference) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 43, 0);
    enum { B = 5, T = 140, V = 4 };
    const int Ks[] = {7, 8, 9, 16, 23, 24, 32, 40, 64, 65};
    const double Ls[B] = {T, 1, 0, 2, T - 37}, wts[B] = {1.0, 0.5, 2.0, -1.5, 0.75};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (int c = 0; c < 4; c++) {
            int K = Ks[ki], cat = c % 2, extreme = c / 2;
            double *lpi = malloc(K * sizeof *lpi), *A = malloc((size_t)K * K * sizeof *A);
            double *lA = malloc((size_t)K * K * sizeof *lA), *lE = malloc((size_t)K * V * sizeof *lE);
            double *y = malloc((size_t)B * T * sizeof *y), *lB = malloc((size_t)B * T * K * sizeof *lB);
            rand_params(&r, K, V, lpi, A, lE);
            if (extreme) {
                for (int i = 0; i < K; i++) {
                    A[i * K + (i + 1) % K] *= 1e-120;
                    double sum = 0;
                    for (int j = 0; j < K; j++) sum += A[i * K + j];
                    for (int j = 0; j < K; j++) A[i * K + j] /= sum;
                }
                for (int i = 0; i < K * V; i++) lE[i] = -300 * bk_rng_uniform(&r);
            }
            for (int i = 0; i < K * K; i++) lA[i] = log(A[i]);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    y[b * T + t] = t < Ls[b] ? (double)(bk_rng_u32(&r) % V) : -1.0;
                    for (int k = 0; k < K; k++)
                        lB[(b * T + t) * K + k] = t < Ls[b] ? lE[k * V + (int)y[b * T + t]] : 0.0;
                }
            char label[32];
            snprintf(label, sizeof label, "case %d", c);
            check_batch_against_logspace(ctx, K, B, T, V, Ls, wts, cat, false, lpi, A, lA, lE, y, lB, label);
            free(lpi), free(A), free(lA), free(lE), free(y), free(lB);
        }
    bk_ctx_free(ctx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hmm_kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, viterbi_matches_backpointers);
    tcase_add_test(tc, forward_paths_match_logspace);
    tcase_add_test(tc, extreme_steps_match_logspace);
    tcase_add_test(tc, wide_gradients_match_fd);
    tcase_add_test(tc, small_cat_paths_match_reference);
    tcase_add_test(tc, batch_lockstep_matches_reference);
    tcase_add_test(tc, baum_welch_step_matches_reference);
    tcase_add_test(tc, pair_sums_match_per_step);
    tcase_add_test(tc, sweep_paths_match_reference);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
