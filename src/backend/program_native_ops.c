/* program_native_ops.c - the compiled replay's kinds beyond the elementwise
 * ones of program_native.c: pointwise ops broadcast over any shapes,
 * reductions and scans along an axis, indexing and the other ops that
 * pick elements (expand, reshape, transpose), concat and stack, a constant
 * triangular matrix solving a vector, and, for
 * any other op (the HMM forward algorithm, say), a call of its own kernel
 * and backward rule on tensors that live as long as the program.
 *
 * Bit-identity with the tape, as in program_native.c: each kind computes
 * its op's kernel and backward rule with the same expressions in the same
 * order (ops_elementwise.c, ops_reduce.c, ops_index.c, ops_shape.c), and a
 * gradient of the output's shape goes down to a broadcast input's shape
 * by the same sequence of axis sums as bk_sum_to. */
#include <math.h>
#include <string.h>
#include "ops_impl.h"
#include "program_native.h"

enum { BW_SCATTER, BW_PERMUTE, BW_SUMTO }; /* how a K_GATHER's gradient goes back */

struct natx {
    int ndim;                         /* the output's shape */
    int64_t shape[BK_MAXDIM];
    int ind[BK_MAXIN];                /* the inputs' shapes */
    int64_t ishape[BK_MAXIN][BK_MAXDIM];
    int64_t st[BK_MAXIN][BK_MAXDIM];  /* K_BMAP: input strides along the output's axes (0: repeated) */
    int64_t outer, len, inner;        /* K_RED, K_SCAN: the input as [outer, len, inner];
                                         K_CONCAT: outer; K_SOLVE: len = n */
    bool upper, trans, unit;          /* K_SOLVE: solve_triangular's flags */
    int64_t block[BK_MAXIN];          /* K_CONCAT: elements of each input per outer row */
    int64_t *offs;                    /* K_GATHER: out[i] = x[offs[i]] */
    int bw;                           /* K_GATHER: BW_* */
    bk_tensor *tin[BK_MAXIN];         /* K_CALL: the inputs (a slot's refilled at each replay) */
    bk_tensor *tout;                  /* K_CALL: the forward's output, until the backward */
    const bk_opargs *args;            /* K_CALL */
};

static const bk_opargs no_args; /* (constant: an op recorded without arguments) */

void bk__natx_free(bk_ctx *ctx, natx *x) {
    if (!x) return;
    for (int k = 0; k < BK_MAXIN; k++) bk_release(x->tin[k]);
    bk_release(x->tout);
    bk_free(ctx, x->offs);
    bk_free(ctx, x);
}

void bk__natx_done(bk_native *N) {
    for (size_t i = 0; N->ncall && i < N->nins; i++)
        if (N->ins[i].kind == K_CALL && N->ins[i].ext) {
            bk_release(N->ins[i].ext->tout);
            N->ins[i].ext->tout = NULL;
        }
}

/* ------------------------------------------------------------- shapes --- */

static int64_t prod(const int64_t *s, int from, int to) {
    int64_t n = 1;
    for (int d = from; d < to; d++) n *= s[d];
    return n;
}

/* Row-major strides of shape, 0 along axes of length 1 (broadcast). */
static void bcast_strides(int nd, const int64_t *shape, int ond, int64_t *st) {
    int64_t s = 1;
    for (int d = ond - 1; d >= 0; d--) {
        int td = d - (ond - nd);
        st[d] = td < 0 || shape[td] == 1 ? 0 : s;
        if (td >= 0) s *= shape[td];
    }
}

/* in broadcasts to (ond, oshape) as NumPy. */
static bool broadcasts(int nd, const int64_t *shape, int ond, const int64_t *oshape) {
    if (nd > ond) return false;
    for (int d = 0; d < nd; d++) {
        int64_t a = shape[d], b = oshape[d + ond - nd];
        if (a != b && a != 1) return false;
    }
    return true;
}

/* ops_reduce.c's SUM_ROW: n elements q[k * inc], four partial sums when
 * contiguous. */
static double sum_row(const double *q, int64_t n, int64_t inc) {
    double a4[4] = {0, 0, 0, 0};
    int64_t k = 0;
    if (inc == 1) {
        for (; k + 4 <= n; k += 4)
            for (int u = 0; u < 4; u++) a4[u] += q[k + u];
        for (; k < n; k++) a4[0] += q[k];
    } else {
        for (; k < n; k++) a4[0] += q[k * inc];
    }
    return (a4[0] + a4[1]) + (a4[2] + a4[3]);
}

