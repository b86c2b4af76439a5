/* test_f32.c - float32 end to end (tensor.h: bk_promote, bk_native_f32).
 *
 *  - every float32 kernel (unary and binary elementwise ops with the
 *    broadcast layouts the driver distinguishes, reductions, ELU / leaky
 *    ReLU, row gathers, the fused Normal and Bernoulli(logits) densities
 *    and their backward rules, a small MLP's gradients) against the float64
 *    kernel on the same (float-rounded) inputs: |f32 - f64| <= 1e-5 |f64| +
 *    1e-7, i.e. relative error 1e-5 (about 100 float ulps: the float libm
 *    functions are within a few ulps, chains of a few ops add their
 *    roundings), with an absolute floor below float resolution for values
 *    near 0;
 *  - float32 sums accumulate in double: the sum of 10^6 float32 values
 *    equals the double sum of the same floats to 1e-7 relative (a float
 *    accumulator is off by about 1e-4 there);
 *  - the fused Bernoulli(logits) density in float64 against its closed form
 *    in long double and its gradient against central finite differences,
 *    with extreme logits (no overflow, no NaN) and values outside {0, 1};
 *  - dtype promotion (PyTorch's rule) and gradients in the leaf's dtype;
 *  - Adam on float32 weights against Adam on float64 weights. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "nn.h"
#include "ppl.h"

#define REL 1e-5
#define ABS 1e-7

static uint64_t lcg = 20261202;
static double urand(double a, double b) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return a + (b - a) * (double)(lcg >> 11) / 9007199254740992.0;
}

/* A float64 tensor of float-representable values in [a, b], and its
 * float32 copy, so that both kernels see the same numbers. */
static bk_tensor *rand64(bk_ctx *c, int nd, const int64_t *shape, double a, double b) {
    bk_tensor *t = bk_empty(c, BK_F64, nd, shape);
    for (int64_t i = 0; i < t->numel; i++) bk_data(t)[i] = (double)(float)urand(a, b);
    return t;
}

static bk_tensor *as32(bk_ctx *c, bk_tensor *t) {
    bk_tensor *r = bk_cast(c, t, BK_F32);
    ck_assert_msg(r != NULL, "%s", bk_errmsg(c));
    return r;
}

/* f32 (float32) against f64 (float64), elementwise. */
static void close_to(const char *what, const bk_tensor *f32, const bk_tensor *f64) {
    ck_assert_msg(f32 && f64, "%s: missing result", what);
    ck_assert_msg(f32->dtype == BK_F32, "%s: result is not float32", what);
    ck_assert_msg(f64->dtype == BK_F64, "%s: reference is not float64", what);
    ck_assert_msg(bk_same_shape(f32, f64), "%s: shapes differ", what);
    for (int64_t i = 0; i < f64->numel; i++) {
        double a = bk_get(f32, i), b = bk_get(f64, i);
        if (isinf(b) || isnan(b)) {
            ck_assert_msg(a == b || (isnan(a) && isnan(b)), "%s [%lld]: %g vs %g", what, (long long)i, a, b);
            continue;
        }
        ck_assert_msg(fabs(a - b) <= REL * fabs(b) + ABS, "%s [%lld]: float32 %.9g, float64 %.17g", what,
                      (long long)i, a, b);
    }
}

/* Domains where each unary op is defined and well conditioned. */
typedef struct unary_case {
    int op;
    double lo, hi;
} unary_case;

static const unary_case UNARY[] = {
    {BK_OP_NEG, -5, 5},      {BK_OP_ABS, -5, 5},      {BK_OP_EXP, -20, 20},
    {BK_OP_LOG, 0.01, 50},   {BK_OP_LOG1P, -0.9, 50}, {BK_OP_EXPM1, -5, 5},
    {BK_OP_SQRT, 0.01, 50},  {BK_OP_SQUARE, -5, 5},   {BK_OP_SIGMOID, -30, 30},
    {BK_OP_LOGIT, 0.01, 0.99}, {BK_OP_SOFTPLUS, -30, 30}, {BK_OP_LOG_SIGMOID, -30, 30},
    {BK_OP_TANH, -5, 5},     {BK_OP_RELU, -5, 5},     {BK_OP_SIN, -3, 3},
    {BK_OP_COS, -3, 3},      {BK_OP_LGAMMA, 2.5, 20}, {BK_OP_DIGAMMA, 0.5, 20},
    {BK_OP_TRIGAMMA, 0.5, 20}, {BK_OP_ERF, -3, 3},    {BK_OP_ERFC, -3, 3},
    {BK_OP_FLOOR, -5, 5},    {BK_OP_NOT, -2, 2},
};

