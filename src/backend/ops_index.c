/* ops_index.c - indexing ops: index (int / slice / newaxis / one tensor
 * index), index_put (functional element assignment), index_select and
 * gather.
 *
 * Every op here reduces to a list of element offsets into the input: the
 * forward reads them (or, without a tensor index, returns a strided view),
 * the backward scatter-adds the output gradient into zeros at the same
 * offsets computed for a contiguous layout of the input's shape. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_impl.h"

/* An index expression resolved against a layout: int, slice and newaxis
 * applied; a tensor index kept as a full dimension at view position tpos,
 * to be gathered afterwards. */
typedef struct {
    int ndim;
    int64_t shape[BK_MAXDIM], strides[BK_MAXDIM], offset;
    int tpos;               /* view dimension of the tensor index, -1: none */
    int taxis;              /* input axis of the tensor index (messages) */
    const bk_tensor *tidx;
} ix_plan;

static void rowmajor_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

static int norm_axis(bk_ctx *ctx, const char *op, int64_t axis, int ndim, int64_t *out)
{
    int64_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
        bk_seterr(ctx, "%s: axis %lld is out of range for a tensor of dimension %d",
                  op, (long long)axis, ndim);
        return -1;
    }
    *out = a;
    return 0;
}

static void oob_error(bk_ctx *ctx, double v, int axis, int64_t size)
{
    bk_seterr(ctx, "index %.17g is out of bounds for axis %d with size %lld", v, axis,
              (long long)size);
}

/* Element count of a normalized slice. */
static int64_t slice_len(int64_t start, int64_t stop, int64_t step)
{
    if (step > 0)
        return stop > start ? (stop - start + step - 1) / step : 0;
    return start > stop ? (start - stop + (-step) - 1) / (-step) : 0;
}

static int plan_slice(bk_ctx *ctx, const bk_idx *s, int d, int64_t dim, int64_t stride,
                      ix_plan *p)
{
    int64_t len, last;
    if (s->step == 0) {
        bk_seterr(ctx, "index: slice step cannot be zero");
        return -1;
    }
    len = slice_len(s->start, s->stop, s->step);
    if (len > 0) {
        last = s->start + (len - 1) * s->step;
        if (s->start < 0 || s->start >= dim || last < 0 || last >= dim) {
            bk_seterr(ctx, "index: slice %lld:%lld:%lld is out of range for axis %d with size %lld",
                      (long long)s->start, (long long)s->stop, (long long)s->step, d,
                      (long long)dim);
            return -1;
        }
        p->offset += s->start * stride;
    }
    p->shape[p->ndim] = len;
    p->strides[p->ndim] = stride * s->step;
    p->ndim++;
    return 0;
}

/* Applies one spec to input dimension d (unused by NEWAXIS); returns the
 * number of input dimensions consumed, or -1. */
static int plan_one(bk_ctx *ctx, const bk_idx *s, int d, int in_ndim,
                    const int64_t *shape, const int64_t *strides, ix_plan *p)
{
    if (p->ndim >= BK_MAXDIM && s->kind != BK_IDX_INT) {
        bk_seterr(ctx, "index: result would have more than %d dimensions", BK_MAXDIM);
        return -1;
    }
    if (s->kind == BK_IDX_NEWAXIS) {
        p->shape[p->ndim] = 1;
        p->strides[p->ndim++] = 0;
        return 0;
    }
    if (d >= in_ndim) {
        bk_seterr(ctx, "index: too many indices for a tensor of dimension %d", in_ndim);
        return -1;
    }
    switch (s->kind) {
    case BK_IDX_INT: {
        int64_t i = s->start < 0 ? s->start + shape[d] : s->start;
        if (i < 0 || i >= shape[d]) {
            oob_error(ctx, (double)s->start, d, shape[d]);
            return -1;
        }
        p->offset += i * strides[d];
        return 1;
    }
    case BK_IDX_SLICE:
        return plan_slice(ctx, s, d, shape[d], strides[d], p) < 0 ? -1 : 1;
    case BK_IDX_TENSOR:
        if (p->tidx) {
            bk_seterr(ctx, "index: at most one tensor index is supported");
            return -1;
        }
        if (!s->idx) {
            bk_seterr(ctx, "index: missing index tensor");
            return -1;
        }
        p->tidx = s->idx;
        p->tpos = p->ndim;
        p->taxis = d;
        p->shape[p->ndim] = shape[d];
        p->strides[p->ndim++] = strides[d];
        return 1;
    default:
        bk_seterr(ctx, "index: unknown index kind %d", s->kind);
        return -1;
    }
}