/* The SUM kernel along the middle axis of p as [outer, n, inner]. */
static void sum_axis(const double *p, int64_t outer, int64_t n, int64_t inner, double *o) {
    for (int64_t i = 0; i < outer; i++)
        for (int64_t j = 0; j < inner; j++) o[i * inner + j] = sum_row(p + i * n * inner + j, n, inner);
}

/* g, shaped (gnd, gshape), summed down to (nd, shape) by bk_sum_to's axis
 * sums: leading axes one by one, then each axis of length 1 in shape.
 * Returns the buffer holding the result: g, t0 or t1 (each as large as g). */
static const double *sum_to(const double *g, int gnd, const int64_t *gshape, int nd, const int64_t *shape,
                            double *t0, double *t1) {
    int64_t cs[BK_MAXDIM];
    int cnd = gnd;
    memcpy(cs, gshape, (size_t)gnd * sizeof *cs);
    const double *cur = g;
    double *next = t0;
    while (cnd > nd) {
        sum_axis(cur, 1, cs[0], prod(cs, 1, cnd), next);
        memmove(cs, cs + 1, (size_t)(cnd - 1) * sizeof *cs);
        cnd--;
        cur = next;
        next = next == t0 ? t1 : t0;
    }
    for (int d = 0; d < nd; d++)
        if (shape[d] == 1 && cs[d] != 1) {
            sum_axis(cur, prod(cs, 0, d), cs[d], prod(cs, d + 1, cnd), next);
            cs[d] = 1;
            cur = next;
            next = next == t0 ? t1 : t0;
        }
    return cur;
}

/* ---------------------------------------------------------- compiling --- */

/* Pointwise ops whose tensor backward rule (ops_elementwise.c) gives, per
 * element, g * bk__pointwise_grad (ADD, SUB and DIV are written out in
 * the sweep: g, -g, g / b). */
static bool bmap_rule_known(int op) {
    switch (op) {
    case BK_OP_ADD: case BK_OP_SUB: case BK_OP_MUL: case BK_OP_DIV: case BK_OP_POW:
    case BK_OP_MAXIMUM: case BK_OP_MINIMUM:
    case BK_OP_NEG: case BK_OP_ABS: case BK_OP_EXP: case BK_OP_LOG: case BK_OP_LOG1P:
    case BK_OP_EXPM1: case BK_OP_SQRT: case BK_OP_SQUARE: case BK_OP_SIGMOID: case BK_OP_LOGIT:
    case BK_OP_SOFTPLUS: case BK_OP_LOG_SIGMOID: case BK_OP_TANH: case BK_OP_RELU:
    case BK_OP_SIN: case BK_OP_COS: case BK_OP_LGAMMA: case BK_OP_DIGAMMA: case BK_OP_ERF:
    case BK_OP_ERFC: case BK_OP_WHERE:
        return true;
    default:
        return false;
    }
}

static int compile_bmap(natx *x, const prog_ins *I, bk_tensor *const *in, const bk_tensor *out) {
    int op = I->op;
    bool pointwise = op >= 0 && op < BK_OP_COUNT && bk__pointwise_arity[op] == I->nin;
    if (!pointwise && !(op == BK_OP_WHERE && I->nin == 3)) return -1;
    if (out->requires_grad && !bmap_rule_known(op)) return -1;
    for (int k = 0; k < I->nin; k++) {
        if (!broadcasts(in[k]->ndim, in[k]->shape, out->ndim, out->shape)) return -1;
        bcast_strides(in[k]->ndim, in[k]->shape, out->ndim, x->st[k]);
    }
    return K_BMAP;
}

/* get_layout of ops_reduce.c: in as [outer, len, inner] around the axis */
static int compile_layout(natx *x, const bk_tensor *in, int64_t axis, bool scan) {
    if (axis == BK_ALL_AXES && !scan) {
        x->outer = x->inner = 1;
        x->len = in->numel;
        return 0;
    }
    int64_t a = axis < 0 ? axis + in->ndim : axis;
    if (in->ndim == 0 && (a == 0 || a == -1)) {
        x->outer = x->len = x->inner = 1;
        return 0;
    }
    if (a < 0 || a >= in->ndim) return -1;
    x->outer = prod(in->shape, 0, (int)a);
    x->len = in->shape[a];
    x->inner = prod(in->shape, (int)a + 1, in->ndim);
    return 0;
}

