/* test_program_native.c - the compiled replay's kinds beyond the elementwise
 * ones (src/backend/program_native_ops.c): pointwise ops broadcast over
 * two dimensions, reductions and scans along an axis, indexing (slices,
 * ints, newaxis, a constant index tensor, index_select, gather), expand,
 * reshape, transpose, concat and stack, and ops called through their own
 * kernels (matmul, cholesky, logdet).  For each, a program recorded from
 * the backend's ops is compiled (bk_prog_native) and its replays at random
 * points give the value and gradient of an interpreted evaluation (the
 * ops again, then bk_backward) bit for bit; the gradient matches central
 * differences.  A program the compiler refuses (a stack of five tensors)
 * is replayed through the ops with the same bits.  A small model's shapes
 * (single elements, a chain of scalar additions, a scalar broadcast into
 * vectors, a fused kernel under a sum) replay as interpreted too, and the
 * chain is found.  A constant triangular matrix solving a vector (K_SOLVE)
 * in its four variants, the inline unary ops and comparisons replay as
 * interpreted.  At the model level, an
 * HMM with Dirichlet priors (the shape of bench/hmm_cat_model.ppl) runs
 * compiled in the MCMC potential with the interpreted results, and so does
 * a logistic regression (X @ beta into Bernoulli(logits), with and without
 * an intercept). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "potential.h"
#include "program.h"
#include "program_native.h"
#include "rng.h"
#include "tensor.h"
#include "vm_fixture.h"

/* the tensors one evaluation makes, released together */
typedef struct arena {
    bk_ctx *c;
    bk_tensor *t[512];
    int n;
} arena;

static bk_tensor *keep(arena *a, bk_tensor *t) {
    ck_assert_msg(t != NULL, "%s", bk_errmsg(a->c));
    ck_assert(a->n < 512);
    a->t[a->n++] = t;
    return t;
}

static void arena_clear(arena *a) {
    while (a->n > 0) bk_release(a->t[--a->n]);
}

/* a constant of the given shape with values 0.3, -0.45, 0.6, ... (offset by b) */
static bk_tensor *konst(arena *a, int nd, const int64_t *shape, double b) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    double v[64];
    ck_assert(n <= 64);
    for (int64_t i = 0; i < n; i++) v[i] = b + (i % 2 ? -0.45 : 0.3) * (double)(1 + i % 5) / 3.0;
    return keep(a, bk_from_f64(a->c, nd, shape, v));
}

/* sum(t * w) for fixed weights w of t's shape: every element of t counts */
static bk_tensor *wsum(arena *a, bk_tensor *t) {
    bk_tensor *w = konst(a, t->ndim, t->shape, 0.7);
    return keep(a, bk_sum_all(a->c, keep(a, bk_mul(a->c, t, w))));
}

static bk_tensor *add(arena *a, bk_tensor *x, bk_tensor *y) { return keep(a, bk_add(a->c, x, y)); }

typedef bk_tensor *(*build_fn)(arena *a, bk_tensor *x);

#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* ----------------------------------------------------------- the cases --- */

/* broadcasting: latent [3, 4] against [1, 4], [3, 1], [4] (constants and
 * latents), pow with a latent exponent, maximum, minimum, comparisons,
 * where, and erf (no elementwise rule in program_native.c) */
static bk_tensor *case_bmap(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_tensor *row = konst(a, 2, SH(1, 4), 0.2), *col = konst(a, 2, SH(3, 1), -0.1);
    bk_tensor *b = add(a, keep(a, bk_mul(c, x, row)), col);
    bk_tensor *s = keep(a, bk_reduce(c, BK_OP_SUM, keep(a, bk_unop(c, BK_OP_EXP, x)), 1, true)); /* [3, 1] */
    bk_tensor *d = keep(a, bk_div(c, x, s));
    bk_tensor *e = keep(a, bk_sub(c, x, keep(a, bk_reduce(c, BK_OP_MEAN, x, 0, true)))); /* [1, 4] */
    bk_tensor *sp = keep(a, bk_unop(c, BK_OP_SOFTPLUS, x));
    bk_tensor *p1 = keep(a, bk_pow(c, sp, konst(a, 1, SH(4), 1.1)));
    bk_tensor *p2 = keep(a, bk_pow(c, sp, x));
    bk_tensor *mx = keep(a, bk_binop(c, BK_OP_MAXIMUM, x, col));
    bk_tensor *mn = keep(a, bk_binop(c, BK_OP_MINIMUM, s, x));
    bk_tensor *cmp = keep(a, bk_binop(c, BK_OP_GT, x, row));
    bk_tensor *w1 = keep(a, bk_where(c, cmp, b, e));
    double cv[3] = {1, 0, 1};
    bk_tensor *cond = keep(a, bk_from_f64(c, 2, SH(3, 1), cv));
    bk_tensor *w2 = keep(a, bk_where(c, cond, x, s));
    bk_tensor *er = keep(a, bk_unop(c, BK_OP_ERF, x));
    bk_tensor *l = wsum(a, b);
    bk_tensor *parts[] = {d, e, p1, p2, mx, mn, w1, w2, er};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) l = add(a, l, wsum(a, parts[i]));
    return l;
}