START_TEST(unary_kernels) {
    bk_ctx *c = bk_ctx_new(NULL);
    for (size_t k = 0; k < sizeof UNARY / sizeof UNARY[0]; k++) {
        const unary_case *u = &UNARY[k];
        ck_assert(bk_native_f32(u->op));
        bk_tensor *x = rand64(c, 2, (int64_t[]){7, 33}, u->lo, u->hi);
        if (u->op == BK_OP_NOT) bk_data(x)[3] = 0;
        bk_tensor *x32 = as32(c, x);
        bk_tensor *r64 = bk_unop(c, u->op, x), *r32 = bk_unop(c, u->op, x32);
        close_to(bk_optable[u->op].name, r32, r64);
        /* a strided (transposed) float32 input takes the general walk */
        bk_tensor *t32 = bk_transpose(c, x32, 0, 1), *t64 = bk_transpose(c, x, 0, 1);
        bk_tensor *s32 = bk_unop(c, u->op, t32), *s64 = bk_unop(c, u->op, t64);
        close_to(bk_optable[u->op].name, s32, s64);
        bk_release(x), bk_release(x32), bk_release(r64), bk_release(r32);
        bk_release(t32), bk_release(t64), bk_release(s32), bk_release(s64);
    }
    bk_ctx_free(c);
}
END_TEST

static const int BINARY[] = {BK_OP_ADD, BK_OP_SUB, BK_OP_MUL, BK_OP_DIV, BK_OP_POW, BK_OP_MAXIMUM,
                             BK_OP_MINIMUM, BK_OP_LT, BK_OP_LE, BK_OP_GT, BK_OP_GE, BK_OP_EQ, BK_OP_NE};

START_TEST(binary_kernels) {
    bk_ctx *c = bk_ctx_new(NULL);
    /* same shape, bias row [B, n] + [n], scalar, general broadcast */
    const int64_t sa[4][2] = {{6, 9}, {6, 9}, {6, 9}, {6, 1}}, sb[4][2] = {{6, 9}, {1, 9}, {1, 1}, {1, 9}};
    const int nb[4] = {2, 1, 0, 2};
    for (int layout = 0; layout < 4; layout++)
        for (size_t k = 0; k < sizeof BINARY / sizeof BINARY[0]; k++) {
            int op = BINARY[k];
            bk_tensor *a = rand64(c, 2, sa[layout], 0.5, 3);
            int64_t bs[2] = {sb[layout][nb[layout] == 1 ? 1 : 0], sb[layout][1]};
            bk_tensor *b = rand64(c, nb[layout], nb[layout] == 1 ? &bs[1] : bs, 0.5, 3);
            if (op == BK_OP_EQ || op == BK_OP_NE) bk_data(a)[0] = bk_data(b)[0];
            bk_tensor *a32 = as32(c, a), *b32 = as32(c, b);
            bk_tensor *r64 = bk_binop(c, op, a, b), *r32 = bk_binop(c, op, a32, b32);
            close_to(bk_optable[op].name, r32, r64);
            bk_release(a), bk_release(b), bk_release(a32), bk_release(b32), bk_release(r64), bk_release(r32);
        }
    /* where(cond, a, b) with a float64 condition: float32 */
    bk_tensor *cond = rand64(c, 1, (int64_t[]){10}, -1, 1), *pos = bk_scalar(c, 0.0);
    bk_tensor *m = bk_binop(c, BK_OP_GT, cond, pos);
    bk_tensor *a = rand64(c, 1, (int64_t[]){10}, -1, 1), *b = rand64(c, 1, (int64_t[]){10}, -1, 1);
    bk_tensor *a32 = as32(c, a), *b32 = as32(c, b);
    bk_tensor *w64 = bk_where(c, m, a, b), *w32 = bk_where(c, m, a32, b32);
    close_to("where", w32, w64);
    bk_release(cond), bk_release(pos), bk_release(m), bk_release(a), bk_release(b);
    bk_release(a32), bk_release(b32), bk_release(w64), bk_release(w32);
    bk_ctx_free(c);
}
END_TEST

START_TEST(reduction_kernels) {
    bk_ctx *c = bk_ctx_new(NULL);
    const int ops[] = {BK_OP_SUM, BK_OP_MEAN, BK_OP_MAX, BK_OP_MIN, BK_OP_LOGSUMEXP, BK_OP_PROD};
    const int64_t axes[] = {0, 1, -1, BK_ALL_AXES};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int ai = 0; ai < 4; ai++)
            for (int keep = 0; keep < 2; keep++) {
                bk_tensor *x = rand64(c, 2, (int64_t[]){5, 8}, 0.5, 1.5), *x32 = as32(c, x);
                bk_tensor *r64 = bk_reduce(c, ops[k], x, axes[ai], keep), *r32 = bk_reduce(c, ops[k], x32, axes[ai], keep);
                close_to(bk_optable[ops[k]].name, r32, r64);
                bk_release(x), bk_release(x32), bk_release(r64), bk_release(r32);
            }
    bk_ctx_free(c);
}
END_TEST

