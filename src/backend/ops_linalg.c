/* ops_linalg.c - linear algebra: matmul (NumPy semantics, batched, BLAS
 * gemm/gemv/dot with a native float32 path), cholesky, solve_triangular
 * (own vectorized substitution loops for one right-hand side, BLAS dtrsm
 * for several), logdet and inverse (LAPACK), with their backward rules.
 *
 * Matrices are row-major.  LAPACK is called in column-major mode on the
 * row-major buffer, which hands it the transpose: harmless for symmetric
 * input (cholesky), for determinants, and for inverses (inv(A^T)^T =
 * inv(A)).  This avoids LAPACKE's hidden transposition copies, which would
 * bypass the allocator hook. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "ops_impl.h"
#include "program_native.h" /* (bk__trsv) */

/* ------------------------------------------------------------ helpers --- */

/* bk__dgemv's own loops (ops_impl.h).  Four-lane vectors of doubles (gcc
 * and clang vector extensions), separate multiplies and adds in a fixed
 * order, no fused multiply-add (fp-contract off), so the AVX-512, AVX2
 * and baseline clones give the same bits.
 *   y = A x: per row, lanes j mod 4 summed in order of j, then the four
 *   lanes as (l0 + l1) + (l2 + l3), then the columns past the last full
 *   vector in order;
 *   y = A^T x: rows in blocks of four, y += (a_i x_i + a_i+1 x_i+1) +
 *   (a_i+2 x_i+2 + a_i+3 x_i+3) per block, then the rows left one by one
 *   (n <= 32). */
#define GEMV_THIN_MAXN 32
typedef double gemv_v4 __attribute__((vector_size(32)));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define GEMV_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define GEMV_CLONES
#endif

/* (a macro: a function returning a vector type warns about the ABI) */
#define gemv_ld(p)                                                                                                     \
    __extension__({                                                                                                    \
        gemv_v4 v_;                                                                                                    \
        memcpy(&v_, (p), sizeof v_);                                                                                   \
        v_;                                                                                                            \
    })

/* one row's dot: lanes, then (l0 + l1) + (l2 + l3), then the columns left */
#define GEMV_ROW_END(acc, a, s)                                                                                        \
    do {                                                                                                               \
        s = (acc[0] + acc[1]) + (acc[2] + acc[3]);                                                                     \
        for (int64_t j = 4 * nv; j < n; j++) s = s + (a)[j] * x[j];                                                    \
    } while (0)

GEMV_CLONES static void gemv_thin_n(int64_t m, int64_t n, const double *A, const double *x, double *y) {
    int64_t nv = n / 4, i = 0;
    gemv_v4 xv[GEMV_THIN_MAXN / 4];
    for (int64_t j = 0; j < nv; j++) xv[j] = gemv_ld(x + 4 * j);
    for (; i + 4 <= m; i += 4) { /* four rows at a time: one loop's overhead for four */
        const double *a0 = A + i * n, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
        gemv_v4 c0 = {0, 0, 0, 0}, c1 = c0, c2 = c0, c3 = c0;
        for (int64_t j = 0; j < nv; j++) {
            c0 = c0 + gemv_ld(a0 + 4 * j) * xv[j];
            c1 = c1 + gemv_ld(a1 + 4 * j) * xv[j];
            c2 = c2 + gemv_ld(a2 + 4 * j) * xv[j];
            c3 = c3 + gemv_ld(a3 + 4 * j) * xv[j];
        }
        GEMV_ROW_END(c0, a0, y[i]);
        GEMV_ROW_END(c1, a1, y[i + 1]);
        GEMV_ROW_END(c2, a2, y[i + 2]);
        GEMV_ROW_END(c3, a3, y[i + 3]);
    }
    for (; i < m; i++) {
        const double *a = A + i * n;
        gemv_v4 c = {0, 0, 0, 0};
        for (int64_t j = 0; j < nv; j++) c = c + gemv_ld(a + 4 * j) * xv[j];
        GEMV_ROW_END(c, a, y[i]);
    }
}

GEMV_CLONES static void gemv_thin_t(int64_t m, int64_t n, const double *A, const double *x, double *y) {
    int64_t nv = n / 4, i = 0;
    gemv_v4 acc[GEMV_THIN_MAXN / 4];
    double out[GEMV_THIN_MAXN];
    for (int64_t j = 0; j < nv; j++) acc[j] = (gemv_v4){0, 0, 0, 0};
    for (int64_t j = 4 * nv; j < n; j++) out[j] = 0;
    for (; i + 4 <= m; i += 4) {
        const double *a0 = A + i * n, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
        gemv_v4 x0 = {x[i], x[i], x[i], x[i]}, x1 = {x[i + 1], x[i + 1], x[i + 1], x[i + 1]};
        gemv_v4 x2 = {x[i + 2], x[i + 2], x[i + 2], x[i + 2]}, x3 = {x[i + 3], x[i + 3], x[i + 3], x[i + 3]};
        for (int64_t j = 0; j < nv; j++)
            acc[j] = acc[j] + ((gemv_ld(a0 + 4 * j) * x0 + gemv_ld(a1 + 4 * j) * x1) +
                               (gemv_ld(a2 + 4 * j) * x2 + gemv_ld(a3 + 4 * j) * x3));
        for (int64_t j = 4 * nv; j < n; j++) /* the columns past the last full vector: the same sums */
            out[j] = out[j] + ((a0[j] * x[i] + a1[j] * x[i + 1]) + (a2[j] * x[i + 2] + a3[j] * x[i + 3]));
    }
    for (int64_t j = 0; j < nv; j++) memcpy(out + 4 * j, &acc[j], sizeof acc[j]);
    for (; i < m; i++) {
        const double *a = A + i * n;
        for (int64_t j = 0; j < n; j++) out[j] = out[j] + a[j] * x[i];
    }
    memcpy(y, out, (size_t)n * sizeof *y);
}

/* Triangular solves of one right-hand side in place, x = op(A)^-1 x, A
 * n x n row-major (solve_batches below; the MultivariateNormal density
 * makes one forward solve per evaluation and its gradient one transposed
 * solve).  OpenBLAS's dtrsv cost about 16k instructions at n = 100, most
 * of it in calls of its small dot and axpy kernels; these loops take
 * four rows of A at a time, with the same four-lane vectors and fixed
 * order of operations as the gemv loops above (so the clones agree to the
 * bit):
 *   op(A) = A (forward substitution for lower, backward for upper): per
 *   block of four rows, their four dots with the solved part of x (lanes
 *   j mod 4 in order of j, then (l0 + l1) + (l2 + l3), then the columns
 *   past the last full vector), then the four by four triangle (tri4);
 *   op(A) = A^T: per block, the four by four triangle, then the block's
 *   contribution to the rest of x, x_j -= (a0_j y0 + a1_j y1) + (a2_j y2 +
 *   a3_j y3), as the axpy form of the substitution reads A by rows.
 * The blocks are placed so that their dots and updates run over whole
 * vectors (lengths multiples of 4); the n mod 4 rows left over go one by
 * one.  Returns false when a diagonal entry is zero (and not unit): x is
 * then garbage. */
