/* dist_normal.c - Normal(loc, scale). */
#include "dist_impl.h"
#include "special.h"

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

/* The log density as one fused kernel (bk_fused): with z = (x - loc) /
 * scale, lp = -z^2 / 2 - log(2 pi) / 2 - log(scale), in one pass over
 * memory; log(scale) is taken once per row when the scale is shared.  The
 * backward gives all three gradients in one pass:
 *   d/dx = -z / scale,  d/dloc = z / scale,  d/dscale = (z^2 - 1) / scale. */
static void lp_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    const double *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    const double c = -0.5 * SL_LOG_2PI;
    if (is == 0) {
        const double sc = s[0], ls = log(sc);
        if (ix == 1 && im == 0) { /* the common case: a vector of data */
            const double mu = m[0];
            for (int64_t k = 0; k < n; k++) {
                double z = (x[k] - mu) / sc;
                out[k] = ((z * z) * -0.5 + c) - ls;
            }
        } else {
            for (int64_t k = 0; k < n; k++) {
                double z = (x[k * ix] - m[k * im]) / sc;
                out[k] = ((z * z) * -0.5 + c) - ls;
            }
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        double sc = s[k * is], z = (x[k * ix] - m[k * im]) / sc;
        out[k] = ((z * z) * -0.5 + c) - log(sc);
    }
}

static void lp_backward(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                        const double *g, int64_t ig, double *const *gx) {
    const double *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    double *gxx = gx[0], *gm = gx[1], *gs = gx[2];
    if (is == 0) { /* a shared scale: multiply by its reciprocal */
        const double r = 1 / s[0];
        for (int64_t k = 0; k < n; k++) {
            double z = (x[k * ix] - m[k * im]) * r, gk = g[k * ig], zs = gk * z * r;
            if (gxx) gxx[k] = -zs;
            if (gm) gm[k] = zs;
            if (gs) gs[k] = gk * (z * z - 1) * r;
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        double sc = s[k * is], z = (x[k * ix] - m[k * im]) / sc, gk = g[k * ig], zs = gk * z / sc;
        if (gxx) gxx[k] = -zs;
        if (gm) gm[k] = zs;
        if (gs) gs[k] = gk * (z * z - 1) / sc;
    }
}

/* The same in float for float32 tensors. */
static void lp_forward_f32(int64_t n, const float *const *in, const int64_t *inc, float *out) {
    const float *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    const float c = (float)(-0.5 * SL_LOG_2PI);
    if (is == 0) {
        const float r = 1 / s[0], ls = logf(s[0]);
        for (int64_t k = 0; k < n; k++) {
            float z = (x[k * ix] - m[k * im]) * r;
            out[k] = ((z * z) * -0.5f + c) - ls;
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        float sc = s[k * is], z = (x[k * ix] - m[k * im]) / sc;
        out[k] = ((z * z) * -0.5f + c) - logf(sc);
    }
}

static void lp_backward_f32(int64_t n, const float *const *in, const int64_t *inc, const float *out,
                            const float *g, int64_t ig, float *const *gx) {
    const float *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    float *gxx = gx[0], *gm = gx[1], *gs = gx[2];
    for (int64_t k = 0; k < n; k++) {
        float r = 1 / s[k * is], z = (x[k * ix] - m[k * im]) * r, gk = g[k * ig], zs = gk * z * r;
        if (gxx) gxx[k] = -zs;
        if (gm) gm[k] = zs;
        if (gs) gs[k] = gk * (z * z - 1) * r;
    }
}

static const bk_fused normal_log_prob = {"normal_log_prob", 3, lp_forward, lp_backward,
                                         lp_forward_f32, lp_backward_f32};

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[3] = {x, d->p[0], d->p[1]};
    return bk_fused_apply(ctx, &normal_log_prob, in);
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, d->p[0], d->p[1], sl_noise_normal(ctx, rng, d, ns, ss));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    return bk_unop(ctx, BK_OP_SQUARE, d->p[1]);
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[1]), 0.5 + 0.5 * SL_LOG_2PI));
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *z = s_div(&s, s_sub(&s, x, d->p[0]), d->p[1]);
    return s_done(&s, s_muls(&s, s_un(&s, BK_OP_ERFC, s_muls(&s, z, -M_SQRT1_2)), 0.5));
}

static double ndtri_fn(bk_rng *r, const double *a, const void *ud) { return bk_ndtri(a[0]); }

static bk_tensor *icdf(bk_ctx *ctx, bk_tensor *q, bk_tensor *loc, bk_tensor *scale) {
    return sl_affine(ctx, loc, scale, sl_map(ctx, NULL, 0, NULL, 1, &q, ndtri_fn, NULL));
}

static bk_tensor *icdf_normal(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return icdf(ctx, q, d->p[0], d->p[1]);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_REAL);
}

const sl_family sl_family_normal = {
    .name = "Normal", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .cdf = cdf, .icdf = icdf_normal,
    .support = support, .reparam = true, .discrete = false, .init = init, .native_f32 = true,
};
