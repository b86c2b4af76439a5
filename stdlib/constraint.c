/* constraint.c - constraints and the bijections from unconstrained space.
 *
 * Every transform is written with tensor ops, so the constrained value and
 * log|det J| are differentiable w.r.t. the unconstrained input and w.r.t.
 * tensor-valued bounds (interval(0, 1 - a)).  Conventions follow Stan and
 * Pyro:
 *   positive        x = exp(u)
 *   greater_than(a) x = a + exp(u);   less_than(b) x = b - exp(u)
 *   interval(a, b)  x = a + (b - a) sigmoid(u);  unit_interval x = sigmoid(u)
 *                   (sigmoid clamped to [DBL_MIN, 1 - 2^-53] so x stays
 *                   strictly inside for |u| > 37, as Pyro's clamp_probs)
 *   simplex         stick-breaking over the last dim, K-1 free values:
 *                   z_k = sigmoid(u_k - log(K-1-k)), x_k = z_k (1 - sum_{j<k} x_j)
 *                   (u = 0 maps to the uniform simplex), computed in log
 *                   space with whole-vector ops (any K, batches of rows)
 *   ordered         x_0 = u_0, x_k = x_{k-1} + exp(u_k)
 *   positive_ordered x_k = sum_{j<=k} exp(u_j)
 *   lower_cholesky  n(n+1)/2 values filled row by row into the lower
 *                   triangle ((0,0), (1,0), (1,1), (2,0), ...), exp on the
 *                   diagonal
 *   corr_cholesky   n(n-1)/2 values in the same row-wise order over the
 *                   strict lower triangle ((1,0), (2,0), (2,1), ...), tanh
 *                   to partial correlations, Stan's construction (written
 *                   with whole-matrix ops, see corr_chol)
 * Discrete supports (boolean, nonnegative_integer, integer_interval) only
 * have sl_check. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "constraint.h"

static const struct {
    const char *name;
    int nargs;
} NAMES[SL_C_COUNT] = {
    [SL_C_REAL] = {"real", 0},
    [SL_C_POSITIVE] = {"positive", 0},
    [SL_C_GREATER_THAN] = {"greater_than", 1},
    [SL_C_LESS_THAN] = {"less_than", 1},
    [SL_C_INTERVAL] = {"interval", 2},
    [SL_C_UNIT_INTERVAL] = {"unit_interval", 0},
    [SL_C_SIMPLEX] = {"simplex", 0},
    [SL_C_LOWER_CHOLESKY] = {"lower_cholesky", 0},
    [SL_C_CORR_CHOLESKY] = {"corr_cholesky", 0},
    [SL_C_ORDERED] = {"ordered", 0},
    [SL_C_POSITIVE_ORDERED] = {"positive_ordered", 0},
    [SL_C_BOOLEAN] = {"boolean", 0},
    [SL_C_NONNEG_INTEGER] = {"nonnegative_integer", 0},
    [SL_C_INTEGER_INTERVAL] = {"integer_interval", 2},
    [SL_C_ONE_HOT] = {"one_hot", 0},
};

const char *sl_constraint_name(int kind) {
    return kind >= 0 && kind < SL_C_COUNT ? NAMES[kind].name : "?";
}

int sl_constraint_lookup(const char *name, int *nargs) {
    for (int i = 0; i < SL_C_COUNT; i++)
        if (strcmp(NAMES[i].name, name) == 0) {
            if (nargs) *nargs = NAMES[i].nargs;
            return i;
        }
    return -1;
}

void sl_constraint_clear(sl_constraint *c) {
    bk_release(c->lo);
    bk_release(c->hi);
    c->lo = c->hi = NULL;
}

sl_constraint sl_constraint_copy(const sl_constraint *c) {
    sl_constraint r = *c;
    bk_retain(r.lo);
    bk_retain(r.hi);
    return r;
}

bool sl_constraint_is_discrete(const sl_constraint *c) {
    return c->kind == SL_C_BOOLEAN || c->kind == SL_C_NONNEG_INTEGER || c->kind == SL_C_INTEGER_INTERVAL ||
           c->kind == SL_C_ONE_HOT;
}

/* ----------------------------------------------------------- small tools --- */

