/* dist_bernoulli.c - Bernoulli(probs= | logits=), values {0, 1}. */
#include <math.h>
#include <string.h>
#include "dist_impl.h"

static int init(bk_ctx *ctx, sl_dist *d, int *bad) {
    if (d->variant == 0 ? sl_check_param(ctx, d, 0, "probs", SL_V_PROB, bad)
                        : sl_check_param(ctx, d, 0, "logits", SL_V_REAL, bad))
        return -1;
    return sl_shape_broadcast(ctx, d, NULL, bad);
}

/* The log mass with logits l as one fused kernel (bk_fused): for x in
 * {0, 1}, log p = x l - softplus(l) = -softplus(t) with t = (1 - 2x) l,
 * taken as -(max(t, 0) + log1p(e)), e = exp(-|t|) (no overflow, no
 * cancellation); -inf for any other x.  The backward recomputes e:
 * d/dl = x - sigmoid(l) = -(1 - 2x) sigmoid(t), sigmoid(t) = 1 / (1 + e)
 * for t >= 0 and e / (1 + e) below.  x (data) gets no gradient.
 *
 * exp and log1p are computed here in plain float64 arithmetic with no
 * branches, so that the loops vectorize (a logistic regression over 10,000
 * rows spent most of each gradient in libm's exp and log, one call per
 * element): exp(x) for x <= 0 by Cody-Waite reduction x = n ln 2 + r,
 * |r| <= ln(2) / 2, Taylor to r^13 (truncation below 4e-18 relative; Estrin's scheme) and
 * 2^n built in the exponent bits in two halves (so that results down to
 * the subnormals come out; x is clamped at -746, where exp rounds to 0);
 * log1p(e) for e in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3], by
 * its odd series to s^31 (truncation below 2e-17 relative).  Both within a
 * few ulp of the exact values (tests/unit/test_f32.c checks them against
 * long double).  No fused multiply-add is asked for, so every element gets
 * the same bits in the vector loop, its scalar tail and the AVX2 clone. */
/* At -O2 gcc vectorizes only loops of a known trip count, and keeps these
 * selects as branches while floating-point operations may trap: the kernels
 * below ask for the cheap cost model and no trapping math (which changes no
 * value, only what the compiler may assume about exception flags). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "vect-cost-model=cheap", "fp-contract=off")
#endif

/* (always inlined: gcc left bern_lp a call in the AVX-512 clone) */
#if defined(__GNUC__)
#define BERN_INLINE static inline __attribute__((always_inline))
#else
#define BERN_INLINE static inline
#endif

BERN_INLINE double expneg_d(double x) {
    x = x < -746.0 ? -746.0 : x;
    const double big = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    double n = (x * 1.4426950408889634 + big) - big;
    double r = x - n * 6.93147180369123816490e-01; /* ln 2, high part: n * it is exact */
    r = r - n * 1.90821492927058770002e-10;        /* and the low part */
    /* p = 1 + r + r^2 P(r), P(r) = sum_k r^k / (k + 2)!, k = 0..11, by Estrin's
     * scheme: a Horner chain of 12 dependent multiply-adds kept the vector loop
     * waiting on latency (a dependency chain per element, two or three elements
     * in flight); pairs, then pairs of pairs, cut the chain to 5 levels. */
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double a0 = 0.5 + r * (1.0 / 6.0), a1 = 1.0 / 24.0 + r * (1.0 / 120.0);
    double a2 = 1.0 / 720.0 + r * (1.0 / 5040.0), a3 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
    double a4 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
    double a5 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
    double c0 = a0 + a1 * r2, c1 = a2 + a3 * r2, c2 = a4 + a5 * r2;
    double P = (c0 + c1 * r4) + c2 * r8;
    double p = P * r2 + r + 1.0;
    /* 2^n = 2^n1 2^n2 with n1 = round(n / 2): both factors normal down to n = -1076 */
    double n1 = (n * 0.5 + big) - big, n2 = n - n1, b1 = n1 + big, b2 = n2 + big;
    uint64_t u1, u2;
    memcpy(&u1, &b1, sizeof u1); /* the low mantissa bits of b hold n as an integer */
    memcpy(&u2, &b2, sizeof u2);
    u1 = (u1 - 0x4338000000000000u + 1023u) << 52;
    u2 = (u2 - 0x4338000000000000u + 1023u) << 52;
    double s1, s2;
    memcpy(&s1, &u1, sizeof s1);
    memcpy(&s2, &u2, sizeof s2);
    return p * s1 * s2;
}

