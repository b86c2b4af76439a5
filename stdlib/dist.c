/* dist.c - the generic distribution operations: object lifetime, log_prob
 * with to_event / mask / expand applied, sampling, support, and the
 * reshaping wrappers (to_event, expand, mask). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_impl.h"
#include "transform.h"

/* --------------------------------------------------------- lifetime --- */

static void dist_free(rt_obj *o) {
    sl_dist *d = (sl_dist *)o;
    for (int i = 0; i < SL_MAXP; i++) bk_release(d->p[i]);
    for (int i = 0; i < 2; i++)
        if (d->sub[i]) sl_dist_release(d->sub[i]);
    bk_release(d->mask);
    sl_transform_release(d->tf);
    if (d->host) rt_release(rt_obj_value(d->host));
    free(d);
}

sl_dist *sl_dist_new(const sl_family *fam) {
    sl_dist *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->h.refcount = 1;
    d->h.tag = RT_DIST;
    d->h.free = dist_free;
    d->fam = fam;
    return d;
}

void sl_dist_release(sl_dist *d) {
    if (d && --d->h.refcount == 0) d->h.free(&d->h);
}

sl_dist *sl_dist_make(bk_ctx *ctx, const sl_family *fam, int variant, int np,
                      bk_tensor **params) {
    if (np < 0 || np > SL_MAXP || !fam->init) {
        bk_seterr(ctx, "%s: cannot be built from parameter tensors", fam->name);
        return NULL;
    }
    sl_dist *d = sl_dist_new(fam);
    if (!d) {
        bk_seterr(ctx, "out of memory");
        return NULL;
    }
    d->variant = variant;
    d->np = np;
    for (int i = 0; i < np; i++) {
        bk_tensor *t = params[i];
        if (!t) continue;
        d->p[i] = t->dtype == BK_F64 || fam->native_f32 ? bk_retain(t) : bk_cast(ctx, t, BK_F64);
        if (!d->p[i]) goto fail;
    }
    int bad = -1;
    if (fam->init(ctx, d, &bad)) goto fail;
    return d;
fail:
    sl_dist_release(d);
    return NULL;
}

/* A new distribution sharing d's parameters, shapes and mask. */
static sl_dist *dist_copy(bk_ctx *ctx, const sl_dist *d) {
    sl_dist *c = sl_dist_new(d->fam);
    if (!c) {
        bk_seterr(ctx, "out of memory");
        return NULL;
    }
    int rc = c->h.refcount;
    *c = *d;
    c->h.refcount = rc;
    for (int i = 0; i < SL_MAXP; i++) bk_retain(c->p[i]);
    for (int i = 0; i < 2; i++)
        if (c->sub[i]) c->sub[i]->h.refcount++;
    bk_retain(c->mask);
    sl_transform_retain(c->tf);
    if (c->host) c->host->refcount++;
    return c;
}

const sl_family *sl_find_family(const char *name) {
    for (int i = 0; sl_families[i]; i++)
        if (strcmp(sl_families[i]->name, name) == 0) return sl_families[i];
    return NULL;
}

/* ------------------------------------------------------ evaluations --- */

/* Broadcast t (new reference, consumed) against `shape` and sum its last
 * `nsum` dims. */
static bk_tensor *fit_batch(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape, int nsum) {
    int no;
    int64_t o[BK_MAXDIM];
    if (bk_broadcast_shapes(ctx, t->ndim, t->shape, nd, shape, &no, o)) {
        bk_release(t);
        return NULL;
    }
    if (no != t->ndim || memcmp(o, t->shape, no * sizeof *o) != 0) {
        bk_tensor *e = bk_expand(ctx, t, no, o);
        bk_release(t);
        if (!e) return NULL;
        t = e;
    }
    for (int i = 0; i < nsum; i++) {
        bk_tensor *r = bk_reduce(ctx, BK_OP_SUM, t, -1, false);
        bk_release(t);
        if (!r) return NULL;
        t = r;
    }
    return t;
}

bk_tensor *sl_log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    if (!d->fam->log_prob) {
        bk_seterr(ctx, "%s has no log_prob", d->fam->name);
        return NULL;
    }
    bk_tensor *lp = d->fam->log_prob(ctx, d, x);
    if (!lp) return NULL;
    int64_t fb[BK_MAXDIM];
    int nfb = sl_fam_batch(d, fb);
    lp = fit_batch(ctx, lp, nfb, fb, d->reinterpreted);
    if (!lp || !d->mask) return lp;
    /* masked-out entries contribute exactly 0, even where lp is -inf */
    sl_scope s;
    sl_scope_init(&s, ctx);
    s_keep(&s, lp);
    bk_tensor *on = s_bin(&s, BK_OP_NE, d->mask, s_scalar(&s, 0.0));
    return s_done(&s, s_wheres(&s, on, lp, 0.0));
}

bk_tensor *sl_sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int nsample,
                     const int64_t *sample_shape) {
    if (!d->fam->sample) {
        bk_seterr(ctx, "%s cannot be sampled", d->fam->name);
        return NULL;
    }
    if (nsample < 0 || nsample + d->nbatch + d->nevent > BK_MAXDIM) {
        bk_seterr(ctx, "%s: sample shape has too many dimensions", d->fam->name);
        return NULL;
    }
    for (int i = 0; i < nsample; i++)
        if (sample_shape[i] < 0) {
            bk_seterr(ctx, "%s: sample shape sizes must be >= 0", d->fam->name);
            return NULL;
        }
    bk_tensor *t = d->fam->sample(ctx, rng, d, nsample, sample_shape);
    if (t && d->no_rsample && t->requires_grad) {
        bk_tensor *u = bk_detach(ctx, t);
        bk_release(t);
        t = u;
    }
    return t;
}

