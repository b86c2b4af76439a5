/* test_constraint.c - bijections to unconstrained space: round trips,
 * support membership for large |u|, log|det J| against a numerical
 * Jacobian of the free coordinates, and tape gradients of the transformed
 * value against finite differences. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "constraint.h"

static uint64_t state = 88172645463325252ULL;
static double urand(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}

typedef struct ccase {
    int kind;
    int ndim;
    int64_t shape[2];  /* constrained shape */
    double lo, hi;     /* bounds where used */
} ccase;

static const ccase CASES[] = {
    {SL_C_REAL, 1, {3, 0}, 0, 0},
    {SL_C_POSITIVE, 1, {3, 0}, 0, 0},
    {SL_C_GREATER_THAN, 1, {3, 0}, -2, 0},
    {SL_C_LESS_THAN, 1, {3, 0}, 0, 5},
    {SL_C_INTERVAL, 1, {3, 0}, -1, 4},
    {SL_C_UNIT_INTERVAL, 1, {3, 0}, 0, 0},
    {SL_C_SIMPLEX, 1, {4, 0}, 0, 0},
    {SL_C_ORDERED, 1, {4, 0}, 0, 0},
    {SL_C_POSITIVE_ORDERED, 1, {4, 0}, 0, 0},
    {SL_C_LOWER_CHOLESKY, 2, {3, 3}, 0, 0},
    {SL_C_CORR_CHOLESKY, 2, {3, 3}, 0, 0},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static sl_constraint make(bk_ctx *c, const ccase *k) {
    sl_constraint s = {.kind = k->kind};
    if (k->kind == SL_C_GREATER_THAN || k->kind == SL_C_INTERVAL) s.lo = bk_scalar(c, k->lo);
    if (k->kind == SL_C_LESS_THAN || k->kind == SL_C_INTERVAL) s.hi = bk_scalar(c, k->hi);
    return s;
}

/* x = T(u) flattened, for the numerical Jacobian */
static void forward(bk_ctx *c, sl_constraint *s, const ccase *k, const double *u, int64_t m, double *x,
                    double *logdet) {
    bk_tensor *ut = bk_from_f64(c, 1, &m, u);
    int64_t us[2];
    int und;
    ck_assert(sl_unconstrained_shape(c, s, k->ndim, k->shape, &und, us) == 0);
    bk_tensor *ur = bk_reshape(c, ut, und, us);
    bk_tensor *ld = NULL;
    bk_tensor *xt = sl_to_constrained(c, s, ur, k->ndim, k->shape, &ld);
    ck_assert_msg(xt != NULL, "%s: %s", sl_constraint_name(k->kind), bk_errmsg(c));
    bk_copy_out(xt, x);
    *logdet = bk_item(ld);
    bk_release(ut);
    bk_release(ur);
    bk_release(xt);
    bk_release(ld);
}

START_TEST(round_trip_support_and_jacobian) {
    const ccase *k = &CASES[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    sl_constraint s = make(c, k);
    int64_t us[2];
    int und;
    ck_assert(sl_unconstrained_shape(c, &s, k->ndim, k->shape, &und, us) == 0);
    int64_t m = 1, n = 1;
    for (int d = 0; d < und; d++) m *= us[d];
    for (int d = 0; d < k->ndim; d++) n *= k->shape[d];
    double u[16], x[16], x2[16], ld;
    for (int scale = 1; scale <= 8; scale *= 8) {
        for (int64_t i = 0; i < m; i++) u[i] = (2 * urand() - 1) * scale;
        forward(c, &s, k, u, m, x, &ld);
        /* support membership */
        bk_tensor *xt = bk_from_f64(c, k->ndim, k->shape, x);
        bk_tensor *ok = sl_check(c, &s, xt);
        for (int64_t i = 0; i < ok->numel; i++)
            ck_assert_msg(bk_get(ok, i) == 1, "%s: x outside the support for |u| ~ %d", sl_constraint_name(k->kind), scale);
        bk_release(ok);
        /* round trip */
        bk_tensor *back = sl_to_unconstrained(c, &s, xt);
        ck_assert_msg(back != NULL, "%s inverse: %s", sl_constraint_name(k->kind), bk_errmsg(c));
        for (int64_t i = 0; i < m; i++)
            ck_assert_msg(fabs(bk_get(back, i) - u[i]) < 1e-8 * fmax(1, fabs(u[i])),
                          "%s: round trip u[%lld] %g -> %g", sl_constraint_name(k->kind), (long long)i, u[i], bk_get(back, i));
        bk_release(back);
        bk_release(xt);
    }
    /* log|det J| against a numerical Jacobian on the free coordinates: for
     * square maps all of x; simplex drops the last coordinate; cholesky
     * factors use the lower triangle (strict for corr_cholesky) */
    for (int64_t i = 0; i < m; i++) u[i] = 2 * urand() - 1;
    forward(c, &s, k, u, m, x, &ld);
    int64_t free_idx[16], nf = 0;
    for (int64_t i = 0; i < n; i++) {
        if (k->kind == SL_C_SIMPLEX && i == n - 1) continue;
        if (k->ndim == 2) {
            int64_t r = i / k->shape[1], col = i % k->shape[1];
            if (col > r || (k->kind == SL_C_CORR_CHOLESKY && col == r)) continue;
        }
        free_idx[nf++] = i;
    }
    ck_assert_int_eq(nf, m);
    double J[16][16];
    for (int64_t j = 0; j < m; j++) {
        double h = 1e-6, up[16], ld2;
        memcpy(up, u, sizeof up);
        up[j] = u[j] + h;
        forward(c, &s, k, up, m, x2, &ld2);
        double xm[16];
        up[j] = u[j] - h;
        forward(c, &s, k, up, m, xm, &ld2);
        for (int64_t i = 0; i < m; i++) J[i][j] = (x2[free_idx[i]] - xm[free_idx[i]]) / (2 * h);
    }
    /* log|det J| by Gaussian elimination with partial pivoting */
    double logdet = 0;
    for (int64_t col = 0; col < m; col++) {
        int64_t p = col;
        for (int64_t r = col + 1; r < m; r++)
            if (fabs(J[r][col]) > fabs(J[p][col])) p = r;
        if (p != col)
            for (int64_t q = 0; q < m; q++) {
                double t = J[p][q];
                J[p][q] = J[col][q];
                J[col][q] = t;
            }
        logdet += log(fabs(J[col][col]));
        for (int64_t r = col + 1; r < m; r++) {
            double f = J[r][col] / J[col][col];
            for (int64_t q = col; q < m; q++) J[r][q] -= f * J[col][q];
        }
    }
    ck_assert_msg(fabs(logdet - ld) < 1e-6 * fmax(1, fabs(ld)), "%s: log|det J| %.10g, numerical %.10g",
                  sl_constraint_name(k->kind), ld, logdet);
    sl_constraint_clear(&s);
    bk_tape_reset(c);
    bk_ctx_free(c);
}
END_TEST

START_TEST(interval_bounds_are_differentiable) {
    /* d x / d hi for x = lo + (hi - lo) sigmoid(u) is sigmoid(u) */
    bk_ctx *c = bk_ctx_new(NULL);
    sl_constraint s = {.kind = SL_C_INTERVAL, .lo = bk_scalar(c, 0.0), .hi = bk_scalar(c, 2.0)};
    bk_set_requires_grad(s.hi, true);
    bk_tensor *u = bk_scalar(c, 0.3);
    bk_tensor *x = sl_to_constrained(c, &s, u, 0, NULL, NULL);
    ck_assert(bk_backward(c, x) == 0);
    ck_assert(fabs(bk_item(s.hi->grad) - 1 / (1 + exp(-0.3))) < 1e-12);
    bk_release(x);
    bk_release(u);
    bk_tape_reset(c);
    sl_constraint_clear(&s);
    bk_ctx_free(c);
}
END_TEST

START_TEST(names) {
    int n;
    ck_assert_int_eq(sl_constraint_lookup("interval", &n), SL_C_INTERVAL);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(sl_constraint_lookup("postive", &n), -1);
    ck_assert_str_eq(sl_constraint_name(SL_C_SIMPLEX), "simplex");
}
END_TEST

int main(void) {
    Suite *s = suite_create("constraint");
    TCase *tc = tcase_create("constraint");
    tcase_add_loop_test(tc, round_trip_support_and_jacobian, 0, NCASES);
    tcase_add_test(tc, interval_bounds_are_differentiable);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
