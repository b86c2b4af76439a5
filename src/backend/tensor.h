/* tensor.h - tensors, the op table, reverse-mode autodiff and the device
 * abstraction.  Everything numeric in ppl goes through this header.
 *
 * Conventions
 *  - Every function that can fail returns NULL (or -1) and leaves a message
 *    in the context (bk_errmsg).  Nothing here prints, exits or aborts.
 *  - Tensors are reference counted.  Functions that return a tensor return a
 *    NEW reference (caller releases).  Arguments are borrowed.
 *  - Strides are in elements, not bytes.  A 0-d tensor (scalar) has ndim 0
 *    and numel 1.
 *  - float64 is the default dtype; float32 is opted into.  An op's result
 *    dtype follows PyTorch's promotion for floating types (bk_promote):
 *    float64 when any input with at least one dimension is float64, so a
 *    0-d float64 constant does not widen a float32 tensor.  The ops listed
 *    by bk_native_f32 have float32 kernels (elementwise math in float,
 *    reductions accumulating in double, GEMM through sgemm, views, the
 *    fused kernels that give a float32 form); the others compute in double
 *    and convert at the op boundary (bk_apply).  Gradients have the dtype of
 *    the tensor they belong to (bk_backward casts them).
 */
#ifndef PPL_BACKEND_TENSOR_H
#define PPL_BACKEND_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_MAXDIM 8
#define BK_MAXIN 4          /* max tensor inputs of one op */
#define BK_ALL_AXES (-1000) /* axis argument meaning "reduce everything" */

typedef enum { BK_F64 = 0, BK_F32 = 1 } bk_dtype;

typedef struct bk_ctx bk_ctx;
typedef struct bk_device bk_device;
typedef struct bk_tensor bk_tensor;

/* Allocator hook: every byte the backend allocates goes through it, so
 * out-of-memory can be injected in tests.  NULL fields mean libc. */
typedef struct bk_alloc {
    void *(*malloc_fn)(void *ud, size_t n);
    void *(*realloc_fn)(void *ud, void *p, size_t n);
    void (*free_fn)(void *ud, void *p);
    void *ud;
} bk_alloc;

typedef struct bk_storage {
    int refcount;
    size_t nbytes;
    size_t cap;            /* bytes allocated for data (>= nbytes) */
    void *data;
    const bk_device *dev;
    bk_tensor *owner;      /* the tensor this storage is embedded in, or NULL */
} bk_storage;

#define BK_INLINE_BYTES 64 /* data up to this size lives inside the tensor */

/* The fields every op touches come first (one cache line); the shape and
 * strides after the embedded storage are read only for ndim > 0. */
struct bk_tensor {
    int refcount;
    int8_t dtype;          /* bk_dtype */
    int8_t ndim;
    bool requires_grad;    /* a leaf the user wants d/d of, or an op output
                              that depends on one */
    int32_t mark;          /* 1 + tape position of the op that produced it
                              while that op is on the tape, else 0 */
    int64_t numel;
    int64_t offset;        /* in elements, into st->data */
    bk_storage *st;
    bk_tensor *grad;       /* filled by bk_backward (owned reference) */
    bk_ctx *ctx;           /* the context that made it (for release) */
    /* Storage of small tensors (at most BK_INLINE_BYTES), embedded so that
     * a 1-element op allocates one object.  Views may share it: the struct
     * is recycled when both the tensor and the storage are released. */
    bk_storage own;
    double own_data[BK_INLINE_BYTES / sizeof(double)];
    int64_t shape[BK_MAXDIM];
    int64_t strides[BK_MAXDIM];
};

/* ---------------------------------------------------------------- ops --- */

