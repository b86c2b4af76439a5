/* dist_halfcauchy.c - HalfCauchy(scale): |Cauchy(0, scale)| on x >= 0. */
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "scale", SL_V_POS, bad)) return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"scale", NULL};
    return sl_build_simple(a, d, names, NULL);
}

/* The log density as one fused kernel (bk_fused) of ok = (x >= 0), x,
 * the scale and log(scale), for a scale that needs no gradient: the
 * chain of ops below (where, div, square, log1p, add, mul, add) in one
 * pass, with the very arithmetic of those ops forward and backward, so
 * its values and gradients are theirs bit for bit.  The backward follows
 * the tape: one-element operands are its scalar records (a contribution
 * g * d(op) added to a zero adjoint; a quotient's d/dx is 1 / y), larger
 * ones its tensor rules (g * d(op) copied; d/dx of x / y is g / y). */
static inline double hc_elem(double ok, double x, double sc, double ls) {
    /* bk__pointwise's SQUARE (x * x) and LOG1P (log1p) inline */
    double z = (ok != 0 ? x : 0.0) / sc, sq = z * z;
    return (log1p(sq) + ls) * -1.0 + (SL_LOG2 - SL_LOG_PI);
}

static void hc_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    if (n == 1) { /* one element (a scalar scale's prior): no strides */
        out[0] = hc_elem(in[0][0], in[1][0], in[2][0], in[3][0]);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        out[k] = hc_elem(in[0][k * inc[0]], in[1][k * inc[1]], in[2][k * inc[2]], in[3][k * inc[3]]);
}

/* d lp / d x for one element with output gradient g; `scalar`: the tape's
 * scalar records (every operand one element).  The derivatives are
 * bk__pointwise_grad's: LOG1P 1 / (sq + 1), SQUARE 2 z. */
static inline double hc_grad(bool scalar, double ok, double x, double sc, double g) {
    double z = (ok != 0 ? x : 0.0) / sc, sq = z * z;
    double dl = 1 / (sq + 1), dz = 2 * z;
    double gv;
    if (scalar) {
        double gm = 0.0 + g * 1.0, ga = 0.0 + gm * -1.0, gl = 0.0 + ga * 1.0;
        double gsq = 0.0 + gl * dl, gz = 0.0 + gsq * dz;
        gv = 0.0 + gz * (1 / sc);
    } else {
        double ga = g * -1.0, gsq = ga * dl, gz = gsq * dz;
        gv = gz / sc;
    }
    return ok != 0 ? gv : 0.0;
}

static void hc_backward_rows(bool scalar, int64_t n, const double *const *in, const int64_t *inc, const double *g,
                             int64_t ig, double *const *gx) {
    if (!gx[1]) return; /* (ok, the scale and its log need none) */
    if (n == 1) { /* a scalar scale's prior: no strides */
        gx[1][0] = hc_grad(scalar, in[0][0], in[1][0], in[2][0], g[0]);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        gx[1][k] = hc_grad(scalar, in[0][k * inc[0]], in[1][k * inc[1]], in[2][k * inc[2]], g[k * ig]);
}

static void hc_backward_scalar(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                               const double *g, int64_t ig, double *const *gx) {
    hc_backward_rows(true, n, in, inc, g, ig, gx);
}

static void hc_backward_tensor(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                               const double *g, int64_t ig, double *const *gx) {
    hc_backward_rows(false, n, in, inc, g, ig, gx);
}

static const bk_fused hc_lp_scalar = {"halfcauchy_log_prob_scalar", 4, hc_forward, hc_backward_scalar, NULL, NULL};
static const bk_fused hc_lp_tensor = {"halfcauchy_log_prob", 4, hc_forward, hc_backward_tensor, NULL, NULL};

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *sc = d->p[0];
    bk_tensor *ok = s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0));
    if (ok && !sc->requires_grad && x->dtype == BK_F64 && sc->dtype == BK_F64 &&
        (sc->numel == 1 || bk_same_shape(sc, x))) {
        bk_tensor *in[4] = {ok, x, sc, s_log(&s, sc)};
        const bk_fused *f = x->numel == 1 ? &hc_lp_scalar : &hc_lp_tensor;
        bk_tensor *lp = in[3] ? s_keep(&s, bk_fused_apply(ctx, f, in)) : NULL;
        return s_done(&s, s_guard(&s, ok, lp));
    }
    bk_tensor *z = s_div(&s, s_safe(&s, ok, x, 0.0), sc);
    bk_tensor *lp = s_add(&s, s_un(&s, BK_OP_LOG1P, s_square(&s, z)), s_log(&s, sc));
    lp = s_adds(&s, s_muls(&s, lp, -1.0), SL_LOG2 - SL_LOG_PI);
    return s_done(&s, s_guard(&s, ok, lp));
}

static double half_cauchy(bk_rng *r, const double *a, const void *ud) {
    return fabs(tan(SL_PI * (bk_rng_uniform(r) - 0.5)));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    return sl_affine(ctx, NULL, d->p[0], sl_noise(ctx, rng, d, ns, ss, half_cauchy, NULL));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_adds(&s, s_log(&s, d->p[0]), log(2 * SL_PI)));
}

static double cdf_fn(bk_rng *r, const double *a, const void *ud) {
    return a[0] <= 0 ? 0.0 : 2.0 / SL_PI * atan(a[0] / a[1]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[2] = {x, d->p[0]};
    return sl_map(ctx, NULL, 0, NULL, 2, in, cdf_fn, NULL);
}

static double icdf_fn(bk_rng *r, const double *a, const void *ud) {
    return tan(0.5 * SL_PI * a[0]);
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    return sl_affine(ctx, NULL, d->p[0], sl_map(ctx, NULL, 0, NULL, 1, &q, icdf_fn, NULL));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_POSITIVE);
}

const sl_family sl_family_halfcauchy = {
    .name = "HalfCauchy", .build = build, .log_prob = log_prob, .sample = sample,
    .entropy = entropy, .cdf = cdf, .icdf = icdf,
    .support = support, .reparam = true, .discrete = false, .init = init,
};
