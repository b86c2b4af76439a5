/* dist_transformed.c - TransformedDistribution(base, transforms): y = T(x)
 * with x ~ base and T an elementwise bijection (one transform, a list of
 * them applied first to last, or a ComposeTransform).
 *
 *   log p(y) = log p_base(T^-1(y)) - sum_event log|dT/dx|(T^-1(y))
 *
 * The event shape is the base's; the batch shape is the base's broadcast
 * with the transforms' parameter shapes (an AffineTransform with a vector
 * loc widens a scalar base).  sample = T(base sample), differentiable when
 * the base's sample is (rsample).  The support is the codomain of the last
 * transform (as in PyTorch).  Values whose inverse leaves the base's
 * support, or is undefined, get -inf.  cdf / icdf: through the base's for
 * a scalar base under a monotone chain (1 - F for a decreasing one). */
#include <stdio.h>
#include <string.h>
#include "dist_impl.h"
#include "transform.h"

extern const sl_family sl_family_transformed;

/* Broadcast (nd, shape) with every parameter tensor of t. */
static int param_shapes(bk_ctx *ctx, const sl_transform *t, int *nd, int64_t *shape) {
    const bk_tensor *ps[3] = {t->loc, t->scale, t->exponent};
    for (int i = 0; i < 3; i++) {
        if (!ps[i]) continue;
        int no;
        int64_t o[BK_MAXDIM];
        if (bk_broadcast_shapes(ctx, *nd, shape, ps[i]->ndim, ps[i]->shape, &no, o)) return -1;
        *nd = no;
        memcpy(shape, o, sizeof o);
    }
    for (int i = 0; i < t->n; i++)
        if (param_shapes(ctx, t->parts[i], nd, shape)) return -1;
    return 0;
}

/* Fill d (fresh, of this family) from base and tf. 0, or -1 + bk error. */
static int fill(bk_ctx *ctx, sl_dist *d, sl_dist *base, sl_transform *tf) {
    if (base->fam->discrete) {
        bk_seterr(ctx, "TransformedDistribution: base must be a continuous distribution, got %s",
                  base->fam->name);
        return -1;
    }
    int64_t full[BK_MAXDIM];
    int nd = sl_draw_shape(base, 0, NULL, full);
    int nd0 = nd;
    if (param_shapes(ctx, tf, &nd, full)) {
        char why[256];
        snprintf(why, sizeof why, "%s", bk_errmsg(ctx));
        bk_seterr(ctx, "TransformedDistribution: the parameters of %s do not broadcast with the "
                  "base distribution's shape (%s)", sl_transform_name(tf), why);
        return -1;
    }
    int nev = base->nevent;
    int nb = nd - nev;
    /* the event must stay the base's: parameters may only widen the batch */
    int64_t bfull[BK_MAXDIM];
    sl_draw_shape(base, 0, NULL, bfull);
    for (int i = 0; i < nev; i++)
        if (full[nb + i] != bfull[nd0 - nev + i]) {
            bk_seterr(ctx, "TransformedDistribution: the parameters of %s would change the base "
                      "distribution's event shape", sl_transform_name(tf));
            return -1;
        }
    sl_dist *b = base;
    if (nb != base->nbatch || memcmp(full, base->batch, (size_t)nb * sizeof *full) != 0) {
        b = sl_expand(ctx, base, nb, full);
        if (!b) return -1;
    } else {
        base->h.refcount++;
    }
    d->sub[0] = b;
    d->tf = sl_transform_retain(tf);
    d->nbatch = nb;
    memcpy(d->batch, full, (size_t)nb * sizeof *full);
    d->nevent = nev;
    memcpy(d->event, full + nb, (size_t)nev * sizeof *full);
    return 0;
}