#define TRI_INLINE static inline __attribute__((always_inline))
typedef int64_t tri_m4 __attribute__((vector_size(32))); /* lanes of a comparison of gemv_v4 */

TRI_INLINE double tri_dot1(const double *a, const double *x, int64_t len) {
    int64_t nv = len / 4;
    gemv_v4 c = {0, 0, 0, 0};
    for (int64_t j = 0; j < nv; j++) c = c + gemv_ld(a + 4 * j) * gemv_ld(x + 4 * j);
    double s = (c[0] + c[1]) + (c[2] + c[3]);
    for (int64_t j = 4 * nv; j < len; j++) s = s + a[j] * x[j];
    return s;
}

/* s[r] = row r (a + r * lda) dot x over len entries, len a multiple of 4
 * (the blocks below are placed so), the order of tri_dot1 */
TRI_INLINE void tri_dot4(const double *a, int64_t lda, const double *x, int64_t len, double *s) {
    const double *a0 = a, *a1 = a + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    int64_t nv = len / 4; /* len % 4 == 0 */
    gemv_v4 c0 = {0, 0, 0, 0}, c1 = c0, c2 = c0, c3 = c0;
    for (int64_t j = 0; j < nv; j++) {
        gemv_v4 xv = gemv_ld(x + 4 * j);
        c0 = c0 + gemv_ld(a0 + 4 * j) * xv;
        c1 = c1 + gemv_ld(a1 + 4 * j) * xv;
        c2 = c2 + gemv_ld(a2 + 4 * j) * xv;
        c3 = c3 + gemv_ld(a3 + 4 * j) * xv;
    }
    s[0] = (c0[0] + c0[1]) + (c0[2] + c0[3]);
    s[1] = (c1[0] + c1[1]) + (c1[2] + c1[3]);
    s[2] = (c2[0] + c2[1]) + (c2[2] + c2[3]);
    s[3] = (c3[0] + c3[1]) + (c3[2] + c3[3]);
}

/* x[j] -= a[j] y for j < len */
TRI_INLINE void tri_axpy1(double *x, const double *a, double y, int64_t len) {
    int64_t nv = len / 4;
    gemv_v4 yv = {y, y, y, y};
    for (int64_t j = 0; j < nv; j++) {
        gemv_v4 v = gemv_ld(x + 4 * j) - gemv_ld(a + 4 * j) * yv;
        memcpy(x + 4 * j, &v, sizeof v);
    }
    for (int64_t j = 4 * nv; j < len; j++) x[j] = x[j] - a[j] * y;
}

/* x[j] -= (a0_j y0 + a1_j y1) + (a2_j y2 + a3_j y3) for j < len, len a
 * multiple of 4, rows r at a + r * lda */
TRI_INLINE void tri_axpy4(double *x, const double *a, int64_t lda, const double *y, int64_t len) {
    const double *a0 = a, *a1 = a + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    int64_t nv = len / 4;
    gemv_v4 y0 = {y[0], y[0], y[0], y[0]}, y1 = {y[1], y[1], y[1], y[1]};
    gemv_v4 y2 = {y[2], y[2], y[2], y[2]}, y3 = {y[3], y[3], y[3], y[3]};
    for (int64_t j = 0; j < nv; j++) {
        gemv_v4 v = gemv_ld(x + 4 * j) - ((gemv_ld(a0 + 4 * j) * y0 + gemv_ld(a1 + 4 * j) * y1) +
                                          (gemv_ld(a2 + 4 * j) * y2 + gemv_ld(a3 + 4 * j) * y3));
        memcpy(x + 4 * j, &v, sizeof v);
    }
}

/* t / d, or t when the diagonal is unit; false (through *ok) on a zero d */
TRI_INLINE double tri_div(double t, double d, bool unit, bool *ok) {
    if (unit) return t;
    if (d == 0.0) *ok = false;
    return t / d;
}

/* x = T^-1 y for a block's four by four lower triangle T (as tri4) by substitution, a division per row */
TRI_INLINE void tri4_subst(double T[4][4], const double *d, const double *y, double *x) {
    for (int r = 0; r < 4; r++) {
        double t = y[r];
        for (int c = 0; c < r; c++) t = t - T[r][c] * x[c];
        x[r] = t / d[r];
    }
}

/* x = T^-1 y for a block's four by four lower triangle T (rows and
 * columns in the order the block solves them; only c <= r read), unit:
 * ones on the diagonal.  Through the explicit inverse W = T^-1 when the
 * diagonal's reciprocals are normal numbers (every |d| in [2^-1000,
 * 2^1000]): W depends on A alone, so it is worked out off the chain of
 * dependent updates, and x is one small matrix-vector product on it, one
 * multiply and two adds deep where substitution row after row would be
 * four divisions and six multiply-subtracts deep (most of the time of a
 * solve at n = 100).  Else, or when W overflows, by substitution with
 * divisions.  A zero on the diagonal clears *ok. */
