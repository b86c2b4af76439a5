/* test_linalg.c - forward values and errors of matmul, cholesky,
 * solve_triangular, logdet and inverse.  Expected values come from NumPy
 * (tests/fixtures/linalg.txt, made by tests/gen_linalg_fixtures.py) or by
 * hand. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ops_impl.h"
#include "tensor.h"

#define FIXTURE "tests/fixtures/linalg.txt"

static bk_ctx *ctx;

static void setup(void) { ctx = bk_ctx_new(NULL); }
static void teardown(void) { bk_ctx_free(ctx); }

/* Reads tensor `name` from the fixture file (NULL when absent). */
static bk_tensor *fx(const char *name)
{
    FILE *f = fopen(FIXTURE, "r");
    char nm[64];
    int nd;
    bk_tensor *t = NULL;
    ck_assert_msg(f != NULL, "cannot open %s", FIXTURE);
    while (!t && fscanf(f, "%63s %d", nm, &nd) == 2) {
        int64_t shape[BK_MAXDIM], n = 1;
        double *v;
        for (int i = 0; i < nd; i++) {
            long long d;
            ck_assert_int_eq(fscanf(f, "%lld", &d), 1);
            shape[i] = d;
            n *= d;
        }
        v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
        for (int64_t i = 0; i < n; i++)
            ck_assert_int_eq(fscanf(f, "%lf", &v[i]), 1);
        if (strcmp(nm, name) == 0)
            t = bk_from_f64(ctx, nd, shape, v);
        free(v);
    }
    fclose(f);
    ck_assert_msg(t != NULL, "fixture %s missing", name);
    return t;
}

static void assert_close(const bk_tensor *got, const bk_tensor *want, double tol)
{
    char b1[64], b2[64];
    ck_assert_msg(got != NULL, "op failed: %s", bk_errmsg(ctx));
    ck_assert_msg(bk_same_shape(got, want), "shape %s, want %s",
                  bk_shape_str(got, b1, sizeof b1), bk_shape_str(want, b2, sizeof b2));
    for (int64_t i = 0; i < want->numel; i++) {
        double g = bk_get(got, i), w = bk_get(want, i);
        ck_assert_msg(fabs(g - w) <= tol * (1 + fabs(w)), "element %lld: %.17g, want %.17g",
                      (long long)i, g, w);
    }
}

/* Applies a binary op to two fixtures and compares with a third. */
static void check_binary(bk_tensor *(*op)(bk_ctx *, bk_tensor *, bk_tensor *), const char *a,
                         const char *b, const char *want)
{
    bk_tensor *ta = fx(a), *tb = fx(b), *tw = fx(want), *r = op(ctx, ta, tb);
    assert_close(r, tw, 1e-12);
    bk_release(ta);
    bk_release(tb);
    bk_release(tw);
    bk_release(r);
}

static bk_tensor *mat(int rows, int cols, const double *v)
{
    return bk_from_f64(ctx, 2, (int64_t[]){rows, cols}, v);
}

/* ------------------------------------------------------------- matmul --- */

START_TEST(matmul_by_hand)
{
    bk_tensor *a = mat(2, 3, (double[]){1, 2, 3, 4, 5, 6});
    bk_tensor *b = mat(3, 2, (double[]){7, 8, 9, 10, 11, 12});
    bk_tensor *w = mat(2, 2, (double[]){58, 64, 139, 154});
    bk_tensor *r = bk_matmul(ctx, a, b);
    assert_close(r, w, 0);
    bk_release(a);
    bk_release(b);
    bk_release(w);
    bk_release(r);
}
END_TEST

START_TEST(matmul_numpy)
{
    check_binary(bk_matmul, "mm_a", "mm_b", "mm_ab");
    check_binary(bk_matmul, "mm_v4", "mm_m43", "mm_v4_m43");
    check_binary(bk_matmul, "mm_m34", "mm_v4", "mm_m34_v4");
    check_binary(bk_matmul, "mm_v4", "mm_v4", "mm_v4_v4");
    check_binary(bk_matmul, "mm_b234", "mm_v4", "mm_b234_v4");
    check_binary(bk_matmul, "mm_v3", "mm_b234", "mm_v3_b234");
}
END_TEST

