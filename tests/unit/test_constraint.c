/* test_constraint.c - bijections to unconstrained space: round trips,
 * support membership for large |u|, log|det J| against a numerical
 * Jacobian of the free coordinates, tape gradients of the transformed
 * value against finite differences, batch shapes, discrete supports,
 * allocation failures; and the flow transforms of transform.h. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "constraint.h"
#include "transform.h"

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
    static const int scales[] = {1, 8, 30};
    for (int si = 0; si < 3; si++) {
        int scale = scales[si];
        for (int64_t i = 0; i < m; i++) u[i] = (2 * urand() - 1) * scale;
        forward(c, &s, k, u, m, x, &ld);
        /* support membership */
        bk_tensor *xt = bk_from_f64(c, k->ndim, k->shape, x);
        bk_tensor *ok = sl_check(c, &s, xt);
        for (int64_t i = 0; i < ok->numel; i++)
            ck_assert_msg(bk_get(ok, i) == 1, "%s: x outside the support for |u| ~ %d", sl_constraint_name(k->kind), scale);
        bk_release(ok);
        ck_assert_msg(isfinite(ld), "%s: log|det J| %g for |u| ~ %d", sl_constraint_name(k->kind), ld, scale);
        /* round trip (for |u| ~ 30 the constrained value itself has lost
         * the digits that would give u back, e.g. ordered increments e^-30) */
        if (scale > 8) {
            bk_release(xt);
            continue;
        }
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
    for (int k = 0; k < SL_C_COUNT; k++) {
        ck_assert_int_eq(sl_constraint_lookup(sl_constraint_name(k), &n), k);
        int want = k == SL_C_INTERVAL || k == SL_C_INTEGER_INTERVAL ? 2
                   : k == SL_C_GREATER_THAN || k == SL_C_LESS_THAN ? 1 : 0;
        ck_assert_int_eq(n, want);
        sl_constraint sc = {.kind = k};
        ck_assert(sl_constraint_is_discrete(&sc) == (k >= SL_C_BOOLEAN));
    }
    ck_assert_int_eq(sl_constraint_lookup("postive", &n), -1);
    ck_assert_str_eq(sl_constraint_name(SL_C_SIMPLEX), "simplex");
    ck_assert_str_eq(sl_constraint_name(SL_C_NONNEG_INTEGER), "nonnegative_integer");
}
END_TEST

/* Loss = sum(w * x) + log|det J|: its tape gradient w.r.t. u must match
 * central differences of the same loss. */
static double loss_at(bk_ctx *c, sl_constraint *s, const ccase *k, const double *u, int64_t m, const double *w) {
    double x[16], ld, r = 0;
    int64_t n = 1;
    for (int d = 0; d < k->ndim; d++) n *= k->shape[d];
    forward(c, s, k, u, m, x, &ld);
    for (int64_t i = 0; i < n; i++) r += w[i] * x[i];
    return r + ld;
}

