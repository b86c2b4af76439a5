/* dist_bernoulli.c - Bernoulli(probs= | logits=), values {0, 1}. */
#include <math.h>
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (d->variant == 0 ? sl_check_param(ctx, d, 0, "probs", SL_V_PROB, bad)
                        : sl_check_param(ctx, d, 0, "logits", SL_V_REAL, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

/* The log mass with logits l as one fused kernel (bk_fused): for x in
 * {0, 1}, log p = x l - softplus(l) = -softplus(t) with t = (1 - 2x) l,
 * taken as -(max(t, 0) + log1p(exp(-|t|))) (no overflow, no cancellation);
 * -inf for any other x.  The backward needs no transcendental but one
 * expm1:  d/dl = x - sigmoid(l) = (1 - 2x) expm1(log p), since
 * sigmoid(t) = 1 - exp(-softplus(t)).  x (data) gets no gradient. */
static inline double bern_lp(double x, double l) {
    if (x != 1 && x != 0) return -INFINITY;
    double t = x == 1 ? -l : l;
    return -(fmax(t, 0.0) + log1p(exp(-fabs(t))));
}

static inline float bern_lp_f(float x, float l) {
    if (x != 1 && x != 0) return -INFINITY;
    float t = x == 1 ? -l : l;
    return -(fmaxf(t, 0.0f) + log1pf(expf(-fabsf(t))));
}

static void bl_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    const double *x = in[0], *l = in[1];
    int64_t ix = inc[0], il = inc[1];
    for (int64_t k = 0; k < n; k++) out[k] = bern_lp(x[k * ix], l[k * il]);
}

static void bl_backward(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                        const double *g, int64_t ig, double *const *gx) {
    const double *x = in[0];
    int64_t ix = inc[0];
    if (gx[0])
        for (int64_t k = 0; k < n; k++) gx[0][k] = 0;
    if (!gx[1]) return;
    for (int64_t k = 0; k < n; k++) {
        double xv = x[k * ix], s = xv == 1 ? -1.0 : 1.0; /* 1 - 2x */
        gx[1][k] = xv == 1 || xv == 0 ? g[k * ig] * (s * expm1(out[k])) : 0.0;
    }
}

static void bl_forward_f32(int64_t n, const float *const *in, const int64_t *inc, float *out) {
    const float *x = in[0], *l = in[1];
    int64_t ix = inc[0], il = inc[1];
    for (int64_t k = 0; k < n; k++) out[k] = bern_lp_f(x[k * ix], l[k * il]);
}

static void bl_backward_f32(int64_t n, const float *const *in, const int64_t *inc, const float *out,
                            const float *g, int64_t ig, float *const *gx) {
    const float *x = in[0];
    int64_t ix = inc[0];
    if (gx[0])
        for (int64_t k = 0; k < n; k++) gx[0][k] = 0;
    if (!gx[1]) return;
    for (int64_t k = 0; k < n; k++) {
        float xv = x[k * ix], s = xv == 1 ? -1.0f : 1.0f;
        gx[1][k] = xv == 1 || xv == 0 ? g[k * ig] * (s * expm1f(out[k])) : 0.0f;
    }
}

static const bk_fused bernoulli_logits_lp = {"bernoulli_logits_log_prob", 2, bl_forward, bl_backward,
                                         bl_forward_f32, bl_backward_f32};

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    if (d->variant == 1) {
        bk_tensor *in[2] = {x, d->p[0]};
        return bk_fused_apply(ctx, &bernoulli_logits_lp, in);
    }
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
    .support = support, .reparam = false, .discrete = true, .init = init, .native_f32 = true,
};