/* A scope of temporaries released together (formula code stays flat). */
typedef struct tmp {
    bk_ctx *c;
    bk_tensor *t[256];
    int n;
    bool bad;
} tmp;

static bk_tensor *K(tmp *s, bk_tensor *t) {
    if (!t) s->bad = true;
    else if (s->n < 256) s->t[s->n++] = t;
    else {
        bk_release(t);
        bk_seterr(s->c, "constraint: too many temporaries");
        s->bad = true;
        return NULL;
    }
    return t;
}

static bk_tensor *finish(tmp *s, bk_tensor *r) {
    bk_retain(r);
    for (int i = 0; i < s->n; i++) bk_release(s->t[i]);
    s->n = 0;
    if (s->bad) {
        bk_release(r);
        return NULL;
    }
    return r;
}

static bk_tensor *un(tmp *s, int op, bk_tensor *a) { return a ? K(s, bk_unop(s->c, op, a)) : (s->bad = true, NULL); }
static bk_tensor *bin(tmp *s, int op, bk_tensor *a, bk_tensor *b) {
    return a && b ? K(s, bk_binop(s->c, op, a, b)) : (s->bad = true, NULL);
}
static bk_tensor *adds(tmp *s, bk_tensor *a, double v) { return a ? K(s, bk_add_s(s->c, a, v)) : (s->bad = true, NULL); }
static bk_tensor *muls(tmp *s, bk_tensor *a, double v) { return a ? K(s, bk_mul_s(s->c, a, v)) : (s->bad = true, NULL); }
static bk_tensor *sum_all(tmp *s, bk_tensor *a) { return a ? K(s, bk_sum_all(s->c, a)) : (s->bad = true, NULL); }
static bk_tensor *scalar(tmp *s, double v) { return K(s, bk_scalar(s->c, v)); }
/* The transforms' constants are built on the host: CST(s, t) takes t and
 * keeps it on the run's device; C_kept moves a constant already kept. */
static bk_tensor *CST(tmp *s, bk_tensor *t) { return K(s, bk_place(s->c, t)); }
static bk_tensor *C_kept(tmp *s, bk_tensor *t) { return t ? K(s, bk_to_device(s->c, t, bk_default_device(s->c))) : NULL; }

/* Slice [a, b) of the last dimension. */
static bk_tensor *last_slice(tmp *s, bk_tensor *x, int64_t a, int64_t b) {
    if (!x) {
        s->bad = true;
        return NULL;
    }
    bk_idx idx[BK_MAXDIM];
    for (int d = 0; d < x->ndim; d++) {
        idx[d].kind = BK_IDX_SLICE;
        idx[d].start = 0;
        idx[d].stop = x->shape[d];
        idx[d].step = 1;
        idx[d].idx = NULL;
    }
    idx[x->ndim - 1].start = a;
    idx[x->ndim - 1].stop = b;
    return K(s, bk_index(s->c, x, x->ndim, idx));
}


static int64_t last_dim(const bk_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

/* ------------------------------------------------------------- shapes --- */

int sl_unconstrained_shape(bk_ctx *ctx, const sl_constraint *c, int ndim, const int64_t *shape, int *undim,
                           int64_t *ushape) {
    *undim = ndim;
    for (int i = 0; i < ndim; i++) ushape[i] = shape[i];
    switch (c->kind) {
    case SL_C_SIMPLEX:
        if (ndim < 1 || shape[ndim - 1] < 1) {
            bk_seterr(ctx, "simplex needs a vector with at least one element");
            return -1;
        }
        ushape[ndim - 1] = shape[ndim - 1] - 1;
        return 0;
    case SL_C_LOWER_CHOLESKY:
    case SL_C_CORR_CHOLESKY: {
        if (ndim != 2 || shape[0] != shape[1]) {
            bk_seterr(ctx, "%s needs a square matrix", sl_constraint_name(c->kind));
            return -1;
        }
        int64_t n = shape[0];
        *undim = 1;
        ushape[0] = c->kind == SL_C_LOWER_CHOLESKY ? n * (n + 1) / 2 : n * (n - 1) / 2;
        return 0;
    }
    case SL_C_ORDERED:
    case SL_C_POSITIVE_ORDERED:
        if (ndim < 1) {
            bk_seterr(ctx, "%s needs a vector", sl_constraint_name(c->kind));
            return -1;
        }
        return 0;
    default: return 0;
    }
}

/* ----------------------------------------------------- lower triangles --- */

/* Index map for an n x n matrix from a vector of m values plus one zero at
 * position m: map[i*n + j] = position of (i, j) in the row-wise lower
 * triangle, or m above the diagonal. */
static bk_tensor *tri_map(bk_ctx *c, int64_t n, bool strict) {
    bk_tensor *t = bk_empty(c, BK_F64, 1, (int64_t[]){n * n});
    if (!t) return NULL;
    double *p = bk_data(t);
    int64_t m = strict ? n * (n - 1) / 2 : n * (n + 1) / 2, k = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            bool in = strict ? j < i : j <= i;
            p[i * n + j] = in ? (double)k++ : (double)m;
        }
    return t;
}

