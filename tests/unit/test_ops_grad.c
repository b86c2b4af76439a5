/* test_ops_grad.c - every op of the op table against central finite
 * differences, in float64, on random inputs (including broadcasting and
 * non-contiguous views).  The test loops over bk_optable: an op without a
 * case in CASES fails ("op X has no gradient test"), so a new op cannot
 * land untested.
 *
 * A case builds its output from its inputs with a small function, so ops
 * that need well-conditioned inputs (cholesky of X X^T + n I, say) get them
 * through differentiable preprocessing.  The loss is sum(out * w) for a
 * random w; its gradient from the tape must match the central difference
 * (h = 1e-6 relative) to a relative error below 1e-6.
 *
 * Case format (struct gcase below), for the gradcases_*.inc files:
 *   {op, "label", nin, {ndim of each input}, {{shape of input 0}, ...},
 *    {domain of each input: ANY (-1.5, 1.5), POS (0.3, 2.3), UNIT
 *     (0.1, 0.9), BIG (-4, 4)},
 *    transpose0 (input 0, 2-d, is passed as a transposed view),
 *    fn (NULL: bk_apply(op, inputs, no args); else a function
 *        bk_tensor *fn(bk_ctx *, bk_tensor **in) that builds the output,
 *        setting up bk_opargs or preprocessing inputs as needed),
 *    no_grad (true: forward values only)}
 * At most 3 inputs of at most 3 dimensions.  Every input gets a gradient
 * check.  A .inc file is included twice: without GRADCASES_ROWS defined
 * (file scope: its case functions) and with it (inside the CASES
 * initializer: its rows).  gradcases_elementwise.inc holds the
 * elementwise / reduction / scan cases, gradcases_shape.inc the shape,
 * indexing and linear-algebra ones. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tensor.h"

enum { ANY, POS, UNIT, BIG }; /* input domains */

typedef bk_tensor *(*case_fn)(bk_ctx *, bk_tensor **in);

typedef struct gcase {
    int op;
    const char *label;
    int nin;
    int ndim[3];
    int64_t shape[3][3];
    int domain[3];
    bool transpose0;    /* pass input 0 as a transposed (non-contiguous) view */
    case_fn fn;         /* NULL: bk_apply(op) with no args */
    bool no_grad;       /* forward only (comparisons, floor, ...) */
} gcase;

/* X X^T + n I: a well-conditioned symmetric positive definite matrix */
static bk_tensor *spd(bk_ctx *c, bk_tensor *x) {
    bk_tensor *xt = bk_transpose(c, x, 0, 1);
    bk_tensor *a = bk_matmul(c, x, xt);
    bk_tensor *i = bk_eye(c, x->shape[0]);
    bk_tensor *ni = bk_mul_s(c, i, (double)x->shape[0]);
    bk_tensor *r = bk_add(c, a, ni);
    bk_release(xt);
    bk_release(a);
    bk_release(i);
    bk_release(ni);
    return r;
}

static bk_tensor *f_chol(bk_ctx *c, bk_tensor **in) {
    bk_tensor *s = spd(c, in[0]);
    bk_tensor *r = bk_cholesky(c, s);
    bk_release(s);
    return r;
}

static bk_tensor *f_logdet(bk_ctx *c, bk_tensor **in) {
    bk_tensor *s = spd(c, in[0]);
    bk_tensor *r = bk_logdet(c, s);
    bk_release(s);
    return r;
}

static bk_tensor *f_inverse(bk_ctx *c, bk_tensor **in) {
    bk_tensor *s = spd(c, in[0]);
    bk_tensor *r = bk_inverse(c, s);
    bk_release(s);
    return r;
}

static bk_tensor *f_solve(bk_ctx *c, bk_tensor **in) {
    /* a lower-triangular, well-conditioned A from cholesky(spd(X)) */
    bk_tensor *s = spd(c, in[0]);
    bk_tensor *l = bk_cholesky(c, s);
    bk_tensor *r = bk_solve_triangular(c, l, in[1], false);
    bk_release(s);
    bk_release(l);
    return r;
}