/* reductions along each axis (with and without keepdim) and over all, of
 * a 2-D and a 3-D tensor */
static bk_tensor *case_red(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_tensor *x3 = keep(a, bk_reshape(c, x, 3, SH(2, 3, 2)));
    struct { int op; bk_tensor *t; int64_t axis; bool keep; } r[] = {
        {BK_OP_SUM, x, 0, false},       {BK_OP_SUM, x, 1, true},        {BK_OP_SUM, x3, 1, false},
        {BK_OP_MEAN, x, 1, false},      {BK_OP_MAX, x, 0, false},       {BK_OP_MIN, x, 1, true},
        {BK_OP_PROD, x, 0, false},      {BK_OP_LOGSUMEXP, x, 1, false}, {BK_OP_LOGSUMEXP, x, BK_ALL_AXES, false},
        {BK_OP_MAX, x3, BK_ALL_AXES, false}, {BK_OP_PROD, x3, 2, true}, {BK_OP_MEAN, x3, -1, false},
    };
    bk_tensor *l = keep(a, bk_sum_all(c, x));
    for (size_t i = 0; i < sizeof r / sizeof *r; i++)
        l = add(a, l, wsum(a, keep(a, bk_reduce(c, r[i].op, r[i].t, r[i].axis, r[i].keep))));
    return l;
}

static bk_tensor *scan(arena *a, int op, bk_tensor *t, int64_t axis) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    return keep(a, bk_apply(a->c, op, 1, &t, &args));
}

static bk_tensor *case_scan(arena *a, bk_tensor *x) {
    bk_tensor *x3 = keep(a, bk_reshape(a->c, x, 3, SH(2, 3, 2)));
    bk_tensor *l = wsum(a, scan(a, BK_OP_CUMSUM, x, 0));
    l = add(a, l, wsum(a, scan(a, BK_OP_CUMSUM, x, 1)));
    l = add(a, l, wsum(a, scan(a, BK_OP_SOFTMAX, x, 1)));
    l = add(a, l, wsum(a, scan(a, BK_OP_LOG_SOFTMAX, x, 0)));
    l = add(a, l, wsum(a, scan(a, BK_OP_SOFTMAX, x3, 1)));
    return add(a, l, wsum(a, scan(a, BK_OP_CUMSUM, x3, -1)));
}

static bk_idx slice(int64_t start, int64_t stop, int64_t step) {
    return (bk_idx){.kind = BK_IDX_SLICE, .start = start, .stop = stop, .step = step};
}

/* indexing and the ops that pick elements; their results (views) feed
 * elementwise ops */
static bk_tensor *case_gather(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_idx i1[2] = {slice(1, 3, 1), {.kind = BK_IDX_INT, .start = 2}};
    bk_idx i2[3] = {{.kind = BK_IDX_NEWAXIS}, slice(0, 3, 2), slice(3, 0, -1)};
    double iv[3] = {2, 0, 2};
    bk_tensor *it = keep(a, bk_from_f64(c, 1, SH(3), iv));
    bk_idx i3[2] = {slice(0, 3, 1), {.kind = BK_IDX_TENSOR, .idx = it}};
    double sv[4] = {2, 2, 0, 1}, gv[6] = {0, 3, 1, 1, 2, 0};
    bk_tensor *sel = keep(a, bk_from_f64(c, 1, SH(4), sv)), *gi = keep(a, bk_from_f64(c, 2, SH(3, 2), gv));
    bk_tensor *v1 = keep(a, bk_index(c, x, 2, i1));
    bk_tensor *v2 = keep(a, bk_index(c, x, 3, i2));
    bk_tensor *v3 = keep(a, bk_index(c, x, 2, i3));
    bk_tensor *v4 = keep(a, bk_index_select(c, x, 0, sel));
    bk_tensor *v5 = keep(a, bk_gather(c, x, 1, gi));
    bk_tensor *s0 = keep(a, bk_reduce(c, BK_OP_SUM, x, 0, true));
    bk_tensor *v6 = keep(a, bk_expand(c, s0, 3, SH(2, 3, 4)));
    bk_tensor *v7 = keep(a, bk_reshape(c, x, 2, SH(2, 6)));
    bk_tensor *tr = keep(a, bk_transpose(c, x, 0, 1));
    bk_tensor *v8 = keep(a, bk_unop(c, BK_OP_EXP, tr)); /* an elementwise op on a view */
    bk_tensor *v9 = keep(a, bk_contiguous(c, keep(a, bk_transpose(c, v2, 1, 2))));
    bk_tensor *v10 = keep(a, bk_mul(c, v1, keep(a, bk_unop(c, BK_OP_SIN, v1))));
    bk_tensor *parts[] = {v2, v3, v4, v5, v6, v7, v8, v9, v10, tr};
    bk_tensor *l = wsum(a, v1);
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) l = add(a, l, wsum(a, parts[i]));
    return l;
}