static int plan_index(bk_ctx *ctx, int in_ndim, const int64_t *shape,
                      const int64_t *strides, int64_t offset, int nidx,
                      const bk_idx *specs, ix_plan *p)
{
    int d = 0;
    memset(p, 0, sizeof *p);
    p->offset = offset;
    p->tpos = -1;
    if (nidx < 0 || nidx > BK_MAXDIM) {
        bk_seterr(ctx, "index: %d indices given, at most %d are supported", nidx, BK_MAXDIM);
        return -1;
    }
    for (int k = 0; k < nidx; k++) {
        int used = plan_one(ctx, &specs[k], d, in_ndim, shape, strides, p);
        if (used < 0)
            return -1;
        d += used;
    }
    for (; d < in_ndim; d++) {
        if (p->ndim >= BK_MAXDIM) {
            bk_seterr(ctx, "index: result would have more than %d dimensions", BK_MAXDIM);
            return -1;
        }
        p->shape[p->ndim] = shape[d];
        p->strides[p->ndim++] = strides[d];
    }
    if (p->tidx && p->ndim - 1 + p->tidx->ndim > BK_MAXDIM) {
        bk_seterr(ctx, "index: result would have more than %d dimensions", BK_MAXDIM);
        return -1;
    }
    return 0;
}

/* Shape of the full result of a plan (tensor index dims in place). */
static int plan_result_shape(const ix_plan *p, int64_t *shape)
{
    int n = 0;
    for (int d = 0; d < p->ndim; d++) {
        if (d == p->tpos)
            for (int j = 0; j < p->tidx->ndim; j++)
                shape[n++] = p->tidx->shape[j];
        else
            shape[n++] = p->shape[d];
    }
    return n;
}

/* Reads an index tensor as validated integers in [0, size). */
static int64_t *read_indices(bk_ctx *ctx, const bk_tensor *t, int axis, int64_t size)
{
    int64_t n = t->numel;
    double *v = bk_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof *v);
    int64_t *out = v ? bk_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof *out) : NULL;
    if (!out) {
        bk_free(ctx, v);
        return NULL;
    }
    if (n > 0)
        bk_copy_out(t, v);
    for (int64_t i = 0; i < n; i++) {
        if (v[i] != floor(v[i])) {
            bk_seterr(ctx, "index: index tensor must hold integers, got %.17g", v[i]);
            goto fail;
        }
        if (v[i] < -(double)size || v[i] >= (double)size) {
            oob_error(ctx, v[i], axis, size);
            goto fail;
        }
        out[i] = (int64_t)v[i] + (v[i] < 0 ? size : 0);
    }
    bk_free(ctx, v);
    return out;
fail:
    bk_free(ctx, v);
    bk_free(ctx, out);
    return NULL;
}

/* Offsets of every element of the plan's result, in row-major order.
 * *count receives the number of elements. */