START_TEST(tape_gradient_matches_finite_differences) {
    const ccase *k = &CASES[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    sl_constraint s = make(c, k);
    int64_t us[2];
    int und;
    ck_assert(sl_unconstrained_shape(c, &s, k->ndim, k->shape, &und, us) == 0);
    int64_t m = 1, n = 1;
    for (int d = 0; d < und; d++) m *= us[d];
    for (int d = 0; d < k->ndim; d++) n *= k->shape[d];
    double u[16], w[16];
    for (int64_t i = 0; i < m; i++) u[i] = 2 * urand() - 1;
    for (int64_t i = 0; i < n; i++) w[i] = 2 * urand() - 1;
    bk_tensor *ut = bk_from_f64(c, und, us, u);
    bk_set_requires_grad(ut, true);
    bk_tensor *ld = NULL;
    bk_tensor *x = sl_to_constrained(c, &s, ut, k->ndim, k->shape, &ld);
    ck_assert_msg(x && ld, "%s", bk_errmsg(c));
    bk_tensor *wt = bk_from_f64(c, k->ndim, k->shape, w);
    bk_tensor *wx = bk_mul(c, wt, x), *swx = bk_sum_all(c, wx), *loss = bk_add(c, swx, ld);
    ck_assert(bk_backward(c, loss) == 0);
    ck_assert_msg(ut->grad != NULL, "%s: no gradient", sl_constraint_name(k->kind));
    for (int64_t j = 0; j < m; j++) {
        double h = 1e-5, up[16];
        memcpy(up, u, sizeof up);
        up[j] = u[j] + h;
        double fp = loss_at(c, &s, k, up, m, w);
        up[j] = u[j] - h;
        double fm = loss_at(c, &s, k, up, m, w);
        double num = (fp - fm) / (2 * h), got = bk_get(ut->grad, j);
        ck_assert_msg(fabs(num - got) < 1e-6 * fmax(1, fabs(num)), "%s: d loss / d u[%lld] tape %.10g, numerical %.10g",
                      sl_constraint_name(k->kind), (long long)j, got, num);
    }
    bk_tape_reset(c);
    bk_release(loss);
    bk_release(swx);
    bk_release(wx);
    bk_release(wt);
    bk_release(x);
    bk_release(ld);
    bk_release(ut);
    sl_constraint_clear(&s);
    bk_ctx_free(c);
}
END_TEST

START_TEST(bounds_gradients_through_logdet) {
    /* d/d lo and d/d hi of sum(x) + log|det J| for interval(lo, hi) with
     * vector bounds, against central differences */
    bk_ctx *c = bk_ctx_new(NULL);
    double u[3] = {-0.7, 0.2, 1.9}, lo[3] = {-1, 0, 2}, hi[3] = {1, 3, 2.5};
    double g[2][3];
    for (int rep = 0; rep < 2; rep++) {
        sl_constraint s = {.kind = SL_C_INTERVAL, .lo = bk_from_f64(c, 1, (int64_t[]){3}, lo),
                           .hi = bk_from_f64(c, 1, (int64_t[]){3}, hi)};
        bk_set_requires_grad(s.lo, true);
        bk_set_requires_grad(s.hi, true);
        bk_tensor *ut = bk_from_f64(c, 1, (int64_t[]){3}, u), *ld;
        bk_tensor *x = sl_to_constrained(c, &s, ut, 1, (int64_t[]){3}, &ld);
        bk_tensor *sx = bk_sum_all(c, x), *loss = bk_add(c, sx, ld);
        ck_assert(bk_backward(c, loss) == 0);
        for (int i = 0; i < 3; i++) {
            g[0][i] = bk_get(s.lo->grad, i);
            g[1][i] = bk_get(s.hi->grad, i);
        }
        bk_tape_reset(c);
        bk_release(loss);
        bk_release(sx);
        bk_release(x);
        bk_release(ld);
        bk_release(ut);
        sl_constraint_clear(&s);
    }
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < 3; i++) {
            double f[2];
            for (int sg = 0; sg < 2; sg++) {
                double l2[3], h2[3], h = 1e-6;
                memcpy(l2, lo, sizeof l2);
                memcpy(h2, hi, sizeof h2);
                (which ? h2 : l2)[i] += sg ? -h : h;
                sl_constraint s = {.kind = SL_C_INTERVAL, .lo = bk_from_f64(c, 1, (int64_t[]){3}, l2),
                                   .hi = bk_from_f64(c, 1, (int64_t[]){3}, h2)};
                bk_tensor *ut = bk_from_f64(c, 1, (int64_t[]){3}, u), *ld;
                bk_tensor *x = sl_to_constrained(c, &s, ut, 1, (int64_t[]){3}, &ld);
                double sx = 0;
                for (int q = 0; q < 3; q++) sx += bk_get(x, q);
                f[sg] = sx + bk_item(ld);
                bk_release(x);
                bk_release(ld);
                bk_release(ut);
                sl_constraint_clear(&s);
            }
            double num = (f[0] - f[1]) / 2e-6;
            ck_assert_msg(fabs(num - g[which][i]) < 1e-6, "%s[%d]: tape %g numerical %g", which ? "hi" : "lo", i,
                          g[which][i], num);
        }
    bk_ctx_free(c);
}
END_TEST

