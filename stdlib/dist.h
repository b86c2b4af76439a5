/* dist.h - distributions: the family interface, distribution objects and the
 * registration table.  One file per family (dist_normal.c, ...); each
 * exports one `const sl_family sl_family_<name>` listed in dist_table.c.
 *
 * Shapes follow PyTorch: a distribution has batch_shape and event_shape;
 * log_prob(x) broadcasts x against batch_shape + event_shape and returns a
 * tensor of the broadcast batch shape (event dims summed).  to_event(n)
 * moves the n rightmost batch dims into the event. */
#ifndef PPL_STDLIB_DIST_H
#define PPL_STDLIB_DIST_H

#include "value.h"
#include "constraint.h"

#define SL_MAXP 6

typedef struct sl_family sl_family;

typedef struct sl_dist {
    rt_obj h;                   /* tag RT_DIST */
    const sl_family *fam;
    int np;
    bk_tensor *p[SL_MAXP];      /* parameters (float64 unless native_f32), in the family's
                                   canonical order (retained) */
    int variant;                /* parametrization: e.g. 0 probs / 1 logits;
                                   MVN 0 covariance / 1 scale_tril / 2 precision */
    struct sl_dist *sub[2];     /* component distributions (Mixture, HMM
                                   emission, Independent base); retained */
    int nbatch;                 /* batch shape (after expand / to_event) */
    int64_t batch[BK_MAXDIM];
    int nevent;                 /* event shape (family's own + reinterpreted) */
    int64_t event[BK_MAXDIM];
    int reinterpreted;          /* dims moved batch -> event by to_event */
    bk_tensor *mask;            /* d.mask(m): log_prob * m, or NULL */
    struct sl_transform *tf;    /* TransformedDistribution's bijection (retained) */
    rt_obj *host;               /* host-registered family: the object owning
                                   d->fam (retained), else NULL */
    bool no_rsample;            /* d.no_rsample(): draws are cut off the tape and
                                   SVI uses the score function (Pyro's
                                   has_rsample = False) */
} sl_dist;

/* Arguments handed to a family's build function. */
typedef struct sl_args {
    rt_vm *vm;
    const rt_call *call;        /* positional + keyword arguments */
} sl_args;

struct sl_family {
    const char *name;           /* "Normal" */
    /* Build a distribution from call arguments: bind and convert the
     * parameters (positional order and keyword names as in PyTorch), check
     * shapes broadcast, validate values (message "Normal: scale must be > 0,
     * got -1" through rt_error_arg / rt_error_kw so it carries the
     * location), fill d->p, d->np, d->variant, d->batch, d->event.
     * Returns 0 or -1. */
    int (*build)(const sl_args *a, sl_dist *d);
    /* log density / mass of x, shape = broadcast(batch, x's batch part);
     * differentiable in the parameters and (continuous families) in x.
     * Values outside the support give -inf, never NaN.  NULL + bk error on
     * failure (shape mismatch). */
    bk_tensor *(*log_prob)(bk_ctx *, const sl_dist *, bk_tensor *x);
    /* Draw a sample of shape sample_shape + batch + event.  For families
     * with `reparam` the draw is differentiable w.r.t. the parameters
     * (rsample); otherwise it is a constant. */
    bk_tensor *(*sample)(bk_ctx *, bk_rng *, const sl_dist *, int nsample,
                         const int64_t *sample_shape);
    /* Optional (NULL when not closed form): */
    bk_tensor *(*mean)(bk_ctx *, const sl_dist *);
    bk_tensor *(*variance)(bk_ctx *, const sl_dist *);
    bk_tensor *(*entropy)(bk_ctx *, const sl_dist *);
    bk_tensor *(*cdf)(bk_ctx *, const sl_dist *, bk_tensor *x);
    bk_tensor *(*icdf)(bk_ctx *, const sl_dist *, bk_tensor *q);
    /* Finite discrete families: all support values, shape [n] + batch. */
    bk_tensor *(*enumerate_support)(bk_ctx *, const sl_dist *);
    /* The support, possibly depending on the parameters (Uniform). */
    int (*support)(bk_ctx *, const sl_dist *, sl_constraint *out);
    bool reparam;               /* sample is a differentiable rsample */
    bool discrete;
    /* float32 parameters are kept as they are (the family's methods work in
     * any dtype); otherwise they are converted to float64 when bound. */
    bool native_f32;
    /* Shapes and validation from d->p, d->np, d->variant (called by build
     * and by sl_dist_make): fills batch / event; on a bad value sets a bk
     * error ("Normal: scale must be > 0, got -1") and *bad to the index of
     * the offending parameter (-1 when none in particular).  0 or -1. */
    int (*init)(bk_ctx *, sl_dist *d, int *bad);
    /* Printing, both optional.  repr_kw[i]: the keyword of parameter slot i,
     * printed as `kw=value` and only when the slot is set ("": positional;
     * the list ends with NULL, later slots positional).  repr_sub_at > 0: the component sub[0] prints as an
     * argument before slot repr_sub_at (DiscreteHMM's emission); else the
     * components of a family without parameters print after them. */
    const char *const *repr_kw;
    int repr_sub_at;
};

