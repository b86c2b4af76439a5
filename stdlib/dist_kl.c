/* dist_kl.c - closed-form KL(p || q) for registered pairs of families.
 * Each rule returns the KL per element of the family batch; sl_kl then
 * sums the reinterpreted (to_event) dims like log_prob does. */
#include <string.h>
#include "dist_impl.h"

typedef bk_tensor *(*kl_fn)(sl_scope *, const sl_dist *p, const sl_dist *q);

/* Normal / LogNormal: log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2 */
static bk_tensor *kl_normal(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *r = s_div(s, p->p[1], q->p[1]);
    bk_tensor *t = s_square(s, s_div(s, s_sub(s, p->p[0], q->p[0]), q->p[1]));
    bk_tensor *k = s_muls(s, s_add(s, s_square(s, r), t), 0.5);
    return s_adds(s, s_sub(s, k, s_log(s, r)), -0.5);
}

static bk_tensor *kl_bernoulli(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *pp = s_probs(s, p, 0);
    bk_tensor *a = s_xlogy(s, pp, s_sub(s, s_logp(s, p, 0), s_logp(s, q, 0)));
    bk_tensor *b = s_xlogy(s, s_rsubs(s, 1.0, pp), s_sub(s, s_log1mp(s, p, 0), s_log1mp(s, q, 0)));
    return s_add(s, a, b);
}

static bk_tensor *kl_categorical(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *lp = s_cat_logp(s, p, 0), *lq = s_cat_logp(s, q, 0);
    return s_sum(s, s_xlogy(s, s_exp(s, lp), s_sub(s, lp, lq)), -1, false);
}

static bk_tensor *kl_gamma(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *a1 = p->p[0], *b1 = p->p[1], *a2 = q->p[0], *b2 = q->p[1];
    bk_tensor *k = s_mul(s, s_sub(s, a1, a2), s_digamma(s, a1));
    k = s_add(s, s_sub(s, k, s_lgamma(s, a1)), s_lgamma(s, a2));
    k = s_add(s, k, s_mul(s, a2, s_sub(s, s_log(s, b1), s_log(s, b2))));
    return s_add(s, k, s_mul(s, a1, s_div(s, s_sub(s, b2, b1), b1)));
}

static bk_tensor *lbeta(sl_scope *s, bk_tensor *a, bk_tensor *b) {
    return s_sub(s, s_add(s, s_lgamma(s, a), s_lgamma(s, b)), s_lgamma(s, s_add(s, a, b)));
}

static bk_tensor *kl_beta(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *a1 = p->p[0], *b1 = p->p[1], *a2 = q->p[0], *b2 = q->p[1];
    bk_tensor *k = s_sub(s, lbeta(s, a2, b2), lbeta(s, a1, b1));
    k = s_add(s, k, s_mul(s, s_sub(s, a1, a2), s_digamma(s, a1)));
    k = s_add(s, k, s_mul(s, s_sub(s, b1, b2), s_digamma(s, b1)));
    bk_tensor *w = s_sub(s, s_add(s, a2, b2), s_add(s, a1, b1));
    return s_add(s, k, s_mul(s, w, s_digamma(s, s_add(s, a1, b1))));
}

static bk_tensor *kl_exponential(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *r = s_div(s, q->p[0], p->p[0]);
    return s_adds(s, s_sub(s, r, s_log(s, r)), -1.0);
}

static bk_tensor *kl_dirichlet(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *a = p->p[0], *b = q->p[0];
    bk_tensor *a0 = s_sum(s, a, -1, true), *b0 = s_sum(s, b, -1, false);
    bk_tensor *k = s_sub(s, s_lgamma(s, s_sq(s, a0, -1)), s_sum(s, s_lgamma(s, a), -1, false));
    k = s_add(s, s_sub(s, k, s_lgamma(s, b0)), s_sum(s, s_lgamma(s, b), -1, false));
    bk_tensor *t = s_mul(s, s_sub(s, a, b), s_sub(s, s_digamma(s, a), s_digamma(s, a0)));
    return s_add(s, k, s_sum(s, t, -1, false));
}