static int64_t *plan_offsets(bk_ctx *ctx, const ix_plan *p, int64_t *count)
{
    int64_t cnt[BK_MAXDIM] = {0}, size[BK_MAXDIM], total = 1, *offs, *tab = NULL;
    for (int d = 0; d < p->ndim; d++) {
        size[d] = d == p->tpos ? p->tidx->numel : p->shape[d];
        total *= size[d];
    }
    if (p->tidx && !(tab = read_indices(ctx, p->tidx, p->taxis, p->shape[p->tpos])))
        return NULL;
    offs = bk_malloc(ctx, (size_t)(total > 0 ? total : 1) * sizeof *offs);
    for (int64_t i = 0; offs && i < total; i++) {
        int64_t off = p->offset;
        for (int d = 0; d < p->ndim; d++)
            off += (d == p->tpos ? tab[cnt[d]] : cnt[d]) * p->strides[d];
        offs[i] = off;
        for (int d = p->ndim - 1; d >= 0; d--) {
            if (++cnt[d] < size[d])
                break;
            cnt[d] = 0;
        }
    }
    bk_free(ctx, tab);
    *count = total;
    return offs;
}

static double load(const bk_tensor *t, int64_t off)
{
    if (t->dtype == BK_F32)
        return ((const float *)t->st->data)[off];
    return ((const double *)t->st->data)[off];
}

/* Contiguous float64 elements of t (pointer into t, or a copy in *tmp). */
static const double *read_f64(bk_ctx *ctx, const bk_tensor *t, double **tmp)
{
    *tmp = NULL;
    if (t->dtype == BK_F64 && bk_is_contiguous(t) && t->numel > 0)
        return bk_data(t);
    *tmp = bk_malloc(ctx, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(double));
    if (*tmp && t->numel > 0)
        bk_copy_out(t, *tmp);
    return *tmp;
}

/* A new tensor of the given shape holding x's elements at offs. */
static bk_tensor *gather_offsets(bk_ctx *ctx, const bk_tensor *x, const int64_t *offs,
                                 int ndim, const int64_t *shape)
{
    bk_tensor *out = bk_empty(ctx, (bk_dtype)x->dtype, ndim, shape);
    if (!out || out->numel == 0)
        return out;
    if (x->dtype == BK_F32) {
        const float *src = (const float *)x->st->data;
        float *o = bk_data_f32(out);
        for (int64_t i = 0; i < out->numel; i++)
            o[i] = src[offs[i]];
        return out;
    }
    double *o = bk_data(out);
    for (int64_t i = 0; i < out->numel; i++)
        o[i] = load(x, offs[i]);
    return out;
}

/* Zeros of shape (ndim, shape) with g's elements added at offs. */
static bk_tensor *scatter_add(bk_ctx *ctx, int ndim, const int64_t *shape,
                              const int64_t *offs, int64_t count, const bk_tensor *g)
{
    double *tmp, *z;
    const double *gv;
    bk_tensor *out;
    if (g->numel != count) {
        bk_seterr(ctx, "index backward: gradient has %lld elements, expected %lld",
                  (long long)g->numel, (long long)count);
        return NULL;
    }
    if (g->dtype == BK_F32 && bk_is_contiguous(g)) { /* float32 in, float32 out */
        out = bk_zeros(ctx, BK_F32, ndim, shape);
        if (!out || count == 0)
            return out;
        const float *gf = bk_data_f32(g);
        float *zf = bk_data_f32(out);
        for (int64_t i = 0; i < count; i++)
            zf[offs[i]] += gf[i];
        return out;
    }
    out = bk_zeros(ctx, BK_F64, ndim, shape);
    if (!out || count == 0)
        return out;
    if (!(gv = read_f64(ctx, g, &tmp))) {
        bk_release(out);
        return NULL;
    }
    z = bk_data(out);
    for (int64_t i = 0; i < count; i++)
        z[offs[i]] += gv[i];
    bk_free(ctx, tmp);
    return out;
}

/* Offsets of an index expression into a contiguous tensor of x's shape
 * (the layout of gradients and of index_put results). */
static int64_t *contiguous_offsets(bk_ctx *ctx, const bk_tensor *x, int nidx,
                                   const bk_idx *specs, ix_plan *p, int64_t *count)
{
    int64_t strides[BK_MAXDIM];
    rowmajor_strides(x->ndim, x->shape, strides);
    if (plan_index(ctx, x->ndim, x->shape, strides, 0, nidx, specs, p) < 0)
        return NULL;
    return plan_offsets(ctx, p, count);
}