START_TEST(matmul_dot_is_scalar)
{
    bk_tensor *v = fx("mm_v4"), *r = bk_matmul(ctx, v, v);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->ndim, 0);
    bk_release(v);
    bk_release(r);
}
END_TEST

/* Transposed and strided operands: passed to BLAS as Trans, or copied. */
START_TEST(matmul_views)
{
    bk_tensor *m = fx("mm_m34"), *w = fx("mm_m34T_m34"), *mt = bk_transpose(ctx, m, 0, 1);
    bk_tensor *r = bk_matmul(ctx, mt, m), *ab, *abt, *abtt, *r2;
    assert_close(r, w, 1e-12);
    /* (m^T)^T via a double transpose of a product: m m^T = (m m^T)^T */
    ab = bk_matmul(ctx, m, mt);
    abt = bk_transpose(ctx, ab, 0, 1);
    abtt = bk_contiguous(ctx, abt);
    assert_close(abtt, ab, 1e-12);
    /* every other column: a non-unit stride in both dims */
    {
        bk_idx ix[2] = {{BK_IDX_SLICE, 0, 3, 1, NULL}, {BK_IDX_SLICE, 3, -1, -2, NULL}};
        bk_tensor *s = bk_index(ctx, m, 2, ix), *sc = bk_contiguous(ctx, s);
        bk_tensor *st = bk_transpose(ctx, s, 0, 1), *sct = bk_transpose(ctx, sc, 0, 1);
        bk_tensor *x = bk_matmul(ctx, st, s), *y = bk_matmul(ctx, sct, sc);
        assert_close(x, y, 1e-12);
        bk_release(s);
        bk_release(sc);
        bk_release(st);
        bk_release(sct);
        bk_release(x);
        bk_release(y);
    }
    r2 = bk_matmul(ctx, mt, abt);
    ck_assert_ptr_nonnull(r2);
    bk_release(m);
    bk_release(w);
    bk_release(mt);
    bk_release(r);
    bk_release(ab);
    bk_release(abt);
    bk_release(abtt);
    bk_release(r2);
}
END_TEST

START_TEST(matmul_expanded_operand)
{
    /* a zero-stride (expanded) matrix must be copied, not sent to BLAS */
    bk_tensor *row = bk_from_f64(ctx, 2, (int64_t[]){1, 3}, (double[]){1, 2, 3});
    bk_tensor *e = bk_expand(ctx, row, 2, (int64_t[]){2, 3});
    bk_tensor *b = mat(3, 1, (double[]){1, 1, 1}), *r = bk_matmul(ctx, e, b);
    bk_tensor *w = mat(2, 1, (double[]){6, 6});
    assert_close(r, w, 0);
    bk_release(row);
    bk_release(e);
    bk_release(b);
    bk_release(r);
    bk_release(w);
}
END_TEST

START_TEST(matmul_f32)
{
    bk_tensor *a = fx("mm_a"), *b = fx("mm_b"), *w = fx("mm_ab");
    bk_tensor *a32 = bk_cast(ctx, a, BK_F32), *b32 = bk_cast(ctx, b, BK_F32);
    bk_tensor *r = bk_matmul(ctx, a32, b32);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->dtype, BK_F32);
    assert_close(r, w, 1e-5);
    bk_release(a);
    bk_release(b);
    bk_release(w);
    bk_release(a32);
    bk_release(b32);
    bk_release(r);
}
END_TEST

START_TEST(matmul_errors)
{
    bk_tensor *a = bk_zeros(ctx, BK_F64, 2, (int64_t[]){2, 3});
    bk_tensor *b = bk_zeros(ctx, BK_F64, 2, (int64_t[]){4, 5});
    bk_tensor *c = bk_zeros(ctx, BK_F64, 3, (int64_t[]){2, 3, 3});
    bk_tensor *d = bk_zeros(ctx, BK_F64, 3, (int64_t[]){3, 3, 3});
    bk_tensor *s = bk_scalar(ctx, 1.0);
    ck_assert_ptr_null(bk_matmul(ctx, a, b));
    ck_assert_str_eq(bk_errmsg(ctx), "matmul: shapes [2, 3] and [4, 5] are not aligned");
    ck_assert_ptr_null(bk_matmul(ctx, c, d));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "cannot be broadcast"));
    ck_assert_ptr_null(bk_matmul(ctx, s, a));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "at least one dimension"));
    bk_release(a);
    bk_release(b);
    bk_release(c);
    bk_release(d);
    bk_release(s);
}
END_TEST

