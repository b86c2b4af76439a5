/* dist_impl.h - helpers shared by the family files (dist_*.c); not a public
 * interface.  Three groups:
 *   - a tensor scope: formula code chains ops without checking every result
 *     (a NULL input makes the next op return NULL) and releases all
 *     temporaries at the end;
 *   - argument binding and parameter validation for build / init;
 *   - shape helpers and an elementwise scalar map for noise, discrete draws
 *     and non-differentiable cdfs. */
#ifndef PPL_STDLIB_DIST_IMPL_H
#define PPL_STDLIB_DIST_IMPL_H

#include <math.h>
#include "dist.h"

#define SL_LOG_2PI 1.8378770664093454836
#define SL_LOG_PI 1.1447298858494001741
#define SL_LOG2 0.69314718055994530942
#define SL_PI 3.14159265358979323846

/* ------------------------------------------------------------ scope --- */

#define SL_SCOPE_MAX 96

typedef struct sl_scope {
    bk_ctx *ctx;
    int n;
    bool err;
    bk_tensor *t[SL_SCOPE_MAX];
} sl_scope;

static inline void sl_scope_init(sl_scope *s, bk_ctx *ctx) {
    s->ctx = ctx;
    s->n = 0;
    s->err = false;
}
/* Adopt a new reference (NULL marks the scope failed); returns it borrowed. */
bk_tensor *s_keep(sl_scope *s, bk_tensor *t);
/* Release every temporary; return `r` as a new reference (NULL on failure). */
bk_tensor *s_done(sl_scope *s, bk_tensor *r);

bk_tensor *s_scalar(sl_scope *s, double v);
bk_tensor *s_add(sl_scope *s, bk_tensor *a, bk_tensor *b);
bk_tensor *s_sub(sl_scope *s, bk_tensor *a, bk_tensor *b);
bk_tensor *s_mul(sl_scope *s, bk_tensor *a, bk_tensor *b);
bk_tensor *s_div(sl_scope *s, bk_tensor *a, bk_tensor *b);
bk_tensor *s_bin(sl_scope *s, int op, bk_tensor *a, bk_tensor *b);
bk_tensor *s_un(sl_scope *s, int op, bk_tensor *a);
bk_tensor *s_adds(sl_scope *s, bk_tensor *a, double v);   /* a + v */
bk_tensor *s_muls(sl_scope *s, bk_tensor *a, double v);   /* a * v */
bk_tensor *s_rsubs(sl_scope *s, double v, bk_tensor *a);  /* v - a */
bk_tensor *s_where(sl_scope *s, bk_tensor *c, bk_tensor *a, bk_tensor *b);
bk_tensor *s_wheres(sl_scope *s, bk_tensor *c, bk_tensor *a, double b);
bk_tensor *s_sum(sl_scope *s, bk_tensor *a, int64_t axis, bool keep);
bk_tensor *s_red(sl_scope *s, int op, bk_tensor *a, int64_t axis, bool keep);
bk_tensor *s_matmul(sl_scope *s, bk_tensor *a, bk_tensor *b);
bk_tensor *s_expand(sl_scope *s, bk_tensor *a, int nd, const int64_t *shape);
bk_tensor *s_unsq(sl_scope *s, bk_tensor *a, int64_t axis);
bk_tensor *s_sq(sl_scope *s, bk_tensor *a, int64_t axis);   /* squeeze */
bk_tensor *s_log(sl_scope *s, bk_tensor *a);
bk_tensor *s_exp(sl_scope *s, bk_tensor *a);
bk_tensor *s_square(sl_scope *s, bk_tensor *a);
bk_tensor *s_lgamma(sl_scope *s, bk_tensor *a);
bk_tensor *s_digamma(sl_scope *s, bk_tensor *a);
/* x * logy with 0 where x == 0 (so 0 * log 0 = 0, never NaN). */
bk_tensor *s_xlogy(sl_scope *s, bk_tensor *x, bk_tensor *logy);
/* lp where ok != 0, -inf elsewhere. */
bk_tensor *s_guard(sl_scope *s, bk_tensor *ok, bk_tensor *lp);
/* x where ok != 0, else v (keeps formulas finite outside the support). */
bk_tensor *s_safe(sl_scope *s, bk_tensor *ok, bk_tensor *x, double v);
/* 1 where x is an integer (x == floor(x)). */
bk_tensor *s_isint(sl_scope *s, bk_tensor *x);
bk_tensor *s_and(sl_scope *s, bk_tensor *a, bk_tensor *b);
/* Matrix diagonal [..., n, n] -> [..., n]. */
bk_tensor *s_diag(sl_scope *s, bk_tensor *m);