/* The float32 sum accumulates in double. */
START_TEST(sum_accumulates_in_double) {
    bk_ctx *c = bk_ctx_new(NULL);
    int64_t n = 1000000;
    bk_tensor *x = bk_empty(c, BK_F32, 1, &n);
    float *p = bk_data_f32(x);
    double ref = 0;
    for (int64_t i = 0; i < n; i++) {
        p[i] = (float)urand(0, 0.2);
        ref += p[i];
    }
    bk_tensor *s = bk_sum_all(c, x);
    ck_assert_int_eq(s->dtype, BK_F32);
    ck_assert_msg(fabs(bk_item(s) - ref) <= 1e-7 * ref, "sum %.9g vs %.17g", bk_item(s), ref);
    bk_tensor *m = bk_reduce(c, BK_OP_MEAN, x, 0, false);
    ck_assert_msg(fabs(bk_item(m) - ref / (double)n) <= 1e-7 * ref / (double)n, "mean %.9g", bk_item(m));
    bk_release(x), bk_release(s), bk_release(m);
    bk_ctx_free(c);
}
END_TEST

START_TEST(nn_and_index_kernels) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = rand64(c, 2, (int64_t[]){12, 5}, -2, 2), *x32 = as32(c, x);
    bk_tensor *e64 = bk_elu(c, x, 1.0), *e32 = bk_elu(c, x32, 1.0);
    close_to("elu", e32, e64);
    bk_tensor *l64 = bk_leaky_relu(c, x, 0.01), *l32 = bk_leaky_relu(c, x32, 0.01);
    close_to("leaky_relu", l32, l64);
    /* x[idx] on the first axis (the minibatch gather), a slice, a fancy index */
    bk_tensor *idx = bk_from_f64(c, 1, (int64_t[]){4}, (double[]){3, 0, 11, 3});
    bk_idx rows = {.kind = BK_IDX_TENSOR, .idx = idx};
    bk_tensor *g64 = bk_index(c, x, 1, &rows), *g32 = bk_index(c, x32, 1, &rows);
    close_to("row gather", g32, g64);
    bk_idx sl[2] = {{.kind = BK_IDX_SLICE, .start = 0, .stop = 12, .step = 1},
                    {.kind = BK_IDX_SLICE, .start = 1, .stop = 4, .step = 1}};
    bk_tensor *v64 = bk_index(c, x, 2, sl), *v32 = bk_index(c, x32, 2, sl);
    close_to("slice", v32, v64);
    bk_idx fancy[2] = {{.kind = BK_IDX_SLICE, .start = 0, .stop = 12, .step = 2}, {.kind = BK_IDX_TENSOR, .idx = idx}};
    bk_tensor *idx2 = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){4, 1});
    fancy[1].idx = idx2;
    bk_tensor *f64 = bk_index(c, x, 2, fancy), *f32 = bk_index(c, x32, 2, fancy);
    close_to("fancy index", f32, f64);
    bk_release(x), bk_release(x32), bk_release(e64), bk_release(e32), bk_release(l64), bk_release(l32);
    bk_release(idx), bk_release(idx2), bk_release(g64), bk_release(g32), bk_release(v64), bk_release(v32);
    bk_release(f64), bk_release(f32);
    bk_ctx_free(c);
}
END_TEST

/* sum(f(in) * w) and the gradients of its inputs, in one dtype. */
typedef bk_tensor *(*fn_t)(bk_ctx *, bk_tensor **);

static bk_tensor *run_grads(bk_ctx *c, fn_t f, int n, bk_tensor **in, const double *w, bk_tensor **grads) {
    for (int i = 0; i < n; i++) bk_set_requires_grad(in[i], true);
    bk_set_grad_enabled(c, true);
    bk_tensor *out = f(c, in);
    ck_assert_msg(out != NULL, "%s", bk_errmsg(c));
    bk_tensor *wt = bk_from_f64(c, out->ndim, out->shape, w);
    bk_tensor *wc = out->dtype == BK_F32 ? as32(c, wt) : bk_retain(wt);
    bk_tensor *p = bk_mul(c, out, wc), *loss = bk_sum_all(c, p);
    ck_assert_msg(bk_backward(c, loss) == 0, "%s", bk_errmsg(c));
    for (int i = 0; i < n; i++) {
        ck_assert_msg(in[i]->grad != NULL, "input %d has no gradient", i);
        ck_assert_int_eq(in[i]->grad->dtype, in[i]->dtype); /* the leaf's dtype */
        grads[i] = bk_retain(in[i]->grad);
        bk_zero_grad(in[i]);
    }
    bk_release(wt), bk_release(wc), bk_release(p), bk_release(loss);
    bk_tape_reset(c);
    return out;
}

