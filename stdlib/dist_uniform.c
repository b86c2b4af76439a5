/* dist_uniform.c - Uniform(low, high): flat on [low, high]; the support is
 * an interval whose bounds are the (possibly latent) parameters. */
#include <stdio.h>
#include <string.h>
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "low", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 1, "high", SL_V_REAL, bad) ||
        sl_shape_broadcast(ctx, d, NULL, bad))
        return -1;
    /* a backend op, not a host map: a recorded program (program.h) keeps
     * this check as a guard on latent bounds */
    bk_tensor *ok = bk_binop(ctx, BK_OP_LT, d->p[0], d->p[1]);
    if (!ok) return -1;
    for (int64_t i = 0; i < ok->numel; i++)
        if (bk_get(ok, i) == 0) {
            bk_tensor *lo = sl_dense(ctx, d->p[0], ok->ndim, ok->shape);
            bk_tensor *hi = sl_dense(ctx, d->p[1], ok->ndim, ok->shape);
            if (lo && hi)
                bk_seterr(ctx, "Uniform: high must be > low, got low=%g, high=%g",
                          bk_data(lo)[i], bk_data(hi)[i]);
            bk_release(lo);
            bk_release(hi);
            bk_release(ok);
            *bad = 1;
            return -1;
        }
    bk_release(ok);
    return 0;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"low", "high", NULL};
    static const double dflt[] = {0.0, 1.0};
    return sl_build_simple(a, d, names, dflt);
}

static bk_tensor *width(sl_scope *s, const sl_dist *d) { return s_sub(s, d->p[1], d->p[0]); }

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_and(&s, s_bin(&s, BK_OP_GE, x, d->p[0]), s_bin(&s, BK_OP_LE, x, d->p[1]));
    bk_tensor *lp = s_muls(&s, s_log(&s, width(&s, d)), -1.0);
    return s_done(&s, s_guard(&s, ok, lp));
}

static double unif(bk_rng *r, const double *a, const void *ud) { return bk_rng_uniform(r); }

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *w = width(&s, d);
    if (s.err) return s_done(&s, NULL);
    return s_done(&s, s_keep(&s, sl_affine(ctx, d->p[0], w, sl_noise(ctx, rng, d, ns, ss, unif, NULL))));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_muls(&s, s_add(&s, d->p[0], d->p[1]), 0.5));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_muls(&s, s_square(&s, width(&s, d)), 1.0 / 12.0));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_log(&s, width(&s, d)));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *c = s_div(&s, s_sub(&s, x, d->p[0]), width(&s, d));
    c = s_bin(&s, BK_OP_MAXIMUM, s_bin(&s, BK_OP_MINIMUM, c, s_scalar(&s, 1.0)), s_scalar(&s, 0.0));
    return s_done(&s, c);
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_add(&s, d->p[0], s_mul(&s, q, width(&s, d))));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    sl_support_kind(out, SL_C_INTERVAL);
    out->lo = bk_retain(d->p[0]);
    out->hi = bk_retain(d->p[1]);
    return 0;
}

const sl_family sl_family_uniform = {
    .name = "Uniform", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
