/* dist_geometric.c - Geometric(probs= | logits=): the number of failures
 * before the first success, on 0, 1, 2, ... */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (d->variant == 0 ? sl_check_param(ctx, d, 0, "probs", SL_V_PROB, bad)
                        : sl_check_param(ctx, d, 0, "logits", SL_V_REAL, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_and(&s, s_isint(&s, x), s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0)));
    bk_tensor *k = s_safe(&s, ok, x, 0.0);
    bk_tensor *lp = s_add(&s, s_xlogy(&s, k, s_log1mp(&s, d, 0)), s_logp(&s, d, 0));
    return s_done(&s, s_guard(&s, ok, lp));
}

static double draw(bk_rng *r, const double *a, const void *ud) {
    double p = a[0];
    if (p >= 1) return 0.0;
    if (p <= 0) return INFINITY;
    return floor(log(bk_rng_uniform(r)) / log1p(-p));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    if (s.err) return s_done(&s, NULL);
    return s_done(&s, s_keep(&s, sl_map(ctx, rng, nd, shape, 1, &p, draw, NULL)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    return s_done(&s, s_div(&s, s_rsubs(&s, 1.0, p), p));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    return s_done(&s, s_div(&s, s_rsubs(&s, 1.0, p), s_square(&s, p)));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    bk_tensor *h = s_add(&s, s_xlogy(&s, s_rsubs(&s, 1.0, p), s_log1mp(&s, d, 0)),
                         s_xlogy(&s, p, s_logp(&s, d, 0)));
    return s_done(&s, s_div(&s, s_muls(&s, h, -1.0), p));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_NONNEG_INTEGER);
}

const sl_family sl_family_geometric = {
    .name = "Geometric", .build = sl_build_probs_logits, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
