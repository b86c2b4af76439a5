/* transform.c - elementwise bijections for flows (see transform.h).
 *
 * The log-Jacobians use the stable forms Pyro uses:
 *   Sigmoid   log y (1 - y)     = log_sigmoid(x) + log_sigmoid(-x)
 *   Tanh      log (1 - y^2)     = 2 (log 2 - x - softplus(-2 x))
 *   Softplus  log sigmoid(x)
 *   Power     log |e y / x|
 * and the inverses of Tanh and Softplus avoid cancellation:
 *   atanh(y)   = (log1p(y) - log1p(-y)) / 2
 *   softplus^-1(y) = y + log(-expm1(-y)) */
#include <math.h>
#include <stdlib.h>
#include "transform.h"

/* --------------------------------------------------------- construction --- */

static sl_transform *alloc_transform(bk_ctx *ctx, int kind) {
    sl_transform *t = calloc(1, sizeof *t);
    if (!t) {
        bk_seterr(ctx, "out of memory");
        return NULL;
    }
    t->refcount = 1;
    t->kind = kind;
    return t;
}

sl_transform *sl_transform_new(bk_ctx *ctx, int kind) {
    if (kind != SL_T_EXP && kind != SL_T_SIGMOID && kind != SL_T_TANH && kind != SL_T_SOFTPLUS) {
        bk_seterr(ctx, "transform: kind %d needs parameters", kind);
        return NULL;
    }
    return alloc_transform(ctx, kind);
}

sl_transform *sl_transform_affine(bk_ctx *ctx, bk_tensor *loc, bk_tensor *scale) {
    if (!loc || !scale) {
        bk_seterr(ctx, "AffineTransform needs loc and scale");
        return NULL;
    }
    sl_transform *t = alloc_transform(ctx, SL_T_AFFINE);
    if (!t) return NULL;
    t->loc = bk_retain(loc);
    t->scale = bk_retain(scale);
    return t;
}

sl_transform *sl_transform_power(bk_ctx *ctx, bk_tensor *exponent) {
    if (!exponent) {
        bk_seterr(ctx, "PowerTransform needs an exponent");
        return NULL;
    }
    sl_transform *t = alloc_transform(ctx, SL_T_POWER);
    if (!t) return NULL;
    t->exponent = bk_retain(exponent);
    return t;
}

sl_transform *sl_transform_compose(bk_ctx *ctx, int n, sl_transform *const *parts) {
    if (n < 0) {
        bk_seterr(ctx, "ComposeTransform: negative number of parts");
        return NULL;
    }
    sl_transform *t = alloc_transform(ctx, SL_T_COMPOSE);
    if (!t) return NULL;
    if (n > 0) {
        t->parts = malloc((size_t)n * sizeof *t->parts);
        if (!t->parts) {
            free(t);
            bk_seterr(ctx, "out of memory");
            return NULL;
        }
    }
    for (int i = 0; i < n; i++) t->parts[i] = sl_transform_retain(parts[i]);
    t->n = n;
    return t;
}

sl_transform *sl_transform_retain(sl_transform *t) {
    if (t) t->refcount++;
    return t;
}

void sl_transform_release(sl_transform *t) {
    if (!t || --t->refcount > 0) return;
    bk_release(t->loc);
    bk_release(t->scale);
    bk_release(t->exponent);
    for (int i = 0; i < t->n; i++) sl_transform_release(t->parts[i]);
    free(t->parts);
    free(t);
}

const char *sl_transform_name(const sl_transform *t) {
    static const char *const names[SL_T_COUNT] = {
        [SL_T_EXP] = "ExpTransform",         [SL_T_SIGMOID] = "SigmoidTransform",
        [SL_T_TANH] = "TanhTransform",       [SL_T_AFFINE] = "AffineTransform",
        [SL_T_SOFTPLUS] = "SoftplusTransform", [SL_T_POWER] = "PowerTransform",
        [SL_T_COMPOSE] = "ComposeTransform",
    };
    return t && t->kind >= 0 && t->kind < SL_T_COUNT ? names[t->kind] : "Transform";
}

int sl_transform_domain(const sl_transform *t) {
    if (t->kind == SL_T_POWER) return SL_C_POSITIVE;
    if (t->kind == SL_T_COMPOSE && t->n > 0) return sl_transform_domain(t->parts[0]);
    return SL_C_REAL;
}