static bk_tensor *case_concat(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_idx i1[2] = {slice(0, 3, 1), slice(0, 1, 1)};
    bk_tensor *first = keep(a, bk_index(c, x, 2, i1));
    bk_tensor *ex = keep(a, bk_unop(c, BK_OP_EXP, x));
    bk_tensor *k = konst(a, 2, SH(3, 2), 0.0);
    bk_tensor *c1 = keep(a, bk_concat(c, 4, (bk_tensor *[]){first, x, k, ex}, 1));
    bk_tensor *c2 = keep(a, bk_concat(c, 2, (bk_tensor *[]){x, x}, 0)); /* one slot twice */
    bk_tensor *s1 = keep(a, bk_stack(c, 2, (bk_tensor *[]){x, keep(a, bk_unop(c, BK_OP_SIN, x))}, 1));
    bk_tensor *k4 = konst(a, 2, SH(3, 4), 0.1);
    bk_tensor *s2 = keep(a, bk_stack(c, 3, (bk_tensor *[]){k4, ex, k4}, -1));
    return add(a, add(a, wsum(a, c1), wsum(a, c2)), add(a, wsum(a, s1), wsum(a, s2)));
}

/* ops with no kind of their own: their kernels and rules, on tensors */
static bk_tensor *case_call(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_tensor *xt = keep(a, bk_transpose(c, x, 0, 1));
    bk_tensor *m = keep(a, bk_matmul(c, x, xt)); /* [3, 3] */
    double eye[9] = {3, 0, 0, 0, 3, 0, 0, 0, 3};
    bk_tensor *spd = add(a, m, keep(a, bk_from_f64(c, 2, SH(3, 3), eye)));
    bk_tensor *ch = keep(a, bk_cholesky(c, spd));
    bk_tensor *ld = keep(a, bk_logdet(c, spd));
    bk_tensor *el = keep(a, bk_elu(c, x, 0.7));
    return add(a, add(a, wsum(a, m), wsum(a, ch)), add(a, ld, wsum(a, el)));
}

/* five inputs to one op: more than a compiled instruction takes */
static bk_tensor *case_wide(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_tensor *e = keep(a, bk_unop(c, BK_OP_EXP, x)), *s = keep(a, bk_unop(c, BK_OP_SIN, x));
    bk_tensor *st = keep(a, bk_stack(c, 5, (bk_tensor *[]){x, e, s, e, x}, 0));
    return wsum(a, keep(a, bk_reduce(c, BK_OP_LOGSUMEXP, st, 0, false)));
}

/* a test kernel (bk_fused): out = x y + x; its backward reads g with the
 * stride it is given (0: a sum's gradient, one value for every element) */
static void tk_forward(int64_t n, const double *const *in, const int64_t *inc, double *out) {
    for (int64_t k = 0; k < n; k++) {
        double x = in[0][k * inc[0]], y = in[1][k * inc[1]];
        out[k] = x * y + x;
    }
}

static void tk_backward(int64_t n, const double *const *in, const int64_t *inc, const double *out,
                        const double *g, int64_t ig, double *const *gx) {
    (void)out;
    for (int64_t k = 0; k < n; k++) {
        double x = in[0][k * inc[0]], y = in[1][k * inc[1]], gk = g[k * ig];
        if (gx[0]) gx[0][k] = gk * (y + 1);
        if (gx[1]) gx[1][k] = gk * x;
    }
}

static const bk_fused test_kernel = {"test_kernel", 2, tk_forward, tk_backward, NULL, NULL};

