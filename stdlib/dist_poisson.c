/* dist_poisson.c - Poisson(rate) on 0, 1, 2, ... */
#include "dist_impl.h"
#include "special.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_param(ctx, d, 0, "rate", SL_V_NONNEG, bad)) return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"rate", NULL};
    return sl_build_simple(a, d, names, NULL);
}

/* lgamma(k + 1) for small counts, filled on first use within one call */
#define LF_TAB 256

/* One pass over plain arrays when no gradient is needed; the same
 * arithmetic, in the same order, as the tensor-op formula below. */
static void fused(const sl_fused *f) {
    double tab[LF_TAB];
    int sg;
    for (int i = 0; i < LF_TAB; i++) tab[i] = NAN;
    const double *x = f->x, *r = f->p[0];
    double *o = f->out;
    for (int64_t i = 0; i < f->n; i++) {
        double k = x[i * f->sx], ri = r[i * f->sp[0]];
        double lf;
        if (k >= 0 && k < LF_TAB) {   /* small counts: exact integers from a table */
            int j = (int)k;
            if ((double)j != k) {
                o[i] = -INFINITY;
                continue;
            }
            if (isnan(tab[j])) tab[j] = lgamma_r(k + 1.0, &sg);
            lf = tab[j];
        } else if (k >= LF_TAB && k == floor(k) && !isinf(k)) {
            lf = lgamma_r(k + 1.0, &sg);
        } else {
            o[i] = -INFINITY;
            continue;
        }
        double t = k != 0 ? k * log(ri) : 0.0;
        o[i] = t - ri - lf;
    }
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *r;
    if (sl_fused_try(ctx, d, 1, x, fused, &r)) return r;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_and(&s, s_isint(&s, x), s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0)));
    bk_tensor *k = s_safe(&s, ok, x, 0.0);
    bk_tensor *lp = s_sub(&s, s_xlogy(&s, k, s_log(&s, d->p[0])), d->p[0]);
    lp = s_sub(&s, lp, s_lgamma(&s, s_adds(&s, k, 1.0)));
    return s_done(&s, s_guard(&s, ok, lp));
}

static double draw(bk_rng *r, const double *a, const void *ud) {
    return (double)bk_rng_poisson(r, a[0]);
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    bk_tensor *in[1] = {d->p[0]};
    return sl_map(ctx, rng, nd, shape, 1, in, draw, NULL);
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }
static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) { return bk_retain(d->p[0]); }

static double cdf_fn(bk_rng *r, const double *a, const void *ud) {
    if (a[0] < 0) return 0.0;
    if (a[1] == 0) return 1.0;
    return bk_gammainc_upper(floor(a[0]) + 1.0, a[1]);
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bk_tensor *in[2] = {x, d->p[0]};
    return sl_map(ctx, NULL, 0, NULL, 2, in, cdf_fn, NULL);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_NONNEG_INTEGER);
}

const sl_family sl_family_poisson = {
    .name = "Poisson", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .cdf = cdf,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
