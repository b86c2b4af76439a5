/* device_cuda.cu - the CUDA device: per-context state (one stream, cuBLAS
 * and cuSOLVER handles), a caching allocator, host <-> device copies, the
 * op table of the CUDA kernels and the probe that says whether a device
 * can be used.  Ops without a CUDA kernel fall back to the CPU (tensor.c). */
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

#define SMALL_ROUND 512                  /* small blocks round to 512 B */
#define LARGE_ROUND ((size_t)2 << 20)    /* large ones to 2 MiB */
#define SMALL_LIMIT ((size_t)1 << 20)
#define CACHE_MAX 4096                   /* blocks kept for reuse */

int cu_check(bk_ctx *ctx, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    bk_seterr(ctx, "CUDA %s: %s", what, cudaGetErrorString(e));
    return -1;
}

int cu_check_blas(bk_ctx *ctx, cublasStatus_t e, const char *what) {
    if (e == CUBLAS_STATUS_SUCCESS) return 0;
    bk_seterr(ctx, "cuBLAS %s failed (status %d)", what, (int)e);
    return -1;
}

int cu_check_solver(bk_ctx *ctx, cusolverStatus_t e, const char *what) {
    if (e == CUSOLVER_STATUS_SUCCESS) return 0;
    bk_seterr(ctx, "cuSOLVER %s failed (status %d)", what, (int)e);
    return -1;
}

int cu_launched(bk_ctx *ctx, const char *what) { return cu_check(ctx, cudaGetLastError(), what); }

extern "C" int bk_cuda_probe(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        if (why && n)
            snprintf(why, n, "no CUDA device found: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
        cudaGetLastError(); /* clear the sticky-free error */
        return -1;
    }
    return 0;
}

/* ------------------------------------------------- live-block table --- */

#define TOMB ((void *)1)

static size_t slot_of(const void *p, size_t cap) {
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 7) & (cap - 1);
}

static int live_grow(bk_ctx *ctx, cu_state *s) {
    size_t cap = s->caplive ? s->caplive * 2 : 1024;
    cu_block *t = (cu_block *)bk_malloc(ctx, cap * sizeof *t);
    if (!t) return -1;
    memset(t, 0, cap * sizeof *t);
    for (size_t i = 0; i < s->caplive; i++) {
        void *p = s->live[i].p;
        if (!p || p == TOMB) continue;
        size_t j = slot_of(p, cap);
        while (t[j].p) j = (j + 1) & (cap - 1);
        t[j] = s->live[i];
    }
    bk_free(ctx, s->live);
    s->live = t;
    s->caplive = cap;
    s->ntomb = 0;
    return 0;
}

static int live_put(bk_ctx *ctx, cu_state *s, void *p, size_t size) {
    if ((s->nlive + s->ntomb + 1) * 2 > s->caplive && live_grow(ctx, s)) return -1;
    size_t j = slot_of(p, s->caplive);
    while (s->live[j].p && s->live[j].p != TOMB) j = (j + 1) & (s->caplive - 1);
    if (s->live[j].p == TOMB) s->ntomb--;
    s->live[j].p = p;
    s->live[j].size = size;
    s->nlive++;
    return 0;
}

/* The size of live block p, removing it; 0 when p is not one. */
static size_t live_take(cu_state *s, void *p) {
    if (!s->caplive) return 0;
    size_t j = slot_of(p, s->caplive);
    while (s->live[j].p) {
        if (s->live[j].p == p) {
            size_t n = s->live[j].size;
            s->live[j].p = TOMB;
            s->nlive--;
            s->ntomb++;
            return n;
        }
        j = (j + 1) & (s->caplive - 1);
    }
    return 0;
}

/* ------------------------------------------------------------ state --- */

static void release_cache(cu_state *s) {
    for (int i = 0; i < s->ncache; i++) cudaFree(s->cache[i].p);
    s->stats.bytes_cached = 0;
    s->ncache = 0;
}