static int compile_red(natx *x, const bk_prog *p, const prog_ins *I, bk_tensor *const *in) {
    const bk_opargs *a = I->args ? &p->args[I->args - 1] : &no_args;
    switch (I->op) {
    case BK_OP_SUM: case BK_OP_MEAN: case BK_OP_MAX: case BK_OP_MIN: case BK_OP_PROD: case BK_OP_LOGSUMEXP:
        if (compile_layout(x, in[0], a->axis, false)) return -1;
        return (I->op == BK_OP_MAX || I->op == BK_OP_MIN) && x->len == 0 ? -1 : K_RED;
    case BK_OP_CUMSUM: case BK_OP_SOFTMAX: case BK_OP_LOG_SOFTMAX:
        return compile_layout(x, in[0], a->axis, true) ? -1 : K_SCAN;
    default:
        return -1;
    }
}

/* The offsets of an op that picks elements of its input; -1 when it is
 * none (or out of memory). */
static int compile_gather(bk_native *N, natx *x, const bk_prog *p, const prog_ins *I, bk_tensor *const *in,
                          const bk_tensor *out) {
    const bk_opargs *a = I->args ? &p->args[I->args - 1] : &no_args;
    const bk_tensor *src = in[0];
    int64_t n = out->numel, count = -1;
    switch (I->op) {
    case BK_OP_INDEX_SELECT:
    case BK_OP_GATHER:
        if (I->nin != 2 || p->srcs[I->src + 1] >= 0) return -1; /* a constant index */
        /* fall through */
    case BK_OP_INDEX:
        x->offs = bk__index_offsets(N->ctx, I->op, src, I->nin == 2 ? in[1] : NULL, a, &count);
        x->bw = BW_SCATTER;
        break;
    case BK_OP_EXPAND:
    case BK_OP_TRANSPOSE:
    case BK_OP_RESHAPE:
    case BK_OP_CONTIGUOUS:
    case BK_OP_CAST: {
        /* out[i] reads src at the strides of a contiguous src, seen as out */
        int64_t st[BK_MAXDIM], idx[BK_MAXDIM] = {0};
        bool flat = I->op == BK_OP_RESHAPE || I->op == BK_OP_CONTIGUOUS || I->op == BK_OP_CAST;
        if (flat && src->numel != n) return -1;
        if (I->op == BK_OP_EXPAND) {
            if (!broadcasts(src->ndim, src->shape, out->ndim, out->shape)) return -1;
            bcast_strides(src->ndim, src->shape, out->ndim, st);
        } else if (I->op == BK_OP_TRANSPOSE) {
            int64_t d0 = a->axis < 0 ? a->axis + src->ndim : a->axis;
            int64_t d1 = a->axis2 < 0 ? a->axis2 + src->ndim : a->axis2;
            if (d0 < 0 || d0 >= src->ndim || d1 < 0 || d1 >= src->ndim || out->ndim != src->ndim) return -1;
            for (int d = src->ndim - 1; d >= 0; d--) st[d] = d == src->ndim - 1 ? 1 : st[d + 1] * src->shape[d + 1];
            int64_t t = st[d0];
            st[d0] = st[d1];
            st[d1] = t;
        }
        x->offs = bk_malloc(N->ctx, (size_t)(n ? n : 1) * sizeof *x->offs);
        if (!x->offs) return -1;
        for (int64_t i = 0; i < n; i++) {
            if (flat) {
                x->offs[i] = i;
                continue;
            }
            int64_t off = 0;
            for (int d = 0; d < out->ndim; d++) off += idx[d] * st[d];
            x->offs[i] = off;
            for (int d = out->ndim - 1; d >= 0; d--) {
                if (++idx[d] < out->shape[d]) break;
                idx[d] = 0;
            }
        }
        count = n;
        x->bw = I->op == BK_OP_EXPAND ? BW_SUMTO : BW_PERMUTE;
        break;
    }
    default:
        return -1;
    }
    if (!x->offs || count != n) return -1;
    for (int64_t i = 0; i < n; i++)
        if (x->offs[i] < 0 || x->offs[i] >= src->numel) return -1;
    return K_GATHER;
}

