/* ops_nn.c - activations of neural networks that carry a constant (ELU's
 * alpha, leaky ReLU's slope in bk_opargs.scalar), and their backward rules.
 *
 * The forward kernels read any strided input in row-major order (in
 * double) and write a contiguous result of the input's dtype; the backward rules compute the derivative
 * from the input (and output) in one pass and multiply by the incoming
 * gradient. */
#include <math.h>
#include "ops_impl.h"

/* Contiguous float64 copy of t's elements, or t's own data. */
static const double *elems(bk_ctx *c, const bk_tensor *t, double **tmp) {
    *tmp = NULL;
    if (bk_is_contiguous(t) && t->dtype == BK_F64) return (const double *)t->st->data + t->offset;
    *tmp = bk_malloc(c, (size_t)(t->numel > 0 ? t->numel : 1) * sizeof(double));
    if (*tmp) bk_copy_out(t, *tmp);
    return *tmp;
}

static bk_tensor *act_forward(bk_ctx *c, bk_tensor *x, int op, double k) {
    double *tmp;
    const double *v = elems(c, x, &tmp);
    if (!v) return NULL;
    bk_tensor *out = bk_empty(c, (bk_dtype)x->dtype, x->ndim, x->shape);
    if (out) {
        int64_t n = x->numel;
        if (out->dtype == BK_F32) { /* float32 in, float32 out: computed in double */
            float *o = bk_data_f32(out);
            for (int64_t i = 0; i < n; i++)
                o[i] = (float)(v[i] > 0 ? v[i] : op == BK_OP_ELU ? k * expm1(v[i]) : k * v[i]);
        } else {
            double *o = bk_data(out);
            if (op == BK_OP_ELU)
                for (int64_t i = 0; i < n; i++) o[i] = v[i] > 0 ? v[i] : k * expm1(v[i]);
            else
                for (int64_t i = 0; i < n; i++) o[i] = v[i] > 0 ? v[i] : k * v[i];
        }
    }
    bk_free(c, tmp);
    return out;
}

/* gin[0] = g * f'(x); g has the output's (= the input's) shape. */
static int act_backward(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    if (!e->in[0]->requires_grad) return 0;
    bk_tensor *x = e->in[0];
    double k = e->args.scalar;
    double *tx, *tg;
    const double *v = elems(c, x, &tx);
    const double *gv = v ? elems(c, g, &tg) : NULL;
    bk_tensor *r = NULL;
    if (gv && g->numel == x->numel) {
        r = bk_empty(c, (bk_dtype)x->dtype, x->ndim, x->shape);
        if (r && r->dtype == BK_F32) {
            float *o = bk_data_f32(r);
            for (int64_t i = 0; i < x->numel; i++)
                o[i] = (float)(gv[i] * (v[i] > 0 ? 1.0 : e->op == BK_OP_ELU ? k * exp(v[i]) : k));
        } else if (r) {
            double *o = bk_data(r);
            int64_t n = x->numel;
            if (e->op == BK_OP_ELU)
                for (int64_t i = 0; i < n; i++) o[i] = gv[i] * (v[i] > 0 ? 1.0 : k * exp(v[i]));
            else
                for (int64_t i = 0; i < n; i++) o[i] = gv[i] * (v[i] > 0 ? 1.0 : k);
        }
    } else if (gv) {
        bk_seterr(c, "%s backward: gradient has %lld elements, expected %lld", bk_optable[e->op].name,
                  (long long)g->numel, (long long)x->numel);
    }
    if (gv) bk_free(c, tg);
    if (v) bk_free(c, tx);
    gin[0] = r;
    return r ? 0 : -1;
}

bk_tensor *bk_fw_ELU(bk_ctx *c, bk_tensor **in, const bk_opargs *a) { return act_forward(c, in[0], BK_OP_ELU, a->scalar); }
bk_tensor *bk_fw_LEAKY_RELU(bk_ctx *c, bk_tensor **in, const bk_opargs *a) {
    return act_forward(c, in[0], BK_OP_LEAKY_RELU, a->scalar);
}
int bk_bw_ELU(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) { return act_backward(c, e, g, gin); }
int bk_bw_LEAKY_RELU(bk_ctx *c, const bk_tape_entry *e, bk_tensor *g, bk_tensor **gin) {
    return act_backward(c, e, g, gin);
}

static bk_tensor *act(bk_ctx *c, int op, bk_tensor *a, double k) {
    bk_opargs args = {0};
    args.scalar = k;
    return bk_apply(c, op, 1, &a, &args);
}

bk_tensor *bk_elu(bk_ctx *c, bk_tensor *a, double alpha) { return act(c, BK_OP_ELU, a, alpha); }
bk_tensor *bk_leaky_relu(bk_ctx *c, bk_tensor *a, double slope) { return act(c, BK_OP_LEAKY_RELU, a, slope); }
