/* dist_halfcauchy.c - HalfCauchy(scale): |Cauchy(0, scale)| on x >= 0. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "scale", SL_V_POS, bad)) return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"scale", NULL};
    return sl_build_simple(a, d, names, NULL);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0));
    bk_tensor *z = s_div(&s, s_safe(&s, ok, x, 0.0), d->p[0]);
    bk_tensor *lp = s_add(&s, s_un(&s, BK_OP_LOG1P, s_square(&s, z)), s_log(&s, d->p[0]));
    lp = s_adds(&s, s_muls(&s, lp, -1.0), SL_LOG2 - SL_LOG_PI);
    return s_done(&s, s_guard(&s, ok, lp));
}

static double half_cauchy(bk_rng *r, const double *a, const void *ud) {
    return fabs(tan(SL_PI * (bk_rng_uniform(r) - 0.5)));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, NULL, d->p[0], sl_noise(ctx, rng, d, ns, ss, half_cauchy, NULL));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[0]), log(2 * SL_PI)));
}

static double cdf_fn(bk_rng *r, const double *a, const void *ud) {
    return a[0] <= 0 ? 0.0 : 2.0 / SL_PI * atan(a[0] / a[1]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[2] = {x, d->p[0]};
    return sl_map(ctx, NULL, 0, NULL, 2, in, cdf_fn, NULL);
}

static double icdf_fn(bk_rng *r, const double *a, const void *ud) {
    return tan(0.5 * SL_PI * a[0]);
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return sl_affine(ctx, NULL, d->p[0], sl_map(ctx, NULL, 0, NULL, 1, &q, icdf_fn, NULL));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_halfcauchy = {
    .name = "HalfCauchy", .build = build, .log_prob = log_prob, .sample = sample,
    .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