/* 1 at the positions of the vector that are diagonal entries. */
static bk_tensor *diag_positions(bk_ctx *c, int64_t n) {
    int64_t m = n * (n + 1) / 2;
    bk_tensor *t = bk_zeros(c, BK_F64, 1, &m);
    if (!t) return NULL;
    double *p = bk_data(t);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++, k++) p[k] = i == j;
    return t;
}

static bk_tensor *vec_to_lower(tmp *s, bk_tensor *v, int64_t n, bool strict) {
    bk_tensor *z = CST(s, bk_zeros(s->c, BK_F64, 1, (int64_t[]){1}));
    bk_tensor *parts[2] = {v, z};
    bk_tensor *vz = (v && z) ? K(s, bk_concat(s->c, 2, parts, 0)) : NULL;
    bk_tensor *map = CST(s, tri_map(s->c, n, strict));
    bk_tensor *flat = (vz && map) ? K(s, bk_index_select(s->c, vz, 0, map)) : NULL;
    return flat ? K(s, bk_reshape(s->c, flat, 2, (int64_t[]){n, n})) : (s->bad = true, NULL);
}

static bk_tensor *lower_to_vec(tmp *s, bk_tensor *x, int64_t n, bool strict) {
    int64_t m = strict ? n * (n - 1) / 2 : n * (n + 1) / 2;
    bk_tensor *pos = K(s, bk_empty(s->c, BK_F64, 1, &m));
    if (!pos) return NULL;
    double *p = bk_data(pos);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < (strict ? i : i + 1); j++) p[k++] = (double)(i * n + j);
    pos = C_kept(s, pos);
    bk_tensor *flat = K(s, bk_reshape(s->c, x, 1, (int64_t[]){n * n}));
    return flat ? K(s, bk_index_select(s->c, flat, 0, pos)) : NULL;
}

/* ------------------------------------------------------- scan helpers --- */

/* Zeros shaped like a but with k elements in the last dimension. */
static bk_tensor *zeros_last(tmp *s, const bk_tensor *a, int64_t k) {
    int64_t shape[BK_MAXDIM];
    for (int d = 0; d < a->ndim; d++) shape[d] = a->shape[d];
    shape[a->ndim - 1] = k;
    return CST(s, bk_zeros(s->c, BK_F64, a->ndim, shape));
}

/* Exclusive cumulative sum along the last dimension (first entry 0); the
 * inclusive one goes to *incl. */
static bk_tensor *excl_cumsum(tmp *s, bk_tensor *a, bk_tensor **incl) {
    bk_tensor *cs = a ? K(s, bk_reduce(s->c, BK_OP_CUMSUM, a, -1, false)) : NULL;
    *incl = cs;
    if (!cs) return (s->bad = true, NULL);
    int64_t n = last_dim(a);
    if (n == 1) return zeros_last(s, a, 1);
    bk_tensor *parts[2] = {zeros_last(s, a, 1), last_slice(s, cs, 0, n - 1)};
    return parts[0] && parts[1] ? K(s, bk_concat(s->c, 2, parts, -1)) : (s->bad = true, NULL);
}

