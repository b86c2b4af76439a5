/* test_hmm_checked.c - hmm_forward_cat with codes its maker checked
 * (BK_HMM_CODES_CHECKED, DiscreteHMM.log_prob's codes): the op then finds
 * each sequence's length by bisection instead of checking every symbol at
 * every forward and backward call.  Its values and gradients must be those
 * of the checking op bit for bit (single sequences and batches whose
 * lengths are 0, 1, T - 1, T and between), the checking op must still
 * reject bad codes with its message, and DiscreteHMM.log_prob (which sets
 * the flag) must give the same values and gradients as the op called
 * without it, on good observations and on bad ones (the Categorical's
 * answer: -inf). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "hmm.h"
#include "ops_hmm.h"
#include "rng.h"
#include "vm.h"

enum { K = 3, V = 10, T = 40, B = 6 };

static bk_tensor *tensor(bk_ctx *ctx, int nd, const int64_t *shape, const double *v) {
    bk_tensor *t = bk_from_f64(ctx, nd, shape, v);
    ck_assert(t != NULL);
    return t;
}

static void rand_params(bk_rng *r, double *lpi, double *A, double *lE) {
    for (int k = 0; k < K; k++) {
        double s = 0, *row = A + k * K;
        lpi[k] = log(0.1 + bk_rng_uniform(r));
        for (int j = 0; j < K; j++) s += row[j] = 0.05 + bk_rng_uniform(r);
        for (int j = 0; j < K; j++) row[j] /= s;
        s = 0;
        for (int v = 0; v < V; v++) s += lE[k * V + v] = 0.05 + bk_rng_uniform(r);
        for (int v = 0; v < V; v++) lE[k * V + v] = log(lE[k * V + v] / s);
    }
}

/* Value and gradients (w.r.t. logpi, A, logE) of sum_b w_b f_b, the op run
 * with args (NULL: no arguments, the op checks the codes). */
static void run_op(bk_ctx *ctx, const double *lpi, const double *A, const double *lE, int nd,
                   const double *codes, const bk_opargs *args, double *val, double *g) {
    bk_tensor *leaf[3] = {tensor(ctx, 1, (int64_t[]){K}, lpi), tensor(ctx, 2, (int64_t[]){K, K}, A),
                          tensor(ctx, 2, (int64_t[]){K, V}, lE)};
    bk_tensor *y = nd == 2 ? tensor(ctx, 2, (int64_t[]){B, T}, codes) : tensor(ctx, 1, (int64_t[]){T}, codes);
    for (int i = 0; i < 3; i++) bk_set_requires_grad(leaf[i], true);
    bk_tensor *in[4] = {leaf[0], leaf[1], leaf[2], y};
    bool on = bk_set_grad_enabled(ctx, true);
    bk_tensor *f = bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, args);
    ck_assert_msg(f != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *w = f->ndim ? bk_arange(ctx, 1.0, 1.0 + (double)f->numel, 1.0) : bk_scalar(ctx, 1.0);
    bk_tensor *fw = bk_mul(ctx, f, w), *tot = fw ? bk_sum_all(ctx, fw) : NULL;
    ck_assert_msg(tot && bk_backward(ctx, tot) == 0, "%s", bk_errmsg(ctx));
    bk_set_grad_enabled(ctx, on);
    for (int64_t b = 0; b < f->numel; b++) val[b] = bk_get(f, b);
    int off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert(leaf[i]->grad != NULL);
        bk_copy_out(leaf[i]->grad, g + off);
        off += (int)leaf[i]->numel;
    }
    bk_tape_reset(ctx);
    bk_release(f);
    bk_release(w);
    bk_release(fw);
    bk_release(tot);
    for (int i = 0; i < 3; i++) bk_release(leaf[i]);
    bk_release(y);
}

