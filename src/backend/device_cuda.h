/* device_cuda.h - the CUDA device (src/backend/cuda/, built with
 * -DPPL_CUDA=ON) as the rest of the C code sees it.  Only bk_cuda_probe
 * exists in every build; it says why CUDA cannot be used in one without. */
#ifndef PPL_BACKEND_DEVICE_CUDA_H
#define PPL_BACKEND_DEVICE_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when a CUDA device can be used, else -1 with the reason in why
 * ("ppl was built without CUDA support; ..." / "no CUDA device found: ..."). */
int bk_cuda_probe(char *why, size_t n);

#ifdef PPL_CUDA
extern const bk_device bk_cuda_device;

/* The caching allocator of a context's CUDA state. */
typedef struct bk_cuda_stats {
    long device_mallocs;     /* cudaMalloc calls */
    long cache_hits;         /* allocations served from the cache */
    long cache_returns;      /* frees kept in the cache */
    size_t bytes_in_use, bytes_cached, peak_in_use;
} bk_cuda_stats;
int bk_cuda_get_stats(bk_ctx *, bk_cuda_stats *out);

/* n raw Philox words from the generator's current position, without
 * advancing it (out: host memory).  The same words as bk_rng_u32. */
int bk_cuda_philox_words(bk_ctx *, const bk_rng *r, int64_t n, uint32_t *out);
/* bk_rand_uniform / bk_rand_normal on the GPU: the same numbers from the
 * same generator, which advances as it would on the CPU. */
bk_tensor *bk_cuda_rand_uniform(bk_ctx *, bk_rng *r, int ndim, const int64_t *shape);
bk_tensor *bk_cuda_rand_normal(bk_ctx *, bk_rng *r, int ndim, const int64_t *shape);
#endif

#ifdef __cplusplus
}
#endif
#endif