/* ------------------------------------------------------------ simplex --- */

/* Stick-breaking in log space, so neither x nor log|det J| loses precision
 * when a stick is nearly used up:  t_k = u_k - log(K-1-k),
 * log x_k = log sigmoid(t_k) + sum_{j<k} log sigmoid(-t_j),
 * log x_{K-1} = sum_j log sigmoid(-t_j),
 * log|det J| = sum_k [log sigmoid(t_k) + log sigmoid(-t_k) + sum_{j<k} log sigmoid(-t_j)]. */
static bk_tensor *simplex_forward(tmp *s, bk_tensor *u, bk_tensor **ld) {
    int64_t km1 = last_dim(u);
    if (km1 == 0) {
        *ld = scalar(s, 0.0);
        bk_tensor *z = zeros_last(s, u, 1);
        return z ? K(s, bk_add_s(s->c, z, 1.0)) : NULL;
    }
    bk_tensor *off = K(s, bk_empty(s->c, BK_F64, 1, &km1));
    if (!off) return NULL;
    for (int64_t k = 0; k < km1; k++) bk_data(off)[k] = -log((double)(km1 - k));
    off = C_kept(s, off);
    bk_tensor *t = bin(s, BK_OP_ADD, u, off);
    bk_tensor *lz = un(s, BK_OP_LOG_SIGMOID, t);
    bk_tensor *l1 = un(s, BK_OP_LOG_SIGMOID, un(s, BK_OP_NEG, t));
    bk_tensor *cs, *lrem = excl_cumsum(s, l1, &cs);
    bk_tensor *parts[2] = {un(s, BK_OP_EXP, bin(s, BK_OP_ADD, lz, lrem)),
                           un(s, BK_OP_EXP, last_slice(s, cs, km1 - 1, km1))};
    *ld = sum_all(s, bin(s, BK_OP_ADD, bin(s, BK_OP_ADD, lz, l1), lrem));
    return parts[0] && parts[1] ? K(s, bk_concat(s->c, 2, parts, -1)) : (s->bad = true, NULL);
}

/* u_k = log x_k - log(x_{k+1} + ... + x_{K-1}) + log(K-1-k); the tail sums
 * are a cumulative sum of the reversed vector, free of the cancellation in
 * 1 - cumsum when the last sticks are small. */
static bk_tensor *simplex_inverse(tmp *s, bk_tensor *x) {
    int64_t Kd = last_dim(x), km1 = Kd - 1;
    if (Kd == 1) return zeros_last(s, x, 0);
    bk_tensor *rev = K(s, bk_empty(s->c, BK_F64, 1, &Kd));
    bk_tensor *off = K(s, bk_empty(s->c, BK_F64, 1, &km1));
    if (!rev || !off) return NULL;
    for (int64_t k = 0; k < Kd; k++) bk_data(rev)[k] = (double)(Kd - 1 - k);
    for (int64_t k = 0; k < km1; k++) bk_data(off)[k] = log((double)(km1 - k));
    rev = C_kept(s, rev);
    off = C_kept(s, off);
    bk_tensor *xr = K(s, bk_index_select(s->c, x, -1, rev));
    bk_tensor *cr = xr ? K(s, bk_reduce(s->c, BK_OP_CUMSUM, xr, -1, false)) : NULL;
    bk_tensor *tail = cr ? K(s, bk_index_select(s->c, cr, -1, rev)) : NULL; /* tail[k] = sum_{j>=k} x_j */
    bk_tensor *lx = un(s, BK_OP_LOG, last_slice(s, x, 0, km1));
    bk_tensor *lt = un(s, BK_OP_LOG, last_slice(s, tail, 1, Kd));
    return bin(s, BK_OP_ADD, bin(s, BK_OP_SUB, lx, lt), off);
}

/* --------------------------------------------------------- corr cholesky --- */