START_TEST(matmul_empty)
{
    bk_tensor *a = bk_zeros(ctx, BK_F64, 2, (int64_t[]){2, 0});
    bk_tensor *b = bk_zeros(ctx, BK_F64, 2, (int64_t[]){0, 3});
    bk_tensor *r = bk_matmul(ctx, a, b), *w = bk_zeros(ctx, BK_F64, 2, (int64_t[]){2, 3});
    assert_close(r, w, 0);
    bk_release(a);
    bk_release(b);
    bk_release(r);
    bk_release(w);
}
END_TEST

/* ----------------------------------------------------------- cholesky --- */

START_TEST(cholesky_numpy)
{
    bk_tensor *a = fx("chol_a"), *w = fx("chol_l"), *r = bk_cholesky(ctx, a);
    bk_tensor *ab = fx("chol_ab"), *wb = fx("chol_lb"), *rb = bk_cholesky(ctx, ab);
    assert_close(r, w, 1e-12);
    assert_close(rb, wb, 1e-12);
    bk_release(a);
    bk_release(w);
    bk_release(r);
    bk_release(ab);
    bk_release(wb);
    bk_release(rb);
}
END_TEST

START_TEST(cholesky_errors)
{
    bk_tensor *a = mat(2, 2, (double[]){1, 2, 2, 1});
    bk_tensor *b = bk_zeros(ctx, BK_F64, 2, (int64_t[]){2, 3});
    ck_assert_ptr_null(bk_cholesky(ctx, a));
    ck_assert_str_eq(bk_errmsg(ctx), "cholesky: matrix is not positive definite");
    ck_assert_ptr_null(bk_cholesky(ctx, b));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "square"));
    bk_release(a);
    bk_release(b);
}
END_TEST

/* --------------------------------------------------- solve_triangular --- */

START_TEST(solve_numpy)
{
    static const struct {
        const char *a, *b, *want;
        bool upper;
    } cases[] = {
        {"tri_l", "tri_bv", "tri_l_bv", false}, {"tri_l", "tri_bm", "tri_l_bm", false},
        {"tri_u", "tri_bm", "tri_u_bm", true},  {"tri_lb", "tri_bm", "tri_lb_bm", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_tensor *a = fx(cases[i].a), *b = fx(cases[i].b), *w = fx(cases[i].want);
        bk_tensor *r = bk_solve_triangular(ctx, a, b, cases[i].upper);
        assert_close(r, w, 1e-12);
        bk_release(a);
        bk_release(b);
        bk_release(w);
        bk_release(r);
    }
}
END_TEST

/* the trans flag solves A^T x = b (reached through bk_apply) */
START_TEST(solve_trans_flag)
{
    bk_tensor *a = fx("tri_l"), *b = fx("tri_bv"), *w = fx("tri_lT_bv"), *in[2] = {a, b}, *r;
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.trans = 1;
    r = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args);
    assert_close(r, w, 1e-12);
    bk_release(a);
    bk_release(b);
    bk_release(w);
    bk_release(r);
}
END_TEST

/* a right-hand side of one column ([n, 1], solved as a vector): NumPy's
 * vector solutions, plain and transposed, as [n, 1] */
START_TEST(solve_one_column)
{
    bk_tensor *a = fx("tri_l"), *bv = fx("tri_bv"), *in[2];
    int64_t sh[2] = {bv->shape[0], 1};
    bk_tensor *b = bk_reshape(ctx, bv, 2, sh);
    const char *want[2] = {"tri_l_bv", "tri_lT_bv"};
    bk_opargs args;
    for (int t = 0; t < 2; t++) {
        memset(&args, 0, sizeof args);
        args.trans = t;
        in[0] = a;
        in[1] = b;
        bk_tensor *r = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->ndim, 2);
        ck_assert_int_eq(r->shape[1], 1);
        bk_tensor *w = fx(want[t]), *w2 = bk_reshape(ctx, w, 2, sh);
        assert_close(r, w2, 1e-12);
        bk_release(w);
        bk_release(w2);
        bk_release(r);
    }
    bk_release(a);
    bk_release(bv);
    bk_release(b);
}
END_TEST