/* Index specification for indexing / slicing / element assignment. */
typedef enum { BK_IDX_INT, BK_IDX_SLICE, BK_IDX_TENSOR, BK_IDX_NEWAXIS } bk_idx_kind;
typedef struct bk_idx {  /* (named bk_idx: bk_index is the op) */
    int kind;               /* bk_idx_kind */
    int64_t start, stop, step; /* INT uses start; SLICE uses all three
                                  (already normalized: 0 <= start, stop <= dim) */
    bk_tensor *idx;         /* TENSOR: integer-valued tensor (borrowed) */
} bk_idx;

/* Non-tensor arguments of an op.  Copied onto the tape. */
typedef struct bk_opargs {
    int64_t axis;           /* reductions, concat, stack, cumsum, softmax,
                               index_select, gather */
    int keepdim;            /* reductions */
    int64_t axis2;          /* transpose: second axis */
    double scalar;          /* pow by constant etc. */
    const struct bk_fused *fused; /* FUSED: the kernel (n = its inputs) */
    int ndim;               /* reshape / expand target */
    int64_t shape[BK_MAXDIM];
    int nidx;               /* index / index_put */
    bk_idx idx[BK_MAXDIM];
    int upper, trans, unit; /* solve_triangular flags */
    int n;                  /* number of inputs for variadic ops (concat/stack) */
} bk_opargs;

/* X-macro list of every op: OP(ENUM, "name", number of tensor inputs
 * (-1 = variadic), differentiable?).  Kernels and backward rules are defined
 * in the ops_*.c files; the table in ops_table.c binds them. */
#define BK_OPS(OP)                                   \
    /* elementwise binary */                         \
    OP(ADD, "add", 2, 1)                             \
    OP(SUB, "sub", 2, 1)                             \
    OP(MUL, "mul", 2, 1)                             \
    OP(DIV, "div", 2, 1)                             \
    OP(POW, "pow", 2, 1)                             \
    OP(MAXIMUM, "maximum", 2, 1)                     \
    OP(MINIMUM, "minimum", 2, 1)                     \
    OP(LT, "lt", 2, 0)                               \
    OP(LE, "le", 2, 0)                               \
    OP(GT, "gt", 2, 0)                               \
    OP(GE, "ge", 2, 0)                               \
    OP(EQ, "eq", 2, 0)                               \
    OP(NE, "ne", 2, 0)                               \
    OP(WHERE, "where", 3, 1)                         \
    /* elementwise unary */                          \
    OP(NEG, "neg", 1, 1)                             \
    OP(ABS, "abs", 1, 1)                             \
    OP(EXP, "exp", 1, 1)                             \
    OP(LOG, "log", 1, 1)                             \
    OP(LOG1P, "log1p", 1, 1)                         \
    OP(EXPM1, "expm1", 1, 1)                         \
    OP(SQRT, "sqrt", 1, 1)                           \
    OP(SQUARE, "square", 1, 1)                       \
    OP(SIGMOID, "sigmoid", 1, 1)                     \
    OP(LOGIT, "logit", 1, 1)                         \
    OP(SOFTPLUS, "softplus", 1, 1)                   \
    OP(LOG_SIGMOID, "log_sigmoid", 1, 1)             \
    OP(TANH, "tanh", 1, 1)                           \
    OP(RELU, "relu", 1, 1)                           \
    OP(ELU, "elu", 1, 1)             /* alpha: scalar */ \
    OP(LEAKY_RELU, "leaky_relu", 1, 1) /* slope: scalar */ \
    OP(SIN, "sin", 1, 1)                             \
    OP(COS, "cos", 1, 1)                             \
    OP(LGAMMA, "lgamma", 1, 1)                       \
    OP(DIGAMMA, "digamma", 1, 1)                     \
    OP(TRIGAMMA, "trigamma", 1, 0)                   \
    OP(ERF, "erf", 1, 1)                             \
    OP(ERFC, "erfc", 1, 1)                           \
    OP(FLOOR, "floor", 1, 0)                         \
    OP(NOT, "not", 1, 0)                             \
    /* reductions (axis = BK_ALL_AXES for all) */    \
    OP(SUM, "sum", 1, 1)                             \
    OP(MEAN, "mean", 1, 1)                           \
    OP(MAX, "max", 1, 1)                             \
    OP(MIN, "min", 1, 1)                             \
    OP(LOGSUMEXP, "logsumexp", 1, 1)                 \
    OP(PROD, "prod", 1, 1)                           \
    OP(CUMSUM, "cumsum", 1, 1)                       \
    OP(SOFTMAX, "softmax", 1, 1)                     \
    OP(LOG_SOFTMAX, "log_softmax", 1, 1)             \
    /* linear algebra */                             \
    OP(MATMUL, "matmul", 2, 1)                       \
    OP(CHOLESKY, "cholesky", 1, 1)                   \
    OP(SOLVE_TRIANGULAR, "solve_triangular", 2, 1)   \
    OP(LOGDET, "logdet", 1, 1)                       \
    OP(INVERSE, "inverse", 1, 1)                     \
    /* shape and indexing */                         \
    OP(RESHAPE, "reshape", 1, 1)                     \
    OP(TRANSPOSE, "transpose", 1, 1)                 \
    OP(EXPAND, "expand", 1, 1)                       \
    OP(CONCAT, "concat", -1, 1)                      \
    OP(STACK, "stack", -1, 1)                        \
    OP(INDEX, "index", 1, 1)                         \
    OP(INDEX_PUT, "index_put", 2, 1)                 \
    OP(INDEX_SELECT, "index_select", 2, 1)           \
    OP(GATHER, "gather", 2, 1)                       \
    OP(CONTIGUOUS, "contiguous", 1, 1)               \
    OP(CAST, "cast", 1, 1)                           \
    /* fused models (ops_hmm.c) */                   \
    OP(HMM_FORWARD, "hmm_forward", 4, 1)             \
    OP(HMM_FORWARD_CAT, "hmm_forward_cat", 4, 1)     \
    /* a fused elementwise kernel (bk_fused) */      \
    OP(FUSED, "fused", -1, 1)