static void state_free(bk_ctx *ctx, void *vs) {
    cu_state *s = (cu_state *)vs;
    if (!s) return;
    cudaSetDevice(s->device);
    if (s->stream) cudaStreamSynchronize(s->stream);
    release_cache(s);
    for (size_t i = 0; i < s->caplive; i++)
        if (s->live[i].p && s->live[i].p != TOMB) cudaFree(s->live[i].p);
    if (s->flag) cudaFree(s->flag);
    if (s->solver) cusolverDnDestroy(s->solver);
    if (s->blas) cublasDestroy(s->blas);
    if (s->stream) cudaStreamDestroy(s->stream);
    bk_free(ctx, s->cache);
    bk_free(ctx, s->live);
    bk_free(ctx, s);
}

cu_state *cu_get(bk_ctx *ctx) {
    cu_state *s = (cu_state *)bk__devstate(ctx, &bk_cuda_device);
    if (s) return s;
    char why[256];
    if (bk_cuda_probe(why, sizeof why)) {
        bk_seterr(ctx, "%s", why);
        return NULL;
    }
    s = (cu_state *)bk_malloc(ctx, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    int ok = cu_check(ctx, cudaGetDevice(&s->device), "cudaGetDevice") == 0 &&
             cu_check(ctx, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "stream") == 0 &&
             cu_check_blas(ctx, cublasCreate(&s->blas), "cublasCreate") == 0 &&
             cu_check_blas(ctx, cublasSetStream(s->blas, s->stream), "cublasSetStream") == 0 &&
             /* no TF32 (the default math mode; PyTorch's default too) */
             cu_check_blas(ctx, cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode") == 0 &&
             cu_check(ctx, cudaMalloc((void **)&s->flag, 2 * sizeof *s->flag), "cudaMalloc") == 0;
    if (!ok || bk__set_devstate(ctx, &bk_cuda_device, s)) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", bk_errmsg(ctx));
        state_free(ctx, s);
        bk_seterr(ctx, "%s", keep);
        return NULL;
    }
    return s;
}

/* The cuSOLVER handle, made on first use (making one costs more than
 * most ops, and few models need it). */
cusolverDnHandle_t cu_solver(bk_ctx *ctx, cu_state *s) {
    if (s->solver) return s->solver;
    cusolverDnHandle_t h;
    if (cu_check_solver(ctx, cusolverDnCreate(&h), "cusolverDnCreate")) return NULL;
    if (cu_check_solver(ctx, cusolverDnSetStream(h, s->stream), "cusolverDnSetStream")) {
        cusolverDnDestroy(h);
        return NULL;
    }
    return s->solver = h;
}

/* -------------------------------------------------------- allocator --- */

static size_t rounded(size_t n) {
    if (n == 0) n = 1;
    if (n <= SMALL_LIMIT) return (n + SMALL_ROUND - 1) / SMALL_ROUND * SMALL_ROUND;
    return (n + LARGE_ROUND - 1) / LARGE_ROUND * LARGE_ROUND;
}

void *cu_alloc(bk_ctx *ctx, size_t n) {
    cu_state *s = cu_get(ctx);
    if (!s) return NULL;
    size_t r = rounded(n);
    void *p = NULL;
    for (int i = 0; i < s->ncache; i++)
        if (s->cache[i].size == r) {
            p = s->cache[i].p;
            s->cache[i] = s->cache[--s->ncache];
            s->stats.bytes_cached -= r;
            s->stats.cache_hits++;
            break;
        }
    if (!p) {
        cudaError_t e = cudaMalloc(&p, r);
        if (e == cudaErrorMemoryAllocation) { /* give the cache back and retry */
            cudaGetLastError();
            release_cache(s);
            e = cudaMalloc(&p, r);
        }
        if (e != cudaSuccess) {
            cudaGetLastError();
            bk_seterr(ctx, "CUDA out of memory (%zu bytes): %s", n, cudaGetErrorString(e));
            return NULL;
        }
        s->stats.device_mallocs++;
    }
    if (live_put(ctx, s, p, r)) {
        cudaFree(p);
        return NULL;
    }
    s->stats.bytes_in_use += r;
    if (s->stats.bytes_in_use > s->stats.peak_in_use) s->stats.peak_in_use = s->stats.bytes_in_use;
    return p;
}

void cu_free(bk_ctx *ctx, void *p) {
    cu_state *s = (cu_state *)bk__devstate(ctx, &bk_cuda_device);
    if (!s || !p) return;
    size_t r = live_take(s, p);
    if (!r) return; /* not ours: never free what we did not hand out */
    s->stats.bytes_in_use -= r;
    if (s->ncache == s->capcache && s->capcache < CACHE_MAX) {
        int cap = s->capcache ? s->capcache * 2 : 64;
        cu_block *c = (cu_block *)bk_realloc(ctx, s->cache, (size_t)cap * sizeof *c);
        if (c) {
            s->cache = c;
            s->capcache = cap;
        } else {
            bk_clearerr(ctx);
        }
    }
    if (s->ncache < s->capcache) {
        s->cache[s->ncache].p = p;
        s->cache[s->ncache++].size = r;
        s->stats.bytes_cached += r;
        s->stats.cache_returns++;
    } else {
        cudaFree(p);
    }
}

extern "C" int bk_cuda_get_stats(bk_ctx *ctx, bk_cuda_stats *out) {
    cu_state *s = cu_get(ctx);
    if (!s) return -1;
    *out = s->stats;
    return 0;
}

int cu_flag_reset(bk_ctx *ctx, cu_state *s) {
    return cu_check(ctx, cudaMemsetAsync(s->flag, 0xff, sizeof *s->flag, s->stream), "cudaMemsetAsync");
}

int cu_flag_read(bk_ctx *ctx, cu_state *s, unsigned long long *pos) {
    if (cu_check(ctx, cudaMemcpyAsync(pos, s->flag, sizeof *pos, cudaMemcpyDeviceToHost, s->stream), "flag copy") ||
        cu_check(ctx, cudaStreamSynchronize(s->stream), "kernel"))
        return -1;
    return 0;
}

/* ------------------------------------------------------------ vtable --- */

static void *dev_alloc(bk_ctx *ctx, size_t n) { return cu_alloc(ctx, n); }
static void dev_free(bk_ctx *ctx, void *p) { cu_free(ctx, p); }

static int dev_copy(bk_ctx *ctx, void *dst, const void *src, size_t n, int dir) {
    cu_state *s = cu_get(ctx);
    if (!s) return -1;
    if (!n) return 0;
    if (dir == 0) /* from pageable host memory: returns once src is staged */
        return cu_check(ctx, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s->stream), "copy to device");
    if (cu_check(ctx, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s->stream), "copy to host")) return -1;
    return cu_check(ctx, cudaStreamSynchronize(s->stream), "copy to host");
}