TRI_INLINE void tri4(double T[4][4], bool unit, const double *y, double *x, bool *ok) {
    gemv_v4 one = {1, 1, 1, 1}, d = {T[0][0], T[1][1], T[2][2], T[3][3]};
    if (unit) d = one;
    /* the four tests at once: m = |d| (the sign bits cleared); lanes of
     * the comparisons are -1 where true */
    gemv_v4 m, lo = {0x1p-1000, 0x1p-1000, 0x1p-1000, 0x1p-1000}, hi = {0x1p1000, 0x1p1000, 0x1p1000, 0x1p1000};
    tri_m4 bits, sign = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    memcpy(&bits, &d, sizeof bits);
    bits &= sign;
    memcpy(&m, &bits, sizeof m);
    tri_m4 zero = m == 0.0, in = (m >= lo) & (m <= hi);
    if ((zero[0] | zero[1]) | (zero[2] | zero[3])) *ok = false;
    bool inv = (in[0] & in[1]) & (in[2] & in[3]);
    if (!inv) {
        tri4_subst(T, (const double *)&d, y, x);
        return;
    }
    gemv_v4 r = one / d;
    /* W[r][c] = -d_r sum_{c <= k < r} T[r][k] W[k][c], W[r][r] = d_r */
    double w10 = -r[1] * (T[1][0] * r[0]);
    double w21 = -r[2] * (T[2][1] * r[1]);
    double w20 = -r[2] * (T[2][0] * r[0] + T[2][1] * w10);
    double w32 = -r[3] * (T[3][2] * r[2]);
    double w31 = -r[3] * (T[3][1] * r[1] + T[3][2] * w21);
    double w30 = -r[3] * ((T[3][0] * r[0] + T[3][1] * w10) + T[3][2] * w20);
    /* W's entries are products of reciprocals: with a tiny diagonal they
     * overflow though the solution is finite (inf times a zero right-hand
     * side would be NaN), so substitute then */
    if (!isfinite(((w10 + w21) + (w20 + w32)) + (w31 + w30))) {
        tri4_subst(T, (const double *)&d, y, x);
        return;
    }
    d = r;
    x[0] = d[0] * y[0];
    x[1] = w10 * y[0] + d[1] * y[1];
    x[2] = (w20 * y[0] + w21 * y[1]) + d[2] * y[2];
    x[3] = (w30 * y[0] + w31 * y[1]) + (w32 * y[2] + d[3] * y[3]);
}

/* lower, A x = b: blocks of four rows from the top, the rest one by one */
GEMV_CLONES static bool trsv_ln(int64_t n, const double *A, bool unit, double *x) {
    bool ok = true;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double *a = A + i * n;
        double T[4][4], s[4], y[4];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c <= r; c++) T[r][c] = a[r * n + i + c];
        tri_dot4(a, n, x, i, s);
        for (int r = 0; r < 4; r++) y[r] = x[i + r] - s[r];
        tri4(T, unit, y, x + i, &ok);
    }
    for (; i < n; i++) {
        const double *a = A + i * n;
        x[i] = tri_div(x[i] - tri_dot1(a, x, i), a[i], unit, &ok);
    }
    return ok;
}

/* upper, A x = b: blocks of four rows from the bottom (their dots over
 * whole vectors), then the n mod 4 top rows one by one */
GEMV_CLONES static bool trsv_un(int64_t n, const double *A, bool unit, double *x) {
    bool ok = true;
    int64_t m = n % 4;
    for (int64_t i = n - 4; i >= m; i -= 4) {
        const double *a = A + i * n;
        double T[4][4], s[4], y[4], z[4];
        for (int r = 0; r < 4; r++) /* rows and columns from the bottom */
            for (int c = 0; c <= r; c++) T[r][c] = a[(3 - r) * n + i + 3 - c];
        tri_dot4(a + i + 4, n, x + i + 4, n - i - 4, s);
        for (int r = 0; r < 4; r++) y[r] = x[i + 3 - r] - s[3 - r];
        tri4(T, unit, y, z, &ok);
        for (int r = 0; r < 4; r++) x[i + 3 - r] = z[r];
    }
    for (int64_t i = m - 1; i >= 0; i--) {
        const double *a = A + i * n;
        x[i] = tri_div(x[i] - tri_dot1(a + i + 1, x + i + 1, n - i - 1), a[i], unit, &ok);
    }
    return ok;
}

/* lower, A^T x = b: the rows past the last block of four one by one from
 * the bottom, then the blocks upwards (their updates over whole vectors) */
GEMV_CLONES static bool trsv_lt(int64_t n, const double *A, bool unit, double *x) {
    bool ok = true;
    int64_t nb = n - n % 4;
    for (int64_t i = n - 1; i >= nb; i--) {
        const double *a = A + i * n;
        x[i] = tri_div(x[i], a[i], unit, &ok);
        tri_axpy1(x, a, x[i], i);
    }
    for (int64_t i = nb - 4; i >= 0; i -= 4) {
        const double *a = A + i * n;
        double T[4][4], y[4], z[4];
        for (int r = 0; r < 4; r++) /* A^T's rows and columns from the bottom */
            for (int c = 0; c <= r; c++) T[r][c] = a[(3 - c) * n + i + 3 - r];
        for (int r = 0; r < 4; r++) y[r] = x[i + 3 - r];
        tri4(T, unit, y, z, &ok);
        for (int r = 0; r < 4; r++) x[i + 3 - r] = z[r];
        tri_axpy4(x, a, n, x + i, i);
    }
    return ok;
}

/* upper, A^T x = b: the n mod 4 top rows one by one, then blocks of four
 * downwards (their updates over whole vectors) */
GEMV_CLONES static bool trsv_ut(int64_t n, const double *A, bool unit, double *x) {
    bool ok = true;
    int64_t m = n % 4;
    for (int64_t i = 0; i < m; i++) {
        const double *a = A + i * n;
        x[i] = tri_div(x[i], a[i], unit, &ok);
        tri_axpy1(x + i + 1, a + i + 1, x[i], n - i - 1);
    }
    for (int64_t i = m; i + 4 <= n; i += 4) {
        const double *a = A + i * n;
        double T[4][4], y[4];
        for (int r = 0; r < 4; r++) /* A^T's rows and columns */
            for (int c = 0; c <= r; c++) T[r][c] = a[c * n + i + r];
        for (int r = 0; r < 4; r++) y[r] = x[i + r];
        tri4(T, unit, y, x + i, &ok);
        tri_axpy4(x + i + 4, a + i + 4, n, x + i, n - i - 4);
    }
    return ok;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* x = op(A)^-1 x for one right-hand side (the loops above); false on a
 * zero diagonal entry (not unit). */
static bool trsv(int64_t n, const double *A, bool upper, bool trans, bool unit, double *x) {
    if (upper) return trans ? trsv_ut(n, A, unit, x) : trsv_un(n, A, unit, x);
    return trans ? trsv_lt(n, A, unit, x) : trsv_ln(n, A, unit, x);
}

bool bk__trsv(int64_t n, const double *A, bool upper, bool trans, bool unit, double *x) {
    return trsv(n, A, upper, trans, unit, x);
}

void bk__dgemv(int trans, int64_t m, int64_t n, const double *A, int64_t lda, const double *x, int64_t incx,
               double *y) {
    if (lda == n && incx == 1 && n >= 1 && n <= GEMV_THIN_MAXN && m >= 1) {
        if (trans == CblasNoTrans) gemv_thin_n(m, n, A, x, y);
        else gemv_thin_t(m, n, A, x, y);
        return;
    }
    cblas_dgemv(CblasRowMajor, (enum CBLAS_TRANSPOSE)trans, (int)m, (int)n, 1.0, A, (int)lda, x, (int)incx, 0.0, y,
                1);
}

/* NumPy broadcast of two batch shapes; -1 on mismatch (no message). */
static int bcast(int na, const int64_t *sa, int nb, const int64_t *sb, int *no, int64_t *so)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return -1;
        so[i] = da == 1 ? db : da;
    }
    *no = n;
    return 0;
}