/* --------------------------------------------------------- building --- */

/* Where each parameter came from, for error locations. */
typedef struct sl_bindinfo {
    int pos[SL_MAXP];           /* positional index used, or -1 */
    const char *kw[SL_MAXP];    /* keyword used, or NULL */
} sl_bindinfo;

/* Bind argument (pos, name) into d->p[slot] as a float64 tensor; when
 * absent use `dflt` (NaN: required).  Returns 0 or -1 (error reported). */
int sl_bind_param(const sl_args *a, sl_bindinfo *b, sl_dist *d, int slot, int pos,
                  const char *name, double dflt);
/* Exactly one of n0 (may be positional at pos) or n1 (keyword only) into
 * d->p[slot]; d->variant = 0 for n0, 1 for n1. */
int sl_bind_choice(const sl_args *a, sl_bindinfo *b, sl_dist *d, int slot, int pos,
                   const char *n0, const char *n1);
/* Families whose parameters are all positional in order: check argument
 * names, bind each (dflts[i] NaN = required), then finish. */
int sl_build_simple(const sl_args *a, sl_dist *d, const char *const *names,
                    const double *dflts);
/* Run fam->init and report a failure at the offending argument. */
int sl_build_finish(const sl_args *a, const sl_bindinfo *b, sl_dist *d);
/* Families of the one parameter probs (may be positional; variant 0) or
 * logits (keyword; variant 1): bind it and finish. */
int sl_build_probs_logits(const sl_args *a, sl_dist *d);

/* Value checks for init: on the first bad element set the bk error
 * "<Fam>: <name> must be <what>, got <v>" and *bad = i. */
enum { SL_V_REAL, SL_V_POS, SL_V_NONNEG, SL_V_PROB, SL_V_NONNEG_INT };
int sl_check_param(bk_ctx *ctx, const sl_dist *d, int i, const char *name, int kind, int *bad);

/* batch = broadcast of all parameter shapes (with the rightmost `ev[i]`
 * dims of parameter i excluded), event = []. */
int sl_shape_broadcast(bk_ctx *ctx, sl_dist *d, const int *ev, int *bad);

/* ----------------------------------------------------------- shapes --- */

/* sample_shape + batch + event of d. */
int sl_draw_shape(const sl_dist *d, int nsample, const int64_t *sample_shape,
                  int64_t *shape);
/* Family batch shape: d->batch + the reinterpreted part of d->event. */
int sl_fam_batch(const sl_dist *d, int64_t *shape);

/* Elementwise scalar map: inputs broadcast to `shape` (NULL: their common
 * broadcast shape); out[i] = fn(rng, args, ud).  The result is a constant
 * (not on the tape). */
typedef double (*sl_mapfn)(bk_rng *rng, const double *args, const void *ud);
bk_tensor *sl_map(bk_ctx *ctx, bk_rng *rng, int nd, const int64_t *shape, int n,
                  bk_tensor **in, sl_mapfn fn, const void *ud);
/* A contiguous constant copy of t broadcast to shape. */
bk_tensor *sl_dense(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape);

/* probs (variant 0) / logits (variant 1) helpers for binary families:
 * log p and log(1 - p) of parameter p[i]. */
bk_tensor *s_logp(sl_scope *s, const sl_dist *d, int i);
bk_tensor *s_log1mp(sl_scope *s, const sl_dist *d, int i);
bk_tensor *s_probs(sl_scope *s, const sl_dist *d, int i);

/* Softmax-like ops along an axis (BK_OP_SOFTMAX, BK_OP_LOG_SOFTMAX). */
bk_tensor *s_axis(sl_scope *s, int op, bk_tensor *a, int64_t axis);
/* log of the normalized category probabilities [..., K] of Categorical-
 * like parameter p[i] (probs variant 0 / logits variant 1). */