/* The substitution loops of one right-hand side (blocks of four rows, the
 * rest one by one) at sizes around and past the block: lower and upper,
 * plain and transposed, unit diagonal or not, against the substitution in
 * long double.  The matrix is triangular with a dominant diagonal, so the
 * solution is well conditioned and must agree to a few ulps. */
static void solve_ref(int n, const double *A, bool upper, bool trans, bool unit, long double *x)
{
    /* op(A)[i][j]: the entry of A at (j, i) when transposed */
#define OPA(i, j) ((long double)(trans ? A[(j) * n + (i)] : A[(i) * n + (j)]))
    bool low = upper == trans; /* op(A) lower triangular */
    for (int k = 0; k < n; k++) {
        int i = low ? k : n - 1 - k;
        long double t = x[i];
        for (int j = 0; j < n; j++)
            if (j != i && (low ? j < i : j > i))
                t -= OPA(i, j) * x[j];
        x[i] = unit ? t : t / OPA(i, i);
    }
#undef OPA
}

START_TEST(solve_blocked_sizes)
{
    static const int sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 31, 64, 100, 101};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int n = sizes[si];
        double *A = malloc(sizeof *A * n * n), *b = malloc(sizeof *b * n);
        long double *ref = malloc(sizeof *ref * n);
        unsigned s = 12345u + (unsigned)n;
        for (int i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            b[i] = ((s >> 8) % 2001) / 1000.0 - 1.0;
            for (int j = 0; j < n; j++) {
                s = s * 1103515245u + 12345u;
                /* off-diagonal entries of about 1 / n keep the solve stable */
                A[i * n + j] = i == j ? 1.5 + ((s >> 8) % 100) / 100.0 : (((s >> 8) % 2001) / 1000.0 - 1.0) / n;
            }
        }
        for (int v = 0; v < 8; v++) {
            bool upper = v & 1, trans = v & 2, unit = v & 4;
            double *T = malloc(sizeof *T * n * n);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) /* zero the other triangle: it must not be read anyway */
                    T[i * n + j] = (upper ? j >= i : j <= i) ? A[i * n + j] : NAN;
            bk_tensor *a = mat(n, n, T), *bv = bk_from_f64(ctx, 1, (int64_t[]){n}, b), *in[2] = {a, bv};
            bk_opargs args;
            memset(&args, 0, sizeof args);
            args.upper = upper;
            args.trans = trans;
            args.unit = unit;
            bk_tensor *r = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args);
            ck_assert_msg(r != NULL, "n %d variant %d: %s", n, v, bk_errmsg(ctx));
            for (int i = 0; i < n; i++)
                ref[i] = b[i];
            solve_ref(n, T, upper, trans, unit, ref);
            for (int i = 0; i < n; i++) {
                double g = bk_get(r, i);
                ck_assert_msg(fabsl(g - ref[i]) <= 1e-14L * (1 + fabsl(ref[i])),
                              "n %d upper %d trans %d unit %d x[%d]: %.17g, want %.17Lg", n, upper, trans, unit,
                              i, g, ref[i]);
            }
            bk_release(a);
            bk_release(bv);
            bk_release(r);
            free(T);
        }
        free(A);
        free(b);
        free(ref);
    }
}
END_TEST

/* A zero on the diagonal found inside the substitution loops (past the
 * first block) is reported at its position, for each direction. */
START_TEST(solve_singular_blocked)
{
    enum { N = 10 };
    double A[N * N], b[N];
    for (int v = 0; v < 4; v++) {
        bool upper = v & 1, trans = v & 2;
        for (int i = 0; i < N; i++) {
            b[i] = 1;
            for (int j = 0; j < N; j++)
                A[i * N + j] = i == j ? 2.0 : ((upper ? j > i : j < i) ? 0.1 : 0.0);
        }
        A[6 * N + 6] = 0.0;
        A[8 * N + 8] = 0.0;
        bk_tensor *a = mat(N, N, A), *bv = bk_from_f64(ctx, 1, (int64_t[]){N}, b), *in[2] = {a, bv};
        bk_opargs args;
        memset(&args, 0, sizeof args);
        args.upper = upper;
        args.trans = trans;
        ck_assert_ptr_null(bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args));
        ck_assert_str_eq(bk_errmsg(ctx), "solve_triangular: matrix is singular (zero at diagonal position 6)");
        args.unit = 1; /* the diagonal is not read */
        bk_tensor *r = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args);
        ck_assert_msg(r != NULL, "%s", bk_errmsg(ctx));
        bk_release(r);
        bk_release(a);
        bk_release(bv);
    }
}
END_TEST

