/* rng.c - Philox4x32-10 (Salmon et al. 2011, as in Random123 and cuRAND)
 * and the samplers built on it.  A generator is keyed by (seed, stream); the
 * counter walks blocks of four 32-bit words, so any (seed, stream, block)
 * can be computed independently - the basis for reproducible parallel
 * chains and for identical draws on the GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "program.h"
#include "special.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One Philox round, then the key bump; written out ten times below (the
 * loop form spent a fifth of its instructions on the loop itself). */
#define PHILOX_ROUND()                                                              \
    do {                                                                            \
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;      \
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;                               \
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;                               \
        c1 = (uint32_t)p1;                                                          \
        c3 = (uint32_t)p0;                                                          \
        c0 = n0;                                                                    \
        c2 = n2;                                                                    \
        k0 += PHILOX_W0;                                                            \
        k1 += PHILOX_W1;                                                            \
    } while (0)

void bk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    PHILOX_ROUND();
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void bk_rng_init(bk_rng *r, uint64_t seed, uint64_t stream) {
    memset(r, 0, sizeof *r);
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[2] = (uint32_t)stream;
    r->ctr[3] = (uint32_t)(stream >> 32);
    r->used = 4;
}

/* The next block into buf (used = 0), the counter one on. */
static void refill(bk_rng *r) {
    bk_philox4x32_10(r->ctr, r->key, r->buf);
    if (++r->ctr[0] == 0) ++r->ctr[1];
    r->used = 0;
}

static inline uint32_t next_u32(bk_rng *r) {
    if ((unsigned)r->used >= 4) refill(r);
    return r->buf[r->used++];
}

uint32_t bk_rng_u32(bk_rng *r) { return next_u32(r); }

/* 53 bits from the next two words, a (first) high: k = (a >> 5) 2^26 + b >> 6.
 * With both words in the buffer (used 0..2: every draw of a stream that
 * only takes uniforms and normals) they are read at once. */
static inline uint64_t next_53(bk_rng *r) {
    uint32_t a, b;
    if ((unsigned)r->used <= 2) {
        a = r->buf[r->used];
        b = r->buf[r->used + 1];
        r->used += 2;
    } else {
        a = next_u32(r);
        b = next_u32(r);
    }
    return ((uint64_t)(a >> 5) << 26) | (b >> 6);
}

static inline double uniform(bk_rng *r) {
    /* k * 2^-53 for a 53-bit k is exact; k = 0 is redrawn (probability
     * 2^-53), so the result lies in [2^-53, 1 - 2^-53].  (Adding half an
     * ulp instead would round to exactly 1.0 at the top.) */
    for (;;) {
        uint64_t k = next_53(r);
        if (k) return (double)k * 0x1p-53;
    }
}

double bk_rng_uniform(bk_rng *r) { return uniform(r); }

double bk_rng_normal(bk_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = uniform(r), u2 = uniform(r);
    double rad = sqrt(-2 * log(u1)), th = 2 * 3.14159265358979323846 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

double bk_rng_gamma(bk_rng *r, double shape) {
    if (!(shape > 0)) return NAN;
    if (shape < 1) {
        /* boost: G(a) = G(a + 1) * U^(1/a), in log space for tiny a */
        double g = bk_rng_gamma(r, shape + 1);
        double lu = log(bk_rng_uniform(r)) / shape;
        return g * exp(lu);
    }
    /* Marsaglia and Tsang (2000) */
    double d = shape - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x, v;
        do {
            x = bk_rng_normal(r);
            v = 1 + c * x;
        } while (v <= 0);
        v = v * v * v;
        double u = bk_rng_uniform(r);
        if (u < 1 - 0.0331 * x * x * x * x) return d * v;
        if (log(u) < 0.5 * x * x + d * (1 - v + log(v))) return d * v;
    }
}

/* log of a Gamma(shape, 1) draw; for shape < 1 the boost is applied in
 * log space, log G(a + 1) + log(U) / a, which stays finite where the draw
 * itself underflows (a ~ 0.01 gives values like 1e-200 routinely). */
