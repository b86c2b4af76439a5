/* tensor.c - the backend context, tensor objects, broadcasting, op
 * dispatch (bk_apply), the tape and the reverse sweep, and the named op
 * wrappers.
 *
 * Memory: tensor structs are recycled through a freelist in the context,
 * and the data of small tensors lives inside the struct (bk_tensor.own),
 * so an op on a 1-element tensor allocates one recycled object and does
 * not call malloc on the hot path.  Every allocation goes through the context's allocator hook
 * (bk_alloc), which tests use to inject out-of-memory. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "program.h"
#include "tensor.h"

#define FREELIST_MAX 4096    /* at most this many cached tensor structs */
#define BIG_CACHE 32         /* large storages kept for reuse: elementwise
                                chains free and allocate same-sized blocks,
                                and fresh pages cost more than the math */

typedef struct tape_rec tape_rec;

struct bk_ctx {
    bk_alloc alloc;
    char err[512];
    bool grad;
    tape_rec *tape;
    size_t ntape, captape;
    bk_opargs *targs;          /* arguments of the general tape records */
    size_t ntargs, captargs;
    bk_tensor *free_tensors;   /* linked through ->grad */
    size_t nfree_tensors;
    bk_storage *big[BIG_CACHE];
    int nbig;
    long fail_after;           /* fault injection: 0 = off */
    const bk_device *xdev;     /* the accelerator whose state is xstate */
    void *xstate;
    const bk_device *defdev;   /* where the runtime makes its tensors (NULL: cpu) */
    uint8_t warned[BK_OP_COUNT]; /* bit 0: forward fell back, bit 1: backward */
    char warn[1024];           /* bk_device_warnings */
    bk_rec *rec;               /* an op recording in progress (program.c), or NULL */
    int rec_busy;              /* > 0 inside an op or a sweep: not the model's own ops */
};

bk_rec **bk__ctx_rec(bk_ctx *ctx) { return &ctx->rec; }

/* A host read of t while a recording runs (outside the backend's own ops):
 * the recorder decides whether a random value escaped. */
static inline void note_read(const bk_tensor *t) {
    bk_ctx *ctx = t->ctx;
    if (ctx && ctx->rec && !ctx->rec_busy) {
        ctx->rec_busy++;
        bk__prog_read(ctx, ctx->rec, t);
        ctx->rec_busy--;
    }
}

/* -------------------------------------------------------------- memory --- */

static void *sys_malloc(void *ud, size_t n) { (void)ud; return malloc(n); }
static void *sys_realloc(void *ud, void *p, size_t n) { (void)ud; return realloc(p, n); }
static void sys_free(void *ud, void *p) { (void)ud; free(p); }

static bool injected_failure(bk_ctx *ctx) {
    if (ctx->fail_after <= 0) return false;
    if (--ctx->fail_after == 0) return true;
    return false;
}

void *bk_malloc(bk_ctx *ctx, size_t n) {
    void *p = injected_failure(ctx) ? NULL : ctx->alloc.malloc_fn(ctx->alloc.ud, n ? n : 1);
    if (!p) bk_seterr(ctx, "out of memory (%zu bytes)", n);
    return p;
}

void *bk_realloc(bk_ctx *ctx, void *p, size_t n) {
    void *q = injected_failure(ctx) ? NULL : ctx->alloc.realloc_fn(ctx->alloc.ud, p, n ? n : 1);
    if (!q) bk_seterr(ctx, "out of memory (%zu bytes)", n);
    return q;
}

void bk_free(bk_ctx *ctx, void *p) {
    if (p) ctx->alloc.free_fn(ctx->alloc.ud, p);
}

void bk_fail_alloc_after(bk_ctx *ctx, long n) { ctx->fail_after = n; }

bk_ctx *bk_ctx_new(const bk_alloc *alloc) {
    bk_alloc a = {sys_malloc, sys_realloc, sys_free, NULL};
    if (alloc && alloc->malloc_fn && alloc->realloc_fn && alloc->free_fn) a = *alloc;
    bk_ctx *ctx = a.malloc_fn(a.ud, sizeof *ctx);
    if (!ctx) return NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = a;
    ctx->grad = true;
    return ctx;
}

bk_alloc bk_ctx_allocator(const bk_ctx *ctx) { return ctx->alloc; }

void bk_ctx_free(bk_ctx *ctx) {
    if (!ctx) return;
    if (ctx->rec) bk_prog_free(bk_prog_end(ctx, NULL, NULL, 0));
    bk_tape_reset(ctx);
    bk_free(ctx, ctx->tape);
    bk_free(ctx, ctx->targs);
    while (ctx->free_tensors) {
        bk_tensor *t = ctx->free_tensors;
        ctx->free_tensors = t->grad;
        bk_free(ctx, t);
    }
    for (int i = 0; i < ctx->nbig; i++) bk_free(ctx, ctx->big[i]);
    if (ctx->xdev && ctx->xdev->release_state) ctx->xdev->release_state(ctx, ctx->xstate);
    ctx->alloc.free_fn(ctx->alloc.ud, ctx);
}

const char *bk_errmsg(const bk_ctx *ctx) { return ctx->err[0] ? ctx->err : "unknown error"; }

void bk_seterr(bk_ctx *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
}

void bk_clearerr(bk_ctx *ctx) { ctx->err[0] = 0; }

bool bk_set_grad_enabled(bk_ctx *ctx, bool on) {
    bool old = ctx->grad;
    ctx->grad = on;
    return old;
}

bool bk_grad_enabled(const bk_ctx *ctx) { return ctx->grad; }

/* ------------------------------------------------------------- storage --- */

static size_t dtype_size(int dt) { return dt == BK_F32 ? sizeof(float) : sizeof(double); }

/* Put a released tensor struct (whose embedded storage is released too)
 * on the freelist. */
static void tensor_recycle(bk_ctx *ctx, bk_tensor *t) {
    if (ctx->nfree_tensors < FREELIST_MAX) {
        t->grad = ctx->free_tensors;
        ctx->free_tensors = t;
        ctx->nfree_tensors++;
    } else {
        bk_free(ctx, t);
    }
}

/* Storage for nbytes of data of tensor t: its embedded storage when the
 * data fits, else a heap block (a cached one when possible). */
static bk_storage *storage_new(bk_ctx *ctx, bk_tensor *t, size_t nbytes) {
    bk_storage *st;
    if (nbytes <= BK_INLINE_BYTES) {
        st = &t->own; /* cap, data, owner and dev are set once (tensor_struct) */
        st->refcount = 1;
        st->nbytes = nbytes;
        return st;
    } else {
        st = NULL;
        /* a cached block that fits without wasting more than half */
        for (int i = 0; i < ctx->nbig; i++)
            if (ctx->big[i]->cap >= nbytes && ctx->big[i]->cap / 2 <= nbytes) {
                st = ctx->big[i];
                ctx->big[i] = ctx->big[--ctx->nbig];
                break;
            }
        if (!st) {
            st = bk_malloc(ctx, sizeof(bk_storage) + nbytes);
            if (!st) return NULL;
            st->cap = nbytes;
        }
        st->data = st + 1;
        st->owner = NULL;
    }
    st->refcount = 1;
    st->nbytes = nbytes;
    st->dev = &bk_cpu_device;
    return st;
}

static void storage_release(bk_ctx *ctx, bk_storage *st) {
    if (!st || --st->refcount > 0) return;
    if (st->dev != &bk_cpu_device) { /* the device caches its own memory */
        st->dev->free(ctx, st->data);
        bk_free(ctx, st);
        return;
    }
    if (st->owner) { /* embedded: its tensor was released before */
        tensor_recycle(ctx, st->owner);
        return;
    }
    if (st->cap <= ((size_t)64 << 20)) {
        if (ctx->nbig == BIG_CACHE) {
            /* evict the smallest cached block */
            int k = 0;
            for (int i = 1; i < ctx->nbig; i++)
                if (ctx->big[i]->cap < ctx->big[k]->cap) k = i;
            if (ctx->big[k]->cap < st->cap) {
                bk_free(ctx, ctx->big[k]);
                ctx->big[k] = st;
                return;
            }
        } else {
            ctx->big[ctx->nbig++] = st;
            return;
        }
    }
    bk_free(ctx, st);
}

/* ------------------------------------------------------------- tensors --- */

