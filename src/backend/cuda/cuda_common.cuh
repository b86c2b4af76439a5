/* cuda_common.cuh - what the CUDA op files share: the per-context device
 * state (stream, cuBLAS / cuSOLVER handles, the caching allocator), the
 * strided-element helpers the kernels use, and the names of the kernels
 * that device_cuda.cu binds into its op table.
 *
 * Every kernel runs on the context's one stream, so memory returned to the
 * cache can be handed out again at once: later work on the stream is
 * ordered after the work that used it (PyTorch's caching allocator relies
 * on the same fact).  Kernels compute in double and store float32 or
 * float64, as the CPU kernels do (they compute in float64 and round at the
 * op boundary), so the two devices agree to rounding. */
#ifndef PPL_CUDA_COMMON_CUH
#define PPL_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

extern "C" {
#include "ops_impl.h"
#include "rng.h"
#include "tensor.h"
}
#include "device_cuda.h"

#define CU_THREADS 256

typedef struct cu_block {
    void *p;
    size_t size;
} cu_block;

typedef struct cu_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver; /* NULL until cu_solver */
    cu_block *cache;        /* free blocks kept for reuse */
    int ncache, capcache;
    cu_block *live;         /* open-addressing table: pointer -> size */
    size_t caplive, nlive, ntomb;
    unsigned long long *flag; /* device scratch for kernels' error flags */
    bk_cuda_stats stats;
} cu_state;

/* The context's CUDA state, made on first use; NULL with an error set. */
cu_state *cu_get(bk_ctx *ctx);
/* The state's cuSOLVER handle (made on first use); NULL with an error. */
cusolverDnHandle_t cu_solver(bk_ctx *ctx, cu_state *s);
/* Sets a "CUDA ...: <message>" error when e is not cudaSuccess; returns -1
 * then, else 0. */
int cu_check(bk_ctx *ctx, cudaError_t e, const char *what);
int cu_check_blas(bk_ctx *ctx, cublasStatus_t e, const char *what);
int cu_check_solver(bk_ctx *ctx, cusolverStatus_t e, const char *what);
/* The last launch's error, as cu_check. */
int cu_launched(bk_ctx *ctx, const char *what);
/* Scratch device memory from the caching allocator. */
void *cu_alloc(bk_ctx *ctx, size_t n);
void cu_free(bk_ctx *ctx, void *p);
/* The first flagged position a kernel left in the state's flag (reset
 * with cu_flag_reset before the kernel); ~0ULL when none. */
int cu_flag_reset(bk_ctx *ctx, cu_state *s);
int cu_flag_read(bk_ctx *ctx, cu_state *s, unsigned long long *pos);

/* Blocks for n elements in a grid-stride loop. */
static inline unsigned cu_grid(int64_t n) {
    int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
    if (b < 1) b = 1;
    if (b > 65535 * 16) b = 65535 * 16;
    return (unsigned)b;
}

/* A strided tensor as kernels see it: element i (row-major over shape)
 * lies at off + sum_d idx_d * st_d. */
typedef struct cu_view {
    const void *p;
    int f32;
    int ndim;
    int plain;              /* contiguous: element i at off + i */
    int64_t off;
    int64_t shape[BK_MAXDIM];
    int64_t st[BK_MAXDIM];
} cu_view;

static inline size_t cu_dtsize(int dt) { return dt == BK_F32 ? sizeof(float) : sizeof(double); }

/* A view of t (on the device) with its own shape and strides. */
static inline cu_view cu_view_of(const bk_tensor *t) {
    cu_view v;
    v.p = t->st->data;
    v.f32 = t->dtype == BK_F32;
    v.ndim = t->ndim;
    v.plain = bk_is_contiguous(t);
    v.off = t->offset;
    for (int d = 0; d < BK_MAXDIM; d++) {
        v.shape[d] = d < t->ndim ? t->shape[d] : 1;
        v.st[d] = d < t->ndim ? t->strides[d] : 0;
    }
    return v;
}

__device__ __forceinline__ int64_t cu_offset(const cu_view &v, int64_t i) {
    if (v.plain) return v.off + i;
    int64_t o = v.off;
    for (int d = v.ndim - 1; d >= 0; d--) {
        int64_t s = v.shape[d];
        o += (i % s) * v.st[d];
        i /= s;
    }
    return o;
}