static double log_gamma_draw(bk_rng *r, double shape) {
    if (shape >= 1) return log(bk_rng_gamma(r, shape));
    double g = bk_rng_gamma(r, shape + 1);
    return log(g) + log(bk_rng_uniform(r)) / shape;
}

double bk_rng_beta(bk_rng *r, double a, double b) {
    if (!(a > 0) || !(b > 0)) return NAN;
    if (a >= 1 && b >= 1) {
        double x = bk_rng_gamma(r, a), y = bk_rng_gamma(r, b);
        return x / (x + y);
    }
    /* x / (x + y) = 1 / (1 + exp(log y - log x)) in log space */
    double lx = log_gamma_draw(r, a), ly = log_gamma_draw(r, b);
    return 1 / (1 + exp(ly - lx));
}

int64_t bk_rng_poisson(bk_rng *r, double rate) {
    /* -1 flags a rate that is negative, NaN or too large for int64 */
    if (!(rate >= 0) || !(rate < 4e18)) return -1;
    if (rate == 0) return 0;
    if (rate < 10) {
        /* inversion by sequential search */
        double u = bk_rng_uniform(r), p = exp(-rate), s = p;
        int64_t k = 0;
        while (u > s && k < 1000) {
            k++;
            p *= rate / (double)k;
            s += p;
        }
        return k;
    }
    /* PTRS, Hoermann (1993) */
    double slam = sqrt(rate), loglam = log(rate);
    double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double u = bk_rng_uniform(r) - 0.5, v = bk_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + rate + 0.43);
        if (us >= 0.07 && v <= vr) return (int64_t)k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <= -rate + k * loglam - lgamma(k + 1))
            return (int64_t)k;
    }
}

int64_t bk_rng_binomial(bk_rng *r, int64_t n, double p) {
    if (isnan(p)) return -1;
    if (n <= 0 || p <= 0) return 0;
    if (p >= 1) return n;
    if (p > 0.5) return n - bk_rng_binomial(r, n, 1 - p);
    if ((double)n * p < 30) {
        /* inversion */
        double q = 1 - p, s = p / q, a = (double)(n + 1) * s, f = pow(q, (double)n);
        double u = bk_rng_uniform(r);
        int64_t k = 0;
        while (u > f && k < n) {
            u -= f;
            k++;
            f *= a / (double)k - s;
        }
        return k;
    }
    /* BTRS, Hoermann (1993) */
    double spq = sqrt((double)n * p * (1 - p));
    double b = 1.15 + 2.53 * spq, a = -0.0873 + 0.0248 * b + 0.01 * p;
    double c = (double)n * p + 0.5, vr = 0.92 - 4.2 / b;
    double alpha = (2.83 + 5.1 / b) * spq, lpq = log(p / (1 - p));
    double m = floor((double)(n + 1) * p);
    double h = lgamma(m + 1) + lgamma((double)n - m + 1);
    for (;;) {
        double u = bk_rng_uniform(r) - 0.5, v = bk_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + c);
        if (k < 0 || k > (double)n) continue;
        if (us >= 0.07 && v <= vr) return (int64_t)k;
        v = log(v * alpha / (a / (us * us) + b));
        if (v <= h - lgamma(k + 1) - lgamma((double)n - k + 1) + (k - m) * lpq) return (int64_t)k;
    }
}

int64_t bk_rng_categorical(bk_rng *r, int64_t n, const double *p) {
    /* inverse cdf on the unnormalized weights; NaN and negative weights
     * count as 0; -1 when there is no positive weight at all */
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += p[i] > 0 ? p[i] : 0;
    if (!(total > 0)) return -1;
    double u = bk_rng_uniform(r) * total, s = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!(p[i] > 0)) continue;
        s += p[i];
        last = i;
        if (u < s) return i;
    }
    return last; /* u rounded above the running sum: the last positive one */
}