/* Runs f on float64 inputs and on their float32 copies; compares the
 * outputs and every input's gradient. */
static void compare_f32(const char *what, fn_t f, int n, bk_tensor **in64) {
    bk_ctx *c = in64[0]->ctx;
    bk_tensor *in32[BK_MAXIN + 4], *g64[BK_MAXIN + 4], *g32[BK_MAXIN + 4];
    for (int i = 0; i < n; i++) in32[i] = as32(c, in64[i]);
    bool g = bk_set_grad_enabled(c, false);
    bk_tensor *probe = f(c, in64);
    bk_set_grad_enabled(c, g);
    double *w = malloc(sizeof(double) * (size_t)probe->numel);
    for (int64_t e = 0; e < probe->numel; e++) w[e] = (double)(float)urand(-1, 1);
    bk_release(probe);
    bk_tensor *o64 = run_grads(c, f, n, in64, w, g64), *o32 = run_grads(c, f, n, in32, w, g32);
    close_to(what, o32, o64);
    for (int i = 0; i < n; i++) {
        close_to(what, g32[i], g64[i]);
        bk_release(g64[i]), bk_release(g32[i]), bk_release(in32[i]);
    }
    bk_release(o64), bk_release(o32);
    free(w);
}

static bk_tensor *f_normal_lp(bk_ctx *c, bk_tensor **in) {
    sl_dist *d = sl_dist_make(c, sl_find_family("Normal"), 0, 2, (bk_tensor *[]){in[1], in[2]});
    ck_assert_msg(d != NULL, "%s", bk_errmsg(c));
    bk_tensor *lp = sl_log_prob(c, d, in[0]);
    sl_dist_release(d);
    return lp;
}

static bk_tensor *f_bern_lp(bk_ctx *c, bk_tensor **in) {
    sl_dist *d = sl_dist_make(c, sl_find_family("Bernoulli"), 1, 1, (bk_tensor *[]){in[0]});
    ck_assert_msg(d != NULL, "%s", bk_errmsg(c));
    bk_tensor *lp = sl_log_prob(c, d, in[1]);
    sl_dist_release(d);
    return lp;
}

/* linear -> relu -> linear -> softplus -> tanh, with a sigmoid branch */
static bk_tensor *f_mlp(bk_ctx *c, bk_tensor **in) {
    bk_tensor *h = nn_linear(c, in[0], in[1], in[2]);
    bk_tensor *a = nn_activate(c, NN_ACT_RELU, 0, h);
    bk_tensor *o = nn_linear(c, a, in[3], in[4]);
    bk_tensor *s = nn_activate(c, NN_ACT_SOFTPLUS, 0, o);
    bk_tensor *t = nn_activate(c, NN_ACT_TANH, 0, s);
    bk_tensor *q = nn_activate(c, NN_ACT_SIGMOID, 0, o);
    bk_tensor *e = bk_unop(c, BK_OP_EXP, q);
    bk_tensor *r = bk_add(c, t, e);
    bk_release(h), bk_release(a), bk_release(o), bk_release(s), bk_release(t), bk_release(q), bk_release(e);
    return r;
}

START_TEST(fused_and_backward_kernels) {
    bk_ctx *c = bk_ctx_new(NULL);
    /* Normal: per-element loc and scale, and a shared scale */
    bk_tensor *nx = rand64(c, 2, (int64_t[]){6, 4}, -3, 3), *nm = rand64(c, 2, (int64_t[]){6, 4}, -1, 1);
    bk_tensor *ns = rand64(c, 2, (int64_t[]){6, 4}, 0.3, 2), *ns0 = rand64(c, 0, NULL, 0.3, 2);
    compare_f32("normal log_prob", f_normal_lp, 3, (bk_tensor *[]){nx, nm, ns});
    compare_f32("normal log_prob, shared scale", f_normal_lp, 3, (bk_tensor *[]){nx, nm, ns0});
    /* Bernoulli(logits): the gradient of the logits (the data's is 0) */
    bk_tensor *lg = rand64(c, 2, (int64_t[]){8, 16}, -30, 30), *y = rand64(c, 2, (int64_t[]){8, 16}, 0, 1);
    for (int64_t i = 0; i < y->numel; i++) bk_data(y)[i] = bk_data(y)[i] < 0.4 ? 1.0 : 0.0;
    compare_f32("bernoulli logits log_prob", f_bern_lp, 2, (bk_tensor *[]){lg, y});
    /* a small network's forward and all its gradients */
    bk_tensor *x = rand64(c, 2, (int64_t[]){9, 5}, -1, 1);
    bk_tensor *w1 = rand64(c, 2, (int64_t[]){5, 7}, -1, 1), *b1 = rand64(c, 1, (int64_t[]){7}, -0.5, 0.5);
    bk_tensor *w2 = rand64(c, 2, (int64_t[]){7, 3}, -1, 1), *b2 = rand64(c, 1, (int64_t[]){3}, -0.5, 0.5);
    compare_f32("mlp", f_mlp, 5, (bk_tensor *[]){x, w1, b1, w2, b2});
    bk_release(nx), bk_release(nm), bk_release(ns), bk_release(ns0), bk_release(lg), bk_release(y);
    bk_release(x), bk_release(w1), bk_release(b1), bk_release(w2), bk_release(b2);
    bk_ctx_free(c);
}
END_TEST

