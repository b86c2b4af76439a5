/* ops_reduce.c - reductions (sum, mean, max, min, logsumexp, prod) along
 * one axis or all of them, and the scans along an axis (cumsum, softmax,
 * log_softmax), with their backward rules.
 *
 * Every kernel views its (contiguous copy of the) input as [outer, n,
 * inner], where n is the reduced axis; reducing all axes is outer = inner =
 * 1, n = numel.  Backward rules compute first-order gradients directly on
 * that layout. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops_impl.h"

typedef struct layout {
    int64_t outer, n, inner;
    int axis;          /* -1 when all axes */
    int ondim;         /* output shape */
    int64_t oshape[BK_MAXDIM];
    int kdim;          /* keepdim shape (for broadcasting gradients back) */
    int64_t kshape[BK_MAXDIM];
} layout;

static int get_layout(bk_ctx *ctx, const char *name, const bk_tensor *x, int64_t axis, int keepdim,
                      bool scan, layout *L) {
    memset(L, 0, sizeof *L);
    if (axis == BK_ALL_AXES && !scan) {
        L->outer = 1;
        L->n = x->numel;
        L->inner = 1;
        L->axis = -1;
        L->ondim = keepdim ? x->ndim : 0;
        for (int i = 0; i < x->ndim; i++) L->oshape[i] = 1;
        L->kdim = x->ndim;
        for (int i = 0; i < x->ndim; i++) L->kshape[i] = 1;
        return 0;
    }
    int64_t a = axis < 0 ? axis + x->ndim : axis;
    if (x->ndim == 0 && (a == 0 || a == -1)) {
        /* a scalar reduces to itself */
        L->outer = L->n = L->inner = 1;
        L->axis = -1;
        return 0;
    }
    if (a < 0 || a >= x->ndim) {
        bk_seterr(ctx, "%s: axis %lld is out of range for a tensor of %d dimension%s", name,
                  (long long)axis, x->ndim, x->ndim == 1 ? "" : "s");
        return -1;
    }
    L->axis = (int)a;
    L->outer = 1;
    L->inner = 1;
    for (int i = 0; i < a; i++) L->outer *= x->shape[i];
    for (int i = (int)a + 1; i < x->ndim; i++) L->inner *= x->shape[i];
    L->n = x->shape[a];
    L->kdim = x->ndim;
    for (int i = 0; i < x->ndim; i++) L->kshape[i] = i == a ? 1 : x->shape[i];
    if (scan) {
        L->ondim = x->ndim;
        memcpy(L->oshape, x->shape, sizeof L->oshape);
    } else if (keepdim) {
        L->ondim = x->ndim;
        memcpy(L->oshape, L->kshape, sizeof L->oshape);
    } else {
        L->ondim = 0;
        for (int i = 0; i < x->ndim; i++)
            if (i != a) L->oshape[L->ondim++] = x->shape[i];
    }
    return 0;
}

/* The elements of x in row-major order: x's own data when it is already
 * contiguous (the common case: no copy), else a copy in *owned that the
 * caller frees with bk_free.  NULL when out of memory. */
static const double *dense(bk_ctx *ctx, const bk_tensor *x, double **owned) {
    *owned = NULL;
    if (x->dtype == BK_F64 && bk_is_contiguous(x)) return bk_data(x);
    double *p = bk_malloc(ctx, (size_t)(x->numel ? x->numel : 1) * sizeof *p);
    if (p) bk_copy_out(x, p);
    *owned = p;
    return p;
}

#define AT(i, k, j) ((i) * L.n * L.inner + (k) * L.inner + (j))

/* The sum of n elements q[k * inc], in double with four partial sums (so
 * the adds do not wait on each other, and round a little less). */
#define SUM_ROW(T, q, n, inc, acc)                                                          \
    do {                                                                                    \
        const T *q_ = (q);                                                                  \
        double a4[4] = {0, 0, 0, 0};                                                        \
        int64_t k_ = 0;                                                                     \
        if ((inc) == 1) {                                                                   \
            for (; k_ + 4 <= (n); k_ += 4)                                                  \
                for (int u = 0; u < 4; u++) a4[u] += (double)q_[k_ + u];                    \
            for (; k_ < (n); k_++) a4[0] += (double)q_[k_];                                 \
        } else {                                                                            \
            for (; k_ < (n); k_++) a4[0] += (double)q_[k_ * (inc)];                         \
        }                                                                                   \
        (acc) = (a4[0] + a4[1]) + (a4[2] + a4[3]);                                          \
    } while (0)

