/* dist_normal.c - Normal(loc, scale). */
#include "dist_impl.h"
#include "program.h"
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
static inline double lp_elem(double x, double m, double sc, double ls) {
    double z = (x - m) / sc;
    return ((z * z) * -0.5 + -0.5 * SL_LOG_2PI) - ls;
}

static void lp_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    const double *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    if (is == 0) {
        const double sc = s[0], ls = log(sc);
        if (ix == 1 && im == 0) { /* the common case: a vector of data */
            const double mu = m[0];
            for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k], mu, sc, ls);
        } else {
            for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k * ix], m[k * im], sc, ls);
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k * ix], m[k * im], s[k * is], log(s[k * is]));
}

static void lp_backward(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                        const double *g, int64_t ig, double *const *gx) {
    const double *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    double *gxx = gx[0], *gm = gx[1], *gs = gx[2];
    if (is == 0) { /* a shared scale: multiply by its reciprocal */
        const double r = 1 / s[0];
        if (gxx && !gm && !gs) { /* a latent's prior: the value's gradient only */
            if (n == 1) {
                double z = (x[0] - m[0]) * r;
                gxx[0] = -(g[0] * z * r);
            } else if (ix == 1 && im == 0 && ig == 0) { /* a vector of latents, one loc, a sum's gradient */
                const double mu = m[0], gk = g[0];
                for (int64_t k = 0; k < n; k++) {
                    double z = (x[k] - mu) * r;
                    gxx[k] = -(gk * z * r);
                }
            } else if (ix == 1 && im == 0 && ig == 1) { /* the same, any gradient */
                const double mu = m[0];
                for (int64_t k = 0; k < n; k++) {
                    double z = (x[k] - mu) * r;
                    gxx[k] = -(g[k] * z * r);
                }
            } else {
                for (int64_t k = 0; k < n; k++) {
                    double z = (x[k * ix] - m[k * im]) * r;
                    gxx[k] = -(g[k * ig] * z * r);
                }
            }
            return;
        }
        for (int64_t k = 0; k < n; k++) {
            double z = (x[k * ix] - m[k * im]) * r, gk = g[k * ig], zs = gk * z * r;
            if (gxx) gxx[k] = -zs;
            if (gm) gm[k] = zs;
            if (gs) gs[k] = gk * (z * z - 1) * r;
        }
        return;
    }
    if (gm && !gxx && !gs && ix == 1 && im == 1 && is == 1) { /* observed data: the loc's gradient */
        if (ig == 0) {
            const double gk = g[0];
            for (int64_t k = 0; k < n; k++) {
                double sc = s[k], z = (x[k] - m[k]) / sc;
                gm[k] = gk * z / sc;
            }
        } else if (ig == 1)
            for (int64_t k = 0; k < n; k++) {
                double sc = s[k], z = (x[k] - m[k]) / sc;
                gm[k] = g[k] * z / sc;
            }
        else
            for (int64_t k = 0; k < n; k++) {
                double sc = s[k], z = (x[k] - m[k]) / sc;
                gm[k] = g[k * ig] * z / sc;
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

/* The same density with log(scale) as a fourth input, for a scale that
 * needs no gradient while a recording runs (program.h): the log is then an
 * op on constants, computed once when recording instead of at every
 * replay (eight schools: the 8 known standard errors).  The values and the
 * x / loc gradients are those of lp_forward / lp_backward, bit for bit
 * (the same expressions; log(scale) is the same number wherever it is
 * taken).  The scale and log-scale gradients (never asked for here) are
 * the partial derivatives of the four-input form:
 *   d/dscale = z^2 / scale,  d/dlog_scale = -1. */
static void lpl_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    const double *x = in[0], *m = in[1], *s = in[2], *l = in[3];
    int64_t ix = inc[0], im = inc[1], is = inc[2], il = inc[3];
    if (n == 1) { /* a scalar latent's prior */
        out[0] = lp_elem(x[0], m[0], s[0], l[0]);
        return;
    }
    if (ix == 1 && im == 1 && is == 1 && il == 1) { /* observations with their own scales */
        for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k], m[k], s[k], l[k]);
        return;
    }
    if (is == 0 && il == 0) { /* one scale */
        const double sc = s[0], ls = l[0];
        if (ix == 1 && im == 0) {
            const double mu = m[0];
            for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k], mu, sc, ls);
        } else {
            for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k * ix], m[k * im], sc, ls);
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) out[k] = lp_elem(x[k * ix], m[k * im], s[k * is], l[k * il]);
}

static void lpl_backward(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                         const double *g, int64_t ig, double *const *gx) {
    double *gs = gx[2], *gl = gx[3];
    if (!gs && !gl) { /* the scale needs no gradient: the case this form is made for */
        lp_backward(n, in, inc, out, g, ig, gx); /* (its gx[2], the scale's, is NULL) */
        return;
    }
    double *const g3[3] = {gx[0], gx[1], NULL};
    lp_backward(n, in, inc, out, g, ig, g3);
    const double *x = in[0], *m = in[1], *s = in[2];
    int64_t ix = inc[0], im = inc[1], is = inc[2];
    for (int64_t k = 0; (gs || gl) && k < n; k++) {
        double sc = s[k * is], z = (x[k * ix] - m[k * im]) / sc, gk = g[k * ig];
        if (gs) gs[k] = gk * (z * z) / sc;
        if (gl) gl[k] = -gk;
    }
}

static const bk_fused normal_log_prob_ls = {"normal_log_prob_log_scale", 4, lpl_forward, lpl_backward,
                                            NULL, NULL};

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
    bk_tensor *in[4] = {x, d->p[0], d->p[1], NULL};
    bk_tensor *sc = d->p[1];
    if (bk_prog_recording(ctx) && !sc->requires_grad && sc->dtype == BK_F64 && x->dtype == BK_F64 &&
        d->p[0]->dtype == BK_F64) {
        /* a scale without a gradient: its log outside the kernel (lpl_forward) */
        if (!(in[3] = bk_unop(ctx, BK_OP_LOG, sc))) return NULL;
        bk_tensor *lp = bk_fused_apply(ctx, &normal_log_prob_ls, in);
        bk_release(in[3]);
        return lp;
    }
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
