/* constraint.h - constraints (supports) and the bijections that map them to
 * unconstrained space, with log|det J|.  Used by `param p: C`, by
 * `sample x: C ~ D`, and by every inference algorithm that works in
 * unconstrained space (autoguides, NUTS). */
#ifndef PPL_STDLIB_CONSTRAINT_H
#define PPL_STDLIB_CONSTRAINT_H

#include "tensor.h"

typedef enum {
    SL_C_REAL = 0,
    SL_C_POSITIVE,
    SL_C_GREATER_THAN,     /* lo */
    SL_C_LESS_THAN,        /* hi */
    SL_C_INTERVAL,         /* lo, hi (tensors, may depend on other latents) */
    SL_C_UNIT_INTERVAL,
    SL_C_SIMPLEX,          /* last dim K; unconstrained K-1 (stick-breaking) */
    SL_C_LOWER_CHOLESKY,   /* [n, n]; unconstrained n(n+1)/2 */
    SL_C_CORR_CHOLESKY,    /* [n, n]; unconstrained n(n-1)/2 */
    SL_C_ORDERED,          /* last dim increasing */
    SL_C_POSITIVE_ORDERED,
    /* discrete supports (no bijection) */
    SL_C_BOOLEAN,
    SL_C_NONNEG_INTEGER,
    SL_C_INTEGER_INTERVAL, /* lo, hi inclusive */
    SL_C_ONE_HOT,          /* last dim: zeros and a single 1 */
    SL_C_COUNT
} sl_ckind;

typedef struct sl_constraint {
    int kind;              /* sl_ckind */
    bk_tensor *lo, *hi;    /* retained; NULL when unused */
} sl_constraint;

/* Name table: "real", "positive", ... (the names in DESIGN 1.2). */
const char *sl_constraint_name(int kind);
/* Look up a constraint by name; -1 when unknown. nargs: how many bound
 * arguments it takes (interval 2, greater_than 1, ...). */
int sl_constraint_lookup(const char *name, int *nargs);
void sl_constraint_clear(sl_constraint *c);      /* releases lo/hi */
sl_constraint sl_constraint_copy(const sl_constraint *c);
bool sl_constraint_is_discrete(const sl_constraint *c);

/* Shape of the unconstrained vector for a constrained value of the given
 * shape (simplex: last dim K -> K-1; lower_cholesky [n,n] -> [n(n+1)/2];
 * corr_cholesky -> [n(n-1)/2]; others unchanged). -1 on bad shape. */
int sl_unconstrained_shape(bk_ctx *, const sl_constraint *, int ndim,
                           const int64_t *shape, int *undim, int64_t *ushape);
/* u (unconstrained) -> x (constrained).  When logdet is not NULL it
 * receives log|det dx/du| summed to a 0-d tensor.  Differentiable. */
bk_tensor *sl_to_constrained(bk_ctx *, const sl_constraint *, bk_tensor *u,
                             int ndim, const int64_t *shape, bk_tensor **logdet);
/* x (constrained) -> u.  Differentiable where it matters (init values). */
bk_tensor *sl_to_unconstrained(bk_ctx *, const sl_constraint *, bk_tensor *x);
/* 1 where x is in the support (elementwise, or per event for simplex etc.),
 * 0 elsewhere; a tensor of x's (batch) shape. */
bk_tensor *sl_check(bk_ctx *, const sl_constraint *, bk_tensor *x);

#endif
