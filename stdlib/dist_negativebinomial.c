/* dist_negativebinomial.c - NegativeBinomial(total_count, probs= | logits=)
 * as in PyTorch: the number of successes (probability probs each) before
 * total_count failures. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "total_count", SL_V_POS, bad) ||
        (d->variant == 0 ? sl_check_param(ctx, d, 1, "probs", SL_V_PROB, bad)
                         : sl_check_param(ctx, d, 1, "logits", SL_V_REAL, bad)))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"total_count", "probs", "logits", NULL};
    sl_bindinfo b;
    if (rt_check_args(a->vm, a->call, 2, names) ||
        sl_bind_param(a, &b, d, 0, 0, "total_count", NAN) ||
        sl_bind_choice(a, &b, d, 1, 1, "probs", "logits"))
        return -1;
    return sl_build_finish(a, &b, d);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *r = d->p[0];
    bk_tensor *ok = s_and(&s, s_isint(&s, x), s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0)));
    bk_tensor *k = s_safe(&s, ok, x, 0.0);
    bk_tensor *lp = s_sub(&s, s_lgamma(&s, s_add(&s, k, r)), s_lgamma(&s, r));
    lp = s_sub(&s, lp, s_lgamma(&s, s_adds(&s, k, 1.0)));
    lp = s_add(&s, lp, s_mul(&s, r, s_log1mp(&s, d, 1)));
    lp = s_add(&s, lp, s_xlogy(&s, k, s_logp(&s, d, 1)));
    return s_done(&s, s_guard(&s, ok, lp));
}

/* Gamma-Poisson mixture: rate ~ Gamma(r, (1-p)/p) */
static double draw(bk_rng *rg, const double *a, const void *ud) {
    double r = a[0], p = a[1];
    if (p <= 0) return 0.0;
    if (p >= 1) return INFINITY;
    double lam = bk_rng_gamma(rg, r) * p / (1.0 - p);
    return (double)bk_rng_poisson(rg, lam);
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *in[2] = {d->p[0], s_probs(&s, d, 1)};
    if (s.err) return s_done(&s, NULL);
    return s_done(&s, s_keep(&s, sl_map(ctx, rng, nd, shape, 2, in, draw, NULL)));
}

/* odds p / (1 - p), exp(logits) for the logits form */
static bk_tensor *odds(sl_scope *s, const sl_dist *d) {
    if (d->variant == 1) return s_exp(s, d->p[1]);
    return s_div(s, d->p[1], s_rsubs(s, 1.0, d->p[1]));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_mul(&s, d->p[0], odds(&s, d)));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *o = odds(&s, d);
    return s_done(&s, s_mul(&s, s_mul(&s, d->p[0], o), s_adds(&s, o, 1.0)));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_NONNEG_INTEGER);
}

const sl_family sl_family_negativebinomial = {
    .name = "NegativeBinomial", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