static int compile_concat(natx *x, const bk_prog *p, const prog_ins *I, bk_tensor *const *in,
                          const bk_tensor *out) {
    if (I->op != BK_OP_CONCAT && I->op != BK_OP_STACK) return -1;
    const bk_opargs *a = I->args ? &p->args[I->args - 1] : &no_args;
    if (a->n != I->nin || out->ndim == 0) return -1;
    int64_t axis = a->axis < 0 ? a->axis + out->ndim : a->axis;
    if (axis < 0 || axis >= out->ndim) return -1;
    x->outer = prod(out->shape, 0, (int)axis);
    int64_t inner = prod(out->shape, (int)axis + 1, out->ndim), total = 0;
    for (int k = 0; k < I->nin; k++) {
        int64_t along = I->op == BK_OP_CONCAT ? (in[k]->ndim == out->ndim ? in[k]->shape[axis] : -1) : 1;
        if (along < 0) return -1;
        x->block[k] = along * inner;
        total += x->block[k];
        if (x->block[k] * x->outer != in[k]->numel) return -1;
    }
    return total * x->outer == out->numel ? K_CONCAT : -1;
}

/* A constant triangular matrix [n, n] solving a vector b [n] (a slot):
 * solve_triangular's one-right-hand-side loops, called on the program's
 * buffers as solve_batches calls them (no tensor, no copy in and out). */
static int compile_solve(natx *x, const bk_prog *p, const prog_ins *I, bk_tensor *const *in,
                         const bk_tensor *out) {
    if (I->op != BK_OP_SOLVE_TRIANGULAR || I->nin != 2 || p->srcs[I->src] >= 0 || p->srcs[I->src + 1] < 0)
        return -1;
    const bk_tensor *A = in[0], *b = in[1];
    if (A->ndim != 2 || A->shape[0] != A->shape[1] || A->shape[0] < 1 || b->ndim != 1 ||
        b->shape[0] != A->shape[0] || out->numel != b->numel)
        return -1;
    const bk_opargs *a = I->args ? &p->args[I->args - 1] : &no_args;
    x->len = A->shape[0];
    x->upper = a->upper != 0;
    x->trans = a->trans != 0;
    x->unit = a->unit != 0;
    return K_SOLVE;
}

/* Any op with a CPU kernel, called on tensors the program keeps. */
static int compile_call(bk_native *N, natx *x, const bk_prog *p, const prog_ins *I, bk_tensor *const *in,
                        const bk_tensor *out) {
    if (I->op < 0 || I->op >= BK_OP_COUNT || I->op == BK_OP_FUSED) return -1;
    if (out->requires_grad && !bk_optable[I->op].backward) return -1;
    x->args = I->args ? &p->args[I->args - 1] : &no_args;
    for (int k = 0; k < I->nin; k++) {
        int32_t s = p->srcs[I->src + k];
        if (s < 0) {
            x->tin[k] = bk_retain(in[k]);
            continue;
        }
        x->tin[k] = bk_empty(N->ctx, BK_F64, in[k]->ndim, in[k]->shape);
        if (!x->tin[k]) return -1;
        bk_set_requires_grad(x->tin[k], N->rg[s]);
    }
    return K_CALL;
}

int bk__natx_compile(bk_native *N, const bk_prog *p, const prog_ins *I, bk_tensor *const *in,
                     const bk_tensor *out, nat_ins *J) {
    natx *x = bk_malloc(N->ctx, sizeof *x);
    if (!x) return -1;
    memset(x, 0, sizeof *x);
    x->ndim = out->ndim;
    memcpy(x->shape, out->shape, sizeof x->shape);
    for (int k = 0; k < I->nin && k < BK_MAXIN; k++) {
        x->ind[k] = in[k]->ndim;
        memcpy(x->ishape[k], in[k]->shape, sizeof x->ishape[k]);
    }
    int kind = compile_bmap(x, I, in, out);
    if (kind < 0) kind = compile_red(x, p, I, in);
    if (kind < 0) kind = compile_gather(N, x, p, I, in, out);
    if (kind < 0) kind = compile_concat(x, p, I, in, out);
    if (kind < 0) kind = compile_solve(x, p, I, in, out);
    if (kind < 0) kind = compile_call(N, x, p, I, in, out);
    if (kind < 0) {
        bk__natx_free(N->ctx, x);
        return -1;
    }
    J->ext = x;
    return kind;
}

/* ------------------------------------------------------------- forward --- */

/* The rows of a K_BMAP's output (its last axis; one row for a 0-d
 * output): input k's elements of row r start at off[k] and step by
 * x->st[k][last].  next_row moves off[] to the next row, walking the other
 * axes in row-major order. */