/* -------------------------------------------------------------- index --- */

/* x[idx] with one tensor index on axis 0 and the other axes whole: rows
 * copied with memcpy when x's rows are contiguous (the minibatch gather of
 * a subsampled plate).  Returns false when it does not apply. */
static bool rows_only(const bk_tensor *x, const bk_opargs *a)
{
    if (a->nidx != 1 || a->idx[0].kind != BK_IDX_TENSOR || !a->idx[0].idx || x->ndim < 1 ||
        a->idx[0].idx->ndim + x->ndim - 1 > BK_MAXDIM)
        return false;
    int64_t st = 1;
    for (int d = x->ndim - 1; d >= 1; d--) {
        if (x->shape[d] != 1 && x->strides[d] != st)
            return false;
        st *= x->shape[d];
    }
    return true;
}

static int rows_shape(const bk_tensor *x, const bk_tensor *idx, int64_t *shape)
{
    int nd = 0;
    for (int d = 0; d < idx->ndim; d++)
        shape[nd++] = idx->shape[d];
    for (int d = 1; d < x->ndim; d++)
        shape[nd++] = x->shape[d];
    return nd;
}

static bk_tensor *gather_rows(bk_ctx *ctx, const bk_tensor *x, const bk_tensor *idx)
{
    int64_t shape[BK_MAXDIM], *rows, row = 1;
    int nd = rows_shape(x, idx, shape);
    for (int d = 1; d < x->ndim; d++)
        row *= x->shape[d];
    if (!(rows = read_indices(ctx, idx, 0, x->shape[0])))
        return NULL;
    bk_tensor *out = bk_empty(ctx, (bk_dtype)x->dtype, nd, shape);
    if (out && row > 0 && idx->numel > 0) {
        size_t es = x->dtype == BK_F32 ? sizeof(float) : sizeof(double);
        const char *src = (const char *)x->st->data + (size_t)x->offset * es;
        char *o = (char *)out->st->data;
        for (int64_t i = 0; i < idx->numel; i++)
            memcpy(o + (size_t)(i * row) * es, src + (size_t)(rows[i] * x->strides[0]) * es, (size_t)row * es);
    }
    bk_free(ctx, rows);
    return out;
}

bk_tensor *bk_fw_INDEX(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0], *out;
    ix_plan p;
    int64_t shape[BK_MAXDIM], count, *offs;
    int nd;
    if (rows_only(x, a))
        return gather_rows(ctx, x, a->idx[0].idx);
    if (plan_index(ctx, x->ndim, x->shape, x->strides, x->offset, a->nidx, a->idx, &p) < 0)
        return NULL;
    if (!p.tidx)
        return bk_view(ctx, x, p.ndim, p.shape, p.strides, p.offset);
    if (!(offs = plan_offsets(ctx, &p, &count)))
        return NULL;
    nd = plan_result_shape(&p, shape);
    out = gather_offsets(ctx, x, offs, nd, shape);
    bk_free(ctx, offs);
    return out;
}

int bk_bw_INDEX(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0];
    ix_plan p;
    int64_t count, *offs;
    if (!x->requires_grad)
        return 0;
    if (!(offs = contiguous_offsets(ctx, x, e->args.nidx, e->args.idx, &p, &count)))
        return -1;
    gin[0] = scatter_add(ctx, x->ndim, x->shape, offs, count, gout);
    bk_free(ctx, offs);
    return gin[0] ? 0 : -1;
}

/* ---------------------------------------------------------- index_put --- */