/* Shape ops that only make views run the CPU kernel (it touches no data). */
static bk_tensor *view_TRANSPOSE(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return bk_fw_TRANSPOSE(c, in, a); }
static bk_tensor *view_EXPAND(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return bk_fw_EXPAND(c, in, a); }

static bk_forward_fn kernel_table(int op) {
    switch (op) {
#define CU_CASE(E) \
    case BK_OP_##E: return cu_fw_##E;
        CU_EW_OPS(CU_CASE)
        CU_SHAPE_OPS(CU_CASE)
        CU_REDUCE_OPS(CU_CASE)
        CU_INDEX_OPS(CU_CASE)
        CU_CASE(MATMUL)
        CU_CASE(CHOLESKY)
        CU_CASE(SOLVE_TRIANGULAR)
#undef CU_CASE
    case BK_OP_TRANSPOSE: return view_TRANSPOSE;
    case BK_OP_EXPAND: return view_EXPAND;
    default: return NULL;
    }
}

static bool dev_supports(int op) { return op >= 0 && op < BK_OP_COUNT && kernel_table(op) != NULL; }
static bk_forward_fn dev_kernel(int op) { return kernel_table(op); }

/* Backward rules: the CPU rules that are written with ops run as they are
 * (their ops dispatch here); the others have CUDA rules or fall back. */