/* ------------------------------------------- Bernoulli(logits), float64 --- */

static long double bern_ref(long double y, long double l) {
    /* log sigmoid(l) = -log1p(exp(-l)), log(1 - sigmoid(l)) = -log1p(exp(l)) */
    if (y == 1) return l > 0 ? -log1pl(expl(-l)) : l - log1pl(expl(l));
    return l < 0 ? -log1pl(expl(l)) : -l - log1pl(expl(-l));
}

START_TEST(bernoulli_logits_values_and_gradient) {
    bk_ctx *c = bk_ctx_new(NULL);
    const double ls[] = {-745, -700, -50, -20, -3, -0.5, -1e-8, 0, 1e-8, 0.7, 4, 25, 50, 700, 745};
    int n = (int)(sizeof ls / sizeof ls[0]);
    int64_t sh = 2 * n;
    bk_tensor *l = bk_empty(c, BK_F64, 1, &sh), *y = bk_empty(c, BK_F64, 1, &sh);
    for (int i = 0; i < n; i++)
        for (int v = 0; v < 2; v++) {
            bk_data(l)[2 * i + v] = ls[i];
            bk_data(y)[2 * i + v] = v;
        }
    bk_tensor *lp = f_bern_lp(c, (bk_tensor *[]){l, y});
    for (int64_t k = 0; k < sh; k++) {
        long double ref = bern_ref(bk_data(y)[k], bk_data(l)[k]);
        double got = bk_get(lp, k);
        ck_assert_msg(isfinite(got), "l = %g, y = %g: %g", bk_data(l)[k], bk_data(y)[k], got);
        ck_assert_msg(fabsl(got - ref) <= 4e-16L * fabsl(ref) + 1e-300L, "l = %g, y = %g: %.17g vs %.17Lg",
                      bk_data(l)[k], bk_data(y)[k], got, ref);
    }
    bk_release(lp), bk_release(l), bk_release(y);
    /* values outside {0, 1}: -inf, and no gradient */
    bk_tensor *yb = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){0.5, 2});
    bk_tensor *lb = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){0.3, -0.3});
    bk_set_requires_grad(lb, true);
    bk_tensor *lpb = f_bern_lp(c, (bk_tensor *[]){lb, yb}), *sb = bk_sum_all(c, lpb);
    ck_assert(isinf(bk_get(lpb, 0)) && bk_get(lpb, 0) < 0 && isinf(bk_get(lpb, 1)));
    ck_assert_int_eq(bk_backward(c, sb), 0);
    ck_assert(bk_get(lb->grad, 0) == 0 && bk_get(lb->grad, 1) == 0);
    bk_tape_reset(c);
    bk_release(yb), bk_release(lb), bk_release(lpb), bk_release(sb);
    /* gradient of sum(w * lp) against central differences, moderate logits */
    int64_t m = 24;
    bk_tensor *l2 = bk_empty(c, BK_F64, 1, &m), *y2 = bk_empty(c, BK_F64, 1, &m);
    double w[24];
    for (int64_t k = 0; k < m; k++) {
        bk_data(l2)[k] = urand(-8, 8);
        bk_data(y2)[k] = urand(0, 1) < 0.5;
        w[k] = urand(-1, 1);
    }
    bk_tensor *g[2];
    bk_tensor *o = run_grads(c, f_bern_lp, 1, (bk_tensor *[]){l2, y2}, w, g);
    bk_release(o);
    bool gr = bk_set_grad_enabled(c, false);
    for (int64_t k = 0; k < m; k++) {
        double x0 = bk_data(l2)[k], h = 1e-6, f[2];
        for (int s = 0; s < 2; s++) {
            bk_data(l2)[k] = x0 + (s ? -h : h);
            bk_tensor *v = f_bern_lp(c, (bk_tensor *[]){l2, y2});
            f[s] = 0;
            for (int64_t e = 0; e < m; e++) f[s] += w[e] * bk_get(v, e);
            bk_release(v);
        }
        bk_data(l2)[k] = x0;
        double fd = (f[0] - f[1]) / (2 * h), ad = bk_get(g[0], k);
        ck_assert_msg(fabs(fd - ad) <= 1e-7 * fmax(1, fabs(fd)), "d/dl[%lld]: %.12g vs fd %.12g", (long long)k, ad, fd);
        /* and the closed form w (y - sigmoid(l)) */
        double an = w[k] * (bk_data(y2)[k] - 1 / (1 + exp(-x0)));
        ck_assert_msg(fabs(an - ad) <= 1e-15 * fmax(1, fabs(an)) + 1e-16, "d/dl[%lld]: %.17g vs %.17g", (long long)k, ad, an);
    }
    bk_set_grad_enabled(c, gr);
    bk_release(g[0]), bk_release(l2), bk_release(y2);
    bk_ctx_free(c);
}
END_TEST

