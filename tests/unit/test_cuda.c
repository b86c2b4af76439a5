/* test_cuda.c - a device against the CPU (test-backend-ops style).
 *
 * In every build the op loop runs against a mock device (host memory, no
 * kernels: every op takes the CPU fallback, every backward rule runs on
 * host copies), which checks the device rules of tensor.c.  Then, without
 * CUDA support in the build or without a GPU, it checks the message that
 * says so, prints "SKIP: no CUDA device" and exits with 77, which ctest
 * reports as skipped (SKIP_RETURN_CODE).  With a GPU, against CUDA:
 *  - every op of the op table (a new op without a case here fails) runs on
 *    random inputs, including broadcasting and non-contiguous views, on
 *    both devices; outputs and the gradients of loss = sum(out * w) must
 *    agree to 1e-12 (float64) / 1e-5 (float32) relative error: per element
 *    for results computed element by element (entries below 1e-6 of the
 *    tensor's largest measured against that floor), normwise (against the
 *    largest entry) for results that are sums the GPU forms in another
 *    order - matmul, reductions, linear algebra - and for gradients, which
 *    sum over broadcasting: there a per-element error only measures
 *    cancellation.  Ops without a CUDA kernel take the CPU fallback, so the
 *    same loop checks that it is right too;
 *  - Philox words and uniforms are bit-identical to rng.c's, normals agree
 *    to 1e-14, and the generator moves on identically;
 *  - the caching allocator reuses freed blocks;
 *  - a fallback is warned about once; mixing devices is an error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_cuda.h"
#include "rng.h"
#include "mock_device.h"
#include "tensor.h"

#define SKIP_CODE 77

static const bk_device *CPU = &bk_cpu_device;

/* the mock device (mock_device.h): the op loop runs against it in every
 * build, so the device machinery of tensor.c is checked without a GPU */

/* The device under test (the mock, then DEV when there is one). */
static const bk_device *DEV = &mock_device;

enum { ANY, POS, UNIT, GAM, INTS }; /* input domains */
enum { K_PLAIN, K_RED, K_SCAN };    /* how a case without fn calls its op */

typedef bk_tensor *(*case_fn)(bk_ctx *, const bk_device *, bk_tensor **in);

typedef struct ccase {
    int op;
    const char *label;
    int nin;
    int ndim[3];
    int64_t shape[3][4];
    int domain[3];
    bool transpose0;    /* input 0 (2-d) is a transposed view */
    case_fn fn;         /* NULL: bk_apply(op) (K_PLAIN) or a reduction / scan */
    int kind;
    int64_t axis;
    int keep;
    bool no_grad;
} ccase;

/* A CPU tensor moved to dev (the CPU one released). */
static bk_tensor *on(bk_ctx *c, const bk_device *dev, bk_tensor *t) {
    bk_tensor *r = bk_to_device(c, t, dev);
    bk_release(t);
    return r;
}

static bk_tensor *spd(bk_ctx *c, const bk_device *dev, bk_tensor *x) { /* X X^T + n I */
    int64_t n = x->shape[x->ndim - 1];
    bk_tensor *xt = bk_transpose(c, x, -1, -2), *a = bk_matmul(c, x, xt);
    bk_tensor *i = on(c, dev, bk_eye(c, n)), *ni = bk_mul_s(c, i, (double)n), *r = bk_add(c, a, ni);
    bk_release(xt);
    bk_release(a);
    bk_release(i);
    bk_release(ni);
    return r;
}

static bk_tensor *f_chol(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *s = spd(c, d, in[0]), *r = bk_cholesky(c, s);
    bk_release(s);
    return r;
}
static bk_tensor *f_logdet(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *s = spd(c, d, in[0]), *r = bk_logdet(c, s);
    bk_release(s);
    return r;
}
static bk_tensor *f_inverse(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *s = spd(c, d, in[0]), *r = bk_inverse(c, s);
    bk_release(s);
    return r;
}
/* a well-conditioned triangular A (the Cholesky factor of an SPD matrix,
 * transposed for upper) */
