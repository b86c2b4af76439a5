/* dist_onehot_categorical.c - OneHotCategorical(probs= | logits=): the
 * Categorical over K classes with values written as one-hot vectors of
 * length K; event shape [K], batch = the other parameter dims.
 *   log p(x) = sum_k x_k log p_k   for x one-hot, -inf otherwise. */
#include <string.h>
#include "dist_impl.h"

static const char *const FAM = "OneHotCategorical";

static int64_t ncat(const sl_dist *d) { return d->p[0]->shape[d->p[0]->ndim - 1]; }

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (sl_check_cat_param(ctx, d, bad)) return -1;
    if (d->variant == 0) {
        /* every row of probs needs some mass to normalize */
        const bk_tensor *p = d->p[0];
        int64_t K = ncat(d);
        for (int64_t i = 0; i < p->numel; i += K) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += bk_get(p, i + k);
            if (!(s > 0) || !isfinite(s)) {
                bk_seterr(ctx, "%s: probs must have a positive finite sum along the last "
                          "dimension, got %g", FAM, s);
                *bad = 0;
                return -1;
            }
        }
    }
    static const int ev[] = {1};
    if (sl_shape_broadcast(ctx, d, ev, bad)) return -1;
    d->nevent = 1;
    d->event[0] = ncat(d);
    return 0;
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    int64_t K = ncat(d);
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K) {
        char sh[64];
        bk_seterr(ctx, "%s: value must have shape [..., %lld], got %s", FAM, (long long)K,
                  bk_shape_str(x, sh, sizeof sh));
        return NULL;
    }
    sl_constraint oh = {.kind = SL_C_ONE_HOT};
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = s_keep(&s, sl_check(ctx, &oh, x));
    bk_tensor *xd = s.err ? NULL : s_keep(&s, bk_detach(ctx, x));
    bk_tensor *lp = s_sum(&s, s_xlogy(&s, xd, s_cat_logp(&s, d, 0)), -1, false);
    return s_done(&s, s_guard(&s, ok, lp));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM], K = ncat(d);
    int nd = sl_draw_shape(d, ns, ss, shape);   /* sample + batch + [K] */
    if (nd < 0) {
        bk_seterr(ctx, "%s: sample has too many dimensions", FAM);
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_cat_probs(&s, d, 0);
    bk_tensor *dense = s.err ? NULL : s_keep(&s, sl_dense(ctx, p, nd, shape));
    bk_tensor *out = s.err ? NULL : s_keep(&s, bk_zeros(ctx, BK_F64, nd, shape));
    if (s.err) return s_done(&s, NULL);
    const double *pv = bk_data(dense);
    double *o = bk_data(out);
    for (int64_t i = 0; i < out->numel; i += K) o[i + bk_rng_categorical(rng, K, pv + i)] = 1.0;
    return s_done(&s, out);
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_cat_probs(&s, d, 0));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_cat_probs(&s, d, 0);
    return s_done(&s, s_mul(&s, p, s_rsubs(&s, 1.0, p)));
}

/* The K one-hot vectors, laid out as [K] + batch + [K] (as in PyTorch). */
static bk_tensor *enumerate(bk_ctx *ctx, const sl_dist *d) {
    int64_t K = ncat(d), shape[BK_MAXDIM];
    if (d->nbatch + 2 > BK_MAXDIM) {
        bk_seterr(ctx, "%s: too many dimensions to enumerate", FAM);
        return NULL;
    }
    shape[0] = K;
    memcpy(shape + 1, d->batch, d->nbatch * sizeof *shape);
    shape[d->nbatch + 1] = K;
    bk_tensor *t = bk_zeros(ctx, BK_F64, d->nbatch + 2, shape);
    if (!t) return NULL;
    double *v = bk_data(t);
    int64_t per = K > 0 ? t->numel / (K * K) : 0;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < per; j++) v[(k * per + j) * K + k] = 1.0;
    return t;
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_ONE_HOT);
}

const sl_family sl_family_onehot_categorical = {
    .name = "OneHotCategorical", .build = sl_build_probs_logits, .log_prob = log_prob,
    .sample = sample, .mean = mean, .variance = variance, .entropy = sl_cat_entropy, .enumerate_support = enumerate,
    .support = support, .reparam = false, .discrete = true, .init = init,
};