/* A tiny diagonal (2^-600: its reciprocal is normal, a product of two is
 * not) with a zero in the right-hand side: the solution is finite, and
 * equal to plain substitution's, in every direction (the block's explicit
 * inverse would overflow to inf and give inf * 0 = NaN). */
START_TEST(solve_tiny_diagonal)
{
    enum { N = 4 };
    const double d = 0x1p-600;
    for (int v = 0; v < 4; v++) {
        bool upper = v & 1, trans = v & 2;
        /* M: the matrix as solved (A, or A^T with trans), lower when low;
         * its one off-diagonal entry couples the first two rows solved */
        bool low = upper == trans;
        double M[N][N] = {{0}}, A[N * N], b[N] = {0}, x[N];
        for (int i = 0; i < N; i++) M[i][i] = d;
        if (low) M[1][0] = 1.0, b[1] = 1.0;
        else M[2][3] = 1.0, b[2] = 1.0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) A[i * N + j] = trans ? M[j][i] : M[i][j];
        for (int k = 0; k < N; k++) {
            int i = low ? k : N - 1 - k;
            double t = b[i];
            for (int j = 0; j < N; j++)
                if (low ? j < i : j > i) t -= M[i][j] * x[j];
            x[i] = t / M[i][i];
        }
        bk_tensor *a = mat(N, N, A), *bv = bk_from_f64(ctx, 1, (int64_t[]){N}, b), *in[2] = {a, bv};
        bk_opargs args;
        memset(&args, 0, sizeof args);
        args.upper = upper;
        args.trans = trans;
        bk_tensor *r = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in, &args);
        ck_assert_msg(r != NULL, "%s", bk_errmsg(ctx));
        double got[N];
        bk_copy_out(r, got);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(isfinite(got[i]), "v=%d x[%d] = %g", v, i, got[i]);
            ck_assert_msg(got[i] == x[i], "v=%d x[%d] = %a, substitution %a", v, i, got[i], x[i]);
        }
        bk_release(r);
        bk_release(a);
        bk_release(bv);
    }
}
END_TEST

START_TEST(solve_errors)
{
    bk_tensor *a = mat(2, 2, (double[]){1, 0, 1, 0});
    bk_tensor *b = bk_zeros(ctx, BK_F64, 1, (int64_t[]){2});
    bk_tensor *c = bk_zeros(ctx, BK_F64, 1, (int64_t[]){3});
    ck_assert_ptr_null(bk_solve_triangular(ctx, a, b, false));
    ck_assert_ptr_nonnull(strstr(bk_errmsg(ctx), "singular"));
    ck_assert_ptr_null(bk_solve_triangular(ctx, a, c, false));
    ck_assert_str_eq(bk_errmsg(ctx), "solve_triangular: shapes [2, 2] and [3] are not compatible");
    bk_release(a);
    bk_release(b);
    bk_release(c);
}
END_TEST

/* ---------------------------------------------------- logdet, inverse --- */

START_TEST(logdet_inverse_numpy)
{
    bk_tensor *a = fx("ld_a"), *w = fx("ld_out"), *r = bk_logdet(ctx, a);
    bk_tensor *h = fx("inv_a"), *wi = fx("inv_out"), *ri = bk_inverse(ctx, h);
    assert_close(r, w, 1e-12);
    assert_close(ri, wi, 1e-11);
    bk_release(a);
    bk_release(w);
    bk_release(r);
    bk_release(h);
    bk_release(wi);
    bk_release(ri);
}
END_TEST