/* Strides of an operand's batch dims aligned to the output batch (0 where
 * the operand is broadcast). */
static void align_batch(int onb, const int64_t *oshape, int nb, const int64_t *shape,
                        const int64_t *strides, int64_t *out)
{
    for (int i = 0; i < onb; i++) {
        int j = i - (onb - nb);
        out[i] = (j >= 0 && shape[j] == oshape[i]) ? strides[j] : 0;
    }
}

/* Advances a row-major counter over shape, moving the offsets of two
 * operands (strides sa, sb) along. */
static void batch_next(int nd, const int64_t *shape, int64_t *cnt, const int64_t *sa,
                       const int64_t *sb, int64_t *oa, int64_t *ob)
{
    for (int d = nd - 1; d >= 0; d--) {
        if (++cnt[d] < shape[d]) {
            *oa += sa[d];
            *ob += sb[d];
            return;
        }
        *oa -= sa[d] * (shape[d] - 1);
        *ob -= sb[d] * (shape[d] - 1);
        cnt[d] = 0;
    }
}

static int64_t prod(int n, const int64_t *s)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= s[i];
    return p;
}

static void rowmajor_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

/* Contiguous float64 elements of t (a pointer into t, or a copy in *tmp). */
static const double *read_f64(bk_ctx *ctx, const bk_tensor *t, double **tmp)
{
    *tmp = NULL;
    if (t->dtype == BK_F64 && bk_is_contiguous(t) && t->numel > 0)
        return bk_data(t);
    *tmp = bk_malloc(ctx, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(double));
    if (*tmp && t->numel > 0)
        bk_copy_out(t, *tmp);
    return *tmp;
}

/* A fresh contiguous float64 copy of t. */
static bk_tensor *copy_f64(bk_ctx *ctx, const bk_tensor *t)
{
    bk_tensor *out = bk_empty(ctx, BK_F64, t->ndim, t->shape);
    if (out && out->numel > 0)
        bk_copy_out(t, bk_data(out));
    return out;
}

static int check_square(bk_ctx *ctx, const char *op, const bk_tensor *t)
{
    char b[128];
    if (t->ndim >= 2 && t->shape[t->ndim - 1] == t->shape[t->ndim - 2]) {
        if (t->shape[t->ndim - 1] <= INT_MAX)
            return 0;
        bk_seterr(ctx, "%s: matrix too large", op);
        return -1;
    }
    bk_seterr(ctx, "%s: expected a square matrix (or a batch of them), got shape %s", op,
              bk_shape_str(t, b, sizeof b));
    return -1;
}

/* ------------------------------------------------------------- matmul --- */

/* One operand of a matmul, as a batch of rows x cols matrices whose
 * element (i, j) of batch b lies at off + batch offset + i*rs + j*cs. */
typedef struct {
    const void *base;       /* storage base, in the compute dtype */
    int64_t off;
    int nb;                 /* batch dims */
    int64_t bshape[BK_MAXDIM], bstride[BK_MAXDIM];
    int64_t rows, cols, rs, cs;
    CBLAS_TRANSPOSE tr;     /* BLAS view of the matrix part */
    int ld;
    void *tmp;              /* owned converted copy, or NULL */
} mm_arg;

/* Whether a rows x cols matrix with strides (rs, cs) can go to BLAS as is,
 * either row-major (NoTrans) or as the transpose of a row-major matrix. */
static bool blas_layout(mm_arg *m)
{
    int64_t r = m->rows, c = m->cols, ld;
    if ((c == 1 || m->cs == 1) && (r == 1 || m->rs >= c)) {
        m->tr = CblasNoTrans;
        ld = r == 1 ? (c > 1 ? c : 1) : m->rs;
    } else if ((r == 1 || m->rs == 1) && (c == 1 || m->cs >= r)) {
        m->tr = CblasTrans;
        ld = c == 1 ? (r > 1 ? r : 1) : m->cs;
    } else {
        return false;
    }
    if (ld < 1 || ld > INT_MAX)
        return false;
    m->ld = (int)ld;
    return true;
}

static void mm_geom(mm_arg *m, const bk_tensor *t, const int64_t *strides, bool left)
{
    int nd = t->ndim;
    if (nd == 1) {
        m->nb = 0;
        m->rows = left ? 1 : t->shape[0];
        m->cols = left ? t->shape[0] : 1;
        m->rs = left ? 0 : strides[0];
        m->cs = left ? strides[0] : 0;
        return;
    }
    m->nb = nd - 2;
    memcpy(m->bshape, t->shape, (size_t)m->nb * sizeof(int64_t));
    memcpy(m->bstride, strides, (size_t)m->nb * sizeof(int64_t));
    m->rows = t->shape[nd - 2];
    m->cols = t->shape[nd - 1];
    m->rs = strides[nd - 2];
    m->cs = strides[nd - 1];
}

/* A contiguous float32 copy of t's elements in *out. */
static int to_f32(bk_ctx *ctx, const bk_tensor *t, float **out)
{
    double *tmp;
    const double *src;
    *out = bk_malloc(ctx, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(float));
    if (!*out)
        return -1;
    if (t->numel == 0)
        return 0;
    if (!(src = read_f64(ctx, t, &tmp)))
        return -1;
    for (int64_t i = 0; i < t->numel; i++)
        (*out)[i] = (float)src[i];
    bk_free(ctx, tmp);
    return 0;
}

/* Sets up an operand in dtype dt; copies t (contiguous) only when its
 * dtype differs or its layout is not one BLAS accepts. */
static int mm_prepare(bk_ctx *ctx, const bk_tensor *t, bk_dtype dt, bool left, mm_arg *m)
{
    int64_t strides[BK_MAXDIM];
    memset(m, 0, sizeof *m);
    mm_geom(m, t, t->strides, left);
    if (t->dtype == (int8_t)dt && blas_layout(m)) {
        m->base = t->st->data;
        m->off = t->offset;
        return 0;
    }
    if (dt == BK_F32) {
        float *f;
        if (to_f32(ctx, t, &f) < 0)
            return -1;
        m->tmp = f;
    } else {
        m->tmp = bk_malloc(ctx, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(double));
        if (!m->tmp)
            return -1;
        if (t->numel > 0)
            bk_copy_out(t, m->tmp);
    }
    rowmajor_strides(t->ndim, t->shape, strides);
    mm_geom(m, t, strides, left);
    m->base = m->tmp;
    m->off = 0;
    if (!blas_layout(m)) { /* only degenerate (empty) shapes get here */
        m->tr = CblasNoTrans;
        m->ld = 1;
    }
    return 0;
}