static bk_idx at(int64_t i) { return (bk_idx){.kind = BK_IDX_INT, .start = i}; }

/* A small model's shapes (program_native.c): single elements (scalar
 * records), a chain of scalar additions and subtractions (the log
 * density's sum of terms, swept in one loop) with constants and repeated
 * terms in it, vectors with a single element broadcast on either side of
 * +, -, *, / (the stride-free loops), a fused kernel whose output is summed
 * (its gradient held once and read with stride 0), and a slot summed that
 * other ops use too (the held gradient expanded before they add to it). */
static bk_tensor *case_small(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_idx e0[2] = {at(0), at(1)}, e1[2] = {at(2), at(3)}, r1[2] = {at(1), slice(0, 4, 1)};
    bk_tensor *u = keep(a, bk_index(c, x, 2, e0)), *w = keep(a, bk_index(c, x, 2, e1)); /* one element each */
    bk_tensor *v = keep(a, bk_unop(c, BK_OP_EXP, keep(a, bk_index(c, x, 2, r1))));   /* [4] */
    bk_tensor *eu = keep(a, bk_unop(c, BK_OP_EXP, u));
    bk_tensor *m1 = keep(a, bk_mul(c, eu, v));   /* one element times a vector */
    bk_tensor *m2 = keep(a, bk_add(c, v, w));    /* a vector plus one element */
    bk_tensor *m3 = keep(a, bk_sub(c, m1, m2));  /* two vectors */
    bk_tensor *m4 = keep(a, bk_div(c, w, v));    /* one element over a vector */
    bk_tensor *m5 = keep(a, bk_sub(c, u, m1));   /* one element minus a vector */
    bk_tensor *f = keep(a, bk_fused_apply(c, &test_kernel, (bk_tensor *[]){m3, v}));
    bk_tensor *uw = keep(a, bk_mul(c, u, w));
    bk_tensor *dw = keep(a, bk_div(c, u, keep(a, bk_add_s(c, keep(a, bk_unop(c, BK_OP_SQUARE, w)), 1.0))));
    bk_tensor *terms[] = {keep(a, bk_sum_all(c, f)), uw, keep(a, bk_sum_all(c, v)), wsum(a, m4), dw,
                          keep(a, bk_sum_all(c, m5)), uw, keep(a, bk_scalar(c, 0.25)),
                          keep(a, bk_sum_all(c, x))};
    bk_tensor *l = keep(a, bk_add_s(c, keep(a, bk_unop(c, BK_OP_EXP, w)), -0.5));
    for (size_t i = 0; i < sizeof terms / sizeof *terms; i++)
        l = keep(a, i % 3 == 1 ? bk_sub(c, l, terms[i]) : bk_add(c, l, terms[i]));
    return l;
}

/* The gradient of a sum of the input alone: held once to the end (the
 * replay's gradient expands it). */
static bk_tensor *case_sum_input(arena *a, bk_tensor *x) {
    return keep(a, bk_mul_s(a->c, keep(a, bk_sum_all(a->c, x)), 0.5));
}

/* A constant triangular matrix solving a vector (K_SOLVE: the
 * MultivariateNormal density's L^-1 (x - loc)), lower and upper, plain and
 * transposed, unit diagonal or not, the solution squared and summed (the
 * square reads the sum's gradient held once) or weighted; the unary ops the
 * replay runs inline (square, neg, exp, log) on vectors; comparisons of
 * single elements (a support check's mask). */
static bk_tensor *solve(arena *a, bk_tensor *b, bool upper, bool trans, bool unit) {
    enum { N = 12 };
    double m[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            bool in = upper ? j >= i : j <= i;
            /* a diagonal from 1.5 to 2.6 (the unit case does not read it),
             * off-diagonal entries of both signs */
            m[i * N + j] = !in ? 7.0 : i == j ? (unit ? 0.0 : 1.5 + 0.1 * i) : 0.3 * sin(0.7 * i + 1.1 * j);
        }
    bk_tensor *A = keep(a, bk_from_f64(a->c, 2, SH(N, N), m));
    bk_opargs args = {0};
    args.upper = upper;
    args.trans = trans;
    args.unit = unit;
    return keep(a, bk_apply(a->c, BK_OP_SOLVE_TRIANGULAR, 2, (bk_tensor *[]){A, b}, &args));
}

