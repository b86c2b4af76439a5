/* ops_hmm.h - the parallel-scan forward of the HMM ops (ops_hmm.c), for
 * very long sequences and few states; not an op (no gradient). */
#ifndef PPL_BACKEND_OPS_HMM_H
#define PPL_BACKEND_OPS_HMM_H
#include <stdbool.h>
#include "tensor.h"

/* log p(y) of each sequence, as the op hmm_forward (cat false) or
 * hmm_forward_cat (cat true) on the same four inputs would compute it,
 * into out (one double per sequence), using nthreads threads: the steps
 * are cut into nthreads chunks whose transfer matrices are computed in
 * parallel (K^3 work per step instead of K^2) and then combined in order.
 * 0, or -1 + bk error. */
int bk_hmm_forward_scan(bk_ctx *ctx, bk_tensor **in, bool cat, int nthreads, double *out);

#endif