sl_dist *sl_transformed_new(bk_ctx *ctx, sl_dist *base, sl_transform *tf) {
    sl_dist *d = sl_dist_new(&sl_family_transformed);
    if (!d) {
        bk_seterr(ctx, "out of memory");
        return NULL;
    }
    if (fill(ctx, d, base, tf)) {
        sl_dist_release(d);
        return NULL;
    }
    return d;
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"base_distribution", "transforms", NULL};
    rt_vm *vm = a->vm;
    const rt_call *c = a->call;
    if (rt_check_args(vm, c, 2, names)) return -1;
    const rt_value *bv = rt_arg(c, 0, "base_distribution"), *tv = rt_arg(c, 1, "transforms");
    if (!bv || bv->tag != RT_DIST)
        return rt_error_arg(vm, c, 0, "TransformedDistribution: base_distribution must be a "
                            "distribution, got %s", bv ? rt_type_name(*bv) : "nothing");
    if (!tv)
        return rt_error(vm, c, "TransformedDistribution: missing argument \"transforms\"");
    sl_transform *tf = NULL;
    if (sl_transform_from_value(vm, c, 1, *tv, &tf)) return -1;
    bk_ctx *ctx = rt_vm_bk(vm);
    int rc = fill(ctx, d, (sl_dist *)bv->u.o, tf);
    sl_transform_release(tf);
    if (rc) return rt_error_arg(vm, c, bv->u.o && ((sl_dist *)bv->u.o)->fam->discrete ? 0 : 1,
                                "%s", bk_errmsg(ctx));
    return 0;
}

/* 1 where v lies in the codomain of the simple transform t. */
static bk_tensor *in_codomain(sl_scope *s, const sl_transform *t, bk_tensor *v) {
    switch (sl_transform_codomain(t)) {
    case SL_C_POSITIVE: return s_bin(s, BK_OP_GT, v, s_scalar(s, 0.0));
    case SL_C_UNIT_INTERVAL:
        return s_and(s, s_bin(s, BK_OP_GT, v, s_scalar(s, 0.0)),
                     s_bin(s, BK_OP_LT, v, s_scalar(s, 1.0)));
    case SL_C_INTERVAL: /* Tanh */
        return s_bin(s, BK_OP_LT, s_un(s, BK_OP_ABS, v), s_scalar(s, 1.0));
    default: return s_bin(s, BK_OP_EQ, v, v);
    }
}

/* Invert t part by part (last first), and-ing into *ok whether each
 * intermediate value lies in the codomain of the part that produced it. */