static bk_tensor *case_solve(arena *a, bk_tensor *x) {
    bk_ctx *c = a->c;
    bk_tensor *v = keep(a, bk_reshape(c, x, 1, SH(12)));
    bk_tensor *d = keep(a, bk_sub(c, v, konst(a, 1, SH(12), 0.2)));
    bk_tensor *s1 = solve(a, d, false, false, false), *s2 = solve(a, d, true, true, false);
    bk_tensor *s3 = solve(a, v, false, true, true), *s4 = solve(a, s1, true, false, true);
    bk_tensor *sq = keep(a, bk_unop(c, BK_OP_SQUARE, s1));
    bk_tensor *t1 = keep(a, bk_sum_all(c, sq));
    bk_tensor *t2 = wsum(a, keep(a, bk_unop(c, BK_OP_SQUARE, s2)));
    bk_tensor *t3 = wsum(a, keep(a, bk_unop(c, BK_OP_NEG, s3)));
    bk_tensor *ex = keep(a, bk_unop(c, BK_OP_EXP, keep(a, bk_mul_s(c, s4, 0.1))));
    bk_tensor *t4 = wsum(a, ex);
    bk_tensor *t5 = keep(a, bk_sum_all(c, keep(a, bk_unop(c, BK_OP_LOG, ex))));
    bk_idx e0[2] = {at(0), at(1)};
    bk_tensor *u = keep(a, bk_index(c, x, 2, e0)), *z = keep(a, bk_scalar(c, 0.1));
    bk_tensor *t6 = add(a, keep(a, bk_mul(c, keep(a, bk_binop(c, BK_OP_GE, u, z)), u)),
                        keep(a, bk_mul(c, keep(a, bk_binop(c, BK_OP_LT, u, z)), keep(a, bk_unop(c, BK_OP_SQUARE, u)))));
    return add(a, add(a, add(a, t1, t2), add(a, t3, t4)), add(a, t5, t6));
}

/* ------------------------------------------------------------ harness --- */

/* The interpreted value and gradient at q. */
static void interpreted(arena *a, build_fn f, const double *q, double *v, double *g) {
    bk_tensor *x = keep(a, bk_from_f64(a->c, 2, SH(3, 4), q));
    bk_set_requires_grad(x, true);
    bk_tensor *l = f(a, x);
    ck_assert_msg(bk_backward(a->c, l) == 0, "%s", bk_errmsg(a->c));
    *v = bk_item(l);
    ck_assert(x->grad != NULL);
    bk_copy_out(x->grad, g);
    bk_tape_reset(a->c);
    arena_clear(a);
}

/* The number of p's instructions of kind k. */
static int count_kind(const bk_prog *p, int k) {
    int n = 0;
    for (size_t i = 0; i < bk_prog_len(p); i++) n += bk__native_kind(p, i) == k;
    return n;
}

/* Replays of f's program (compiled: native, with at least `want` of
 * kind `kind` and `calls` K_CALL instructions) against interpretation. */
static void run_case(build_fn f, bool native, int kind, int want, int calls) {
    arena a = {.c = bk_ctx_new(NULL)};
    bk_ctx *c = a.c;
    double q0[12];
    for (int i = 0; i < 12; i++) q0[i] = 0.9 * sin(1.3 * i + 0.4);
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *x = keep(&a, bk_from_f64(c, 2, SH(3, 4), q0));
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    bk_tensor *l = f(&a, x);
    char why[160];
    bk_prog *p = bk_prog_end(c, l, why, sizeof why);
    ck_assert_msg(p != NULL, "%s", why);
    bk_tape_reset(c);
    arena_clear(&a);
    ck_assert_int_eq(bk_prog_native(p), native);
    if (native) {
        ck_assert_msg(count_kind(p, kind) >= want, "%d of kind %d", count_kind(p, kind), kind);
        ck_assert_int_eq(count_kind(p, K_CALL), calls);
    }
    bk_rng r;
    bk_rng_init(&r, 11, 0);
    for (int t = 0; t < 25; t++) {
        double q[12], v1, v2, g1[12], g2[12];
        for (int i = 0; i < 12; i++) q[i] = t == 0 ? q0[i] : 3 * bk_rng_uniform(&r) - 1.5;
        ck_assert_int_eq(bk_prog_run(p, c, q, &v1, g1), 0);
        ck_assert_uint_eq(bk_tape_len(c), 0);
        interpreted(&a, f, q, &v2, g2);
        ck_assert_msg(memcmp(&v1, &v2, sizeof v1) == 0, "point %d: %.17g (replay) vs %.17g", t, v1, v2);
        for (int i = 0; i < 12; i++)
            ck_assert_msg(memcmp(&g1[i], &g2[i], sizeof g1[i]) == 0, "point %d: d/dx%d %.17g (replay) vs %.17g",
                          t, i, g1[i], g2[i]);
        ck_assert_int_eq(bk_prog_run(p, c, q, &v1, NULL), 0); /* no gradient */
        ck_assert(memcmp(&v1, &v2, sizeof v1) == 0);
    }
    /* central differences of the replayed value */
    double g[12], v;
    ck_assert_int_eq(bk_prog_run(p, c, q0, &v, g), 0);
    for (int i = 0; i < 12; i++) {
        double q[12], vp, vm, h = 1e-6;
        memcpy(q, q0, sizeof q);
        q[i] = q0[i] + h;
        ck_assert_int_eq(bk_prog_run(p, c, q, &vp, NULL), 0);
        q[i] = q0[i] - h;
        ck_assert_int_eq(bk_prog_run(p, c, q, &vm, NULL), 0);
        double fd = (vp - vm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) < 1e-6 * fmax(1, fabs(fd)), "d/dx%d: %.10g vs %.10g", i, g[i], fd);
    }
    bk_prog_free(p);
    bk_ctx_free(c);
}

