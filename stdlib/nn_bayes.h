/* nn_bayes.h - the local reparameterization of an affine layer whose
 * weights are independent Normals (Kingma, Salimans and Welling 2015).
 *
 * With W[i, j] ~ N(wloc[i, j], wscale[i, j]^2) and b[j] ~ N(bloc[j],
 * bscale[j]^2) all independent, each pre-activation a = x @ W + b of an
 * input row x is Normal with
 *     mean = x @ wloc + bloc,   var = (x * x) @ (wscale * wscale) + bscale^2,
 * and distinct rows and distinct output units are independent given the
 * input.  Drawing a = mean + sqrt(var) * eps (eps standard Normal, one per
 * row and unit) gives every data point its own weight draw, in
 * distribution, for the cost of two matrix products.
 *
 * The bias is optional: bloc = bscale = NULL is no bias; bloc with
 * bscale = NULL a fixed bias.  The variance gets NN_LR_VAR_FLOOR added so
 * that sqrt stays differentiable where a row of x is all zero and there is
 * no bias noise.  Functions return a new tensor, or NULL with the backend
 * error set; every op is differentiable (the tape's backward). */
#ifndef PPL_STDLIB_NN_BAYES_H
#define PPL_STDLIB_NN_BAYES_H

#include "tensor.h"

#define NN_LR_VAR_FLOOR 1e-24

/* mean (returned) and variance (*var) of x @ W + b; x [..., in],
 * wloc / wscale [in, out], bloc / bscale [out]. */
bk_tensor *nn_lr_moments(bk_ctx *, bk_tensor *x, bk_tensor *wloc, bk_tensor *wscale, bk_tensor *bloc,
                         bk_tensor *bscale, bk_tensor **var);
/* mean + sqrt(var) * eps with eps of the output's shape [..., out]. */
bk_tensor *nn_lr_linear(bk_ctx *, bk_tensor *x, bk_tensor *wloc, bk_tensor *wscale, bk_tensor *bloc,
                        bk_tensor *bscale, bk_tensor *eps);

#endif
