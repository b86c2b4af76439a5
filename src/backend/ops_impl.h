/* ops_impl.h - naming convention binding the op table to the op files.
 * Every op E in BK_OPS defines, in one of the ops_*.c files,
 *     bk_tensor *bk_fw_E(bk_ctx *, bk_tensor **in, const bk_opargs *);
 *     int        bk_bw_E(bk_ctx *, const bk_tape_entry *, bk_tensor *gout,
 *                        bk_tensor **gin);
 * (non-differentiable ops define bk_bw_E to leave gin NULL and return 0).
 * ops_table.c builds bk_optable from these names, so an op missing either
 * function fails to link. */
#ifndef PPL_BACKEND_OPS_IMPL_H
#define PPL_BACKEND_OPS_IMPL_H
#include "tensor.h"

#define BK_DECLARE_OP(E, name, nin, diff)                                    \
    bk_tensor *bk_fw_##E(bk_ctx *, bk_tensor **, const bk_opargs *);        \
    int bk_bw_##E(bk_ctx *, const bk_tape_entry *, bk_tensor *, bk_tensor **);
BK_OPS(BK_DECLARE_OP)
#undef BK_DECLARE_OP

/* The element offsets, into a contiguous tensor of x's shape, that op
 * (INDEX with args a, INDEX_SELECT or GATHER with index tensor idx, axis
 * a->axis) reads for its result, in row-major order (the offsets its
 * backward rule scatter-adds the gradient at); *count of them.  NULL with
 * an error set.  (ops_index.c, for the compiled replay.) */
int64_t *bk__index_offsets(bk_ctx *ctx, int op, const bk_tensor *x, const bk_tensor *idx,
                           const bk_opargs *a, int64_t *count);

/* cblas_dgemv(CblasRowMajor, trans, m, n, 1.0, A, lda, x, incx, 0.0, y, 1):
 * y = A x (n values of x, m of y) or y = A^T x (m of x, n of y).  A tall
 * thin contiguous A (lda = n <= 32, incx = 1, a design matrix with a
 * handful of columns) goes through loops of its own (BLAS's kernels spend
 * most of their time on the short rows: a logistic regression's X of 10^4
 * x 25 took ~40 us per product); anything else through BLAS.  The choice
 * depends only on the arguments, so every caller (ops_linalg.c's matmul
 * and its backward, the compiled replay) gets the same bits for the same
 * product. */
void bk__dgemv(int trans, int64_t m, int64_t n, const double *A, int64_t lda, const double *x, int64_t incx,
               double *y);

#endif