START_TEST(native_broadcast) { run_case(case_bmap, true, K_BMAP, 9, 0); }
END_TEST
START_TEST(native_reductions) { run_case(case_red, true, K_RED, 11, 0); }
END_TEST
START_TEST(native_scans) { run_case(case_scan, true, K_SCAN, 6, 0); }
END_TEST
START_TEST(native_indexing) { run_case(case_gather, true, K_GATHER, 10, 0); }
END_TEST
START_TEST(native_concat_stack) { run_case(case_concat, true, K_CONCAT, 4, 0); }
END_TEST
START_TEST(native_kernel_calls) { run_case(case_call, true, K_CALL, 4, 4); }
END_TEST
START_TEST(replay_through_ops_wide) { run_case(case_wide, false, 0, 0, 0); }
END_TEST
START_TEST(native_solve) { run_case(case_solve, true, K_SOLVE, 4, 0); }
END_TEST
START_TEST(native_small_model) {
    run_case(case_small, true, K_SCALAR, 8, 0);
    run_case(case_sum_input, true, K_SUM, 1, 0);
}
END_TEST

/* The chains case_small's sum of terms makes: one, of all nine terms
 * (the tenth op, the first term, starts it). */
START_TEST(native_chain_found) {
    arena a = {.c = bk_ctx_new(NULL)};
    bk_ctx *c = a.c;
    double q0[12];
    for (int i = 0; i < 12; i++) q0[i] = 0.1 * i - 0.4;
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *x = keep(&a, bk_from_f64(c, 2, SH(3, 4), q0));
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    bk_tensor *l = case_small(&a, x);
    bk_prog *p = bk_prog_end(c, l, NULL, 0);
    ck_assert(p != NULL && bk_prog_native(p));
    bk_tape_reset(c);
    arena_clear(&a);
    int chains = 0, longest = 0;
    for (size_t i = 0; i < bk_prog_len(p); i++) {
        int n = bk__native_chain(p, i);
        chains += n > 0;
        if (n > longest) longest = n;
    }
    ck_assert_int_eq(chains, 1);
    ck_assert_int_eq(longest, 10);
    bk_prog_free(p);
    bk_ctx_free(c);
}
END_TEST

/* An op called through its kernel that fails at a point (a Cholesky
 * factor of a matrix that is not positive definite): the replay stops
 * with 1 and leaves nothing behind; the next point replays again. */
START_TEST(native_call_failure) {
    arena a = {.c = bk_ctx_new(NULL)};
    bk_ctx *c = a.c;
    double q0[4] = {2.0, 0.5, 0.5, 3.0}, v, g[4];
    ck_assert(bk_prog_begin(c) == 0);
    bk_tensor *x = keep(&a, bk_from_f64(c, 2, SH(2, 2), q0));
    bk_set_requires_grad(x, true);
    bk_prog_input(c, x, 0);
    bk_tensor *l = wsum(&a, keep(&a, bk_cholesky(c, x)));
    bk_prog *p = bk_prog_end(c, l, NULL, 0);
    ck_assert(p != NULL);
    bk_tape_reset(c);
    arena_clear(&a);
    ck_assert(bk_prog_native(p));
    ck_assert_int_eq(bk_prog_run(p, c, q0, &v, g), 0);
    double bad[4] = {-1.0, 0.5, 0.5, 3.0}, vb, gb[4];
    ck_assert_int_eq(bk_prog_run(p, c, bad, &vb, gb), 1);
    ck_assert_uint_eq(bk_tape_len(c), 0);
    bk_clearerr(c);
    double v2, g2[4];
    ck_assert_int_eq(bk_prog_run(p, c, q0, &v2, g2), 0);
    ck_assert(memcmp(&v, &v2, sizeof v) == 0);
    ck_assert(memcmp(g, g2, sizeof g) == 0);
    bk_prog_free(p);
    bk_ctx_free(c);
}
END_TEST

