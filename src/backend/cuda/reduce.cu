/* reduce.cu - reductions (sum, mean, max, min, logsumexp, prod) along one
 * axis or all, the scans (cumsum, softmax, log_softmax) and their backward
 * rules, on the [outer, n, inner] layout of ops_reduce.c.
 *
 * A reduction runs one block per output element (threads stride over n and
 * combine in shared memory); scans and the prod / max / min backward keep
 * ops_reduce.c's sequential order, one thread per (outer, inner) pair. */
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

typedef struct layout {
    int64_t outer, n, inner;
    int ondim;
    int64_t oshape[BK_MAXDIM];
} layout;

/* ops_reduce.c's get_layout, with its messages. */
static int get_layout(bk_ctx *ctx, const char *name, const bk_tensor *x, int64_t axis, int keepdim, bool scan,
                      layout *L) {
    memset(L, 0, sizeof *L);
    if (axis == BK_ALL_AXES && !scan) {
        L->outer = 1;
        L->n = x->numel;
        L->inner = 1;
        L->ondim = keepdim ? x->ndim : 0;
        for (int i = 0; i < x->ndim; i++) L->oshape[i] = 1;
        return 0;
    }
    int64_t a = axis < 0 ? axis + x->ndim : axis;
    if (x->ndim == 0 && (a == 0 || a == -1)) {
        L->outer = L->n = L->inner = 1;
        return 0;
    }
    if (a < 0 || a >= x->ndim) {
        bk_seterr(ctx, "%s: axis %lld is out of range for a tensor of %d dimension%s", name, (long long)axis,
                  x->ndim, x->ndim == 1 ? "" : "s");
        return -1;
    }
    L->outer = 1;
    L->inner = 1;
    for (int i = 0; i < a; i++) L->outer *= x->shape[i];
    for (int i = (int)a + 1; i < x->ndim; i++) L->inner *= x->shape[i];
    L->n = x->shape[a];
    if (scan) {
        L->ondim = x->ndim;
        memcpy(L->oshape, x->shape, sizeof L->oshape);
    } else {
        L->ondim = 0;
        for (int i = 0; i < x->ndim; i++) {
            if (i != a) L->oshape[L->ondim++] = x->shape[i];
            else if (keepdim) L->oshape[L->ondim++] = 1;
        }
    }
    return 0;
}

#define AT(i, k, j) (((i) * n + (k)) * inner + (j))

__device__ __forceinline__ double nanmax(double a, double b, int isMax) {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return isMax ? (b > a ? b : a) : (b < a ? b : a);
}

template <int OP>
__device__ __forceinline__ double red_combine(double a, double b) {
    switch (OP) {
    case BK_OP_PROD: return a * b;
    case BK_OP_MAX: return nanmax(a, b, 1);
    case BK_OP_MIN: return nanmax(a, b, 0);
    case BK_OP_LOGSUMEXP: return fmax(a, b); /* the shift: NaN-ignoring, as fmax on the CPU */
    default: return a + b;
    }
}

template <int OP>
__device__ __forceinline__ double red_identity() {
    switch (OP) {
    case BK_OP_PROD: return 1.0;
    case BK_OP_MAX:
    case BK_OP_LOGSUMEXP: return -INFINITY;
    case BK_OP_MIN: return INFINITY;
    default: return 0.0;
    }
}