/* Sum and mean of a contiguous float32 tensor, read as float and
 * accumulated in double. */
static void sum_f32(bk_ctx *ctx, const layout *L, int op, const float *p, float *o) {
    bool rows = L->inner > 1 && L->n > 1;
    double *acc = rows ? bk_malloc(ctx, (size_t)L->inner * sizeof *acc) : NULL;
    if (acc) { /* down the rows (a bias gradient): row by row, in order */
        for (int64_t i = 0; i < L->outer; i++) {
            const float *q = p + i * L->n * L->inner;
            for (int64_t j = 0; j < L->inner; j++) acc[j] = q[j];
            for (int64_t k = 1; k < L->n; k++)
                for (int64_t j = 0; j < L->inner; j++) acc[j] += q[k * L->inner + j];
            for (int64_t j = 0; j < L->inner; j++)
                o[i * L->inner + j] = (float)(op == BK_OP_MEAN ? acc[j] / (double)L->n : acc[j]);
        }
        bk_free(ctx, acc);
        return;
    }
    if (rows) bk_clearerr(ctx); /* out of memory for acc: the strided loop below does it */
    for (int64_t i = 0; i < L->outer; i++)
        for (int64_t j = 0; j < L->inner; j++) {
            double acc;
            SUM_ROW(float, p + i * L->n * L->inner + j, L->n, L->inner, acc);
            if (op == BK_OP_MEAN) acc = L->n ? acc / (double)L->n : NAN;
            o[i * L->inner + j] = (float)acc;
        }
}

/* The reductions compute in double; a float32 input gives a float32
 * result (sum and mean read it directly, the others through a double
 * copy). */
static bk_tensor *reduce(bk_ctx *ctx, int op, bk_tensor **in, const bk_opargs *args) {
    bk_tensor *x = in[0];
    layout L;
    if (get_layout(ctx, bk_optable[op].name, x, args->axis, args->keepdim, false, &L)) return NULL;
    if ((op == BK_OP_MAX || op == BK_OP_MIN) && L.n == 0) {
        bk_seterr(ctx, "%s of an empty tensor", bk_optable[op].name);
        return NULL;
    }
    bool f32 = x->dtype == BK_F32;
    if (f32 && (op == BK_OP_SUM || op == BK_OP_MEAN) && bk_is_contiguous(x)) {
        bk_tensor *out = bk_empty(ctx, BK_F32, L.ondim, L.oshape);
        if (out) sum_f32(ctx, &L, op, bk_data_f32(x), bk_data_f32(out));
        return out;
    }
    double *own;
    const double *p = dense(ctx, x, &own);
    if (!p) return NULL;
    bk_tensor *out = bk_empty(ctx, f32 ? BK_F32 : BK_F64, L.ondim, L.oshape);
    if (!out) {
        bk_free(ctx, own);
        return NULL;
    }
    double *o = f32 ? NULL : bk_data(out);
    float *of = f32 ? bk_data_f32(out) : NULL;
    for (int64_t i = 0; i < L.outer; i++)
        for (int64_t j = 0; j < L.inner; j++) {
            double acc;
            switch (op) {
            case BK_OP_SUM:
            case BK_OP_MEAN:
                SUM_ROW(double, p + AT(i, 0, j), L.n, L.inner, acc);
                if (op == BK_OP_MEAN) acc = L.n ? acc / (double)L.n : NAN;
                break;
            case BK_OP_MAX:
            case BK_OP_MIN:
                acc = p[AT(i, 0, j)];
                for (int64_t k = 1; k < L.n; k++) {
                    double v = p[AT(i, k, j)];
                    if (isnan(v) || (op == BK_OP_MAX ? v > acc : v < acc)) acc = v;
                    if (isnan(acc)) break;
                }
                break;
            case BK_OP_PROD:
                acc = 1;
                for (int64_t k = 0; k < L.n; k++) acc *= p[AT(i, k, j)];
                break;
            default: { /* LOGSUMEXP with one max shift */
                double m = -INFINITY;
                for (int64_t k = 0; k < L.n; k++) m = fmax(m, p[AT(i, k, j)]);
                if (isinf(m)) {
                    acc = m;
                    break;
                }
                double s = 0;
                for (int64_t k = 0; k < L.n; k++) s += exp(p[AT(i, k, j)] - m);
                acc = m + log(s);
            }
            }
            if (f32) of[i * L.inner + j] = (float)acc;
            else o[i * L.inner + j] = acc;
        }
    bk_free(ctx, own);
    return out;
}