typedef struct {
    bk_dtype dt;
    int64_t m, n, k;
    mm_arg a, b;
} mm_job;

/* Increments of a row / column vector operand for dot and gemv. */
static int vec_inc_row(const mm_arg *x) { return x->tr == CblasNoTrans ? 1 : x->ld; }
static int vec_inc_col(const mm_arg *x) { return x->tr == CblasNoTrans ? x->ld : 1; }

static void mm_one_f64(const mm_job *j, int64_t ao, int64_t bo, double *c)
{
    const double *A = (const double *)j->a.base + ao, *B = (const double *)j->b.base + bo;
    int m = (int)j->m, n = (int)j->n, k = (int)j->k;
    if (m == 1 && n == 1)
        c[0] = cblas_ddot(k, A, vec_inc_row(&j->a), B, vec_inc_col(&j->b));
    else if (m == 1 && j->b.tr == CblasNoTrans)
        bk__dgemv(CblasTrans, k, n, B, j->b.ld, A, vec_inc_row(&j->a), c);
    else if (m == 1)
        bk__dgemv(CblasNoTrans, n, k, B, j->b.ld, A, vec_inc_row(&j->a), c);
    else if (n == 1 && j->a.tr == CblasNoTrans)
        bk__dgemv(CblasNoTrans, m, k, A, j->a.ld, B, vec_inc_col(&j->b), c);
    else if (n == 1)
        bk__dgemv(CblasTrans, k, m, A, j->a.ld, B, vec_inc_col(&j->b), c);
    else
        cblas_dgemm(CblasRowMajor, j->a.tr, j->b.tr, m, n, k, 1.0, A, j->a.ld, B, j->b.ld,
                    0.0, c, n);
}

static void mm_one_f32(const mm_job *j, int64_t ao, int64_t bo, float *c)
{
    const float *A = (const float *)j->a.base + ao, *B = (const float *)j->b.base + bo;
    int m = (int)j->m, n = (int)j->n, k = (int)j->k;
    if (m == 1 && n == 1)
        c[0] = cblas_sdot(k, A, vec_inc_row(&j->a), B, vec_inc_col(&j->b));
    else if (m == 1 && j->b.tr == CblasNoTrans)
        cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, B, j->b.ld, A, vec_inc_row(&j->a),
                    0.0f, c, 1);
    else if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, B, j->b.ld, A,
                    vec_inc_row(&j->a), 0.0f, c, 1);
    else if (n == 1 && j->a.tr == CblasNoTrans)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0f, A, j->a.ld, B,
                    vec_inc_col(&j->b), 0.0f, c, 1);
    else if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, k, m, 1.0f, A, j->a.ld, B, vec_inc_col(&j->b),
                    0.0f, c, 1);
    else
        cblas_sgemm(CblasRowMajor, j->a.tr, j->b.tr, m, n, k, 1.0f, A, j->a.ld, B, j->b.ld,
                    0.0f, c, n);
}

/* When b has no batch dims and a's batches continue its rows at a uniform
 * stride, the whole batch is one (batch*m) x k matrix: one BLAS call. */
static bool mm_foldable(const mm_job *j)
{
    int64_t s;
    if (j->b.nb != 0 || j->a.nb == 0 || j->a.tr != CblasNoTrans)
        return false;
    s = j->m * j->a.ld;
    for (int d = j->a.nb - 1; d >= 0; d--) {
        if (j->a.bshape[d] != 1 && j->a.bstride[d] != s)
            return false;
        s *= j->a.bshape[d];
    }
    return j->m * prod(j->a.nb, j->a.bshape) <= INT_MAX;
}

static void mm_run(mm_job *j, int onb, const int64_t *obshape, void *out)
{
    int64_t sa[BK_MAXDIM], sb[BK_MAXDIM], cnt[BK_MAXDIM] = {0};
    int64_t nbatch = prod(onb, obshape), ao = j->a.off, bo = j->b.off, mn = j->m * j->n;
    if (mm_foldable(j)) {
        j->m *= nbatch;
        nbatch = 1;
    }
    align_batch(onb, obshape, j->a.nb, j->a.bshape, j->a.bstride, sa);
    align_batch(onb, obshape, j->b.nb, j->b.bshape, j->b.bstride, sb);
    for (int64_t i = 0; i < nbatch; i++) {
        if (j->dt == BK_F32)
            mm_one_f32(j, ao, bo, (float *)out + i * mn);
        else
            mm_one_f64(j, ao, bo, (double *)out + i * mn);
        batch_next(onb, obshape, cnt, sa, sb, &ao, &bo);
    }
}

