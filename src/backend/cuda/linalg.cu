/* linalg.cu - cholesky (cuSOLVER potrf) and solve_triangular (cuBLAS
 * trsm) in float64 (float32 inputs are converted, as the CPU does), and the
 * solve_triangular backward rule (ops_linalg.c's, with a device kernel for
 * the triangle mask).  The Cholesky backward falls back to the CPU.
 *
 * Row-major matrices are column-major transposes: a lower Cholesky factor
 * in row-major is cuSOLVER's upper one, and op(A) X = B in row-major is
 * X^T op(A)^T = B^T in column-major (a right-side trsm). */
#include <limits.h>
#include <string.h>

#include "cuda_common.cuh"

static int check_square(bk_ctx *ctx, const char *op, const bk_tensor *t) {
    char b[128];
    if (t->ndim >= 2 && t->shape[t->ndim - 1] == t->shape[t->ndim - 2]) {
        if (t->shape[t->ndim - 1] <= INT_MAX) return 0;
        bk_seterr(ctx, "%s: matrix too large", op);
        return -1;
    }
    bk_seterr(ctx, "%s: expected a square matrix (or a batch of them), got shape %s", op, bk_shape_str(t, b, sizeof b));
    return -1;
}

/* Zeros the strict upper triangle of each row-major n x n matrix. */
__global__ void zero_upper_kernel(double *p, int64_t n, int64_t N) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = e % n, i = (e / n) % n;
        if (j > i) p[e] = 0.0;
    }
}

static bk_tensor *to_dtype(bk_ctx *ctx, bk_tensor *t, int dt) {
    if (!t || t->dtype == dt) return t;
    bk_tensor *r = cu_elementwise(ctx, CU_OP_COPY, 1, &t, 0, dt);
    bk_release(t);
    return r;
}

bk_tensor *cu_fw_CHOLESKY(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    (void)args;
    cu_state *s = cu_get(ctx);
    if (!s || check_square(ctx, "cholesky", in[0]) < 0 || !cu_solver(ctx, s)) return NULL;
    bk_tensor *out = cu_elementwise(ctx, CU_OP_COPY, 1, in, 0, BK_F64); /* a fresh copy: factored in place */
    if (!out || out->numel == 0) return out;
    int n = (int)in[0]->shape[in[0]->ndim - 1], lwork = 0;
    int64_t nbatch = out->numel / ((int64_t)n * n);
    double *p = (double *)out->st->data, *work = NULL;
    int *info = (int *)cu_alloc(ctx, (size_t)nbatch * sizeof(int));
    int rc = info ? cu_check_solver(ctx, cusolverDnDpotrf_bufferSize(s->solver, CUBLAS_FILL_MODE_UPPER, n, p, n, &lwork),
                                    "potrf_bufferSize")
                  : -1;
    if (rc == 0 && !(work = (double *)cu_alloc(ctx, (size_t)(lwork > 0 ? lwork : 1) * sizeof(double)))) rc = -1;
    for (int64_t b = 0; rc == 0 && b < nbatch; b++)
        rc = cu_check_solver(ctx,
                             cusolverDnDpotrf(s->solver, CUBLAS_FILL_MODE_UPPER, n, p + b * n * n, n, work, lwork, info + b),
                             "potrf");
    int *hinfo = rc == 0 ? (int *)bk_malloc(ctx, (size_t)nbatch * sizeof(int)) : NULL;
    if (rc == 0 && !hinfo) rc = -1;
    if (rc == 0)
        rc = cu_check(ctx, cudaMemcpyAsync(hinfo, info, (size_t)nbatch * sizeof(int), cudaMemcpyDeviceToHost, s->stream),
                      "potrf info") ||
             cu_check(ctx, cudaStreamSynchronize(s->stream), "potrf");
    for (int64_t b = 0; rc == 0 && b < nbatch; b++)
        if (hinfo[b] != 0) {
            bk_seterr(ctx, hinfo[b] > 0 ? "cholesky: matrix is not positive definite" : "cholesky: LAPACK dpotrf failed");
            rc = -1;
        }
    if (rc == 0) {
        zero_upper_kernel<<<cu_grid(out->numel), CU_THREADS, 0, s->stream>>>(p, n, out->numel);
        rc = cu_launched(ctx, "cholesky");
    }
    bk_free(ctx, hinfo);
    cu_free(ctx, work);
    cu_free(ctx, info);
    if (rc) {
        bk_release(out);
        return NULL;
    }
    return to_dtype(ctx, out, in[0]->dtype);
}

