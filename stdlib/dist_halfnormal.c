/* dist_halfnormal.c - HalfNormal(scale): |N(0, scale)|, support x >= 0. */
#include "dist_impl.h"
#include "special.h"

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
    bk_tensor *z = s_div(&s, x, d->p[0]);
    bk_tensor *lp = s_adds(&s, s_muls(&s, s_square(&s, z), -0.5), SL_LOG2 - 0.5 * SL_LOG_2PI);
    return s_done(&s, s_guard(&s, ok, s_sub(&s, lp, s_log(&s, d->p[0]))));
}

static double abs_normal(bk_rng *r, const double *a, const void *ud) {
    return fabs(bk_rng_normal(r));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, NULL, d->p[0], sl_noise(ctx, rng, d, ns, ss, abs_normal, NULL));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    return bk_mul_s(ctx, d->p[0], sqrt(2.0 / SL_PI));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_muls(&s, s_square(&s, d->p[0]), 1.0 - 2.0 / SL_PI));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[0]), 0.5 * log(SL_PI / 2) + 0.5));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0));
    bk_tensor *z = s_muls(&s, s_div(&s, x, d->p[0]), M_SQRT1_2);
    return s_done(&s, s_wheres(&s, ok, s_un(&s, BK_OP_ERF, z), 0.0));
}

static double half_ndtri(bk_rng *r, const double *a, const void *ud) {
    return bk_ndtri(0.5 + 0.5 * a[0]);
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return sl_affine(ctx, NULL, d->p[0], sl_map(ctx, NULL, 0, NULL, 1, &q, half_ndtri, NULL));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_halfnormal = {
    .name = "HalfNormal", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