BERN_INLINE double log1p01_d(double e) {
    double s = e / (2.0 + e), z = s * s, z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    /* q(z) = sum_k z^k / (2k + 3), k = 0..14, by Estrin's scheme (as in expneg_d) */
    double a0 = 1.0 / 3 + z * (1.0 / 5), a1 = 1.0 / 7 + z * (1.0 / 9);
    double a2 = 1.0 / 11 + z * (1.0 / 13), a3 = 1.0 / 15 + z * (1.0 / 17);
    double a4 = 1.0 / 19 + z * (1.0 / 21), a5 = 1.0 / 23 + z * (1.0 / 25);
    double a6 = 1.0 / 27 + z * (1.0 / 29), a7 = 1.0 / 31;
    double b0 = a0 + a1 * z2, b1 = a2 + a3 * z2, b2 = a4 + a5 * z2, b3 = a6 + a7 * z2;
    double q = (b0 + b1 * z4) + (b2 + b3 * z4) * z8, s2 = z;
    return 2.0 * s + 2.0 * s * (q * s2); /* the leading term apart: fewer roundings in it */
}

BERN_INLINE double bern_lp(double x, double l) {
    double t = x == 1 ? -l : l, at = fabs(t), tp = t > 0 ? t : 0.0;
    double lp = -(tp + log1p01_d(expneg_d(-at)));
    return ((x == 1) | (x == 0)) ? lp : -INFINITY;
}

/* d log p / d l */
BERN_INLINE double bern_dl(double x, double l) {
    double t = x == 1 ? -l : l, e = expneg_d(-fabs(t));
    double sig = (t >= 0 ? 1.0 : e) / (1.0 + e);
    double d = x == 1 ? sig : -sig;
    return ((x == 1) | (x == 0)) ? d : 0.0;
}

/* (x86-64-v4 (AVX-512) and AVX2 clones are picked at load time where the CPU has them:
 * four and two times the vector width, and AVX-512's 32 registers hold the
 * polynomials' constants that AVX2's 16 spill to the stack; the same
 * arithmetic, so the same results: no contraction to fused multiply-adds
 * (fp-contract=off, which AVX-512 would otherwise allow; the float32 loops
 * get no AVX-512 clone and stay as they were).  At -O2 gcc
 * vectorizes only loops of a known trip count, and it keeps the selects as
 * branches while FP operations may trap: these loops ask for the cheap cost
 * model and no trapping math (which changes no value, only what the
 * compiler may assume about floating-point exception flags).) */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define BERN_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#define BERN_CLONES_F32 __attribute__((target_clones("avx2", "default")))
#else
#define BERN_CLONES
#define BERN_CLONES_F32
#endif

/* The loops of both element types (float64 here, float32 below, each with its
 * own lp and dl), written once: the forward, and the backward for the
 * gradient of a sum (one g), of an elementwise g, and strided. */
#define BERN_LOOPS(CLONES, SUF, T, LP, DL)                                                               \
    CLONES static void bl_forward##SUF(int64_t n, const T *const *in, const int64_t *inc,      \
                                            T *out) {                                               \
        const T *x = in[0], *l = in[1];                                                             \
        int64_t ix = inc[0], il = inc[1];                                                           \
        if (ix == 1 && il == 1) { /* the common case, in a loop that vectorizes */                  \
            for (int64_t k = 0; k < n; k++) out[k] = LP(x[k], l[k]);                                \
            return;                                                                                 \
        }                                                                                           \
        for (int64_t k = 0; k < n; k++) out[k] = LP(x[k * ix], l[k * il]);                          \
    }                                                                                               \
    CLONES static void bl_backward##SUF(int64_t n, const T *const *in, const int64_t *inc,     \
                                             const T *out, const T *g, int64_t ig, T *const *gx) {  \
        const T *x = in[0], *l = in[1];                                                             \
        int64_t ix = inc[0], il = inc[1];                                                           \
        (void)out;                                                                                  \
        if (gx[0])                                                                                  \
            for (int64_t k = 0; k < n; k++) gx[0][k] = 0;                                           \
        if (!gx[1]) return;                                                                         \
        T *gl = gx[1];                                                                              \
        if (ix == 1 && il == 1 && ig == 0) { /* the gradient of a sum: one value */                 \
            const T g0 = g[0];                                                                      \
            for (int64_t k = 0; k < n; k++) gl[k] = g0 * DL(x[k], l[k]);                            \
        } else if (ix == 1 && il == 1 && ig == 1) {                                                 \
            for (int64_t k = 0; k < n; k++) gl[k] = g[k] * DL(x[k], l[k]);                          \
        } else {                                                                                    \
            for (int64_t k = 0; k < n; k++) gl[k] = g[k * ig] * DL(x[k * ix], l[k * il]);           \
        }                                                                                           \
    }

