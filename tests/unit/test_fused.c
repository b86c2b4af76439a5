/* test_fused.c - the Normal log density as one fused kernel (FUSED op,
 * stdlib/dist_normal.c) against its closed form computed here in long
 * double, and its one-pass backward against central finite differences,
 * over the layouts the row driver distinguishes: one flat row (scalar
 * parameters, a vector of data), per-element scales (the scale row path),
 * NumPy broadcasting of all three inputs, a transposed (non-contiguous)
 * data view, float32 data, and a loss that reaches the kernel through a
 * stride-0 gradient (the gradient of a sum). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"

#define LOG_SQRT_2PI 0.91893853320467274178L

static uint64_t lcg = 42;
static double urand(double a, double b) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return a + (b - a) * (double)(lcg >> 11) / 9007199254740992.0;
}

static bk_tensor *rand_tensor(bk_ctx *c, int nd, const int64_t *shape, double a, double b) {
    bk_tensor *t = bk_empty(c, BK_F64, nd, shape);
    for (int64_t i = 0; i < t->numel; i++) bk_data(t)[i] = urand(a, b);
    return t;
}

/* Element e (row-major in the broadcast shape `os` of nd dims) of t. */
static double at(const bk_tensor *t, int nd, const int64_t *os, int64_t e) {
    int64_t idx[BK_MAXDIM], flat = 0, rem = e;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % os[d];
        rem /= os[d];
    }
    for (int d = 0; d < t->ndim; d++) {
        int od = d + nd - t->ndim;
        flat = flat * t->shape[d] + (t->shape[d] == 1 ? 0 : idx[od]);
    }
    return bk_get(t, flat);
}

typedef struct layout {
    const char *label;
    int nd[3];
    int64_t shape[3][3];
    bool transpose_x; /* x (2-d) passed as a transposed view */
    bool f32_x;       /* x as float32 */
} layout;

static const layout LAYOUTS[] = {
    {"flat row, scalar loc and scale", {1, 0, 0}, {{7}, {0}, {0}}, false, false},
    {"per-element scale", {1, 1, 1}, {{5}, {5}, {5}}, false, false},
    {"broadcast of all three", {2, 1, 2}, {{2, 3}, {3}, {2, 1}}, false, false},
    {"transposed data", {2, 2, 0}, {{3, 2}, {1, 2}, {0}}, true, false},
    {"float32 data", {1, 0, 1}, {{4}, {0}, {4}}, false, true},
};
#define NLAYOUTS ((int)(sizeof LAYOUTS / sizeof LAYOUTS[0]))

static bk_tensor *make_x(bk_ctx *c, const layout *L) {
    int64_t sh[3] = {L->shape[0][0], L->shape[0][1], L->shape[0][2]};
    if (!L->transpose_x) {
        bk_tensor *x = rand_tensor(c, L->nd[0], sh, -3, 3);
        if (!L->f32_x) return x;
        bk_tensor *f = bk_cast(c, x, BK_F32);
        bk_release(x);
        return f;
    }
    int64_t st[2] = {sh[1], sh[0]};
    bk_tensor *x = rand_tensor(c, 2, st, -3, 3);
    bk_tensor *v = bk_transpose(c, x, 0, 1);
    bk_release(x);
    return v;
}

/* sum(lp * w) through the fused kernel, grad off */
static double loss(bk_ctx *c, bk_tensor *x, bk_tensor *loc, bk_tensor *scale, const double *w) {
    bool g = bk_set_grad_enabled(c, false);
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){loc, scale});
    ck_assert_msg(d != NULL, "%s", bk_errmsg(c));
    bk_tensor *lp = sl_log_prob(c, d, x);
    ck_assert_msg(lp != NULL, "%s", bk_errmsg(c));
    double s = 0;
    for (int64_t e = 0; e < lp->numel; e++) s += bk_get(lp, e) * w[e];
    bk_release(lp);
    sl_dist_release(d);
    bk_set_grad_enabled(c, g);
    return s;
}

START_TEST(normal_values_match_closed_form) {
    const layout *L = &LAYOUTS[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = make_x(c, L);
    bk_tensor *loc = rand_tensor(c, L->nd[1], L->shape[1], -1, 1);
    bk_tensor *scale = rand_tensor(c, L->nd[2], L->shape[2], 0.3, 2.5);
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){loc, scale});
    bk_tensor *lp = sl_log_prob(c, d, x);
    ck_assert_msg(lp != NULL, "%s: %s", L->label, bk_errmsg(c));
    for (int64_t e = 0; e < lp->numel; e++) {
        long double xv = at(x, lp->ndim, lp->shape, e), m = at(loc, lp->ndim, lp->shape, e),
                    s = at(scale, lp->ndim, lp->shape, e), z = (xv - m) / s;
        long double want = -0.5L * z * z - logl(s) - LOG_SQRT_2PI;
        double got = bk_get(lp, e);
        /* float32 data give a float32 result, as every op does */
        long double tol = lp->dtype == BK_F32 ? 1e-6L : 1e-14L;
        ck_assert_msg(fabsl(got - want) <= tol * fmaxl(1, fabsl(want)), "%s [%lld]: %.17g vs %.17Lg",
                      L->label, (long long)e, got, want);
    }
    bk_release(lp);
    sl_dist_release(d);
    bk_release(x);
    bk_release(loc);
    bk_release(scale);
    bk_ctx_free(c);
}
END_TEST