/* The registration table (dist_table.c), NULL-terminated. */
extern const sl_family *const sl_families[];
const sl_family *sl_find_family(const char *name);

/* Generic operations (dist.c): they apply to_event / mask / expand and
 * dispatch to the family.  All return NULL + bk error on failure. */
sl_dist *sl_dist_new(const sl_family *fam);      /* refcount 1, empty */
/* A distribution straight from parameter tensors in the family's canonical
 * order (no VM needed: tests, inference code).  Params are retained
 * (converted to float64 unless the family is native_f32), shapes filled and values validated
 * by fam->init.  NULL + bk error on failure. */
sl_dist *sl_dist_make(bk_ctx *, const sl_family *fam, int variant, int np,
                      bk_tensor **params);
void sl_dist_release(sl_dist *d);                /* NULL-safe */
/* mean / variance / entropy with expand and to_event applied (entropy sums
 * the reinterpreted dims).  NULL + bk error when not closed form. */
bk_tensor *sl_mean(bk_ctx *, const sl_dist *);
bk_tensor *sl_variance(bk_ctx *, const sl_dist *);
bk_tensor *sl_entropy(bk_ctx *, const sl_dist *);
/* log_prob summed over the event dims (incl. reinterpreted ones), masked. */
bk_tensor *sl_log_prob(bk_ctx *, const sl_dist *, bk_tensor *x);
/* A copy of d whose draws are not reparameterized (d.no_rsample()). */
sl_dist *sl_no_rsample(bk_ctx *ctx, const sl_dist *d);
bk_tensor *sl_sample(bk_ctx *, bk_rng *, const sl_dist *, int nsample,
                     const int64_t *sample_shape);
int sl_support(bk_ctx *, const sl_dist *, sl_constraint *out);
sl_dist *sl_to_event(bk_ctx *, const sl_dist *, int n);
sl_dist *sl_expand(bk_ctx *, const sl_dist *, int ndim, const int64_t *shape);
sl_dist *sl_mask(bk_ctx *, const sl_dist *, bk_tensor *mask);

/* Built-ins: one constructor per family (named after it) plus the methods
 * (log_prob, sample, mean, variance, entropy, cdf, icdf, to_event, expand,
 * mask, enumerate_support) reached through `d.name`.  Registered by the
 * runtime at state open. */
int sl_register_dist_builtins(rt_vm *vm);
/* Field / method lookup on a distribution value (`d.mean`, `d.log_prob`):
 * sets *out and returns 0, or -1 with an error at loc. */
int sl_dist_getattr(rt_vm *vm, sl_dist *d, const char *name, rt_loc loc, rt_value *out);

/* TransformedDistribution(base, tf): y = tf(x), x ~ base (both retained).
 * NULL + bk error when base's event is not elementwise-compatible. */
sl_dist *sl_transformed_new(bk_ctx *, sl_dist *base, struct sl_transform *tf);
/* A family defined by the embedding program (ppl_register_distribution,
 * dist_host.c): binds the constructor built-in def->name in vm.  0, or -1
 * with the reason in err. */
struct ppl_dist_def;
int sl_register_host_family(rt_vm *vm, const struct ppl_dist_def *def, char *err, size_t errlen);

/* Whether sample() of d is a differentiable rsample. */
bool sl_dist_reparam(const sl_dist *d);

/* KL divergence KL(p || q) in closed form for registered pairs; NULL with a
 * bk error "no closed-form KL for Normal || Gamma" otherwise. */
bk_tensor *sl_kl(bk_ctx *, const sl_dist *p, const sl_dist *q);

#endif