/* Stan's corr_cholesky from partial correlations z = tanh(y), written with
 * whole-matrix ops.  With w = log sqrt(1 - z^2) (computed from y, exact for
 * large |y|) and W its strict lower triangle, C the exclusive cumulative sum
 * of W along rows:  L = (Z + I) exp(C), i.e. L_ij = z_ij prod_{k<j}
 * sqrt(1 - z_ik^2) and L_ii = prod_{k<i} sqrt(1 - z_ik^2).
 * log|det J| = sum_{j<i} [log(1 - z_ij^2) + C_ij]. */
static bk_tensor *corr_chol(tmp *s, bk_tensor *y, int64_t n, bk_tensor **logdet) {
    if (n <= 1) {
        *logdet = scalar(s, 0.0);
        return K(s, bk_full(s->c, BK_F64, 2, (int64_t[]){n, n}, 1.0));
    }
    bk_tensor *ay = un(s, BK_OP_ABS, y);
    /* log sech y = log 2 - |y| - softplus(-2|y|) */
    bk_tensor *w = adds(s, muls(s, bin(s, BK_OP_ADD, ay, un(s, BK_OP_SOFTPLUS, muls(s, ay, -2.0))), -1.0), log(2.0));
    bk_tensor *Z = vec_to_lower(s, un(s, BK_OP_TANH, y), n, true);
    bk_tensor *W = vec_to_lower(s, w, n, true);
    bk_tensor *cs, *C = excl_cumsum(s, W, &cs);
    bk_tensor *I = CST(s, bk_eye(s->c, n));
    bk_tensor *L = bin(s, BK_OP_MUL, bin(s, BK_OP_ADD, Z, I), un(s, BK_OP_EXP, C));
    bk_tensor *M = K(s, bk_empty(s->c, BK_F64, 2, (int64_t[]){n, n})); /* 1 below the diagonal */
    if (!M) return NULL;
    for (int64_t i = 0; i < n * n; i++) bk_data(M)[i] = (i / n) > (i % n);
    M = C_kept(s, M);
    *logdet = sum_all(s, bin(s, BK_OP_ADD, muls(s, W, 2.0), bin(s, BK_OP_MUL, C, M)));
    return L;
}

/* ------------------------------------------------------------ forward --- */