START_TEST(checked_codes_match_checking_op) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    bk_rng r;
    bk_rng_init(&r, 11, 0);
    const int Ls[B] = {T, 0, 1, T - 1, 17, T};
    double lpi[K], A[K * K], lE[K * V], codes[B * T];
    bk_opargs checked;
    memset(&checked, 0, sizeof checked);
    checked.scalar = BK_HMM_CODES_CHECKED;
    for (int rep = 0; rep < 4; rep++) {
        rand_params(&r, lpi, A, lE);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) codes[b * T + t] = t < Ls[b] ? (double)(bk_rng_u32(&r) % V) : -1.0;
        for (int nd = 1; nd <= 2; nd++) {
            double v0[B], v1[B], g0[K + K * K + K * V], g1[K + K * K + K * V];
            run_op(ctx, lpi, A, lE, nd, codes, NULL, v0, g0);
            run_op(ctx, lpi, A, lE, nd, codes, &checked, v1, g1);
            for (int b = 0; b < (nd == 2 ? B : 1); b++) {
                ck_assert_msg(v0[b] == v1[b], "rep %d nd %d seq %d: %.17g vs %.17g", rep, nd, b, v0[b], v1[b]);
                if (nd == 2 && Ls[b] == 0) ck_assert(v1[b] == 0.0); /* an empty sequence */
                else ck_assert(isfinite(v1[b]) && v1[b] < 0);
            }
            for (int i = 0; i < K + K * K + K * V; i++)
                ck_assert_msg(g0[i] == g1[i], "rep %d nd %d grad %d: %.17g vs %.17g", rep, nd, i, g0[i], g1[i]);
        }
    }
    /* the lengths matter: a batch with the lengths cut gives other values */
    double v2[B], g2[K + K * K + K * V], v3[B];
    run_op(ctx, lpi, A, lE, 2, codes, &checked, v2, g2);
    codes[0 * T + 30] = -1; /* sequence 0 now has 30 steps, as every entry after it says */
    for (int t = 31; t < T; t++) codes[t] = -1;
    run_op(ctx, lpi, A, lE, 2, codes, &checked, v3, g2);
    ck_assert(v3[0] != v2[0] && v3[0] > v2[0]);
    for (int b = 1; b < B; b++) ck_assert(v3[b] == v2[b]);
    bk_ctx_free(ctx);
}
END_TEST

/* Without the flag the op checks every symbol, with the same message. */
START_TEST(unchecked_codes_are_checked) {
    bk_ctx *ctx = bk_ctx_new(NULL);
    double lpi[K] = {log(0.5), log(0.3), log(0.2)}, A[K * K], lE[K * V];
    for (int i = 0; i < K * K; i++) A[i] = 1.0 / K;
    for (int i = 0; i < K * V; i++) lE[i] = -log((double)V);
    static const double bad[][4] = {{0, 2.5, 1, 3}, {0, 1, 10, 3}, {0, 1, NAN, 3}};
    static const char *const msg[] = {"hmm_forward_cat: symbol 2.5 is not an integer in [0, 10)",
                                      "hmm_forward_cat: symbol 10 is not an integer in [0, 10)",
                                      "hmm_forward_cat: symbol nan is not an integer in [0, 10)"};
    for (int c = 0; c < 3; c++) {
        bk_tensor *in[4] = {tensor(ctx, 1, (int64_t[]){K}, lpi), tensor(ctx, 2, (int64_t[]){K, K}, A),
                            tensor(ctx, 2, (int64_t[]){K, V}, lE), tensor(ctx, 1, (int64_t[]){4}, bad[c])};
        bk_opargs none;
        memset(&none, 0, sizeof none);
        for (int withargs = 0; withargs < 2; withargs++) {
            ck_assert(bk_apply(ctx, BK_OP_HMM_FORWARD_CAT, 4, in, withargs ? &none : NULL) == NULL);
            ck_assert_str_eq(bk_errmsg(ctx), msg[c]);
        }
        for (int i = 0; i < 4; i++) bk_release(in[i]);
    }
    bk_ctx_free(ctx);
}
END_TEST

/* DiscreteHMM.log_prob (the flagged op) against the checking op on the
 * same normalized parameters: values and gradients bit for bit; a bad
 * observation is outside the Categorical's support. */