/* Output shape of a matmul; -1 with the NumPy-style message on mismatch. */
static int mm_shape(bk_ctx *ctx, const bk_tensor *a, const bk_tensor *b, const mm_job *j,
                    int *onb, int64_t *obshape, int *ond, int64_t *oshape)
{
    char b1[128], b2[128];
    if (bcast(j->a.nb, j->a.bshape, j->b.nb, j->b.bshape, onb, obshape) < 0) {
        bk_seterr(ctx, "matmul: batch dimensions of shapes %s and %s cannot be broadcast",
                  bk_shape_str(a, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
        return -1;
    }
    *ond = *onb;
    memcpy(oshape, obshape, (size_t)*onb * sizeof(int64_t));
    if (a->ndim > 1)
        oshape[(*ond)++] = j->m;
    if (b->ndim > 1)
        oshape[(*ond)++] = j->n;
    return 0;
}

static int mm_check(bk_ctx *ctx, const bk_tensor *a, const bk_tensor *b)
{
    char b1[128], b2[128];
    int64_t ka, kb;
    if (a->ndim == 0 || b->ndim == 0) {
        bk_seterr(ctx, "matmul: operands must have at least one dimension, got shapes %s and %s",
                  bk_shape_str(a, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
        return -1;
    }
    ka = a->shape[a->ndim - 1];
    kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb) {
        bk_seterr(ctx, "matmul: shapes %s and %s are not aligned",
                  bk_shape_str(a, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
        return -1;
    }
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] > INT_MAX)
            goto big;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[i] > INT_MAX)
            goto big;
    return 0;
big:
    bk_seterr(ctx, "matmul: dimension too large for BLAS");
    return -1;
}

bk_tensor *bk_fw_MATMUL(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args)
{
    bk_tensor *a = in[0], *b = in[1], *out = NULL;
    mm_job j;
    int onb, ond;
    int64_t obshape[BK_MAXDIM], oshape[BK_MAXDIM];
    if (mm_check(ctx, a, b) < 0)
        return NULL;
    memset(&j, 0, sizeof j);
    j.dt = (a->dtype == BK_F32 && b->dtype == BK_F32) ? BK_F32 : BK_F64;
    if (mm_prepare(ctx, a, j.dt, true, &j.a) < 0 || mm_prepare(ctx, b, j.dt, false, &j.b) < 0)
        goto done;
    j.m = j.a.rows;
    j.k = j.a.cols;
    j.n = j.b.cols;
    if (mm_shape(ctx, a, b, &j, &onb, obshape, &ond, oshape) < 0)
        goto done;
    if (j.k == 0) { /* empty sum: zeros */
        out = bk_zeros(ctx, j.dt, ond, oshape);
        goto done;
    }
    out = bk_empty(ctx, j.dt, ond, oshape);
    if (out && out->numel > 0) {
        void *o = j.dt == BK_F32 ? (void *)((float *)out->st->data + out->offset)
                                 : (void *)((double *)out->st->data + out->offset);
        mm_run(&j, onb, obshape, o);
    }
done:
    bk_free(ctx, j.a.tmp);
    bk_free(ctx, j.b.tmp);
    return out;
}

/* x with a size-1 dimension inserted at position pos (negative: from the
 * end, -1 = last). */
static bk_tensor *insert_one(bk_ctx *ctx, bk_tensor *x, int pos)
{
    int64_t shape[BK_MAXDIM];
    int nd = x->ndim + 1, p = pos < 0 ? pos + nd : pos;
    for (int i = 0, s = 0; i < nd; i++)
        shape[i] = i == p ? 1 : x->shape[s++];
    return bk_reshape(ctx, x, nd, shape);
}

/* x with the dimension at pos (size 1) removed. */
static bk_tensor *drop_one(bk_ctx *ctx, bk_tensor *x, int pos)
{
    int64_t shape[BK_MAXDIM];
    int nd = x->ndim - 1, p = pos < 0 ? pos + x->ndim : pos;
    for (int i = 0, s = 0; i < x->ndim; i++)
        if (i != p)
            shape[s++] = x->shape[i];
    return bk_reshape(ctx, x, nd, shape);
}

/* ga = g b^T, gb = a^T g on the matrix-promoted operands (1-D a is
 * [1, k], 1-D b is [k, 1]); the promoted dims are dropped again. */
int bk_bw_MATMUL(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    bk_tensor *a = e->in[0], *b = e->in[1];
    bk_tensor *ap = NULL, *bp = NULL, *g1 = NULL, *gp = NULL, *t = NULL, *r = NULL;
    int rc = -1;
    ap = a->ndim == 1 ? insert_one(ctx, a, 0) : bk_retain(a);
    bp = b->ndim == 1 ? insert_one(ctx, b, -1) : bk_retain(b);
    /* gout lacks the promoted m (a 1-D) and/or n (b 1-D) dims */
    g1 = a->ndim == 1 ? insert_one(ctx, gout, gout->ndim - (b->ndim > 1 ? 1 : 0))
                      : bk_retain(gout);
    if (!ap || !bp || !g1)
        goto done;
    gp = b->ndim == 1 ? insert_one(ctx, g1, -1) : bk_retain(g1);
    if (!gp)
        goto done;
    if (a->requires_grad) {
        if (!(t = bk_transpose(ctx, bp, -1, -2)) || !(r = bk_matmul(ctx, gp, t)))
            goto done;
        gin[0] = a->ndim == 1 ? drop_one(ctx, r, -2) : bk_retain(r);
        bk_release(t);
        bk_release(r);
        t = r = NULL;
        if (!gin[0])
            goto done;
    }
    if (b->requires_grad) {
        if (!(t = bk_transpose(ctx, ap, -1, -2)) || !(r = bk_matmul(ctx, t, gp)))
            goto done;
        gin[1] = b->ndim == 1 ? drop_one(ctx, r, -1) : bk_retain(r);
        if (!gin[1])
            goto done;
    }
    rc = 0;
done:
    bk_release(ap);
    bk_release(bp);
    bk_release(g1);
    bk_release(gp);
    bk_release(t);
    bk_release(r);
    return rc;
}

/* ----------------------------------------------------------- cholesky --- */

bk_tensor *bk_fw_CHOLESKY(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args)
{
    bk_tensor *out;
    int n;
    int64_t nbatch;
    double *p;
    if (check_square(ctx, "cholesky", in[0]) < 0 || !(out = copy_f64(ctx, in[0])))
        return NULL;
    n = (int)in[0]->shape[in[0]->ndim - 1];
    if (out->numel == 0)
        return out;
    nbatch = out->numel / ((int64_t)n * n);
    p = bk_data(out);
    for (int64_t bi = 0; bi < nbatch; bi++, p += (int64_t)n * n) {
        /* column-major 'U' on the row-major buffer = row-major lower */
        lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', n, p, n);
        if (info != 0) {
            bk_release(out);
            bk_seterr(ctx, info > 0 ? "cholesky: matrix is not positive definite"
                                    : "cholesky: LAPACK dpotrf failed");
            return NULL;
        }
        for (int i = 0; i < n; i++)
            for (int jj = i + 1; jj < n; jj++)
                p[(int64_t)i * n + jj] = 0.0;
    }
    return out;
}

/* One batch of the Cholesky backward (Murray 2016, symmetrized):
 * S = L^-T Phi(L^T Lbar) L^-1, grad A = (S + S^T) / 2, where Phi takes the
 * lower triangle and halves the diagonal.  Works in place in p. */
static void chol_bw_one(int n, const double *L, const double *G, double *p)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, L, n, G, n, 0.0, p, n);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            p[(int64_t)i * n + j] = 0.0;
        p[(int64_t)i * n + i] *= 0.5;
    }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, n, 1.0, L,
                n, p, n);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, n, n, 1.0,
                L, n, p, n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            double s = 0.5 * (p[(int64_t)i * n + j] + p[(int64_t)j * n + i]);
            p[(int64_t)i * n + j] = s;
            p[(int64_t)j * n + i] = s;
        }
    }
}