typedef enum {
#define BK_OP_ENUM(E, name, nin, diff) BK_OP_##E,
    BK_OPS(BK_OP_ENUM)
#undef BK_OP_ENUM
    BK_OP_COUNT
} bk_opcode;

/* One recorded op, as a backward rule sees it.  (The tape itself stores
 * compact records, tensor.c: pointwise ops on 1-element tensors keep only
 * values and tape positions and are differentiated on doubles; the others
 * are handed to their rule through this view.) */
typedef struct bk_tape_entry {
    int op;                       /* bk_opcode */
    int nin;
    bk_tensor **in;               /* retained inputs */
    bk_tensor *out;               /* retained output */
    bk_opargs args;               /* index tensors in args.idx are retained;
                                     idx[i] for i >= nidx is unspecified */
} bk_tape_entry;

/* Forward kernel: computes the op on CPU float64 inputs and returns a new
 * tensor, or NULL with an error set.  It does not record anything. */
typedef bk_tensor *(*bk_forward_fn)(bk_ctx *, bk_tensor **in, const bk_opargs *);
/* Backward rule: given the tape entry and the gradient of its output, set
 * gin[i] (new reference) for each input i with in[i]->requires_grad, leaving
 * others NULL.  gin[i] may have the output's broadcast shape: the engine
 * sums it down to the input's shape.  Runs with grad recording off.
 * Returns 0, or -1 with an error set. */
typedef int (*bk_backward_fn)(bk_ctx *, const bk_tape_entry *, bk_tensor *gout,
                              bk_tensor **gin);

typedef struct bk_opinfo {
    const char *name;
    int nin;                 /* -1 = variadic */
    int differentiable;
    bk_forward_fn forward;
    bk_backward_fn backward; /* NULL when not differentiable */
} bk_opinfo;

extern const bk_opinfo bk_optable[BK_OP_COUNT];

