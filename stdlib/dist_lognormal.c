/* dist_lognormal.c - LogNormal(loc, scale): exp of Normal(loc, scale). */
#include "dist_impl.h"
#include "special.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "loc", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 1, "scale", SL_V_POS, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"loc", "scale", NULL};
    return sl_build_simple(a, d, names, NULL);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0));
    bk_tensor *lx = s_log(&s, s_safe(&s, ok, x, 1.0));
    bk_tensor *z = s_div(&s, s_sub(&s, lx, d->p[0]), d->p[1]);
    bk_tensor *lp = s_adds(&s, s_muls(&s, s_square(&s, z), -0.5), -0.5 * SL_LOG_2PI);
    lp = s_sub(&s, s_sub(&s, lp, s_log(&s, d->p[1])), lx);
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_tensor *y = sl_affine(ctx, d->p[0], d->p[1], sl_noise_normal(ctx, rng, d, ns, ss));
    if (!y) return NULL;
    bk_tensor *r = bk_unop(ctx, BK_OP_EXP, y);
    bk_release(y);
    return r;
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_exp(&s, s_add(&s, d->p[0], s_muls(&s, s_square(&s, d->p[1]), 0.5))));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *s2 = s_square(&s, d->p[1]);
    bk_tensor *e = s_exp(&s, s_add(&s, s_muls(&s, d->p[0], 2.0), s2));
    return s_done(&s, s_mul(&s, s_un(&s, BK_OP_EXPM1, s2), e));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *h = s_add(&s, d->p[0], s_log(&s, d->p[1]));
    return s_done(&s, s_adds(&s, h, 0.5 + 0.5 * SL_LOG_2PI));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0));
    bk_tensor *lx = s_log(&s, s_safe(&s, ok, x, 1.0));
    bk_tensor *z = s_div(&s, s_sub(&s, lx, d->p[0]), d->p[1]);
    bk_tensor *c = s_muls(&s, s_un(&s, BK_OP_ERFC, s_muls(&s, z, -M_SQRT1_2)), 0.5);
    return s_done(&s, s_wheres(&s, ok, c, 0.0));
}

static double ndtri_fn(bk_rng *r, const double *a, const void *ud) { return bk_ndtri(a[0]); }

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    bk_tensor *y = sl_affine(ctx, d->p[0], d->p[1], sl_map(ctx, NULL, 0, NULL, 1, &q, ndtri_fn, NULL));
    if (!y) return NULL;
    bk_tensor *r = bk_unop(ctx, BK_OP_EXP, y);
    bk_release(y);
    return r;
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_lognormal = {
    .name = "LogNormal", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