static inline bk_tensor *tensor_struct(bk_ctx *ctx) {
    bk_tensor *t;
    if (ctx->free_tensors) {
        t = ctx->free_tensors;
        ctx->free_tensors = t->grad;
        ctx->nfree_tensors--;
    } else {
        t = bk_malloc(ctx, sizeof *t);
        if (!t) return NULL;
        t->own.cap = BK_INLINE_BYTES;
        t->own.data = t->own_data;
        t->own.owner = t;
        t->own.dev = &bk_cpu_device;
    }
    t->refcount = 1;
    t->requires_grad = false;
    t->grad = NULL;
    t->ctx = ctx;
    t->mark = 0;
    t->offset = 0;
    t->st = NULL;
    return t;
}

static void set_contiguous_strides(bk_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->shape[i];
    }
}

/* A fresh tensor's header: dtype, shape, numel n, row-major strides. */
static void set_header(bk_tensor *t, bk_dtype dt, int ndim, const int64_t *shape, int64_t n) {
    t->dtype = (int8_t)dt;
    t->ndim = (int8_t)ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = n;
    set_contiguous_strides(t);
}

static bool check_shape(bk_ctx *ctx, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > BK_MAXDIM) {
        bk_seterr(ctx, "tensors have at most %d dimensions, got %d", BK_MAXDIM, ndim);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            bk_seterr(ctx, "negative dimension %lld", (long long)shape[i]);
            return false;
        }
        if (shape[i] && n > (INT64_C(1) << 40) / shape[i]) {
            bk_seterr(ctx, "tensor is too large (the limit is 2^40 elements)");
            return false;
        }
        n *= shape[i];
    }
    *numel = n;
    return true;
}

bk_tensor *bk_empty(bk_ctx *ctx, bk_dtype dt, int ndim, const int64_t *shape) {
    int64_t n;
    if (!check_shape(ctx, ndim, shape, &n)) return NULL;
    bk_tensor *t = tensor_struct(ctx);
    if (!t) return NULL;
    t->st = storage_new(ctx, t, (size_t)n * dtype_size(dt));
    if (!t->st) {
        tensor_recycle(ctx, t);
        return NULL;
    }
    set_header(t, dt, ndim, shape, n);
    return t;
}

bk_tensor *bk__new_like_shape(bk_ctx *ctx, int ndim, const int64_t *shape) {
    return bk_empty(ctx, BK_F64, ndim, shape);
}

bk_tensor *bk_full(bk_ctx *ctx, bk_dtype dt, int ndim, const int64_t *shape, double v) {
    bk_tensor *t = bk_empty(ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (dt == BK_F32) {
        float *p = (float *)t->st->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = (float)v;
    } else {
        double *p = (double *)t->st->data;
        for (int64_t i = 0; i < t->numel; i++) p[i] = v;
    }
    return t;
}

bk_tensor *bk_zeros(bk_ctx *ctx, bk_dtype dt, int ndim, const int64_t *shape) {
    return bk_full(ctx, dt, ndim, shape, 0.0);
}

bk_tensor *bk_scalar(bk_ctx *ctx, double v) {
    bk_tensor *t = bk_empty(ctx, BK_F64, 0, NULL);
    if (t) *(double *)t->st->data = v;
    return t;
}

bk_tensor *bk_from_f64(bk_ctx *ctx, int ndim, const int64_t *shape, const double *data) {
    bk_tensor *t = bk_empty(ctx, BK_F64, ndim, shape);
    if (t && t->numel) memcpy(t->st->data, data, (size_t)t->numel * sizeof(double));
    return t;
}

bk_tensor *bk_arange(bk_ctx *ctx, double start, double stop, double step) {
    if (step == 0) {
        bk_seterr(ctx, "arange: step cannot be zero");
        return NULL;
    }
    double nd = ceil((stop - start) / step);
    int64_t n = nd > 0 ? (int64_t)nd : 0;
    bk_tensor *t = bk_empty(ctx, BK_F64, 1, &n);
    if (!t) return NULL;
    double *p = bk_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = start + (double)i * step;
    return t;
}

bk_tensor *bk_linspace(bk_ctx *ctx, double a, double b, int64_t n) {
    if (n < 0) {
        bk_seterr(ctx, "linspace: num must be >= 0");
        return NULL;
    }
    bk_tensor *t = bk_empty(ctx, BK_F64, 1, &n);
    if (!t) return NULL;
    double *p = bk_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = n == 1 ? a : a + (b - a) * (double)i / (double)(n - 1);
    return t;
}

bk_tensor *bk_eye(bk_ctx *ctx, int64_t n) {
    bk_tensor *t = bk_zeros(ctx, BK_F64, 2, (int64_t[]){n, n});
    if (!t) return NULL;
    double *p = bk_data(t);
    for (int64_t i = 0; i < n; i++) p[i * n + i] = 1.0;
    return t;
}

bk_tensor *bk_view(bk_ctx *ctx, bk_tensor *base, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset) {
    int64_t n;
    if (!check_shape(ctx, ndim, shape, &n)) return NULL;
    if (ctx->rec && !ctx->rec_busy) bk__prog_view(ctx, ctx->rec, base);
    bk_tensor *t = tensor_struct(ctx);
    if (!t) return NULL;
    t->st = base->st;
    t->st->refcount++;
    t->dtype = base->dtype;
    t->ndim = (int8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = strides[i];
    }
    t->numel = n;
    t->offset = offset;
    return t;
}

bk_tensor *bk_retain(bk_tensor *t) {
    if (t) t->refcount++;
    return t;
}

void bk_release(bk_tensor *t) {
    if (!t || --t->refcount > 0) return;
    bk_ctx *ctx = t->ctx;
    bk_release(t->grad);
    bk_storage *st = t->st;
    if (st == &t->own) {
        /* the struct goes with its storage, which views may still share */
        if (--st->refcount == 0) tensor_recycle(ctx, t);
        return;
    }
    storage_release(ctx, st);
    tensor_recycle(ctx, t);
}

bool bk_is_contiguous(const bk_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

/* Storage offset of the element with flat (row-major) index i. */
static int64_t elem_offset(const bk_tensor *t, int64_t i) {
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t sz = t->shape[d];
        if (sz == 0) return off;
        off += (i % sz) * t->strides[d];
        i /= sz;
    }
    return off;
}

/* One element of a tensor on an accelerator, through a copy. */
static double device_get(const bk_tensor *t, int64_t o) {
    double d = NAN;
    float f = NAN;
    size_t sz = dtype_size(t->dtype);
    void *dst = t->dtype == BK_F32 ? (void *)&f : (void *)&d;
    if (t->st->dev->copy(t->ctx, dst, (const char *)t->st->data + (size_t)o * sz, sz, 1)) return NAN;
    return t->dtype == BK_F32 ? (double)f : d;
}

double bk_get(const bk_tensor *t, int64_t i) {
    note_read(t);
    int64_t o = elem_offset(t, i);
    if (t->st->dev != &bk_cpu_device) return device_get(t, o);
    return t->dtype == BK_F32 ? (double)((const float *)t->st->data)[o] : ((const double *)t->st->data)[o];
}

void bk_set(bk_tensor *t, int64_t i, double v) {
    int64_t o = elem_offset(t, i);
    if (t->st->dev != &bk_cpu_device) {
        float f = (float)v;
        size_t sz = dtype_size(t->dtype);
        t->st->dev->copy(t->ctx, (char *)t->st->data + (size_t)o * sz,
                         t->dtype == BK_F32 ? (const void *)&f : (const void *)&v, sz, 0);
        return;
    }
    if (t->dtype == BK_F32) ((float *)t->st->data)[o] = (float)v;
    else ((double *)t->st->data)[o] = v;
}

double bk_item(const bk_tensor *t) { return bk_get(t, 0); }

double *bk_data(const bk_tensor *t) {
    note_read(t);
    return (double *)t->st->data + t->offset; }

float *bk_data_f32(const bk_tensor *t) { return (float *)t->st->data + t->offset; }

void bk_copy_out(const bk_tensor *t, double *out) {
    note_read(t);
    if (t->st->dev != &bk_cpu_device) { /* through a host copy */
        bk_tensor *h = bk_to_device(t->ctx, (bk_tensor *)t, &bk_cpu_device);
        if (h) bk_copy_out(h, out);
        else
            for (int64_t i = 0; i < t->numel; i++) out[i] = NAN;
        bk_release(h);
        return;
    }
    if (t->dtype == BK_F64 && bk_is_contiguous(t)) {
        if (t->numel) memcpy(out, (const double *)t->st->data + t->offset, (size_t)t->numel * sizeof(double));
        return;
    }
    if (t->dtype == BK_F32 && bk_is_contiguous(t)) {
        const float *p = bk_data_f32(t);
        for (int64_t i = 0; i < t->numel; i++) out[i] = p[i];
        return;
    }
    /* walk the index with a counter instead of dividing per element */
    int64_t idx[BK_MAXDIM] = {0};
    int64_t off = t->offset;
    for (int64_t i = 0; i < t->numel; i++) {
        out[i] = t->dtype == BK_F32 ? (double)((const float *)t->st->data)[off] : ((const double *)t->st->data)[off];
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += t->strides[d];
            if (++idx[d] < t->shape[d]) break;
            off -= t->strides[d] * t->shape[d];
            idx[d] = 0;
        }
    }
}

