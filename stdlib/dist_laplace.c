/* dist_laplace.c - Laplace(loc, scale). */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "loc", SL_V_REAL, bad) ||
        sl_check_param(ctx, d, 1, "scale", SL_V_POS, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"loc", "scale", NULL};
    return sl_build_simple(a, d, names, NULL);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *z = s_div(&s, s_un(&s, BK_OP_ABS, s_sub(&s, x, d->p[0])), d->p[1]);
    bk_tensor *lp = s_add(&s, z, s_log(&s, d->p[1]));
    return s_done(&s, s_adds(&s, s_muls(&s, lp, -1.0), -SL_LOG2));
}

/* inverse cdf of the standard Laplace at q */
static double std_icdf(double q) {
    double u = q - 0.5;
    return u < 0 ? log1p(2 * u) : -log1p(-2 * u);
}

static double std_laplace(bk_rng *r, const double *a, const void *ud) {
    return std_icdf(bk_rng_uniform(r));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, d->p[0], d->p[1], sl_noise(ctx, rng, d, ns, ss, std_laplace, NULL));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_muls(&s, s_square(&s, d->p[1]), 2.0));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[1]), 1.0 + SL_LOG2));
}

static double cdf_fn(bk_rng *r, const double *a, const void *ud) {
    double z = (a[0] - a[1]) / a[2];
    return z < 0 ? 0.5 * exp(z) : 1.0 - 0.5 * exp(-z);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[3] = {x, d->p[0], d->p[1]};
    return sl_map(ctx, NULL, 0, NULL, 3, in, cdf_fn, NULL);
}

static double icdf_fn(bk_rng *r, const double *a, const void *ud) { return std_icdf(a[0]); }

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return sl_affine(ctx, d->p[0], d->p[1], sl_map(ctx, NULL, 0, NULL, 1, &q, icdf_fn, NULL));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_laplace = {
    .name = "Laplace", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