static inline int64_t row_len(const natx *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }
static inline int64_t row_step(const natx *x, int k) { return x->ndim ? x->st[k][x->ndim - 1] : 0; }

static inline void next_row(const natx *x, int nin, int64_t *idx, int64_t *off) {
    for (int d = x->ndim - 2; d >= 0; d--) {
        for (int k = 0; k < nin; k++) off[k] += x->st[k][d];
        if (++idx[d] < x->shape[d]) return;
        for (int k = 0; k < nin; k++) off[k] -= x->st[k][d] * x->shape[d];
        idx[d] = 0;
    }
}

static void fw_bmap(const nat_ins *J) {
    const natx *x = J->ext;
    const int64_t L = row_len(x), R = L ? J->n / L : 0;
    const int64_t sa = row_step(x, 0), sb = J->nin > 1 ? row_step(x, 1) : 0, sc = J->nin > 2 ? row_step(x, 2) : 0;
    int64_t idx[BK_MAXDIM] = {0}, off[3] = {0, 0, 0};
    for (int64_t r = 0; r < R; r++, next_row(x, J->nin, idx, off)) {
        const double *a = J->x[0] + off[0];
        double *o = J->o + r * L;
        if (J->nin == 1) {
            for (int64_t j = 0; j < L; j++) o[j] = bk__pointwise(J->op, a[j * sa], 0);
            continue;
        }
        const double *b = J->x[1] + off[1];
        switch (J->op) { /* the commonest as plain loops (bk__pointwise's expressions) */
        case BK_OP_ADD: for (int64_t j = 0; j < L; j++) o[j] = a[j * sa] + b[j * sb]; break;
        case BK_OP_SUB: for (int64_t j = 0; j < L; j++) o[j] = a[j * sa] - b[j * sb]; break;
        case BK_OP_MUL: for (int64_t j = 0; j < L; j++) o[j] = a[j * sa] * b[j * sb]; break;
        case BK_OP_DIV: for (int64_t j = 0; j < L; j++) o[j] = a[j * sa] / b[j * sb]; break;
        case BK_OP_WHERE: {
            const double *c = J->x[2] + off[2];
            for (int64_t j = 0; j < L; j++) o[j] = a[j * sa] != 0 ? b[j * sb] : c[j * sc];
            break;
        }
        default: for (int64_t j = 0; j < L; j++) o[j] = bk__pointwise(J->op, a[j * sa], b[j * sb]);
        }
    }
}

static void fw_red(const nat_ins *J) {
    const natx *x = J->ext;
    const double *p = J->x[0];
    const int64_t L = x->len, inner = x->inner;
    for (int64_t i = 0; i < x->outer; i++)
        for (int64_t j = 0; j < inner; j++) {
            const double *q = p + i * L * inner + j;
            double acc;
            switch (J->op) {
            case BK_OP_SUM:
            case BK_OP_MEAN:
                acc = sum_row(q, L, inner);
                if (J->op == BK_OP_MEAN) acc = L ? acc / (double)L : NAN;
                break;
            case BK_OP_MAX:
            case BK_OP_MIN:
                acc = q[0];
                for (int64_t k = 1; k < L; k++) {
                    double v = q[k * inner];
                    if (isnan(v) || (J->op == BK_OP_MAX ? v > acc : v < acc)) acc = v;
                    if (isnan(acc)) break;
                }
                break;
            case BK_OP_PROD:
                acc = 1;
                for (int64_t k = 0; k < L; k++) acc *= q[k * inner];
                break;
            default: { /* LOGSUMEXP */
                double m = -INFINITY;
                for (int64_t k = 0; k < L; k++) m = fmax(m, q[k * inner]);
                if (isinf(m)) {
                    acc = m;
                    break;
                }
                double s = 0;
                for (int64_t k = 0; k < L; k++) s += exp(q[k * inner] - m);
                acc = m + log(s);
            }
            }
            J->o[i * inner + j] = acc;
        }
}

static void fw_scan(const nat_ins *J) {
    const natx *x = J->ext;
    const int64_t L = x->len, inner = x->inner;
    for (int64_t i = 0; i < x->outer; i++)
        for (int64_t j = 0; j < inner; j++) {
            const double *q = J->x[0] + i * L * inner + j;
            double *o = J->o + i * L * inner + j;
            if (J->op == BK_OP_CUMSUM) {
                double s = 0;
                for (int64_t k = 0; k < L; k++) o[k * inner] = s += q[k * inner];
                continue;
            }
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < L; k++) m = fmax(m, q[k * inner]);
            for (int64_t k = 0; k < L; k++) s += exp(q[k * inner] - m);
            double lse = m + log(s);
            for (int64_t k = 0; k < L; k++) {
                double v = q[k * inner] - lse;
                o[k * inner] = J->op == BK_OP_SOFTMAX ? exp(v) : v;
            }
        }
}