START_TEST(simplex_and_ordered_batches) {
    /* A batch of rows transforms row by row; log|det J| adds up. */
    bk_ctx *c = bk_ctx_new(NULL);
    static const int kinds[] = {SL_C_SIMPLEX, SL_C_ORDERED, SL_C_POSITIVE_ORDERED, SL_C_POSITIVE};
    for (int ki = 0; ki < 4; ki++) {
        sl_constraint s = {.kind = kinds[ki]};
        int64_t shape[2] = {2, 4}, us[2];
        int und;
        ck_assert(sl_unconstrained_shape(c, &s, 2, shape, &und, us) == 0);
        ck_assert_int_eq(und, 2);
        ck_assert_int_eq(us[0], 2);
        ck_assert_int_eq(us[1], kinds[ki] == SL_C_SIMPLEX ? 3 : 4);
        double u[8];
        for (int i = 0; i < 8; i++) u[i] = 2 * urand() - 1;
        bk_tensor *ut = bk_from_f64(c, 2, us, u), *ld;
        bk_tensor *x = sl_to_constrained(c, &s, ut, 2, shape, &ld);
        ck_assert_msg(x != NULL, "%s", bk_errmsg(c));
        ck_assert(x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 4 && ld->ndim == 0);
        double ldsum = 0;
        for (int r = 0; r < 2; r++) {
            bk_tensor *row = bk_from_f64(c, 1, &us[1], u + r * us[1]), *lr;
            bk_tensor *xr = sl_to_constrained(c, &s, row, 1, &shape[1], &lr);
            for (int j = 0; j < 4; j++) ck_assert(fabs(bk_get(xr, j) - bk_get(x, r * 4 + j)) < 1e-14);
            ldsum += bk_item(lr);
            bk_release(row);
            bk_release(xr);
            bk_release(lr);
        }
        ck_assert(fabs(ldsum - bk_item(ld)) < 1e-12);
        bk_tensor *ok = sl_check(c, &s, x);
        int64_t want = kinds[ki] == SL_C_POSITIVE ? 8 : 2; /* per event for vector supports */
        ck_assert_int_eq(ok->numel, want);
        for (int64_t i = 0; i < want; i++) ck_assert(bk_get(ok, i) == 1);
        bk_tensor *back = sl_to_unconstrained(c, &s, x);
        ck_assert(back && back->shape[1] == us[1]);
        for (int i = 0; i < 8 && i < back->numel; i++) ck_assert(fabs(bk_get(back, i) - u[i]) < 1e-10);
        bk_release(back);
        bk_release(ok);
        bk_release(x);
        bk_release(ld);
        bk_release(ut);
    }
    bk_ctx_free(c);
}
END_TEST