int bk_bw_CHOLESKY(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0];
    double *lt, *gt;
    const double *L, *G;
    bk_tensor *out;
    int n = (int)x->shape[x->ndim - 1];
    if (!x->requires_grad)
        return 0;
    if (!(out = bk_empty(ctx, BK_F64, x->ndim, x->shape)))
        return -1;
    if (out->numel == 0) {
        gin[0] = out;
        return 0;
    }
    L = read_f64(ctx, e->out, &lt);
    G = L ? read_f64(ctx, gout, &gt) : NULL;
    if (!G) {
        bk_free(ctx, lt);
        bk_release(out);
        return -1;
    }
    for (int64_t off = 0; off < out->numel; off += (int64_t)n * n)
        chol_bw_one(n, L + off, G + off, bk_data(out) + off);
    bk_free(ctx, lt);
    bk_free(ctx, gt);
    gin[0] = out;
    return 0;
}

/* --------------------------------------------------- solve_triangular --- */

/* b is a (batch of) vector(s) when 1-D, or when its leading dims equal A's
 * batch dims exactly and its last dim is n; otherwise a batch of [n, k]. */
static bool solve_b_is_vec(const bk_tensor *A, const bk_tensor *b)
{
    int64_t n = A->shape[A->ndim - 1];
    if (b->ndim == 1)
        return true;
    if (b->ndim != A->ndim - 1 || b->shape[b->ndim - 1] != n)
        return false;
    for (int i = 0; i < b->ndim - 1; i++)
        if (b->shape[i] != A->shape[i])
            return false;
    return true;
}

typedef struct {
    bool vec;
    int n, k, onb;
    int64_t obshape[BK_MAXDIM];
} solve_geom;

static int solve_shape(bk_ctx *ctx, const bk_tensor *A, const bk_tensor *b, solve_geom *g,
                       int *ond, int64_t *oshape)
{
    char b1[128], b2[128];
    int bnb;
    if (check_square(ctx, "solve_triangular", A) < 0)
        return -1;
    g->n = (int)A->shape[A->ndim - 1];
    g->vec = b->ndim >= 1 && solve_b_is_vec(A, b);
    bnb = b->ndim - (g->vec ? 1 : 2);
    if (b->ndim == 0 || bnb < 0 || b->shape[bnb] != g->n || b->shape[b->ndim - 1] > INT_MAX ||
        bcast(A->ndim - 2, A->shape, bnb, b->shape, &g->onb, g->obshape) < 0) {
        bk_seterr(ctx, "solve_triangular: shapes %s and %s are not compatible",
                  bk_shape_str(A, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
        return -1;
    }
    g->k = g->vec ? 1 : (int)b->shape[b->ndim - 1];
    *ond = g->onb;
    memcpy(oshape, g->obshape, (size_t)g->onb * sizeof(int64_t));
    oshape[(*ond)++] = g->n;
    if (!g->vec)
        oshape[(*ond)++] = g->k;
    return 0;
}

/* Whether A (n x n) has a zero on its diagonal (never when unit); *at,
 * when not NULL, receives the first such position. */
static bool singular_at(const double *A, int n, bool unit, int *at)
{
    for (int d = 0; d < n && !unit; d++)
        if (A[(int64_t)d * n + d] == 0.0) {
            if (at)
                *at = d;
            return true;
        }
    return false;
}

static int solve_batches(bk_ctx *ctx, const bk_opargs *args, const solve_geom *g,
                         const bk_tensor *A, const double *Ad, const bk_tensor *b,
                         const double *bd, double *x)
{
    int64_t sa[BK_MAXDIM], sb[BK_MAXDIM], cnt[BK_MAXDIM] = {0}, ast[BK_MAXDIM],
        bst[BK_MAXDIM], ao = 0, bo = 0, nk = (int64_t)g->n * g->k;
    int bnb = b->ndim - (g->vec ? 1 : 2);
    CBLAS_UPLO uplo = args->upper ? CblasUpper : CblasLower;
    CBLAS_TRANSPOSE tr = args->trans ? CblasTrans : CblasNoTrans;
    CBLAS_DIAG diag = args->unit ? CblasUnit : CblasNonUnit;
    int64_t nbatch = prod(g->onb, g->obshape);
    rowmajor_strides(A->ndim, A->shape, ast);
    rowmajor_strides(b->ndim, b->shape, bst);
    align_batch(g->onb, g->obshape, A->ndim - 2, A->shape, ast, sa);
    align_batch(g->onb, g->obshape, bnb, b->shape, bst, sb);
    for (int64_t i = 0; i < nbatch; i++) {
        const double *Ai = Ad + ao;
        double *xi = x + i * nk;
        memcpy(xi, bd + bo, (size_t)nk * sizeof(double));
        /* one right-hand side (a vector, or a matrix of one column, as the
         * MultivariateNormal density solves): the loops of trsv, which
         * check the diagonal as they go; dtrsm would pack A into blocks on
         * every call (most of a 100-d MVN gradient went to that packing) */
        bool ok = true;
        if (g->vec || g->k == 1) {
            ok = trsv(g->n, Ai, args->upper, args->trans, args->unit, xi);
        } else {
            ok = !singular_at(Ai, g->n, args->unit, NULL);
            if (ok)
                cblas_dtrsm(CblasRowMajor, CblasLeft, uplo, tr, diag, g->n, g->k, 1.0, Ai, g->n,
                            xi, g->k);
        }
        if (!ok) {
            int d = 0;
            singular_at(Ai, g->n, args->unit, &d);
            bk_seterr(ctx, "solve_triangular: matrix is singular (zero at diagonal "
                           "position %d)", d);
            return -1;
        }
        batch_next(g->onb, g->obshape, cnt, sa, sb, &ao, &bo);
    }
    return 0;
}

bk_tensor *bk_fw_SOLVE_TRIANGULAR(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args)
{
    const bk_tensor *A = in[0], *b = in[1];
    solve_geom g;
    int ond;
    int64_t oshape[BK_MAXDIM];
    double *at = NULL, *bt = NULL;
    const double *Ad, *bd;
    bk_tensor *out;
    if (solve_shape(ctx, A, b, &g, &ond, oshape) < 0 ||
        !(out = bk_empty(ctx, BK_F64, ond, oshape)))
        return NULL;
    if (out->numel == 0)
        return out;
    if (!(Ad = read_f64(ctx, A, &at)) || !(bd = read_f64(ctx, b, &bt)) ||
        solve_batches(ctx, args, &g, A, Ad, b, bd, bk_data(out)) < 0) {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, at);
    bk_free(ctx, bt);
    return out;
}

/* scale * t with the entries outside A's triangle (and the diagonal when
 * unit) zeroed: the entries solve_triangular never reads get no gradient. */
static bk_tensor *tri_mask(bk_ctx *ctx, const bk_tensor *t, bool upper, bool unit,
                           double scale)
{
    bk_tensor *out = copy_f64(ctx, t);
    int64_t n = t->shape[t->ndim - 1];
    double *p;
    if (!out || out->numel == 0)
        return out;
    p = bk_data(out);
    for (int64_t off = 0; off < out->numel; off += n * n)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                bool keep = (upper ? j >= i : j <= i) && !(unit && i == j);
                p[off + i * n + j] = keep ? scale * p[off + i * n + j] : 0.0;
            }
    return out;
}

/* x = op(A)^-1 b: grad b = op(A)^-T g (one more solve), grad A = -gb x^T
 * (transposed when op is the transpose), restricted to A's triangle. */
int bk_bw_SOLVE_TRIANGULAR(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout,
                           bk_tensor **gin)
{
    bk_tensor *A = e->in[0], *b = e->in[1], *x = e->out;
    bk_tensor *gb, *gm = NULL, *xm = NULL, *t = NULL, *M = NULL, *in2[2];
    bk_opargs args = e->args;
    bool vec = solve_b_is_vec(A, x);
    int rc = -1;
    args.trans = !args.trans;
    in2[0] = A;
    in2[1] = gout;
    if (!A->requires_grad && !b->requires_grad)
        return 0;
    if (!(gb = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in2, &args)))
        return -1;
    if (A->requires_grad) {
        gm = vec ? insert_one(ctx, gb, -1) : bk_retain(gb);
        xm = vec ? insert_one(ctx, x, -1) : bk_retain(x);
        if (!gm || !xm)
            goto done;
        if (e->args.trans)
            M = (t = bk_transpose(ctx, gm, -1, -2)) ? bk_matmul(ctx, xm, t) : NULL;
        else
            M = (t = bk_transpose(ctx, xm, -1, -2)) ? bk_matmul(ctx, gm, t) : NULL;
        if (!M || !(gin[0] = tri_mask(ctx, M, e->args.upper, e->args.unit, -1.0)))
            goto done;
    }
    if (b->requires_grad)
        gin[1] = bk_retain(gb);
    rc = 0;
done:
    bk_release(gb);
    bk_release(gm);
    bk_release(xm);
    bk_release(t);
    bk_release(M);
    return rc;
}