/* 0.5 (|L2^-1 L1|_F^2 + |L2^-1 (m2 - m1)|^2 - n) + log|L2| - log|L1| */
static bk_tensor *kl_mvn(sl_scope *s, const sl_dist *p, const sl_dist *q) {
    bk_tensor *L1 = p->p[2], *L2 = q->p[2];
    double n = (double)p->event[p->nevent - 1];
    if (!s->err && (L1->ndim != 2 || L2->ndim != 2 || p->p[0]->ndim != 1 || q->p[0]->ndim != 1)) {
        bk_seterr(s->ctx, "kl_divergence: MultivariateNormal KL supports unbatched parameters only");
        s->err = true;
        return NULL;
    }
    bk_tensor *M = NULL, *z = NULL, *diff = s_unsq(s, s_sub(s, q->p[0], p->p[0]), -1);
    if (!s->err) M = s_keep(s, bk_solve_triangular(s->ctx, L2, L1, false));
    if (!s->err) z = s_keep(s, bk_solve_triangular(s->ctx, L2, diff, false));
    bk_tensor *tr = s_sum(s, s_square(s, M), BK_ALL_AXES, false);
    bk_tensor *mh = s_sum(s, s_square(s, z), BK_ALL_AXES, false);
    bk_tensor *k = s_muls(s, s_adds(s, s_add(s, tr, mh), -n), 0.5);
    bk_tensor *ld1 = s_sum(s, s_log(s, s_diag(s, L1)), -1, false);
    bk_tensor *ld2 = s_sum(s, s_log(s, s_diag(s, L2)), -1, false);
    return s_add(s, k, s_sub(s, ld2, ld1));
}

typedef struct kl_rule {
    const char *p, *q;
    kl_fn fn;
} kl_rule;

static const kl_rule rules[] = {
    {"Normal", "Normal", kl_normal},
    {"LogNormal", "LogNormal", kl_normal},
    {"Bernoulli", "Bernoulli", kl_bernoulli},
    {"Categorical", "Categorical", kl_categorical},
    {"Gamma", "Gamma", kl_gamma},
    {"Beta", "Beta", kl_beta},
    {"Exponential", "Exponential", kl_exponential},
    {"Dirichlet", "Dirichlet", kl_dirichlet},
    {"MultivariateNormal", "MultivariateNormal", kl_mvn},
    {NULL, NULL, NULL},
};

bk_tensor *sl_kl(bk_ctx *ctx, const sl_dist *p, const sl_dist *q) {
    if (p->reinterpreted != q->reinterpreted || p->nevent != q->nevent) {
        bk_seterr(ctx, "kl_divergence: %s and %s have different event shapes", p->fam->name,
                  q->fam->name);
        return NULL;
    }
    int64_t fb[BK_MAXDIM];
    int nfb = sl_fam_batch(p, fb);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *k = NULL;
    if (strcmp(p->fam->name, "Delta") == 0) {
        /* all of p's mass sits at v: KL = -log q(v) (p's own density is
         * a point mass, its log-density term is the constant 0) */
        bk_tensor *lq = s_keep(&s, sl_log_prob(ctx, q, p->p[0]));
        k = s_muls(&s, lq, -1.0);
        return s_done(&s, k);
    }
    for (const kl_rule *r = rules; r->p; r++)
        if (strcmp(r->p, p->fam->name) == 0 && strcmp(r->q, q->fam->name) == 0) {
            k = r->fn(&s, p, q);
            break;
        }
    if (!k && !s.err) {
        bk_seterr(ctx, "no closed-form KL for %s || %s", p->fam->name, q->fam->name);
        return s_done(&s, NULL);
    }
    if (s.err) return s_done(&s, NULL);
    /* broadcast to the family batch and sum the reinterpreted dims */
    int no;
    int64_t o[BK_MAXDIM];
    if (bk_broadcast_shapes(ctx, k->ndim, k->shape, nfb, fb, &no, o)) return s_done(&s, NULL);
    if (no != k->ndim || memcmp(o, k->shape, no * sizeof *o) != 0) k = s_expand(&s, k, no, o);
    for (int i = 0; i < p->reinterpreted; i++) k = s_sum(&s, k, -1, false);
    return s_done(&s, k);
}