static bk_tensor *solve_with(bk_ctx *c, const bk_device *d, bk_tensor **in, int upper, int trans, int unit) {
    bk_tensor *s = spd(c, d, in[0]), *l = bk_cholesky(c, s);
    bk_tensor *A = upper ? bk_transpose(c, l, -1, -2) : bk_retain(l);
    bk_opargs a;
    memset(&a, 0, sizeof a);
    a.upper = upper;
    a.trans = trans;
    a.unit = unit;
    bk_tensor *args[2] = {A, in[1]}, *r = bk_apply(c, BK_OP_SOLVE_TRIANGULAR, 2, args, &a);
    bk_release(s);
    bk_release(l);
    bk_release(A);
    return r;
}
static bk_tensor *f_solve(bk_ctx *c, const bk_device *d, bk_tensor **in) { return solve_with(c, d, in, 0, 0, 0); }
static bk_tensor *f_solve_ut(bk_ctx *c, const bk_device *d, bk_tensor **in) { return solve_with(c, d, in, 1, 1, 0); }
static bk_tensor *f_solve_unit(bk_ctx *c, const bk_device *d, bk_tensor **in) { return solve_with(c, d, in, 0, 1, 1); }
static bk_tensor *f_reshape(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_reshape(c, in[0], 2, (int64_t[]){2, -1});
}
static bk_tensor *f_transpose(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_transpose(c, in[0], 0, -1);
}
static bk_tensor *f_expand(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_expand(c, in[0], 3, (int64_t[]){2, 4, 3});
}
static bk_tensor *f_concat(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_concat(c, 2, in, 0);
}
static bk_tensor *f_concat1(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_concat(c, 2, in, -1);
}
static bk_tensor *f_stack(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_stack(c, 2, in, 1);
}
static bk_tensor *f_cast64(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_cast(c, in[0], BK_F64);
}
static bk_tensor *f_cast32(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_cast(c, in[0], BK_F32);
}
static bk_tensor *f_elu(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_elu(c, in[0], 0.7);
}
static bk_tensor *f_leaky(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_leaky_relu(c, in[0], 0.1);
}
static bk_tensor *f_index(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *t = on(c, d, bk_from_f64(c, 1, (int64_t[]){3}, (double[]){0, -1, 0}));
    bk_idx idx[2] = {{.kind = BK_IDX_SLICE, .start = 3, .stop = 0, .step = -1}, {.kind = BK_IDX_TENSOR, .idx = t}};
    bk_tensor *r = bk_index(c, in[0], 2, idx);
    bk_release(t);
    return r;
}
static bk_tensor *f_index_put(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    bk_idx idx[1] = {{.kind = BK_IDX_INT, .start = 1}};
    return bk_index_put(c, in[0], 1, idx, in[1]);
}
static bk_tensor *f_index_select(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *i = on(c, d, bk_from_f64(c, 1, (int64_t[]){5}, (double[]){2, 0, 2, -1, 1}));
    bk_tensor *r = bk_index_select(c, in[0], 1, i);
    bk_release(i);
    return r;
}
static bk_tensor *f_gather(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *i = on(c, d, bk_from_f64(c, 2, (int64_t[]){3, 2}, (double[]){0, 2, 1, 1, -1, 0}));
    bk_tensor *r = bk_gather(c, in[0], 1, i);
    bk_release(i);
    return r;
}
static bk_tensor *f_hmm(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *len = on(c, d, bk_from_f64(c, 1, (int64_t[]){2}, (double[]){4, 2}));
    bk_tensor *args[4] = {in[0], in[1], in[2], len}, *r = bk_apply(c, BK_OP_HMM_FORWARD, 4, args, NULL);
    bk_release(len);
    return r;
}
static bk_tensor *f_hmm_cat(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    bk_tensor *y = on(c, d, bk_from_f64(c, 2, (int64_t[]){2, 4}, (double[]){0, 3, 1, 1, 2, 0, -1, -1}));
    bk_tensor *args[4] = {in[0], in[1], in[2], y}, *r = bk_apply(c, BK_OP_HMM_FORWARD_CAT, 4, args, NULL);
    bk_release(y);
    return r;
}
static void tk_forward(int64_t n, const double *const *x, const int64_t *inc, double *out) {
    for (int64_t k = 0; k < n; k++) out[k] = x[0][k * inc[0]] * x[1][k * inc[1]] + sin(x[2][k * inc[2]]);
}
static void tk_backward(int64_t n, const double *const *x, const int64_t *inc, const double *out, const double *g,
                        int64_t ginc, double *const *gx) {
    (void)out;
    for (int64_t k = 0; k < n; k++) {
        if (gx[0]) gx[0][k] = g[k * ginc] * x[1][k * inc[1]];
        if (gx[1]) gx[1][k] = g[k * ginc] * x[0][k * inc[0]];
        if (gx[2]) gx[2][k] = g[k * ginc] * cos(x[2][k * inc[2]]);
    }
}
static const bk_fused test_kernel = {"x*y+sin(z)", 3, tk_forward, tk_backward, NULL, NULL};
static bk_tensor *f_fused(bk_ctx *c, const bk_device *d, bk_tensor **in) {
    (void)d;
    return bk_fused_apply(c, &test_kernel, in);
}

