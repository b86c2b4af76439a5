/* program_native.c - the compiled replay of a recorded program: every slot
 * is a fixed run of doubles in one buffer, every op a tight loop over them,
 * and the reverse sweep accumulates adjoints in two more buffers, with no
 * tensor, tape record or allocation per replay.
 *
 * Here: the ops small models are made of: pointwise ops on single
 * elements and on vectors (one side may be a single element, broadcast),
 * where, the fused elementwise kernels (bk_fused), sums to one element and
 * a data matrix times a latent vector (BLAS dgemv, as the backend calls it).
 * program_native_ops.c has the other kinds (broadcasting over any shapes,
 * reductions and scans along an axis, indexing, concat, and any other op
 * through its own kernel).  A program with an op none takes (more than
 * BK_MAXIN inputs, a fused kernel on a view) is replayed through bk_apply
 * (program.c).
 *
 * Bit-identity with the tape.  The sweep reproduces tensor.c's arithmetic
 * exactly, so a replay gives the interpreted evaluation's bits:
 *  - an op on two single elements is the tape's compact scalar record:
 *    forward bk__pointwise, backward g * bk__pointwise_grad, contributions
 *    to the input's scalar adjoint (`as`), or to a leaf's gradient;
 *  - any other op is a general record: its rule's formulas (g / b for the
 *    numerator of a division, g * f'(x) for a unary op, ...), summed down
 *    to a broadcast input with the SUM kernel's four partial sums, and
 *    accumulated into the input's tensor adjoint (`at`) in sweep order;
 *  - a slot's gradient is its scalar adjoint plus its tensor adjoint, each
 *    present or not (the flags HAS_S, HAS_T) as the tape's has_adj and has_grad. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "ops_impl.h"
#include "program_native.h"
#undef I /* (complex.h, through cblas.h: this file names ops I) */
#include "rng.h"

void bk__native_free(bk_ctx *ctx, bk_native *n) {
    if (!n) return;
    for (size_t i = 0; n->ins && i < n->nins; i++) bk__natx_free(ctx, n->ins[i].ext);
    bk_free(ctx, n->ins);
    bk_free(ctx, n->off);
    bk_free(ctx, n->numel);
    bk_free(ctx, n->rg);
    bk_free(ctx, n->leaf);
    bk_free(ctx, n->val);
    bk_free(ctx, n->at);
    bk_free(ctx, n->as);
    bk_free(ctx, n->has);
    bk_free(ctx, n->scratch);
    bk_free(ctx, n);
}

/* ---------------------------------------------------------- compiling --- */

/* Differentiable pointwise ops whose tensor backward rule computes, per
 * element, the same value as g * bk__pointwise_grad (DIV's numerator and
 * the binary ops are special-cased in the sweep). */
static bool vector_rule_known(int op) {
    switch (op) {
    case BK_OP_ADD: case BK_OP_SUB: case BK_OP_MUL: case BK_OP_DIV:
    case BK_OP_NEG: case BK_OP_ABS: case BK_OP_EXP: case BK_OP_LOG: case BK_OP_LOG1P:
    case BK_OP_EXPM1: case BK_OP_SQRT: case BK_OP_SQUARE: case BK_OP_SIGMOID: case BK_OP_LOGIT:
    case BK_OP_SOFTPLUS: case BK_OP_LOG_SIGMOID: case BK_OP_TANH: case BK_OP_RELU:
    case BK_OP_SIN: case BK_OP_COS: case BK_OP_LGAMMA: case BK_OP_DIGAMMA:
        return true;
    default:
        return false;
    }
}