/* The float64 kernel's own exp and log1p (dist_bernoulli.c) over a dense
 * sweep of logits from -750 to 750: log p within 4 ulp of the long double
 * value, d log p / d l = y - sigmoid(l) within 4 ulp of it too; and every
 * element gets the same bits whatever the tensor's length (the vector loop,
 * its scalar tail, a one-element call, a strided view). */
START_TEST(bernoulli_logits_sweep) {
    bk_ctx *c = bk_ctx_new(NULL);
    int64_t m = 6007; /* odd: a scalar tail after the vector loop */
    bk_tensor *l = bk_empty(c, BK_F64, 1, &m), *y = bk_empty(c, BK_F64, 1, &m);
    for (int64_t k = 0; k < m; k++) {
        double u = (double)k / (double)(m - 1) * 2 - 1; /* -1 .. 1, denser near 0 below */
        bk_data(l)[k] = k % 3 == 0 ? 750 * u : k % 3 == 1 ? 30 * u * fabs(u) : urand(-4, 4);
        bk_data(y)[k] = k & 1;
    }
    double *w = malloc(sizeof(double) * (size_t)m);
    for (int64_t k = 0; k < m; k++) w[k] = 1;
    bk_tensor *g[2];
    bk_tensor *lp = run_grads(c, f_bern_lp, 1, (bk_tensor *[]){l, y}, w, g);
    bool gr = bk_set_grad_enabled(c, false);
    for (int64_t k = 0; k < m; k++) {
        long double lv = bk_data(l)[k], yv = bk_data(y)[k];
        /* y - sigmoid(l) as sigmoid(-l) for y = 1: no cancellation in the reference */
        long double ref = bern_ref(yv, lv), dref = yv == 1 ? 1 / (1 + expl(lv)) : -1 / (1 + expl(-lv));
        double got = bk_get(lp, k), dgot = bk_get(g[0], k);
        ck_assert_msg(fabsl(got - ref) <= 8.9e-16L * fabsl(ref) + 1e-320L, "l = %.17g, y = %g: %.17g vs %.17Lg",
                      (double)lv, (double)yv, got, ref);
        ck_assert_msg(fabsl(dgot - dref) <= 8.9e-16L * fabsl(dref) + 1e-320L, "d/dl at l = %.17g, y = %g: %.17g vs %.17Lg",
                      (double)lv, (double)yv, dgot, dref);
    }
    /* one element at a time, and every third element through a strided view: the same bits */
    for (int64_t k = 0; k < m; k += 97) {
        bk_tensor *l1 = bk_from_f64(c, 1, (int64_t[]){1}, bk_data(l) + k);
        bk_tensor *y1 = bk_from_f64(c, 1, (int64_t[]){1}, bk_data(y) + k);
        bk_tensor *o = f_bern_lp(c, (bk_tensor *[]){l1, y1});
        ck_assert(bk_get(o, 0) == bk_get(lp, k));
        bk_release(o), bk_release(l1), bk_release(y1);
    }
    int64_t m3 = (m - 2) / 3 + 1, st = 3; /* elements 1, 4, 7, ... */
    bk_tensor *ls = bk_view(c, l, 1, &m3, &st, 1), *ys = bk_view(c, y, 1, &m3, &st, 1);
    ck_assert_msg(ls && ys, "%s", bk_errmsg(c));
    bk_tensor *os = f_bern_lp(c, (bk_tensor *[]){ls, ys});
    for (int64_t k = 0; k < os->numel; k++) ck_assert(bk_get(os, k) == bk_get(lp, 1 + 3 * k));
    bk_set_grad_enabled(c, gr);
    bk_release(os), bk_release(ls), bk_release(ys);
    bk_release(lp), bk_release(g[0]), bk_release(l), bk_release(y);
    free(w);
    bk_ctx_free(c);
}
END_TEST

