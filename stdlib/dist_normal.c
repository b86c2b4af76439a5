/* dist_normal.c - Normal(loc, scale). */
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
    bk_tensor *z = s_div(&s, s_sub(&s, x, d->p[0]), d->p[1]);
    bk_tensor *lp = s_adds(&s, s_muls(&s, s_square(&s, z), -0.5), -0.5 * SL_LOG_2PI);
    return s_done(&s, s_sub(&s, lp, s_log(&s, d->p[1])));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, d->p[0], d->p[1], sl_noise_normal(ctx, rng, d, ns, ss));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    return bk_unop(ctx, BK_OP_SQUARE, d->p[1]);
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[1]), 0.5 + 0.5 * SL_LOG_2PI));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *z = s_div(&s, s_sub(&s, x, d->p[0]), d->p[1]);
    return s_done(&s, s_muls(&s, s_un(&s, BK_OP_ERFC, s_muls(&s, z, -M_SQRT1_2)), 0.5));
}

static double ndtri_fn(bk_rng *r, const double *a, const void *ud) { return bk_ndtri(a[0]); }

static bk_tensor *icdf(bk_ctx *ctx, bk_tensor *q, bk_tensor *loc, bk_tensor *scale) {
    return sl_affine(ctx, loc, scale, sl_map(ctx, NULL, 0, NULL, 1, &q, ndtri_fn, NULL));
}

static bk_tensor *icdf_normal(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return icdf(ctx, q, d->p[0], d->p[1]);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_normal = {
    .name = "Normal", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf_normal,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
