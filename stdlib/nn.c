/* nn.c - neural-network layers from backend ops (see nn.h). */
#include <math.h>
#include <string.h>
#include "nn.h"

static const char *const ACT_NAMES[NN_ACT_COUNT] = {
    [NN_ACT_NONE] = "none", [NN_ACT_RELU] = "relu", [NN_ACT_TANH] = "tanh",
    [NN_ACT_SIGMOID] = "sigmoid", [NN_ACT_SOFTPLUS] = "softplus", [NN_ACT_ELU] = "elu",
    [NN_ACT_LEAKY_RELU] = "leaky_relu",
};

int nn_act_lookup(const char *name) {
    if (strcmp(name, "identity") == 0 || strcmp(name, "linear") == 0) return NN_ACT_NONE;
    for (int i = 0; i < NN_ACT_COUNT; i++)
        if (strcmp(name, ACT_NAMES[i]) == 0) return i;
    return -1;
}

const char *nn_act_name(int act) { return act >= 0 && act < NN_ACT_COUNT ? ACT_NAMES[act] : "?"; }

double nn_act_default_k(int act) {
    return act == NN_ACT_ELU ? 1.0 : act == NN_ACT_LEAKY_RELU ? 0.01 : 0.0;
}

bk_tensor *nn_activate(bk_ctx *c, int act, double k, bk_tensor *x) {
    switch (act) {
    case NN_ACT_NONE: return bk_retain(x);
    case NN_ACT_RELU: return bk_unop(c, BK_OP_RELU, x);
    case NN_ACT_TANH: return bk_unop(c, BK_OP_TANH, x);
    case NN_ACT_SIGMOID: return bk_unop(c, BK_OP_SIGMOID, x);
    case NN_ACT_SOFTPLUS: return bk_unop(c, BK_OP_SOFTPLUS, x);
    case NN_ACT_ELU: return bk_elu(c, x, k);
    case NN_ACT_LEAKY_RELU: return bk_leaky_relu(c, x, k);
    }
    bk_seterr(c, "unknown activation %d", act);
    return NULL;
}

bk_tensor *nn_linear(bk_ctx *c, bk_tensor *x, bk_tensor *w, bk_tensor *b) {
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[0]) {
        char a[64], s[64];
        bk_seterr(c, "linear layer: input of shape %s does not fit weights of shape %s (last input "
                  "dimension must be %lld)", bk_shape_str(x, a, sizeof a), bk_shape_str(w, s, sizeof s),
                  w->ndim == 2 ? (long long)w->shape[0] : -1LL);
        return NULL;
    }
    bk_tensor *y = bk_matmul(c, x, w);
    if (!y || !b) return y;
    bk_tensor *r = bk_add(c, y, b);
    bk_release(y);
    return r;
}

bk_tensor *nn_layer_norm(bk_ctx *c, bk_tensor *x, bk_tensor *gamma, bk_tensor *beta, double eps) {
    if (x->ndim < 1) {
        bk_seterr(c, "layer_norm: the input must have at least one dimension");
        return NULL;
    }
    bk_tensor *mu = bk_reduce(c, BK_OP_MEAN, x, -1, true);
    bk_tensor *xc = mu ? bk_sub(c, x, mu) : NULL;
    bk_tensor *sq = xc ? bk_unop(c, BK_OP_SQUARE, xc) : NULL;
    bk_tensor *var = sq ? bk_reduce(c, BK_OP_MEAN, sq, -1, true) : NULL;
    bk_tensor *ve = var ? bk_add_s(c, var, eps) : NULL;
    bk_tensor *sd = ve ? bk_unop(c, BK_OP_SQRT, ve) : NULL;
    bk_tensor *y = sd ? bk_div(c, xc, sd) : NULL;
    bk_release(mu);
    bk_release(xc);
    bk_release(sq);
    bk_release(var);
    bk_release(ve);
    bk_release(sd);
    if (y && gamma) {
        bk_tensor *t = bk_mul(c, y, gamma);
        bk_release(y);
        y = t;
    }
    if (y && beta) {
        bk_tensor *t = bk_add(c, y, beta);
        bk_release(y);
        y = t;
    }
    return y;
}

bk_tensor *nn_dropout(bk_ctx *c, bk_rng *rng, bk_tensor *x, double p) {
    if (!(p >= 0 && p < 1)) {
        bk_seterr(c, "dropout: the probability must be in [0, 1), got %g", p);
        return NULL;
    }
    if (p == 0) return bk_retain(x);
    bk_tensor *mask = bk_empty(c, (bk_dtype)x->dtype, x->ndim, x->shape);
    if (!mask) return NULL;
    double keep = 1.0 / (1.0 - p);
    if (mask->dtype == BK_F32)
        for (int64_t i = 0; i < mask->numel; i++) bk_data_f32(mask)[i] = bk_rng_uniform(rng) < p ? 0.0f : (float)keep;
    else
        for (int64_t i = 0; i < mask->numel; i++) bk_data(mask)[i] = bk_rng_uniform(rng) < p ? 0.0 : keep;
    bk_tensor *dm = bk_to_device(c, mask, bk_tensor_device(x)); /* the mask joins x */
    bk_release(mask);
    bk_tensor *r = dm ? bk_mul(c, x, dm) : NULL;
    bk_release(dm);
    return r;
}

static bk_tensor *init_weights(bk_ctx *c, bk_rng *rng, int64_t fan_in, int64_t fan_out, double scale,
                               bool normal) {
    if (fan_in < 1 || fan_out < 1) {
        bk_seterr(c, "weight initializer: sizes must be positive, got [%lld, %lld]", (long long)fan_in,
                  (long long)fan_out);
        return NULL;
    }
    bk_tensor *w = bk_empty(c, BK_F64, 2, (int64_t[]){fan_in, fan_out});
    if (!w) return NULL;
    double *d = bk_data(w);
    for (int64_t i = 0; i < w->numel; i++)
        d[i] = normal ? scale * bk_rng_normal(rng) : scale * (2 * bk_rng_uniform(rng) - 1);
    return bk_place_nd(c, w); /* drawn on the host, used on the run's device */
}

bk_tensor *nn_init_xavier(bk_ctx *c, bk_rng *rng, int64_t fan_in, int64_t fan_out, double gain) {
    return init_weights(c, rng, fan_in, fan_out, gain * sqrt(6.0 / (double)(fan_in + fan_out)), false);
}

bk_tensor *nn_init_kaiming(bk_ctx *c, bk_rng *rng, int64_t fan_in, int64_t fan_out, double gain) {
    return init_weights(c, rng, fan_in, fan_out, fan_in > 0 ? gain / sqrt((double)fan_in) : 0, true);
}