static bk_tensor *inverse_checked(sl_scope *s, const sl_transform *t, bk_tensor *v,
                                  bk_tensor **ok) {
    if (t->kind == SL_T_COMPOSE) {
        for (int i = t->n - 1; i >= 0 && v; i--) v = inverse_checked(s, t->parts[i], v, ok);
        return v;
    }
    bk_tensor *in = in_codomain(s, t, v);
    *ok = *ok ? s_and(s, *ok, in) : in;
    return s->err ? NULL : s_keep(s, sl_transform_inverse(s->ctx, t, v));
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *y) {
    const sl_dist *base = d->sub[0];
    int own_ev = d->nevent - d->reinterpreted;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *ok = NULL;
    bk_tensor *x = inverse_checked(&s, d->tf, y, &ok);
    if (!ok) ok = s_bin(&s, BK_OP_EQ, y, y);  /* identity: y is x */
    bk_tensor *xs = x;
    bk_tensor *lpb = s.err ? NULL : s_keep(&s, sl_log_prob(ctx, base, xs));
    bk_tensor *ladj = s.err ? NULL : s_keep(&s, sl_transform_log_abs_det_jacobian(ctx, d->tf, xs, y));
    for (int i = 0; i < own_ev && ladj; i++) ladj = s_sum(&s, ladj, -1, false);
    /* the event is out of the support when any of its elements is */
    for (int i = 0; i < own_ev && ok; i++) ok = s_red(&s, BK_OP_MIN, ok, -1, false);
    bk_tensor *lp = s_sub(&s, lpb, ladj);
    /* and an undefined value (NaN) reads as outside the support too */
    ok = s_and(&s, ok, s_bin(&s, BK_OP_EQ, lp, lp));
    return s_done(&s, s_guard(&s, ok, s_safe(&s, ok, lp, 0.0)));
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_tensor *x = sl_sample(ctx, rng, d->sub[0], ns, ss);
    if (!x) return NULL;
    bk_tensor *y = sl_transform_forward(ctx, d->tf, x);
    bk_release(x);
    return y;
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    int kind = sl_transform_codomain(d->tf);
    sl_support_kind(out, kind);
    if (kind == SL_C_INTERVAL) { /* Tanh: (-1, 1) */
        out->lo = bk_scalar(ctx, -1.0);
        out->hi = bk_scalar(ctx, 1.0);
        if (!out->lo || !out->hi) {
            sl_constraint_clear(out);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------ cdf / icdf --- */

/* +1 / -1 when t is increasing / decreasing everywhere, 0 when mixed (an
 * AffineTransform with scales of both signs). */
static int monotone(const sl_transform *t) {
    const bk_tensor *k = t->kind == SL_T_AFFINE ? t->scale : t->kind == SL_T_POWER ? t->exponent : NULL;
    if (t->kind == SL_T_COMPOSE) {
        int sg = 1;
        for (int i = 0; i < t->n && sg; i++) sg *= monotone(t->parts[i]);
        return sg;
    }
    if (!k) return 1;
    int sg = 0;
    for (int64_t i = 0; i < k->numel; i++) {
        int e = bk_get(k, i) > 0 ? 1 : -1;
        if (sg && e != sg) return 0;
        sg = e;
    }
    return sg;
}

/* T^-1(y) with y first clamped into the closure of each part's codomain,
 * so values beyond the image map to -inf / +inf of the base. */
static bk_tensor *inverse_clamped(sl_scope *s, const sl_transform *t, bk_tensor *v) {
    if (t->kind == SL_T_COMPOSE) {
        for (int i = t->n - 1; i >= 0 && v; i--) v = inverse_clamped(s, t->parts[i], v);
        return v;
    }
    switch (sl_transform_codomain(t)) {
    case SL_C_POSITIVE: v = s_bin(s, BK_OP_MAXIMUM, v, s_scalar(s, 0.0)); break;
    case SL_C_UNIT_INTERVAL:
        v = s_bin(s, BK_OP_MINIMUM, s_bin(s, BK_OP_MAXIMUM, v, s_scalar(s, 0.0)), s_scalar(s, 1.0));
        break;
    case SL_C_INTERVAL:
        v = s_bin(s, BK_OP_MINIMUM, s_bin(s, BK_OP_MAXIMUM, v, s_scalar(s, -1.0)), s_scalar(s, 1.0));
        break;
    default: break;
    }
    return s->err ? NULL : s_keep(s, sl_transform_inverse(s->ctx, t, v));
}

static int cdf_ok(bk_ctx *ctx, const sl_dist *d, bool inverse, int *sign) {
    const sl_dist *base = d->sub[0];
    *sign = monotone(d->tf);
    if (base->nevent != 0 || !(inverse ? base->fam->icdf : base->fam->cdf) || !*sign) {
        bk_seterr(ctx, "TransformedDistribution: %s needs a scalar base with a closed-form %s "
                  "(%s) and a monotone transform", inverse ? "icdf" : "cdf",
                  inverse ? "icdf" : "cdf", base->fam->name);
        return -1;
    }
    return 0;
}

static bk_tensor *cdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *y) {
    int sign;
    if (cdf_ok(ctx, d, false, &sign)) return NULL;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *x = inverse_clamped(&s, d->tf, y);
    bk_tensor *F = s.err ? NULL : s_keep(&s, d->sub[0]->fam->cdf(ctx, d->sub[0], x));
    return s_done(&s, sign > 0 ? F : s_rsubs(&s, 1.0, F));
}

static bk_tensor *icdf(bk_ctx *ctx, const sl_dist *d, bk_tensor *q) {
    int sign;
    if (cdf_ok(ctx, d, true, &sign)) return NULL;
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *qq = sign > 0 ? q : s_rsubs(&s, 1.0, q);
    bk_tensor *x = s.err ? NULL : s_keep(&s, d->sub[0]->fam->icdf(ctx, d->sub[0], qq));
    return s_done(&s, s.err ? NULL : s_keep(&s, sl_transform_forward(ctx, d->tf, x)));
}

const sl_family sl_family_transformed = {
    .name = "TransformedDistribution", .build = build, .log_prob = log_prob, .sample = sample,
    .cdf = cdf, .icdf = icdf, .support = support, .reparam = true, .discrete = false,
};

bool sl_dist_reparam(const sl_dist *d) {
    if (d->no_rsample) return false;
    if (d->fam == &sl_family_transformed) return sl_dist_reparam(d->sub[0]);
    return d->fam->reparam;
}