/* ------------------------------------------------------ solve_triangular --- */

static bool b_is_vec(const bk_tensor *A, const bk_tensor *b) {
    int64_t n = A->shape[A->ndim - 1];
    if (b->ndim == 1) return true;
    if (b->ndim != A->ndim - 1 || b->shape[b->ndim - 1] != n) return false;
    for (int i = 0; i < b->ndim - 1; i++)
        if (b->shape[i] != A->shape[i]) return false;
    return true;
}

/* Flags the first (batch, d) with a zero on the diagonal. */
__global__ void zero_diag_kernel(const double *A, int64_t n, int64_t nbatch, unsigned long long *flag) {
    int64_t N = n * nbatch;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = e / n, d = e % n;
        if (A[b * n * n + d * n + d] == 0.0) atomicMin(flag, (unsigned long long)e);
    }
}

/* t expanded to shape (a view), then a contiguous float64 copy. */
static bk_tensor *dense_expanded(bk_ctx *ctx, bk_tensor *t, int nd, const int64_t *shape) {
    bk_opargs a;
    memset(&a, 0, sizeof a);
    a.ndim = nd;
    memcpy(a.shape, shape, (size_t)nd * sizeof *shape);
    bk_tensor *e = bk_fw_EXPAND(ctx, &t, &a);
    bk_tensor *r = e ? cu_elementwise(ctx, CU_OP_COPY, 1, &e, 0, BK_F64) : NULL;
    bk_release(e);
    return r;
}

bk_tensor *cu_fw_SOLVE_TRIANGULAR(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    bk_tensor *A = in[0], *b = in[1];
    char b1[128], b2[128];
    cu_state *s = cu_get(ctx);
    if (!s || check_square(ctx, "solve_triangular", A) < 0) return NULL;
    int n = (int)A->shape[A->ndim - 1];
    bool vec = b->ndim >= 1 && b_is_vec(A, b);
    int bnb = b->ndim - (vec ? 1 : 2), onb = 0;
    int64_t obshape[BK_MAXDIM];
    if (b->ndim == 0 || bnb < 0 || b->shape[bnb] != n || b->shape[b->ndim - 1] > INT_MAX ||
        bk_broadcast_shapes(ctx, A->ndim - 2, A->shape, bnb, b->shape, &onb, obshape)) {
        bk_seterr(ctx, "solve_triangular: shapes %s and %s are not compatible", bk_shape_str(A, b1, sizeof b1),
                  bk_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    int k = vec ? 1 : (int)b->shape[b->ndim - 1];
    int64_t oshape[BK_MAXDIM], ashape[BK_MAXDIM], nbatch = 1;
    int ond = onb;
    memcpy(oshape, obshape, (size_t)onb * sizeof *oshape);
    memcpy(ashape, obshape, (size_t)onb * sizeof *ashape);
    for (int d = 0; d < onb; d++) nbatch *= obshape[d];
    oshape[ond++] = n;
    if (!vec) oshape[ond++] = k;
    ashape[onb] = ashape[onb + 1] = n;
    bk_tensor *X = dense_expanded(ctx, b, ond, oshape); /* solved in place */
    bk_tensor *Ad = X ? dense_expanded(ctx, A, onb + 2, ashape) : NULL;
    int rc = Ad ? 0 : -1;
    if (rc == 0 && X->numel > 0 && !args->unit) {
        unsigned long long pos;
        rc = cu_flag_reset(ctx, s);
        if (rc == 0) {
            zero_diag_kernel<<<cu_grid(n * nbatch), CU_THREADS, 0, s->stream>>>((const double *)Ad->st->data, n, nbatch,
                                                                                s->flag);
            rc = cu_launched(ctx, "solve_triangular") || cu_flag_read(ctx, s, &pos) ? -1 : 0;
        }
        if (rc == 0 && pos != ~0ULL) {
            bk_seterr(ctx, "solve_triangular: matrix is singular (zero at diagonal position %d)", (int)(pos % n));
            rc = -1;
        }
    }
    const double one = 1;
    cublasFillMode_t uplo = args->upper ? CUBLAS_FILL_MODE_LOWER : CUBLAS_FILL_MODE_UPPER;
    cublasOperation_t tr = args->trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasDiagType_t diag = args->unit ? CUBLAS_DIAG_UNIT : CUBLAS_DIAG_NON_UNIT;
    for (int64_t i = 0; rc == 0 && X->numel > 0 && i < nbatch; i++)
        rc = cu_check_blas(ctx,
                           cublasDtrsm(s->blas, CUBLAS_SIDE_RIGHT, uplo, tr, diag, k, n, &one,
                                       (const double *)Ad->st->data + i * n * n, n,
                                       (double *)X->st->data + i * n * k, k),
                           "trsm");
    bk_release(Ad);
    if (rc) {
        bk_release(X);
        return NULL;
    }
    return to_dtype(ctx, X, A->dtype == BK_F32 || b->dtype == BK_F32 ? BK_F32 : BK_F64);
}

/* scale * t with the entries outside A's triangle (and the diagonal when
 * unit) zeroed. */
__global__ void tri_mask_kernel(cu_view t, double *out, int64_t n, int upper, int unit, double scale, int64_t N) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = e % n, i = (e / n) % n;
        bool keep = (upper ? j >= i : j <= i) && !(unit && i == j);
        out[e] = keep ? scale * cu_load(t, e) : 0.0;
    }
}