/* The block's combination of v under OP (all threads get it). */
template <int OP>
__device__ double block_reduce(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] = red_combine<OP>(sh[threadIdx.x], sh[threadIdx.x + w]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* mean_n: the count a mean divides by (the axis length; for the second
 * stage of a two-stage reduction, that of the original axis). */
template <int OP>
__global__ void reduce_kernel(cu_view x, void *out, int out32, int64_t n, int64_t inner, int64_t nout, int64_t mean_n) {
    __shared__ double sh[CU_THREADS];
    for (int64_t o = blockIdx.x; o < nout; o += gridDim.x) {
        int64_t i = o / inner, j = o % inner;
        double acc = red_identity<OP>();
        for (int64_t k = threadIdx.x; k < n; k += blockDim.x) acc = red_combine<OP>(acc, cu_load(x, AT(i, k, j)));
        acc = block_reduce<OP>(acc, sh);
        if (OP == BK_OP_LOGSUMEXP) {
            double m = acc, sum = 0;
            if (!isinf(m))
                for (int64_t k = threadIdx.x; k < n; k += blockDim.x) sum += exp(cu_load(x, AT(i, k, j)) - m);
            sum = block_reduce<BK_OP_SUM>(sum, sh);
            acc = isinf(m) ? m : m + log(sum);
        }
        if (OP == BK_OP_MEAN) acc = mean_n ? acc / (double)mean_n : NAN;
        if (threadIdx.x == 0) cu_store(out, out32, o, acc);
    }
}

/* First stage of a long reduction: P blocks per output, block p combining
 * the elements k = p * blockDim + t (mod P * blockDim) into part[o * P + p]
 * (a mean's sum). */
template <int OP>
__global__ void reduce_part_kernel(cu_view x, double *part, int64_t n, int64_t inner, int64_t nout, int64_t P) {
    __shared__ double sh[CU_THREADS];
    for (int64_t b = blockIdx.x; b < nout * P; b += gridDim.x) {
        int64_t o = b / P, p = b % P, i = o / inner, j = o % inner;
        double acc = red_identity<OP>();
        for (int64_t k = p * blockDim.x + threadIdx.x; k < n; k += P * blockDim.x)
            acc = red_combine<OP>(acc, cu_load(x, AT(i, k, j)));
        acc = block_reduce<OP>(acc, sh);
        if (threadIdx.x == 0) part[b] = acc;
    }
}

/* Blocks per output for a reduction of nout outputs over n elements: 1,
 * unless the outputs are too few to fill the GPU and the axis is long. */
static int64_t parts(int op, int64_t nout, int64_t n) {
    if (op == BK_OP_LOGSUMEXP || nout >= 512 || n < 8192) return 1;
    int64_t p = (n + 4095) / 4096, cap = 1024 / nout;
    return p < cap ? p : cap;
}

static bk_tensor *reduce(bk_ctx *ctx, int op, bk_tensor *x, const bk_opargs *args) {
    cu_state *s = cu_get(ctx);
    layout L;
    if (!s || get_layout(ctx, bk_optable[op].name, x, args->axis, args->keepdim, false, &L)) return NULL;
    if ((op == BK_OP_MAX || op == BK_OP_MIN) && L.n == 0) {
        bk_seterr(ctx, "%s of an empty tensor", bk_optable[op].name);
        return NULL;
    }
    bk_tensor *out = cu_empty(ctx, x->dtype, L.ondim, L.oshape);
    int64_t nout = L.outer * L.inner;
    if (!out || nout == 0) return out;
    cu_view v = cu_view_of(x);
    void *o = out->st->data;
    int o32 = x->dtype == BK_F32;
    int64_t P = parts(op, nout, L.n), n = L.n, inner = L.inner;
    double *part = NULL;
    if (P > 1) { /* stage one into part [nout, P]; stage two reduces its rows */
        if (!(part = (double *)cu_alloc(ctx, (size_t)(nout * P) * sizeof(double)))) {
            bk_release(out);
            return NULL;
        }
        unsigned g1 = (unsigned)(nout * P);
        switch (op) {
#define PART_CASE(E) \
    case BK_OP_##E: reduce_part_kernel<BK_OP_##E><<<g1, CU_THREADS, 0, s->stream>>>(v, part, n, inner, nout, P); break;
            PART_CASE(SUM) PART_CASE(MEAN) PART_CASE(MAX) PART_CASE(MIN) PART_CASE(PROD)
#undef PART_CASE
        }
        memset(&v, 0, sizeof v);
        v.p = part;
        v.ndim = 1;
        v.plain = 1;
        v.shape[0] = nout * P;
        v.st[0] = 1;
        n = P;
        inner = 1;
    }
    unsigned g = (unsigned)(nout < 65535 * 16 ? nout : 65535 * 16);
    switch (op) {
#define RED_CASE(E)                                                                                            \
    case BK_OP_##E:                                                                                            \
        reduce_kernel<BK_OP_##E><<<g, CU_THREADS, 0, s->stream>>>(v, o, o32, n, inner, nout, L.n);             \
        break;
        RED_CASE(SUM) RED_CASE(MEAN) RED_CASE(MAX) RED_CASE(MIN) RED_CASE(LOGSUMEXP) RED_CASE(PROD)
#undef RED_CASE
    }
    int rc = cu_launched(ctx, bk_optable[op].name);
    cu_free(ctx, part); /* stream order: the second stage has read it before reuse */
    if (rc) {
        bk_release(out);
        return NULL;
    }
    return out;
}

/* gin[i,k,j] = g[i,j] * w[i,k,j] (ops_reduce.c's bw_reduce). */
template <int OP>
__global__ void reduce_bw_kernel(cu_view x, cu_view g, cu_view out, const int64_t *pick, double *gin, int64_t outer,
                                 int64_t n, int64_t inner) {
    int64_t N = outer * n * inner;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < N; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = e % inner, k = (e / inner) % n, i = e / (inner * n), o = i * inner + j;
        double gv = cu_load(g, o), w;
        switch (OP) {
        case BK_OP_SUM: w = 1; break;
        case BK_OP_MEAN: w = 1.0 / (double)n; break;
        case BK_OP_MAX:
        case BK_OP_MIN: w = k == pick[o]; break;
        default: { /* LOGSUMEXP */
            double ov = cu_load(out, o);
            w = isinf(ov) && ov < 0 ? 0 : exp(cu_load(x, e) - ov);
        }
        }
        gin[e] = gv * w;
    }
}

