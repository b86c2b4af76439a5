/* ops_shape.c - shape ops: reshape, transpose, expand, concat, stack,
 * contiguous and cast.  Reshape (of a contiguous input), transpose and
 * expand return views that share the input's storage; the others copy.
 * Backward rules only move gradients around: reshape back, transpose back,
 * slice per input, or cast back. */
#include <stdio.h>
#include <string.h>

#include "ops_impl.h"

/* Normalizes axis (may be negative) against ndim; -1 with an error. */
static int norm_axis(bk_ctx *ctx, const char *op, int64_t axis, int ndim,
                     int64_t *out)
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

static void rowmajor_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

/* A contiguous copy of t's elements in dtype dt (a float32 view copied as
 * float32 goes through double exactly). */
static bk_tensor *copy_as(bk_ctx *ctx, const bk_tensor *t, bk_dtype dt, int ndim,
                          const int64_t *shape)
{
    bk_tensor *out = bk_empty(ctx, dt, ndim, shape);
    if (!out || out->numel == 0)
        return out;
    if (dt == BK_F64) {
        bk_copy_out(t, bk_data(out));
        return out;
    }
    double *tmp = bk_malloc(ctx, sizeof(double) * (size_t)out->numel);
    if (!tmp) {
        bk_release(out);
        return NULL;
    }
    bk_copy_out(t, tmp);
    float *o = bk_data_f32(out);
    for (int64_t k = 0; k < out->numel; k++)
        o[k] = (float)tmp[k];
    bk_free(ctx, tmp);
    return out;
}

/* Contiguous float64 elements of t: a pointer into t itself when possible,
 * otherwise a copy in *tmp (to be freed by the caller). */
static const double *read_f64(bk_ctx *ctx, const bk_tensor *t, double **tmp)
{
    *tmp = NULL;
    if (t->dtype == BK_F64 && bk_is_contiguous(t))
        return t->numel > 0 ? bk_data(t) : NULL;
    *tmp = bk_malloc(ctx, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(double));
    if (!*tmp)
        return NULL;
    bk_copy_out(t, *tmp);
    return *tmp;
}

/* ------------------------------------------------------------ reshape --- */

/* Resolves the target shape of a reshape (one -1 allowed) against numel. */
static int reshape_target(bk_ctx *ctx, const bk_tensor *x, const bk_opargs *a,
                          int64_t *shape)
{
    char b1[128], b2[128];
    int infer = -1;
    int64_t known = 1;
    if (a->ndim < 0 || a->ndim > BK_MAXDIM) {
        bk_seterr(ctx, "reshape: %d dimensions requested, at most %d are supported",
                  a->ndim, BK_MAXDIM);
        return -1;
    }
    for (int i = 0; i < a->ndim; i++) {
        shape[i] = a->shape[i];
        if (shape[i] == -1) {
            if (infer >= 0) {
                bk_seterr(ctx, "reshape: only one dimension can be -1");
                return -1;
            }
            infer = i;
        } else if (shape[i] < 0) {
            bk_seterr(ctx, "reshape: invalid dimension %lld", (long long)shape[i]);
            return -1;
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known != 0)
            goto bad;
        shape[infer] = x->numel / known;
    } else if (known != x->numel) {
        goto bad;
    }
    return 0;
bad:
    bk_seterr(ctx, "reshape: cannot reshape tensor of shape %s into shape %s",
              bk_shape_str(x, b1, sizeof b1), bk_dims_str(a->ndim, a->shape, b2, sizeof b2));
    return -1;
}

bk_tensor *bk_fw_RESHAPE(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    int64_t shape[BK_MAXDIM], strides[BK_MAXDIM];
    if (reshape_target(ctx, in[0], a, shape) < 0)
        return NULL;
    if (!bk_is_contiguous(in[0]))
        return copy_as(ctx, in[0], (bk_dtype)in[0]->dtype, a->ndim, shape);
    rowmajor_strides(a->ndim, shape, strides);
    return bk_view(ctx, in[0], a->ndim, shape, strides, in[0]->offset);
}

int bk_bw_RESHAPE(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0];
    if (!x->requires_grad)
        return 0;
    gin[0] = bk_reshape(ctx, gout, x->ndim, x->shape);
    return gin[0] ? 0 : -1;
}

/* ---------------------------------------------------------- transpose --- */

bk_tensor *bk_fw_TRANSPOSE(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0];
    int64_t d0, d1, shape[BK_MAXDIM], strides[BK_MAXDIM];
    if (norm_axis(ctx, "transpose", a->axis, x->ndim, &d0) < 0 ||
        norm_axis(ctx, "transpose", a->axis2, x->ndim, &d1) < 0)
        return NULL;
    memcpy(shape, x->shape, sizeof shape);
    memcpy(strides, x->strides, sizeof strides);
    shape[d0] = x->shape[d1];
    shape[d1] = x->shape[d0];
    strides[d0] = x->strides[d1];
    strides[d1] = x->strides[d0];
    return bk_view(ctx, x, x->ndim, shape, strides, x->offset);
}