int sl_transform_codomain(const sl_transform *t) {
    switch (t->kind) {
    case SL_T_EXP:
    case SL_T_SOFTPLUS:
    case SL_T_POWER: return SL_C_POSITIVE;
    case SL_T_SIGMOID: return SL_C_UNIT_INTERVAL;
    case SL_T_TANH: return SL_C_INTERVAL;
    case SL_T_COMPOSE: return t->n > 0 ? sl_transform_codomain(t->parts[t->n - 1]) : SL_C_REAL;
    default: return SL_C_REAL;
    }
}

/* ------------------------------------------------------- small helpers --- */

/* Apply f to the result of a computation and release that intermediate, so
 * formulas stay one line each without leaking on failure. */
static bk_tensor *un_(bk_ctx *c, int op, bk_tensor *a, bool own) {
    bk_tensor *r = a ? bk_unop(c, op, a) : NULL;
    if (own) bk_release(a);
    return r;
}
static bk_tensor *bin_(bk_ctx *c, int op, bk_tensor *a, bool own_a, bk_tensor *b, bool own_b) {
    bk_tensor *r = a && b ? bk_binop(c, op, a, b) : NULL;
    if (own_a) bk_release(a);
    if (own_b) bk_release(b);
    return r;
}
static bk_tensor *adds_(bk_ctx *c, bk_tensor *a, double s) {
    bk_tensor *r = a ? bk_add_s(c, a, s) : NULL;
    bk_release(a);
    return r;
}
static bk_tensor *muls_(bk_ctx *c, bk_tensor *a, double s) {
    bk_tensor *r = a ? bk_mul_s(c, a, s) : NULL;
    bk_release(a);
    return r;
}

/* ------------------------------------------------------------- forward --- */

bk_tensor *sl_transform_forward(bk_ctx *c, const sl_transform *t, bk_tensor *x) {
    if (!x) return NULL;
    switch (t->kind) {
    case SL_T_EXP: return bk_unop(c, BK_OP_EXP, x);
    case SL_T_SIGMOID: return bk_unop(c, BK_OP_SIGMOID, x);
    case SL_T_TANH: return bk_unop(c, BK_OP_TANH, x);
    case SL_T_SOFTPLUS: return bk_unop(c, BK_OP_SOFTPLUS, x);
    case SL_T_AFFINE: return bin_(c, BK_OP_ADD, t->loc, false, bk_mul(c, t->scale, x), true);
    case SL_T_POWER: return bk_pow(c, x, t->exponent);
    case SL_T_COMPOSE: {
        bk_tensor *y = bk_retain(x);
        for (int i = 0; i < t->n && y; i++) {
            bk_tensor *next = sl_transform_forward(c, t->parts[i], y);
            bk_release(y);
            y = next;
        }
        return y;
    }
    }
    bk_seterr(c, "transform: unknown kind %d", t->kind);
    return NULL;
}

/* ------------------------------------------------------------- inverse --- */

bk_tensor *sl_transform_inverse(bk_ctx *c, const sl_transform *t, bk_tensor *y) {
    if (!y) return NULL;
    switch (t->kind) {
    case SL_T_EXP: return bk_unop(c, BK_OP_LOG, y);
    case SL_T_SIGMOID: return bk_unop(c, BK_OP_LOGIT, y);
    case SL_T_TANH: {
        bk_tensor *a = bk_unop(c, BK_OP_LOG1P, y);
        bk_tensor *b = un_(c, BK_OP_LOG1P, bk_unop(c, BK_OP_NEG, y), true);
        return muls_(c, bin_(c, BK_OP_SUB, a, true, b, true), 0.5);
    }
    case SL_T_SOFTPLUS: {
        /* y + log(-expm1(-y)) */
        bk_tensor *e = un_(c, BK_OP_EXPM1, bk_unop(c, BK_OP_NEG, y), true);
        bk_tensor *l = un_(c, BK_OP_LOG, un_(c, BK_OP_NEG, e, true), true);
        return bin_(c, BK_OP_ADD, y, false, l, true);
    }
    case SL_T_AFFINE: return bin_(c, BK_OP_DIV, bk_sub(c, y, t->loc), true, t->scale, false);
    case SL_T_POWER: {
        bk_tensor *one = bk_scalar(c, 1.0);
        bk_tensor *inv = bin_(c, BK_OP_DIV, one, true, t->exponent, false);
        return bin_(c, BK_OP_POW, y, false, inv, true);
    }
    case SL_T_COMPOSE: {
        bk_tensor *x = bk_retain(y);
        for (int i = t->n - 1; i >= 0 && x; i--) {
            bk_tensor *prev = sl_transform_inverse(c, t->parts[i], x);
            bk_release(x);
            x = prev;
        }
        return x;
    }
    }
    bk_seterr(c, "transform: unknown kind %d", t->kind);
    return NULL;
}