/* The first k where x equals the max / min (or both are NaN). */
__global__ void pick_kernel(cu_view x, cu_view out, int64_t *pick, int64_t n, int64_t inner, int64_t nout) {
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = o / inner, j = o % inner, p = -1;
        double ov = cu_load(out, o);
        for (int64_t k = 0; k < n && p < 0; k++) {
            double v = cu_load(x, AT(i, k, j));
            if (v == ov || (isnan(ov) && isnan(v))) p = k;
        }
        pick[o] = p;
    }
}

/* The product of the others as prefix times suffix products (exact with
 * zeros), in ops_reduce.c's order. */
__global__ void prod_bw_kernel(cu_view x, cu_view g, double *gin, int64_t n, int64_t inner, int64_t nout) {
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = o / inner, j = o % inner;
        double gv = cu_load(g, o), pre = 1, suf = 1;
        for (int64_t k = 0; k < n; k++) {
            gin[AT(i, k, j)] = pre;
            pre *= cu_load(x, AT(i, k, j));
        }
        for (int64_t k = n; k-- > 0;) {
            gin[AT(i, k, j)] = gv * (gin[AT(i, k, j)] * suf);
            suf *= cu_load(x, AT(i, k, j));
        }
    }
}

static int bw_reduce(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *x = e->in[0];
    if (!x->requires_grad) return 0;
    cu_state *s = cu_get(ctx);
    layout L;
    if (!s || get_layout(ctx, bk_optable[e->op].name, x, e->args.axis, e->args.keepdim, false, &L)) return -1;
    bk_tensor *r = cu_empty(ctx, BK_F64, x->ndim, x->shape);
    if (!r) return -1;
    int64_t nout = L.outer * L.inner, N = r->numel;
    if (N == 0) {
        gin[0] = r;
        return 0;
    }
    cu_view xv = cu_view_of(x), gv = cu_view_of(g), ov = cu_view_of(e->out);
    double *o = (double *)r->st->data;
    int64_t *pick = NULL;
    int rc = 0;
    switch (e->op) {
    case BK_OP_PROD: prod_bw_kernel<<<cu_grid(nout), CU_THREADS, 0, s->stream>>>(xv, gv, o, L.n, L.inner, nout); break;
    case BK_OP_MAX:
    case BK_OP_MIN:
        if (!(pick = (int64_t *)cu_alloc(ctx, (size_t)nout * sizeof *pick))) {
            rc = -1;
            break;
        }
        pick_kernel<<<cu_grid(nout), CU_THREADS, 0, s->stream>>>(xv, ov, pick, L.n, L.inner, nout);
        reduce_bw_kernel<BK_OP_MAX><<<cu_grid(N), CU_THREADS, 0, s->stream>>>(xv, gv, ov, pick, o, L.outer, L.n, L.inner);
        break;
#define BW_CASE(E)                                                                                                 \
    case BK_OP_##E:                                                                                                \
        reduce_bw_kernel<BK_OP_##E><<<cu_grid(N), CU_THREADS, 0, s->stream>>>(xv, gv, ov, pick, o, L.outer, L.n, L.inner); \
        break;
        BW_CASE(SUM) BW_CASE(MEAN) BW_CASE(LOGSUMEXP)
#undef BW_CASE
    }
    if (rc == 0) rc = cu_launched(ctx, bk_optable[e->op].name);
    cu_free(ctx, pick);
    if (rc) {
        bk_release(r);
        return -1;
    }
    gin[0] = r;
    return 0;
}