/* -------------------------------------------------- an HMM under MCMC --- */

static const char *HMM =
    "yh = [0, 1, 1, 2, 0, 0, 2, 2, 1, 0, 0, 1, 2, 2, 2, 0]\n"
    "model hmm(y) {\n"
    "  sample init ~ Dirichlet(ones(2))\n"
    "  sample trans ~ Dirichlet([[4.0, 1.0], [1.0, 4.0]])\n"
    "  sample emit ~ Dirichlet([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])\n"
    "  observe y ~ DiscreteHMM(init, trans, Categorical(probs=emit))\n"
    "}\n";

START_TEST(hmm_potential_native) {
    rt_vm *vm = vm_running(HMM);
    rt_record *data = rt_record_new();
    rt_record_set(data, "y", rt_retain(*rt_global_get(vm, "yh")));
    rt_func *f = (rt_func *)rt_global_get(vm, "hmm")->u.o;
    inf_potential *fast, *slow;
    ck_assert_msg(inf_potential_init(vm, f, data, (rt_loc){0}, &fast) == 0, "%s", rt_vm_errmsg(vm));
    ck_assert(inf_potential_init(vm, f, data, (rt_loc){0}, &slow) == 0);
    slow->fast = false;
    int d = (int)fast->dim;
    ck_assert_int_eq(d, 1 + 2 + 4);
    bk_rng r;
    bk_rng_init(&r, 5, 0);
    for (int t = 0; t < 60; t++) {
        double q[7], g1[7], g2[7], l1, l2;
        for (int i = 0; i < d; i++) q[i] = (t % 10 == 9 ? 8.0 : 2.0) * (2 * bk_rng_uniform(&r) - 1);
        ck_assert_msg(inf_potential_eval(fast, q, &l1, g1, NULL) == 0, "%s", rt_vm_errmsg(vm));
        ck_assert(inf_potential_eval(slow, q, &l2, g2, NULL) == 0);
        ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "point %d: %.17g vs %.17g", t, l1, l2);
        ck_assert_msg(memcmp(g1, g2, sizeof g1[0] * (size_t)d) == 0, "point %d: gradients differ", t);
    }
    ck_assert_msg(fast->fast_state == 1, "no program (%s)", fast->fast_why);
    ck_assert(bk_prog_native(fast->prog));
    ck_assert_int_eq(count_kind(fast->prog, K_CALL), 1); /* the forward algorithm alone */
    ck_assert_int_eq(fast->fast_verify, 0);
    inf_potential_free(fast);
    inf_potential_free(slow);
    rt_release(rt_obj_value(&data->h));
    rt_vm_free(vm);
}
END_TEST

/* ------------------------------------ logistic regression under MCMC --- */

/* X @ beta (+ alpha) into Bernoulli(logits) over N = 203 rows (a row tail
 * after blocks of four) and D = 25 or 8 columns (a column tail after full
 * vectors, or none): the thin matrix-vector products (bk__dgemv) in the
 * replay and in the interpreted evaluation give the same bits; the
 * gradient matches central differences. */
static const char *LOGREG =
    "model xs(N, D) {\n"
    "  plate rows(N) {\n"
    "    sample x ~ Normal(zeros(D), 1.0).to_event(1)\n"
    "  }\n"
    "  return x\n"
    "}\n"
    "X25 = trace(xs, {N: 203, D: 25}, seed=3).x\n"
    "X8 = trace(xs, {N: 203, D: 8}, seed=4).x\n"
    "model ys(X) {\n"
    "  plate rows(len(X)) {\n"
    "    sample y ~ Bernoulli(logits=0.4 + X @ (0.3 - 0.05 * arange(X.shape[1])))\n"
    "  }\n"
    "  return y\n"
    "}\n"
    "y25 = trace(ys, {X: X25}, seed=5).y\n"
    "y8 = trace(ys, {X: X8}, seed=6).y\n"
    "model lr(X, y) {\n"
    "  sample alpha ~ Normal(0.0, 5.0)\n"
    "  sample beta ~ Normal(zeros(X.shape[1]), 5.0).to_event(1)\n"
    "  plate data(len(X)) {\n"
    "    observe y ~ Bernoulli(logits=alpha + X @ beta)\n"
    "  }\n"
    "}\n"
    "model lr0(X, y) {\n"
    "  sample beta ~ Normal(zeros(X.shape[1]), 5.0).to_event(1)\n"
    "  plate data(len(X)) {\n"
    "    observe y ~ Bernoulli(logits=X @ beta)\n"
    "  }\n"
    "}\n";