/* ------------------------------------------------------- dtype rules --- */

START_TEST(promotion_rules) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *v32 = bk_full(c, BK_F32, 1, (int64_t[]){3}, 1.5), *v64 = bk_full(c, BK_F64, 1, (int64_t[]){3}, 2);
    bk_tensor *s32 = bk_full(c, BK_F32, 0, NULL, 1), *s64 = bk_scalar(c, 2);
    struct { bk_tensor *a, *b; int want; } cases[] = {
        {v32, v32, BK_F32}, {v32, v64, BK_F64}, {v64, v32, BK_F64}, /* dimensioned: float64 wins */
        {v32, s64, BK_F32}, {s64, v32, BK_F32},                     /* a 0-d float64 does not widen */
        {v64, s32, BK_F64}, {s32, s64, BK_F64}, {s32, s32, BK_F32}, /* all 0-d: float64 wins */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ck_assert_int_eq(bk_promote(2, (bk_tensor *[]){cases[k].a, cases[k].b}), cases[k].want);
        bk_tensor *r = bk_add(c, cases[k].a, cases[k].b);
        ck_assert_msg(r && r->dtype == cases[k].want, "case %zu", k);
        ck_assert(fabs(bk_get(r, 0) - (bk_get(cases[k].a, 0) + bk_get(cases[k].b, 0))) < 1e-6);
        bk_release(r);
    }
    /* a scalar constant keeps float32 through the convenience wrappers */
    bk_tensor *m = bk_mul_s(c, v32, 3.0);
    ck_assert_int_eq(m->dtype, BK_F32);
    /* matmul: float32 only when both are */
    bk_tensor *a32 = bk_full(c, BK_F32, 2, (int64_t[]){2, 3}, 1), *b64 = bk_full(c, BK_F64, 2, (int64_t[]){3, 2}, 1);
    bk_tensor *mm = bk_matmul(c, a32, b64);
    ck_assert_int_eq(mm->dtype, BK_F64);
    ck_assert(bk_get(mm, 0) == 3);
    /* an index tensor does not promote what it indexes */
    bk_tensor *ix = bk_from_f64(c, 1, (int64_t[]){2}, (double[]){2, 0});
    bk_tensor *sel = bk_index_select(c, v32, 0, ix);
    ck_assert_int_eq(sel->dtype, BK_F32);
    ck_assert(bk_get(sel, 0) == 1.5);
    bk_release(ix), bk_release(sel);
    /* gradients come back in each leaf's dtype */
    bk_set_requires_grad(v32, true);
    bk_set_requires_grad(v64, true);
    bk_tensor *p = bk_mul(c, v32, v64), *e = bk_unop(c, BK_OP_EXP, p), *loss = bk_sum_all(c, e);
    ck_assert_int_eq(p->dtype, BK_F64);
    ck_assert_int_eq(bk_backward(c, loss), 0);
    ck_assert_int_eq(v32->grad->dtype, BK_F32);
    ck_assert_int_eq(v64->grad->dtype, BK_F64);
    ck_assert(fabs(bk_get(v32->grad, 0) - 2 * exp(3.0)) < 1e-5 * 2 * exp(3.0));
    ck_assert(fabs(bk_get(v64->grad, 0) - 1.5 * exp(3.0)) < 1e-12 * exp(3.0));
    bk_tape_reset(c);
    bk_release(p), bk_release(e), bk_release(loss), bk_release(m), bk_release(a32), bk_release(b64), bk_release(mm);
    bk_release(v32), bk_release(v64), bk_release(s32), bk_release(s64);
    bk_ctx_free(c);
}
END_TEST

/* ---------------------------------------------------- in the language --- */

typedef struct outbuf {
    char text[4096];
    size_t n;
} outbuf;

static void collect(void *ud, const char *text, size_t len) {
    outbuf *o = ud;
    if (o->n + len < sizeof o->text) {
        memcpy(o->text + o->n, text, len);
        o->n += len;
        o->text[o->n] = 0;
    }
}

/* Runs src in a fresh state; its output in *o; the state (caller closes). */
static ppl_state *run_program(const char *src, outbuf *o, ppl_status *st) {
    ppl_options opt = ppl_default_options();
    o->n = 0;
    o->text[0] = 0;
    opt.out = collect;
    opt.out_ud = o;
    ppl_state *S = ppl_open(&opt);
    *st = ppl_load_string(S, "<f32 test>", src);
    return S;
}

static double global(ppl_state *S, const char *name) {
    double v = NAN;
    size_t n;
    ck_assert_msg(ppl_get_f64(S, name, &v, 1, &n) == PPL_OK, "%s", ppl_errmsg(S));
    return v;
}