sl_dist *sl_no_rsample(bk_ctx *ctx, const sl_dist *d) {
    sl_dist *c = dist_copy(ctx, d);
    if (c) c->no_rsample = true;
    return c;
}

int sl_support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    memset(out, 0, sizeof *out);
    if (!d->fam->support) {
        bk_seterr(ctx, "%s has no support", d->fam->name);
        return -1;
    }
    return d->fam->support(ctx, d, out);
}

typedef bk_tensor *(*moment_fn)(bk_ctx *, const sl_dist *);

static bk_tensor *moment(bk_ctx *ctx, const sl_dist *d, moment_fn fn, const char *what) {
    if (!fn) {
        bk_seterr(ctx, "%s has no closed-form %s", d->fam->name, what);
        return NULL;
    }
    bk_tensor *t = fn(ctx, d);
    if (!t) return NULL;
    int64_t full[BK_MAXDIM];
    int n = sl_draw_shape(d, 0, NULL, full);
    return fit_batch(ctx, t, n, full, 0);
}

bk_tensor *sl_mean(bk_ctx *ctx, const sl_dist *d) { return moment(ctx, d, d->fam->mean, "mean"); }
bk_tensor *sl_variance(bk_ctx *ctx, const sl_dist *d) {
    return moment(ctx, d, d->fam->variance, "variance");
}
bk_tensor *sl_entropy(bk_ctx *ctx, const sl_dist *d) {
    if (!d->fam->entropy) {
        bk_seterr(ctx, "%s has no closed-form entropy", d->fam->name);
        return NULL;
    }
    bk_tensor *t = d->fam->entropy(ctx, d);
    if (!t) return NULL;
    int64_t fb[BK_MAXDIM];
    int nfb = sl_fam_batch(d, fb);
    return fit_batch(ctx, t, nfb, fb, d->reinterpreted);
}

/* ------------------------------------------------------- reshaping --- */

sl_dist *sl_to_event(bk_ctx *ctx, const sl_dist *d, int n) {
    if (n < 0) n = d->nbatch;
    if (n > d->nbatch) {
        bk_seterr(ctx, "to_event(%d): %s has only %d batch dimension%s", n, d->fam->name,
                  d->nbatch, d->nbatch == 1 ? "" : "s");
        return NULL;
    }
    sl_dist *c = dist_copy(ctx, d);
    if (!c) return NULL;
    int64_t ev[BK_MAXDIM];
    int ne = 0;
    for (int i = d->nbatch - n; i < d->nbatch; i++) ev[ne++] = d->batch[i];
    for (int i = 0; i < d->nevent; i++) ev[ne++] = d->event[i];
    c->nbatch = d->nbatch - n;
    c->nevent = ne;
    memcpy(c->event, ev, sizeof ev);
    c->reinterpreted = d->reinterpreted + n;
    return c;
}

sl_dist *sl_expand(bk_ctx *ctx, const sl_dist *d, int ndim, const int64_t *shape) {
    bool ok = ndim >= d->nbatch && ndim + d->nevent <= BK_MAXDIM;
    for (int i = 0; ok && i < d->nbatch; i++) {
        int64_t old = d->batch[d->nbatch - 1 - i], nw = shape[ndim - 1 - i];
        if (old != nw && old != 1) ok = false;
    }
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] < 0) ok = false;
    if (!ok) {
        char a[128], b[128];
        bk_seterr(ctx, "expand: cannot expand %s of batch shape %s to %s", d->fam->name,
                  bk_dims_str(d->nbatch, d->batch, a, sizeof a), bk_dims_str(ndim, shape, b, sizeof b));
        return NULL;
    }
    sl_dist *c = dist_copy(ctx, d);
    if (!c) return NULL;
    c->nbatch = ndim;
    memcpy(c->batch, shape, ndim * sizeof *shape);
    return c;
}

sl_dist *sl_mask(bk_ctx *ctx, const sl_dist *d, bk_tensor *mask) {
    int no;
    int64_t o[BK_MAXDIM];
    if (bk_broadcast_shapes(ctx, mask->ndim, mask->shape, d->nbatch, d->batch, &no, o)) {
        char a[128], b[128];
        bk_seterr(ctx, "mask: mask of shape %s does not broadcast with batch shape %s",
                  bk_shape_str(mask, a, sizeof a), bk_dims_str(d->nbatch, d->batch, b, sizeof b));
        return NULL;
    }
    bk_tensor *m;
    if (d->mask) {
        sl_scope s;
        sl_scope_init(&s, ctx);
        bk_tensor *zero = s_scalar(&s, 0.0);
        m = s_done(&s, s_mul(&s, s_bin(&s, BK_OP_NE, d->mask, zero),
                             s_bin(&s, BK_OP_NE, mask, zero)));
    } else {
        m = bk_detach(ctx, mask);
    }
    if (!m) return NULL;
    sl_dist *c = dist_copy(ctx, d);
    if (!c) {
        bk_release(m);
        return NULL;
    }
    bk_release(c->mask);
    c->mask = m;
    return c;
}
