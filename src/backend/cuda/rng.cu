/* rng.cu - Philox4x32-10 on the GPU: the words, uniforms and normals of
 * rng.c for the same generator, computed in parallel.
 *
 * rng.c's generator is a position in one stream of 32-bit words (block
 * counter in ctr[0..1], the stream in ctr[2..3], four words a block): word
 * W is word W % 4 of block W / 4.  A uniform takes two words, a normal pair
 * (Box-Muller) two uniforms, so element i of a draw reads words at a fixed
 * offset from the start, and every thread can compute its own.  The host
 * generator then moves on exactly as the CPU's would.  (cuRAND's Philox
 * keys and counts the same way: curand_init(seed, subsequence, offset).)
 *
 * What the GPU cannot reproduce in parallel it leaves to the CPU: a uniform
 * whose 53 bits are all zero (probability 2^-53) makes rng.c draw again,
 * shifting the stream; the kernel flags it and the draw is redone on the
 * host.  Raw words and uniforms are bit-identical; normals agree to the
 * last ulps of CUDA's log / sin / cos (1-2 ulp, glibc's are within 1). */
#include <math.h>
#include <string.h>

#include "cuda_common.cuh"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct philox_key {
    uint32_t k0, k1, s0, s1;
} philox_key;

__device__ __forceinline__ void philox_block(uint64_t block, const philox_key &K, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = K.s0, c3 = K.s1;
    uint32_t k0 = K.k0, k1 = K.k1;
#pragma unroll
    for (int r = 0; r < 10; r++) {
        uint32_t hi0 = __umulhi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        uint32_t hi1 = __umulhi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

__device__ __forceinline__ uint32_t philox_word(uint64_t w, const philox_key &K) {
    uint32_t o[4];
    philox_block(w >> 2, K, o);
    return o[w & 3];
}

/* The uniform made of words w and w + 1 (rng.c's), or -1 when its 53 bits
 * are zero (rng.c would draw again). */
__device__ __forceinline__ double uniform_at(uint64_t w, const philox_key &K) {
    uint32_t o[4];
    philox_block(w >> 2, K, o);
    uint32_t a0 = o[w & 3], b0;
    if ((w & 3) == 3) b0 = philox_word(w + 1, K);
    else b0 = o[(w & 3) + 1];
    uint64_t k = ((uint64_t)(a0 >> 5) << 26) | (b0 >> 6);
    return k ? (double)k * 0x1p-53 : -1.0;
}

__global__ void words_kernel(philox_key K, uint64_t w0, uint32_t *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = philox_word(w0 + (uint64_t)i, K);
}

__global__ void uniform_kernel(philox_key K, uint64_t w0, double *out, int64_t n, unsigned long long *flag) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double u = uniform_at(w0 + 2 * (uint64_t)i, K);
        if (u < 0) atomicMin(flag, (unsigned long long)i);
        out[i] = u;
    }
}

/* Pair j fills out[2j] (cos) and out[2j + 1] (sin) of m values. */
__global__ void normal_kernel(philox_key K, uint64_t w0, double *out, int64_t m, unsigned long long *flag) {
    int64_t pairs = (m + 1) / 2;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < pairs; j += (int64_t)gridDim.x * blockDim.x) {
        double u1 = uniform_at(w0 + 4 * (uint64_t)j, K), u2 = uniform_at(w0 + 4 * (uint64_t)j + 2, K);
        if (u1 < 0 || u2 < 0) {
            atomicMin(flag, (unsigned long long)j);
            continue;
        }
        double rad = sqrt(-2 * log(u1)), th = 2 * 3.14159265358979323846 * u2;
        out[2 * j] = rad * cos(th);
        if (2 * j + 1 < m) out[2 * j + 1] = rad * sin(th);
    }
}

static philox_key key_of(const bk_rng *r) {
    philox_key K = {r->key[0], r->key[1], r->ctr[2], r->ctr[3]};
    return K;
}

/* The position of the generator's next word. */
static uint64_t word_pos(const bk_rng *r) {
    uint64_t block = ((uint64_t)r->ctr[1] << 32) | r->ctr[0];
    return 4 * block - 4 + (uint64_t)r->used;
}

/* Moves the generator to word w, as bk_rng_u32 would have left it. */
static void set_word_pos(bk_rng *r, uint64_t w) {
    uint64_t block = w / 4;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), r->ctr[2], r->ctr[3]};
    if (w % 4 == 0) {
        r->ctr[0] = ctr[0];
        r->ctr[1] = ctr[1];
        r->used = 4;
        return;
    }
    bk_philox4x32_10(ctr, r->key, r->buf);
    block++;
    r->ctr[0] = (uint32_t)block;
    r->ctr[1] = (uint32_t)(block >> 32);
    r->used = (int)(w % 4);
}