int bk_bw_TRANSPOSE(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    if (!e->in[0]->requires_grad)
        return 0;
    gin[0] = bk_transpose(ctx, gout, e->args.axis, e->args.axis2);
    return gin[0] ? 0 : -1;
}

/* ------------------------------------------------------------- expand --- */

bk_tensor *bk_fw_EXPAND(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    bk_tensor *x = in[0];
    int64_t shape[BK_MAXDIM], strides[BK_MAXDIM];
    int lead = a->ndim - x->ndim;
    char b1[128], b2[128];
    if (a->ndim > BK_MAXDIM || lead < 0)
        goto bad;
    for (int i = 0; i < a->ndim; i++) {
        int64_t t = a->shape[i];
        int j = i - lead;
        if (j < 0) { /* a new leading dimension */
            if (t < 0)
                goto bad;
            shape[i] = t;
            strides[i] = 0;
            continue;
        }
        if (t == -1)
            t = x->shape[j];
        if (t == x->shape[j]) {
            strides[i] = x->strides[j];
        } else if (x->shape[j] == 1 && t >= 0) {
            strides[i] = 0;
        } else {
            goto bad;
        }
        shape[i] = t;
    }
    return bk_view(ctx, x, a->ndim, shape, strides, x->offset);
bad:
    bk_seterr(ctx, "expand: cannot expand shape %s to %s", bk_shape_str(x, b1, sizeof b1),
              bk_dims_str(a->ndim > BK_MAXDIM ? BK_MAXDIM : a->ndim, a->shape, b2, sizeof b2));
    return NULL;
}

int bk_bw_EXPAND(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    /* The engine sums the broadcast-shaped gradient down to the input. */
    if (e->in[0]->requires_grad)
        gin[0] = bk_retain(gout);
    return 0;
}

/* ------------------------------------------------------ concat, stack --- */

/* Checks that all n inputs have the shape of in[0], except along `skip`
 * (-1: everywhere). */
static int check_same_shapes(bk_ctx *ctx, const char *op, int n, bk_tensor **in,
                             int64_t skip)
{
    char b1[128], b2[128];
    for (int i = 1; i < n; i++) {
        bool ok = in[i]->ndim == in[0]->ndim;
        for (int d = 0; ok && d < in[0]->ndim; d++)
            ok = d == skip || in[i]->shape[d] == in[0]->shape[d];
        if (ok)
            continue;
        if (skip >= 0)
            bk_seterr(ctx, "%s: shapes %s and %s differ outside axis %lld", op,
                      bk_shape_str(in[0], b1, sizeof b1),
                      bk_shape_str(in[i], b2, sizeof b2), (long long)skip);
        else
            bk_seterr(ctx, "%s: all tensors must have the same shape, got %s and %s", op,
                      bk_shape_str(in[0], b1, sizeof b1), bk_shape_str(in[i], b2, sizeof b2));
        return -1;
    }
    return 0;
}

/* Copies each input, viewed as [outer, block_i], into consecutive column
 * ranges of out viewed as [outer, sum(block_i)]. */
static int copy_blocks(bk_ctx *ctx, int n, bk_tensor **in, int64_t outer,
                       const int64_t *block, double *out)
{
    int64_t total = 0, col = 0;
    for (int i = 0; i < n; i++)
        total += block[i];
    for (int i = 0; i < n; i++) {
        double *tmp;
        const double *src = read_f64(ctx, in[i], &tmp);
        if (in[i]->numel > 0 && !src)
            return -1;
        for (int64_t r = 0; r < outer && block[i] > 0; r++)
            memcpy(out + r * total + col, src + r * block[i],
                   (size_t)block[i] * sizeof(double));
        bk_free(ctx, tmp);
        col += block[i];
    }
    return 0;
}

static int check_variadic(bk_ctx *ctx, const char *op, int n)
{
    if (n < 1) {
        bk_seterr(ctx, "%s: needs at least one tensor", op);
        return -1;
    }
    return 0;
}