bool bk_same_shape(const bk_tensor *a, const bk_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *bk_dims_str(int n, const int64_t *s, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && k < len; i++) k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

const char *bk_shape_str(const bk_tensor *t, char *buf, size_t n) {
    return bk_dims_str(t->ndim, t->shape, buf, n);
}

int bk_broadcast_shapes(bk_ctx *ctx, int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                        int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t a = ia >= 0 ? sa[ia] : 1, b = ib >= 0 ? sb[ib] : 1;
        if (a != b && a != 1 && b != 1) {
            char x[128], y[128];
            bk_seterr(ctx, "shapes %s and %s cannot be broadcast together", bk_dims_str(na, sa, x, sizeof x),
                      bk_dims_str(nb, sb, y, sizeof y));
            return -1;
        }
        out[i] = a == 1 ? b : a;
    }
    *nout = n;
    return 0;
}

/* --------------------------------------------------------------- tape --- */

/* One recorded op.  A pointwise op on 1-element float64 tensors (the
 * scalar path: most ops of a scalar model) is a compact record in the
 * manner of a Stan vari: it keeps its input values and the adjoint of its
 * output, and names each input by the tape position that produced it
 * (rather than holding a reference), so recording, sweeping and resetting
 * it touches no tensor but its output and its leaves.  Every other op
 * keeps references to its inputs and, when it was given any, a copy of its
 * arguments (ctx->targs); the backward rule sees it as a bk_tape_entry. */
struct tape_rec {
    bk_tensor *out;             /* retained; out->mark = position + 1 */
    int16_t op;
    uint8_t scalar;             /* the compact scalar form */
    uint8_t has_adj;            /* during bk_backward: adj holds a contribution */
    uint8_t has_grad;           /* during bk_backward: out->grad holds one */
    int32_t nin;
    uint32_t args;              /* general: 1 + index into ctx->targs, 0: none */
    union {
        struct {                /* general: retained inputs */
            bk_tensor *inl[BK_MAXIN];
            bk_tensor **heap;   /* when nin > BK_MAXIN */
        } g;
        struct {                /* scalar path */
            bk_tensor *leaf[2]; /* retained input that is a leaf wanting a
                                   gradient, else NULL */
            double v[2];        /* input values */
            double o;           /* output value */
            uint32_t src[2];    /* 1 + tape position of the op that made the
                                   input, 0 when it is not a tape output */
        } s;
    } u;
    double adj;                 /* d loss / d out from scalar-path consumers
                                   (and the seed when out is the loss) */
};


static const bk_opargs zero_args;

static bool one_f64(const bk_tensor *t) {
    return t->numel == 1 && t->dtype == BK_F64 && t->st->dev == &bk_cpu_device;
}

static double one_value(const bk_tensor *t) { return ((const double *)t->st->data)[t->offset]; }

/* The index list is most of bk_opargs and almost always empty: copy only
 * the entries in use (the rest of dst->idx is left unspecified). */
static void copy_args(bk_opargs *dst, const bk_opargs *src) {
    memcpy(dst, src, offsetof(bk_opargs, idx));
    for (int i = 0; i < src->nidx; i++) dst->idx[i] = src->idx[i];
    dst->upper = src->upper;
    dst->trans = src->trans;
    dst->unit = src->unit;
    dst->n = src->n;
}

static bk_tensor **rec_in(tape_rec *r) { return r->nin <= BK_MAXIN ? r->u.g.inl : r->u.g.heap; }

static void rec_release(bk_ctx *ctx, tape_rec *r) {
    r->out->mark = 0;
    bk_release(r->out);
    if (r->scalar) {
        bk_release(r->u.s.leaf[0]);
        bk_release(r->u.s.leaf[1]);
        return;
    }
    bk_tensor **in = rec_in(r);
    for (int i = 0; i < r->nin; i++) bk_release(in[i]);
    if (in != r->u.g.inl) bk_free(ctx, in);
    if (r->args) {
        const bk_opargs *a = &ctx->targs[r->args - 1];
        for (int i = 0; i < a->nidx; i++)
            if (a->idx[i].kind == BK_IDX_TENSOR) bk_release(a->idx[i].idx);
    }
}

void bk_tape_reset(bk_ctx *ctx) {
    /* release from the end: outputs die before the inputs they came from */
    for (size_t i = ctx->ntape; i-- > 0;) rec_release(ctx, &ctx->tape[i]);
    ctx->ntape = 0;
    ctx->ntargs = 0;
}

size_t bk_tape_len(const bk_ctx *ctx) { return ctx->ntape; }

/* A new tape record for output `out` (not yet filled but for out and op),
 * or NULL when out of memory. */
static inline tape_rec *new_rec(bk_ctx *ctx, int op, bk_tensor *out) {
    if (ctx->ntape == ctx->captape) {
        size_t cap = ctx->captape ? ctx->captape * 2 : 256;
        if (cap > INT32_MAX) { /* positions are kept in bk_tensor.mark */
            bk_seterr(ctx, "the tape is full (%zu ops)", ctx->ntape);
            return NULL;
        }
        tape_rec *t = bk_realloc(ctx, ctx->tape, cap * sizeof *t);
        if (!t) return NULL;
        ctx->tape = t;
        ctx->captape = cap;
    }
    tape_rec *r = &ctx->tape[ctx->ntape++];
    r->out = bk_retain(out);
    out->mark = (int32_t)ctx->ntape;
    r->op = (int16_t)op;
    r->has_adj = r->has_grad = 0;
    r->adj = 0;
    return r;
}

/* Record a scalar-path op: inputs a (and b when nin is 2) are 1-element
 * float64 tensors with values x, y. */
static int record_scalar(bk_ctx *ctx, int op, int nin, bk_tensor *a, bk_tensor *b, double x, double y,
                         bk_tensor *out) {
    tape_rec *r = new_rec(ctx, op, out);
    if (!r) return -1;
    r->nin = nin;
    r->scalar = 1;
    r->args = 0;
    r->u.s.v[0] = x;
    r->u.s.v[1] = y;
    r->u.s.o = one_value(out);
    r->u.s.src[0] = (uint32_t)a->mark;
    r->u.s.leaf[0] = !a->mark && a->requires_grad ? bk_retain(a) : NULL;
    if (nin == 2) {
        r->u.s.src[1] = (uint32_t)b->mark;
        r->u.s.leaf[1] = !b->mark && b->requires_grad ? bk_retain(b) : NULL;
    } else {
        r->u.s.src[1] = 0;
        r->u.s.leaf[1] = NULL;
    }
    return 0;
}

int bk__record(bk_ctx *ctx, int op, int nin, bk_tensor **in, bk_tensor *out, const bk_opargs *args) {
    if (!args) args = &zero_args;
    bk_tensor **dst = NULL;
    if (nin > BK_MAXIN && !(dst = bk_malloc(ctx, (size_t)nin * sizeof *dst))) return -1;
    uint32_t ai = 0;
    if (args != &zero_args) {
        if (ctx->ntargs == ctx->captargs) {
            size_t cap = ctx->captargs ? ctx->captargs * 2 : 16;
            bk_opargs *t = bk_realloc(ctx, ctx->targs, cap * sizeof *t);
            if (!t) {
                bk_free(ctx, dst);
                return -1;
            }
            ctx->targs = t;
            ctx->captargs = cap;
        }
        bk_opargs *a = &ctx->targs[ctx->ntargs];
        copy_args(a, args);
        for (int i = 0; i < a->nidx; i++)
            if (a->idx[i].kind == BK_IDX_TENSOR) bk_retain(a->idx[i].idx);
        ai = (uint32_t)++ctx->ntargs;
    }
    tape_rec *r = new_rec(ctx, op, out);
    if (!r) {
        if (ai) { /* undo the argument copy */
            bk_opargs *a = &ctx->targs[--ctx->ntargs];
            for (int i = 0; i < a->nidx; i++)
                if (a->idx[i].kind == BK_IDX_TENSOR) bk_release(a->idx[i].idx);
        }
        bk_free(ctx, dst);
        return -1;
    }
    r->nin = nin;
    r->scalar = 0;
    r->args = ai;
    if (dst) r->u.g.heap = dst;
    else dst = r->u.g.inl;
    for (int i = 0; i < nin; i++) dst[i] = bk_retain(in[i]);
    return 0;
}