#define FW_RED(E)                                                                    \
    bk_tensor *bk_fw_##E(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return reduce(c, BK_OP_##E, in, a); }
FW_RED(SUM)
FW_RED(MEAN)
FW_RED(MAX)
FW_RED(MIN)
FW_RED(LOGSUMEXP)
FW_RED(PROD)

/* Backward of sum and mean: g broadcast back over the reduced axis (times
 * 1/n for the mean), in x's dtype; x's values are not needed. */
static int bw_sum(bk_ctx *ctx, const bk_tensor *x, const layout *L, int op, bk_tensor *g,
                  bk_tensor **gin) {
    double *own;
    const double *gd = dense(ctx, g, &own);
    bk_tensor *r = gd ? bk_empty(ctx, (bk_dtype)x->dtype, x->ndim, x->shape) : NULL;
    if (!r) {
        bk_free(ctx, own);
        return -1;
    }
    double w = op == BK_OP_MEAN ? 1.0 / (double)L->n : 1.0;
    double *o = r->dtype == BK_F64 ? bk_data(r) : NULL;
    float *of = r->dtype == BK_F32 ? bk_data_f32(r) : NULL;
    for (int64_t i = 0; i < L->outer; i++)
        for (int64_t k = 0; k < L->n; k++) {
            const double *gi = gd + i * L->inner;
            int64_t base = (i * L->n + k) * L->inner;
            if (of)
                for (int64_t j = 0; j < L->inner; j++) of[base + j] = (float)(gi[j] * w);
            else
                for (int64_t j = 0; j < L->inner; j++) o[base + j] = gi[j] * w;
        }
    bk_free(ctx, own);
    gin[0] = r;
    return 0;
}

/* Backward of the reductions: gin[0][i,k,j] = g[i,j] * w[i,k,j]. */
static int bw_reduce(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *x = e->in[0];
    if (!x->requires_grad) return 0;
    layout L;
    if (get_layout(ctx, bk_optable[e->op].name, x, e->args.axis, e->args.keepdim, false, &L)) return -1;
    if (e->op == BK_OP_SUM || e->op == BK_OP_MEAN) return bw_sum(ctx, x, &L, e->op, g, gin);
    /* the incoming gradient and the output, densely as [outer, inner] */
    double *own[3] = {NULL, NULL, NULL};
    const double *p = dense(ctx, x, &own[0]), *gd = p ? dense(ctx, g, &own[1]) : NULL;
    const double *od = gd ? dense(ctx, e->out, &own[2]) : NULL;
    bk_tensor *r = od ? bk_empty(ctx, BK_F64, x->ndim, x->shape) : NULL;
    if (!r) {
        for (int k = 0; k < 3; k++) bk_free(ctx, own[k]);
        return -1;
    }
    double *o = bk_data(r); /* (the engine casts it to a float32 x's dtype) */
    for (int64_t i = 0; i < L.outer; i++)
        for (int64_t j = 0; j < L.inner; j++) {
            double gv = gd[i * L.inner + j], ov = od[i * L.inner + j];
            int64_t pick = -1;
            if (e->op == BK_OP_MAX || e->op == BK_OP_MIN)
                for (int64_t k = 0; k < L.n && pick < 0; k++)
                    if (p[AT(i, k, j)] == ov || (isnan(ov) && isnan(p[AT(i, k, j)]))) pick = k;
            if (e->op == BK_OP_PROD) {
                /* the product of the others, as prefix times suffix
                 * products: exact when some elements are zero */
                double pre = 1, suf = 1;
                for (int64_t k = 0; k < L.n; k++) {
                    o[AT(i, k, j)] = pre;
                    pre *= p[AT(i, k, j)];
                }
                for (int64_t k = L.n; k-- > 0;) {
                    o[AT(i, k, j)] = gv * (o[AT(i, k, j)] * suf);
                    suf *= p[AT(i, k, j)];
                }
                continue;
            }
            for (int64_t k = 0; k < L.n; k++) {
                double xv = p[AT(i, k, j)], w;
                switch (e->op) {
                case BK_OP_SUM: w = 1; break;
                case BK_OP_MEAN: w = 1.0 / (double)L.n; break;
                case BK_OP_MAX:
                case BK_OP_MIN: w = k == pick; break;
                default: /* LOGSUMEXP */ w = isinf(ov) && ov < 0 ? 0 : exp(xv - ov); break;
                }
                o[AT(i, k, j)] = gv * w;
            }
        }
    for (int k = 0; k < 3; k++) bk_free(ctx, own[k]);
    gin[0] = r;
    return 0;
}

