/* dist_improperuniform.c - ImproperUniform(support=real, shape=[]): a flat
 * (log density 0) "distribution" for ports of models with improper priors.
 * It cannot be sampled; inference that starts from unconstrained space
 * (MCMC, MAP) is what it is for.  variant holds the constraint kind; the
 * shape is the batch shape, plus the trailing event dims a vector or
 * matrix constraint implies (simplex, ordered: 1; cholesky: 2). */
#include <math.h>
#include <string.h>
#include "dist_impl.h"

static int event_rank(int kind) {
    switch (kind) {
    case SL_C_SIMPLEX: case SL_C_ORDERED: case SL_C_POSITIVE_ORDERED: return 1;
    case SL_C_LOWER_CHOLESKY: case SL_C_CORR_CHOLESKY: return 2;
    default: return 0;
    }
}

/* p[0] holds the shape as a 1-d tensor of sizes. */
static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    const bk_tensor *sh = d->p[0];
    int n = sh ? (int)sh->numel : 0, e = event_rank(d->variant);
    if (n > BK_MAXDIM || n < e) {
        bk_seterr(ctx, "ImproperUniform: shape must have between %d and %d dimensions for "
                  "support %s", e, BK_MAXDIM, sl_constraint_name(d->variant));
        *bad = 0;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        double v = bk_get(sh, i);
        if (!(v >= 0) || v != floor(v)) {
            bk_seterr(ctx, "ImproperUniform: shape sizes must be non-negative integers, got %g", v);
            *bad = 0;
            return -1;
        }
        if (i < n - e) d->batch[i] = (int64_t)v;
        else d->event[i - (n - e)] = (int64_t)v;
    }
    d->nbatch = n - e;
    d->nevent = e;
    return 0;
}

/* The support argument: a constraint name ("positive") or a constraint
 * value (an opaque of type "constraint" holding an sl_constraint). */
static int support_arg(const sl_args *a, int *kind) {
    const rt_call *c = a->call;
    const rt_value *v = rt_arg(c, 0, "support");
    bool kw = v && !(c->nargs > 0 && v == &c->args[0]);
    const char *name = "real";
    *kind = SL_C_REAL;
    if (!v) return 0;
    if (v->tag == RT_OPAQUE && strcmp(((rt_opaque *)v->u.o)->type, "constraint") == 0) {
        const sl_constraint *cs = ((rt_opaque *)v->u.o)->data;
        *kind = cs->kind;
        name = sl_constraint_name(cs->kind);
    } else if (v->tag == RT_STR) {
        int nargs = 0;
        name = ((rt_str *)v->u.o)->s;
        *kind = sl_constraint_lookup(name, &nargs);
        if (*kind >= 0 && nargs != 0) *kind = SL_C_COUNT;   /* bounds would be lost */
    } else {
        const char *msg = "ImproperUniform: support must be a constraint such as \"positive\", got a %s";
        return kw ? rt_error_kw(a->vm, c, "support", msg, rt_type_name(*v))
                  : rt_error_arg(a->vm, c, 0, msg, rt_type_name(*v));
    }
    if (*kind >= 0 && *kind < SL_C_BOOLEAN) return 0;
    const char *msg = *kind < 0 ? "ImproperUniform: unknown constraint \"%s\""
                                : "ImproperUniform: unsupported support \"%s\"";
    return kw ? rt_error_kw(a->vm, c, "support", msg, name) : rt_error_arg(a->vm, c, 0, msg, name);
}

static int build(const sl_args *a, sl_dist *d) {
    static const char *const names[] = {"support", "shape", NULL};
    const rt_call *c = a->call;
    int kind;
    if (rt_check_args(a->vm, c, 2, names) || support_arg(a, &kind)) return -1;
    d->variant = kind;
    const rt_value *s = rt_arg(c, 1, "shape");
    sl_bindinfo b;
    b.pos[0] = s && c->nargs > 1 ? 1 : -1;
    b.kw[0] = b.pos[0] < 0 ? "shape" : NULL;
    if (s) {
        if (s->tag != RT_TENSOR || s->u.t->ndim > 1) {
            if (b.pos[0] == 1)
                return rt_error_arg(a->vm, c, 1, "ImproperUniform: shape must be a list of sizes");
            return rt_error_kw(a->vm, c, "shape", "ImproperUniform: shape must be a list of sizes");
        }
        d->p[0] = bk_reshape(rt_vm_bk(a->vm), s->u.t, 1, (int64_t[]){s->u.t->numel});
        if (!d->p[0]) return rt_error_bk(a->vm, c);
    }
    d->np = 0;   /* nothing to show as a parameter */
    return sl_build_finish(a, &b, d);
}

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    int e = d->nevent - d->reinterpreted, nb;
    int64_t B[BK_MAXDIM];
    if (x->ndim < e) {
        bk_seterr(ctx, "ImproperUniform: value has fewer dimensions than the event");
        return NULL;
    }
    int64_t fb[BK_MAXDIM];
    int nfb = sl_fam_batch(d, fb);
    if (bk_broadcast_shapes(ctx, x->ndim - e, x->shape, nfb, fb, &nb, B)) return NULL;
    return bk_zeros(ctx, BK_F64, nb, B);
}

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, d->variant);
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    bk_seterr(ctx, "ImproperUniform cannot be sampled; use MCMC or MAP");
    return NULL;
}

const sl_family sl_family_improperuniform = {
    .name = "ImproperUniform", .build = build, .log_prob = log_prob, .sample = sample,
    .support = support, .reparam = false, .discrete = false, .init = init,
};