/* v's elements broadcast to the region shape, in row-major order. */
static double *broadcast_values(bk_ctx *ctx, bk_tensor *v, int rnd, const int64_t *rshape,
                                int64_t count)
{
    int64_t strides[BK_MAXDIM];
    int vnd = v->ndim, skip = 0;
    char b1[128], b2[128];
    double *buf;
    bk_tensor *view;
    /* NumPy drops leading size-1 dimensions of the assigned value. */
    while (vnd - skip > rnd && v->shape[skip] == 1)
        skip++;
    if (vnd - skip > rnd)
        goto bad;
    for (int i = 0; i < rnd; i++) {
        int j = i - (rnd - (vnd - skip));
        if (j < 0)
            strides[i] = 0;
        else if (v->shape[skip + j] == rshape[i])
            strides[i] = v->strides[skip + j];
        else if (v->shape[skip + j] == 1)
            strides[i] = 0;
        else
            goto bad;
    }
    if (!(buf = bk_malloc(ctx, (size_t)(count > 0 ? count : 1) * sizeof *buf)))
        return NULL;
    if (count == 0)
        return buf;
    if (!(view = bk_view(ctx, v, rnd, rshape, strides, v->offset))) {
        bk_free(ctx, buf);
        return NULL;
    }
    bk_copy_out(view, buf);
    bk_release(view);
    return buf;
bad:
    bk_dims_str(rnd, rshape, b2, sizeof b2);
    bk_seterr(ctx, "index_put: cannot assign a value of shape %s to a region of shape %s",
              bk_shape_str(v, b1, sizeof b1), b2);
    return NULL;
}

bk_tensor *bk_fw_INDEX_PUT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0], *out = NULL;
    ix_plan p;
    int64_t rshape[BK_MAXDIM], count, *offs;
    double *vals = NULL, *o;
    int rnd;
    if (!(offs = contiguous_offsets(ctx, x, a->nidx, a->idx, &p, &count)))
        return NULL;
    rnd = plan_result_shape(&p, rshape);
    if (!(vals = broadcast_values(ctx, in[1], rnd, rshape, count)))
        goto done;
    if (!(out = bk_empty(ctx, BK_F64, x->ndim, x->shape)))
        goto done;
    if (out->numel > 0) {
        o = bk_data(out);
        bk_copy_out(x, o);
        for (int64_t i = 0; i < count; i++)
            o[offs[i]] = vals[i];
    }
done:
    bk_free(ctx, vals);
    bk_free(ctx, offs);
    return out;
}

/* A repeated tensor index writes one element several times and the last
 * write wins (NumPy): zero g at the region positions that were overwritten. */
static int zero_overwritten(bk_ctx *ctx, const int64_t *offs, int64_t count, int64_t size,
                            bk_tensor *g)
{
    int64_t *last = bk_malloc(ctx, (size_t)(size > 0 ? size : 1) * sizeof *last);
    double *gv = bk_data(g);
    if (!last)
        return -1;
    for (int64_t i = 0; i < count; i++)
        last[offs[i]] = i;
    for (int64_t i = 0; i < count; i++)
        if (last[offs[i]] != i)
            gv[i] = 0.0;
    bk_free(ctx, last);
    return 0;
}

/* Gradient of the assigned value: gout at the region, in v's rank when v
 * has extra leading size-1 dimensions. */
static bk_tensor *index_put_grad_v(bk_ctx *ctx, const bk_tensor *v, const ix_plan *p,
                                   const int64_t *offs, int64_t count, const bk_tensor *gc)
{
    int64_t rshape[BK_MAXDIM], shape[BK_MAXDIM];
    int rnd = plan_result_shape(p, rshape), nd = rnd;
    bk_tensor *g;
    if (v->ndim > rnd) {
        nd = v->ndim;
        for (int i = 0; i < nd; i++)
            shape[i] = i < nd - rnd ? 1 : rshape[i - (nd - rnd)];
    } else {
        memcpy(shape, rshape, sizeof shape);
    }
    g = gather_offsets(ctx, gc, offs, nd, shape);
    if (g && p->tidx && count > 0 && zero_overwritten(ctx, offs, count, gc->numel, g) < 0) {
        bk_release(g);
        return NULL;
    }
    return g;
}

