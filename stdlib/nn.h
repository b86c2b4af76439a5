/* nn.h - neural-network layers on backend tensors: activations, the affine
 * (linear) layer, layer normalization, dropout and weight initializers.
 * Every function is built from differentiable backend ops (the matrix
 * product goes through BLAS), so a network's backward pass is the tape's.
 * Weights are stored [in, out]: a layer computes x @ W + b for x [..., in].
 * Functions return a new tensor, or NULL with the backend error set. */
#ifndef PPL_STDLIB_NN_H
#define PPL_STDLIB_NN_H

#include "tensor.h"
#include "rng.h"

typedef enum {
    NN_ACT_NONE = 0, NN_ACT_RELU, NN_ACT_TANH, NN_ACT_SIGMOID, NN_ACT_SOFTPLUS,
    NN_ACT_ELU, NN_ACT_LEAKY_RELU, NN_ACT_COUNT
} nn_act;

/* "relu", "tanh", ... ("none" and "identity" are NN_ACT_NONE); -1 when unknown. */
int nn_act_lookup(const char *name);
const char *nn_act_name(int act);
/* The default constant of elu (alpha 1) and leaky_relu (slope 0.01), else 0. */
double nn_act_default_k(int act);
/* act(x); k is elu's alpha or leaky_relu's slope. */
bk_tensor *nn_activate(bk_ctx *, int act, double k, bk_tensor *x);
/* x @ w + b (b may be NULL); x [..., in], w [in, out], b [out]. */
bk_tensor *nn_linear(bk_ctx *, bk_tensor *x, bk_tensor *w, bk_tensor *b);
/* Normalize over the last axis (biased variance, as PyTorch), then scale
 * by gamma and shift by beta (either may be NULL). */
bk_tensor *nn_layer_norm(bk_ctx *, bk_tensor *x, bk_tensor *gamma, bk_tensor *beta, double eps);
/* Inverted dropout: zero each element with probability p and scale the
 * others by 1/(1-p) (0 <= p < 1; p = 0 returns x). */
bk_tensor *nn_dropout(bk_ctx *, bk_rng *, bk_tensor *x, double p);
/* Initial weights [fan_in, fan_out]: Xavier/Glorot uniform on
 * (-a, a) with a = gain sqrt(6 / (fan_in + fan_out)); Kaiming/He normal with
 * sd gain / sqrt(fan_in) (gain sqrt(2) for ReLU). */
bk_tensor *nn_init_xavier(bk_ctx *, bk_rng *, int64_t fan_in, int64_t fan_out, double gain);
bk_tensor *nn_init_kaiming(bk_ctx *, bk_rng *, int64_t fan_in, int64_t fan_out, double gain);

#endif