START_TEST(special_values) {
    bk_ctx *c = bk_ctx_new(NULL);
    /* u = 0 maps to the uniform simplex */
    sl_constraint s = {.kind = SL_C_SIMPLEX};
    bk_tensor *z = bk_zeros(c, BK_F64, 1, (int64_t[]){4});
    bk_tensor *x = sl_to_constrained(c, &s, z, 1, (int64_t[]){5}, NULL);
    for (int i = 0; i < 5; i++) ck_assert(fabs(bk_get(x, i) - 0.2) < 1e-15);
    bk_release(x);
    bk_release(z);
    /* a one-category simplex has no free values */
    z = bk_zeros(c, BK_F64, 1, (int64_t[]){0});
    x = sl_to_constrained(c, &s, z, 1, (int64_t[]){1}, NULL);
    ck_assert(x && x->numel == 1 && bk_item(x) == 1);
    bk_tensor *back = sl_to_unconstrained(c, &s, x);
    ck_assert(back && back->ndim == 1 && back->shape[0] == 0);
    bk_release(back);
    bk_release(x);
    bk_release(z);
    /* u = 0 maps to the identity correlation factor */
    s.kind = SL_C_CORR_CHOLESKY;
    z = bk_zeros(c, BK_F64, 1, (int64_t[]){6});
    x = sl_to_constrained(c, &s, z, 2, (int64_t[]){4, 4}, NULL);
    for (int i = 0; i < 16; i++) ck_assert(bk_get(x, i) == (i % 5 == 0));
    bk_release(x);
    bk_release(z);
    /* saturated unit_interval and corr_cholesky stay inside the support
     * with a finite log|det J| */
    int kinds[2] = {SL_C_UNIT_INTERVAL, SL_C_CORR_CHOLESKY};
    for (int ki = 0; ki < 2; ki++) {
        s.kind = kinds[ki];
        double big[3] = {50, -50, 50};
        bk_tensor *u = bk_from_f64(c, 1, (int64_t[]){3}, big), *ld;
        x = sl_to_constrained(c, &s, u, ki ? 2 : 1, ki ? (int64_t[]){3, 3} : (int64_t[]){3}, &ld);
        bk_tensor *ok = sl_check(c, &s, x);
        for (int64_t i = 0; i < ok->numel; i++) ck_assert(bk_get(ok, i) == 1);
        ck_assert(isfinite(bk_item(ld)));
        bk_release(ok);
        bk_release(ld);
        bk_release(x);
        bk_release(u);
    }
    bk_ctx_free(c);
}
END_TEST

START_TEST(shapes_and_errors) {
    bk_ctx *c = bk_ctx_new(NULL);
    int und;
    int64_t us[BK_MAXDIM];
    sl_constraint s = {.kind = SL_C_LOWER_CHOLESKY};
    ck_assert(sl_unconstrained_shape(c, &s, 2, (int64_t[]){4, 4}, &und, us) == 0);
    ck_assert(und == 1 && us[0] == 10);
    s.kind = SL_C_CORR_CHOLESKY;
    ck_assert(sl_unconstrained_shape(c, &s, 2, (int64_t[]){4, 4}, &und, us) == 0);
    ck_assert(und == 1 && us[0] == 6);
    ck_assert(sl_unconstrained_shape(c, &s, 2, (int64_t[]){3, 4}, &und, us) == -1);
    ck_assert_str_eq(bk_errmsg(c), "corr_cholesky needs a square matrix");
    s.kind = SL_C_SIMPLEX;
    ck_assert(sl_unconstrained_shape(c, &s, 0, NULL, &und, us) == -1);
    s.kind = SL_C_POSITIVE;
    ck_assert(sl_unconstrained_shape(c, &s, 3, (int64_t[]){2, 3, 4}, &und, us) == 0);
    ck_assert(und == 3 && us[0] == 2 && us[1] == 3 && us[2] == 4);
    /* discrete supports: membership only */
    double v[6] = {0, 1, 2, -1, 0.5, 3};
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){6}, v);
    struct {
        int kind;
        double want[6];
    } dk[] = {
        {SL_C_BOOLEAN, {1, 1, 0, 0, 0, 0}},
        {SL_C_NONNEG_INTEGER, {1, 1, 1, 0, 0, 1}},
        {SL_C_INTEGER_INTERVAL, {1, 1, 1, 0, 0, 0}},
    };
    for (int i = 0; i < 3; i++) {
        sl_constraint d = {.kind = dk[i].kind};
        if (d.kind == SL_C_INTEGER_INTERVAL) {
            d.lo = bk_scalar(c, 0);
            d.hi = bk_scalar(c, 2);
        }
        bk_tensor *ok = sl_check(c, &d, x);
        for (int j = 0; j < 6; j++) ck_assert_msg(bk_get(ok, j) == dk[i].want[j], "%s at %g", sl_constraint_name(d.kind), v[j]);
        bk_release(ok);
        ck_assert(sl_to_constrained(c, &d, x, 1, (int64_t[]){6}, NULL) == NULL);
        ck_assert(strstr(bk_errmsg(c), "has no transform"));
        sl_constraint_clear(&d);
    }
    /* continuous checks: open bounds, NaN is outside every support */
    double w[4] = {0, 1, NAN, 0.5};
    bk_tensor *xw = bk_from_f64(c, 1, (int64_t[]){4}, w);
    sl_constraint ui = {.kind = SL_C_UNIT_INTERVAL};
    bk_tensor *ok = sl_check(c, &ui, xw);
    ck_assert(bk_get(ok, 0) == 0 && bk_get(ok, 1) == 0 && bk_get(ok, 2) == 0 && bk_get(ok, 3) == 1);
    bk_release(ok);
    bk_release(xw);
    bk_release(x);
    bk_ctx_free(c);
}
END_TEST

