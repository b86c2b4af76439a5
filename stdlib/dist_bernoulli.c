/* dist_bernoulli.c - Bernoulli(probs= | logits=), values {0, 1}. */
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
    bk_tensor *one = s_bin(&s, BK_OP_EQ, x, s_scalar(&s, 1.0));
    bk_tensor *zero = s_bin(&s, BK_OP_EQ, x, s_scalar(&s, 0.0));
    bk_tensor *lp0 = s_guard(&s, zero, s_log1mp(&s, d, 0));
    return s_done(&s, s_where(&s, one, s_logp(&s, d, 0), lp0));
}

static double draw(bk_rng *r, const double *a, const void *ud) {
    return bk_rng_uniform(r) < a[0] ? 1.0 : 0.0;
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
    return s_done(&s, s_probs(&s, d, 0));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    return s_done(&s, s_mul(&s, p, s_rsubs(&s, 1.0, p)));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    bk_tensor *h = s_add(&s, s_xlogy(&s, p, s_logp(&s, d, 0)),
                         s_xlogy(&s, s_rsubs(&s, 1.0, p), s_log1mp(&s, d, 0)));
    return s_done(&s, s_muls(&s, h, -1.0));
}

static bk_tensor *enumerate(bk_ctx *ctx, const sl_dist *d) { return sl_enumerate(ctx, d, 2); }

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_BOOLEAN);
}

const sl_family sl_family_bernoulli = {
    .name = "Bernoulli", .build = sl_build_probs_logits, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .enumerate_support = enumerate,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