static void fw_concat(const nat_ins *J) {
    const natx *x = J->ext;
    int64_t total = 0, col = 0;
    for (int k = 0; k < J->nin; k++) total += x->block[k];
    for (int k = 0; k < J->nin; k++) {
        for (int64_t r = 0; r < x->outer && x->block[k] > 0; r++)
            memcpy(J->o + r * total + col, J->x[k] + r * x->block[k], (size_t)x->block[k] * sizeof(double));
        col += x->block[k];
    }
}

/* x = op(A)^-1 b: b copied into the output, solved there (solve_batches);
 * -1 on a zero diagonal entry (the interpreted op raises the error). */
static int fw_solve(const nat_ins *J) {
    const natx *x = J->ext;
    memcpy(J->o, J->x[1], (size_t)x->len * sizeof *J->o);
    return bk__trsv(x->len, J->x[0], x->upper, x->trans, x->unit, J->o) ? 0 : -1;
}

static int fw_call(bk_native *N, const nat_ins *J) {
    natx *x = J->ext;
    for (int k = 0; k < J->nin; k++)
        if (J->src[k] >= 0) memcpy(bk_data(x->tin[k]), J->x[k], (size_t)x->tin[k]->numel * sizeof(double));
    bk_release(x->tout);
    bool grad = bk_set_grad_enabled(N->ctx, false); /* (a kernel records nothing) */
    x->tout = bk_optable[J->op].forward(N->ctx, x->tin, x->args);
    bk_set_grad_enabled(N->ctx, grad);
    if (!x->tout) return -1;
    if (x->tout->numel != J->n || x->tout->dtype != BK_F64 || x->tout->st->dev != &bk_cpu_device) return -1;
    bk_copy_out(x->tout, J->o);
    return 0;
}

int bk__natx_forward(bk_native *N, const nat_ins *J) {
    switch (J->kind) {
    case K_BMAP: fw_bmap(J); return 0;
    case K_RED: fw_red(J); return 0;
    case K_SCAN: fw_scan(J); return 0;
    case K_GATHER:
        for (int64_t i = 0; i < J->n; i++) J->o[i] = J->x[0][J->ext->offs[i]];
        return 0;
    case K_CONCAT: fw_concat(J); return 0;
    case K_SOLVE: return fw_solve(J);
    case K_CALL: return fw_call(N, J);
    default: return -1;
    }
}

/* ------------------------------------------------------------ backward --- */

/* Input k's contribution c, shaped as the output, summed down to input k's
 * shape and accumulated. */
static void give(bk_native *N, const nat_ins *J, int k, const double *c) {
    const natx *x = J->ext;
    double *t0 = N->scratch + N->maxn, *t1 = N->scratch + 2 * N->maxn;
    const double *r = sum_to(c, x->ndim, x->shape, x->ind[k], x->ishape[k], t0, t1);
    bk__nat_accumulate(N, J->src[k], r, N->numel[J->src[k]]);
}

static bool wants(const bk_native *N, const nat_ins *J, int k) { return J->src[k] >= 0 && N->rg[J->src[k]]; }

/* Input k's gradient, shaped as the output, into c (the rules of
 * ops_elementwise.c per element). */