static void logreg_case(rt_vm *vm, const char *model, const char *xn, const char *yn, int dim) {
    rt_record *data = rt_record_new();
    rt_record_set(data, "X", rt_retain(*rt_global_get(vm, xn)));
    rt_record_set(data, "y", rt_retain(*rt_global_get(vm, yn)));
    rt_func *f = (rt_func *)rt_global_get(vm, model)->u.o;
    inf_potential *fast, *slow;
    ck_assert_msg(inf_potential_init(vm, f, data, (rt_loc){0}, &fast) == 0, "%s", rt_vm_errmsg(vm));
    ck_assert(inf_potential_init(vm, f, data, (rt_loc){0}, &slow) == 0);
    slow->fast = false;
    int d = (int)fast->dim;
    ck_assert_int_eq(d, dim);
    bk_rng r;
    bk_rng_init(&r, 7, 0);
    double q[32], g1[32], g2[32], l1, l2;
    for (int t = 0; t < 30; t++) {
        for (int i = 0; i < d; i++) q[i] = (t % 10 == 9 ? 3.0 : 0.5) * (2 * bk_rng_uniform(&r) - 1);
        ck_assert_msg(inf_potential_eval(fast, q, &l1, g1, NULL) == 0, "%s", rt_vm_errmsg(vm));
        ck_assert(inf_potential_eval(slow, q, &l2, g2, NULL) == 0);
        ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "%s point %d: %.17g vs %.17g", model, t, l1, l2);
        for (int i = 0; i < d; i++)
            ck_assert_msg(memcmp(&g1[i], &g2[i], sizeof g1[i]) == 0, "%s point %d: d/dq%d %.17g vs %.17g", model,
                          t, i, g1[i], g2[i]);
    }
    ck_assert_msg(fast->fast_state == 1, "no program (%s)", fast->fast_why);
    ck_assert(bk_prog_native(fast->prog));
    ck_assert_int_eq(count_kind(fast->prog, K_MATVEC), 1);
    ck_assert_int_eq(fast->fast_verify, 0);
    /* central differences of the (replayed) log density */
    for (int i = 0; i < d; i++) q[i] = 0.1 * sin(1.7 * i + 0.3);
    ck_assert(inf_potential_eval(fast, q, &l1, g1, NULL) == 0);
    for (int i = 0; i < d; i++) {
        double qq[32], lp, lm, h = 1e-5, gd[32];
        memcpy(qq, q, sizeof qq);
        qq[i] = q[i] + h;
        ck_assert(inf_potential_eval(fast, qq, &lp, gd, NULL) == 0);
        qq[i] = q[i] - h;
        ck_assert(inf_potential_eval(fast, qq, &lm, gd, NULL) == 0);
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(fd - g1[i]) < 1e-6 * fmax(1, fabs(fd)), "%s d/dq%d: %.12g vs %.12g", model, i, g1[i], fd);
    }
    inf_potential_free(fast);
    inf_potential_free(slow);
    rt_release(rt_obj_value(&data->h));
}

START_TEST(logreg_potential_native) {
    rt_vm *vm = vm_running(LOGREG);
    logreg_case(vm, "lr", "X25", "y25", 26);
    logreg_case(vm, "lr", "X8", "y8", 9);
    logreg_case(vm, "lr0", "X25", "y25", 25);
    logreg_case(vm, "lr0", "X8", "y8", 8);
    rt_vm_free(vm);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("program_native");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, native_broadcast);
    tcase_add_test(tc, native_reductions);
    tcase_add_test(tc, native_scans);
    tcase_add_test(tc, native_indexing);
    tcase_add_test(tc, native_concat_stack);
    tcase_add_test(tc, native_kernel_calls);
    tcase_add_test(tc, replay_through_ops_wide);
    tcase_add_test(tc, native_small_model);
    tcase_add_test(tc, native_solve);
    tcase_add_test(tc, native_chain_found);
    tcase_add_test(tc, native_call_failure);
    tcase_add_test(tc, hmm_potential_native);
    tcase_add_test(tc, logreg_potential_native);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
