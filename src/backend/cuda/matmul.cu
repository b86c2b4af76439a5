/* matmul.cu - matmul with NumPy semantics (1-D operands promoted, batch
 * dims broadcast) through cuBLAS strided-batched GEMM, float32 when both
 * operands are float32 and float64 otherwise (as ops_linalg.c).
 *
 * cuBLAS is column-major: a row-major C = A B is the column-major
 * C^T = B^T A^T, so the operands are passed swapped.  A matrix whose
 * columns are contiguous (a transposed view) is passed with the transpose
 * flag instead of being copied. */
#include <limits.h>
#include <string.h>

#include "cuda_common.cuh"

/* One operand as cuBLAS sees it: a batch of rows x cols matrices. */
typedef struct mm_op {
    bk_tensor *t;            /* the tensor the pointer is into (owned) */
    const void *p;
    cublasOperation_t op;    /* on the column-major view of the buffer */
    int ld;
    long long stride;        /* between batch matrices; 0 repeats one */
    int64_t rows, cols;
} mm_op;

/* The layout of the last two dims of t: N (rows contiguous), T (columns
 * contiguous), or -1 (neither). */
static int mat_layout(const bk_tensor *t, int64_t *ld) {
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    int64_t rs = t->strides[t->ndim - 2], cs = t->strides[t->ndim - 1];
    if (rows == 1) rs = cols > 1 ? cols : 1;
    if (cols == 1) cs = 1;
    if (cs == 1 && rs >= (cols > 1 ? cols : 1)) {
        *ld = rs;
        return 0;
    }
    if (rows > 1 && rs == 1 && cs >= rows) {
        *ld = cs;
        return 1;
    }
    return -1;
}

/* The single stride of t's batch dims (flattened), or -1 when they do not
 * flatten; 0 when there is one matrix. */
static int64_t batch_stride(const bk_tensor *t) {
    int nb = t->ndim - 2;
    int64_t st = -1, expect = -1;
    for (int d = nb - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue;
        if (st < 0) st = t->strides[d];
        else if (t->strides[d] != expect) return -1;
        expect = t->strides[d] * t->shape[d];
    }
    return st < 0 ? 0 : st;
}

/* Prepares operand t (matrix-promoted, dtype dt) for a batch of shape
 * obshape (onb dims); -1 with an error. */
static int mm_prepare(bk_ctx *ctx, bk_tensor *t, int dt, int onb, const int64_t *obshape, int64_t nbatch, mm_op *m) {
    int nb = t->ndim - 2;
    int64_t tb = 1;
    for (int d = 0; d < nb; d++) tb *= t->shape[d];
    bk_tensor *u = bk_retain(t);
    if (tb > 1 && tb != nbatch) { /* a broadcast batch: materialize it */
        int64_t shape[BK_MAXDIM];
        memcpy(shape, obshape, (size_t)onb * sizeof *shape);
        shape[onb] = t->shape[t->ndim - 2];
        shape[onb + 1] = t->shape[t->ndim - 1];
        bk_opargs a;
        memset(&a, 0, sizeof a);
        a.ndim = onb + 2;
        memcpy(a.shape, shape, sizeof shape);
        bk_tensor *e = bk_fw_EXPAND(ctx, &u, &a);
        bk_release(u);
        u = e ? cu_dense(ctx, e, dt) : NULL;
        bk_release(e);
        if (!u) return -1;
    }
    int64_t ld = 0;
    int lay = mat_layout(u, &ld);
    int64_t bs = batch_stride(u);
    if (u->dtype != dt || lay < 0 || bs < 0) {
        bk_tensor *d = cu_dense(ctx, u, dt);
        bk_release(u);
        if (!(u = d)) return -1;
        lay = mat_layout(u, &ld);
        bs = batch_stride(u);
    }
    m->t = u;
    m->rows = u->shape[u->ndim - 2];
    m->cols = u->shape[u->ndim - 1];
    m->p = (const char *)u->st->data + (size_t)u->offset * cu_dtsize(dt);
    m->op = lay == 1 ? CUBLAS_OP_T : CUBLAS_OP_N;
    m->ld = (int)ld;
    m->stride = (long long)bs;
    if (ld > INT_MAX) {
        bk_seterr(ctx, "matmul: dimension too large for BLAS");
        return -1;
    }
    return 0;
}