static void bmap_grad(const nat_ins *J, int k, const double *g, double *c) {
    const natx *x = J->ext;
    const int64_t L = row_len(x), R = L ? J->n / L : 0;
    const int64_t sa = row_step(x, 0), sb = J->nin > 1 ? row_step(x, 1) : 0;
    int64_t idx[BK_MAXDIM] = {0}, off[3] = {0, 0, 0};
    for (int64_t r = 0; r < R; r++, next_row(x, J->nin, idx, off)) {
        const double *a = J->x[0] + off[0], *b = J->nin > 1 ? J->x[1] + off[1] : NULL;
        const double *gr = g + r * L, *o = J->o + r * L;
        double *cr = c + r * L;
        switch (J->op) {
        case BK_OP_ADD: memcpy(cr, gr, (size_t)L * sizeof *cr); break;
        case BK_OP_SUB: for (int64_t j = 0; j < L; j++) cr[j] = k == 0 ? gr[j] : -gr[j]; break;
        case BK_OP_MUL: for (int64_t j = 0; j < L; j++) cr[j] = k == 0 ? gr[j] * b[j * sb] : gr[j] * a[j * sa]; break;
        case BK_OP_DIV:
            for (int64_t j = 0; j < L; j++) cr[j] = k == 0 ? gr[j] / b[j * sb] : gr[j] * -(o[j] / b[j * sb]);
            break;
        case BK_OP_WHERE: for (int64_t j = 0; j < L; j++) cr[j] = (a[j * sa] != 0) == (k == 1) ? gr[j] : 0.0; break;
        default:
            for (int64_t j = 0; j < L; j++)
                cr[j] = gr[j] * bk__pointwise_grad(J->op, a[j * sa], b ? b[j * sb] : 0, o[j]).d[k];
        }
    }
}

static void bw_bmap(bk_native *N, const nat_ins *J, const double *g) {
    for (int k = 0; k < J->nin; k++) {
        if (!wants(N, J, k) || (J->op == BK_OP_WHERE && k == 0)) continue;
        bmap_grad(J, k, g, N->scratch);
        give(N, J, k, N->scratch);
    }
}

/* bw_sum and bw_reduce of ops_reduce.c */
static void bw_red(bk_native *N, const nat_ins *J, const double *g) {
    const natx *x = J->ext;
    const int64_t L = x->len, inner = x->inner;
    const double *p = J->x[0], *od = J->o;
    double *r = N->scratch;
    if (J->op == BK_OP_SUM || J->op == BK_OP_MEAN) {
        double w = J->op == BK_OP_MEAN ? 1.0 / (double)L : 1.0;
        for (int64_t i = 0; i < x->outer; i++)
            for (int64_t k = 0; k < L; k++)
                for (int64_t j = 0; j < inner; j++) r[(i * L + k) * inner + j] = g[i * inner + j] * w;
    } else {
        for (int64_t i = 0; i < x->outer; i++)
            for (int64_t j = 0; j < inner; j++) {
                const double *q = p + i * L * inner + j;
                double *o = r + i * L * inner + j;
                double gv = g[i * inner + j], ov = od[i * inner + j];
                if (J->op == BK_OP_PROD) {
                    double pre = 1, suf = 1;
                    for (int64_t k = 0; k < L; k++) {
                        o[k * inner] = pre;
                        pre *= q[k * inner];
                    }
                    for (int64_t k = L; k-- > 0;) {
                        o[k * inner] = gv * (o[k * inner] * suf);
                        suf *= q[k * inner];
                    }
                    continue;
                }
                int64_t pick = -1;
                if (J->op == BK_OP_MAX || J->op == BK_OP_MIN)
                    for (int64_t k = 0; k < L && pick < 0; k++)
                        if (q[k * inner] == ov || (isnan(ov) && isnan(q[k * inner]))) pick = k;
                for (int64_t k = 0; k < L; k++) {
                    double w = J->op == BK_OP_LOGSUMEXP ? (isinf(ov) && ov < 0 ? 0 : exp(q[k * inner] - ov))
                                                         : (double)(k == pick);
                    o[k * inner] = gv * w;
                }
            }
    }
    bk__nat_accumulate(N, J->src[0], r, N->numel[J->src[0]]);
}

/* bw_scan of ops_reduce.c */
static void bw_scan(bk_native *N, const nat_ins *J, const double *g) {
    const natx *x = J->ext;
    const int64_t L = x->len, inner = x->inner;
    double *r = N->scratch;
    for (int64_t i = 0; i < x->outer; i++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t base = i * L * inner + j;
            const double *gd = g + base, *od = J->o + base;
            double *o = r + base;
            if (J->op == BK_OP_CUMSUM) {
                double s = 0;
                for (int64_t k = L; k-- > 0;) o[k * inner] = s += gd[k * inner];
            } else if (J->op == BK_OP_SOFTMAX) {
                double dot = 0;
                for (int64_t k = 0; k < L; k++) dot += gd[k * inner] * od[k * inner];
                for (int64_t k = 0; k < L; k++) o[k * inner] = od[k * inner] * (gd[k * inner] - dot);
            } else {
                double sg = 0;
                for (int64_t k = 0; k < L; k++) sg += gd[k * inner];
                for (int64_t k = 0; k < L; k++) o[k * inner] = gd[k * inner] - exp(od[k * inner]) * sg;
            }
        }
    bk__nat_accumulate(N, J->src[0], r, N->numel[J->src[0]]);
}