bk_tensor *sl_to_constrained(bk_ctx *ctx, const sl_constraint *c, bk_tensor *u, int ndim, const int64_t *shape,
                             bk_tensor **logdet) {
    tmp s;   /* t[] is filled up to n: no 2 KB zeroing per call */
    s.c = ctx;
    s.n = 0;
    s.bad = false;
    bk_tensor *x = NULL, *ld = NULL;
    if (logdet) *logdet = NULL;
    if (!u) return NULL;
    switch (c->kind) {
    case SL_C_REAL:
        x = K(&s, bk_reshape(ctx, u, ndim, shape));
        ld = scalar(&s, 0.0);
        break;
    case SL_C_POSITIVE:
        x = un(&s, BK_OP_EXP, u);
        ld = sum_all(&s, u);
        break;
    case SL_C_GREATER_THAN:
    case SL_C_LESS_THAN: {
        bk_tensor *e = un(&s, BK_OP_EXP, u);
        x = c->kind == SL_C_GREATER_THAN ? bin(&s, BK_OP_ADD, c->lo, e) : bin(&s, BK_OP_SUB, c->hi, e);
        if (x && !bk_same_shape(x, u)) x = K(&s, bk_expand(ctx, x, u->ndim, u->shape));
        ld = sum_all(&s, u);
        break;
    }
    case SL_C_UNIT_INTERVAL:
    case SL_C_INTERVAL: {
        /* sigmoid rounds to exactly 0 or 1 for |u| > ~37; keep x strictly
         * inside the support (as Pyro's clamp_probs does) */
        bk_tensor *sg = bin(&s, BK_OP_MAXIMUM, bin(&s, BK_OP_MINIMUM, un(&s, BK_OP_SIGMOID, u), scalar(&s, 1 - 0x1p-53)),
                            scalar(&s, DBL_MIN));
        /* log sigmoid(u) + log sigmoid(-u) (+ log(hi - lo)) */
        bk_tensor *l = bin(&s, BK_OP_ADD, un(&s, BK_OP_LOG_SIGMOID, u), un(&s, BK_OP_LOG_SIGMOID, un(&s, BK_OP_NEG, u)));
        if (c->kind == SL_C_UNIT_INTERVAL) {
            x = sg;
        } else {
            bk_tensor *w = bin(&s, BK_OP_SUB, c->hi, c->lo);
            x = bin(&s, BK_OP_ADD, c->lo, bin(&s, BK_OP_MUL, w, sg));
            if (x && !bk_same_shape(x, u)) x = K(&s, bk_expand(ctx, x, u->ndim, u->shape));
            bk_tensor *lw = un(&s, BK_OP_LOG, w);
            if (lw && !bk_same_shape(lw, u)) lw = K(&s, bk_expand(ctx, lw, u->ndim, u->shape));
            l = bin(&s, BK_OP_ADD, l, lw);
        }
        ld = sum_all(&s, l);
        break;
    }
    case SL_C_SIMPLEX:
        if (u->ndim < 1) {
            bk_seterr(ctx, "simplex: expected a vector");
            return finish(&s, NULL);
        }
        x = simplex_forward(&s, u, &ld);
        break;
    case SL_C_ORDERED:
    case SL_C_POSITIVE_ORDERED: {
        int64_t n = last_dim(u);
        if (n == 0) {
            x = K(&s, bk_retain(u));
            ld = scalar(&s, 0.0);
            break;
        }
        bk_tensor *d;
        if (c->kind == SL_C_ORDERED) {
            bk_tensor *head = last_slice(&s, u, 0, 1), *tail = un(&s, BK_OP_EXP, last_slice(&s, u, 1, n));
            bk_tensor *parts[2] = {head, tail};
            d = (head && tail) ? K(&s, bk_concat(ctx, 2, parts, -1)) : NULL;
            ld = sum_all(&s, last_slice(&s, u, 1, n));
        } else {
            d = un(&s, BK_OP_EXP, u);
            ld = sum_all(&s, u);
        }
        x = d ? K(&s, bk_reduce(ctx, BK_OP_CUMSUM, d, -1, false)) : NULL;
        break;
    }
    case SL_C_LOWER_CHOLESKY: {
        if (ndim != 2) {
            bk_seterr(ctx, "lower_cholesky needs a square matrix");
            return finish(&s, NULL);
        }
        int64_t n = shape[0];
        bk_tensor *dm = CST(&s, diag_positions(ctx, n));
        bk_tensor *ev = un(&s, BK_OP_EXP, u);
        bk_tensor *vt = (dm && ev) ? K(&s, bk_where(ctx, dm, ev, u)) : NULL;
        x = vt ? vec_to_lower(&s, vt, n, false) : NULL;
        ld = sum_all(&s, bin(&s, BK_OP_MUL, dm, u));
        break;
    }
    case SL_C_CORR_CHOLESKY: {
        if (ndim != 2) {
            bk_seterr(ctx, "corr_cholesky needs a square matrix");
            return finish(&s, NULL);
        }
        x = corr_chol(&s, u, shape[0], &ld);
        break;
    }
    default:
        bk_seterr(ctx, "the support %s has no transform to unconstrained space", sl_constraint_name(c->kind));
        return finish(&s, NULL);
    }
    if (logdet && ld) *logdet = bk_retain(ld);
    bk_tensor *r = finish(&s, x);
    if (!r && logdet) {
        bk_release(*logdet);
        *logdet = NULL;
    }
    if (r && logdet && !*logdet) {
        bk_release(r);
        return NULL;
    }
    return r;
}

/* ------------------------------------------------------------ inverse --- */