extern "C" int bk_cuda_philox_words(bk_ctx *ctx, const bk_rng *r, int64_t n, uint32_t *out) {
    cu_state *s = cu_get(ctx);
    if (!s) return -1;
    if (n <= 0) return 0;
    uint32_t *d = (uint32_t *)cu_alloc(ctx, (size_t)n * sizeof *d);
    if (!d) return -1;
    words_kernel<<<cu_grid(n), CU_THREADS, 0, s->stream>>>(key_of(r), word_pos(r), d, n);
    int rc = cu_launched(ctx, "philox") ||
             cu_check(ctx, cudaMemcpyAsync(out, d, (size_t)n * sizeof *d, cudaMemcpyDeviceToHost, s->stream), "copy") ||
             cu_check(ctx, cudaStreamSynchronize(s->stream), "philox");
    cu_free(ctx, d);
    return rc ? -1 : 0;
}

/* The CPU's draw from (a copy of) the generator, uploaded: for the rare
 * case the kernels cannot reproduce. */
static bk_tensor *on_host(bk_ctx *ctx, bk_rng *r, int normal, int ndim, const int64_t *shape) {
    bk_tensor *h = normal ? bk_rand_normal(ctx, r, ndim, shape) : bk_rand_uniform(ctx, r, ndim, shape);
    bk_tensor *d = bk_to_device(ctx, h, &bk_cuda_device);
    bk_release(h);
    return d;
}

static bk_tensor *draw(bk_ctx *ctx, bk_rng *r, int normal, int ndim, const int64_t *shape) {
    cu_state *s = cu_get(ctx);
    if (!s) return NULL;
    bk_tensor *out = cu_empty(ctx, BK_F64, ndim, shape);
    if (!out || out->numel == 0) return out;
    bk_rng start = *r;
    int64_t n = out->numel, first = 0;
    double *o = (double *)out->st->data;
    if (normal && r->has_spare) { /* the cached second normal comes first */
        if (cu_check(ctx, cudaMemcpyAsync(o, &r->spare, sizeof(double), cudaMemcpyHostToDevice, s->stream), "copy")) {
            bk_release(out);
            return NULL;
        }
        first = 1;
    }
    int64_t m = n - first;
    uint64_t w0 = word_pos(r);
    unsigned long long pos = ~0ULL;
    int rc = cu_flag_reset(ctx, s);
    if (rc == 0 && m > 0) {
        if (normal) normal_kernel<<<cu_grid((m + 1) / 2), CU_THREADS, 0, s->stream>>>(key_of(r), w0, o + first, m, s->flag);
        else uniform_kernel<<<cu_grid(m), CU_THREADS, 0, s->stream>>>(key_of(r), w0, o, m, s->flag);
        rc = cu_launched(ctx, "philox");
    }
    if (rc == 0) rc = cu_flag_read(ctx, s, &pos);
    if (rc) {
        bk_release(out);
        return NULL;
    }
    if (pos != ~0ULL) { /* a zero uniform: rng.c draws again; so do we, there */
        bk_release(out);
        *r = start;
        return on_host(ctx, r, normal, ndim, shape);
    }
    if (!normal) {
        set_word_pos(r, w0 + 2 * (uint64_t)m);
        return out;
    }
    r->has_spare = 0;
    if (m > 0) {
        int64_t pairs = (m + 1) / 2;
        if (m % 2) { /* the last pair's sine is the CPU's spare: make it on the host */
            set_word_pos(r, w0 + 4 * (uint64_t)(pairs - 1));
            double u1 = bk_rng_uniform(r), u2 = bk_rng_uniform(r);
            r->spare = sqrt(-2 * log(u1)) * sin(2 * 3.14159265358979323846 * u2);
            r->has_spare = 1;
        }
        set_word_pos(r, w0 + 4 * (uint64_t)pairs);
    }
    return out;
}

extern "C" bk_tensor *bk_cuda_rand_uniform(bk_ctx *ctx, bk_rng *r, int ndim, const int64_t *shape) {
    return draw(ctx, r, 0, ndim, shape);
}

extern "C" bk_tensor *bk_cuda_rand_normal(bk_ctx *ctx, bk_rng *r, int ndim, const int64_t *shape) {
    return draw(ctx, r, 1, ndim, shape);
}