START_TEST(normal_gradients_match_finite_differences) {
    const layout *L = &LAYOUTS[_i];
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *in[3] = {make_x(c, L), rand_tensor(c, L->nd[1], L->shape[1], -1, 1),
                        rand_tensor(c, L->nd[2], L->shape[2], 0.3, 2.5)};
    for (int i = 0; i < 3; i++) bk_set_requires_grad(in[i], true);
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){in[1], in[2]});
    bk_tensor *lp = sl_log_prob(c, d, in[0]);
    ck_assert_msg(lp != NULL, "%s: %s", L->label, bk_errmsg(c));
    double *w = malloc(sizeof(double) * (size_t)lp->numel);
    for (int64_t e = 0; e < lp->numel; e++) w[e] = urand(-1.5, 1.5);
    bk_tensor *wt = bk_from_f64(c, lp->ndim, lp->shape, w);
    bk_tensor *p = bk_mul(c, lp, wt), *tot = bk_sum_all(c, p);
    ck_assert_int_eq(bk_backward(c, tot), 0);
    for (int i = 0; i < 3; i++) {
        bk_tensor *t = in[i];
        ck_assert_msg(t->grad != NULL, "%s: no gradient for input %d", L->label, i);
        /* float32 data make a float32 loss: a larger step, a looser check */
        double tol = L->f32_x ? 1e-3 : 1e-6;
        for (int64_t e = 0; e < t->numel; e++) {
            double v0 = bk_get(t, e), h = (L->f32_x ? 1e-3 : 1e-6) * fmax(1, fabs(v0));
            bk_set(t, e, v0 + h);
            double hp = bk_get(t, e) - v0; /* the step float32 can hold */
            double fp = loss(c, in[0], in[1], in[2], w);
            bk_set(t, e, v0 - hp);
            double fm = loss(c, in[0], in[1], in[2], w);
            bk_set(t, e, v0);
            double fd = (fp - fm) / (2 * hp), ad = bk_get(t->grad, e);
            ck_assert_msg(fabs(fd - ad) <= tol * fmax(1, fabs(fd)), "%s: d/d input %d [%lld]: tape %.12g, fd %.12g",
                          L->label, i, (long long)e, ad, fd);
        }
    }
    bk_release(p);
    bk_release(tot);
    bk_release(wt);
    bk_release(lp);
    sl_dist_release(d);
    bk_tape_reset(c);
    for (int i = 0; i < 3; i++) bk_release(in[i]);
    free(w);
    bk_ctx_free(c);
}
END_TEST

/* loss = sum(lp): the kernel's backward gets a stride-0 gradient; the
 * gradients are the closed forms summed over the data. */
START_TEST(normal_gradient_of_a_sum) {
    bk_ctx *c = bk_ctx_new(NULL);
    int64_t n = 1000;
    bk_tensor *x = rand_tensor(c, 1, &n, -2, 4), *loc = bk_scalar(c, 0.7), *scale = bk_scalar(c, 1.3);
    bk_set_requires_grad(loc, true);
    bk_set_requires_grad(scale, true);
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){loc, scale});
    bk_tensor *lp = sl_log_prob(c, d, x), *tot = bk_sum_all(c, lp);
    ck_assert_int_eq(bk_backward(c, tot), 0);
    long double dm = 0, ds = 0;
    for (int64_t k = 0; k < n; k++) {
        long double z = (bk_data(x)[k] - 0.7L) / 1.3L;
        dm += z / 1.3L;
        ds += (z * z - 1) / 1.3L;
    }
    ck_assert_msg(fabsl(bk_item(loc->grad) - dm) <= 1e-11L * fabsl(dm), "d/dloc %.17g vs %.17Lg", bk_item(loc->grad), dm);
    ck_assert_msg(fabsl(bk_item(scale->grad) - ds) <= 1e-11L * fabsl(ds), "d/dscale %.17g vs %.17Lg",
                  bk_item(scale->grad), ds);
    ck_assert_ptr_null(x->grad); /* data that does not require grad gets none */
    bk_release(lp);
    bk_release(tot);
    sl_dist_release(d);
    bk_tape_reset(c);
    bk_release(x);
    bk_release(loc);
    bk_release(scale);
    bk_ctx_free(c);
}
END_TEST

/* shapes that do not broadcast fail with the backend's message */
START_TEST(normal_shape_mismatch_is_an_error) {
    bk_ctx *c = bk_ctx_new(NULL);
    int64_t n3 = 3, n4 = 4;
    bk_tensor *x = rand_tensor(c, 1, &n4, -1, 1), *loc = rand_tensor(c, 1, &n3, -1, 1), *scale = bk_scalar(c, 1.0);
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){loc, scale});
    ck_assert_ptr_null(sl_log_prob(c, d, x));
    ck_assert_msg(strstr(bk_errmsg(c), "cannot be broadcast") != NULL, "%s", bk_errmsg(c));
    sl_dist_release(d);
    bk_release(x);
    bk_release(loc);
    bk_release(scale);
    bk_ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("normal");
    tcase_add_loop_test(tc, normal_values_match_closed_form, 0, NLAYOUTS);
    tcase_add_loop_test(tc, normal_gradients_match_finite_differences, 0, NLAYOUTS);
    tcase_add_test(tc, normal_gradient_of_a_sum);
    tcase_add_test(tc, normal_shape_mismatch_is_an_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