void bk_set_requires_grad(bk_tensor *t, bool on) { t->requires_grad = on; }

void bk_zero_grad(bk_tensor *t) {
    bk_release(t->grad);
    t->grad = NULL;
}

static int accumulate(bk_ctx *ctx, bk_tensor *t, bk_tensor *g);
static bk_tensor *to_dtype(bk_ctx *ctx, bk_tensor *t, bk_dtype dt);

/* t->grad += v for a 1-element t: in place when nothing else shares the
 * gradient tensor or its storage. */
static int add_one_grad(bk_ctx *ctx, bk_tensor *t, double v) {
    bk_tensor *g = t->grad;
    if (t->st->dev != &bk_cpu_device) { /* a contribution to an accelerator's tensor */
        bk_tensor *s = bk_full(ctx, BK_F64, t->ndim, t->shape, v);
        int rc = s ? accumulate(ctx, t, s) : -1;
        bk_release(s);
        return rc;
    }
    if (!g) {
        g = bk_empty(ctx, BK_F64, t->ndim, t->shape);
        if (!g) return -1;
        *(double *)g->st->data = v;
        t->grad = g;
        return 0;
    }
    if (g->refcount == 1 && g->st->refcount == 1 && one_f64(g)) {
        ((double *)g->st->data)[g->offset] += v;
        return 0;
    }
    bk_tensor *s = bk_scalar(ctx, v);
    int rc = s ? accumulate(ctx, t, s) : -1;
    bk_release(s);
    return rc;
}

/* The backward step of a scalar-path record, on doubles (the same values
 * as the op's tensor rule, without creating tensors): the gradient of its
 * output is its adjoint plus any tensor gradient a general consumer left. */
/* Pass gradient contribution v to input k of scalar record r: to the
 * adjoint of the record that made it, or to a leaf's gradient. */
static inline int add_scalar_grad(bk_ctx *ctx, const tape_rec *r, int k, double v) {
    uint32_t src = r->u.s.src[k];
    if (src) {
        tape_rec *p = &ctx->tape[src - 1];
        p->adj += v;
        p->has_adj = 1;
        return 0;
    }
    bk_tensor *leaf = r->u.s.leaf[k];
    if (!leaf) return 0;
    bk_tensor *lg = leaf->grad;
    /* in place when the leaf's gradient is its own 1-element tensor */
    if (lg && lg->refcount == 1 && lg->st == &lg->own && lg->own.refcount == 1 && lg->dtype == BK_F64) {
        lg->own_data[0] += v;
        return 0;
    }
    return add_one_grad(ctx, leaf, v);
}

static int backward_scalar(bk_ctx *ctx, tape_rec *r) {
    if (!(r->has_adj | r->has_grad)) return 0;
    double g = r->adj;
    if (r->has_grad) {
        g += one_value(r->out->grad);
        bk_zero_grad(r->out);
    }
    bk_dpair d = bk__pointwise_grad(r->op, r->u.s.v[0], r->u.s.v[1], r->u.s.o);
    if (add_scalar_grad(ctx, r, 0, g * d.d[0])) return -1;
    return r->nin == 2 ? add_scalar_grad(ctx, r, 1, g * d.d[1]) : 0;
}

static int device_backward(bk_ctx *ctx, const bk_device *dev, const bk_tape_entry *e, bk_tensor *gout,
                           bk_tensor **gin);

/* The backward step of a general record through the op's backward rule. */
static int backward_general(bk_ctx *ctx, tape_rec *r) {
    bk_tensor *out = r->out;
    /* contributions of scalar-path consumers join the tensor gradient */
    if (r->has_adj && add_one_grad(ctx, out, r->adj)) return -1;
    if (!out->grad) return 0;
    bk_tape_entry e;
    e.op = r->op;
    e.nin = r->nin;
    e.in = rec_in(r);
    e.out = out;
    copy_args(&e.args, r->args ? &ctx->targs[r->args - 1] : &zero_args);
    bk_tensor *gin[64];
    bk_tensor **g = e.nin <= 64 ? gin : bk_malloc(ctx, (size_t)e.nin * sizeof *g);
    if (!g) return -1;
    for (int k = 0; k < e.nin; k++) g[k] = NULL;
    const bk_device *dev = out->st->dev;
    int rc = (dev == &bk_cpu_device ? bk_optable[e.op].backward(ctx, &e, out->grad, g)
                                    : device_backward(ctx, dev, &e, out->grad, g)) ? -1 : 0;
    for (int k = 0; k < e.nin; k++) {
        if (g[k] && rc == 0 && e.in[k]->requires_grad) rc = accumulate(ctx, e.in[k], g[k]);
        bk_release(g[k]);
    }
    if (g != gin) bk_free(ctx, g);
    /* the output's gradient is no longer needed */
    bk_zero_grad(out);
    return rc;
}

/* t->grad += g summed down to t's shape, in t's dtype (as PyTorch: the
 * gradient of a float32 tensor is float32 whatever the consumer's dtype). */
static int accumulate(bk_ctx *ctx, bk_tensor *t, bk_tensor *g) {
    bk_tensor *r = g;
    if (!bk_same_shape(g, t)) {
        r = bk_sum_to(ctx, g, t->ndim, t->shape);
        if (!r) return -1;
    } else {
        bk_retain(r);
    }
    if (r->dtype != t->dtype) { /* (the dtype conversion runs on the host) */
        bk_tensor *h = r->st->dev != &bk_cpu_device ? bk_to_device(ctx, r, &bk_cpu_device) : bk_retain(r);
        bk_release(r);
        bk_tensor *c = h ? to_dtype(ctx, h, (bk_dtype)t->dtype) : NULL;
        bk_release(h);
        if (!c) return -1;
        r = c;
    }
    if (r->st->dev != t->st->dev) { /* a gradient lives where its tensor does */
        bk_tensor *m = bk_to_device(ctx, r, t->st->dev);
        bk_release(r);
        if (!(r = m)) return -1;
    }
    if (t->grad) {
        bk_tensor *s = bk_add(ctx, t->grad, r);
        bk_release(r);
        if (!s) return -1;
        bk_release(t->grad);
        t->grad = s;
    } else {
        t->grad = r;
    }
    if (t->mark > 0) ctx->tape[t->mark - 1].has_grad = 1; /* a tape output */
    return 0;
}

int bk_backward(bk_ctx *ctx, bk_tensor *loss) {
    if (loss->numel != 1) {
        bk_seterr(ctx, "backward needs a scalar loss, got %lld elements", (long long)loss->numel);
        return -1;
    }
    bool grad = bk_set_grad_enabled(ctx, false);
    ctx->rec_busy++;
    size_t n = ctx->ntape;
    /* Old gradients of leaves are dropped.  Tape outputs have none: only
     * this sweep gives them one, and it releases each after use (the scalar
     * records do not touch their output tensor at all). */
    for (size_t i = 0; i < n; i++) {
        tape_rec *r = &ctx->tape[i];
        r->has_adj = r->has_grad = 0;
        r->adj = 0;
        if (r->scalar) {
            if (r->u.s.leaf[0]) bk_zero_grad(r->u.s.leaf[0]);
            if (r->u.s.leaf[1]) bk_zero_grad(r->u.s.leaf[1]);
        } else {
            bk_tensor **in = rec_in(r);
            for (int k = 0; k < r->nin; k++)
                if (!in[k]->mark) bk_zero_grad(in[k]);
        }
    }
    int rc = 0;
    bk_zero_grad(loss);
    if (loss->mark > 0 && (size_t)loss->mark <= n && ctx->tape[loss->mark - 1].out == loss) {
        ctx->tape[loss->mark - 1].adj = 1.0; /* seed d loss / d loss = 1 */
        ctx->tape[loss->mark - 1].has_adj = 1;
    } else {
        bk_tensor *one = bk_full(ctx, (bk_dtype)loss->dtype, loss->ndim, loss->shape, 1.0);
        loss->grad = one && loss->st->dev != &bk_cpu_device ? bk_to_device(ctx, one, loss->st->dev) : one;
        if (loss->grad != one) bk_release(one);
        if (!loss->grad) rc = -1;
    }
    for (size_t i = n; rc == 0 && i-- > 0;) {
        tape_rec *r = &ctx->tape[i];
        rc = r->scalar ? backward_scalar(ctx, r) : backward_general(ctx, r);
    }
    if (rc) /* a failed sweep leaves gradients on tape outputs: drop them */
        for (size_t i = 0; i < n; i++) bk_zero_grad(ctx->tape[i].out);
    if (loss->mark == 0 && !loss->requires_grad) bk_zero_grad(loss);
    bk_set_grad_enabled(ctx, grad);
    ctx->rec_busy--;
    return rc;
}

