/* transform.h - user-level elementwise bijections for normalizing flows and
 * TransformedDistribution: Exp, Sigmoid, Tanh, Affine(loc, scale),
 * Softplus, Power(exponent) and the composition of a list of them.
 *
 * Every transform is written with tensor ops, so y, x and log|dy/dx| are
 * differentiable w.r.t. the input and w.r.t. tensor parameters (loc, scale,
 * exponent) that require grad.  Transforms are immutable and reference
 * counted; the log-Jacobian is elementwise (the shape of y), as in Pyro:
 * a distribution sums it over its event dimensions. */
#ifndef PPL_STDLIB_TRANSFORM_H
#define PPL_STDLIB_TRANSFORM_H

#include "constraint.h"

typedef enum {
    SL_T_EXP = 0,    /* y = exp(x) */
    SL_T_SIGMOID,    /* y = 1 / (1 + exp(-x)) */
    SL_T_TANH,       /* y = tanh(x) */
    SL_T_AFFINE,     /* y = loc + scale * x   (scale != 0) */
    SL_T_SOFTPLUS,   /* y = log(1 + exp(x)) */
    SL_T_POWER,      /* y = x ** exponent     (x > 0) */
    SL_T_COMPOSE,    /* y = t_n(... t_1(x)) */
    SL_T_COUNT
} sl_tkind;

typedef struct sl_transform {
    int refcount;
    int kind;                      /* sl_tkind */
    bk_tensor *loc, *scale;        /* AFFINE (retained) */
    bk_tensor *exponent;           /* POWER (retained) */
    int n;                         /* COMPOSE: parts, applied first to last */
    struct sl_transform **parts;   /* COMPOSE (retained) */
} sl_transform;

/* Constructors return a new reference, or NULL with a message in ctx.
 * Tensor arguments are retained, not copied. */
sl_transform *sl_transform_new(bk_ctx *, int kind);   /* EXP, SIGMOID, TANH, SOFTPLUS */
sl_transform *sl_transform_affine(bk_ctx *, bk_tensor *loc, bk_tensor *scale);
sl_transform *sl_transform_power(bk_ctx *, bk_tensor *exponent);
/* Composition of n transforms (applied parts[0] first); each is retained.
 * n = 0 gives the identity. */
sl_transform *sl_transform_compose(bk_ctx *, int n, sl_transform *const *parts);

sl_transform *sl_transform_retain(sl_transform *t);   /* NULL-safe */
void sl_transform_release(sl_transform *t);           /* NULL-safe */

/* "Exp", "Sigmoid", "Tanh", "AffineTransform", ... (for messages and repr). */
const char *sl_transform_name(const sl_transform *t);

/* y = T(x), new reference; NULL with an error in ctx. */
bk_tensor *sl_transform_forward(bk_ctx *, const sl_transform *t, bk_tensor *x);
/* x = T^-1(y). */
bk_tensor *sl_transform_inverse(bk_ctx *, const sl_transform *t, bk_tensor *y);
/* log|dy/dx| elementwise, of the broadcast shape of x and the parameters.
 * y may be NULL (it is then computed); pass it when it is at hand. */
bk_tensor *sl_transform_log_abs_det_jacobian(bk_ctx *, const sl_transform *t, bk_tensor *x,
                                             bk_tensor *y);

/* Kinds of the domain and the codomain as constraints (SL_C_REAL,
 * SL_C_POSITIVE, SL_C_UNIT_INTERVAL, SL_C_INTERVAL for Tanh's (-1, 1)).
 * Affine maps real to real; a composition reports its first part's domain
 * and its last part's codomain. */
int sl_transform_domain(const sl_transform *t);
int sl_transform_codomain(const sl_transform *t);

#endif
