/* shape.cu - the shape ops that move data: reshape of a strided input,
 * contiguous, cast, concat and stack.  (Transpose and expand, and reshape
 * of a contiguous input, are views: no kernel.)  Their backward rules are
 * the CPU's, written with ops. */
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

bk_tensor *cu_fw_CONTIGUOUS(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    (void)a;
    return cu_elementwise(c, CU_OP_COPY, 1, in, 0, in[0]->dtype);
}

bk_tensor *cu_fw_CAST(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    if (a->n != BK_F64 && a->n != BK_F32) {
        bk_seterr(c, "cast: unknown dtype %d", a->n);
        return NULL;
    }
    return cu_elementwise(c, CU_OP_COPY, 1, in, 0, a->n);
}

/* The CPU kernel checks the target shape and makes the view; a strided
 * input is first made contiguous here (it would copy on the host). */
bk_tensor *cu_fw_RESHAPE(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    if (bk_is_contiguous(in[0])) return bk_fw_RESHAPE(c, in, a);
    bk_tensor *d = cu_elementwise(c, CU_OP_COPY, 1, in, 0, in[0]->dtype);
    if (!d) return NULL;
    bk_tensor *r = bk_fw_RESHAPE(c, &d, a);
    bk_release(d);
    return r;
}

/* out viewed as [outer, total]: input element e (row-major) goes to row
 * e / block, column col + e % block. */
__global__ void place_kernel(cu_view src, void *out, int out32, int64_t outer, int64_t block, int64_t total,
                             int64_t col) {
    int64_t N = outer * block;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x)
        cu_store(out, out32, (e / block) * total + col + e % block, cu_load(src, e));
}

static int same_shapes(bk_ctx *ctx, const char *op, int n, bk_tensor **in, int64_t skip) {
    char b1[128], b2[128];
    for (int i = 1; i < n; i++) {
        bool ok = in[i]->ndim == in[0]->ndim;
        for (int d = 0; ok && d < in[0]->ndim; d++) ok = d == skip || in[i]->shape[d] == in[0]->shape[d];
        if (ok) continue;
        if (skip >= 0)
            bk_seterr(ctx, "%s: shapes %s and %s differ outside axis %lld", op, bk_shape_str(in[0], b1, sizeof b1),
                      bk_shape_str(in[i], b2, sizeof b2), (long long)skip);
        else
            bk_seterr(ctx, "%s: all tensors must have the same shape, got %s and %s", op,
                      bk_shape_str(in[0], b1, sizeof b1), bk_shape_str(in[i], b2, sizeof b2));
        return -1;
    }
    return 0;
}

static int norm_axis(bk_ctx *ctx, const char *op, int64_t axis, int ndim, int64_t *out) {
    int64_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
        bk_seterr(ctx, "%s: axis %lld is out of range for a tensor of dimension %d", op, (long long)axis, ndim);
        return -1;
    }
    *out = a;
    return 0;
}

/* Copies the inputs, each [outer, block_i], side by side into out. */
static bk_tensor *join(bk_ctx *ctx, int n, bk_tensor **in, int ndim, const int64_t *shape, int64_t outer,
                       const int64_t *block) {
    cu_state *s = cu_get(ctx);
    if (!s) return NULL;
    int dt = BK_F64;
    for (int i = 0; i < n; i++)
        if (in[i]->dtype == BK_F32) dt = BK_F32;
    bk_tensor *out = cu_empty(ctx, dt, ndim, shape);
    if (!out || out->numel == 0) return out;
    int64_t total = 0, col = 0;
    for (int i = 0; i < n; i++) total += block[i];
    for (int i = 0; i < n; i++) {
        int64_t N = outer * block[i];
        if (N > 0) {
            place_kernel<<<cu_grid(N), CU_THREADS, 0, s->stream>>>(cu_view_of(in[i]), out->st->data, dt == BK_F32,
                                                                   outer, block[i], total, col);
            if (cu_launched(ctx, "concat")) {
                bk_release(out);
                return NULL;
            }
        }
        col += block[i];
    }
    return out;
}

bk_tensor *cu_fw_CONCAT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a) {
    int n = a->n;
    int64_t axis, shape[BK_MAXDIM], outer = 1, inner = 1, block[64];
    if (n < 1) {
        bk_seterr(ctx, "concat: needs at least one tensor");
        return NULL;
    }
    if (in[0]->ndim == 0) {
        bk_seterr(ctx, "concat: zero-dimensional tensors cannot be concatenated");
        return NULL;
    }
    if (norm_axis(ctx, "concat", a->axis, in[0]->ndim, &axis) < 0 || same_shapes(ctx, "concat", n, in, axis) < 0)
        return NULL;
    memcpy(shape, in[0]->shape, sizeof shape);
    shape[axis] = 0;
    for (int i = 0; i < n; i++) shape[axis] += in[i]->shape[axis];
    for (int d = 0; d < axis; d++) outer *= shape[d];
    for (int d = (int)axis + 1; d < in[0]->ndim; d++) inner *= shape[d];
    int64_t *blk = n <= 64 ? block : (int64_t *)bk_malloc(ctx, (size_t)n * sizeof *blk);
    if (!blk) return NULL;
    for (int i = 0; i < n; i++) blk[i] = in[i]->shape[axis] * inner;
    bk_tensor *out = join(ctx, n, in, in[0]->ndim, shape, outer, blk);
    if (blk != block) bk_free(ctx, blk);
    return out;
}

bk_tensor *cu_fw_STACK(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a) {
    int n = a->n;
    int64_t axis, shape[BK_MAXDIM], outer = 1, inner = 1, block[64];
    if (n < 1) {
        bk_seterr(ctx, "stack: needs at least one tensor");
        return NULL;
    }
    int nd = in[0]->ndim + 1;
    if (nd > BK_MAXDIM) {
        bk_seterr(ctx, "stack: result would have more than %d dimensions", BK_MAXDIM);
        return NULL;
    }
    if (norm_axis(ctx, "stack", a->axis, nd, &axis) < 0 || same_shapes(ctx, "stack", n, in, -1) < 0) return NULL;
    for (int d = 0, j = 0; d < nd; d++) shape[d] = d == axis ? n : in[0]->shape[j++];
    for (int d = 0; d < axis; d++) outer *= shape[d];
    for (int d = (int)axis + 1; d < nd; d++) inner *= shape[d];
    int64_t *blk = n <= 64 ? block : (int64_t *)bk_malloc(ctx, (size_t)n * sizeof *blk);
    if (!blk) return NULL;
    for (int i = 0; i < n; i++) blk[i] = inner;
    bk_tensor *out = join(ctx, n, in, nd, shape, outer, blk);
    if (blk != block) bk_free(ctx, blk);
    return out;
}
