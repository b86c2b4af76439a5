/* dist_categorical.c - Categorical(probs= | logits=): values 0..K-1 where
 * K is the last parameter dim; event shape [], batch = the other dims. */
#include <string.h>
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_cat_param(ctx, d, bad)) return -1;
    static const int ev[] = {1};
    return sl_shape_broadcast(ctx, d, ev, bad);
}

static int64_t ncat(const sl_dist *d) { return d->p[0]->shape[d->p[0]->ndim - 1]; }

/* No gradient needed, one category vector (no batch) and a contiguous
 * float64 x: the K log-probabilities once (by the same tensor formula),
 * then one table lookup per value.  NULL when it does not apply. */
static bk_tensor *fused(bk_ctx *ctx, const sl_dist *d, bk_tensor *x, bool *err) {
    const bk_tensor *p = d->p[0];
    *err = false;
    if (p->ndim != 1 || sl_needs_grad(ctx, p) || sl_needs_grad(ctx, x) || x->dtype != BK_F64 ||
        !bk_is_contiguous(x))
        return NULL;
    int64_t K = ncat(d);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *lp = s_cat_logp(&s, d, 0);
    bk_tensor *tab = s.err ? NULL : s_keep(&s, bk_contiguous(ctx, lp));
    bk_tensor *out = s.err ? NULL : s_keep(&s, bk_empty(ctx, BK_F64, x->ndim, x->shape));
    if (s.err) {
        *err = true;
        return s_done(&s, NULL);
    }
    const double *t = bk_data(tab), *xv = bk_data(x);
    double *o = bk_data(out);
    for (int64_t i = 0; i < out->numel; i++) {
        double v = xv[i];
        int64_t k = v >= 0 && v < (double)K ? (int64_t)v : -1;   /* in range: no overflow */
        o[i] = k >= 0 && (double)k == v ? t[k] : -INFINITY;
    }
    return s_done(&s, out);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    bool ferr;
    bk_tensor *r = fused(ctx, d, x, &ferr);
    if (r || ferr) return r;
    int64_t K = ncat(d), B[BK_MAXDIM + 1];
    int nb;
    const bk_tensor *p = d->p[0];
    if (bk_broadcast_shapes(ctx, x->ndim, x->shape, p->ndim - 1, p->shape, &nb, B)) return NULL;
    if (nb + 1 > BK_MAXDIM) {
        bk_seterr(ctx, "Categorical: too many dimensions");
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_and(&s, s_isint(&s, x),
                          s_and(&s, s_bin(&s, BK_OP_GE, x, s_scalar(&s, 0.0)),
                                s_bin(&s, BK_OP_LE, x, s_scalar(&s, (double)(K - 1)))));
    bk_tensor *xi = s_safe(&s, ok, x, 0.0);
    B[nb] = K;
    bk_tensor *lp = s_expand(&s, s_cat_logp(&s, d, 0), nb + 1, B);
    B[nb] = 1;
    bk_tensor *idx = s_expand(&s, s_unsq(&s, xi, -1), nb + 1, B);
    bk_tensor *g = NULL;
    if (!s.err) g = s_keep(&s, bk_gather(ctx, lp, -1, idx));
    return s_done(&s, s_guard(&s, ok, s_sq(&s, g, -1)));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM + 1], K = ncat(d);
    int nd = sl_draw_shape(d, ns, ss, shape);
    if (nd < 0 || nd + 1 > BK_MAXDIM) {
        bk_seterr(ctx, "Categorical: sample has too many dimensions");
        return NULL;
    }
    shape[nd] = K;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_cat_probs(&s, d, 0);
    bk_tensor *dense = s.err ? NULL : s_keep(&s, sl_dense(ctx, p, nd + 1, shape));
    bk_tensor *out = s.err ? NULL : s_keep(&s, bk_empty(ctx, BK_F64, nd, shape));
    if (s.err) return s_done(&s, NULL);
    const double *pv = bk_data(dense);
    double *o = bk_data(out);
    for (int64_t i = 0; i < out->numel; i++)
        o[i] = (double)bk_rng_categorical(rng, K, pv + i * K);
    return s_done(&s, out);
}

static bk_tensor *enumerate(bk_ctx *ctx, const sl_dist *d) {
    return sl_enumerate(ctx, d, ncat(d));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    sl_support_kind(out, SL_C_INTEGER_INTERVAL);
    out->lo = bk_scalar(ctx, 0.0);
    out->hi = bk_scalar(ctx, (double)(ncat(d) - 1));
    if (!out->lo || !out->hi) {
        sl_constraint_clear(out);
        return -1;
    }
    return 0;
}

const sl_family sl_family_categorical = {
    .name = "Categorical", .build = sl_build_probs_logits, .log_prob = log_prob, .sample = sample,
    .entropy = sl_cat_entropy, .enumerate_support = enumerate, .support = support,
    .reparam = false, .discrete = true, .init = init,
};
