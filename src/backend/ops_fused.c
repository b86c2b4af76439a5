/* ops_fused.c - the FUSED op: runs a fused elementwise kernel (bk_fused,
 * see tensor.h) over NumPy-broadcast inputs, one row (innermost dimension)
 * at a time, or in one row when every input is contiguous in the output's
 * shape or a single element.  Its backward rule asks the kernel for the
 * gradients of all wanted inputs in one pass, at the output's shape (the
 * engine sums them down to each input's shape). */
#include <string.h>
#include "ops_impl.h"

/* The rows of a broadcast: the output shape, and for each input its
 * element strides inside that shape (0 where it is repeated). */
typedef struct rows {
    int ndim, n;
    int64_t shape[BK_MAXDIM];
    int64_t st[BK_MAXIN + 1][BK_MAXDIM]; /* (+1: the backward's output gradient) */
    int64_t len, count;   /* row length and number of rows */
    bool flat;            /* one row of all elements */
} rows;

static int rows_init(bk_ctx *ctx, rows *r, int n, bk_tensor *const *in) {
    r->n = n;
    r->ndim = in[0]->ndim;
    memcpy(r->shape, in[0]->shape, sizeof r->shape);
    for (int i = 1; i < n; i++) {
        int64_t s2[BK_MAXDIM];
        int nd2;
        if (bk_broadcast_shapes(ctx, r->ndim, r->shape, in[i]->ndim, in[i]->shape, &nd2, s2)) return -1;
        r->ndim = nd2;
        memcpy(r->shape, s2, sizeof s2);
    }
    int64_t numel = 1;
    for (int d = 0; d < r->ndim; d++) numel *= r->shape[d];
    r->flat = true;
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = in[i];
        bool same = t->ndim == r->ndim && bk_is_contiguous(t);
        for (int d = 0; same && d < r->ndim; d++) same = t->shape[d] == r->shape[d];
        if (!same && t->numel != 1) r->flat = false;
        for (int d = 0; d < r->ndim; d++) {
            int td = d - (r->ndim - t->ndim);
            r->st[i][d] = (td < 0 || t->shape[td] == 1) ? 0 : t->strides[td];
        }
    }
    if (r->flat || r->ndim == 0) {
        r->flat = true;
        r->len = numel;
        r->count = numel ? 1 : 0;
    } else {
        r->len = r->shape[r->ndim - 1];
        r->count = r->len ? numel / r->len : 0;
    }
    return 0;
}

/* Walk the rows: p[i] points at row `row`'s first element of input i;
 * inc[i] is its stride along the row. */
typedef struct row_iter {
    int64_t idx[BK_MAXDIM];
    int64_t off[BK_MAXIN + 1];
} row_iter;

static void row_inc(const rows *r, const bk_tensor *const *in, int64_t *inc) {
    for (int i = 0; i < r->n; i++)
        inc[i] = r->flat ? (in[i]->numel == 1 ? 0 : 1) : r->st[i][r->ndim - 1];
}

static void row_next(const rows *r, row_iter *it) {
    for (int d = r->ndim - 2; d >= 0; d--) {
        for (int i = 0; i < r->n; i++) it->off[i] += r->st[i][d];
        if (++it->idx[d] < r->shape[d]) return;
        for (int i = 0; i < r->n; i++) it->off[i] -= r->st[i][d] * r->shape[d];
        it->idx[d] = 0;
    }
}

static const bk_fused *kernel_of(bk_ctx *ctx, const bk_opargs *a) {
    if (!a->fused || a->n != a->fused->nin || a->n < 1 || a->n > BK_MAXIN) {
        bk_seterr(ctx, "fused: missing kernel or wrong number of inputs");
        return NULL;
    }
    return a->fused;
}

/* The forward over the rows, in double or (f32: inputs float32 and the
 * kernel has a float form) in float. */
static bk_tensor *fused_rows(bk_ctx *c, const bk_fused *f, bk_tensor **in, bool f32) {
    rows r;
    if (rows_init(c, &r, f->nin, in)) return NULL;
    bk_tensor *out = bk_empty(c, f32 ? BK_F32 : BK_F64, r.ndim, r.shape);
    if (!out) return NULL;
    int64_t inc[BK_MAXIN];
    row_inc(&r, (const bk_tensor *const *)in, inc);
    row_iter it = {{0}, {0}};
    for (int i = 0; i < f->nin; i++) it.off[i] = in[i]->offset;
    for (int64_t row = 0; row < r.count; row++) {
        if (f32) {
            const float *x[BK_MAXIN];
            for (int i = 0; i < f->nin; i++) x[i] = (const float *)in[i]->st->data + it.off[i];
            f->forward_f32(r.len, x, inc, bk_data_f32(out) + row * r.len);
        } else {
            const double *x[BK_MAXIN];
            for (int i = 0; i < f->nin; i++) x[i] = (const double *)in[i]->st->data + it.off[i];
            f->forward(r.len, x, inc, bk_data(out) + row * r.len);
        }
        row_next(&r, &it);
    }
    return out;
}