/* ------------------------------------------------------------- devices --- */

void *bk__devstate(bk_ctx *ctx, const bk_device *dev) { return ctx->xdev == dev ? ctx->xstate : NULL; }

int bk__set_devstate(bk_ctx *ctx, const bk_device *dev, void *state) {
    if (ctx->xdev && ctx->xdev != dev) {
        bk_seterr(ctx, "a context holds one accelerator (%s already), not also %s", ctx->xdev->name, dev->name);
        return -1;
    }
    ctx->xdev = dev;
    ctx->xstate = state;
    return 0;
}

const char *bk_device_warnings(const bk_ctx *ctx) { return ctx->warn; }

void bk_set_default_device(bk_ctx *ctx, const bk_device *dev) { ctx->defdev = dev; }

const bk_device *bk_default_device(const bk_ctx *ctx) { return ctx->defdev ? ctx->defdev : &bk_cpu_device; }

const bk_device *bk_tensor_device(const bk_tensor *t) { return t->st->dev; }

bk_tensor *bk_empty_on(bk_ctx *ctx, const bk_device *dev, bk_dtype dt, int ndim, const int64_t *shape) {
    if (dev == &bk_cpu_device) return bk_empty(ctx, dt, ndim, shape);
    int64_t n;
    if (!check_shape(ctx, ndim, shape, &n)) return NULL;
    bk_tensor *t = tensor_struct(ctx);
    if (!t) return NULL;
    bk_storage *st = bk_malloc(ctx, sizeof *st);
    void *data = st ? dev->alloc(ctx, (size_t)n * dtype_size(dt)) : NULL;
    if (!data) {
        bk_free(ctx, st);
        tensor_recycle(ctx, t);
        return NULL;
    }
    st->refcount = 1;
    st->nbytes = st->cap = (size_t)n * dtype_size(dt);
    st->data = data;
    st->dev = dev;
    st->owner = NULL;
    t->st = st;
    set_header(t, dt, ndim, shape, n);
    return t;
}

/* A strided view on a device without a contiguous kernel, to the host:
 * the storage span it covers is copied, then gathered there. */
static bk_tensor *span_to_host(bk_ctx *ctx, bk_tensor *t) {
    int64_t lo = t->offset, hi = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t ext = t->shape[d] > 0 ? t->strides[d] * (t->shape[d] - 1) : 0;
        if (ext < 0) lo += ext;
        else hi += ext;
    }
    int64_t n = t->numel ? hi - lo + 1 : 0;
    size_t sz = dtype_size(t->dtype);
    bk_tensor *span = bk_empty(ctx, (bk_dtype)t->dtype, 1, &n);
    if (!span) return NULL;
    if (n && t->st->dev->copy(ctx, span->st->data, (const char *)t->st->data + (size_t)lo * sz, (size_t)n * sz, 1)) {
        bk_release(span);
        return NULL;
    }
    bk_tensor *v = bk_view(ctx, span, t->ndim, t->shape, t->strides, t->offset - lo);
    bk_tensor *r = v ? bk_detach(ctx, v) : NULL;
    bk_release(v);
    bk_release(span);
    return r;
}

bk_tensor *bk_to_device(bk_ctx *ctx, bk_tensor *t, const bk_device *dev) {
    if (!t) return NULL;
    const bk_device *src = t->st->dev;
    if (src == dev) return bk_retain(t);
    if (src != &bk_cpu_device && dev != &bk_cpu_device) {
        bk_seterr(ctx, "cannot copy from %s to %s directly", src->name, dev->name);
        return NULL;
    }
    /* a contiguous source on its own device first */
    bk_tensor *c;
    if (bk_is_contiguous(t)) c = bk_retain(t);
    else if (src == &bk_cpu_device) c = bk_detach(ctx, t);
    else if (src->supports_op(BK_OP_CONTIGUOUS)) c = src->kernel(BK_OP_CONTIGUOUS)(ctx, &t, &zero_args);
    else return span_to_host(ctx, t);
    if (!c) return NULL;
    bk_tensor *out = bk_empty_on(ctx, dev, (bk_dtype)c->dtype, c->ndim, c->shape);
    size_t sz = dtype_size(c->dtype), nb = (size_t)c->numel * sz;
    const char *from = (const char *)c->st->data + (size_t)c->offset * sz;
    int rc = !out ? -1
             : dev == &bk_cpu_device ? src->copy(ctx, out->st->data, from, nb, 1)
                                     : dev->copy(ctx, out->st->data, from, nb, 0);
    bk_release(c);
    if (rc) {
        bk_release(out);
        return NULL;
    }
    return out;
}

/* Notes, once per op and direction, that op ran on the CPU for dev. */
static void note_fallback(bk_ctx *ctx, const bk_device *dev, int op, int backward) {
    int bit = backward ? 2 : 1;
    if (ctx->warned[op] & bit) return;
    ctx->warned[op] |= (uint8_t)bit;
    size_t n = strlen(ctx->warn);
    if (n + 1 < sizeof ctx->warn)
        snprintf(ctx->warn + n, sizeof ctx->warn - n, "%s has no kernel for %s%s: it runs on the CPU (host copies)\n",
                 dev->name, bk_optable[op].name, backward ? " (backward)" : "");
}

/* Host copies of the index tensors in args (into hargs; release with
 * release_idx). */
static int host_args(bk_ctx *ctx, const bk_opargs *args, bk_opargs *h) {
    *h = *args;
    for (int i = 0; i < args->nidx; i++) {
        if (args->idx[i].kind != BK_IDX_TENSOR) continue;
        h->idx[i].idx = bk_to_device(ctx, args->idx[i].idx, &bk_cpu_device);
        if (!h->idx[i].idx) {
            for (int k = 0; k < i; k++)
                if (h->idx[k].kind == BK_IDX_TENSOR) bk_release(h->idx[k].idx);
            return -1;
        }
    }
    return 0;
}

static void release_idx(bk_opargs *h) {
    for (int i = 0; i < h->nidx; i++)
        if (h->idx[i].kind == BK_IDX_TENSOR) bk_release(h->idx[i].idx);
}

/* Host copies of n tensors (NULL entries stay NULL), keeping requires_grad. */
static int host_copies(bk_ctx *ctx, int n, bk_tensor **in, bk_tensor **h) {
    for (int i = 0; i < n; i++) {
        h[i] = in[i] ? bk_to_device(ctx, in[i], &bk_cpu_device) : NULL;
        if (in[i] && !h[i]) {
            for (int k = 0; k < i; k++) bk_release(h[k]);
            return -1;
        }
        if (h[i] && h[i] != in[i]) h[i]->requires_grad = in[i]->requires_grad;
    }
    return 0;
}

static bk_tensor *run_forward(bk_ctx *ctx, int op, int nin, bk_tensor **in, const bk_opargs *args);

/* An op whose inputs are on the accelerator dev (0-d CPU inputs allowed). */
static bk_tensor *device_forward(bk_ctx *ctx, const bk_device *dev, int op, int nin, bk_tensor **in,
                                 const bk_opargs *args) {
    bk_tensor *loc[64], **conv = nin <= 64 ? loc : bk_malloc(ctx, (size_t)nin * sizeof *conv);
    bk_tensor *out = NULL;
    if (!conv) return NULL;
    if (dev->supports_op(op)) {
        /* elementwise kernels take 0-d CPU constants by value; the other
         * kernels get them copied over */
        bool by_value = bk__pointwise_arity[op] > 0 || op == BK_OP_WHERE;
        int i = 0;
        for (; i < nin; i++) {
            conv[i] = by_value ? bk_retain(in[i]) : bk_to_device(ctx, in[i], dev);
            if (!conv[i]) break;
        }
        if (i == nin) out = dev->kernel(op)(ctx, conv, args);
        for (int k = 0; k < i; k++) bk_release(conv[k]);
    } else {
        bk_opargs h;
        note_fallback(ctx, dev, op, 0);
        if (host_copies(ctx, nin, in, conv) == 0) {
            if (host_args(ctx, args, &h) == 0) {
                bk_tensor *r = run_forward(ctx, op, nin, conv, &h);
                out = bk_to_device(ctx, r, dev);
                bk_release(r);
                release_idx(&h);
            }
            for (int k = 0; k < nin; k++) bk_release(conv[k]);
        }
    }
    if (conv != loc) bk_free(ctx, conv);
    return out;
}

