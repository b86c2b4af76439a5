/* dist_beta.c - Beta(concentration1, concentration0) on (0, 1). */
#include <float.h>
#include "dist_impl.h"
#include "special.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "concentration1", SL_V_POS, bad) ||
        sl_check_param(ctx, d, 1, "concentration0", SL_V_POS, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"concentration1", "concentration0", NULL};
    return sl_build_simple(a, d, names, NULL);
}

/* log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b) */
static bk_tensor *s_lbeta(sl_scope *s, bk_tensor *a, bk_tensor *b) {
    return s_sub(s, s_add(s, s_lgamma(s, a), s_lgamma(s, b)), s_lgamma(s, s_add(s, a, b)));
}

static double lbeta(double a, double b) {
    int sg;
    return lgamma_r(a, &sg) + lgamma_r(b, &sg) - lgamma_r(a + b, &sg);
}

/* One pass over plain arrays when no gradient is needed; the same
 * arithmetic, in the same order, as the tensor-op formula below. */
static void fused(const sl_fused *f) {
    const double *x = f->x, *a = f->p[0], *b = f->p[1];
    double *o = f->out;
    if (f->scalar_params) {
        double am1 = a[0] - 1.0, bm1 = b[0] - 1.0, lb = lbeta(a[0], b[0]);
        for (int64_t i = 0; i < f->n; i++) {
            double v = x[i * f->sx];
            o[i] = v > 0 && v < 1 ? am1 * log(v) + bm1 * log1p(-v) - lb : -INFINITY;
        }
        return;
    }
    for (int64_t i = 0; i < f->n; i++) {
        double v = x[i * f->sx], ai = a[i * f->sp[0]], bi = b[i * f->sp[1]];
        o[i] = v > 0 && v < 1 ? (ai - 1.0) * log(v) + (bi - 1.0) * log1p(-v) - lbeta(ai, bi)
                              : -INFINITY;
    }
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *r;
    if (sl_fused_try(ctx, d, 2, x, fused, &r)) return r;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *b = d->p[1];
    bk_tensor *ok = s_and(&s, s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0)),
                          s_bin(&s, BK_OP_LT, x, s_scalar(&s, 1.0)));
    bk_tensor *xs = s_safe(&s, ok, x, 0.5);
    bk_tensor *lp = s_mul(&s, s_adds(&s, a, -1.0), s_log(&s, xs));
    lp = s_add(&s, lp, s_mul(&s, s_adds(&s, b, -1.0),
                             s_un(&s, BK_OP_LOG1P, s_muls(&s, xs, -1.0))));
    lp = s_sub(&s, lp, s_lbeta(&s, a, b));
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ga = s_keep(&s, sl_gamma_noise_pos(ctx, rng, d, d->p[0], ns, ss));
    bk_tensor *gb = s.err ? NULL : s_keep(&s, sl_gamma_noise_pos(ctx, rng, d, d->p[1], ns, ss));
    bk_tensor *x = s_div(&s, ga, s_add(&s, ga, gb));
    /* keep draws inside the open interval when one gamma dwarfs the other */
    return s_done(&s, s_bin(&s, BK_OP_MINIMUM, x, s_scalar(&s, 1.0 - DBL_EPSILON / 2)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_div(&s, d->p[0], s_add(&s, d->p[0], d->p[1])));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *t = s_add(&s, d->p[0], d->p[1]);
    bk_tensor *den = s_mul(&s, s_square(&s, t), s_adds(&s, t, 1.0));
    return s_done(&s, s_div(&s, s_mul(&s, d->p[0], d->p[1]), den));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *b = d->p[1], *t = s_add(&s, a, b);
    bk_tensor *h = s_lbeta(&s, a, b);
    h = s_sub(&s, h, s_mul(&s, s_adds(&s, a, -1.0), s_digamma(&s, a)));
    h = s_sub(&s, h, s_mul(&s, s_adds(&s, b, -1.0), s_digamma(&s, b)));
    h = s_add(&s, h, s_mul(&s, s_adds(&s, t, -2.0), s_digamma(&s, t)));
    return s_done(&s, h);
}

static double cdf_fn(bk_rng *r, const double *v, const void *ud) {
    if (v[0] <= 0) return 0.0;
    if (v[0] >= 1) return 1.0;
    return bk_betainc(v[1], v[2], v[0]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[3] = {x, d->p[0], d->p[1]};
    return sl_map(ctx, NULL, 0, NULL, 3, in, cdf_fn, NULL);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_UNIT_INTERVAL);
}

const sl_family sl_family_beta = {
    .name = "Beta", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