/* ----------------------------------------------------- logdet, inverse --- */

bk_tensor *bk_fw_LOGDET(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args)
{
    const bk_tensor *x = in[0];
    bk_tensor *out;
    double *buf, *o;
    lapack_int *ipiv;
    int n;
    int64_t nbatch;
    if (check_square(ctx, "logdet", x) < 0 || !(out = bk_empty(ctx, BK_F64, x->ndim - 2, x->shape)))
        return NULL;
    n = (int)x->shape[x->ndim - 1];
    nbatch = out->numel;
    o = bk_data(out);
    if (n == 0) { /* det of an empty matrix is 1 */
        for (int64_t i = 0; i < nbatch; i++)
            o[i] = 0.0;
        return out;
    }
    buf = bk_malloc(ctx, (size_t)(x->numel > 0 ? x->numel : 1) * sizeof *buf);
    ipiv = buf ? bk_malloc(ctx, (size_t)n * sizeof *ipiv) : NULL;
    if (!ipiv) {
        bk_free(ctx, buf);
        bk_release(out);
        return NULL;
    }
    if (x->numel > 0)
        bk_copy_out(x, buf);
    for (int64_t bi = 0; bi < nbatch; bi++) {
        double *p = buf + bi * (int64_t)n * n, s = 0.0;
        lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, n, n, p, n, ipiv);
        if (info > 0) {
            o[bi] = -INFINITY; /* singular: log 0 */
            continue;
        }
        for (int i = 0; i < n; i++)
            s += log(fabs(p[(int64_t)i * n + i]));
        o[bi] = s;
    }
    bk_free(ctx, ipiv);
    bk_free(ctx, buf);
    return out;
}

/* d log|det A| = g A^-T */
int bk_bw_LOGDET(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    bk_tensor *x = e->in[0], *inv, *invt = NULL, *g2 = NULL, *g1 = NULL;
    if (!x->requires_grad)
        return 0;
    if (!(inv = bk_inverse(ctx, x)))
        return -1;
    if ((invt = bk_transpose(ctx, inv, -1, -2)) && (g1 = insert_one(ctx, gout, gout->ndim)) &&
        (g2 = insert_one(ctx, g1, g1->ndim)))
        gin[0] = bk_mul(ctx, g2, invt);
    bk_release(inv);
    bk_release(invt);
    bk_release(g1);
    bk_release(g2);
    return gin[0] ? 0 : -1;
}

bk_tensor *bk_fw_INVERSE(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args)
{
    bk_tensor *out;
    lapack_int *ipiv;
    double *work, *p;
    int n, lwork;
    if (check_square(ctx, "inverse", in[0]) < 0 || !(out = copy_f64(ctx, in[0])))
        return NULL;
    n = (int)in[0]->shape[in[0]->ndim - 1];
    if (out->numel == 0)
        return out;
    lwork = n > INT_MAX / 64 ? n : 64 * n;
    ipiv = bk_malloc(ctx, (size_t)n * sizeof *ipiv);
    work = ipiv ? bk_malloc(ctx, (size_t)lwork * sizeof *work) : NULL;
    if (!work)
        goto fail;
    p = bk_data(out);
    for (int64_t off = 0; off < out->numel; off += (int64_t)n * n) {
        lapack_int info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, n, n, p + off, n, ipiv);
        if (info > 0) {
            bk_seterr(ctx, "inverse: matrix is singular");
            goto fail;
        }
        if (info < 0 ||
            LAPACKE_dgetri_work(LAPACK_COL_MAJOR, n, p + off, n, ipiv, work, lwork) != 0) {
            bk_seterr(ctx, "inverse: LAPACK failed");
            goto fail;
        }
    }
    bk_free(ctx, ipiv);
    bk_free(ctx, work);
    return out;
fail:
    bk_free(ctx, ipiv);
    bk_free(ctx, work);
    bk_release(out);
    return NULL;
}

/* d inv(A) = -A^-1 dA A^-1, so grad A = -A^-T g A^-T. */
int bk_bw_INVERSE(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    bk_tensor *yt, *t1 = NULL, *t2 = NULL;
    if (!e->in[0]->requires_grad)
        return 0;
    if (!(yt = bk_transpose(ctx, e->out, -1, -2)))
        return -1;
    if ((t1 = bk_matmul(ctx, yt, gout)) && (t2 = bk_matmul(ctx, t1, yt)))
        gin[0] = bk_mul_s(ctx, t2, -1.0);
    bk_release(yt);
    bk_release(t1);
    bk_release(t2);
    return gin[0] ? 0 : -1;
}