bk_tensor *sl_to_unconstrained(bk_ctx *ctx, const sl_constraint *c, bk_tensor *x) {
    tmp s;   /* t[] is filled up to n: no 2 KB zeroing per call */
    s.c = ctx;
    s.n = 0;
    s.bad = false;
    bk_tensor *u = NULL;
    if (!x) return NULL;
    switch (c->kind) {
    case SL_C_REAL: u = K(&s, bk_retain(x)); break;
    case SL_C_POSITIVE: u = un(&s, BK_OP_LOG, x); break;
    case SL_C_GREATER_THAN: u = un(&s, BK_OP_LOG, bin(&s, BK_OP_SUB, x, c->lo)); break;
    case SL_C_LESS_THAN: u = un(&s, BK_OP_LOG, bin(&s, BK_OP_SUB, c->hi, x)); break;
    case SL_C_UNIT_INTERVAL: u = un(&s, BK_OP_LOGIT, x); break;
    case SL_C_INTERVAL: {
        bk_tensor *t = bin(&s, BK_OP_DIV, bin(&s, BK_OP_SUB, x, c->lo), bin(&s, BK_OP_SUB, c->hi, c->lo));
        u = un(&s, BK_OP_LOGIT, t);
        break;
    }
    case SL_C_SIMPLEX:
        if (x->ndim < 1 || last_dim(x) < 1) {
            bk_seterr(ctx, "simplex: expected a vector");
            return finish(&s, NULL);
        }
        u = simplex_inverse(&s, x);
        break;
    case SL_C_ORDERED:
    case SL_C_POSITIVE_ORDERED: {
        int64_t n = last_dim(x);
        if (n == 0) {
            u = K(&s, bk_retain(x));
            break;
        }
        bk_tensor *diff = bin(&s, BK_OP_SUB, last_slice(&s, x, 1, n), last_slice(&s, x, 0, n - 1));
        bk_tensor *head = last_slice(&s, x, 0, 1);
        if (c->kind == SL_C_POSITIVE_ORDERED) head = un(&s, BK_OP_LOG, head);
        bk_tensor *parts[2] = {head, un(&s, BK_OP_LOG, diff)};
        u = (parts[0] && parts[1]) ? K(&s, bk_concat(ctx, 2, parts, -1)) : NULL;
        break;
    }
    case SL_C_LOWER_CHOLESKY: {
        if (x->ndim != 2 || x->shape[0] != x->shape[1]) {
            bk_seterr(ctx, "lower_cholesky needs a square matrix");
            return finish(&s, NULL);
        }
        int64_t n = x->shape[0];
        bk_tensor *v = lower_to_vec(&s, x, n, false);
        bk_tensor *dm = CST(&s, diag_positions(ctx, n));
        /* log on the diagonal only (ones elsewhere keep log finite) */
        bk_tensor *one = scalar(&s, 1.0);
        bk_tensor *safe = (dm && v && one) ? K(&s, bk_where(ctx, dm, v, one)) : NULL;
        bk_tensor *lv = un(&s, BK_OP_LOG, safe);
        u = (dm && lv && v) ? K(&s, bk_where(ctx, dm, lv, v)) : NULL;
        break;
    }
    case SL_C_CORR_CHOLESKY: {
        /* invert row by row: z_ij = L_ij / sqrt(1 - sum_{k<j} L_ik^2) */
        if (x->ndim != 2 || x->shape[0] != x->shape[1]) {
            bk_seterr(ctx, "corr_cholesky needs a square matrix");
            return finish(&s, NULL);
        }
        int64_t n = x->shape[0], m = n * (n - 1) / 2, k = 0;
        bk_tensor *r = K(&s, bk_empty(ctx, BK_F64, 1, &m));
        if (!r) return finish(&s, NULL);
        double *p = bk_data(r);
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int64_t j = 0; j < i; j++) {
                double l = bk_get(x, i * n + j);
                double z = l / sqrt(fmax(1 - acc, 1e-300));
                if (z > 1 - 1e-15) z = 1 - 1e-15;
                if (z < -1 + 1e-15) z = -1 + 1e-15;
                p[k++] = atanh(z);
                acc += l * l;
            }
        }
        u = r;
        break;
    }
    default:
        bk_seterr(ctx, "the support %s has no transform to unconstrained space", sl_constraint_name(c->kind));
        return finish(&s, NULL);
    }
    return finish(&s, u);
}

/* ------------------------------------------------------------- checks --- */