/* The device an op runs on: that of its non-CPU inputs, which must agree;
 * CPU inputs beside them must be 0-d.  NULL with an error on a mix. */
static const bk_device *op_device(bk_ctx *ctx, int op, int nin, bk_tensor **in) {
    const bk_device *dev = &bk_cpu_device;
    for (int i = 0; i < nin; i++)
        if (in[i]->st->dev != &bk_cpu_device) {
            if (dev != &bk_cpu_device && in[i]->st->dev != dev) {
                bk_seterr(ctx, "%s: inputs are on different devices (%s and %s)", bk_optable[op].name, dev->name,
                          in[i]->st->dev->name);
                return NULL;
            }
            dev = in[i]->st->dev;
        }
    if (dev == &bk_cpu_device) return dev;
    for (int i = 0; i < nin; i++)
        if (in[i]->st->dev == &bk_cpu_device && in[i]->ndim != 0) {
            char b[128];
            bk_seterr(ctx, "%s: inputs are on different devices (%s and cpu: input %d of shape %s); "
                      "move them to one device with to()", bk_optable[op].name, dev->name, i + 1,
                      bk_shape_str(in[i], b, sizeof b));
            return NULL;
        }
    return dev;
}

/* The backward step of a record whose output lives on an accelerator:
 * the device's rule, or the CPU rule on host copies. */
static int device_backward(bk_ctx *ctx, const bk_device *dev, const bk_tape_entry *e, bk_tensor *gout,
                           bk_tensor **gin) {
    bk_backward_fn fn = dev->backward ? dev->backward(e->op) : NULL;
    if (fn) return fn(ctx, e, gout, gin);
    note_fallback(ctx, dev, e->op, 1);
    bk_tensor *loc[64], **h = e->nin + 2 <= 64 ? loc : bk_malloc(ctx, (size_t)(e->nin + 2) * sizeof *h);
    if (!h) return -1;
    bk_tape_entry he = *e;
    bk_tensor *tail[2] = {e->out, gout};
    int rc = -1;
    if (host_copies(ctx, e->nin, e->in, h) == 0) {
        if (host_copies(ctx, 2, tail, h + e->nin) == 0) {
            if (host_args(ctx, &e->args, &he.args) == 0) {
                he.in = h;
                he.out = h[e->nin];
                rc = bk_optable[e->op].backward(ctx, &he, h[e->nin + 1], gin) ? -1 : 0;
                /* the gradients go back to the device */
                for (int k = 0; k < e->nin; k++) {
                    if (!gin[k]) continue;
                    bk_tensor *d = rc == 0 ? bk_to_device(ctx, gin[k], dev) : NULL;
                    if (!d) rc = -1;
                    bk_release(gin[k]);
                    gin[k] = d;
                }
                release_idx(&he.args);
            }
            bk_release(h[e->nin]);
            bk_release(h[e->nin + 1]);
        }
        for (int k = 0; k < e->nin; k++) bk_release(h[k]);
    }
    if (h != loc) bk_free(ctx, h);
    return rc;
}

/* ---------------------------------------------------------------- apply --- */

static bk_tensor *to_f64(bk_ctx *ctx, bk_tensor *t) {
    bk_tensor *r = bk_empty(ctx, BK_F64, t->ndim, t->shape);
    if (r) bk_copy_out(t, bk_data(r));
    return r;
}

static bk_tensor *to_f32(bk_ctx *ctx, bk_tensor *t) {
    bk_tensor *r = bk_empty(ctx, BK_F32, t->ndim, t->shape);
    if (!r) return NULL;
    float *p = bk_data_f32(r);
    if (bk_is_contiguous(t)) {
        if (t->dtype == BK_F32) {
            if (t->numel) memcpy(p, bk_data_f32(t), (size_t)t->numel * sizeof(float));
        } else {
            const double *q = bk_data(t);
            for (int64_t i = 0; i < t->numel; i++) p[i] = (float)q[i];
        }
        return r;
    }
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)bk_get(t, i);
    return r;
}

static bk_tensor *to_dtype(bk_ctx *ctx, bk_tensor *t, bk_dtype dt) {
    if (t->dtype == (int8_t)dt) return bk_retain(t);
    return dt == BK_F32 ? to_f32(ctx, t) : to_f64(ctx, t);
}

bk_dtype bk_promote(int n, bk_tensor *const *in) {
    bool dim64 = false, dim32 = false, all32 = n > 0;
    for (int i = 0; i < n; i++) {
        bool f32 = in[i]->dtype == BK_F32;
        if (!f32) all32 = false;
        if (in[i]->ndim > 0) {
            if (f32) dim32 = true;
            else dim64 = true;
        }
    }
    if (dim64) return BK_F64;
    if (dim32) return BK_F32;
    return all32 ? BK_F32 : BK_F64;
}

/* The ops whose kernels take float32 inputs as they are (every input
 * converted to the promoted dtype first); the others run on float64
 * copies.  Reductions other than sum and mean read float32 into a double
 * buffer inside the kernel but return float32. */
static const bool NATIVE_F32[BK_OP_COUNT] = {
    [BK_OP_ADD] = 1, [BK_OP_SUB] = 1, [BK_OP_MUL] = 1, [BK_OP_DIV] = 1, [BK_OP_POW] = 1,
    [BK_OP_MAXIMUM] = 1, [BK_OP_MINIMUM] = 1, [BK_OP_LT] = 1, [BK_OP_LE] = 1, [BK_OP_GT] = 1,
    [BK_OP_GE] = 1, [BK_OP_EQ] = 1, [BK_OP_NE] = 1, [BK_OP_WHERE] = 1,
    [BK_OP_NEG] = 1, [BK_OP_ABS] = 1, [BK_OP_EXP] = 1, [BK_OP_LOG] = 1, [BK_OP_LOG1P] = 1,
    [BK_OP_EXPM1] = 1, [BK_OP_SQRT] = 1, [BK_OP_SQUARE] = 1, [BK_OP_SIGMOID] = 1,
    [BK_OP_LOGIT] = 1, [BK_OP_SOFTPLUS] = 1, [BK_OP_LOG_SIGMOID] = 1, [BK_OP_TANH] = 1,
    [BK_OP_RELU] = 1, [BK_OP_ELU] = 1, [BK_OP_LEAKY_RELU] = 1, [BK_OP_SIN] = 1, [BK_OP_COS] = 1,
    [BK_OP_LGAMMA] = 1, [BK_OP_DIGAMMA] = 1, [BK_OP_TRIGAMMA] = 1, [BK_OP_ERF] = 1,
    [BK_OP_ERFC] = 1, [BK_OP_FLOOR] = 1, [BK_OP_NOT] = 1,
    [BK_OP_SUM] = 1, [BK_OP_MEAN] = 1, [BK_OP_MAX] = 1, [BK_OP_MIN] = 1, [BK_OP_LOGSUMEXP] = 1,
    [BK_OP_PROD] = 1, [BK_OP_MATMUL] = 1, [BK_OP_RESHAPE] = 1, [BK_OP_TRANSPOSE] = 1,
    [BK_OP_EXPAND] = 1, [BK_OP_INDEX] = 1, [BK_OP_CONTIGUOUS] = 1, [BK_OP_CAST] = 1,
    [BK_OP_FUSED] = 1,
};

bool bk_native_f32(int op) { return op >= 0 && op < BK_OP_COUNT && NATIVE_F32[op]; }

/* Runs the op's kernel on inputs of one dtype: the promoted dtype for the
 * native-float32 ops (mixed inputs are converted to it; WHERE's condition
 * and the index of index_select / gather do not take part in the
 * promotion), float64 for the others, whose
 * result is converted back when the promoted dtype is float32.  CAST and
 * MATMUL see their inputs as they are. */
