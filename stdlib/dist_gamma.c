/* dist_gamma.c - Gamma(concentration, rate): density
 * b^a x^(a-1) e^(-b x) / Gamma(a) on x > 0. */
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

/* One pass over plain arrays when no gradient is needed; the same
 * arithmetic, in the same order, as the tensor-op formula below. */
static void fused(const sl_fused *f) {
    const double *x = f->x, *a = f->p[0], *b = f->p[1];
    double *o = f->out;
    int sg;
    if (f->scalar_params) {
        double c = a[0] * log(b[0]) - lgamma_r(a[0], &sg), am1 = a[0] - 1.0, r = b[0];
        for (int64_t i = 0; i < f->n; i++) {
            double v = x[i * f->sx];
            o[i] = v > 0 ? c + am1 * log(v) - r * v : -INFINITY;
        }
        return;
    }
    for (int64_t i = 0; i < f->n; i++) {
        double v = x[i * f->sx], ai = a[i * f->sp[0]], bi = b[i * f->sp[1]];
        o[i] = v > 0 ? ai * log(bi) - lgamma_r(ai, &sg) + (ai - 1.0) * log(v) - bi * v : -INFINITY;
    }
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *r;
    if (sl_fused_try(ctx, d, 2, x, fused, &r)) return r;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0], *b = d->p[1];
    bk_tensor *ok = s_bin(&s, BK_OP_GT, x, s_scalar(&s, 0.0));
    bk_tensor *xs = s_safe(&s, ok, x, 1.0);
    bk_tensor *lp = s_sub(&s, s_mul(&s, a, s_log(&s, b)), s_lgamma(&s, a));
    lp = s_add(&s, lp, s_mul(&s, s_adds(&s, a, -1.0), s_log(&s, xs)));
    lp = s_sub(&s, lp, s_mul(&s, b, xs));
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_tensor *g = sl_gamma_noise_pos(ctx, rng, d, d->p[0], ns, ss);
    if (!g) return NULL;
    bk_tensor *r = bk_div(ctx, g, d->p[1]);
    bk_release(g);
    return r;
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_div(ctx, d->p[0], d->p[1]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_div(&s, d->p[0], s_square(&s, d->p[1])));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *a = d->p[0];
    bk_tensor *h = s_add(&s, s_sub(&s, a, s_log(&s, d->p[1])), s_lgamma(&s, a));
    h = s_add(&s, h, s_mul(&s, s_rsubs(&s, 1.0, a), s_digamma(&s, a)));
    return s_done(&s, h);
}

static double cdf_fn(bk_rng *r, const double *v, const void *ud) {
    return v[0] <= 0 ? 0.0 : bk_gammainc_lower(v[1], v[2] * v[0]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[3] = {x, d->p[0], d->p[1]};
    return sl_map(ctx, NULL, 0, NULL, 3, in, cdf_fn, NULL);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_gamma = {
    .name = "Gamma", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