START_TEST(allocation_failures_do_not_leak) {
    /* Every allocation of a transform may fail: the result is NULL with a
     * message, never a crash or a leak (AddressSanitizer checks). */
    const ccase *k = &CASES[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    sl_constraint s = make(c, k);
    int64_t us[2];
    int und;
    ck_assert(sl_unconstrained_shape(c, &s, k->ndim, k->shape, &und, us) == 0);
    double u[16] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6};
    bk_tensor *ut = bk_from_f64(c, und, us, u);
    bk_set_requires_grad(ut, true);
    for (long n = 1; n < 400; n++) {
        bk_fail_alloc_after(c, n);
        bk_tensor *ld = NULL;
        bk_tensor *x = sl_to_constrained(c, &s, ut, k->ndim, k->shape, &ld);
        bk_fail_alloc_after(c, 0);
        bk_tape_reset(c);
        if (x) {
            ck_assert(ld != NULL);
            bk_release(x);
            bk_release(ld);
            break;
        }
        ck_assert(ld == NULL);
        ck_assert(bk_errmsg(c)[0] != 0);
        bk_clearerr(c);
    }
    bk_release(ut);
    sl_constraint_clear(&s);
    bk_ctx_free(c);
}
END_TEST

/* ----------------------------------------------------------- transforms --- */

typedef struct tcase_ {
    const char *what;
    int kind;          /* sl_tkind, or -1 for the composition below */
    double lo, hi;     /* range of test inputs */
} tcase_;

static const tcase_ TCASES[] = {
    {"exp", SL_T_EXP, -5, 5},        {"sigmoid", SL_T_SIGMOID, -8, 8}, {"tanh", SL_T_TANH, -4, 4},
    {"affine", SL_T_AFFINE, -3, 3},  {"softplus", SL_T_SOFTPLUS, -6, 6}, {"power", SL_T_POWER, 0.1, 3},
    {"compose", SL_T_COMPOSE, -2, 2},
};
#define NTCASES ((int)(sizeof TCASES / sizeof TCASES[0]))

static sl_transform *make_transform(bk_ctx *c, int kind) {
    switch (kind) {
    case SL_T_AFFINE: {
        bk_tensor *loc = bk_from_f64(c, 1, (int64_t[]){3}, (double[]){1, -2, 0.5}), *scale = bk_scalar(c, -2.5);
        sl_transform *t = sl_transform_affine(c, loc, scale);
        bk_release(loc);
        bk_release(scale);
        return t;
    }
    case SL_T_POWER: {
        bk_tensor *e = bk_scalar(c, 2.5);
        sl_transform *t = sl_transform_power(c, e);
        bk_release(e);
        return t;
    }
    case SL_T_COMPOSE: {
        /* x -> tanh(1 + 2x) -> exp(.) */
        sl_transform *a = make_transform(c, SL_T_AFFINE), *b = sl_transform_new(c, SL_T_TANH),
                     *e = sl_transform_new(c, SL_T_EXP);
        sl_transform *parts[3] = {a, b, e};
        sl_transform *t = sl_transform_compose(c, 3, parts);
        sl_transform_release(a);
        sl_transform_release(b);
        sl_transform_release(e);
        return t;
    }
    default: return sl_transform_new(c, kind);
    }
}