int bk_bw_INDEX_PUT(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0], *v = e->in[1];
    bk_tensor *gc;
    ix_plan p;
    int64_t count, *offs;
    int rc = -1;
    if (!x->requires_grad && !v->requires_grad)
        return 0;
    if (!(offs = contiguous_offsets(ctx, x, e->args.nidx, e->args.idx, &p, &count)))
        return -1;
    /* a contiguous float64 copy of gout in x's shape */
    if (!(gc = bk_empty(ctx, BK_F64, x->ndim, x->shape)))
        goto done;
    if (gc->numel > 0)
        bk_copy_out(gout, bk_data(gc));
    if (v->requires_grad && !(gin[1] = index_put_grad_v(ctx, v, &p, offs, count, gc)))
        goto done;
    if (x->requires_grad) {
        double *g = bk_data(gc);
        for (int64_t i = 0; i < count; i++)
            g[offs[i]] = 0.0;
        gin[0] = bk_retain(gc);
    }
    rc = 0;
done:
    bk_release(gc);
    bk_free(ctx, offs);
    return rc;
}

/* ------------------------------------------------------- index_select --- */

/* index_select(a, axis, idx) is a[:, ..., :, idx] with `axis` leading full
 * slices.  Fills specs; returns their count or -1. */
static int select_specs(bk_ctx *ctx, const bk_tensor *x, const bk_tensor *idx,
                        int64_t axis, bk_idx *specs)
{
    char b[128];
    if (idx->ndim > 1) {
        bk_seterr(ctx, "index_select: index must be 1-D, got shape %s",
                  bk_shape_str(idx, b, sizeof b));
        return -1;
    }
    for (int d = 0; d < axis; d++) {
        memset(&specs[d], 0, sizeof specs[d]);
        specs[d].kind = BK_IDX_SLICE;
        specs[d].stop = x->shape[d];
        specs[d].step = 1;
    }
    memset(&specs[axis], 0, sizeof specs[axis]);
    specs[axis].kind = BK_IDX_TENSOR;
    specs[axis].idx = (bk_tensor *)idx;
    return (int)axis + 1;
}

bk_tensor *bk_fw_INDEX_SELECT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0], *out;
    bk_idx specs[BK_MAXDIM];
    int64_t axis, shape[BK_MAXDIM], count, *offs;
    ix_plan p;
    int n;
    if (norm_axis(ctx, "index_select", a->axis, x->ndim, &axis) < 0 ||
        (n = select_specs(ctx, x, in[1], axis, specs)) < 0 ||
        plan_index(ctx, x->ndim, x->shape, x->strides, x->offset, n, specs, &p) < 0 ||
        !(offs = plan_offsets(ctx, &p, &count)))
        return NULL;
    memcpy(shape, x->shape, sizeof shape);
    shape[axis] = in[1]->numel;
    out = gather_offsets(ctx, x, offs, x->ndim, shape);
    bk_free(ctx, offs);
    return out;
}

int bk_bw_INDEX_SELECT(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0];
    bk_idx specs[BK_MAXDIM];
    int64_t axis, count, *offs;
    ix_plan p;
    int n;
    if (!x->requires_grad)
        return 0;
    if (norm_axis(ctx, "index_select", e->args.axis, x->ndim, &axis) < 0 ||
        (n = select_specs(ctx, x, e->in[1], axis, specs)) < 0 ||
        !(offs = contiguous_offsets(ctx, x, n, specs, &p, &count)))
        return -1;
    gin[0] = scatter_add(ctx, x->ndim, x->shape, offs, count, gout);
    bk_free(ctx, offs);
    return gin[0] ? 0 : -1;
}

/* ------------------------------------------------------------- gather --- */

/* Offsets into a layout (strides, offset) of x's shape for gather along
 * axis: element i of idx selects x[..., idx[i], ...] at idx's position. */
