/* dist_dirichlet.c - Dirichlet(concentration): event [K] on the simplex. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *a = d->p[0];
    if (a->ndim < 1 || a->shape[a->ndim - 1] < 1) {
        bk_seterr(ctx, "Dirichlet: concentration must have a last dimension of at least 1");
        *bad = 0;
        return -1;
    }
    static const int ev[] = {1};
    if (sl_check_param(ctx, d, 0, "concentration", SL_V_POS, bad) ||
        sl_shape_broadcast(ctx, d, ev, bad))
        return -1;
    d->nevent = 1;
    d->event[0] = a->shape[a->ndim - 1];
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"concentration", NULL};
    return sl_build_simple(a, d, names, NULL);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0];
    bk_tensor *pos = s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0));
    bk_tensor *xs = s_safe(&s, pos, x, 1.0);
    /* on the simplex: every entry > 0 and the entries sum to 1 */
    bk_tensor *dev = s_un(&s, BK_OP_ABS, s_adds(&s, s_sum(&s, x, -1, false), -1.0));
    bk_tensor *ok = s_and(&s, s_red(&s, BK_OP_MIN, pos, -1, false),
                          s_bin(&s, BK_OP_LE, dev, s_scalar(&s, 1e-6)));
    bk_tensor *lp = s_sum(&s, s_mul(&s, s_adds(&s, a, -1.0), s_log(&s, xs)), -1, false);
    lp = s_add(&s, lp, s_lgamma(&s, s_sum(&s, a, -1, false)));
    lp = s_sub(&s, lp, s_sum(&s, s_lgamma(&s, a), -1, false));
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *g = s_keep(&s, sl_gamma_noise_pos(ctx, rng, d, d->p[0], ns, ss));
    return s_done(&s, s_div(&s, g, s_sum(&s, g, -1, true)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_div(&s, d->p[0], s_sum(&s, d->p[0], -1, true)));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *a0 = s_sum(&s, a, -1, true);
    bk_tensor *num = s_mul(&s, a, s_sub(&s, a0, a));
    return s_done(&s, s_div(&s, num, s_mul(&s, s_square(&s, a0), s_adds(&s, a0, 1.0))));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *a0 = s_sum(&s, a, -1, false);
    double K = (double)a->shape[a->ndim - 1];
    bk_tensor *h = s_sub(&s, s_sum(&s, s_lgamma(&s, a), -1, false), s_lgamma(&s, a0));
    h = s_add(&s, h, s_mul(&s, s_adds(&s, a0, -K), s_digamma(&s, a0)));
    h = s_sub(&s, h, s_sum(&s, s_mul(&s, s_adds(&s, a, -1.0), s_digamma(&s, a)), -1, false));
    return s_done(&s, h);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_SIMPLEX);
}

const sl_family sl_family_dirichlet = {
    .name = "Dirichlet", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
