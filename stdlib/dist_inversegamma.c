/* dist_inversegamma.c - InverseGamma(concentration, rate): 1 / Gamma(a, b). */
#include "dist_impl.h"
#include "special.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "concentration", SL_V_POS, bad) ||
        sl_check_param(ctx, d, 1, "rate", SL_V_POS, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"concentration", "rate", NULL};
    return sl_build_simple(a, d, names, NULL);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *b = d->p[1];
    bk_tensor *ok = s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0));
    bk_tensor *xs = s_safe(&s, ok, x, 1.0);
    bk_tensor *lp = s_sub(&s, s_mul(&s, a, s_log(&s, b)), s_lgamma(&s, a));
    lp = s_sub(&s, lp, s_mul(&s, s_adds(&s, a, 1.0), s_log(&s, xs)));
    lp = s_sub(&s, lp, s_div(&s, b, xs));
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_tensor *g = sl_gamma_noise_pos(ctx, rng, d, d->p[0], ns, ss);
    if (!g) return NULL;
    bk_tensor *r = bk_div(ctx, d->p[1], g);
    bk_release(g);
    return r;
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0];
    bk_tensor *ok = s_bin(&s, BK_OP_GT, a, s_scalar(&s, 1.0));
    bk_tensor *m = s_div(&s, d->p[1], s_adds(&s, s_safe(&s, ok, a, 2.0), -1.0));
    return s_done(&s, s_wheres(&s, ok, m, INFINITY));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0];
    bk_tensor *ok = s_bin(&s, BK_OP_GT, a, s_scalar(&s, 2.0));
    bk_tensor *as = s_safe(&s, ok, a, 3.0);
    bk_tensor *den = s_mul(&s, s_square(&s, s_adds(&s, as, -1.0)), s_adds(&s, as, -2.0));
    return s_done(&s, s_wheres(&s, ok, s_div(&s, s_square(&s, d->p[1]), den), INFINITY));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0];
    bk_tensor *h = s_add(&s, s_add(&s, a, s_log(&s, d->p[1])), s_lgamma(&s, a));
    h = s_sub(&s, h, s_mul(&s, s_adds(&s, a, 1.0), s_digamma(&s, a)));
    return s_done(&s, h);
}

static double cdf_fn(bk_rng *r, const double *v, const void *ud) {
    return v[0] <= 0 ? 0.0 : bk_gammainc_upper(v[1], v[2] / v[0]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[3] = {x, d->p[0], d->p[1]};
    return sl_map(ctx, NULL, 0, NULL, 3, in, cdf_fn, NULL);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_inversegamma = {
    .name = "InverseGamma", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