static int64_t *gather_offs(bk_ctx *ctx, const bk_tensor *x, const bk_tensor *idx,
                            int64_t axis, const int64_t *strides, int64_t offset)
{
    int64_t cnt[BK_MAXDIM] = {0}, *tab, *offs;
    char b1[128], b2[128];
    if (idx->ndim != x->ndim) {
        bk_seterr(ctx, "gather: index has %d dimensions, input has %d", idx->ndim, x->ndim);
        return NULL;
    }
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis && idx->shape[d] > x->shape[d]) {
            bk_seterr(ctx, "gather: index shape %s does not fit input shape %s outside axis %lld",
                      bk_shape_str(idx, b1, sizeof b1), bk_shape_str(x, b2, sizeof b2),
                      (long long)axis);
            return NULL;
        }
    }
    if (!(tab = read_indices(ctx, idx, (int)axis, x->shape[axis])))
        return NULL;
    offs = bk_malloc(ctx, (size_t)(idx->numel > 0 ? idx->numel : 1) * sizeof *offs);
    for (int64_t i = 0; offs && i < idx->numel; i++) {
        int64_t off = offset;
        for (int d = 0; d < x->ndim; d++)
            off += (d == axis ? tab[i] : cnt[d]) * strides[d];
        offs[i] = off;
        for (int d = x->ndim - 1; d >= 0; d--) {
            if (++cnt[d] < idx->shape[d])
                break;
            cnt[d] = 0;
        }
    }
    bk_free(ctx, tab);
    return offs;
}

bk_tensor *bk_fw_GATHER(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0], *idx = in[1], *out;
    int64_t axis, *offs;
    if (norm_axis(ctx, "gather", a->axis, x->ndim, &axis) < 0 ||
        !(offs = gather_offs(ctx, x, idx, axis, x->strides, x->offset)))
        return NULL;
    out = gather_offsets(ctx, x, offs, idx->ndim, idx->shape);
    bk_free(ctx, offs);
    return out;
}

int bk_bw_GATHER(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0], *idx = e->in[1];
    int64_t axis, strides[BK_MAXDIM], *offs;
    if (!x->requires_grad)
        return 0;
    rowmajor_strides(x->ndim, x->shape, strides);
    if (norm_axis(ctx, "gather", e->args.axis, x->ndim, &axis) < 0 ||
        !(offs = gather_offs(ctx, x, idx, axis, strides, 0)))
        return -1;
    gin[0] = scatter_add(ctx, x->ndim, x->shape, offs, idx->numel, gout);
    bk_free(ctx, offs);
    return gin[0] ? 0 : -1;
}

/* ------------------------------------------- offsets for the fast path --- */

int64_t *bk__index_offsets(bk_ctx *ctx, int op, const bk_tensor *x, const bk_tensor *idx,
                           const bk_opargs *a, int64_t *count)
{
    ix_plan p;
    int64_t axis, strides[BK_MAXDIM], *offs;
    bk_idx specs[BK_MAXDIM];
    int n;
    switch (op) {
    case BK_OP_INDEX:
        return contiguous_offsets(ctx, x, a->nidx, a->idx, &p, count);
    case BK_OP_INDEX_SELECT:
        if (norm_axis(ctx, "index_select", a->axis, x->ndim, &axis) < 0 ||
            (n = select_specs(ctx, x, idx, axis, specs)) < 0)
            return NULL;
        return contiguous_offsets(ctx, x, n, specs, &p, count);
    case BK_OP_GATHER:
        rowmajor_strides(x->ndim, x->shape, strides);
        if (norm_axis(ctx, "gather", a->axis, x->ndim, &axis) < 0 ||
            !(offs = gather_offs(ctx, x, idx, axis, strides, 0)))
            return NULL;
        *count = idx->numel;
        return offs;
    default:
        bk_seterr(ctx, "%s: not an indexing op", bk_optable[op].name);
        return NULL;
    }
}