void bk_rng_dirichlet(bk_rng *r, int64_t k, const double *alpha, double *out) {
    /* gammas in log space, normalized by their log-sum-exp: small
     * concentrations underflow the gammas themselves */
    double m = -INFINITY;
    for (int64_t i = 0; i < k; i++) {
        out[i] = log_gamma_draw(r, alpha[i]);
        if (out[i] > m) m = out[i];
    }
    double s = 0;
    for (int64_t i = 0; i < k; i++) s += out[i] = exp(out[i] - m);
    for (int64_t i = 0; i < k; i++) out[i] /= s;
}

/* Unbiased integer in [0, n) (Lemire 2019). */
static uint64_t bounded(bk_rng *r, uint64_t n) {
    if (n <= 0xffffffffu) {
        uint64_t m = (uint64_t)bk_rng_u32(r) * n;
        uint32_t l = (uint32_t)m;
        if (l < n) {
            uint32_t t = (uint32_t)(-(uint32_t)n % (uint32_t)n);
            while (l < t) {
                m = (uint64_t)bk_rng_u32(r) * n;
                l = (uint32_t)m;
            }
        }
        return m >> 32;
    }
    for (;;) { /* rare: rejection on 64 bits */
        uint64_t x = ((uint64_t)bk_rng_u32(r) << 32) | bk_rng_u32(r);
        uint64_t lim = UINT64_MAX - UINT64_MAX % n;
        if (x < lim) return x % n;
    }
}

void bk_rng_permutation(bk_rng *r, int64_t n, int64_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)bounded(r, (uint64_t)i + 1);
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

/* ------------------------------------------------------------- tensors --- */

bk_tensor *bk_rand_uniform(bk_ctx *ctx, bk_rng *r, int ndim, const int64_t *shape) {
    bk_tensor *t = bk_empty(ctx, BK_F64, ndim, shape);
    if (!t) return NULL;
    double *p = bk_data(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = bk_rng_uniform(r);
    return t;
}

bk_tensor *bk_rand_normal(bk_ctx *ctx, bk_rng *r, int ndim, const int64_t *shape) {
    bk_tensor *t = bk_empty(ctx, BK_F64, ndim, shape);
    if (!t) return NULL;
    double *p = bk_data(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = bk_rng_normal(r);
    bk_prog_noise(ctx, t); /* a recording replays these draws (program.h) */
    return t;
}

bk_tensor *bk_rand_gamma(bk_ctx *ctx, bk_rng *r, bk_tensor *alpha, int ndim, const int64_t *shape) {
    bk_tensor *z = bk_empty(ctx, BK_F64, ndim, shape);
    if (!z) return NULL;
    /* the broadcast alpha only supplies numbers: keep it off the tape */
    bool was = bk_set_grad_enabled(ctx, false);
    bk_tensor *ab = bk_expand(ctx, alpha, ndim, shape);
    bk_set_grad_enabled(ctx, was);
    if (!ab) {
        bk_release(z);
        return NULL;
    }
    double *p = bk_data(z);
    for (int64_t i = 0; i < z->numel; i++) {
        p[i] = bk_rng_gamma(r, bk_get(ab, i));
        if (p[i] < 1e-300) p[i] = 1e-300; /* keep log densities finite */
    }
    if (!(alpha->requires_grad && bk_grad_enabled(ctx))) {
        bk_release(ab);
        return z;
    }
    /* value z, gradient dz/dalpha: z + (alpha - detach(alpha)) * dzda */
    bk_tensor *dz = bk_empty(ctx, BK_F64, ndim, shape);
    if (dz) {
        double *d = bk_data(dz);
        for (int64_t i = 0; i < z->numel; i++) d[i] = bk_gamma_reparam_da(bk_get(ab, i), p[i]);
    }
    bk_tensor *det = bk_detach(ctx, alpha);
    bk_tensor *diff = det ? bk_sub(ctx, alpha, det) : NULL;
    bk_tensor *prod = (diff && dz) ? bk_mul(ctx, diff, dz) : NULL;
    bk_tensor *out = prod ? bk_add(ctx, z, prod) : NULL;
    bk_release(ab);
    bk_release(dz);
    bk_release(det);
    bk_release(diff);
    bk_release(prod);
    bk_release(z);
    return out;
}