/* ----------------------------------------------------- log|det Jacobian| --- */

/* Bring a parameter-only term to the broadcast shape of x and the term. */
static bk_tensor *broadcast_like(bk_ctx *c, bk_tensor *term, bk_tensor *x) {
    if (!term) return NULL;
    int nd;
    int64_t shape[BK_MAXDIM];
    if (bk_broadcast_shapes(c, term->ndim, term->shape, x->ndim, x->shape, &nd, shape)) {
        bk_release(term);
        return NULL;
    }
    if (nd == term->ndim) {
        bool same = true;
        for (int d = 0; d < nd; d++) same = same && shape[d] == term->shape[d];
        if (same) return term;
    }
    bk_tensor *r = bk_expand(c, term, nd, shape);
    bk_release(term);
    return r;
}

static bk_tensor *ladj_simple(bk_ctx *c, const sl_transform *t, bk_tensor *x, bk_tensor *y) {
    switch (t->kind) {
    case SL_T_EXP: return bk_retain(x);
    case SL_T_SIGMOID:
        return bin_(c, BK_OP_ADD, bk_unop(c, BK_OP_LOG_SIGMOID, x), true,
                    un_(c, BK_OP_LOG_SIGMOID, bk_unop(c, BK_OP_NEG, x), true), true);
    case SL_T_TANH: {
        /* 2 (log 2 - x - softplus(-2x)) */
        bk_tensor *sp = un_(c, BK_OP_SOFTPLUS, bk_mul_s(c, x, -2.0), true);
        bk_tensor *s = bin_(c, BK_OP_ADD, bk_retain(x), true, sp, true);
        return muls_(c, adds_(c, muls_(c, s, -1.0), log(2.0)), 2.0);
    }
    case SL_T_SOFTPLUS: return bk_unop(c, BK_OP_LOG_SIGMOID, x);
    case SL_T_AFFINE: {
        bk_tensor *l = un_(c, BK_OP_LOG, bk_unop(c, BK_OP_ABS, t->scale), true);
        return broadcast_like(c, l, x);
    }
    case SL_T_POWER: {
        /* log|e y / x| */
        bk_tensor *ey = bk_mul(c, t->exponent, y);
        bk_tensor *q = bin_(c, BK_OP_DIV, ey, true, x, false);
        return un_(c, BK_OP_LOG, un_(c, BK_OP_ABS, q, true), true);
    }
    }
    bk_seterr(c, "transform: unknown kind %d", t->kind);
    return NULL;
}

/* A composition sums the parts' terms along the chain of intermediates. */
static bk_tensor *ladj_compose(bk_ctx *c, const sl_transform *t, bk_tensor *x) {
    if (t->n == 0) return bk_zeros(c, BK_F64, x->ndim, x->shape);
    bk_tensor *cur = bk_retain(x), *acc = NULL;
    for (int i = 0; i < t->n; i++) {
        bk_tensor *next = sl_transform_forward(c, t->parts[i], cur);
        bk_tensor *term = next ? sl_transform_log_abs_det_jacobian(c, t->parts[i], cur, next) : NULL;
        bk_release(cur);
        cur = next;
        if (!term) {
            bk_release(acc);
            bk_release(cur);
            return NULL;
        }
        acc = acc ? bin_(c, BK_OP_ADD, acc, true, term, true) : term;
        if (!acc) {
            bk_release(cur);
            return NULL;
        }
    }
    bk_release(cur);
    return acc;
}

bk_tensor *sl_transform_log_abs_det_jacobian(bk_ctx *c, const sl_transform *t, bk_tensor *x, bk_tensor *y) {
    if (!x) return NULL;
    if (t->kind == SL_T_COMPOSE) return ladj_compose(c, t, x);
    bk_tensor *own_y = NULL;
    if (!y && t->kind == SL_T_POWER) {
        own_y = sl_transform_forward(c, t, x);
        if (!own_y) return NULL;
        y = own_y;
    }
    bk_tensor *r = ladj_simple(c, t, x, y);
    bk_release(own_y);
    return r;
}
