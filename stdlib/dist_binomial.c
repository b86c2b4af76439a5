/* dist_binomial.c - Binomial(total_count=1, probs= | logits=) on
 * 0..total_count. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "total_count", SL_V_NONNEG_INT, bad) ||
        (d->variant == 0 ? sl_check_param(ctx, d, 1, "probs", SL_V_PROB, bad)
                         : sl_check_param(ctx, d, 1, "logits", SL_V_REAL, bad)))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"total_count", "probs", "logits", NULL};
    sl_bindinfo b;
    if (rt_check_args(a->vm, a->call, 2, names) ||
        sl_bind_param(a, &b, d, 0, 0, "total_count", 1.0) ||
        sl_bind_choice(a, &b, d, 1, 1, "probs", "logits"))
        return -1;
    return sl_build_finish(a, &b, d);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *n = d->p[0];
    bk_tensor *ok = s_and(&s, s_and(&s, s_isint(&s, x), s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0))),
                          s_bin(&s, BK_OP_LE, x, n));
    bk_tensor *k = s_safe(&s, ok, x, 0.0);
    bk_tensor *nk = s_safe(&s, ok, s_sub(&s, n, k), 0.0);
    bk_tensor *lp = s_sub(&s, s_lgamma(&s, s_adds(&s, n, 1.0)), s_lgamma(&s, s_adds(&s, k, 1.0)));
    lp = s_sub(&s, lp, s_lgamma(&s, s_adds(&s, nk, 1.0)));
    lp = s_add(&s, lp, s_xlogy(&s, k, s_logp(&s, d, 1)));
    lp = s_add(&s, lp, s_xlogy(&s, nk, s_log1mp(&s, d, 1)));
    return s_done(&s, s_guard(&s, ok, lp));
}

static double draw(bk_rng *r, const double *a, const void *ud) {
    return (double)bk_rng_binomial(r, (int64_t)a[0], a[1]);
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

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_mul(&s, d->p[0], s_probs(&s, d, 1)));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 1);
    return s_done(&s, s_mul(&s, s_mul(&s, d->p[0], p), s_rsubs(&s, 1.0, p)));
}

static bk_tensor *enumerate(bk_ctx *ctx, const sl_dist *d) {
    const bk_tensor *n = d->p[0];
    double n0 = bk_get(n, 0);
    for (int64_t i = 1; i < n->numel; i++)
        if (bk_get(n, i) != n0) {
            bk_seterr(ctx, "Binomial: enumerate_support needs the same total_count everywhere");
            return NULL;
        }
    return sl_enumerate(ctx, d, (int64_t)n0 + 1);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    sl_support_kind(out, SL_C_INTEGER_INTERVAL);
    out->lo = bk_scalar(ctx, 0.0);
    out->hi = bk_retain(d->p[0]);
    if (!out->lo) {
        sl_constraint_clear(out);
        return -1;
    }
    return 0;
}

const sl_family sl_family_binomial = {
    .name = "Binomial", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .enumerate_support = enumerate,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