#define S0 {0}
#define S1(a) {a}
#define S2(a, b) {a, b}
#define S3(a, b, c) {a, b, c}
/* binary ops: broadcasting [4, 3] with [3], and a transposed [3, 4] with [1, 4] */
#define BIN(E, D, NG)                                                                                  \
    {BK_OP_##E, #E " broadcast", 2, {2, 1}, {S2(4, 3), S1(3)}, {D, D}, false, NULL, K_PLAIN, 0, 0, NG}, \
    {BK_OP_##E, #E " view", 2, {2, 2}, {S2(3, 4), S2(1, 4)}, {D, D}, true, NULL, K_PLAIN, 0, 0, NG},    \
    {BK_OP_##E, #E " 0-d", 2, {0, 2}, {S0, S2(2, 3)}, {D, D}, false, NULL, K_PLAIN, 0, 0, NG},
/* unary ops on a transposed [5, 4] */
#define UN(E, D, NG) {BK_OP_##E, #E, 1, {2}, {S2(5, 4)}, {D}, true, NULL, K_PLAIN, 0, 0, NG},
#define RED(E, D)                                                                                        \
    {BK_OP_##E, #E " axis 0", 1, {2}, {S2(5, 4)}, {D}, true, NULL, K_RED, 0, 0, false},                 \
    {BK_OP_##E, #E " axis -1 keepdim", 1, {3}, {S3(2, 3, 4)}, {D}, false, NULL, K_RED, -1, 1, false},   \
    {BK_OP_##E, #E " all", 1, {3}, {S3(2, 3, 70)}, {D}, false, NULL, K_RED, BK_ALL_AXES, 0, false},
/* long axes: the two-stage GPU reduction */
#define RED_LONG(E)                                                                                       \
    {BK_OP_##E, #E " long axis", 1, {2}, {S2(3, 9000)}, {ANY}, false, NULL, K_RED, -1, 0, false},       \
    {BK_OP_##E, #E " long all", 1, {1}, {S1(20000)}, {ANY}, false, NULL, K_RED, BK_ALL_AXES, 0, false},
#define SCAN(E)                                                                                           \
    {BK_OP_##E, #E " axis 0", 1, {2}, {S2(5, 4)}, {ANY}, true, NULL, K_SCAN, 0, 0, false},               \
    {BK_OP_##E, #E " axis -1", 1, {3}, {S3(2, 3, 4)}, {ANY}, false, NULL, K_SCAN, -1, 0, false},

static const ccase CASES[] = {
    BIN(ADD, ANY, false) BIN(SUB, ANY, false) BIN(MUL, ANY, false) BIN(DIV, POS, false) BIN(POW, POS, false)
    BIN(MAXIMUM, ANY, false) BIN(MINIMUM, ANY, false) BIN(LT, INTS, true) BIN(LE, INTS, true)
    BIN(GT, INTS, true) BIN(GE, INTS, true) BIN(EQ, INTS, true) BIN(NE, INTS, true)
    {BK_OP_WHERE, "where broadcast", 3, {2, 1, 2}, {S2(3, 4), S1(4), S2(3, 1)}, {INTS, ANY, ANY}, true, NULL, K_PLAIN, 0, 0, false},
    UN(NEG, ANY, false) UN(ABS, ANY, false) UN(EXP, ANY, false) UN(LOG, POS, false) UN(LOG1P, POS, false)
    UN(EXPM1, ANY, false) UN(SQRT, POS, false) UN(SQUARE, ANY, false) UN(SIGMOID, ANY, false)
    UN(LOGIT, UNIT, false) UN(SOFTPLUS, ANY, false) UN(LOG_SIGMOID, ANY, false) UN(TANH, ANY, false)
    UN(RELU, ANY, false) UN(SIN, ANY, false) UN(COS, ANY, false) UN(LGAMMA, GAM, false)
    UN(DIGAMMA, GAM, false) UN(TRIGAMMA, GAM, true) UN(ERF, ANY, false) UN(ERFC, ANY, false)
    UN(FLOOR, ANY, true) UN(NOT, INTS, true)
    {BK_OP_ELU, "elu", 1, {2}, {S2(5, 4)}, {ANY}, true, f_elu, K_PLAIN, 0, 0, false},
    {BK_OP_LEAKY_RELU, "leaky_relu", 1, {2}, {S2(5, 4)}, {ANY}, true, f_leaky, K_PLAIN, 0, 0, false},
    RED(SUM, ANY) RED(MEAN, ANY) RED(MAX, ANY) RED(MIN, ANY) RED(LOGSUMEXP, ANY) RED(PROD, POS)
    RED_LONG(SUM) RED_LONG(MEAN) RED_LONG(MAX) RED_LONG(MIN)
    SCAN(CUMSUM) SCAN(SOFTMAX) SCAN(LOG_SOFTMAX)
    {BK_OP_MATMUL, "matmul", 2, {2, 2}, {S2(3, 4), S2(4, 5)}, {ANY, ANY}, false, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_MATMUL, "matmul transposed a", 2, {2, 2}, {S2(3, 4), S2(4, 5)}, {ANY, ANY}, true, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_MATMUL, "matvec", 2, {2, 1}, {S2(3, 4), S1(4)}, {ANY, ANY}, true, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_MATMUL, "vecmat", 2, {1, 2}, {S1(4), S2(4, 3)}, {ANY, ANY}, false, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_MATMUL, "batched broadcast", 2, {3, 2}, {S3(2, 3, 4), S2(4, 5)}, {ANY, ANY}, false, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_MATMUL, "batch x batch", 2, {3, 3}, {S3(2, 3, 4), S3(1, 4, 2)}, {ANY, ANY}, false, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_CHOLESKY, "cholesky", 1, {2}, {S2(4, 4)}, {ANY}, false, f_chol, K_PLAIN, 0, 0, false},
    {BK_OP_CHOLESKY, "cholesky batched", 1, {3}, {S3(2, 3, 3)}, {ANY}, false, f_chol, K_PLAIN, 0, 0, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve lower", 2, {2, 2}, {S2(3, 3), S2(3, 2)}, {ANY, ANY}, false, f_solve, K_PLAIN, 0, 0, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve upper trans vector", 2, {2, 1}, {S2(4, 4), S1(4)}, {ANY, ANY}, false, f_solve_ut, K_PLAIN, 0, 0, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve unit batched", 2, {3, 2}, {S3(2, 3, 3), S2(3, 2)}, {ANY, ANY}, false, f_solve_unit, K_PLAIN, 0, 0, false},
    {BK_OP_LOGDET, "logdet", 1, {2}, {S2(3, 3)}, {ANY}, false, f_logdet, K_PLAIN, 0, 0, false},
    {BK_OP_INVERSE, "inverse", 1, {2}, {S2(3, 3)}, {ANY}, false, f_inverse, K_PLAIN, 0, 0, false},
    {BK_OP_RESHAPE, "reshape of a view", 1, {2}, {S2(4, 3)}, {ANY}, true, f_reshape, K_PLAIN, 0, 0, false},
    {BK_OP_RESHAPE, "reshape", 1, {2}, {S2(4, 3)}, {ANY}, false, f_reshape, K_PLAIN, 0, 0, false},
    {BK_OP_TRANSPOSE, "transpose", 1, {3}, {S3(2, 3, 4)}, {ANY}, false, f_transpose, K_PLAIN, 0, 0, false},
    {BK_OP_EXPAND, "expand", 1, {2}, {S2(1, 3)}, {ANY}, false, f_expand, K_PLAIN, 0, 0, false},
    {BK_OP_CONCAT, "concat", 2, {2, 2}, {S2(2, 3), S2(1, 3)}, {ANY, ANY}, true, f_concat, K_PLAIN, 0, 0, false},
    {BK_OP_CONCAT, "concat last axis", 2, {2, 2}, {S2(3, 2), S2(3, 4)}, {ANY, ANY}, false, f_concat1, K_PLAIN, 0, 0, false},
    {BK_OP_STACK, "stack", 2, {2, 2}, {S2(2, 3), S2(2, 3)}, {ANY, ANY}, true, f_stack, K_PLAIN, 0, 0, false},
    {BK_OP_INDEX, "index slice + tensor", 1, {2}, {S2(4, 3)}, {ANY}, false, f_index, K_PLAIN, 0, 0, false},
    {BK_OP_INDEX_PUT, "index_put", 2, {2, 1}, {S2(3, 4), S1(4)}, {ANY, ANY}, false, f_index_put, K_PLAIN, 0, 0, false},
    {BK_OP_INDEX_SELECT, "index_select repeated", 1, {2}, {S2(4, 3)}, {ANY}, true, f_index_select, K_PLAIN, 0, 0, false},
    {BK_OP_GATHER, "gather", 1, {2}, {S2(3, 3)}, {ANY}, true, f_gather, K_PLAIN, 0, 0, false},
    {BK_OP_CONTIGUOUS, "contiguous", 1, {2}, {S2(3, 2)}, {ANY}, true, NULL, K_PLAIN, 0, 0, false},
    {BK_OP_CAST, "cast to f64", 1, {2}, {S2(3, 2)}, {ANY}, true, f_cast64, K_PLAIN, 0, 0, false},
    {BK_OP_CAST, "cast to f32", 1, {1}, {S1(5)}, {ANY}, false, f_cast32, K_PLAIN, 0, 0, false},
    {BK_OP_HMM_FORWARD, "hmm_forward", 3, {1, 2, 3}, {S1(3), S2(3, 3), S3(2, 4, 3)}, {ANY, POS, ANY}, false, f_hmm, K_PLAIN, 0, 0, false},
    {BK_OP_HMM_FORWARD_CAT, "hmm_forward_cat", 3, {1, 2, 2}, {S1(3), S2(3, 3), S2(3, 4)}, {ANY, POS, ANY}, false, f_hmm_cat, K_PLAIN, 0, 0, false},
    {BK_OP_FUSED, "fused", 3, {2, 1, 2}, {S2(2, 3), S1(3), S2(2, 1)}, {ANY, ANY, ANY}, true, f_fused, K_PLAIN, 0, 0, false},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static uint64_t lcg = 20261202;
static double urand(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

static double draw(int domain) {
    switch (domain) {
    case POS: return 0.3 + 2.0 * urand();
    case UNIT: return 0.1 + 0.8 * urand();
    case GAM: return 2.5 + 1.5 * urand();  /* away from the roots of lgamma and digamma */
    case INTS: return floor(3 * urand()) - 1; /* -1, 0, 1: ties and zeros */
    default: return -1.5 + 3 * urand();
    }
}

/* Input i of case k on both devices: the same values, the same view. */
static void make_input(bk_ctx *c, const ccase *k, int i, int dt, bk_tensor **h, bk_tensor **d) {
    int nd = k->ndim[i];
    int64_t shape[4];
    for (int e = 0; e < nd; e++) shape[e] = k->shape[i][e];
    bool tr = i == 0 && k->transpose0 && nd == 2;
    if (tr) { /* stored transposed, viewed back */
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
    }
    bk_tensor *x = bk_empty(c, BK_F64, nd, shape);
    for (int64_t e = 0; e < x->numel; e++) bk_data(x)[e] = draw(k->domain[i]);
    if (dt == BK_F32) {
        bk_tensor *y = bk_cast(c, x, BK_F32);
        bk_release(x);
        x = y;
    }
    bk_tensor *xd = bk_to_device(c, x, DEV);
    ck_assert_msg(xd != NULL, "%s: to cuda: %s", k->label, bk_errmsg(c));
    if (!tr) {
        *h = x;
        *d = xd;
        return;
    }
    int64_t vs[2] = {shape[1], shape[0]}, st[2] = {1, shape[1]};
    *h = bk_view(c, x, 2, vs, st, 0);
    *d = bk_view(c, xd, 2, vs, st, 0);
    bk_release(x);
    bk_release(xd);
}

static bk_tensor *run_case(bk_ctx *c, const ccase *k, const bk_device *dev, bk_tensor **in) {
    if (k->fn) return k->fn(c, dev, in);
    if (k->kind == K_RED) return bk_reduce(c, k->op, in[0], k->axis, k->keep);
    if (k->kind == K_SCAN) {
        bk_opargs a;
        memset(&a, 0, sizeof a);
        a.axis = k->axis;
        return bk_apply(c, k->op, 1, in, &a);
    }
    return bk_apply(c, k->op, k->nin, in, NULL);
}

/* Host values of t (on any device) as doubles; caller frees. */
static double *values(bk_ctx *c, bk_tensor *t) {
    double *v = malloc(sizeof(double) * (size_t)(t->numel ? t->numel : 1));
    bk_tensor *h = bk_to_device(c, t, CPU);
    ck_assert_msg(h != NULL, "to cpu: %s", bk_errmsg(c));
    bk_copy_out(h, v);
    bk_release(h);
    return v;
}

/* Relative error of each element, measured against max(|cpu value|,
 * floor * the largest |cpu value|): floor 1e-6 for results computed element
 * by element, 1 (the normwise error) for sums formed in another order. */
static void compare(bk_ctx *c, const char *label, const char *what, bk_tensor *want, bk_tensor *got, double tol,
                    double floor) {
    ck_assert_msg(got != NULL, "%s %s: %s", label, what, bk_errmsg(c));
    ck_assert_msg(bk_tensor_device(got) == DEV, "%s %s: result is on %s", label, what, bk_tensor_device(got)->name);
    ck_assert_msg(bk_same_shape(want, got), "%s %s: shape differs", label, what);
    ck_assert_msg(want->dtype == got->dtype, "%s %s: dtype %d, CPU %d", label, what, got->dtype, want->dtype);
    double *a = values(c, got), *b = values(c, want), scale = 0;
    for (int64_t e = 0; e < want->numel; e++)
        if (isfinite(b[e])) scale = fmax(scale, fabs(b[e]));
    for (int64_t e = 0; e < want->numel; e++) {
        bool same = a[e] == b[e] || (isnan(a[e]) && isnan(b[e]));
        double err = same ? 0 : fabs(a[e] - b[e]) / fmax(fabs(b[e]), floor * scale);
        ck_assert_msg(err <= tol, "%s %s [%lld]: cuda %.17g, cpu %.17g (relative error %.3g > %.0e)", label, what,
                      (long long)e, a[e], b[e], err, tol);
    }
    free(a);
    free(b);
}

/* Ops whose result entries are sums that the GPU forms in another order
 * (and gradients, which sum over broadcasting): compared normwise. */
static bool summed(int op) {
    switch (op) {
    case BK_OP_SUM: case BK_OP_MEAN: case BK_OP_LOGSUMEXP: case BK_OP_PROD: case BK_OP_MATMUL:
    case BK_OP_CHOLESKY: case BK_OP_SOLVE_TRIANGULAR: case BK_OP_LOGDET: case BK_OP_INVERSE:
        return true;
    default:
        return false;
    }
}

/* One case in one dtype: forward and gradients on both devices. */
static void check_case(const ccase *k, int dt) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *h[3] = {0}, *d[3] = {0};
    double tol = dt == BK_F32 ? 1e-5 : 1e-12;
    char label[160];
    snprintf(label, sizeof label, "%s (%s)", k->label, dt == BK_F32 ? "float32" : "float64");
    for (int i = 0; i < k->nin; i++) {
        make_input(c, k, i, dt, &h[i], &d[i]);
        if (!k->no_grad) {
            bk_set_requires_grad(h[i], true);
            bk_set_requires_grad(d[i], true);
        }
    }
    /* the CPU first (its gradients kept), then the device on a fresh tape */
    bk_tensor *oh = run_case(c, k, CPU, h), *gh[3] = {0}, *wh = NULL;
    ck_assert_msg(oh != NULL, "%s cpu: %s", label, bk_errmsg(c));
    if (!k->no_grad) {
        wh = bk_empty(c, BK_F64, oh->ndim, oh->shape);
        for (int64_t e = 0; e < wh->numel; e++) bk_data(wh)[e] = draw(ANY);
        bk_tensor *ph = bk_mul(c, oh, wh), *lh = bk_sum_all(c, ph);
        ck_assert_msg(lh && bk_backward(c, lh) == 0, "%s cpu backward: %s", label, bk_errmsg(c));
        for (int i = 0; i < k->nin; i++) gh[i] = bk_retain(h[i]->grad);
        bk_release(ph);
        bk_release(lh);
        bk_tape_reset(c);
    }
    bk_tensor *od = run_case(c, k, DEV, d);
    compare(c, label, "forward", oh, od, tol, summed(k->op) ? 1.0 : 1e-6);
    if (!k->no_grad) {
        bk_tensor *wd = bk_to_device(c, wh, DEV);
        bk_tensor *pd = bk_mul(c, od, wd), *ld = bk_sum_all(c, pd);
        ck_assert_msg(ld != NULL, "%s loss: %s", label, bk_errmsg(c));
        ck_assert_msg(bk_backward(c, ld) == 0, "%s %s backward: %s", label, DEV->name, bk_errmsg(c));
        for (int i = 0; i < k->nin; i++) {
            char what[32];
            snprintf(what, sizeof what, "d/d input %d", i);
            ck_assert_msg((gh[i] == NULL) == (d[i]->grad == NULL), "%s %s: gradient missing on one device", label,
                          what);
            if (!gh[i]) continue;
            /* a leaf's gradient may be float64 for a float32 leaf: compare values */
            bk_tensor *gd = d[i]->grad;
            if (gd->dtype != gh[i]->dtype) {
                bk_tensor *cast = bk_cast(c, gd, (bk_dtype)gh[i]->dtype);
                compare(c, label, what, gh[i], cast, tol, 1.0);
                bk_release(cast);
            } else {
                compare(c, label, what, gh[i], gd, tol, 1.0);
            }
            bk_release(gh[i]);
        }
        bk_release(wd);
        bk_release(pd);
        bk_release(ld);
    }
    bk_release(wh);
    bk_release(oh);
    bk_release(od);
    bk_tape_reset(c);
    for (int i = 0; i < k->nin; i++) {
        bk_release(h[i]);
        bk_release(d[i]);
    }
    bk_ctx_free(c);
}

START_TEST(every_op_has_a_case) {
    for (int op = 0; op < BK_OP_COUNT; op++) {
        bool found = false;
        for (int i = 0; i < NCASES; i++)
            if (CASES[i].op == op) found = true;
        ck_assert_msg(found, "op %s has no device test case", bk_optable[op].name);
    }
}
END_TEST

START_TEST(op_matches_cpu_f64) { check_case(&CASES[_i], BK_F64); }
END_TEST

START_TEST(op_matches_cpu_f32) {
    /* index tensors, HMM symbols and the fused kernel take float64 only */
    int op = CASES[_i].op;
    if (op == BK_OP_HMM_FORWARD_CAT || op == BK_OP_FUSED) return;
    check_case(&CASES[_i], BK_F32);
}
END_TEST

/* ------------------------------------------------------------------ RNG --- */
#ifdef PPL_CUDA

START_TEST(philox_words_match) {
    bk_ctx *c = bk_ctx_new(NULL);
    const uint64_t seeds[] = {0, 1, 0xDEADBEEFCAFEull}, streams[] = {0, 7, 1ull << 40};
    for (int si = 0; si < 3; si++)
        for (int skip = 0; skip < 4; skip++) { /* every position inside a block */
            bk_rng r;
            bk_rng_init(&r, seeds[si], streams[si]);
            for (int k = 0; k < skip; k++) bk_rng_u32(&r);
            uint32_t got[1001];
            ck_assert_msg(bk_cuda_philox_words(c, &r, 1001, got) == 0, "%s", bk_errmsg(c));
            for (int i = 0; i < 1001; i++) ck_assert_uint_eq(got[i], bk_rng_u32(&r));
        }
    bk_ctx_free(c);
}
END_TEST

START_TEST(uniform_and_normal_match) {
    bk_ctx *c = bk_ctx_new(NULL);
    const int64_t sizes[] = {1, 2, 7, 1000, 4097};
    for (int si = 0; si < 5; si++)
        for (int normal = 0; normal < 2; normal++)
            for (int skip = 0; skip < 3; skip++) {
                bk_rng a, b;
                bk_rng_init(&a, 42 + si, 3);
                for (int k = 0; k < skip; k++) bk_rng_u32(&a);
                if (normal && skip == 2) bk_rng_normal(&a); /* start with a spare */
                b = a;
                int64_t n = sizes[si];
                bk_tensor *want = normal ? bk_rand_normal(c, &a, 1, &n) : bk_rand_uniform(c, &a, 1, &n);
                bk_tensor *got = normal ? bk_cuda_rand_normal(c, &b, 1, &n) : bk_cuda_rand_uniform(c, &b, 1, &n);
                ck_assert_msg(got != NULL, "%s", bk_errmsg(c));
                double *g = values(c, got);
                for (int64_t i = 0; i < n; i++) {
                    double w = bk_data(want)[i];
                    if (normal) ck_assert_msg(fabs(g[i] - w) <= 1e-14 * fmax(1, fabs(w)), "normal %lld: %.17g vs %.17g",
                                              (long long)i, g[i], w);
                    else ck_assert_msg(g[i] == w, "uniform %lld: %.17g vs %.17g", (long long)i, g[i], w);
                }
                /* both generators moved on alike (the spare included) */
                ck_assert(bk_rng_normal(&a) == bk_rng_normal(&b));
                ck_assert_uint_eq(bk_rng_u32(&a), bk_rng_u32(&b));
                free(g);
                bk_release(want);
                bk_release(got);
            }
    bk_ctx_free(c);
}
END_TEST

START_TEST(allocator_reuses_blocks) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_cuda_stats s0, s1, s2;
    int64_t n = 100000;
    bk_tensor *a = bk_empty_on(c, &bk_cuda_device, BK_F64, 1, &n);
    ck_assert_msg(a && bk_cuda_get_stats(c, &s0) == 0, "%s", bk_errmsg(c));
    bk_release(a);
    ck_assert(bk_cuda_get_stats(c, &s1) == 0);
    ck_assert_int_eq(s1.cache_returns, s0.cache_returns + 1);
    ck_assert(s1.bytes_cached >= (size_t)n * 8);
    for (int i = 0; i < 100; i++) { /* the same size again and again: no new cudaMalloc */
        bk_tensor *b = bk_empty_on(c, &bk_cuda_device, BK_F64, 1, &n);
        ck_assert(b != NULL);
        bk_release(b);
    }
    ck_assert(bk_cuda_get_stats(c, &s2) == 0);
    ck_assert_int_eq(s2.device_mallocs, s1.device_mallocs);
    ck_assert_int_eq(s2.cache_hits, s1.cache_hits + 100);
    ck_assert_uint_eq(s2.bytes_in_use, s0.bytes_in_use - (size_t)(n * 8 + 511) / 512 * 512);
    bk_ctx_free(c);
}
END_TEST
#endif /* PPL_CUDA */

/* ------------------------------------------------------ device behavior --- */

static int count(const char *hay, const char *needle) {
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) k++;
    return k;
}

START_TEST(fallback_warns_once) {
    bk_ctx *c = bk_ctx_new(NULL);
    ck_assert(!DEV->supports_op(BK_OP_LOGDET)); /* if CUDA gains a kernel, pick another op */
    ck_assert_str_eq(bk_device_warnings(c), "");
    bk_tensor *h = bk_from_f64(c, 2, (int64_t[]){2, 2}, (double[]){4, 1, 1, 3});
    bk_tensor *d = bk_to_device(c, h, DEV);
    for (int i = 0; i < 3; i++) {
        bk_tensor *r = bk_logdet(c, d);
        ck_assert_msg(r != NULL, "%s", bk_errmsg(c));
        ck_assert(bk_tensor_device(r) == DEV);
        ck_assert(fabs(bk_item(r) - log(11.0)) < 1e-14);
        bk_release(r);
    }
    ck_assert_int_eq(count(bk_device_warnings(c), "logdet"), 1);
    ck_assert(strstr(bk_device_warnings(c), "runs on the CPU") != NULL);
    bk_release(h);
    bk_release(d);
    bk_ctx_free(c);
}
END_TEST

START_TEST(mixed_devices_are_an_error) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *h = bk_from_f64(c, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    bk_tensor *d = bk_to_device(c, h, DEV);
    ck_assert(bk_add(c, h, d) == NULL);
    ck_assert_msg(strstr(bk_errmsg(c), "different devices") != NULL, "%s", bk_errmsg(c));
    ck_assert(bk_matmul(c, d, h) == NULL);
    /* a 0-d CPU constant joins the device */
    bk_tensor *s = bk_scalar(c, 2), *r = bk_mul(c, d, s);
    ck_assert_msg(r != NULL, "%s", bk_errmsg(c));
    ck_assert(bk_tensor_device(r) == DEV);
    ck_assert(bk_get(r, 2) == 6);
    /* element access and copies out of a device tensor, a strided view too */
    double buf[3];
    bk_set(r, 0, -1);
    bk_copy_out(r, buf);
    ck_assert(buf[0] == -1 && buf[1] == 4 && buf[2] == 6);
    bk_tensor *rev = bk_view(c, r, 1, (int64_t[]){2}, (int64_t[]){-2}, 2), *hr = bk_to_device(c, rev, CPU);
    ck_assert(hr && bk_get(hr, 0) == 6 && bk_get(hr, 1) == -1 && bk_get(rev, 1) == -1);
    bk_release(rev);
    bk_release(hr);
    ck_assert(bk_device_named(c, "tpu") == NULL);
    ck_assert(strstr(bk_errmsg(c), "unknown device") != NULL);
    bk_tensor *all[] = {h, d, s, r};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bk_release(all[i]);
    bk_ctx_free(c);
}
END_TEST

static Suite *suite(bool cuda) {
    Suite *s = suite_create(cuda ? "cuda" : "mock device");
    TCase *t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, every_op_has_a_case);
    tcase_add_loop_test(t, op_matches_cpu_f64, 0, NCASES);
    tcase_add_loop_test(t, op_matches_cpu_f32, 0, NCASES);
    suite_add_tcase(s, t);
    TCase *d = tcase_create("device");
    tcase_add_test(d, fallback_warns_once);
    tcase_add_test(d, mixed_devices_are_an_error);
    suite_add_tcase(s, d);
#ifdef PPL_CUDA
    if (cuda) {
        TCase *r = tcase_create("rng and memory");
        tcase_add_test(r, philox_words_match);
        tcase_add_test(r, uniform_and_normal_match);
        tcase_add_test(r, allocator_reuses_blocks);
        suite_add_tcase(s, r);
    }
#endif
    return s;
}

static int run(bool cuda) {
    SRunner *sr = srunner_create(suite(cuda));
    srunner_set_fork_status(sr, CK_NOFORK); /* CUDA does not survive fork() */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

int main(void) {
    if (run(false)) return 1;
    char why[256];
    if (bk_cuda_probe(why, sizeof why) != 0) {
        /* the reason must be the one the CLI shows */
        bk_ctx *c = bk_ctx_new(NULL);
        const bk_device *dev = bk_device_named(c, "cuda");
        int ok = dev == NULL && strcmp(bk_errmsg(c), why) == 0;
#ifdef PPL_CUDA
        ok = ok && strncmp(why, "no CUDA device found: ", 22) == 0;
#else
        ok = ok && strcmp(why, "ppl was built without CUDA support; rebuild with -DPPL_CUDA=ON") == 0;
#endif
        bk_ctx_free(c);
        if (!ok) {
            fprintf(stderr, "test_cuda: wrong reason for no CUDA: \"%s\"\n", why);
            return 1;
        }
        printf("SKIP: no CUDA device (%s)\n", why);
        return SKIP_CODE;
    }
#ifdef PPL_CUDA
    bk_ctx *c = bk_ctx_new(NULL);
    bool named = bk_device_named(c, "cuda") == &bk_cuda_device;
    bk_ctx_free(c);
    if (!named) return 1;
    DEV = &bk_cuda_device;
    printf("CPU fallback (no CUDA kernel):");
    for (int op = 0; op < BK_OP_COUNT; op++)
        if (!DEV->supports_op(op)) printf(" %s", bk_optable[op].name);
    printf("\n");
    return run(true) ? 1 : 0;
#else
    return 1; /* unreachable: the probe always fails without CUDA */
#endif
}