/* ---------------------------------------------------------------- scans --- */

template <int OP>
__global__ void scan_kernel(cu_view x, void *out, int out32, int64_t n, int64_t inner, int64_t nout) {
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = o / inner, j = o % inner;
        if (OP == BK_OP_CUMSUM) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) cu_store(out, out32, AT(i, k, j), s += cu_load(x, AT(i, k, j)));
            continue;
        }
        double m = -INFINITY, s = 0;
        for (int64_t k = 0; k < n; k++) m = fmax(m, cu_load(x, AT(i, k, j)));
        for (int64_t k = 0; k < n; k++) s += exp(cu_load(x, AT(i, k, j)) - m);
        double lse = m + log(s);
        for (int64_t k = 0; k < n; k++) {
            double v = cu_load(x, AT(i, k, j)) - lse;
            cu_store(out, out32, AT(i, k, j), OP == BK_OP_SOFTMAX ? exp(v) : v);
        }
    }
}

template <int OP>
__global__ void scan_bw_kernel(cu_view g, cu_view out, double *gin, int64_t n, int64_t inner, int64_t nout) {
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = o / inner, j = o % inner;
        if (OP == BK_OP_CUMSUM) {
            double s = 0;
            for (int64_t k = n; k-- > 0;) gin[AT(i, k, j)] = s += cu_load(g, AT(i, k, j));
        } else if (OP == BK_OP_SOFTMAX) {
            double dot = 0;
            for (int64_t k = 0; k < n; k++) dot += cu_load(g, AT(i, k, j)) * cu_load(out, AT(i, k, j));
            for (int64_t k = 0; k < n; k++)
                gin[AT(i, k, j)] = cu_load(out, AT(i, k, j)) * (cu_load(g, AT(i, k, j)) - dot);
        } else {
            double sg = 0;
            for (int64_t k = 0; k < n; k++) sg += cu_load(g, AT(i, k, j));
            for (int64_t k = 0; k < n; k++)
                gin[AT(i, k, j)] = cu_load(g, AT(i, k, j)) - exp(cu_load(out, AT(i, k, j))) * sg;
        }
    }
}