static bk_tensor *run_forward(bk_ctx *ctx, int op, int nin, bk_tensor **in, const bk_opargs *args) {
    bool mixed = false;
    for (int i = 0; i < nin; i++)
        if (in[i]->dtype != in[0]->dtype) mixed = true;
    const bk_device *dev = op_device(ctx, op, nin, in);
    if (!dev) return NULL;
    if (dev != &bk_cpu_device) return device_forward(ctx, dev, op, nin, in, args);
    bk_forward_fn fw = bk_cpu_device.kernel(op);
    /* CAST and MATMUL (sgemm) handle float32 themselves */
    if (op == BK_OP_CAST || op == BK_OP_MATMUL) return fw(ctx, in, args);
    /* index inputs take no part in the promotion */
    int skip = op == BK_OP_WHERE ? 1 : 0;
    int np = op == BK_OP_INDEX_SELECT || op == BK_OP_GATHER ? 1 : nin - skip;
    bk_dtype dt = bk_promote(np, in + skip);
    bool native = NATIVE_F32[op];
    if (!mixed && (dt == BK_F64 || native) && in[0]->dtype == (int8_t)dt) return fw(ctx, in, args);
    bk_dtype kdt = native ? dt : BK_F64; /* the dtype the kernel computes in */
    bk_tensor *conv[64];
    if (nin > 64) {
        bk_seterr(ctx, "%s: too many inputs", bk_optable[op].name);
        return NULL;
    }
    for (int i = 0; i < nin; i++) {
        conv[i] = to_dtype(ctx, in[i], kdt);
        if (!conv[i]) {
            for (int k = 0; k < i; k++) bk_release(conv[k]);
            return NULL;
        }
    }
    bk_tensor *r = fw(ctx, conv, args);
    for (int i = 0; i < nin; i++) bk_release(conv[i]);
    if (!r || r->dtype == (int8_t)dt) return r;
    bk_tensor *o = to_dtype(ctx, r, dt);
    bk_release(r);
    return o;
}

/* A pointwise op on 1-element float64 CPU tensors (a and b; b == a for a
 * unary op), without the kernel's broadcasting machinery: the common case
 * of scalar models.  The result is recorded as a compact scalar record. */
static bk_tensor *apply_scalar(bk_ctx *ctx, int op, int nin, bk_tensor *a, bk_tensor *b) {
    double x = one_value(a), y = nin == 2 ? one_value(b) : 0;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bk_tensor *out = tensor_struct(ctx);
    if (!out) return NULL;
    out->st = storage_new(ctx, out, sizeof(double)); /* embedded: cannot fail */
    out->dtype = BK_F64;
    out->ndim = (int8_t)nd;
    out->numel = 1;
    for (int i = 0; i < nd; i++) out->shape[i] = out->strides[i] = 1;
    *(double *)out->st->data = bk__pointwise(op, x, y);
    if (!((a->requires_grad || b->requires_grad) && ctx->grad && bk_optable[op].differentiable)) return out;
    out->requires_grad = true;
    if (record_scalar(ctx, op, nin, a, b, x, y, out)) {
        bk_release(out);
        return NULL;
    }
    return out;
}

static bk_tensor *apply_op(bk_ctx *ctx, int op, int nin, bk_tensor **in, const bk_opargs *args);

/* Every op goes through here; while a recording runs, the model's own ops
 * (not those the kernels and rules make inside) are noted in the program. */
bk_tensor *bk_apply(bk_ctx *ctx, int op, int nin, bk_tensor **in, const bk_opargs *args) {
    if (!ctx->rec || ctx->rec_busy) return apply_op(ctx, op, nin, in, args);
    ctx->rec_busy++;
    bk_tensor *out = apply_op(ctx, op, nin, in, args);
    if (out) bk__prog_note(ctx, ctx->rec, op, nin, in, args, out);
    ctx->rec_busy--;
    return out;
}

static bk_tensor *apply_op(bk_ctx *ctx, int op, int nin, bk_tensor **in, const bk_opargs *args) {
    if (op >= 0 && op < BK_OP_COUNT && nin >= 1 && nin == bk__pointwise_arity[op]) {
        bk_tensor *a = in[0], *b = nin == 2 ? in[1] : a;
        if (!a || !b) return NULL; /* an earlier op failed; its error stands */
        if (one_f64(a) && one_f64(b)) return apply_scalar(ctx, op, nin, a, b);
    }
    if (op < 0 || op >= BK_OP_COUNT) {
        bk_seterr(ctx, "unknown op %d", op);
        return NULL;
    }
    const bk_opinfo *info = &bk_optable[op];
    if (info->nin >= 0 && nin != info->nin) {
        bk_seterr(ctx, "%s takes %d inputs, got %d", info->name, info->nin, nin);
        return NULL;
    }
    if (nin < 1) {
        bk_seterr(ctx, "%s needs at least one input", info->name);
        return NULL;
    }
    bool need = false;
    for (int i = 0; i < nin; i++) {
        if (!in[i]) return NULL; /* an earlier op failed; its error stands */
        if (in[i]->requires_grad) need = true;
    }
    if (!args) {
        args = &zero_args;
    } else if (args->nidx < 0 || args->nidx > BK_MAXDIM) {
        bk_seterr(ctx, "%s: %d indices (at most %d)", info->name, args->nidx, BK_MAXDIM);
        return NULL;
    }
    bk_tensor *out = run_forward(ctx, op, nin, in, args);
    if (!out) return NULL;
    if (!(need && ctx->grad && info->differentiable)) return out;
    /* a recorded output must be a distinct object from its inputs */
    for (int i = 0; i < nin; i++)
        if (out == in[i]) {
            bk_tensor *v = bk_view(ctx, out, out->ndim, out->shape, out->strides, out->offset);
            bk_release(out);
            if (!v) return NULL;
            out = v;
            break;
        }
    out->requires_grad = true;
    if (bk__record(ctx, op, nin, in, out, args)) {
        bk_release(out);
        return NULL;
    }
    return out;
}

/* -------------------------------------------------------- op wrappers --- */

static bk_tensor *apply1(bk_ctx *ctx, int op, bk_tensor *a, const bk_opargs *args) {
    return bk_apply(ctx, op, 1, &a, args);
}

static bk_tensor *apply2(bk_ctx *ctx, int op, bk_tensor *a, bk_tensor *b, const bk_opargs *args) {
    bk_tensor *in[2] = {a, b};
    return bk_apply(ctx, op, 2, in, args);
}

bk_tensor *bk_add(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_ADD, a, b, NULL); }
bk_tensor *bk_sub(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_SUB, a, b, NULL); }
bk_tensor *bk_mul(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_MUL, a, b, NULL); }
bk_tensor *bk_div(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_DIV, a, b, NULL); }
bk_tensor *bk_pow(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_POW, a, b, NULL); }
bk_tensor *bk_binop(bk_ctx *c, int op, bk_tensor *a, bk_tensor *b) { return apply2(c, op, a, b, NULL); }
bk_tensor *bk_unop(bk_ctx *c, int op, bk_tensor *a) { return apply1(c, op, a, NULL); }
bk_tensor *bk_matmul(bk_ctx *c, bk_tensor *a, bk_tensor *b) { return apply2(c, BK_OP_MATMUL, a, b, NULL); }

bk_tensor *bk_where(bk_ctx *c, bk_tensor *cond, bk_tensor *a, bk_tensor *b) {
    bk_tensor *in[3] = {cond, a, b};
    return bk_apply(c, BK_OP_WHERE, 3, in, NULL);
}

static bk_tensor *with_scalar(bk_ctx *c, int op, bk_tensor *a, double s) {
    if (!a) return NULL;
    bk_tensor *k = bk_scalar(c, s);
    if (!k) return NULL;
    bk_tensor *r = apply2(c, op, a, k, NULL);
    bk_release(k);
    return r;
}

bk_tensor *bk_add_s(bk_ctx *c, bk_tensor *a, double s) { return with_scalar(c, BK_OP_ADD, a, s); }
bk_tensor *bk_mul_s(bk_ctx *c, bk_tensor *a, double s) { return with_scalar(c, BK_OP_MUL, a, s); }

bk_tensor *bk_reduce(bk_ctx *c, int op, bk_tensor *a, int64_t axis, bool keepdim) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    args.keepdim = keepdim;
    return apply1(c, op, a, &args);
}

/* The sum of a 0-d double tensor is that tensor (a site's log density is
 * often one already). */
bk_tensor *bk_sum_all(bk_ctx *c, bk_tensor *a) {
    if (a && a->ndim == 0 && a->dtype == BK_F64) return bk_retain(a);
    return bk_reduce(c, BK_OP_SUM, a, BK_ALL_AXES, false);
}