static bk_tensor *f_reshape(bk_ctx *c, bk_tensor **in) { return bk_reshape(c, in[0], 2, (int64_t[]){3, 2}); }
static bk_tensor *f_transpose(bk_ctx *c, bk_tensor **in) { return bk_transpose(c, in[0], 0, 1); }
static bk_tensor *f_expand(bk_ctx *c, bk_tensor **in) { return bk_expand(c, in[0], 2, (int64_t[]){4, 3}); }
static bk_tensor *f_concat(bk_ctx *c, bk_tensor **in) { return bk_concat(c, 2, in, 0); }
static bk_tensor *f_stack(bk_ctx *c, bk_tensor **in) { return bk_stack(c, 2, in, 1); }
static bk_tensor *f_contig(bk_ctx *c, bk_tensor **in) { return bk_contiguous(c, in[0]); }

static bk_tensor *f_cast(bk_ctx *c, bk_tensor **in) {
    /* f64 -> f32 -> f64 loses precision; the gradient of cast is identity,
     * so check cast to f64 (a copy) */
    return bk_cast(c, in[0], BK_F64);
}

static bk_tensor *f_index(bk_ctx *c, bk_tensor **in) {
    bk_idx idx[2] = {{.kind = BK_IDX_SLICE, .start = 2, .stop = 0, .step = -1}, {.kind = BK_IDX_INT, .start = 1}};
    return bk_index(c, in[0], 2, idx);
}

static bk_tensor *f_index_put(bk_ctx *c, bk_tensor **in) {
    bk_idx idx[1] = {{.kind = BK_IDX_INT, .start = 1}};
    return bk_index_put(c, in[0], 1, idx, in[1]);
}

static bk_tensor *f_index_select(bk_ctx *c, bk_tensor **in) {
    bk_tensor *i = bk_from_f64(c, 1, (int64_t[]){4}, (double[]){2, 0, 2, 1});
    bk_tensor *r = bk_index_select(c, in[0], 0, i);
    bk_release(i);
    return r;
}

static bk_tensor *f_gather(bk_ctx *c, bk_tensor **in) {
    bk_tensor *i = bk_from_f64(c, 2, (int64_t[]){3, 2}, (double[]){0, 2, 1, 1, 2, 0});
    bk_tensor *r = bk_gather(c, in[0], 1, i);
    bk_release(i);
    return r;
}

/* hmm_forward: in = {logpi, A, logB}; the lengths cut the batch (the
 * padded steps of the second sequence must get a zero gradient) */
static bk_tensor *f_hmm(bk_ctx *c, bk_tensor **in) {
    int64_t B = in[2]->ndim == 3 ? in[2]->shape[0] : 1;
    bk_tensor *len = B == 2 ? bk_from_f64(c, 1, (int64_t[]){2}, (double[]){4, 2})
                            : bk_from_f64(c, 1, (int64_t[]){1}, (double[]){(double)in[2]->shape[0]});
    bk_tensor *args[4] = {in[0], in[1], in[2], len};
    bk_tensor *r = bk_apply(c, BK_OP_HMM_FORWARD, 4, args, NULL);
    bk_release(len);
    return r;
}

/* hmm_forward_cat: in = {logpi, A, logE [K, V]}; two sequences of
 * symbols, the second padded (-1) after 2 steps */
static bk_tensor *f_hmm_cat(bk_ctx *c, bk_tensor **in) {
    bk_tensor *y = bk_from_f64(c, 2, (int64_t[]){2, 4}, (double[]){0, 3, 1, 1, 2, 0, -1, -1});
    bk_tensor *args[4] = {in[0], in[1], in[2], y};
    bk_tensor *r = bk_apply(c, BK_OP_HMM_FORWARD_CAT, 4, args, NULL);
    bk_release(y);
    return r;
}

