/* dist_studentt.c - StudentT(df, loc=0, scale=1).  Sampling is
 * reparameterized in df too: t = eps / sqrt(G / (df / 2)) with
 * G ~ Gamma(df / 2) drawn by implicit reparameterization. */
#include "dist_impl.h"
#include "special.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "df", SL_V_POS, bad) ||
        sl_check_param(ctx, d, 1, "loc", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 2, "scale", SL_V_POS, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"df", "loc", "scale", NULL};
    static const double dflt[] = {NAN, 0.0, 1.0};
    return sl_build_simple(a, d, names, dflt);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *df = d->p[0];
    bk_tensor *z = s_div(&s, s_sub(&s, x, d->p[1]), d->p[2]);
    bk_tensor *h1 = s_muls(&s, s_adds(&s, df, 1.0), 0.5);
    bk_tensor *lp = s_sub(&s, s_lgamma(&s, h1), s_lgamma(&s, s_muls(&s, df, 0.5)));
    lp = s_sub(&s, lp, s_muls(&s, s_log(&s, df), 0.5));
    lp = s_sub(&s, lp, s_log(&s, d->p[2]));
    lp = s_sub(&s, lp, s_mul(&s, h1, s_un(&s, BK_OP_LOG1P, s_div(&s, s_square(&s, z), df))));
    return s_done(&s, s_adds(&s, lp, -0.5 * SL_LOG_PI));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *half = s_muls(&s, d->p[0], 0.5);
    bk_tensor *g = s.err ? NULL : s_keep(&s, sl_gamma_noise_pos(ctx, rng, d, half, ns, ss));
    bk_tensor *eps = s.err ? NULL : s_keep(&s, sl_noise_normal(ctx, rng, d, ns, ss));
    bk_tensor *t = s_div(&s, eps, s_un(&s, BK_OP_SQRT, s_div(&s, g, half)));
    return s_done(&s, s_add(&s, d->p[1], s_mul(&s, d->p[2], t)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_bin(&s, BK_OP_GT, d->p[0], s_scalar(&s, 1.0));
    return s_done(&s, s_wheres(&s, ok, s_add(&s, d->p[1], s_muls(&s, d->p[0], 0.0)), NAN));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *df = d->p[0];
    bk_tensor *gt2 = s_bin(&s, BK_OP_GT, df, s_scalar(&s, 2.0));
    bk_tensor *gt1 = s_bin(&s, BK_OP_GT, df, s_scalar(&s, 1.0));
    bk_tensor *v = s_div(&s, s_mul(&s, s_square(&s, d->p[2]), df),
                         s_adds(&s, s_safe(&s, gt2, df, 3.0), -2.0));
    return s_done(&s, s_where(&s, gt2, v, s_wheres(&s, gt1, s_scalar(&s, INFINITY), NAN)));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *df = d->p[0];
    bk_tensor *h1 = s_muls(&s, s_adds(&s, df, 1.0), 0.5), *h = s_muls(&s, df, 0.5);
    /* log B(df/2, 1/2) = lgamma(df/2) + lgamma(1/2) - lgamma((df+1)/2) */
    bk_tensor *lb = s_adds(&s, s_sub(&s, s_lgamma(&s, h), s_lgamma(&s, h1)), 0.5 * SL_LOG_PI);
    bk_tensor *e = s_mul(&s, h1, s_sub(&s, s_digamma(&s, h1), s_digamma(&s, h)));
    e = s_add(&s, s_add(&s, e, s_muls(&s, s_log(&s, df), 0.5)), lb);
    return s_done(&s, s_add(&s, e, s_log(&s, d->p[2])));
}

static double cdf_fn(bk_rng *r, const double *a, const void *ud) {
    double df = a[1], t = (a[0] - a[2]) / a[3];
    double p = 0.5 * bk_betainc(0.5 * df, 0.5, df / (df + t * t));
    return t < 0 ? p : 1.0 - p;
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[4] = {x, d->p[0], d->p[1], d->p[2]};
    return sl_map(ctx, NULL, 0, NULL, 4, in, cdf_fn, NULL);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_studentt = {
    .name = "StudentT", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
