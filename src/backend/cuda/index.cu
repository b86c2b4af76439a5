/* index.cu - index_select and gather, with their backward rules
 * (scatter-add with atomics, in float64).  Index tensors hold integers
 * (negative ones count from the end); a bad index is found on the device
 * and reported with ops_index.c's message for the first one. */
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

/* Flags the first position of idx that is not an integer in [-size, size). */
__global__ void check_index_kernel(cu_view idx, int64_t n, double size, unsigned long long *flag) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double v = cu_load(idx, i);
        if (v != floor(v) || v < -size || v >= size) atomicMin(flag, (unsigned long long)i);
    }
}

__device__ __forceinline__ int64_t norm_index(double v, int64_t size) {
    int64_t k = (int64_t)v;
    return k < 0 ? k + size : k;
}

/* 0 when every index of idx is valid for an axis of `size`, else -1 with
 * the CPU's message for the first bad one. */
static int check_indices(bk_ctx *ctx, cu_state *s, bk_tensor *idx, int axis, int64_t size) {
    if (idx->numel == 0) return 0;
    unsigned long long pos;
    if (cu_flag_reset(ctx, s)) return -1;
    check_index_kernel<<<cu_grid(idx->numel), CU_THREADS, 0, s->stream>>>(cu_view_of(idx), idx->numel,
                                                                           (double)size, s->flag);
    if (cu_launched(ctx, "index check") || cu_flag_read(ctx, s, &pos)) return -1;
    if (pos == ~0ULL) return 0;
    double v = bk_get(idx, (int64_t)pos);
    if (v != floor(v)) bk_seterr(ctx, "index: index tensor must hold integers, got %.17g", v);
    else bk_seterr(ctx, "index %.17g is out of bounds for axis %d with size %lld", v, axis, (long long)size);
    return -1;
}

/* Geometry shared by the kernels: the output (or gradient) shape, and
 * where its element lies in x: x's strides (or the contiguous strides of
 * the gradient of x) with the axis coordinate replaced by an index. */
typedef struct sel_geom {
    int ndim, axis, gather; /* gather: the index has the output's shape */
    int64_t oshape[BK_MAXDIM];
    int64_t xst[BK_MAXDIM];
    int64_t xoff, size;
} sel_geom;

__device__ __forceinline__ int64_t sel_offset(const sel_geom &G, const cu_view &idx, int64_t e) {
    int64_t off = G.xoff, rem = e, c[BK_MAXDIM];
    for (int d = G.ndim - 1; d >= 0; d--) {
        c[d] = rem % G.oshape[d];
        rem /= G.oshape[d];
    }
    for (int d = 0; d < G.ndim; d++) {
        int64_t k = c[d];
        if (d == G.axis) k = norm_index(cu_load(idx, G.gather ? e : c[d]), G.size);
        off += k * G.xst[d];
    }
    return off;
}

__global__ void select_kernel(sel_geom G, cu_view x, cu_view idx, void *out, int out32, int64_t N) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x)
        cu_store(out, out32, e, cu_load_at(x, sel_offset(G, idx, e)));
}

__global__ void scatter_kernel(sel_geom G, cu_view g, cu_view idx, double *gin, int64_t N) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x)
        atomicAdd(gin + sel_offset(G, idx, e), cu_load(g, e));
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

/* The geometry of index_select / gather of x by idx; -1 with an error. */
static int geometry(bk_ctx *ctx, bool gather, const bk_tensor *x, const bk_tensor *idx, int64_t axis_arg,
                    sel_geom *G) {
    char b1[128], b2[128];
    int64_t axis;
    const char *name = gather ? "gather" : "index_select";
    if (norm_axis(ctx, name, axis_arg, x->ndim, &axis) < 0) return -1;
    memset(G, 0, sizeof *G);
    G->ndim = x->ndim;
    G->axis = (int)axis;
    G->gather = gather;
    G->size = x->shape[axis];
    G->xoff = x->offset;
    for (int d = 0; d < x->ndim; d++) G->xst[d] = x->strides[d];
    if (gather) {
        if (idx->ndim != x->ndim) {
            bk_seterr(ctx, "gather: index has %d dimensions, input has %d", idx->ndim, x->ndim);
            return -1;
        }
        for (int d = 0; d < x->ndim; d++) {
            if (d != axis && idx->shape[d] > x->shape[d]) {
                bk_seterr(ctx, "gather: index shape %s does not fit input shape %s outside axis %lld",
                          bk_shape_str(idx, b1, sizeof b1), bk_shape_str(x, b2, sizeof b2), (long long)axis);
                return -1;
            }
            G->oshape[d] = idx->shape[d];
        }
    } else {
        if (idx->ndim > 1) {
            bk_seterr(ctx, "index_select: index must be 1-D, got shape %s", bk_shape_str(idx, b1, sizeof b1));
            return -1;
        }
        for (int d = 0; d < x->ndim; d++) G->oshape[d] = d == axis ? idx->numel : x->shape[d];
    }
    return 0;
}

static bk_tensor *select_fw(bk_ctx *ctx, bool gather, bk_tensor **in, const bk_opargs *a) {
    bk_tensor *x = in[0], *idx = in[1];
    cu_state *s = cu_get(ctx);
    sel_geom G;
    if (!s || geometry(ctx, gather, x, idx, a->axis, &G) || check_indices(ctx, s, idx, G.axis, G.size)) return NULL;
    bk_tensor *out = cu_empty(ctx, x->dtype, G.ndim, G.oshape);
    if (!out || out->numel == 0) return out;
    select_kernel<<<cu_grid(out->numel), CU_THREADS, 0, s->stream>>>(G, cu_view_of(x), cu_view_of(idx), out->st->data,
                                                                     x->dtype == BK_F32, out->numel);
    if (cu_launched(ctx, gather ? "gather" : "index_select")) {
        bk_release(out);
        return NULL;
    }
    return out;
}

static int select_bw(bk_ctx *ctx, bool gather, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    const bk_tensor *x = e->in[0];
    if (!x->requires_grad) return 0;
    cu_state *s = cu_get(ctx);
    sel_geom G;
    if (!s || geometry(ctx, gather, x, e->in[1], e->args.axis, &G)) return -1;
    /* into the contiguous gradient of x */
    G.xoff = 0;
    int64_t st = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        G.xst[d] = st;
        st *= x->shape[d];
    }
    bk_tensor *r = cu_zeros(ctx, x->ndim, x->shape);
    if (!r) return -1;
    int64_t N = 1;
    for (int d = 0; d < G.ndim; d++) N *= G.oshape[d];
    if (N > 0 && r->numel > 0) {
        scatter_kernel<<<cu_grid(N), CU_THREADS, 0, s->stream>>>(G, cu_view_of(g), cu_view_of(e->in[1]),
                                                                 (double *)r->st->data, N);
        if (cu_launched(ctx, "scatter-add")) {
            bk_release(r);
            return -1;
        }
    }
    gin[0] = r;
    return 0;
}

bk_tensor *cu_fw_INDEX_SELECT(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return select_fw(c, false, in, a); }
bk_tensor *cu_fw_GATHER(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return select_fw(c, true, in, a); }
int cu_bw_INDEX_SELECT(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    return select_bw(c, false, e, g, gin);
}
int cu_bw_GATHER(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    return select_bw(c, true, e, g, gin);
}