/* A fused kernel for the FUSED op: out = x * y + sin(z). */
static void tk_forward(int64_t n, const double *const *x, const int64_t *inc, double *out) {
    for (int64_t k = 0; k < n; k++) out[k] = x[0][k * inc[0]] * x[1][k * inc[1]] + sin(x[2][k * inc[2]]);
}

static void tk_backward(int64_t n, const double *const *x, const int64_t *inc, const double *out,
                        const double *g, int64_t ginc, double *const *gx) {
    (void)out;
    for (int64_t k = 0; k < n; k++) {
        if (gx[0]) gx[0][k] = g[k * ginc] * x[1][k * inc[1]];
        if (gx[1]) gx[1][k] = g[k * ginc] * x[0][k * inc[0]];
        if (gx[2]) gx[2][k] = g[k * ginc] * cos(x[2][k * inc[2]]);
    }
}

static const bk_fused test_kernel = {"x*y+sin(z)", 3, tk_forward, tk_backward, NULL, NULL};
static bk_tensor *f_fused(bk_ctx *c, bk_tensor **in) { return bk_fused_apply(c, &test_kernel, in); }

#define S2(a, b) {a, b, 0}
#define S1(a) {a, 0, 0}
#include "gradcases_shape.inc"       /* case functions of the shape/linalg ops */
#include "gradcases_elementwise.inc" /* case functions of the elementwise ops */
static const gcase CASES[] = {
#define GRADCASES_ROWS
#include "gradcases_shape.inc"       /* more shape, index and linalg cases */
#include "gradcases_elementwise.inc" /* elementwise, reduction and scan cases */
#undef GRADCASES_ROWS
    {BK_OP_MATMUL, "matmul", 2, {2, 2}, {S2(3, 4), S2(4, 2)}, {ANY, ANY}, false, NULL, false},
    {BK_OP_MATMUL, "matvec transposed", 2, {2, 1}, {S2(3, 4), S1(4)}, {ANY, ANY}, true, NULL, false},
    {BK_OP_CHOLESKY, "cholesky", 1, {2}, {S2(3, 3)}, {ANY}, false, f_chol, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve_triangular", 2, {2, 2}, {S2(3, 3), S2(3, 2)}, {ANY, ANY}, false, f_solve, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve_triangular, one column", 2, {2, 2}, {S2(3, 3), S2(3, 1)}, {ANY, ANY}, false, f_solve, false},
    {BK_OP_SOLVE_TRIANGULAR, "solve_triangular, vector n 10", 2, {2, 1}, {S2(10, 10), S1(10)}, {ANY, ANY}, false, f_solve, false},
    {BK_OP_LOGDET, "logdet", 1, {2}, {S2(3, 3)}, {ANY}, false, f_logdet, false},
    {BK_OP_INVERSE, "inverse", 1, {2}, {S2(3, 3)}, {ANY}, false, f_inverse, false},
    {BK_OP_RESHAPE, "reshape", 1, {2}, {S2(2, 3)}, {ANY}, true, f_reshape, false},
    {BK_OP_TRANSPOSE, "transpose", 1, {2}, {S2(2, 3)}, {ANY}, false, f_transpose, false},
    {BK_OP_EXPAND, "expand", 1, {2}, {S2(1, 3)}, {ANY}, false, f_expand, false},
    {BK_OP_CONCAT, "concat", 2, {2, 2}, {S2(2, 3), S2(1, 3)}, {ANY, ANY}, false, f_concat, false},
    {BK_OP_STACK, "stack", 2, {2, 2}, {S2(2, 3), S2(2, 3)}, {ANY, ANY}, false, f_stack, false},
    {BK_OP_INDEX, "index slice/int", 1, {2}, {S2(4, 3)}, {ANY}, false, f_index, false},
    {BK_OP_INDEX_PUT, "index_put", 2, {2, 1}, {S2(3, 4), S1(4)}, {ANY, ANY}, false, f_index_put, false},
    {BK_OP_INDEX_SELECT, "index_select", 1, {2}, {S2(3, 2)}, {ANY}, false, f_index_select, false},
    {BK_OP_GATHER, "gather", 1, {2}, {S2(3, 3)}, {ANY}, false, f_gather, false},
    {BK_OP_CONTIGUOUS, "contiguous", 1, {2}, {S2(3, 2)}, {ANY}, true, f_contig, false},
    {BK_OP_CAST, "cast", 1, {1}, {S1(4)}, {ANY}, false, f_cast, false},
    {BK_OP_HMM_FORWARD, "hmm_forward batch + lengths", 3, {1, 2, 3}, {S1(3), S2(3, 3), {2, 4, 3}}, {ANY, POS, ANY}, false, f_hmm, false},
    {BK_OP_HMM_FORWARD, "hmm_forward time-varying", 3, {1, 3, 2}, {S1(3), {4, 3, 3}, S2(4, 3)}, {ANY, POS, ANY}, false, f_hmm, false},
    {BK_OP_HMM_FORWARD_CAT, "hmm_forward_cat batch + padding", 3, {1, 2, 2}, {S1(3), S2(3, 3), S2(3, 4)}, {ANY, POS, ANY}, false, f_hmm_cat, false},
    {BK_OP_HMM_FORWARD, "hmm_forward K = 25 (BLAS)", 3, {1, 2, 2}, {S1(25), S2(25, 25), S2(3, 25)}, {ANY, POS, ANY}, false, f_hmm, false},
    /* rows of a broadcast with a transposed input; one flat row with a 0-d input */
    {BK_OP_FUSED, "fused broadcast rows", 3, {2, 1, 2}, {S2(2, 3), S1(3), S2(2, 1)}, {ANY, ANY, ANY}, true, f_fused, false},
    {BK_OP_FUSED, "fused flat", 3, {1, 0, 1}, {S1(4), S1(0), S1(4)}, {ANY, ANY, ANY}, false, f_fused, false},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static uint64_t lcg = 12345;
static double urand(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

static double draw(int domain) {
    switch (domain) {
    case POS: return 0.3 + 2.0 * urand();
    case UNIT: return 0.1 + 0.8 * urand();
    case BIG: return -4 + 8 * urand();
    default: return -1.5 + 3 * urand();
    }
}

static bk_tensor *make_input(bk_ctx *c, const gcase *k, int i) {
    int nd = k->ndim[i];
    int64_t shape[3];
    for (int d = 0; d < nd; d++) shape[d] = k->shape[i][d];
    bool tr = i == 0 && k->transpose0 && nd == 2;
    if (tr) { /* store transposed, view it back */
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
    }
    bk_tensor *x = bk_empty(c, BK_F64, nd, shape);
    for (int64_t e = 0; e < x->numel; e++) bk_data(x)[e] = draw(k->domain[i]);
    if (!tr) return x;
    int64_t vs[2] = {shape[1], shape[0]}, st[2] = {x->strides[1], x->strides[0]};
    bk_tensor *v = bk_view(c, x, 2, vs, st, 0);
    bk_release(x);
    return v;
}

static bk_tensor *run_case(bk_ctx *c, const gcase *k, bk_tensor **in) {
    return k->fn ? k->fn(c, in) : bk_apply(c, k->op, k->nin, in, NULL);
}

/* loss = sum(out * w) as a double, without the tape */
static double loss_value(bk_ctx *c, const gcase *k, bk_tensor **in, const double *w) {
    bool g = bk_set_grad_enabled(c, false);
    bk_tensor *out = run_case(c, k, in);
    bk_set_grad_enabled(c, g);
    ck_assert_msg(out != NULL, "%s: %s", k->label, bk_errmsg(c));
    double s = 0;
    for (int64_t e = 0; e < out->numel; e++) s += bk_get(out, e) * w[e];
    bk_release(out);
    return s;
}

static void check_case(const gcase *k) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *in[3] = {0};
    for (int i = 0; i < k->nin; i++) in[i] = make_input(c, k, i);
    bk_tensor *out = run_case(c, k, in);
    ck_assert_msg(out != NULL, "%s forward: %s", k->label, bk_errmsg(c));
    double *w = malloc(sizeof(double) * (size_t)(out->numel ? out->numel : 1));
    for (int64_t e = 0; e < out->numel; e++) w[e] = draw(ANY);
    if (k->no_grad) {
        /* forward values against the scalar definition */
        for (int64_t e = 0; e < out->numel && k->nin <= 2; e++) {
            double a = bk_get(in[0], e), b = k->nin == 2 ? bk_get(in[1], e) : 0, want;
            switch (k->op) {
            case BK_OP_LT: want = a < b; break;
            case BK_OP_LE: want = a <= b; break;
            case BK_OP_GT: want = a > b; break;
            case BK_OP_GE: want = a >= b; break;
            case BK_OP_EQ: want = a == b; break;
            case BK_OP_NE: want = a != b; break;
            case BK_OP_FLOOR: want = floor(a); break;
            case BK_OP_NOT: want = a == 0; break;
            default: want = bk_get(out, e); /* trigamma: checked by fixtures */
            }
            ck_assert_msg(bk_get(out, e) == want, "%s element %lld", k->label, (long long)e);
        }
        bk_release(out);
    } else {
        bk_release(out);
        for (int i = 0; i < k->nin; i++) bk_set_requires_grad(in[i], true);
        out = run_case(c, k, in);
        bk_tensor *wt = bk_from_f64(c, out->ndim, out->shape, w);
        bk_tensor *p = bk_mul(c, out, wt);
        bk_tensor *loss = bk_sum_all(c, p);
        ck_assert_msg(bk_backward(c, loss) == 0, "%s backward: %s", k->label, bk_errmsg(c));
        for (int i = 0; i < k->nin; i++) {
            bk_tensor *x = in[i];
            for (int64_t e = 0; e < x->numel; e++) {
                double x0 = bk_get(x, e), h = 1e-6 * fmax(1.0, fabs(x0));
                bk_set(x, e, x0 + h);
                double fp = loss_value(c, k, in, w);
                bk_set(x, e, x0 - h);
                double fm = loss_value(c, k, in, w);
                bk_set(x, e, x0);
                double fd = (fp - fm) / (2 * h), ad = x->grad ? bk_get(x->grad, e) : 0.0;
                double err = fabs(fd - ad) / fmax(1.0, fabs(fd));
                ck_assert_msg(err < 1e-6, "%s: d/d input %d [%lld]: tape %.12g, finite difference %.12g",
                              k->label, i, (long long)e, ad, fd);
            }
        }
        bk_release(wt);
        bk_release(p);
        bk_release(loss);
        bk_release(out);
    }
    bk_tape_reset(c);
    for (int i = 0; i < k->nin; i++) bk_release(in[i]);
    free(w);
    bk_ctx_free(c);
}

START_TEST(every_op_has_a_case) {
    for (int op = 0; op < BK_OP_COUNT; op++) {
        bool found = false;
        for (int i = 0; i < NCASES; i++)
            if (CASES[i].op == op) found = true;
        ck_assert_msg(found, "op %s has no gradient test", bk_optable[op].name);
    }
}
END_TEST

START_TEST(gradients_match_finite_differences) { check_case(&CASES[_i]); }
END_TEST

/* the gradient goes to the first maximum / minimum on ties */
START_TEST(max_min_ties_go_to_the_first) {
    bk_ctx *c = bk_ctx_new(NULL);
    bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){4}, (double[]){1, 3, 3, -2});
    bk_set_requires_grad(x, true);
    bk_tensor *m = bk_reduce(c, BK_OP_MAX, x, 0, false);
    ck_assert(bk_backward(c, m) == 0);
    const double want[4] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) ck_assert(bk_get(x->grad, i) == want[i]);
    bk_release(m);
    bk_tape_reset(c);
    bk_tensor *y = bk_from_f64(c, 1, (int64_t[]){4}, (double[]){1, 3, 3, -5});
    bk_tensor *mn = bk_binop(c, BK_OP_MINIMUM, x, y);
    bk_tensor *s = bk_sum_all(c, mn);
    ck_assert(bk_backward(c, s) == 0);
    const double want2[4] = {1, 1, 1, 0};
    for (int i = 0; i < 4; i++) ck_assert(bk_get(x->grad, i) == want2[i]);
    bk_release(mn);
    bk_release(s);
    bk_release(y);
    bk_tape_reset(c);
    bk_release(x);
    bk_ctx_free(c);
}
END_TEST