BERN_LOOPS(BERN_CLONES, , double, bern_lp, bern_dl)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* The float32 kernel computes exp and log1p itself, branch-free, so that
 * its loops vectorize (a libm call per element was most of its time):
 * exp(x) for x <= 0 as Cephes' expf (Cody-Waite reduction by ln 2, a
 * degree-6 polynomial, 2^n built in the exponent bits; about 1 ulp),
 * with x clamped at -87 (exp(-87) = 1.6e-38, the float range; where that
 * matters the terms it feeds are below float resolution); log1p(e) for e
 * in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3], by its odd series
 * to s^15 (truncation below 2e-8 relative; no cancellation for small e). */
static inline float expneg_f(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float big = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + big) - big;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float log1p01_f(float e) {
    float s = e / (2.0f + e), s2 = s * s;
    float q = 1.0f / 15;
    q = q * s2 + 1.0f / 13;
    q = q * s2 + 1.0f / 11;
    q = q * s2 + 1.0f / 9;
    q = q * s2 + 1.0f / 7;
    q = q * s2 + 1.0f / 5;
    q = q * s2 + 1.0f / 3;
    q = q * s2 + 1.0f;
    return 2.0f * s * q;
}

static inline float bern_lp_fast(float x, float l) {
    float t = x == 1 ? -l : l, at = t < 0 ? -t : t, tp = t > 0 ? t : 0.0f;
    float lp = -(tp + log1p01_f(expneg_f(-at)));
    return ((x == 1) | (x == 0)) ? lp : -INFINITY;
}

static inline float bern_dl_fast(float x, float l) {
    float t = x == 1 ? -l : l, at = t < 0 ? -t : t, e = expneg_f(-at);
    float sig = (t >= 0 ? 1.0f : e) / (1.0f + e);
    float d = x == 1 ? sig : -sig;
    return ((x == 1) | (x == 0)) ? d : 0.0f;
}


BERN_LOOPS(BERN_CLONES_F32, _f32, float, bern_lp_fast, bern_dl_fast)

static const bk_fused bernoulli_logits_lp = {"bernoulli_logits_log_prob", 2, bl_forward, bl_backward,
                                         bl_forward_f32, bl_backward_f32};

static bk_tensor *log_prob(bk_ctx *ctx, const sl_dist *d, bk_tensor *x) {
    if (d->variant == 1) {
        bk_tensor *in[2] = {x, d->p[0]};
        return bk_fused_apply(ctx, &bernoulli_logits_lp, in);
    }
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *one = s_bin(&s, BK_OP_EQ, x, s_scalar(&s, 1.0));
    bk_tensor *zero = s_bin(&s, BK_OP_EQ, x, s_scalar(&s, 0.0));
    bk_tensor *lp0 = s_guard(&s, zero, s_log1mp(&s, d, 0));
    return s_done(&s, s_where(&s, one, s_logp(&s, d, 0), lp0));
}

static double draw(bk_rng *r, const double *a, const void *ud) {
    return bk_rng_uniform(r) < a[0] ? 1.0 : 0.0;
}

static bk_tensor *sample(bk_ctx *ctx, bk_rng *rng, const sl_dist *d, int ns, const int64_t *ss) {
    int64_t shape[BK_MAXDIM];
    int nd = sl_draw_shape(d, ns, ss, shape);
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    if (s.err) return s_done(&s, NULL);
    return s_done(&s, s_keep(&s, sl_map(ctx, rng, nd, shape, 1, &p, draw, NULL)));
}

static bk_tensor *mean(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    return s_done(&s, s_probs(&s, d, 0));
}

static bk_tensor *variance(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    return s_done(&s, s_mul(&s, p, s_rsubs(&s, 1.0, p)));
}

static bk_tensor *entropy(bk_ctx *ctx, const sl_dist *d) {
    sl_scope s;
    sl_scope_init(&s, ctx);
    bk_tensor *p = s_probs(&s, d, 0);
    bk_tensor *h = s_add(&s, s_xlogy(&s, p, s_logp(&s, d, 0)),
                         s_xlogy(&s, s_rsubs(&s, 1.0, p), s_log1mp(&s, d, 0)));
    return s_done(&s, s_muls(&s, h, -1.0));
}

static bk_tensor *enumerate(bk_ctx *ctx, const sl_dist *d) { return sl_enumerate(ctx, d, 2); }

static int support(bk_ctx *ctx, const sl_dist *d, sl_constraint *out) {
    return sl_support_kind(out, SL_C_BOOLEAN);
}

const sl_family sl_family_bernoulli = {
    .name = "Bernoulli", .build = sl_build_probs_logits, .log_prob = log_prob, .sample = sample,
    .mean = mean, .variance = variance, .entropy = entropy, .enumerate_support = enumerate,
    .support = support, .reparam = false, .discrete = true, .init = init, .native_f32 = true,
};