__device__ __forceinline__ double cu_load_at(const cu_view &v, int64_t o) {
    return v.f32 ? (double)((const float *)v.p)[o] : ((const double *)v.p)[o];
}

__device__ __forceinline__ double cu_load(const cu_view &v, int64_t i) { return cu_load_at(v, cu_offset(v, i)); }

__device__ __forceinline__ void cu_store(void *p, int f32, int64_t i, double x) {
    if (f32) ((float *)p)[i] = (float)x;
    else ((double *)p)[i] = x;
}

/* Device tensors the op files make. */
static inline bk_tensor *cu_empty(bk_ctx *ctx, int dt, int ndim, const int64_t *shape) {
    return bk_empty_on(ctx, &bk_cuda_device, (bk_dtype)dt, ndim, shape);
}
/* A contiguous copy of t in dtype dt (t itself, retained, when it is one). */
bk_tensor *cu_dense(bk_ctx *ctx, bk_tensor *t, int dt);
/* Zeros of float64 on the device. */
bk_tensor *cu_zeros(bk_ctx *ctx, int ndim, const int64_t *shape);

/* Kernels and backward rules of the op files (bound in device_cuda.cu). */
#define CU_DECLARE_FW(E) bk_tensor *cu_fw_##E(bk_ctx *, bk_tensor **, const bk_opargs *);
#define CU_DECLARE_BW(E) int cu_bw_##E(bk_ctx *, const bk_tape_entry *, bk_tensor *, bk_tensor **);

/* elementwise.cu */
#define CU_EW_OPS(X)                                                                                \
    X(ADD) X(SUB) X(MUL) X(DIV) X(POW) X(MAXIMUM) X(MINIMUM) X(LT) X(LE) X(GT) X(GE) X(EQ) X(NE)   \
    X(WHERE) X(NEG) X(ABS) X(EXP) X(LOG) X(LOG1P) X(EXPM1) X(SQRT) X(SQUARE) X(SIGMOID) X(LOGIT)   \
    X(SOFTPLUS) X(LOG_SIGMOID) X(TANH) X(RELU) X(ELU) X(LEAKY_RELU) X(SIN) X(COS) X(LGAMMA)        \
    X(DIGAMMA) X(TRIGAMMA) X(ERF) X(ERFC) X(FLOOR) X(NOT)
CU_EW_OPS(CU_DECLARE_FW)
CU_DECLARE_BW(ELU)
CU_DECLARE_BW(LEAKY_RELU)
/* shape.cu */
#define CU_SHAPE_OPS(X) X(RESHAPE) X(CONCAT) X(STACK) X(CONTIGUOUS) X(CAST)
CU_SHAPE_OPS(CU_DECLARE_FW)
/* reduce.cu */
#define CU_REDUCE_OPS(X) X(SUM) X(MEAN) X(MAX) X(MIN) X(LOGSUMEXP) X(PROD) X(CUMSUM) X(SOFTMAX) X(LOG_SOFTMAX)
CU_REDUCE_OPS(CU_DECLARE_FW)
CU_REDUCE_OPS(CU_DECLARE_BW)
/* index.cu */
#define CU_INDEX_OPS(X) X(INDEX_SELECT) X(GATHER)
CU_INDEX_OPS(CU_DECLARE_FW)
CU_INDEX_OPS(CU_DECLARE_BW)
/* matmul.cu, linalg.cu */
CU_DECLARE_FW(MATMUL)
CU_DECLARE_FW(CHOLESKY)
CU_DECLARE_FW(SOLVE_TRIANGULAR)
CU_DECLARE_BW(SOLVE_TRIANGULAR)

/* The elementwise driver (elementwise.cu), also used for copies and casts:
 * out = op(in...) broadcast; op may be one of the internal ops below; k is
 * the op's constant; outdt -1 chooses float32 when an input is float32. */
enum { CU_OP_COPY = 1000, CU_OP_ELU_BW, CU_OP_LEAKY_BW };
bk_tensor *cu_elementwise(bk_ctx *ctx, int op, int n, bk_tensor **in, double k, int outdt);

#endif