/* A fused elementwise kernel: a chain of elementwise math (a log density,
 * say) computed in one pass over memory, with a backward that computes the
 * gradients of all its inputs in one pass too.  The stdlib defines them
 * (stdlib/dist_normal.c: the Normal log density) and runs them through the
 * FUSED op (bk_fused_apply), which broadcasts the inputs as NumPy, records
 * the op and calls `backward` in the reverse sweep.  Both functions work on
 * one row of n elements: input i's k-th element is x[i][k * inc[i]] (inc 0
 * repeats one value), the output gradient's is g[k * ginc]; out and gx[i]
 * are contiguous. */
typedef struct bk_fused {
    const char *name;
    int nin;                 /* 1 .. BK_MAXIN */
    void (*forward)(int64_t n, const double *const *x, const int64_t *inc, double *out);
    /* gx[i][k] = g[k * ginc] * d out[k] / d x_i[k], for each i with gx[i] != NULL */
    void (*backward)(int64_t n, const double *const *x, const int64_t *inc, const double *out,
                     const double *g, int64_t ginc, double *const *gx);
    /* Optional float32 forms of the same (NULL: float32 inputs are computed
     * by the double kernel and the result converted). */
    void (*forward_f32)(int64_t n, const float *const *x, const int64_t *inc, float *out);
    void (*backward_f32)(int64_t n, const float *const *x, const int64_t *inc, const float *out,
                         const float *g, int64_t ginc, float *const *gx);
} bk_fused;

/* ------------------------------------------------------------- device --- */

struct bk_device {
    const char *name;                    /* "cpu", "cuda" */
    void *(*alloc)(bk_ctx *, size_t nbytes);
    void (*free)(bk_ctx *, void *p);
    /* copy nbytes between host and this device (dir 0: to device, 1: to host) */
    int (*copy)(bk_ctx *, void *dst, const void *src, size_t nbytes, int dir);
    bool (*supports_op)(int op);         /* false: fall back to the CPU */
    bk_forward_fn (*kernel)(int op);
    /* The backward rule of op for tensors on this device, or NULL: the CPU
     * rule then runs on host copies (a fallback, warned once).  A NULL
     * field (the CPU) means the op table's rules. */
    bk_backward_fn (*backward)(int op);
    /* Frees the per-context state the device keeps (bk__devstate) when the
     * context is freed; NULL: it keeps none. */
    void (*release_state)(bk_ctx *, void *state);
};
extern const bk_device bk_cpu_device;

/* Device rules (docs/CUDA.md).  An op runs on the device of its tensor
 * inputs; all must be on one device, except 0-d CPU tensors (constants),
 * which join any device.  An op the device lacks (supports_op false) runs
 * on the CPU with host copies of the inputs and its result is copied back:
 * never silently wrong, but slow, so the first use of each such op is
 * noted in the context (bk_device_warnings) for the caller to show. */
/* A tensor of uninitialized data on dev (bk_empty for the CPU). */
bk_tensor *bk_empty_on(bk_ctx *, const bk_device *dev, bk_dtype, int ndim, const int64_t *shape);
/* A contiguous copy of t on dev (t itself, retained, when it is there
 * already).  Not recorded on the tape: gradients do not flow through it. */
bk_tensor *bk_to_device(bk_ctx *, bk_tensor *t, const bk_device *dev);
const bk_device *bk_tensor_device(const bk_tensor *t);
/* The device named "cpu" or "cuda", or NULL with an error that says why
 * (not built with CUDA, no device found). */
const bk_device *bk_device_named(bk_ctx *, const char *name);
/* One line per op that fell back to the CPU ("" when none): the library
 * never prints, the CLI shows these. */
const char *bk_device_warnings(const bk_ctx *ctx);
/* The context's default device: where the runtime creates the tensors of a
 * run (data, parameters, draws, constants that are not 0-d); the backend's
 * own ops never consult it (their outputs follow their inputs).  NULL or
 * never set: the CPU. */