static bk_tensor *scan(bk_ctx *ctx, int op, bk_tensor *x, const bk_opargs *args) {
    cu_state *s = cu_get(ctx);
    layout L;
    if (!s || get_layout(ctx, bk_optable[op].name, x, args->axis, 0, true, &L)) return NULL;
    bk_tensor *out = cu_empty(ctx, x->dtype, x->ndim, x->shape);
    int64_t nout = L.outer * L.inner;
    if (!out || out->numel == 0) return out;
    cu_view v = cu_view_of(x);
    unsigned g = cu_grid(nout);
    void *o = out->st->data;
    int o32 = x->dtype == BK_F32;
    switch (op) {
    case BK_OP_CUMSUM: scan_kernel<BK_OP_CUMSUM><<<g, CU_THREADS, 0, s->stream>>>(v, o, o32, L.n, L.inner, nout); break;
    case BK_OP_SOFTMAX: scan_kernel<BK_OP_SOFTMAX><<<g, CU_THREADS, 0, s->stream>>>(v, o, o32, L.n, L.inner, nout); break;
    default: scan_kernel<BK_OP_LOG_SOFTMAX><<<g, CU_THREADS, 0, s->stream>>>(v, o, o32, L.n, L.inner, nout); break;
    }
    if (cu_launched(ctx, bk_optable[op].name)) {
        bk_release(out);
        return NULL;
    }
    return out;
}

static int bw_scan(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *x = e->in[0];
    if (!x->requires_grad) return 0;
    cu_state *s = cu_get(ctx);
    layout L;
    if (!s || get_layout(ctx, bk_optable[e->op].name, x, e->args.axis, 0, true, &L)) return -1;
    bk_tensor *r = cu_empty(ctx, BK_F64, x->ndim, x->shape);
    int64_t nout = L.outer * L.inner;
    if (!r) return -1;
    if (r->numel) {
        cu_view gv = cu_view_of(g), ov = cu_view_of(e->out);
        double *o = (double *)r->st->data;
        unsigned gr = cu_grid(nout);
        switch (e->op) {
        case BK_OP_CUMSUM: scan_bw_kernel<BK_OP_CUMSUM><<<gr, CU_THREADS, 0, s->stream>>>(gv, ov, o, L.n, L.inner, nout); break;
        case BK_OP_SOFTMAX: scan_bw_kernel<BK_OP_SOFTMAX><<<gr, CU_THREADS, 0, s->stream>>>(gv, ov, o, L.n, L.inner, nout); break;
        default: scan_bw_kernel<BK_OP_LOG_SOFTMAX><<<gr, CU_THREADS, 0, s->stream>>>(gv, ov, o, L.n, L.inner, nout); break;
        }
        if (cu_launched(ctx, bk_optable[e->op].name)) {
            bk_release(r);
            return -1;
        }
    }
    gin[0] = r;
    return 0;
}

#define FW_RED(E) \
    bk_tensor *cu_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return reduce(c, BK_OP_##E, in[0], a); }
#define BW_RED(E) \
    int cu_bw_##E(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_reduce(c, e, g, gin); }
#define FW_SCAN(E) \
    bk_tensor *cu_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return scan(c, BK_OP_##E, in[0], a); }
#define BW_SCAN(E) \
    int cu_bw_##E(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_scan(c, e, g, gin); }
FW_RED(SUM) FW_RED(MEAN) FW_RED(MAX) FW_RED(MIN) FW_RED(LOGSUMEXP) FW_RED(PROD)
BW_RED(SUM) BW_RED(MEAN) BW_RED(MAX) BW_RED(MIN) BW_RED(LOGSUMEXP) BW_RED(PROD)
FW_SCAN(CUMSUM) FW_SCAN(SOFTMAX) FW_SCAN(LOG_SOFTMAX)
BW_SCAN(CUMSUM) BW_SCAN(SOFTMAX) BW_SCAN(LOG_SOFTMAX)
