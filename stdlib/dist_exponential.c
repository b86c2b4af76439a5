/* dist_exponential.c - Exponential(rate) on x >= 0. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "rate", SL_V_POS, bad)) return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"rate", NULL};
    static const double dflt[] = {1.0};
    return sl_build_simple(a, d, names, dflt);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0));
    bk_tensor *lp = s_sub(&s, s_log(&s, d->p[0]), s_mul(&s, d->p[0], s_safe(&s, ok, x, 0.0)));
    return s_done(&s, s_guard(&s, ok, lp));
}

static double expo(bk_rng *r, const double *a, const void *ud) { return -log(bk_rng_uniform(r)); }

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_tensor *e = sl_noise(ctx, rng, d, ns, ss, expo, NULL);
    if (!e) return NULL;
    bk_tensor *r = bk_div(ctx, e, d->p[0]);
    bk_release(e);
    return r;
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_div(&s, s_scalar(&s, 1.0), d->p[0]));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_div(&s, s_scalar(&s, 1.0), s_square(&s, d->p[0])));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_rsubs(&s, 1.0, s_log(&s, d->p[0])));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0));
    bk_tensor *c = s_muls(&s, s_un(&s, BK_OP_EXPM1, s_muls(&s, s_mul(&s, x, d->p[0]), -1.0)), -1.0);
    return s_done(&s, s_wheres(&s, ok, c, 0.0));
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *e = s_muls(&s, s_un(&s, BK_OP_LOG1P, s_muls(&s, q, -1.0)), -1.0);
    return s_done(&s, s_div(&s, e, d->p[0]));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_exponential = {
    .name = "Exponential", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