START_TEST(singular_matrices)
{
    bk_tensor *a = mat(2, 2, (double[]){1, 2, 2, 4}), *r = bk_logdet(ctx, a);
    ck_assert_ptr_nonnull(r);
    ck_assert(isinf(bk_item(r)) && bk_item(r) < 0);
    ck_assert_ptr_null(bk_inverse(ctx, a));
    ck_assert_str_eq(bk_errmsg(ctx), "inverse: matrix is singular");
    bk_release(a);
    bk_release(r);
}
END_TEST

/* bk__dgemv (ops_linalg.c): y = A x and y = A^T x for row-major A of m x n,
 * through its own loops for n <= 32 (every column tail 0..3, every row tail
 * 0..3, one row) and through BLAS past that, against a long double sum
 * (to 4 ulp of the sum of |terms|) and against cblas_dgemv. */
START_TEST(thin_gemv_reference)
{
    static const int ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 25, 31, 32, 33, 40};
    static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 203, 1000};
    double *A = malloc(sizeof(double) * 1000 * 40), *x = malloc(sizeof(double) * 1000);
    double *y = malloc(sizeof(double) * 1000), *yb = malloc(sizeof(double) * 1000);
    ck_assert(A && x && y && yb);
    unsigned s = 12345;
    for (int i = 0; i < 1000 * 40; i++) {
        s = s * 1103515245u + 12345u;
        A[i] = ((double)(s >> 8) / 16777216.0 - 0.5) * 4;
    }
    for (int i = 0; i < 1000; i++) x[i] = sin(0.37 * i + 0.1) * (1 + i % 7);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ms / sizeof *ms; b++)
            for (int tr = 0; tr < 2; tr++) {
                int n = ns[a], m = ms[b], ny = tr ? n : m, nk = tr ? m : n;
                bk__dgemv(tr ? CblasTrans : CblasNoTrans, m, n, A, n, x, 1, y);
                cblas_dgemv(CblasRowMajor, tr ? CblasTrans : CblasNoTrans, m, n, 1.0, A, n, x, 1, 0.0, yb, 1);
                for (int i = 0; i < ny; i++) {
                    long double ref = 0, mag = 0;
                    for (int k = 0; k < nk; k++) {
                        double av = tr ? A[(size_t)k * n + i] : A[(size_t)i * n + k];
                        ref += (long double)av * x[k];
                        mag += fabsl((long double)av * x[k]);
                    }
                    double tol = 4 * 2.2e-16 * (double)mag * (1 + log2(nk));
                    ck_assert_msg(fabsl(y[i] - ref) <= tol, "m %d n %d trans %d y[%d] = %.17g vs %.17Lg", m, n, tr,
                                  i, y[i], ref);
                    ck_assert_msg(fabs(y[i] - yb[i]) <= 2 * tol, "m %d n %d trans %d: BLAS %.17g", m, n, tr, yb[i]);
                }
                if (n > 32) /* BLAS itself */
                    for (int i = 0; i < ny; i++) ck_assert(y[i] == yb[i]);
            }
    free(A), free(x), free(y), free(yb);
}
END_TEST

static Suite *linalg_suite(void)
{
    Suite *s = suite_create("linalg");
    TCase *tc = tcase_create("forward");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, matmul_by_hand);
    tcase_add_test(tc, matmul_numpy);
    tcase_add_test(tc, matmul_dot_is_scalar);
    tcase_add_test(tc, matmul_views);
    tcase_add_test(tc, matmul_expanded_operand);
    tcase_add_test(tc, matmul_f32);
    tcase_add_test(tc, matmul_errors);
    tcase_add_test(tc, matmul_empty);
    tcase_add_test(tc, cholesky_numpy);
    tcase_add_test(tc, cholesky_errors);
    tcase_add_test(tc, solve_numpy);
    tcase_add_test(tc, solve_trans_flag);
    tcase_add_test(tc, solve_one_column);
    tcase_add_test(tc, solve_errors);
    tcase_add_test(tc, solve_blocked_sizes);
    tcase_add_test(tc, solve_singular_blocked);
    tcase_add_test(tc, solve_tiny_diagonal);
    tcase_add_test(tc, logdet_inverse_numpy);
    tcase_add_test(tc, singular_matrices);
    tcase_add_test(tc, thin_gemv_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(linalg_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