bk_tensor *bk_fw_CONCAT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    int n = a->n;
    int64_t axis, shape[BK_MAXDIM], outer = 1, inner = 1, *block;
    bk_tensor *out;
    if (check_variadic(ctx, "concat", n) < 0)
        return NULL;
    if (in[0]->ndim == 0) {
        bk_seterr(ctx, "concat: zero-dimensional tensors cannot be concatenated");
        return NULL;
    }
    if (norm_axis(ctx, "concat", a->axis, in[0]->ndim, &axis) < 0 ||
        check_same_shapes(ctx, "concat", n, in, axis) < 0)
        return NULL;
    memcpy(shape, in[0]->shape, sizeof shape);
    shape[axis] = 0;
    for (int i = 0; i < n; i++)
        shape[axis] += in[i]->shape[axis];
    for (int d = 0; d < axis; d++)
        outer *= shape[d];
    for (int d = (int)axis + 1; d < in[0]->ndim; d++)
        inner *= shape[d];
    block = bk_malloc(ctx, (size_t)n * sizeof *block);
    if (!block)
        return NULL;
    for (int i = 0; i < n; i++)
        block[i] = in[i]->shape[axis] * inner;
    out = bk_empty(ctx, BK_F64, in[0]->ndim, shape);
    if (out && out->numel > 0 && copy_blocks(ctx, n, in, outer, block, bk_data(out)) < 0) {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, block);
    return out;
}

int bk_bw_CONCAT(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    int64_t axis = e->args.axis < 0 ? e->args.axis + gout->ndim : e->args.axis;
    int64_t start = 0;
    for (int i = 0; i < e->nin; i++) {
        const bk_tensor *x = e->in[i];
        if (x->requires_grad) {
            gin[i] = bk_view(ctx, gout, gout->ndim, x->shape, gout->strides,
                             gout->offset + (x->numel > 0 ? start * gout->strides[axis] : 0));
            if (!gin[i])
                return -1;
        }
        start += x->shape[axis];
    }
    return 0;
}

bk_tensor *bk_fw_STACK(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    int n = a->n;
    int nd;
    int64_t axis, shape[BK_MAXDIM], outer = 1, inner = 1, *block;
    bk_tensor *out;
    if (check_variadic(ctx, "stack", n) < 0)
        return NULL;
    nd = in[0]->ndim + 1;
    if (nd > BK_MAXDIM) {
        bk_seterr(ctx, "stack: result would have more than %d dimensions", BK_MAXDIM);
        return NULL;
    }
    if (norm_axis(ctx, "stack", a->axis, nd, &axis) < 0 ||
        check_same_shapes(ctx, "stack", n, in, -1) < 0)
        return NULL;
    for (int d = 0, j = 0; d < nd; d++)
        shape[d] = d == axis ? n : in[0]->shape[j++];
    for (int d = 0; d < axis; d++)
        outer *= shape[d];
    for (int d = (int)axis + 1; d < nd; d++)
        inner *= shape[d];
    block = bk_malloc(ctx, (size_t)n * sizeof *block);
    if (!block)
        return NULL;
    for (int i = 0; i < n; i++)
        block[i] = inner;
    out = bk_empty(ctx, BK_F64, nd, shape);
    if (out && out->numel > 0 && copy_blocks(ctx, n, in, outer, block, bk_data(out)) < 0) {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, block);
    return out;
}

int bk_bw_STACK(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    int64_t axis = e->args.axis < 0 ? e->args.axis + gout->ndim : e->args.axis;
    int64_t strides[BK_MAXDIM];
    for (int d = 0, j = 0; d < gout->ndim; d++)
        if (d != axis)
            strides[j++] = gout->strides[d];
    for (int i = 0; i < e->nin; i++) {
        const bk_tensor *x = e->in[i];
        if (!x->requires_grad)
            continue;
        gin[i] = bk_view(ctx, gout, x->ndim, x->shape, strides,
                         gout->offset + (x->numel > 0 ? i * gout->strides[axis] : 0));
        if (!gin[i])
            return -1;
    }
    return 0;
}

/* ------------------------------------------------- contiguous, cast --- */

bk_tensor *bk_fw_CONTIGUOUS(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    return copy_as(ctx, in[0], (bk_dtype)in[0]->dtype, in[0]->ndim, in[0]->shape);
}

int bk_bw_CONTIGUOUS(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    if (e->in[0]->requires_grad)
        gin[0] = bk_retain(gout);
    return 0;
}

bk_tensor *bk_fw_CAST(bk_ctx *ctx, bk_tensor **in, const bk_opargs *a)
{
    if (a->n != BK_F64 && a->n != BK_F32) {
        bk_seterr(ctx, "cast: unknown dtype %d", a->n);
        return NULL;
    }
    return copy_as(ctx, in[0], (bk_dtype)a->n, in[0]->ndim, in[0]->shape);
}

int bk_bw_CAST(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin)
{
    const bk_tensor *x = e->in[0];
    if (!x->requires_grad)
        return 0;
    gin[0] = gout->dtype == x->dtype ? bk_retain(gout)
                                     : bk_cast(ctx, gout, (bk_dtype)x->dtype);
    return gin[0] ? 0 : -1;
}