START_TEST(log_prob_matches_checking_op) {
    rt_vm *vm = rt_vm_new(NULL);
    bk_ctx *ctx = rt_vm_bk(vm);
    bk_rng r;
    bk_rng_init(&r, 5, 0);
    double lpi[K], A[K * K], lE[K * V], y[T], pi[K], E[K * V];
    rand_params(&r, lpi, A, lE);
    double s = 0;
    for (int k = 0; k < K; k++) s += pi[k] = exp(lpi[k]);
    for (int k = 0; k < K; k++) pi[k] /= s;
    for (int i = 0; i < K * V; i++) E[i] = exp(lE[i]);
    for (int t = 0; t < T; t++) y[t] = (double)(bk_rng_u32(&r) % V);
    bk_tensor *tp = tensor(ctx, 1, (int64_t[]){K}, pi), *tA = tensor(ctx, 2, (int64_t[]){K, K}, A);
    bk_tensor *tE = tensor(ctx, 2, (int64_t[]){K, V}, E), *ty = tensor(ctx, 1, (int64_t[]){T}, y);
    sl_dist *em = sl_dist_make(ctx, sl_find_family("Categorical"), 0, 1, &tE);
    sl_dist *h = em ? sl_hmm_make(ctx, tp, tA, em, 0, -1) : NULL;
    ck_assert_msg(h != NULL, "%s", bk_errmsg(ctx));
    bk_tensor *leafE = h->sub[0]->p[0]; /* the emission's probs, as the model holds them */
    bk_set_requires_grad(leafE, true);
    bool on = bk_set_grad_enabled(ctx, true);
    bk_tensor *lp = sl_log_prob(ctx, h, ty);
    ck_assert_msg(lp && bk_backward(ctx, lp) == 0, "%s", bk_errmsg(ctx));
    bk_set_grad_enabled(ctx, on);
    ck_assert(leafE->grad != NULL);
    double gE[K * V], lpv = bk_item(lp);
    bk_copy_out(leafE->grad, gE);
    bk_tape_reset(ctx);
    bk_release(lp);
    /* the reference: the op without arguments on log(pi), A, log(E / row sums) */
    double lp_ref, g_ref[K + K * K + K * V], lEn[K * V];
    for (int k = 0; k < K; k++) {
        double rs = 0;
        for (int v = 0; v < V; v++) rs += E[k * V + v];
        for (int v = 0; v < V; v++) lEn[k * V + v] = log(E[k * V + v] / rs);
    }
    double lpn[K];
    for (int k = 0; k < K; k++) lpn[k] = log(pi[k]);
    run_op(ctx, lpn, A, lEn, 1, y, NULL, &lp_ref, g_ref);
    ck_assert_msg(fabs(lpv - lp_ref) <= 1e-12 * fabs(lp_ref), "%.17g vs %.17g", lpv, lp_ref);
    /* d/dE[k, v] = (d/dlogE[k, v] - p(v | k) sum_u d/dlogE[k, u]) / E[k, v] (E rows sum to 1) */
    for (int k = 0; k < K; k++) {
        double gs = 0;
        for (int v = 0; v < V; v++) gs += g_ref[K + K * K + k * V + v];
        for (int v = 0; v < V; v++) {
            double want = (g_ref[K + K * K + k * V + v] - exp(lEn[k * V + v]) * gs) / E[k * V + v];
            double got = gE[k * V + v];
            ck_assert_msg(fabs(got - want) <= 1e-9 * fmax(1, fabs(want)), "dE[%d, %d]: %.17g vs %.17g", k, v, got,
                          want);
        }
    }
    /* bad observations: not codes, the Categorical's -inf */
    y[7] = 2.5;
    bk_tensor *tb = tensor(ctx, 1, (int64_t[]){T}, y);
    bk_tensor *lb = sl_log_prob(ctx, h, tb);
    ck_assert_msg(lb != NULL, "%s", bk_errmsg(ctx));
    ck_assert(bk_item(lb) == -INFINITY);
    bk_release(lb);
    bk_release(tb);
    bk_release(tp);
    bk_release(tA);
    bk_release(tE);
    bk_release(ty);
    sl_dist_release(em);
    sl_dist_release(h);
    rt_vm_free(vm);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("hmm checked codes");
    TCase *t = tcase_create("core");
    tcase_add_test(t, checked_codes_match_checking_op);
    tcase_add_test(t, unchecked_codes_are_checked);
    tcase_add_test(t, log_prob_matches_checking_op);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