/* t as a contiguous tensor of dtype dt (a new reference: t itself or a copy). */
static bk_tensor *dense_as(bk_ctx *c, bk_tensor *t, bk_dtype dt) {
    if (t->dtype == (int8_t)dt && bk_is_contiguous(t)) return bk_retain(t);
    bk_tensor *r = bk_empty(c, dt, t->ndim, t->shape);
    if (!r) return NULL;
    if (dt == BK_F64) {
        bk_copy_out(t, bk_data(r));
    } else if (bk_is_contiguous(t)) { /* a contiguous float64 t */
        float *p = bk_data_f32(r);
        const double *q = bk_data(t);
        for (int64_t i = 0; i < t->numel; i++) p[i] = (float)q[i];
    } else {
        float *p = bk_data_f32(r);
        for (int64_t i = 0; i < t->numel; i++) p[i] = (float)bk_get(t, i);
    }
    return r;
}

/* The inputs have one dtype (bk_apply converts mixed ones).  A float32
 * call of a kernel without a float form runs the double kernel on copies
 * and converts the result. */
bk_tensor *bk_fw_FUSED(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    const bk_fused *f = kernel_of(c, a);
    if (!f) return NULL;
    if (in[0]->dtype != BK_F32) return fused_rows(c, f, in, false);
    if (f->forward_f32) return fused_rows(c, f, in, true);
    bk_tensor *d[BK_MAXIN] = {0}, *r = NULL, *o = NULL;
    for (int i = 0; i < f->nin; i++)
        if (!(d[i] = dense_as(c, in[i], BK_F64))) goto done;
    if ((r = fused_rows(c, f, d, false))) o = dense_as(c, r, BK_F32);
done:
    for (int i = 0; i < f->nin; i++) bk_release(d[i]);
    bk_release(r);
    return o;
}

/* The backward computes in the output's dtype (float when it is float32
 * and the kernel has a float backward): the inputs and, as one more
 * broadcast operand, the output gradient (often a stride-0 expansion: the
 * gradient of a sum) are converted to it where they differ. */
int bk_bw_FUSED(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    const bk_fused *f = kernel_of(c, &e->args);
    if (!f) return -1;
    int n = f->nin, rc = -1;
    bool f32 = e->out->dtype == BK_F32 && f->backward_f32;
    bk_dtype dt = f32 ? BK_F32 : BK_F64;
    bk_tensor *x[BK_MAXIN + 1] = {0}, *out = NULL;
    for (int i = 0; i < n; i++)
        if (!(x[i] = e->in[i]->dtype == (int8_t)dt ? bk_retain(e->in[i]) : dense_as(c, e->in[i], dt))) goto done;
    if (!(x[n] = g->dtype == (int8_t)dt ? bk_retain(g) : dense_as(c, g, dt))) goto done;
    rows r;
    if (rows_init(c, &r, n + 1, x) || !(out = dense_as(c, e->out, dt))) goto done;
    for (int i = 0; i < n; i++)
        if (e->in[i]->requires_grad && !(gin[i] = bk_empty(c, dt, r.ndim, r.shape))) goto done;
    int64_t inc[BK_MAXIN + 1];
    row_inc(&r, (const bk_tensor *const *)x, inc);
    row_iter it = {{0}, {0}};
    for (int i = 0; i <= n; i++) it.off[i] = x[i]->offset;
    for (int64_t row = 0; row < r.count; row++) {
        int64_t base = row * r.len;
        if (f32) {
            const float *xp[BK_MAXIN + 1];
            float *gp[BK_MAXIN];
            for (int i = 0; i <= n; i++) xp[i] = (const float *)x[i]->st->data + it.off[i];
            for (int i = 0; i < n; i++) gp[i] = gin[i] ? bk_data_f32(gin[i]) + base : NULL;
            f->backward_f32(r.len, xp, inc, bk_data_f32(out) + base, xp[n], inc[n], gp);
        } else {
            const double *xp[BK_MAXIN + 1];
            double *gp[BK_MAXIN];
            for (int i = 0; i <= n; i++) xp[i] = (const double *)x[i]->st->data + it.off[i];
            for (int i = 0; i < n; i++) gp[i] = gin[i] ? bk_data(gin[i]) + base : NULL;
            f->backward(r.len, xp, inc, bk_data(out) + base, xp[n], inc[n], gp);
        }
        row_next(&r, &it);
    }
    rc = 0;
done:
    for (int i = 0; i <= n; i++) bk_release(x[i]);
    bk_release(out);
    return rc;
}