/* d prod / d x_k = product of the others, also when some x are zero */
START_TEST(prod_gradient_with_zeros) {
    bk_ctx *c = bk_ctx_new(NULL);
    const double v[2][4] = {{2, 0, 3, 5}, {0, 4, 0, 2}};
    const double want[2][4] = {{0, 30, 0, 0}, {0, 0, 0, 0}};
    for (int r = 0; r < 2; r++) {
        bk_tensor *x = bk_from_f64(c, 1, (int64_t[]){4}, v[r]);
        bk_set_requires_grad(x, true);
        bk_tensor *p = bk_reduce(c, BK_OP_PROD, x, BK_ALL_AXES, false);
        ck_assert(bk_item(p) == 0);
        ck_assert(bk_backward(c, p) == 0);
        for (int i = 0; i < 4; i++) ck_assert_msg(bk_get(x->grad, i) == want[r][i], "row %d elt %d", r, i);
        bk_release(p);
        bk_tape_reset(c);
        bk_release(x);
    }
    bk_ctx_free(c);
}
END_TEST

/* pow(a, b) at a = 0: d/da = b a^(b-1) is finite for b >= 1 (0 for b > 1),
 * and d/db uses log(a) only where a > 0, so it is 0 here, not NaN; both on
 * 0-d tensors (the scalar fast path) and on vectors (the tensor rules). */