/* t with a size-1 dim inserted at pos (a view). */
static bk_tensor *promote(bk_ctx *ctx, bk_tensor *t, int pos) {
    int64_t shape[BK_MAXDIM], st[BK_MAXDIM];
    int nd = t->ndim + 1;
    for (int i = 0, s = 0; i < nd; i++) {
        if (i == pos) {
            shape[i] = 1;
            st[i] = 1;
        } else {
            shape[i] = t->shape[s];
            st[i] = t->strides[s];
            s++;
        }
    }
    if (pos == 0) st[0] = t->shape[0] * t->strides[0];
    return bk_view(ctx, t, nd, shape, st, t->offset);
}

bk_tensor *cu_fw_MATMUL(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    (void)args;
    bk_tensor *a = in[0], *b = in[1];
    char b1[128], b2[128];
    cu_state *s = cu_get(ctx);
    if (!s) return NULL;
    if (a->ndim == 0 || b->ndim == 0) {
        bk_seterr(ctx, "matmul: operands must have at least one dimension, got shapes %s and %s",
                  bk_shape_str(a, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    int64_t ka = a->shape[a->ndim - 1], kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb) {
        bk_seterr(ctx, "matmul: shapes %s and %s are not aligned", bk_shape_str(a, b1, sizeof b1),
                  bk_shape_str(b, b2, sizeof b2));
        return NULL;
    }
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] > INT_MAX) goto big;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[i] > INT_MAX) goto big;
    {
        int dt = a->dtype == BK_F32 && b->dtype == BK_F32 ? BK_F32 : BK_F64;
        bk_tensor *ap = a->ndim == 1 ? promote(ctx, a, 0) : bk_retain(a);
        bk_tensor *bp = b->ndim == 1 ? promote(ctx, b, 1) : bk_retain(b);
        bk_tensor *out = NULL;
        mm_op A, B;
        memset(&A, 0, sizeof A);
        memset(&B, 0, sizeof B);
        int onb = 0;
        int64_t obshape[BK_MAXDIM], oshape[BK_MAXDIM], nbatch = 1;
        int ond = 0;
        if (!ap || !bp) goto done;
        if (bk_broadcast_shapes(ctx, ap->ndim - 2, ap->shape, bp->ndim - 2, bp->shape, &onb, obshape)) {
            bk_seterr(ctx, "matmul: batch dimensions of shapes %s and %s cannot be broadcast",
                      bk_shape_str(a, b1, sizeof b1), bk_shape_str(b, b2, sizeof b2));
            goto done;
        }
        for (int d = 0; d < onb; d++) nbatch *= obshape[d];
        if (mm_prepare(ctx, ap, dt, onb, obshape, nbatch, &A) || mm_prepare(ctx, bp, dt, onb, obshape, nbatch, &B))
            goto done;
        memcpy(oshape, obshape, (size_t)onb * sizeof *oshape);
        ond = onb;
        if (a->ndim > 1) oshape[ond++] = A.rows;
        if (b->ndim > 1) oshape[ond++] = B.cols;
        {
            int m = (int)A.rows, n = (int)B.cols, k = (int)A.cols;
            out = cu_empty(ctx, dt, ond, oshape);
            if (!out || out->numel == 0) goto done;
            if (k == 0) {
                if (cu_check(ctx, cudaMemsetAsync(out->st->data, 0, (size_t)out->numel * cu_dtsize(dt), s->stream),
                             "memset")) {
                    bk_release(out);
                    out = NULL;
                }
                goto done;
            }
            cublasStatus_t st;
            long long sc = (long long)m * n;
            if (dt == BK_F32) {
                const float one = 1, zero = 0;
                st = cublasSgemmStridedBatched(s->blas, B.op, A.op, n, m, k, &one, (const float *)B.p, B.ld,
                                               B.stride, (const float *)A.p, A.ld, A.stride, &zero,
                                               (float *)out->st->data, n, sc, (int)nbatch);
            } else {
                const double one = 1, zero = 0;
                st = cublasDgemmStridedBatched(s->blas, B.op, A.op, n, m, k, &one, (const double *)B.p, B.ld,
                                               B.stride, (const double *)A.p, A.ld, A.stride, &zero,
                                               (double *)out->st->data, n, sc, (int)nbatch);
            }
            if (cu_check_blas(ctx, st, "gemm")) {
                bk_release(out);
                out = NULL;
            }
        }
    done:
        bk_release(A.t);
        bk_release(B.t);
        bk_release(ap);
        bk_release(bp);
        return out;
    }
big:
    bk_seterr(ctx, "matmul: dimension too large for BLAS");
    return NULL;
}