#define BW_RED(E)                                                                                 \
    int bk_bw_##E(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_reduce(c, e, g, gin); }
BW_RED(SUM)
BW_RED(MEAN)
BW_RED(MAX)
BW_RED(MIN)
BW_RED(LOGSUMEXP)
BW_RED(PROD)

/* ---------------------------------------------------------------- scans --- */

static bk_tensor *scan(bk_ctx *ctx, int op, bk_tensor **in, const bk_opargs *args) {
    bk_tensor *x = in[0];
    layout L;
    if (get_layout(ctx, bk_optable[op].name, x, args->axis, 0, true, &L)) return NULL;
    double *own;
    const double *p = dense(ctx, x, &own);
    bk_tensor *out = p ? bk_empty(ctx, BK_F64, x->ndim, x->shape) : NULL;
    if (!out) {
        bk_free(ctx, own);
        return NULL;
    }
    double *o = bk_data(out);
    for (int64_t i = 0; i < L.outer; i++)
        for (int64_t j = 0; j < L.inner; j++) {
            if (op == BK_OP_CUMSUM) {
                double s = 0;
                for (int64_t k = 0; k < L.n; k++) o[AT(i, k, j)] = s += p[AT(i, k, j)];
                continue;
            }
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < L.n; k++) m = fmax(m, p[AT(i, k, j)]);
            for (int64_t k = 0; k < L.n; k++) s += exp(p[AT(i, k, j)] - m);
            double lse = m + log(s);
            for (int64_t k = 0; k < L.n; k++) {
                double v = p[AT(i, k, j)] - lse;
                o[AT(i, k, j)] = op == BK_OP_SOFTMAX ? exp(v) : v;
            }
        }
    bk_free(ctx, own);
    return out;
}

bk_tensor *bk_fw_CUMSUM(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return scan(c, BK_OP_CUMSUM, in, a); }
bk_tensor *bk_fw_SOFTMAX(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return scan(c, BK_OP_SOFTMAX, in, a); }
bk_tensor *bk_fw_LOG_SOFTMAX(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return scan(c, BK_OP_LOG_SOFTMAX, in, a); }

static int bw_scan(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    bk_tensor *x = e->in[0];
    if (!x->requires_grad) return 0;
    layout L;
    if (get_layout(ctx, bk_optable[e->op].name, x, e->args.axis, 0, true, &L)) return -1;
    double *own[2] = {NULL, NULL};
    const double *gd = dense(ctx, g, &own[0]), *od = gd ? dense(ctx, e->out, &own[1]) : NULL;
    bk_tensor *r = od ? bk_empty(ctx, BK_F64, x->ndim, x->shape) : NULL;
    if (!r) {
        bk_free(ctx, own[0]);
        bk_free(ctx, own[1]);
        return -1;
    }
    double *o = bk_data(r);
    for (int64_t i = 0; i < L.outer; i++)
        for (int64_t j = 0; j < L.inner; j++) {
            if (e->op == BK_OP_CUMSUM) {
                /* reverse cumulative sum of g */
                double s = 0;
                for (int64_t k = L.n; k-- > 0;) o[AT(i, k, j)] = s += gd[AT(i, k, j)];
            } else if (e->op == BK_OP_SOFTMAX) {
                double dot = 0;
                for (int64_t k = 0; k < L.n; k++) dot += gd[AT(i, k, j)] * od[AT(i, k, j)];
                for (int64_t k = 0; k < L.n; k++) o[AT(i, k, j)] = od[AT(i, k, j)] * (gd[AT(i, k, j)] - dot);
            } else {
                double sg = 0;
                for (int64_t k = 0; k < L.n; k++) sg += gd[AT(i, k, j)];
                for (int64_t k = 0; k < L.n; k++) o[AT(i, k, j)] = gd[AT(i, k, j)] - exp(od[AT(i, k, j)]) * sg;
            }
        }
    bk_free(ctx, own[0]);
    bk_free(ctx, own[1]);
    gin[0] = r;
    return 0;
}

int bk_bw_CUMSUM(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_scan(c, e, g, gin); }
int bk_bw_SOFTMAX(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_scan(c, e, g, gin); }
int bk_bw_LOG_SOFTMAX(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return bw_scan(c, e, g, gin); }