static double fwd1(bk_ctx *c, const sl_transform *t, double x, int i) {
    double xs[3] = {x, x, x};
    bk_tensor *xt = bk_from_f64(c, 1, (int64_t[]){3}, xs), *y = sl_transform_forward(c, t, xt);
    double r = bk_get(y, i);
    bk_release(xt);
    bk_release(y);
    return r;
}

START_TEST(transform_round_trip_jacobian_gradient) {
    const tcase_ *k = &TCASES[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    sl_transform *t = make_transform(c, k->kind);
    ck_assert_msg(t != NULL, "%s", bk_errmsg(c));
    double xs[3];
    for (int i = 0; i < 3; i++) xs[i] = k->lo + (k->hi - k->lo) * urand();
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){3}, xs);
    bk_set_requires_grad(x, true);
    bk_tensor *y = sl_transform_forward(c, t, x);
    ck_assert_msg(y != NULL, "%s: %s", k->what, bk_errmsg(c));
    /* round trip */
    bk_tensor *back = sl_transform_inverse(c, t, y);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(fabs(bk_get(back, i) - xs[i]) < 1e-9, "%s: x %g -> %g", k->what, xs[i], bk_get(back, i));
    /* log|dy/dx| elementwise against central differences */
    bk_tensor *ladj = sl_transform_log_abs_det_jacobian(c, t, x, y);
    bk_tensor *ladj2 = sl_transform_log_abs_det_jacobian(c, t, x, NULL);
    ck_assert_msg(ladj && ladj->ndim == 1 && ladj->shape[0] == 3, "%s", k->what);
    double dydx[3];
    for (int i = 0; i < 3; i++) {
        double h = 1e-6;
        dydx[i] = (fwd1(c, t, xs[i] + h, i) - fwd1(c, t, xs[i] - h, i)) / (2 * h);
        double want = log(fabs(dydx[i]));
        ck_assert_msg(fabs(bk_get(ladj, i) - want) < 1e-6 * fmax(1, fabs(want)), "%s: ladj %g, numerical %g", k->what,
                      bk_get(ladj, i), want);
        ck_assert(fabs(bk_get(ladj2, i) - bk_get(ladj, i)) < 1e-14);
    }
    /* d/dx of sum(y) + sum(ladj) through the tape: dy/dx + d ladj/dx */
    bk_tensor *sy = bk_sum_all(c, y), *sl = bk_sum_all(c, ladj), *loss = bk_add(c, sy, sl);
    ck_assert(bk_backward(c, loss) == 0);
    for (int i = 0; i < 3; i++) {
        double h = 1e-5;
        double lp = log(fabs((fwd1(c, t, xs[i] + 2 * h, i) - fwd1(c, t, xs[i], i)) / (2 * h)));
        double lm = log(fabs((fwd1(c, t, xs[i], i) - fwd1(c, t, xs[i] - 2 * h, i)) / (2 * h)));
        double want = dydx[i] + (lp - lm) / (2 * h);
        ck_assert_msg(fabs(bk_get(x->grad, i) - want) < 1e-4 * fmax(1, fabs(want)), "%s: grad %g, numerical %g", k->what,
                      bk_get(x->grad, i), want);
    }
    bk_tape_reset(c);
    bk_release(loss);
    bk_release(sy);
    bk_release(sl);
    bk_release(ladj);
    bk_release(ladj2);
    bk_release(back);
    bk_release(y);
    bk_release(x);
    sl_transform_release(t);
    bk_ctx_free(c);
}
END_TEST