static bk_tensor *with_one(bk_ctx *ctx, bk_tensor *x) {
    int64_t shape[BK_MAXDIM];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    shape[x->ndim] = 1;
    return bk_reshape(ctx, x, x->ndim + 1, shape);
}

/* ops_linalg.c's rule: grad b = op(A)^-T g, grad A = -gb x^T (transposed
 * for op = transpose) on A's triangle. */
int cu_bw_SOLVE_TRIANGULAR(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    bk_tensor *A = e->in[0], *b = e->in[1], *x = e->out;
    if (!A->requires_grad && !b->requires_grad) return 0;
    cu_state *s = cu_get(ctx);
    if (!s) return -1;
    bk_opargs args = e->args;
    args.trans = !args.trans;
    bk_tensor *in2[2] = {A, gout}, *gm = NULL, *xm = NULL, *t = NULL, *M = NULL;
    bool vec = b_is_vec(A, x);
    int rc = -1;
    bk_tensor *gb = bk_apply(ctx, BK_OP_SOLVE_TRIANGULAR, 2, in2, &args);
    if (!gb) return -1;
    if (A->requires_grad) {
        gm = vec ? with_one(ctx, gb) : bk_retain(gb);
        xm = vec ? with_one(ctx, x) : bk_retain(x);
        if (!gm || !xm) goto done;
        if (e->args.trans) M = (t = bk_transpose(ctx, gm, -1, -2)) ? bk_matmul(ctx, xm, t) : NULL;
        else M = (t = bk_transpose(ctx, xm, -1, -2)) ? bk_matmul(ctx, gm, t) : NULL;
        if (!M) goto done;
        {
            bk_tensor *r = cu_empty(ctx, BK_F64, M->ndim, M->shape);
            if (!r) goto done;
            if (r->numel) {
                tri_mask_kernel<<<cu_grid(r->numel), CU_THREADS, 0, s->stream>>>(
                    cu_view_of(M), (double *)r->st->data, M->shape[M->ndim - 1], e->args.upper, e->args.unit, -1.0,
                    r->numel);
                if (cu_launched(ctx, "solve_triangular backward")) {
                    bk_release(r);
                    goto done;
                }
            }
            gin[0] = r;
        }
    }
    if (b->requires_grad) gin[1] = bk_retain(gb);
    rc = 0;
done:
    bk_release(gb);
    bk_release(gm);
    bk_release(xm);
    bk_release(t);
    bk_release(M);
    return rc;
}