static bk_backward_fn dev_backward(int op) {
    switch (op) {
#define CU_CASE(E) \
    case BK_OP_##E: return cu_bw_##E;
        CU_REDUCE_OPS(CU_CASE)
        CU_INDEX_OPS(CU_CASE)
        CU_CASE(ELU)
        CU_CASE(LEAKY_RELU)
        CU_CASE(SOLVE_TRIANGULAR)
#undef CU_CASE
#define CU_COMPOSED(E) \
    case BK_OP_##E:
        CU_COMPOSED(ADD) CU_COMPOSED(SUB) CU_COMPOSED(MUL) CU_COMPOSED(DIV) CU_COMPOSED(POW)
        CU_COMPOSED(MAXIMUM) CU_COMPOSED(MINIMUM) CU_COMPOSED(LT) CU_COMPOSED(LE) CU_COMPOSED(GT)
        CU_COMPOSED(GE) CU_COMPOSED(EQ) CU_COMPOSED(NE) CU_COMPOSED(WHERE) CU_COMPOSED(NEG)
        CU_COMPOSED(ABS) CU_COMPOSED(EXP) CU_COMPOSED(LOG) CU_COMPOSED(LOG1P) CU_COMPOSED(EXPM1)
        CU_COMPOSED(SQRT) CU_COMPOSED(SQUARE) CU_COMPOSED(SIGMOID) CU_COMPOSED(LOGIT)
        CU_COMPOSED(SOFTPLUS) CU_COMPOSED(LOG_SIGMOID) CU_COMPOSED(TANH) CU_COMPOSED(RELU)
        CU_COMPOSED(SIN) CU_COMPOSED(COS) CU_COMPOSED(LGAMMA) CU_COMPOSED(DIGAMMA)
        CU_COMPOSED(TRIGAMMA) CU_COMPOSED(ERF) CU_COMPOSED(ERFC) CU_COMPOSED(FLOOR) CU_COMPOSED(NOT)
        CU_COMPOSED(MATMUL) CU_COMPOSED(RESHAPE) CU_COMPOSED(TRANSPOSE) CU_COMPOSED(EXPAND)
        CU_COMPOSED(CONCAT) CU_COMPOSED(STACK) CU_COMPOSED(CONTIGUOUS) CU_COMPOSED(CAST)
        return bk_optable[op].backward;
#undef CU_COMPOSED
    default: return NULL;
    }
}

extern "C" const bk_device bk_cuda_device = {
    "cuda", dev_alloc, dev_free, dev_copy, dev_supports, dev_kernel, dev_backward, state_free,
};

/* ---------------------------------------------------- small helpers --- */

bk_tensor *cu_dense(bk_ctx *ctx, bk_tensor *t, int dt) {
    if (t->dtype == dt && bk_is_contiguous(t)) return bk_retain(t);
    return cu_elementwise(ctx, CU_OP_COPY, 1, &t, 0, dt);
}

bk_tensor *cu_zeros(bk_ctx *ctx, int ndim, const int64_t *shape) {
    cu_state *s = cu_get(ctx);
    bk_tensor *z = s ? cu_empty(ctx, BK_F64, ndim, shape) : NULL;
    if (z && z->numel &&
        cu_check(ctx, cudaMemsetAsync(z->st->data, 0, (size_t)z->numel * sizeof(double), s->stream), "memset")) {
        bk_release(z);
        return NULL;
    }
    return z;
}
