/* dist_mixture.c - MixtureSameFamily(mixing, component): a Categorical over
 * K components and one distribution whose rightmost batch dim is K.
 *
 *   log p(x) = logsumexp_k (log w_k + log p_k(x))
 *
 * Batch = the component's batch without its last dim; event = the
 * component's event.  log_prob is differentiable in the weights and in the
 * components' parameters (for NUTS and SVI); sampling picks a component per
 * draw, so it is not reparameterized. */
#include <string.h>
#include "dist_impl.h"

static int64_t ncomp(const sl_dist *d) { return d->sub[1]->batch[d->sub[1]->nbatch - 1]; }

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"mixing", "component", NULL};
    rt_vm *vm = a->vm;
    const rt_call *c = a->call;
    if (rt_check_args(vm, c, 2, names)) return -1;
    const rt_value *mv = rt_arg(c, 0, "mixing"), *cv = rt_arg(c, 1, "component");
    if (!mv || mv->tag != RT_DIST || strcmp(((sl_dist *)mv->u.o)->fam->name, "Categorical") != 0)
        return rt_error_arg(vm, c, 0, "MixtureSameFamily: mixing must be a Categorical distribution");
    if (!cv || cv->tag != RT_DIST)
        return rt_error_arg(vm, c, 1, "MixtureSameFamily: component must be a distribution");
    sl_dist *mix = (sl_dist *)mv->u.o, *comp = (sl_dist *)cv->u.o;
    int64_t K = mix->p[0]->shape[mix->p[0]->ndim - 1];
    if (comp->nbatch < 1 || comp->batch[comp->nbatch - 1] != K)
        return rt_error_arg(vm, c, 1, "MixtureSameFamily: component batch shape must end in the %lld "
                            "mixture components (use e.g. Normal(locs, scales) with locs of shape [%lld])",
                            (long long)K, (long long)K);
    /* mixing batch must broadcast with the component batch minus K */
    int nb;
    int64_t B[BK_MAXDIM];
    bk_ctx *ctx = rt_vm_bk(vm);
    if (bk_broadcast_shapes(ctx, mix->nbatch, mix->batch, comp->nbatch - 1, comp->batch, &nb, B))
        return rt_error_arg(vm, c, 0, "MixtureSameFamily: %s", bk_errmsg(ctx));
    mix->h.refcount++;
    comp->h.refcount++;
    d->sub[0] = mix;
    d->sub[1] = comp;
    d->np = 0;
    d->nbatch = nb;
    memcpy(d->batch, B, sizeof B);
    d->nevent = comp->nevent;
    memcpy(d->event, comp->event, sizeof d->event);
    return 0;
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    const sl_dist *comp = d->sub[1];
    sl_scope s;
    sl_scope_init(&s, ctx);
    /* x [..., event] -> [..., 1, event] broadcasts over the K components */
    bk_tensor *xk = s_unsq(&s, x, -1 - (int64_t)comp->nevent);
    bk_tensor *lp = s.err ? NULL : s_keep(&s, sl_log_prob(ctx, comp, xk));
    bk_tensor *lw = s_cat_logp(&s, d->sub[0], 0);
    return s_done(&s, s_red(&s, BK_OP_LOGSUMEXP, s_add(&s, lp, lw), -1, false));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    const sl_dist *comp = d->sub[1];
    int64_t K = ncomp(d);
    /* component choice per (sample, batch) position, and every component's draw */
    int64_t bshape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, bshape); /* sample + batch + event */
    if (nd < 0) return NULL;
    int nlead = nd - d->nevent;                  /* sample + batch */
    sl_dist *mixx = sl_expand(ctx, d->sub[0], d->nbatch, d->batch);
    bk_tensor *k = mixx ? sl_sample(ctx, rng, mixx, ns, ss) : NULL;
    if (mixx) sl_dist_release(mixx);
    /* every component drawn at every batch position: expand the component to
     * batch + [K] first (the mixture's batch may be wider than its own) */
    int64_t cb[BK_MAXDIM];
    memcpy(cb, d->batch, sizeof cb);
    cb[d->nbatch] = K;
    sl_dist *compx = k ? sl_expand(ctx, comp, d->nbatch + 1, cb) : NULL;
    bk_tensor *all = compx ? sl_sample(ctx, rng, compx, ns, ss) : NULL; /* sample + batch + [K] + event */
    if (compx) sl_dist_release(compx);
    bk_tensor *out = all ? bk_empty(ctx, BK_F64, nd, bshape) : NULL;
    if (!out) {
        bk_release(k);
        bk_release(all);
        return NULL;
    }
    /* all may have a smaller batch than d (mixing broadcasts it): expand */
    int64_t ashape[BK_MAXDIM + 1];
    for (int i = 0; i < nlead; i++) ashape[i] = bshape[i];
    ashape[nlead] = K;
    for (int i = 0; i < d->nevent; i++) ashape[nlead + 1 + i] = d->event[i];
    bk_tensor *ae = bk_expand(ctx, all, nd + 1, ashape);
    bk_release(all);
    if (!ae) {
        bk_release(k);
        bk_release(out);
        return NULL;
    }
    int64_t ev = 1, lead = 1;
    for (int i = 0; i < d->nevent; i++) ev *= d->event[i];
    for (int i = 0; i < nlead; i++) lead *= bshape[i];
    double *o = bk_data(out);
    for (int64_t i = 0; i < lead; i++) {
        int64_t kk = (int64_t)bk_get(k, i);
        for (int64_t e = 0; e < ev; e++) o[i * ev + e] = bk_get(ae, (i * K + kk) * ev + e);
    }
    bk_release(k);
    bk_release(ae);
    return out;
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    if (!d->sub[1]->fam->mean) {
        bk_seterr(ctx, "MixtureSameFamily: the component has no closed-form mean");
        return NULL;
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *m = s_keep(&s, sl_mean(ctx, d->sub[1]));       /* cbatch + event */
    bk_tensor *w = s_exp(&s, s_cat_logp(&s, d->sub[0], 0));    /* mbatch + [K] */
    for (int i = 0; i < d->nevent && w; i++) w = s_unsq(&s, w, -1);
    bk_tensor *wm = s_mul(&s, w, m);
    return s_done(&s, s_sum(&s, wm, -1 - (int64_t)d->nevent, false));
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) { return sl_support(ctx, d->sub[1], out); }

const sl_family sl_family_mixture = {
    .name = "MixtureSameFamily", .build = build, .log_prob = log_prob, .sample = sample,
    .mean = mean, .support = support, .reparam = false, .discrete = false,
};