START_TEST(pow_at_zero) {
    bk_ctx *c = bk_ctx_new(NULL);
    const double b[4] = {1, 2, 3, 0};
    const double da[4] = {1, 0, 0, 0};
    for (int vec = 0; vec < 2; vec++)
        for (int k = 0; k < 4; k++) {
            bk_tensor *a = vec ? bk_from_f64(c, 1, (int64_t[]){2}, (double[]){0, 0}) : bk_scalar(c, 0.0);
            bk_tensor *e = vec ? bk_from_f64(c, 1, (int64_t[]){2}, (double[]){b[k], b[k]}) : bk_scalar(c, b[k]);
            bk_set_requires_grad(a, true);
            bk_set_requires_grad(e, true);
            bk_tensor *p = bk_pow(c, a, e);
            bk_tensor *s = bk_sum_all(c, p);
            ck_assert(bk_backward(c, s) == 0);
            ck_assert_msg(bk_get(a->grad, 0) == da[k], "d/da at b=%g: %g", b[k], bk_get(a->grad, 0));
            ck_assert_msg(bk_get(e->grad, 0) == 0, "d/db at b=%g: %g", b[k], bk_get(e->grad, 0));
            bk_release(p);
            bk_release(s);
            bk_tape_reset(c);
            bk_release(a);
            bk_release(e);
        }
    bk_ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_grad");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_op_has_a_case);
    tcase_add_loop_test(tc, gradients_match_finite_differences, 0, NCASES);
    tcase_add_test(tc, max_min_ties_go_to_the_first);
    tcase_add_test(tc, prod_gradient_with_zeros);
    tcase_add_test(tc, pow_at_zero);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