bk_tensor *bk_sum_to(bk_ctx *c, bk_tensor *a, int ndim, const int64_t *shape) {
    if (!a) return NULL;
    if (a->ndim < ndim) {
        char x[128], y[128];
        bk_seterr(c, "cannot sum shape %s down to %s", bk_shape_str(a, x, sizeof x), bk_dims_str(ndim, shape, y, sizeof y));
        return NULL;
    }
    bk_tensor *cur = bk_retain(a);
    /* leading extra dims */
    while (cur && cur->ndim > ndim) {
        bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, 0, false);
        bk_release(cur);
        cur = r;
    }
    for (int d = 0; cur && d < ndim; d++) {
        if (shape[d] == 1 && cur->shape[d] != 1) {
            bk_tensor *r = bk_reduce(c, BK_OP_SUM, cur, d, true);
            bk_release(cur);
            cur = r;
        } else if (shape[d] != cur->shape[d]) {
            char x[128], y[128];
            bk_seterr(c, "cannot sum shape %s down to %s", bk_shape_str(cur, x, sizeof x), bk_dims_str(ndim, shape, y, sizeof y));
            bk_release(cur);
            return NULL;
        }
    }
    return cur;
}

bk_tensor *bk_transpose(bk_ctx *c, bk_tensor *a, int64_t d0, int64_t d1) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = d0;
    args.axis2 = d1;
    return apply1(c, BK_OP_TRANSPOSE, a, &args);
}

static bk_tensor *shaped(bk_ctx *c, int op, bk_tensor *a, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > BK_MAXDIM) {
        bk_seterr(c, "%s: at most %d dimensions", bk_optable[op].name, BK_MAXDIM);
        return NULL;
    }
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.ndim = ndim;
    for (int i = 0; i < ndim; i++) args.shape[i] = shape[i];
    return apply1(c, op, a, &args);
}

/* A reshape to the shape a contiguous tensor already has is the tensor
 * itself: no view, no tape record (its gradient passes through unchanged). */
static bool same_shape_contiguous(const bk_tensor *a, int ndim, const int64_t *shape) {
    if (!a || a->ndim != ndim || !bk_is_contiguous(a)) return false;
    for (int i = 0; i < ndim; i++)
        if (a->shape[i] != shape[i]) return false;
    return true;
}

bk_tensor *bk_reshape(bk_ctx *c, bk_tensor *a, int ndim, const int64_t *shape) {
    if (same_shape_contiguous(a, ndim, shape)) return bk_retain(a);
    return shaped(c, BK_OP_RESHAPE, a, ndim, shape);
}
bk_tensor *bk_expand(bk_ctx *c, bk_tensor *a, int ndim, const int64_t *shape) { return shaped(c, BK_OP_EXPAND, a, ndim, shape); }

static bk_tensor *variadic(bk_ctx *c, int op, int n, bk_tensor **ts, int64_t axis) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    args.n = n;
    return bk_apply(c, op, n, ts, &args);
}

bk_tensor *bk_concat(bk_ctx *c, int n, bk_tensor **ts, int64_t axis) { return variadic(c, BK_OP_CONCAT, n, ts, axis); }
bk_tensor *bk_stack(bk_ctx *c, int n, bk_tensor **ts, int64_t axis) { return variadic(c, BK_OP_STACK, n, ts, axis); }

bk_tensor *bk_index(bk_ctx *c, bk_tensor *a, int nidx, const bk_idx *idx) {
    if (nidx < 0 || nidx > BK_MAXDIM) {
        bk_seterr(c, "index: too many indices");
        return NULL;
    }
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.nidx = nidx;
    for (int i = 0; i < nidx; i++) args.idx[i] = idx[i];
    return apply1(c, BK_OP_INDEX, a, &args);
}

bk_tensor *bk_index_put(bk_ctx *c, bk_tensor *a, int nidx, const bk_idx *idx, bk_tensor *v) {
    if (nidx < 0 || nidx > BK_MAXDIM) {
        bk_seterr(c, "index_put: too many indices");
        return NULL;
    }
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.nidx = nidx;
    for (int i = 0; i < nidx; i++) args.idx[i] = idx[i];
    return apply2(c, BK_OP_INDEX_PUT, a, v, &args);
}

bk_tensor *bk_index_select(bk_ctx *c, bk_tensor *a, int64_t axis, bk_tensor *idx) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    return apply2(c, BK_OP_INDEX_SELECT, a, idx, &args);
}

bk_tensor *bk_gather(bk_ctx *c, bk_tensor *a, int64_t axis, bk_tensor *idx) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.axis = axis;
    return apply2(c, BK_OP_GATHER, a, idx, &args);
}

bk_tensor *bk_cholesky(bk_ctx *c, bk_tensor *a) { return apply1(c, BK_OP_CHOLESKY, a, NULL); }

bk_tensor *bk_solve_triangular(bk_ctx *c, bk_tensor *a, bk_tensor *b, bool upper) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.upper = upper;
    return apply2(c, BK_OP_SOLVE_TRIANGULAR, a, b, &args);
}

bk_tensor *bk_logdet(bk_ctx *c, bk_tensor *a) { return apply1(c, BK_OP_LOGDET, a, NULL); }
bk_tensor *bk_inverse(bk_ctx *c, bk_tensor *a) { return apply1(c, BK_OP_INVERSE, a, NULL); }
bk_tensor *bk_contiguous(bk_ctx *c, bk_tensor *a) { return apply1(c, BK_OP_CONTIGUOUS, a, NULL); }

bk_tensor *bk_cast(bk_ctx *c, bk_tensor *a, bk_dtype dt) {
    bk_opargs args;
    memset(&args, 0, sizeof args);
    args.n = dt;
    return apply1(c, BK_OP_CAST, a, &args);
}

bk_tensor *bk_squeeze(bk_ctx *c, bk_tensor *a, int64_t axis) {
    if (!a) return NULL;
    int64_t ax = axis < 0 ? axis + a->ndim : axis;
    if (ax < 0 || ax >= a->ndim || a->shape[ax] != 1) {
        bk_seterr(c, "squeeze: axis %lld is not a dimension of size 1", (long long)axis);
        return NULL;
    }
    int64_t shape[BK_MAXDIM];
    int n = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != ax) shape[n++] = a->shape[i];
    return bk_reshape(c, a, n, shape);
}

bk_tensor *bk_unsqueeze(bk_ctx *c, bk_tensor *a, int64_t axis) {
    if (!a) return NULL;
    int64_t ax = axis < 0 ? axis + a->ndim + 1 : axis;
    if (ax < 0 || ax > a->ndim || a->ndim >= BK_MAXDIM) {
        bk_seterr(c, "unsqueeze: axis %lld is out of range", (long long)axis);
        return NULL;
    }
    int64_t shape[BK_MAXDIM];
    int n = 0;
    for (int i = 0; i <= a->ndim; i++) {
        if (i == ax) shape[n++] = 1;
        if (i < a->ndim) shape[n++] = a->shape[i];
    }
    return bk_reshape(c, a, n, shape);
}

bk_tensor *bk_fused_apply(bk_ctx *c, const bk_fused *f, bk_tensor **in) {
    bk_opargs args;
    /* the index list (most of bk_opargs) is unused: nidx = 0 */
    memset(&args, 0, offsetof(bk_opargs, idx));
    args.upper = args.trans = args.unit = 0;
    args.fused = f;
    args.n = f->nin;
    return bk_apply(c, BK_OP_FUSED, f->nin, in, &args);
}

bk_tensor *bk_detach(bk_ctx *c, bk_tensor *a) {
    if (!a) return NULL;
    if (a->st->dev != &bk_cpu_device) { /* a copy on a's own device, through the host */
        bk_tensor *h = bk_to_device(c, a, &bk_cpu_device);
        bk_tensor *r = h ? bk_to_device(c, h, a->st->dev) : NULL;
        bk_release(h);
        return r;
    }
    bk_tensor *r = bk_empty(c, (bk_dtype)a->dtype, a->ndim, a->shape);
    if (!r) return NULL;
    if (a->dtype == BK_F64) {
        bk_copy_out(a, bk_data(r));
    } else if (bk_is_contiguous(a)) {
        if (a->numel) memcpy(bk_data_f32(r), bk_data_f32(a), (size_t)a->numel * sizeof(float));
    } else {
        for (int64_t i = 0; i < a->numel; i++) ((float *)r->st->data)[i] = (float)bk_get(a, i);
    }
    return r;
}