START_TEST(language_dtypes) {
    outbuf o;
    ppl_status st;
    ppl_state *S = run_program(
        "x = float32(ones([2, 3]))\n"
        "print(dtype(x), dtype(x + 1.0), dtype(x + zeros([3])), dtype(float64(x)), dtype(sum(x)))\n"
        "net = MLP(\"n\", [3, 4, 2], seed=1, dtype=\"float32\")\n"
        "y32 = net(ones([2, 3]))\n"
        "clear_params()\n"
        "net64 = MLP(\"n\", [3, 4, 2], seed=1)\n"
        "print(dtype(y32), dtype(net64(x)))\n"
        "d = max(abs(float64(y32) - net64(ones([2, 3]))))\n",
        &o, &st);
    ck_assert_msg(st == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_str_eq(o.text, "float32 float32 float64 float64 float32\nfloat32 float64\n");
    /* the same seeded weights, rounded to float */
    ck_assert_double_lt(global(S, "d"), 1e-5);
    ppl_close(S);
    /* save_params / load_params round-trip of float32 weights */
    S = run_program("net = MLP(\"n\", [3, 4, 2], seed=1, dtype=\"float32\")\n"
                    "y0 = net(ones([1, 3]))\n"
                    "save_params(\"test_f32_params.json\")\n"
                    "clear_params()\n"
                    "net2 = MLP(\"n\", [3, 4, 2], seed=5, dtype=\"float32\")\n"
                    "load_params(\"test_f32_params.json\")\n"
                    "d = max(abs(net2(ones([1, 3])) - y0))\n",
                    &o, &st);
    ck_assert_msg(st == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_double_eq(global(S, "d"), 0);
    remove("test_f32_params.json");
    ppl_close(S);
    S = run_program("net = MLP(\"n\", [3, 2], dtype=\"float16\")\n", &o, &st);
    ck_assert_int_ne(st, PPL_OK);
    ck_assert_msg(strstr(ppl_errmsg(S), "dtype must be") != NULL, "%s", ppl_errmsg(S));
    ppl_close(S);
}
END_TEST

/* SVI with float32 weights (and data) reaches the float64 fit. */
START_TEST(svi_float32_weights) {
    outbuf o;
    ppl_status st;
    ppl_state *S = run_program(
        "X = Normal(0.0, 1.0).sample([200, 3])\n"
        "Y = matmul(X, [1.0, -2.0, 0.5]) + 0.1 * Normal(0.0, 1.0).sample([200])\n"
        "n64 = Linear(3, 1, name=\"l64\")\n"
        "n32 = Linear(3, 1, name=\"l32\", dtype=\"float32\")\n"
        "model m64(X, Y) { observe Y ~ Normal(n64(X)[:, 0], 0.1) }\n"
        "model m32(X, Y) { observe Y ~ Normal(n32(X)[:, 0], 0.1) }\n"
        "guide g(X, Y) { }\n"
        "f64 = svi(m64, g, {X: X, Y: Y}, steps=600, optim=Adam(lr=0.02), seed=3, summary_samples=0)\n"
        "f32 = svi(m32, g, {X: float32(X), Y: float32(Y)}, steps=600, optim=Adam(lr=0.02), seed=3, summary_samples=0)\n"
        "E = eye(3)\n"
        "w64 = n64(E)[:, 0] - n64(zeros([3, 3]))[:, 0]\n"
        "w32 = float64(n32(E)[:, 0] - n32(zeros([3, 3]))[:, 0])\n"
        "wdiff = max(abs(w32 - w64))\n"
        "werr = max(abs(w64 - [1.0, -2.0, 0.5]))\n"
        "kind = dtype(n32(E))\n",
        &o, &st);
    ck_assert_msg(st == PPL_OK, "%s", ppl_errmsg(S));
    ck_assert_double_lt(global(S, "werr"), 0.05); /* the least-squares fit: se about 0.007 */
    ck_assert_double_lt(global(S, "wdiff"), 1e-3);
    ppl_close(S);
}
END_TEST

int main(void) {
    Suite *s = suite_create("f32");
    TCase *t = tcase_create("f32");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, unary_kernels);
    tcase_add_test(t, binary_kernels);
    tcase_add_test(t, reduction_kernels);
    tcase_add_test(t, sum_accumulates_in_double);
    tcase_add_test(t, nn_and_index_kernels);
    tcase_add_test(t, fused_and_backward_kernels);
    tcase_add_test(t, bernoulli_logits_values_and_gradient);
    tcase_add_test(t, bernoulli_logits_sweep);
    tcase_add_test(t, promotion_rules);
    tcase_add_test(t, language_dtypes);
    tcase_add_test(t, svi_float32_weights);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int nf = srunner_ntests_failed(r);
    srunner_free(r);
    return nf ? 1 : 0;
}