START_TEST(transform_parameters_and_kinds) {
    bk_ctx *c = bk_ctx_new(NULL);
    /* the gradient reaches an affine scale that requires grad:
     * d/ds sum(loc + s x) + sum(log|s|) = sum(x) + n / s */
    bk_tensor *loc = bk_scalar(c, 1), *scale = bk_scalar(c, 2);
    bk_set_requires_grad(scale, true);
    sl_transform *t = sl_transform_affine(c, loc, scale);
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){3}, (double[]){0.5, -1, 2});
    bk_tensor *y = sl_transform_forward(c, t, x), *l = sl_transform_log_abs_det_jacobian(c, t, x, y);
    ck_assert(l->ndim == 1 && l->shape[0] == 3); /* broadcast to x's shape */
    bk_tensor *sy = bk_sum_all(c, y), *sl = bk_sum_all(c, l), *loss = bk_add(c, sy, sl);
    ck_assert(bk_backward(c, loss) == 0);
    ck_assert(fabs(bk_item(scale->grad) - (1.5 + 3 / 2.0)) < 1e-12);
    ck_assert_str_eq(sl_transform_name(t), "AffineTransform");
    bk_tape_reset(c);
    bk_release(loss);
    bk_release(sy);
    bk_release(sl);
    bk_release(l);
    bk_release(y);
    bk_release(x);
    bk_release(loc);
    bk_release(scale);
    /* domains and codomains; the empty composition is the identity */
    sl_transform *e = sl_transform_new(c, SL_T_EXP), *p = NULL;
    bk_tensor *ex = bk_scalar(c, 3);
    p = sl_transform_power(c, ex);
    sl_transform *parts[2] = {e, t};
    sl_transform *ct = sl_transform_compose(c, 2, parts), *id = sl_transform_compose(c, 0, NULL);
    ck_assert_int_eq(sl_transform_codomain(e), SL_C_POSITIVE);
    ck_assert_int_eq(sl_transform_domain(p), SL_C_POSITIVE);
    ck_assert_int_eq(sl_transform_domain(ct), SL_C_REAL);
    ck_assert_int_eq(sl_transform_codomain(ct), SL_C_REAL);
    bk_tensor *v = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){0.25, 4});
    bk_tensor *iv = sl_transform_forward(c, id, v), *il = sl_transform_log_abs_det_jacobian(c, id, v, NULL);
    ck_assert(bk_get(iv, 1) == 4 && bk_get(il, 0) == 0 && il->numel == 2);
    ck_assert(sl_transform_new(c, SL_T_AFFINE) == NULL);
    bk_release(iv);
    bk_release(il);
    bk_release(v);
    bk_release(ex);
    sl_transform_release(ct);
    sl_transform_release(id);
    sl_transform_release(p);
    sl_transform_release(e);
    sl_transform_release(t);
    bk_ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("constraint");
    TCase *tc = tcase_create("constraint");
    tcase_add_loop_test(tc, round_trip_support_and_jacobian, 0, NCASES);
    tcase_add_test(tc, interval_bounds_are_differentiable);
    tcase_add_test(tc, names);
    tcase_add_loop_test(tc, tape_gradient_matches_finite_differences, 0, NCASES);
    tcase_add_test(tc, bounds_gradients_through_logdet);
    tcase_add_test(tc, simplex_and_ordered_batches);
    tcase_add_test(tc, special_values);
    tcase_add_test(tc, shapes_and_errors);
    tcase_add_loop_test(tc, allocation_failures_do_not_leak, 0, NCASES);
    tcase_add_loop_test(tc, transform_round_trip_jacobian_gradient, 0, NTCASES);
    tcase_add_test(tc, transform_parameters_and_kinds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