static bk_tensor *check_elementwise(bk_ctx *ctx, const sl_constraint *c, bk_tensor *x) {
    bk_tensor *r = bk_empty(ctx, BK_F64, x->ndim, x->shape);
    if (!r) return NULL;
    bk_tensor *lo = c->lo ? bk_expand(ctx, c->lo, x->ndim, x->shape) : NULL;
    bk_tensor *hi = c->hi ? bk_expand(ctx, c->hi, x->ndim, x->shape) : NULL;
    if ((c->lo && !lo) || (c->hi && !hi)) {
        bk_release(r);
        bk_release(lo);
        bk_release(hi);
        return NULL;
    }
    double *p = bk_data(r);
    for (int64_t i = 0; i < x->numel; i++) {
        double v = bk_get(x, i), a = lo ? bk_get(lo, i) : 0, b = hi ? bk_get(hi, i) : 0;
        bool ok;
        switch (c->kind) {
        case SL_C_REAL: ok = !isnan(v); break;
        case SL_C_POSITIVE: ok = v > 0; break;
        case SL_C_GREATER_THAN: ok = v > a; break;
        case SL_C_LESS_THAN: ok = v < b; break;
        case SL_C_INTERVAL: ok = v > a && v < b; break;
        case SL_C_UNIT_INTERVAL: ok = v > 0 && v < 1; break;
        case SL_C_BOOLEAN: ok = v == 0 || v == 1; break;
        case SL_C_NONNEG_INTEGER: ok = v >= 0 && v == floor(v); break;
        case SL_C_INTEGER_INTERVAL: ok = v >= a && v <= b && v == floor(v); break;
        default: ok = true;
        }
        p[i] = ok;
    }
    bk_release(lo);
    bk_release(hi);
    return r;
}

bk_tensor *sl_check(bk_ctx *ctx, const sl_constraint *c, bk_tensor *x) {
    if (!x) return NULL;
    switch (c->kind) {
    case SL_C_SIMPLEX:
    case SL_C_ONE_HOT:
    case SL_C_ORDERED:
    case SL_C_POSITIVE_ORDERED: {
        if (x->ndim < 1) {
            bk_seterr(ctx, "%s needs a vector", sl_constraint_name(c->kind));
            return NULL;
        }
        int64_t n = last_dim(x), rows = n ? x->numel / n : 0;
        bk_tensor *r = bk_empty(ctx, BK_F64, x->ndim - 1, x->shape);
        if (!r) return NULL;
        for (int64_t i = 0; i < rows; i++) {
            bool ok = true;
            double sum = 0;
            for (int64_t k = 0; k < n; k++) {
                double v = bk_get(x, i * n + k);
                sum += v;
                if (c->kind == SL_C_SIMPLEX && !(v >= 0)) ok = false;
                if (c->kind == SL_C_ONE_HOT && v != 0 && v != 1) ok = false;
                if (c->kind != SL_C_SIMPLEX && c->kind != SL_C_ONE_HOT && k > 0 && !(v > bk_get(x, i * n + k - 1))) ok = false;
                if (c->kind == SL_C_POSITIVE_ORDERED && !(v > 0)) ok = false;
            }
            if (c->kind == SL_C_SIMPLEX && fabs(sum - 1) > 1e-6) ok = false;
            if (c->kind == SL_C_ONE_HOT && sum != 1) ok = false;
            bk_data(r)[i] = ok;
        }
        return r;
    }
    case SL_C_LOWER_CHOLESKY:
    case SL_C_CORR_CHOLESKY: {
        if (x->ndim != 2 || x->shape[0] != x->shape[1]) {
            bk_seterr(ctx, "%s needs a square matrix", sl_constraint_name(c->kind));
            return NULL;
        }
        int64_t n = x->shape[0];
        bool ok = true;
        for (int64_t i = 0; i < n; i++) {
            double rn = 0;
            for (int64_t j = 0; j < n; j++) {
                double v = bk_get(x, i * n + j);
                if (j > i && v != 0) ok = false;
                if (j == i && !(v > 0)) ok = false;
                rn += v * v;
            }
            if (c->kind == SL_C_CORR_CHOLESKY && fabs(rn - 1) > 1e-6) ok = false;
        }
        return bk_scalar(ctx, ok);
    }
    default: return check_elementwise(ctx, c, x);
    }
}