static void bw_gather(bk_native *N, const nat_ins *J, const double *g) {
    const natx *x = J->ext;
    if (x->bw == BW_SUMTO) {
        give(N, J, 0, g);
        return;
    }
    double *c = N->scratch;
    int64_t m = N->numel[J->src[0]];
    if (x->bw == BW_SCATTER) { /* zeros, then g added at the offsets (scatter_add) */
        memset(c, 0, (size_t)m * sizeof *c);
        for (int64_t i = 0; i < J->n; i++) c[x->offs[i]] += g[i];
    } else { /* the gradient itself, rearranged (a view of it) */
        for (int64_t i = 0; i < J->n; i++) c[x->offs[i]] = g[i];
    }
    bk__nat_accumulate(N, J->src[0], c, m);
}

static void bw_concat(bk_native *N, const nat_ins *J, const double *g) {
    const natx *x = J->ext;
    int64_t total = 0, col = 0;
    double *c = N->scratch;
    for (int k = 0; k < J->nin; k++) total += x->block[k];
    for (int k = 0; k < J->nin; k++) {
        if (wants(N, J, k)) {
            for (int64_t r = 0; r < x->outer && x->block[k] > 0; r++)
                memcpy(c + r * x->block[k], g + r * total + col, (size_t)x->block[k] * sizeof *c);
            bk__nat_accumulate(N, J->src[k], c, N->numel[J->src[k]]);
        }
        col += x->block[k];
    }
}

/* d/db = op(A)^-T g: bk_bw_SOLVE_TRIANGULAR's second solve (the op with
 * trans flipped, on g); A is a constant and gets none. */
static int bw_solve(bk_native *N, const nat_ins *J, const double *g) {
    const natx *x = J->ext;
    if (!wants(N, J, 1)) return 0;
    double *c = N->scratch;
    memcpy(c, g, (size_t)x->len * sizeof *c);
    if (!bk__trsv(x->len, J->x[0], x->upper, !x->trans, x->unit, c)) return -1;
    bk__nat_accumulate(N, J->src[1], c, x->len);
    return 0;
}

/* backward_general of tensor.c on the kept tensors */
static int bw_call(bk_native *N, const nat_ins *J, const double *g) {
    natx *x = J->ext;
    bk_ctx *ctx = N->ctx;
    if (!x->tout) return -1;
    bool grad = bk_set_grad_enabled(ctx, false);
    bk_tensor *gout = bk_from_f64(ctx, x->tout->ndim, x->tout->shape, g);
    bk_tensor *gin[BK_MAXIN] = {0};
    bk_tape_entry e;
    e.op = J->op;
    e.nin = J->nin;
    e.in = x->tin;
    e.out = x->tout;
    e.args = *x->args;
    int rc = gout ? bk_optable[J->op].backward(ctx, &e, gout, gin) : -1;
    for (int k = 0; k < J->nin; k++) {
        if (gin[k] && rc == 0 && wants(N, J, k)) {
            bk_tensor *r = bk_same_shape(gin[k], x->tin[k]) ? bk_retain(gin[k])
                                                            : bk_sum_to(ctx, gin[k], x->tin[k]->ndim, x->tin[k]->shape);
            if (r && r->numel == N->numel[J->src[k]] && r->dtype == BK_F64) {
                bk_copy_out(r, N->scratch);
                bk__nat_accumulate(N, J->src[k], N->scratch, r->numel);
            } else {
                rc = -1;
            }
            bk_release(r);
        }
        bk_release(gin[k]);
    }
    bk_release(gout);
    bk_release(x->tout);
    x->tout = NULL;
    bk_set_grad_enabled(ctx, grad);
    return rc;
}

int bk__natx_backward(bk_native *N, const nat_ins *J, const double *g) {
    switch (J->kind) {
    case K_BMAP: bw_bmap(N, J, g); return 0;
    case K_RED: bw_red(N, J, g); return 0;
    case K_SCAN: bw_scan(N, J, g); return 0;
    case K_GATHER: bw_gather(N, J, g); return 0;
    case K_CONCAT: bw_concat(N, J, g); return 0;
    case K_SOLVE: return bw_solve(N, J, g);
    case K_CALL: return bw_call(N, J, g);
    default: return -1;
    }
}