static bool same_shape_as(const bk_tensor *a, const bk_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Inputs of an elementwise op: each one element or the output's shape; a
 * single element broadcast only into a vector (so its gradient is one
 * four-way sum, as bk_sum_to's). */
static bool elementwise_ok(bk_tensor *const *in, int nin, const bk_tensor *out) {
    for (int k = 0; k < nin; k++) {
        if (in[k]->numel == 1) {
            if (out->numel != 1 && out->ndim != 1) return false;
        } else if (!same_shape_as(in[k], out)) {
            return false;
        }
    }
    return true;
}

static bool sum_to_one(const bk_prog *p, const prog_ins *I, const bk_tensor *x) {
    if (I->args) {
        const bk_opargs *a = &p->args[I->args - 1];
        if (!(a->axis == BK_ALL_AXES || (x->ndim == 1 && (a->axis == 0 || a->axis == -1)))) return false;
    }
    return true;
}

static int kind_of(const bk_prog *p, const prog_ins *I, bk_tensor *const *in, const bk_tensor *out) {
    int op = I->op;
    if (op >= 0 && op < BK_OP_COUNT && bk__pointwise_arity[op] == I->nin) {
        bool ones = true;
        for (int k = 0; k < I->nin; k++) ones = ones && in[k]->numel == 1;
        if (ones) return K_SCALAR;
        if (!elementwise_ok(in, I->nin, out)) return -1;
        if (out->requires_grad && !vector_rule_known(op)) return -1;
        return K_MAP;
    }
    if (op == BK_OP_WHERE) return elementwise_ok(in, 3, out) ? K_WHERE : -1;
    if (op == BK_OP_FUSED) {
        const bk_opargs *a = I->args ? &p->args[I->args - 1] : NULL;
        if (!a || !a->fused || a->fused->nin != I->nin) return -1;
        return elementwise_ok(in, I->nin, out) ? K_FUSED : -1;
    }
    if (op == BK_OP_SUM && out->numel == 1 && sum_to_one(p, I, in[0])) return K_SUM;
    /* a data matrix times a latent vector (X @ w), through the BLAS calls
     * ops_linalg.c makes for it (and for its gradient, X^T g) */
    if (op == BK_OP_MATMUL && p->srcs[I->src] < 0 && p->srcs[I->src + 1] >= 0 && in[0]->ndim == 2 &&
        in[1]->ndim == 1 && in[0]->shape[0] > 1 && in[0]->shape[1] > 1 && in[0]->shape[1] == in[1]->shape[0] &&
        in[0]->shape[0] <= INT32_MAX && in[0]->shape[1] <= INT32_MAX)
        return K_MATVEC;
    return -1;
}

static bool plain_f64(const bk_tensor *t) {
    return t->dtype == BK_F64 && t->st->dev == &bk_cpu_device && bk_is_contiguous(t);
}

/* Whether scalar record J is an addition or subtraction (whose derivatives
 * are the constants 1 and +-1). */
static bool add_sub(const nat_ins *J) {
    return J->kind == K_SCALAR && J->rg && (J->op == BK_OP_ADD || J->op == BK_OP_SUB);
}

/* Chains: runs of consecutive scalar additions and subtractions, each one's
 * output an input of the next and of nothing else (the log density's sum
 * of terms, lp = ((t1 + t2) + t3) + ...), whose reverse sweep
 * backward_chain runs in one loop, with the arithmetic of the members'
 * scalar records.  0, or -1 when out of memory. */
static int find_chains(bk_native *n, const bk_prog *p) {
    for (size_t i = 0; i < n->nins; i++) n->ins[i].bw = n->ins[i].rg;
    if (n->nins < 2) return 0;
    int32_t *uses = bk_malloc(n->ctx, (size_t)n->nslots * sizeof *uses);
    if (!uses) return -1;
    memset(uses, 0, (size_t)n->nslots * sizeof *uses);
    for (size_t i = 0; i < n->nins; i++)
        for (int k = 0; k < n->ins[i].nin; k++)
            if (n->ins[i].src[k] >= 0) uses[n->ins[i].src[k]]++;
    /* (a slot read other than by an op: one use more) */
    if (p->out >= 0) uses[p->out]++;
    if (p->result >= 0) uses[p->result]++;
    for (size_t i = 0; i < p->nouts; i++)
        if (p->outs[i].slot >= 0) uses[p->outs[i].slot]++;
    size_t first = 0; /* the current chain's first member */
    for (size_t i = 1; i < n->nins; i++) {
        nat_ins *A = &n->ins[i - 1], *B = &n->ins[i];
        int q = B->nin == 2 && B->src[0] == A->out ? 0 : B->nin == 2 && B->src[1] == A->out ? 1 : -1;
        bool link = add_sub(A) && add_sub(B) && q >= 0 && B->src[1 - q] != A->out && B->pass[q] == 1 &&
                    uses[A->out] == 1 && !A->guard && !n->leaf[A->out];
        if (!link) {
            first = i;
            continue;
        }
        B->cpos = (uint8_t)q;
        B->chain = (int32_t)(i - first + 1);
        A->chain = 0;
        A->bw = 0; /* (B's backward_chain does it) */
    }
    bk_free(n->ctx, uses);
    return 0;
}

bk_native *bk__native_compile(bk_prog *p, bk_tensor *const *held) {
    bk_ctx *ctx = p->ctx;
    bk_native *n = bk_malloc(ctx, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->ctx = ctx;
    int32_t S = p->nslots;
    n->nslots = S;
    n->ins = bk_malloc(ctx, (p->nins ? p->nins : 1) * sizeof *n->ins);
    n->off = bk_malloc(ctx, (size_t)S * sizeof *n->off);
    n->numel = bk_malloc(ctx, (size_t)S * sizeof *n->numel);
    n->rg = bk_malloc(ctx, (size_t)S);
    n->leaf = bk_malloc(ctx, (size_t)S);
    n->as = bk_malloc(ctx, (size_t)S * sizeof *n->as);
    n->has = bk_malloc(ctx, (size_t)S);
    if (!n->ins || !n->off || !n->numel || !n->rg || !n->leaf || !n->as || !n->has) goto fail;
    memset(n->ins, 0, (p->nins ? p->nins : 1) * sizeof *n->ins);
    n->nins = p->nins; /* (every ext NULL until compiled: bk__native_free) */
    int64_t total = 0;
    n->maxn = 1;
    for (int32_t s = 0; s < S; s++) {
        const bk_tensor *t = held[s];
        /* (any layout: a slot's values are a contiguous run of val) */
        if (t->dtype != BK_F64 || t->st->dev != &bk_cpu_device) goto fail;
        n->off[s] = total;
        n->numel[s] = t->numel;
        n->rg[s] = t->requires_grad;
        n->leaf[s] = 0;
        total += t->numel;
        if (t->numel > n->maxn) n->maxn = t->numel;
    }
    for (size_t i = 0; i < p->ninputs; i++) n->leaf[p->inputs[i].slot] = 1;
    for (size_t i = 0; i < p->nguards; i++) n->input_guards += p->guards[i].on_input;
    n->val = bk_malloc(ctx, (size_t)(total ? total : 1) * sizeof *n->val);
    n->at = bk_malloc(ctx, (size_t)(total ? total : 1) * sizeof *n->at);
    n->scratch = bk_malloc(ctx, (size_t)(BK_MAXIN * n->maxn) * sizeof *n->scratch);
    if (!n->val || !n->at || !n->scratch) goto fail;
    if (p->out >= 0 && (!n->rg[p->out] || n->leaf[p->out])) goto fail; /* the output must be a taped op */
    for (size_t i = 0; i < p->nins; i++) {
        const prog_ins *I = &p->ins[i];
        nat_ins *J = &n->ins[i];
        if (I->nin > BK_MAXIN) goto fail;
        bk_tensor *in[BK_MAXIN];
        for (int k = 0; k < I->nin; k++) {
            int32_t s = p->srcs[I->src + k];
            in[k] = s >= 0 ? held[s] : p->consts[-s - 1];
            if (s < 0 && !plain_f64(in[k])) goto fail;
            /* a gradient the tape would give a tensor the program does not own */
            if (s < 0 && in[k]->requires_grad) goto fail;
            J->src[k] = s >= 0 ? s : -1;
            J->x[k] = s >= 0 ? n->val + n->off[s] : bk_data(in[k]);
        }
        const bk_tensor *out = held[I->out];
        int kind = kind_of(p, I, in, out);
        /* a view (an index's result) as an input: its slot holds its
         * values in order, which the elementwise kinds, the sum and
         * program_native_ops.c's kinds read as the op would; the fused
         * kernels and BLAS are not given one */
        for (int k = 0; (kind == K_FUSED || kind == K_MATVEC) && k < I->nin; k++)
            if (J->src[k] >= 0 && !plain_f64(in[k])) kind = -1;
        if (kind < 0) kind = bk__natx_compile(n, p, I, in, out, J);
        if (kind < 0) goto fail;
        J->op = I->op;
        J->kind = (uint8_t)kind;
        J->nin = (uint8_t)I->nin;
        J->rg = out->requires_grad;
        J->out = I->out;
        J->guard = I->guard;
        J->n = out->numel;
        J->fused = kind == K_FUSED ? p->args[I->args - 1].fused : NULL;
        J->o = n->val + n->off[I->out];
        J->ga = n->at + n->off[I->out];
        for (int k = 0; k < I->nin; k++) {
            int32_t s = J->src[k];
            J->pass[k] = (uint8_t)(s < 0 || !n->rg[s] ? 0 : n->leaf[s] ? 2 : 1);
            if (s < 0 || !n->rg[s]) continue;
            J->need |= (uint8_t)(1u << k);
            bool alone = n->numel[s] == J->n;
            for (int q = 0; q < I->nin && alone; q++) alone = q == k || J->src[q] != s;
            if (alone) J->alone |= (uint8_t)(1u << k);
        }
        if (kind == K_CALL) n->ncall++;
        if (kind == K_MATVEC) {
            J->m = in[0]->shape[0];
            J->k = in[0]->shape[1];
        }
        /* the strides the kernels see (a fused kernel may treat a single
         * element apart: ops_fused.c's row_inc) */
        for (int k = 0; k < I->nin; k++)
            J->inc[k] = in[k]->numel == 1 && (J->n != 1 || kind == K_FUSED) ? 0 : 1;
    }
    if (find_chains(n, p)) goto fail;
    return n;
fail:
    bk__native_free(ctx, n);
    bk_clearerr(ctx);
    return NULL;
}

/* ------------------------------------------------------------- forward --- */

/* The SUM kernel's sum of m contiguous elements: four partial sums. */
static double sum4(const double *q, int64_t m) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t k = 0;
    for (; k + 4 <= m; k += 4) {
        a0 += q[k];
        a1 += q[k + 1];
        a2 += q[k + 2];
        a3 += q[k + 3];
    }
    for (; k < m; k++) a0 += q[k];
    return (a0 + a1) + (a2 + a3);
}


/* bk__pointwise for the commonest ops inline (the same expressions) */
static inline double scalar_op(int op, double x, double y) {
    switch (op) {
    case BK_OP_ADD: return x + y;
    case BK_OP_SUB: return x - y;
    case BK_OP_MUL: return x * y;
    case BK_OP_DIV: return x / y;
    case BK_OP_EXP: return exp(x); /* (a positive parameter's transform) */
    case BK_OP_LOG: return log(x);
    case BK_OP_LT: return x < y; /* (a support check's mask: tau >= 0) */
    case BK_OP_LE: return x <= y;
    case BK_OP_GT: return x > y;
    case BK_OP_GE: return x >= y;
    default: return bk__pointwise(op, x, y);
    }
}

/* o[k] = a[k ia] OP b[k ib] with the strides as constants where they are
 * (a vector and a vector, or a vector and one element: a small model's
 * every op), so the loop indexes no stride */
#define MAP_LOOP(EXPR)                                                                  \
    do {                                                                                \
        if (ia == 1 && ib == 1)                                                         \
            for (int64_t k = 0; k < n; k++) { double x = a[k], y = b[k]; o[k] = EXPR; } \
        else if (ia == 1 && ib == 0)                                                    \
            for (int64_t k = 0; k < n; k++) { double x = a[k], y = b[0]; o[k] = EXPR; } \
        else if (ia == 0 && ib == 1)                                                    \
            for (int64_t k = 0; k < n; k++) { double x = a[0], y = b[k]; o[k] = EXPR; } \
        else                                                                            \
            for (int64_t k = 0; k < n; k++) {                                           \
                double x = a[k * ia], y = b[k * ib];                                    \
                o[k] = EXPR;                                                            \
            }                                                                           \
    } while (0)

static void forward_map(const nat_ins *J) {
    double *o = J->o;
    const int64_t n = J->n;
    const double *a = J->x[0], *b = J->x[1];
    const int64_t ia = J->inc[0], ib = J->inc[1];
    switch (J->nin == 1 ? -1 : J->op) { /* the commonest as plain loops */
    case BK_OP_ADD: MAP_LOOP(x + y); break;
    case BK_OP_SUB: MAP_LOOP(x - y); break;
    case BK_OP_MUL: MAP_LOOP(x * y); break;
    case BK_OP_DIV: MAP_LOOP(x / y); break;
    case -1: /* a unary op on a vector: the commonest inline (bk__pointwise's expressions) */
        switch (J->op) {
        case BK_OP_SQUARE: for (int64_t k = 0; k < n; k++) o[k] = a[k] * a[k]; break;
        case BK_OP_NEG: for (int64_t k = 0; k < n; k++) o[k] = -a[k]; break;
        case BK_OP_EXP: for (int64_t k = 0; k < n; k++) o[k] = exp(a[k]); break;
        case BK_OP_LOG: for (int64_t k = 0; k < n; k++) o[k] = log(a[k]); break;
        default: for (int64_t k = 0; k < n; k++) o[k] = bk__pointwise(J->op, a[k], 0);
        }
        break;
    default: for (int64_t k = 0; k < n; k++) o[k] = bk__pointwise(J->op, a[k * ia], b[k * ib]);
    }
}

/* J's forward; 0, or -1 when the op failed (program_native_ops.c's K_CALL) */
static int forward(bk_native *N, const nat_ins *J) {
    double *o = J->o;
    const int64_t n = J->n;
    switch (J->kind) {
    case K_SCALAR:
        o[0] = scalar_op(J->op, J->x[0][0], J->nin == 2 ? J->x[1][0] : 0);
        return 0;
    case K_MAP:
        forward_map(J);
        return 0;
    case K_WHERE:
        for (int64_t k = 0; k < n; k++)
            o[k] = J->x[0][k * J->inc[0]] != 0 ? J->x[1][k * J->inc[1]] : J->x[2][k * J->inc[2]];
        return 0;
    case K_FUSED:
        J->fused->forward(n, J->x, J->inc, o);
        return 0;
    case K_MATVEC:
        bk__dgemv(CblasNoTrans, J->m, J->k, J->x[0], J->k, J->x[1], 1, o); /* as mm_one_f64 */
        return 0;
    case K_SUM:
        o[0] = sum4(J->x[0], N->numel[J->src[0]]); /* (its one input is a slot) */
        return 0;
    default: /* program_native_ops.c's */
        return bk__natx_forward(N, J);
    }
}

/* ------------------------------------------------------------ backward --- */

/* Per slot, in N->has: the tape's has_adj (a scalar adjoint in N->as) and
 * has_grad (a tensor adjoint in N->at).  Only the flags are cleared per
 * replay: an adjoint is written, never added to, while its flag is off.
 * HAS_U (with HAS_T, a slot of several elements): the tensor adjoint is
 * one value repeated, held in its first element only, as a sum's gradient
 * is before anything else is added to it (the tape's stride-0 expansion):
 * a fused kernel reads it with stride 0, anything else expands it first. */
enum { HAS_S = 1, HAS_T = 2, HAS_U = 4 };

/* The tensor adjoint of slot s in full (its HAS_U value in every element). */
static void expand_fill(bk_native *N, int32_t s) {
    double *a = N->at + N->off[s];
    for (int64_t j = 1; j < N->numel[s]; j++) a[j] = a[0];
    N->has[s] &= (uint8_t)~HAS_U;
}

static inline void expand(bk_native *N, int32_t s) {
    if (N->has[s] & HAS_U) expand_fill(N, s);
}

/* The tensor adjoint of slot s += c (m elements: s's own, or its single
 * element gets the four-way sum of c), as tensor.c's accumulate. */
static inline void accumulate(bk_native *N, int32_t s, const double *c, int64_t m) {
    expand(N, s);
    double *a = N->at + N->off[s];
    bool had = N->has[s] & HAS_T;
    if (N->numel[s] == m) {
        if (m == 1)
            a[0] = had ? a[0] + c[0] : c[0];
        else if (had)
            for (int64_t k = 0; k < m; k++) a[k] += c[k];
        else
            memcpy(a, c, (size_t)m * sizeof *a);
    } else {
        double v = sum4(c, m);
        a[0] = had ? a[0] + v : v;
    }
    N->has[s] |= HAS_T;
}

void bk__nat_accumulate(bk_native *N, int32_t s, const double *c, int64_t m) { accumulate(N, s, c, m); }

/* d out / d input s of a scalar record, passed on as the tape does: to a
 * leaf's gradient (mode 2) or the scalar adjoint of the op that made it
 * (which starts at 0: the first contribution is 0 + v). */
static inline void pass_scalar(bk_native *N, int mode, int32_t s, double v) {
    if (mode == 2) {
        double *a = N->at + N->off[s];
        a[0] = N->has[s] & HAS_T ? a[0] + v : v;
        N->has[s] |= HAS_T;
    } else {
        N->as[s] = N->has[s] & HAS_S ? N->as[s] + v : 0.0 + v;
        N->has[s] |= HAS_S;
    }
}

/* The tape's compact scalar record: g times bk__pointwise_grad. */
static void backward_scalar(bk_native *N, const nat_ins *J) {
    int32_t s = J->out;
    uint8_t h = N->has[s];
    if (!h) return;
    double g = h & HAS_S ? N->as[s] : 0.0;
    if (h & HAS_T) g += J->ga[0];
    double x = J->x[0][0], y = J->nin == 2 ? J->x[1][0] : 0;
    bk_dpair d;
    switch (J->op) { /* bk__pointwise_grad's values, inline for the commonest */
    case BK_OP_ADD: d = (bk_dpair){{1, 1}}; break;
    case BK_OP_SUB: d = (bk_dpair){{1, -1}}; break;
    case BK_OP_MUL: d = (bk_dpair){{y, x}}; break;
    case BK_OP_DIV: d = (bk_dpair){{1 / y, -(J->o[0] / y)}}; break;
    case BK_OP_EXP: d = (bk_dpair){{J->o[0], 0}}; break;
    case BK_OP_LOG: d = (bk_dpair){{1 / x, 0}}; break;
    default: d = bk__pointwise_grad(J->op, x, y, J->o[0]);
    }
    if (J->pass[0]) pass_scalar(N, J->pass[0], J->src[0], g * d.d[0]);
    if (J->nin == 2 && J->pass[1]) pass_scalar(N, J->pass[1], J->src[1], g * d.d[1]);
}

/* The reverse sweep of a chain (find_chains), J its last member: as the
 * members' backward_scalar one after the other.  A member's output has one
 * use, the next member, so its scalar adjoint is 0 + g d and nothing else
 * (no tensor adjoint): the g of its own record. */
static void backward_chain(bk_native *N, const nat_ins *J) {
    uint8_t h = N->has[J->out];
    if (!h) return;
    double g = h & HAS_S ? N->as[J->out] : 0.0;
    if (h & HAS_T) g += J->ga[0];
    for (int32_t c = J->chain - 1;; c--, J--) {
        double d1 = J->op == BK_OP_SUB ? -1.0 : 1.0; /* (d0 is 1) */
        if (c == 0) { /* the first member: both inputs, as backward_scalar */
            if (J->pass[0]) pass_scalar(N, J->pass[0], J->src[0], g * 1.0);
            if (J->pass[1]) pass_scalar(N, J->pass[1], J->src[1], g * d1);
            return;
        }
        int q = J->cpos, o = 1 - q; /* (two slots: the order of the two does not matter) */
        if (J->pass[o]) pass_scalar(N, J->pass[o], J->src[o], g * (o ? d1 : 1.0));
        g = 0.0 + g * (q ? d1 : 1.0);
    }
}

/* A fused kernel's backward: the gradients of the inputs that need one. */
static void backward_fused(bk_native *N, const nat_ins *J, const double *g, int64_t ig) {
    const int64_t n = J->n;
    double *gx[BK_MAXIN] = {0};
    unsigned direct = 0;
    for (unsigned m = J->need; m; m &= m - 1) {
        int k = __builtin_ctz(m);
        int32_t sk = J->src[k];
        /* an input with no adjoint yet, of the output's size, and no other
         * input of this op: its adjoint is the kernel's result as it
         * stands (what accumulate() would copy), so the kernel writes it
         * there (a logistic regression's 10^4 logits: one copy less) */
        bool alone = (J->alone >> k & 1) && !(N->has[sk] & HAS_T);
        direct |= (unsigned)alone << k;
        gx[k] = alone ? N->at + N->off[sk] : N->scratch + k * N->maxn;
    }
    J->fused->backward(n, J->x, J->inc, J->o, g, ig, gx);
    for (unsigned m = J->need; m; m &= m - 1) {
        int k = __builtin_ctz(m);
        if (direct >> k & 1) N->has[J->src[k]] |= HAS_T;
        else accumulate(N, J->src[k], gx[k], n);
    }
}

/* A unary op's input gradient c = g f'(x) (n elements; g with stride ig),
 * bk__pointwise_grad's values inline for the commonest.  (Apart: inlined,
 * it would keep backward_input from being inlined in the sweep.) */
static __attribute__((noinline)) void unary_grad(const nat_ins *J, const double *g, int64_t ig, double *c) {
    const int64_t n = J->n;
    const double *a = J->x[0], *o = J->o;
/* (g's stride as a constant: the loops vectorize) */
#define UN_LOOP(D)                                                                     \
    do {                                                                               \
        if (ig == 0) {                                                                 \
            const double g0 = g[0];                                                    \
            for (int64_t j = 0; j < n; j++) c[j] = g0 * (D);                           \
        } else {                                                                       \
            for (int64_t j = 0; j < n; j++) c[j] = g[j] * (D);                         \
        }                                                                              \
    } while (0)
    switch (J->op) {
    case BK_OP_SQUARE: UN_LOOP(2 * a[j]); break;
    case BK_OP_NEG: UN_LOOP(-1.0); break;
    case BK_OP_EXP: UN_LOOP(o[j]); break;
    case BK_OP_LOG: UN_LOOP(1 / a[j]); break;
    default: UN_LOOP(bk__pointwise_grad(J->op, a[j], 0, o[j]).d[0]);
    }
#undef UN_LOOP
}

/* A unary op's backward with its output's adjoint uniform (HAS_U, a sum's
 * gradient: the square of MultivariateNormal's solved vector), read with
 * stride 0 instead of expanded first. */
static __attribute__((noinline)) void backward_unary_held(bk_native *N, const nat_ins *J, const double *g) {
    int32_t sk = J->src[0];
    bool direct = (J->alone & 1) && !(N->has[sk] & HAS_T);
    double *c = direct ? N->at + N->off[sk] : N->scratch;
    unary_grad(J, g, 0, c);
    if (direct) N->has[sk] |= HAS_T;
    else accumulate(N, sk, c, J->n);
}

/* Input k's contribution of a general record of the elementwise kinds and
 * the sum, with the tensor rules of ops_elementwise.c. */
static void backward_input(bk_native *N, const nat_ins *J, const double *g, int k) {
    const int64_t n = J->n;
    const double *o = J->o;
    /* as backward_fused: an input alone of the output's size with no
     * adjoint yet gets its contribution written in place (no copy) */
    int32_t sk = J->src[k];
    bool direct = (J->alone >> k & 1) && !(N->has[sk] & HAS_T) && J->kind != K_MATVEC;
    double *c = direct ? N->at + N->off[sk] : N->scratch;
    switch (J->kind) {
    case K_SUM: { /* accumulate() of g[0] * 1.0 in every element, in place */
        int32_t t = J->src[0];
        double *a = N->at + N->off[t], v = g[0] * 1.0;
        if (!(N->has[t] & HAS_T)) { /* v in every element: held once (HAS_U) */
            a[0] = v;
            N->has[t] |= N->numel[t] > 1 ? HAS_T | HAS_U : HAS_T;
            return;
        }
        expand(N, t);
        for (int64_t j = 0; j < N->numel[t]; j++) a[j] += v;
        return;
    }
    case K_MATVEC: /* d/dx = X^T g, as bk_bw_MATMUL computes it */
        bk__dgemv(CblasTrans, J->m, J->k, J->x[0], J->k, g, 1, c);
        accumulate(N, J->src[1], c, J->k);
        return;
    case K_WHERE:
        for (int64_t j = 0; j < n; j++) {
            bool t = J->x[0][j * J->inc[0]] != 0;
            c[j] = k == 1 ? (t ? g[j] : 0.0) : (t ? 0.0 : g[j]);
        }
        break;
    default: { /* K_MAP: the tensor rules of ops_elementwise.c */
        const double *a = J->x[0], *b = J->nin == 2 ? J->x[1] : NULL;
        int64_t ia = J->inc[0], ib = J->nin == 2 ? J->inc[1] : 0;
        switch (J->op) {
        case BK_OP_ADD: /* g itself (not a copy: another slot's adjoint, unchanged here) */
            accumulate(N, J->src[k], g, n);
            return;
        case BK_OP_SUB:
            for (int64_t j = 0; j < n; j++) c[j] = k == 0 ? g[j] : -g[j];
            break;
        case BK_OP_MUL: {
            const double *y = k == 0 ? b : a;
            int64_t iy = k == 0 ? ib : ia;
            if (iy == 0)
                for (int64_t j = 0; j < n; j++) c[j] = g[j] * y[0];
            else
                for (int64_t j = 0; j < n; j++) c[j] = g[j] * y[j];
            break;
        }
        case BK_OP_DIV:
            for (int64_t j = 0; j < n; j++) c[j] = k == 0 ? g[j] / b[j * ib] : g[j] * -(o[j] / b[j * ib]);
            break;
        default:
            unary_grad(J, g, 1, c);
        }
    }
    }
    if (direct) N->has[sk] |= HAS_T;
    else accumulate(N, sk, c, n);
}

/* J's backward (J->rg); 0, or -1 when the op failed (K_CALL) */
static int backward(bk_native *N, const nat_ins *J) {
    if (J->kind == K_SCALAR) {
        if (J->chain) backward_chain(N, J);
        else backward_scalar(N, J);
        return 0;
    }
    /* a general record: its gradient is the tensor adjoint plus the scalar one */
    int32_t s = J->out;
    uint8_t h = N->has[s];
    double *g = J->ga;
    if (h & HAS_S) {
        g[0] = h & HAS_T ? g[0] + N->as[s] : N->as[s];
        N->has[s] = h |= HAS_T;
    }
    if (!(h & HAS_T)) return 0;
    if (J->kind == K_FUSED) { /* (a uniform adjoint read with stride 0) */
        backward_fused(N, J, g, h & HAS_U ? 0 : J->n == 1 ? 0 : 1);
        return 0;
    }
    if (h & HAS_U) {
        if (J->kind == K_MAP && J->nin == 1) { /* (square after a sum: read, not filled) */
            if (J->need) backward_unary_held(N, J, g);
            return 0;
        }
        expand_fill(N, s);
    }
    if (J->kind >= K_BMAP) return bk__natx_backward(N, J, g);
    for (unsigned m = J->need; m; m &= m - 1) backward_input(N, J, g, __builtin_ctz(m));
    return 0;
}

/* -------------------------------------------------------------- replay --- */

static bool guard_ok(const bk_native *N, const prog_guard *g) {
    const double *v = N->val + N->off[g->slot];
    int64_t m = N->numel[g->slot];
    if (g->all) return g->all(g->kind, v, m);
    if (g->pred) {
        for (int64_t k = 0; k < m; k++)
            if (!g->pred(g->kind, v[k])) return false;
        return true;
    }
    for (int64_t k = 0; k < m; k++)
        if (v[k] != g->vals[k]) return false;
    return true;
}

/* A replay that stops (a guard, a failed op): nothing is kept. */
static int natx_fail(bk_native *N) {
    bk__natx_done(N);
    return 1;
}

int bk__native_run(bk_prog *p, bk_native *N, bk_prog_io *io) {
    for (size_t i = 0; i < p->ninputs; i++) {
        const prog_input *in = &p->inputs[i];
        double *v = N->val + N->off[in->slot];
        if (in->noise) /* as bk_rand_normal */
            for (int64_t k = 0; k < in->numel; k++) v[k] = bk_rng_normal(io->rng);
        else if (in->numel == 1)
            v[0] = io->x[in->offset];
        else
            memcpy(v, io->x + in->offset, (size_t)in->numel * sizeof(double));
    }
    for (size_t i = 0; N->input_guards && i < p->nguards; i++)
        if (p->guards[i].on_input && !guard_ok(N, &p->guards[i])) return 1;
    const nat_ins *const ins = N->ins, *const end = ins + N->nins;
    for (const nat_ins *J = ins; J < end; J++) {
        if (J->kind == K_SCALAR) /* (the commonest in a small model: no call) */
            J->o[0] = scalar_op(J->op, J->x[0][0], J->nin == 2 ? J->x[1][0] : 0);
        else if (forward(N, J))
            return natx_fail(N);
        for (int32_t g = J->guard; g; g = p->guards[g - 1].next)
            if (!guard_ok(N, &p->guards[g - 1])) return natx_fail(N);
    }
    if (io->outs) {
        double *v = io->outs;
        for (size_t i = 0; i < p->nouts; i++) {
            const prog_out *o = &p->outs[i];
            if (o->slot >= 0) memcpy(v, N->val + N->off[o->slot], (size_t)o->numel * sizeof *v);
            else bk_copy_out(o->konst, v);
            v += o->numel;
        }
    }
    if (p->out < 0) {
        io->value = NAN;
        return 0;
    }
    io->value = N->val[N->off[p->out]];
    if (p->result >= 0) io->result = N->val[N->off[p->result]];
    double *grad = io->grad;
    if (!grad) {
        bk__natx_done(N);
        return 0;
    }
    memset(N->has, 0, (size_t)N->nslots);
    N->as[p->out] = 1.0; /* the seed d out / d out */
    N->has[p->out] = HAS_S;
    for (const nat_ins *J = end; J-- > ins;)
        if (J->bw && backward(N, J)) return natx_fail(N);
    bk__natx_done(N);
    for (size_t i = 0; i < p->ninputs; i++) {
        const prog_input *in = &p->inputs[i];
        /* (a noise input does not need a gradient: its slot is never passed one) */
        bool got = (N->has[in->slot] & HAS_T) && N->rg[in->slot];
        if (io->has) io->has[i] = got;
        if (in->noise) continue;
        double *gi = grad + in->offset;
        if (got) expand(N, in->slot);
        const double *a = N->at + N->off[in->slot];
        if (in->numel == 1) gi[0] = got ? a[0] : 0.0;
        else if (got) memcpy(gi, a, (size_t)in->numel * sizeof *grad);
        else memset(gi, 0, (size_t)in->numel * sizeof *grad);
    }
    return 0;
}

int bk__native_kind(const bk_prog *p, size_t i) {
    return p && p->nat && i < p->nat->nins ? p->nat->ins[i].kind : -1;
}

int bk__native_chain(const bk_prog *p, size_t i) {
    return p && p->nat && i < p->nat->nins ? p->nat->ins[i].chain : 0;
}
