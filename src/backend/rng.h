/* rng.h - Philox4x32-10 counter-based random numbers and the samplers built
 * on them.  A generator is keyed by (seed, stream); the same key gives the
 * same numbers on any thread count and (later) on the GPU. */
#ifndef PPL_BACKEND_RNG_H
#define PPL_BACKEND_RNG_H

#include <stdint.h>
#include "tensor.h"

typedef struct bk_rng {
    uint32_t key[2];      /* from the seed */
    uint32_t ctr[4];      /* ctr[2..3] hold the stream, ctr[0..1] the block */
    uint32_t buf[4];      /* last output block */
    int used;             /* words of buf consumed (4 = empty) */
    double spare;         /* cached second Box-Muller normal */
    int has_spare;
} bk_rng;

void bk_rng_init(bk_rng *r, uint64_t seed, uint64_t stream);
/* One Philox4x32-10 block: out = philox(ctr, key).  Exposed for the
 * known-answer test. */
void bk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
uint32_t bk_rng_u32(bk_rng *r);
double bk_rng_uniform(bk_rng *r);        /* (0, 1), never 0 or 1 */
double bk_rng_normal(bk_rng *r);         /* standard normal */
double bk_rng_gamma(bk_rng *r, double shape);    /* rate 1; any shape > 0 */
double bk_rng_beta(bk_rng *r, double a, double b);
int64_t bk_rng_poisson(bk_rng *r, double rate);
int64_t bk_rng_binomial(bk_rng *r, int64_t n, double p);
/* Draws k in [0, n) with probabilities p[0..n) (need not sum to 1). */
int64_t bk_rng_categorical(bk_rng *r, int64_t n, const double *p);
void bk_rng_dirichlet(bk_rng *r, int64_t k, const double *alpha, double *out);
/* Fisher-Yates permutation of 0..n-1 into out. */
void bk_rng_permutation(bk_rng *r, int64_t n, int64_t *out);

/* Tensor conveniences (new float64 tensors, not recorded on the tape). */
bk_tensor *bk_rand_uniform(bk_ctx *, bk_rng *, int ndim, const int64_t *shape);
bk_tensor *bk_rand_normal(bk_ctx *, bk_rng *, int ndim, const int64_t *shape);
/* Gamma(alpha, 1) draws with shape of alpha broadcast to `shape`; the result
 * is recorded on the tape (op-free) so that gradients w.r.t. alpha use the
 * implicit reparameterization dz/dalpha = -(dF/dalpha)/f(z). */
bk_tensor *bk_rand_gamma(bk_ctx *, bk_rng *, bk_tensor *alpha, int ndim,
                         const int64_t *shape);

#endif