void bk_set_default_device(bk_ctx *ctx, const bk_device *dev);
const bk_device *bk_default_device(const bk_ctx *ctx);
/* t on the default device: t itself when it is there, else a copy with t
 * released (NULL, error set, t released, on failure).  Takes t's reference;
 * NULL in, NULL out.  bk_place_nd leaves 0-d CPU tensors on the CPU
 * (constants join any device) and tensors on the tape where they are. */
bk_tensor *bk_place(bk_ctx *ctx, bk_tensor *t);
bk_tensor *bk_place_nd(bk_ctx *ctx, bk_tensor *t);
/* Overwrites the elements of a contiguous float64 or float32 tensor (rounded)
 * on any device with src[0 .. numel) (the host side of in-place updates). */
int bk_copy_in(bk_ctx *ctx, bk_tensor *t, const double *src);
/* dst's values := src's (same numel; any devices; dst as for bk_copy_in). */
int bk_copy_values(bk_ctx *ctx, bk_tensor *dst, const bk_tensor *src);
/* Per-context state of a device (its streams, handles, memory cache):
 * NULL until set.  Set returns -1 (error set) when a different device
 * already holds the slot. */
void *bk__devstate(bk_ctx *, const bk_device *dev);
int bk__set_devstate(bk_ctx *, const bk_device *dev, void *state);

/* ------------------------------------------------------------ context --- */