bk_tensor *s_cat_logp(sl_scope *s, const sl_dist *d, int i);
/* The normalized category probabilities [..., K] themselves. */
bk_tensor *s_cat_probs(sl_scope *s, const sl_dist *d, int i);
/* init's checks of a Categorical-like p[0]: a last dimension of at least
 * one category, probs >= 0 (variant 0) or real logits (variant 1). */
int sl_check_cat_param(bk_ctx *ctx, const sl_dist *d, int *bad);
/* Entropy of a Categorical-like p[0] over its last dimension (a family's
 * .entropy). */
bk_tensor *sl_cat_entropy(bk_ctx *ctx, const sl_dist *d);

/* ------------------------------------------------------ family bits --- */

/* Fill a parameter-free support. */
int sl_support_kind(sl_constraint *out, int kind);
/* Noise of shape sample_shape + batch + event: out[i] = fn(rng, NULL, ud). */
bk_tensor *sl_noise(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss,
                    sl_mapfn fn, const void *ud);
bk_tensor *sl_noise_normal(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns,
                           const int64_t *ss);
/* loc + scale * noise (loc may be NULL); consumes noise. Differentiable. */
bk_tensor *sl_affine(bk_ctx *ctx, bk_tensor *loc, bk_tensor *scale, bk_tensor *noise);
/* Gamma(alpha, 1) draws (implicit reparameterization) of shape
 * sample_shape + batch + event. */
bk_tensor *sl_gamma_noise(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, bk_tensor *alpha,
                          int ns, const int64_t *ss);
/* Gamma(alpha, 1) draws as above, clamped to >= DBL_MIN so that a draw
 * that underflows (tiny alpha) stays inside the support. */
bk_tensor *sl_gamma_noise_pos(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, bk_tensor *alpha,
                              int ns, const int64_t *ss);
/* Values 0..n-1 laid out as [n] + batch of d. */
bk_tensor *sl_enumerate(bk_ctx *ctx, const sl_dist *d, int64_t n);

/* ------------------------------------------------- fused log_prob --- */

/* The no-tape fast path of elementwise log densities.  When no gradient
 * is needed (grad mode off, or neither x nor any parameter requires grad)
 * and every input (x, p[0..np-1]) is a contiguous float64 tensor that is
 * either a single element or of the full broadcast shape, the family can
 * compute its density in one pass over plain arrays: element i of input j
 * is p[j][i * sp[j]] (stride 0 or 1), and out[i] receives the result. */
typedef struct sl_fused {
    int64_t n;
    const double *x;
    int64_t sx;
    const double *p[SL_MAXP];
    int64_t sp[SL_MAXP];
    bool scalar_params;         /* every parameter has one element */
    double *out;
    bk_tensor *res;             /* the result to return (new reference) */
} sl_fused;
/* 1: the fast path applies (f filled, f->res allocated); 0: it does not
 * (use tensor ops); -1: error (bk error set). */
int sl_fused_begin(bk_ctx *ctx, const sl_dist *d, int np, bk_tensor *x, sl_fused *f);
/* sl_fused_begin, then kernel(f) where the fast path applies: 1 with *res
 * the result (NULL after an error), 0 when the tensor formula must run. */
int sl_fused_try(bk_ctx *ctx, const sl_dist *d, int np, bk_tensor *x,
                 void (*kernel)(const sl_fused *), bk_tensor **res);
/* Whether a gradient can flow from t (grad mode on and t requires grad). */
bool sl_needs_grad(bk_ctx *ctx, const bk_tensor *t);

/* ------------------------------------------------------- transforms --- */

/* A transform value (or a list of them, composed first to last) as a new
 * reference in *out; -1 with an error at argument pos otherwise
 * (transform_builtins.c). */
struct sl_transform;
int sl_transform_from_value(rt_vm *vm, const rt_call *c, int pos, rt_value v,
                            struct sl_transform **out);
/* ExpTransform(), AffineTransform(loc, scale), ... (called by
 * sl_register_dist_builtins). */
int sl_register_transform_builtins(rt_vm *vm);

#endif