bk_ctx *bk_ctx_new(const bk_alloc *alloc);   /* NULL alloc: libc */
/* The allocator a context uses (to make another one like it). */
bk_alloc bk_ctx_allocator(const bk_ctx *ctx);
void bk_ctx_free(bk_ctx *ctx);
const char *bk_errmsg(const bk_ctx *ctx);
void bk_seterr(bk_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bk_clearerr(bk_ctx *ctx);
void *bk_malloc(bk_ctx *ctx, size_t n);      /* sets error on failure */
void *bk_realloc(bk_ctx *ctx, void *p, size_t n);
void bk_free(bk_ctx *ctx, void *p);
/* Fault injection for tests: the n-th allocation from now fails (0: off). */
void bk_fail_alloc_after(bk_ctx *ctx, long n);

/* Autodiff recording.  Returns the previous setting. */
bool bk_set_grad_enabled(bk_ctx *ctx, bool on);
bool bk_grad_enabled(const bk_ctx *ctx);

/* ------------------------------------------------------------ tensors --- */

bk_tensor *bk_empty(bk_ctx *, bk_dtype, int ndim, const int64_t *shape);
bk_tensor *bk_zeros(bk_ctx *, bk_dtype, int ndim, const int64_t *shape);
bk_tensor *bk_full(bk_ctx *, bk_dtype, int ndim, const int64_t *shape, double v);
bk_tensor *bk_scalar(bk_ctx *, double v);                  /* 0-d float64 */
bk_tensor *bk_from_f64(bk_ctx *, int ndim, const int64_t *shape, const double *data);
bk_tensor *bk_arange(bk_ctx *, double start, double stop, double step);
bk_tensor *bk_linspace(bk_ctx *, double a, double b, int64_t n);
bk_tensor *bk_eye(bk_ctx *, int64_t n);
/* A new tensor sharing storage (a view): caller supplies shape/strides. */
bk_tensor *bk_view(bk_ctx *, bk_tensor *base, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset);

bk_tensor *bk_retain(bk_tensor *t);          /* NULL-safe, returns t */
void bk_release(bk_tensor *t);               /* NULL-safe */

bool bk_is_contiguous(const bk_tensor *t);
/* The result dtype of an op on these inputs (see the header comment):
 * float64 if an input of ndim >= 1 is float64; else float32 if an input of
 * ndim >= 1 is float32; when all are 0-d, float32 only if all are. */
bk_dtype bk_promote(int n, bk_tensor *const *in);
/* Whether op has a float32 kernel (no conversion to double at the op). */
bool bk_native_f32(int op);
/* Pointer to contiguous f32 data of t (t must be contiguous float32 CPU). */
float *bk_data_f32(const bk_tensor *t);
/* Element access by flat (row-major logical) index; value as double. */
double bk_get(const bk_tensor *t, int64_t i);
void bk_set(bk_tensor *t, int64_t i, double v);  /* only on fresh tensors */
double bk_item(const bk_tensor *t);              /* element 0 */
/* Pointer to contiguous f64 data of t (t must be contiguous float64 CPU). */
double *bk_data(const bk_tensor *t);
/* Copy all elements (row-major logical order) into out[numel]. */
void bk_copy_out(const bk_tensor *t, double *out);
bool bk_same_shape(const bk_tensor *a, const bk_tensor *b);
/* NumPy broadcast of two shapes; -1 with error on mismatch. */
int bk_broadcast_shapes(bk_ctx *, int na, const int64_t *sa, int nb,
                        const int64_t *sb, int *nout, int64_t *out);
/* Human-readable shape "[3, 4]" into buf. */
const char *bk_shape_str(const bk_tensor *t, char *buf, size_t n);
/* The same for a shape given as nd sizes: "[2, 3]". */
const char *bk_dims_str(int nd, const int64_t *shape, char *buf, size_t n);

/* ---------------------------------------------------------- op calls --- */

/* Generic entry: runs the op's forward (device dispatch, f32 conversion)
 * and records it on the tape when grad is enabled and an input requires
 * grad.  All named wrappers below go through it. */
bk_tensor *bk_apply(bk_ctx *, int op, int nin, bk_tensor **in, const bk_opargs *args);

bk_tensor *bk_add(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_sub(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_mul(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_div(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_pow(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_binop(bk_ctx *, int op, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_unop(bk_ctx *, int op, bk_tensor *a);
bk_tensor *bk_where(bk_ctx *, bk_tensor *cond, bk_tensor *a, bk_tensor *b);
/* Scalar conveniences (the scalar is a constant) */
bk_tensor *bk_add_s(bk_ctx *, bk_tensor *a, double s);
bk_tensor *bk_mul_s(bk_ctx *, bk_tensor *a, double s);
/* Activations with a constant (ops_nn.c): elu(x) = x > 0 ? x : alpha (e^x - 1),
 * leaky_relu(x) = x > 0 ? x : slope x. */
bk_tensor *bk_elu(bk_ctx *, bk_tensor *a, double alpha);
bk_tensor *bk_leaky_relu(bk_ctx *, bk_tensor *a, double slope);
/* Reductions; axis may be negative; BK_ALL_AXES reduces all. */
bk_tensor *bk_reduce(bk_ctx *, int op, bk_tensor *a, int64_t axis, bool keepdim);
bk_tensor *bk_sum_all(bk_ctx *, bk_tensor *a);
/* Sum a (broadcast-shaped) tensor down to the given shape. */
bk_tensor *bk_sum_to(bk_ctx *, bk_tensor *a, int ndim, const int64_t *shape);
bk_tensor *bk_matmul(bk_ctx *, bk_tensor *a, bk_tensor *b);
bk_tensor *bk_transpose(bk_ctx *, bk_tensor *a, int64_t d0, int64_t d1);
bk_tensor *bk_reshape(bk_ctx *, bk_tensor *a, int ndim, const int64_t *shape);
bk_tensor *bk_expand(bk_ctx *, bk_tensor *a, int ndim, const int64_t *shape);
bk_tensor *bk_concat(bk_ctx *, int n, bk_tensor **ts, int64_t axis);
bk_tensor *bk_stack(bk_ctx *, int n, bk_tensor **ts, int64_t axis);
bk_tensor *bk_index(bk_ctx *, bk_tensor *a, int nidx, const bk_idx *idx);
/* Functional element assignment: a copy of a with a[idx] = v (v broadcast). */
bk_tensor *bk_index_put(bk_ctx *, bk_tensor *a, int nidx, const bk_idx *idx,
                        bk_tensor *v);
bk_tensor *bk_index_select(bk_ctx *, bk_tensor *a, int64_t axis, bk_tensor *idx);
bk_tensor *bk_gather(bk_ctx *, bk_tensor *a, int64_t axis, bk_tensor *idx);
bk_tensor *bk_cholesky(bk_ctx *, bk_tensor *a);
bk_tensor *bk_solve_triangular(bk_ctx *, bk_tensor *a, bk_tensor *b, bool upper);
bk_tensor *bk_logdet(bk_ctx *, bk_tensor *a);
bk_tensor *bk_inverse(bk_ctx *, bk_tensor *a);
bk_tensor *bk_contiguous(bk_ctx *, bk_tensor *a);
bk_tensor *bk_cast(bk_ctx *, bk_tensor *a, bk_dtype dt);
bk_tensor *bk_squeeze(bk_ctx *, bk_tensor *a, int64_t axis);   /* via reshape */
bk_tensor *bk_unsqueeze(bk_ctx *, bk_tensor *a, int64_t axis); /* via reshape */
/* out = f(in[0], ..., in[f->nin - 1]) elementwise (the FUSED op). */
bk_tensor *bk_fused_apply(bk_ctx *, const bk_fused *f, bk_tensor **in);
/* A copy that does not require grad and is not on the tape. */
bk_tensor *bk_detach(bk_ctx *, bk_tensor *a);

/* ----------------------------------------------------------- autodiff --- */

/* Mark a tensor as a leaf whose gradient bk_backward will compute. */
void bk_set_requires_grad(bk_tensor *t, bool on);
/* Reverse sweep from scalar `loss` over the tape (no recursion): seeds
 * d loss = 1, then for each entry from the last to the first whose output
 * has a gradient, calls the op's backward rule, sums each input gradient
 * down to the input's shape (bk_sum_to) and adds it to the input's ->grad.
 * Every leaf (a requires_grad tensor that is not the output of a recorded
 * op) that appears on the tape first loses any old ->grad, and afterwards
 * holds d loss / d leaf (when the loss depends on it); the gradients of op
 * outputs (intermediates) are released after the sweep, so they have
 * ->grad == NULL.  The tape is left as it was (bk_tape_reset drops it).
 * Recorded tensors must not change value before the sweep (the scalar
 * records keep their input values). Pointwise ops on 1-element float64
 * tensors are swept on doubles: their adjoints live in the tape record, and
 * no gradient tensor is made for them.
 * Returns 0, or -1 with an error set (leaf gradients are then partial). */
int bk_backward(bk_ctx *, bk_tensor *loss);
/* Drop the tape (releases recorded tensors). Leaves keep their ->grad. */
void bk_tape_reset(bk_ctx *);
size_t bk_tape_len(const bk_ctx *);
/* Release and clear t->grad. */
void bk_zero_grad(bk_tensor *t);

/* Internal helpers shared by the op files (not for the runtime). */
bk_tensor *bk__new_like_shape(bk_ctx *, int ndim, const int64_t *shape);
/* Pointwise ops on doubles, for the 1-element fast paths of bk_apply and
 * bk_backward (ops_elementwise.c).  bk__pointwise_arity[op] is 1 or 2 for
 * the unary / binary elementwise ops (not WHERE), 0 for every other op.
 * bk__pointwise_grad returns in d[0] (and d[1] for binary ops) the partial
 * derivatives of op at (x, y) given the result out; the tensor backward
 * rules compute the same values. */
extern const signed char bk__pointwise_arity[BK_OP_COUNT];
double bk__pointwise(int op, double x, double y);
typedef struct bk_dpair {
    double d[2];
} bk_dpair;
bk_dpair bk__pointwise_grad(int op, double x, double y, double out);
int bk__record(bk_ctx *, int op, int nin, bk_tensor **in, bk_tensor *out,
               const bk_opargs *args);

#endif
