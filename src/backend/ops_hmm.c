/* ops_hmm.c - the fused forward algorithm of a discrete hidden Markov model
 * (op hmm_forward), the kernel behind DiscreteHMM.log_prob.
 *
 * Inputs (float64):
 *   in[0] logpi   [K]            log p(z_0 = k) (any reals: not renormalized)
 *   in[1] A       [K, K]         A[i, j] = p(z_t = j | z_{t-1} = i), >= 0,
 *                 or [T, K, K]   time-varying, A[t] moves z_{t-1} to z_t
 *   in[2] logB    [T, K]         log p(y_t | z_t = k) of one sequence,
 *                 or [B, T, K]   of B sequences padded to T steps
 *   in[3] lengths [B] (or any shape with B entries; for [T, K] one entry)
 *                 the number of steps of each sequence (0 <= L <= T);
 *                 entries past L are ignored.  Not differentiable.
 * Output: log p(y) of each sequence: [] for [T, K], [B] for [B, T, K].
 *
 * hmm_forward_cat is the same for a Categorical emission, without the
 * [T, K] log-likelihood matrix: in[2] is the log emission table logE
 * [K, V] and in[3] the observed symbols, [T] or [B, T], where a negative
 * entry ends its sequence (padding).  The table is exponentiated once
 * (shifted by each symbol's max), so a step costs one vector-matrix product
 * and K lookups; d/d logE[k, v] = sum over t with y_t = v of gamma_t(k).
 *
 * The recursion is Rabiner's scaled forward pass: at each step the
 * emission log-likelihoods are shifted by their max c_t and exponentiated
 * once, the predicted alphas come from one vector-matrix product (BLAS
 * dgemv for large K) and are renormalized to sum 1 by s_t, so
 * log p(y) = sum_t (log s_t + c_t): no logsumexp per matrix entry.
 *
 * The backward rule recomputes the scaled alphas, runs the matching scaled
 * backward pass and uses the posterior marginals and pair marginals:
 *   d/d logB[t, k] = gamma_t(k),  d/d logpi[k] = gamma_0(k),
 *   d/d A_t[i, j]  = alpha_{t-1}(i) b_t(j) beta_t(j) / s_t,
 * (each scaled by the output gradient of its sequence).  A sequence of
 * probability 0 (log p = -inf) gets a zero gradient. */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <cblas.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "ops_hmm.h"
#include "ops_impl.h"

typedef struct hmm_in {
    int64_t K, T, B, V;       /* V > 0: Categorical form */
    bool tv;                  /* A is [T, K, K] */
    const double *logpi, *A, *logB, *len, *codes;
    double mpi;               /* max of logpi (finite, else 0) */
    double *pexp;             /* [K] exp(logpi - mpi) */
    double *etab, *cmax;      /* Categorical: [V, K] exp(logE[k, v] - cmax[v]), [V] */
    int64_t *L;               /* [B] lengths */
    double *own[4];           /* contiguous copies made here (else NULL) */
} hmm_in;

static void in_free(bk_ctx *ctx, hmm_in *h) {
    for (int i = 0; i < 4; i++) bk_free(ctx, h->own[i]);
    bk_free(ctx, h->pexp);
    bk_free(ctx, h->etab);
    bk_free(ctx, h->cmax);
    bk_free(ctx, h->L);
}

static const double *in_data(bk_ctx *ctx, hmm_in *h, int i, const bk_tensor *t) {
    if (t->dtype == BK_F64 && bk_is_contiguous(t) && t->numel > 0) return bk_data(t); /* float32: a copy */
    h->own[i] = bk_malloc(ctx, (size_t)(t->numel ? t->numel : 1) * sizeof(double));
    if (h->own[i]) bk_copy_out(t, h->own[i]);
    return h->own[i];
}

static int shape_err(bk_ctx *ctx, const char *op, const char *what) {
    bk_seterr(ctx, "%s: %s", op, what);
    return -1;
}

/* 0 <= v < Vd and v an integer: v + 2^52 rounds v to an integer when
 * 0 <= v < 2^52 (without the floor call that SSE2 lacks, and without a
 * branch: this runs per symbol per call); NaN fails the first test. */
static inline bool is_symbol(double v, double Vd) {
    const double big = 4503599627370496.0; /* 2^52 */
    return (v >= 0) & (v < Vd) & ((v + big) - big == v);
}

/* The number of entries of y [T] before its first negative one (the end
 * of the sequence), or -1 when one of them is not a symbol in [0, V). */
static int64_t symbols_len(const double *y, int64_t T, int64_t V) {
    const double Vd = (double)V;
    int64_t t = 0;
#ifdef __SSE2__
    /* two at a time while both are symbols (SSE2 is in every x86-64) */
    const __m128d zero = _mm_setzero_pd(), vd = _mm_set1_pd(Vd);
    const __m128d big = _mm_set1_pd(4503599627370496.0);
    for (; t + 2 <= T; t += 2) {
        __m128d x = _mm_loadu_pd(y + t);
        __m128d in = _mm_and_pd(_mm_cmpge_pd(x, zero), _mm_cmplt_pd(x, vd));
        __m128d integ = _mm_cmpeq_pd(_mm_sub_pd(_mm_add_pd(x, big), big), x);
        if (_mm_movemask_pd(_mm_and_pd(in, integ)) != 3) break;
    }
#endif
    for (; t < T && !(y[t] < 0); t++)
        if (!is_symbol(y[t], Vd)) return -1;
    return t;
}

/* The length of a row y [T] of codes that its maker checked (symbols, then
 * only -1 padding): the first negative entry, found by bisection (the
 * predicate y[t] < 0 is monotone along such a row). */
static int64_t checked_len(const double *y, int64_t T) {
    int64_t lo = 0, hi = T; /* y[t] >= 0 for t < lo, y[t] < 0 for t >= hi */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (y[mid] < 0) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Whether an op's arguments say that its codes were checked by their maker
 * (BK_HMM_CODES_CHECKED: hmm_forward_cat only). */
static bool codes_checked(const bk_opargs *args, bool cat) {
    return cat && args && args->scalar == BK_HMM_CODES_CHECKED;
}

/* Shapes and data of the inputs; -1 + error when they do not fit.
 * checked: the codes in[3] of hmm_forward_cat are known to be valid (see
 * BK_HMM_CODES_CHECKED): their lengths are found without the per-symbol
 * check. */
static int in_load(bk_ctx *ctx, bk_tensor **in, bool cat, bool checked, hmm_in *h) {
    memset(h, 0, sizeof *h);
    const char *op = cat ? "hmm_forward_cat" : "hmm_forward";
    const bk_tensor *pi = in[0], *A = in[1], *em = in[2], *obs = cat ? in[3] : in[2];
    if (pi->ndim != 1 || pi->shape[0] < 1) return shape_err(ctx, op, "logpi must be [K], K >= 1");
    int64_t K = h->K = pi->shape[0];
    if (cat) {
        if (em->ndim != 2 || em->shape[0] != K || em->shape[1] < 1)
            return shape_err(ctx, op, "logE must be [K, V] with K from logpi");
        h->V = em->shape[1];
        if (obs->ndim != 1 && obs->ndim != 2) return shape_err(ctx, op, "y must be [T] or [B, T]");
        h->B = obs->ndim == 2 ? obs->shape[0] : 1;
        h->T = obs->shape[obs->ndim - 1];
    } else {
        if (em->ndim != 2 && em->ndim != 3) return shape_err(ctx, op, "logB must be [T, K] or [B, T, K]");
        if (em->shape[em->ndim - 1] != K) return shape_err(ctx, op, "logB and logpi differ in K");
        h->B = em->ndim == 3 ? em->shape[0] : 1;
        h->T = em->shape[em->ndim - 2];
        if (in[3]->numel != h->B) return shape_err(ctx, op, "one length per sequence needed");
    }
    h->tv = A->ndim == 3;
    if ((A->ndim != 2 && A->ndim != 3) || A->shape[A->ndim - 1] != K ||
        A->shape[A->ndim - 2] != K || (h->tv && A->shape[0] != h->T))
        return shape_err(ctx, op, "A must be [K, K] or [T, K, K] (K from logpi, T from the data)");
    h->logpi = in_data(ctx, h, 0, pi);
    h->A = h->logpi ? in_data(ctx, h, 1, A) : NULL;
    if (!h->A) goto fail;
    if (cat) {
        const double *lE = in_data(ctx, h, 2, em);
        h->codes = obs->numel ? in_data(ctx, h, 3, obs) : NULL;
        if (!lE || (obs->numel && !h->codes)) goto fail;
        int64_t V = h->V;
        h->etab = bk_malloc(ctx, (size_t)(V * K) * sizeof(double));
        h->cmax = bk_malloc(ctx, (size_t)V * sizeof(double));
        if (!h->etab || !h->cmax) goto fail;
        bk_hmm_emission_table(K, V, lE, h->etab, h->cmax);
    } else {
        h->logB = em->numel ? in_data(ctx, h, 2, em) : NULL;
        h->len = in_data(ctx, h, 3, in[3]);
        if (!h->len || (em->numel && !h->logB)) goto fail;
    }
    h->L = bk_malloc(ctx, (size_t)(h->B ? h->B : 1) * sizeof(int64_t));
    h->pexp = bk_malloc(ctx, (size_t)K * sizeof(double));
    if (!h->L || !h->pexp) goto fail;
    for (int64_t b = 0; b < h->B; b++) {
        if (cat) {
            /* a sequence ends at its first negative entry; symbols must be
             * integers below V */
            const double *y = h->codes + b * h->T;
            if (checked) {
                h->L[b] = checked_len(y, h->T);
                continue;
            }
            int64_t t = symbols_len(y, h->T, h->V);
            if (t < 0) {
                double v = 0;
                for (t = 0; t < h->T && !(y[t] < 0); t++)
                    if (!is_symbol(y[t], (double)h->V)) {
                        v = y[t];
                        break;
                    }
                bk_seterr(ctx, "%s: symbol %g is not an integer in [0, %lld)", op, v,
                          (long long)h->V);
                goto fail;
            }
            h->L[b] = t;
            continue;
        }
        double L = h->len[b];
        if (!(L >= 0 && L <= (double)h->T && L == floor(L))) {
            bk_seterr(ctx, "%s: length %g of sequence %lld is not an integer in [0, %lld]", op,
                      L, (long long)b, (long long)h->T);
            goto fail;
        }
        h->L[b] = (int64_t)L;
    }
    h->mpi = -INFINITY;
    for (int64_t k = 0; k < K; k++) h->mpi = fmax(h->mpi, h->logpi[k]);
    if (!isfinite(h->mpi)) h->mpi = 0;
    for (int64_t k = 0; k < K; k++) h->pexp[k] = exp(h->logpi[k] - h->mpi);
    return 0;
fail:
    in_free(ctx, h);
    return -1;
}

void bk_hmm_emission_table(int64_t K, int64_t V, const double *logE, double *etab, double *cmax) {
    for (int64_t v = 0; v < V; v++) {
        double c = -INFINITY;
        for (int64_t k = 0; k < K; k++) c = fmax(c, logE[k * V + v]);
        cmax[v] = c;
        for (int64_t k = 0; k < K; k++)
            etab[v * K + k] = isfinite(c) ? exp(logE[k * V + v] - c) : 0.0;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HMM_AVX2 1

/* K from which the pair sums of the backward sweep are kept in blocks of
 * steps for the register-blocked AVX-512 kernel (on CPUs with AVX-512; from
 * BK_HMM_BLAS_K, BLAS dgemm, on others). */
#define HMM_PAIR512_K 8

/* G += g * alpha^T v for n rows ([n, K] each): a register-blocked kernel,
 * 4 rows of G by 32 columns (16 accumulators) over all n steps, then once
 * into G; the column tail is 8 wide, then scalar.  (OpenBLAS's dgemm at
 * these small sizes picks its Haswell kernel on this CPU and runs at about
 * a third of this speed.) */
__attribute__((target("avx512f"))) static void pair_sums_avx512(int64_t K, int64_t n, double g,
                                                                const double *alpha,
                                                                const double *v, double *G) {
    const __m512d gg = _mm512_set1_pd(g);
    int64_t i = 0, j0 = K - K % 8;
#define PS_ACC(r, q) c##r##q = _mm512_fmadd_pd(x##r, u##q, c##r##q)
#define PS_OUT(r, q)                                                                          \
    do {                                                                                      \
        double *Gp = G + (i + r) * K + j + 8 * q;                                             \
        _mm512_storeu_pd(Gp, _mm512_fmadd_pd(gg, c##r##q, _mm512_loadu_pd(Gp)));             \
    } while (0)
    for (; i + 4 <= K; i += 4) {
        int64_t j = 0;
        for (; j + 32 <= K; j += 32) {
            __m512d c00 = _mm512_setzero_pd(), c01 = c00, c02 = c00, c03 = c00;
            __m512d c10 = c00, c11 = c00, c12 = c00, c13 = c00;
            __m512d c20 = c00, c21 = c00, c22 = c00, c23 = c00;
            __m512d c30 = c00, c31 = c00, c32 = c00, c33 = c00;
            for (int64_t t = 0; t < n; t++) {
                const double *vt = v + t * K + j, *at = alpha + t * K + i;
                __m512d u0 = _mm512_loadu_pd(vt), u1 = _mm512_loadu_pd(vt + 8);
                __m512d u2 = _mm512_loadu_pd(vt + 16), u3 = _mm512_loadu_pd(vt + 24);
                __m512d x0 = _mm512_set1_pd(at[0]), x1 = _mm512_set1_pd(at[1]);
                __m512d x2 = _mm512_set1_pd(at[2]), x3 = _mm512_set1_pd(at[3]);
                PS_ACC(0, 0); PS_ACC(0, 1); PS_ACC(0, 2); PS_ACC(0, 3);
                PS_ACC(1, 0); PS_ACC(1, 1); PS_ACC(1, 2); PS_ACC(1, 3);
                PS_ACC(2, 0); PS_ACC(2, 1); PS_ACC(2, 2); PS_ACC(2, 3);
                PS_ACC(3, 0); PS_ACC(3, 1); PS_ACC(3, 2); PS_ACC(3, 3);
            }
            PS_OUT(0, 0); PS_OUT(0, 1); PS_OUT(0, 2); PS_OUT(0, 3);
            PS_OUT(1, 0); PS_OUT(1, 1); PS_OUT(1, 2); PS_OUT(1, 3);
            PS_OUT(2, 0); PS_OUT(2, 1); PS_OUT(2, 2); PS_OUT(2, 3);
            PS_OUT(3, 0); PS_OUT(3, 1); PS_OUT(3, 2); PS_OUT(3, 3);
        }
        for (; j + 8 <= K; j += 8) {
            __m512d c00 = _mm512_setzero_pd(), c10 = c00, c20 = c00, c30 = c00;
            for (int64_t t = 0; t < n; t++) {
                const double *at = alpha + t * K + i;
                __m512d u0 = _mm512_loadu_pd(v + t * K + j);
                __m512d x0 = _mm512_set1_pd(at[0]), x1 = _mm512_set1_pd(at[1]);
                __m512d x2 = _mm512_set1_pd(at[2]), x3 = _mm512_set1_pd(at[3]);
                PS_ACC(0, 0); PS_ACC(1, 0); PS_ACC(2, 0); PS_ACC(3, 0);
            }
            PS_OUT(0, 0); PS_OUT(1, 0); PS_OUT(2, 0); PS_OUT(3, 0);
        }
    }
#undef PS_ACC
#undef PS_OUT
    /* the last K % 4 rows, 8 columns at a time */
    for (; i < K; i++)
        for (int64_t j = 0; j < j0; j += 8) {
            __m512d c = _mm512_setzero_pd();
            for (int64_t t = 0; t < n; t++)
                c = _mm512_fmadd_pd(_mm512_set1_pd(alpha[t * K + i]), _mm512_loadu_pd(v + t * K + j), c);
            double *Gp = G + i * K + j;
            _mm512_storeu_pd(Gp, _mm512_fmadd_pd(gg, c, _mm512_loadu_pd(Gp)));
        }
    /* the last K % 8 columns of every row */
    for (int64_t r = 0; r < K; r++)
        for (int64_t j = j0; j < K; j++) {
            double acc = 0;
            for (int64_t t = 0; t < n; t++) acc += alpha[t * K + r] * v[t * K + j];
            G[r * K + j] += g * acc;
        }
}
#endif

void bk_hmm_pair_sums(int64_t K, int64_t n, double g, const double *alpha, const double *v,
                      double *G) {
    if (n < 1) return;
#ifdef HMM_AVX2
    if (K >= HMM_PAIR512_K && __builtin_cpu_supports("avx512f")) {
        pair_sums_avx512(K, n, g, alpha, v, G);
        return;
    }
#endif
    if (K >= BK_HMM_BLAS_K) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)n, g, alpha,
                    (int)K, v, (int)K, 1.0, G, (int)K);
        return;
    }
    for (int64_t t = 0; t < n; t++) {
        const double *ap = alpha + t * K, *vt = v + t * K;
        for (int64_t i = 0; i < K; i++) {
            double ai = g * ap[i];
            double *Gi = G + i * K;
            for (int64_t j = 0; j < K; j++) Gi[j] += ai * vt[j];
        }
    }
}

/* Emission likelihoods of step t of sequence b, shifted: e[k] =
 * p(y_t | k) / exp(*c), c = -inf when no state can emit y_t.  e is the
 * Categorical table's row, or buf (K doubles) filled from logB. */
static inline const double *emission(const hmm_in *h, int64_t b, int64_t t, double *buf,
                                     double *c) {
    int64_t K = h->K;
    if (h->V) {
        int64_t v = (int64_t)h->codes[b * h->T + t];
        *c = h->cmax[v];
        return h->etab + v * K;
    }
    const double *lb = h->logB + (b * h->T + t) * K;
    double m = -INFINITY;
    for (int64_t k = 0; k < K; k++) m = fmax(m, lb[k]);
    if (isfinite(m))
        for (int64_t k = 0; k < K; k++) buf[k] = exp(lb[k] - m);
    *c = m;
    return buf;
}

/* The recursions keep the alphas (and betas) unnormalized while their sum
 * stays in [HMM_LO, HMM_HI]: a step is then one vector-matrix product and
 * K products, with no division on the chain from one step to the next
 * (the sum is taken off that chain, and the rare renormalization is a
 * predictable branch).  A step that would leave the range is redone from
 * the previous row scaled to sum 1, which is exactly the per-step scaled
 * recursion, so a single step with a tiny likelihood cannot underflow;
 * only components below 1e-208 of their row's total lose precision. */
#define HMM_LO 1e-100
#define HMM_HI 1e100

/* That policy, once for the generic, small-K and AVX-512 sweeps (each with
 * its own row primitives SUM(K, r) and SCALE(K, r, f)): when the new row
 * n's total tot left the range, a is scaled to sum 1 and the step redone
 * (STEP: n from a again, giving its total), and n is scaled to 1 if its
 * total is still outside; the log factors go to ll.  A redone total that
 * is 0, inf or NaN ends the sweep, returning -inf (or the inf / NaN). */
#define HMM_RESCALE_STEP(K, a, n, tot, ll, STEP, SUM, SCALE)                     \
    do {                                                                         \
        if (!(tot >= HMM_LO && tot <= HMM_HI)) {                                 \
            double sp_ = SUM(K, a);                                              \
            SCALE(K, a, 1.0 / sp_);                                              \
            ll += log(sp_);                                                      \
            tot = (STEP);                                                        \
            if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY; \
            if (!(tot >= HMM_LO && tot <= HMM_HI)) {                             \
                SCALE(K, n, 1.0 / tot);                                          \
                ll += log(tot);                                                  \
            }                                                                    \
        }                                                                        \
    } while (0)

/* out = (a A) .* e; returns sum(out). */
static inline __attribute__((always_inline)) double fstep(int64_t K, const double *restrict a,
                                                          const double *restrict A,
                                                          const double *restrict e,
                                                          double *restrict out, bool rev) {
    bk_hmm_vecmat_dir(K, a, A, out, rev);
    double tot = 0;
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) tot += out[k] *= e[k];
    return tot;
}

static inline double row_sum(int64_t K, const double *r) {
    double s = 0;
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) s += r[k];
    return s;
}

static inline void row_scale(int64_t K, double *r, double f) {
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) r[k] *= f;
}

/* Forward pass over sequence bi; returns log p(y) (-inf when impossible,
 * or the non-finite emission shift that made it so).  With store, row t of
 * the (unnormalized) alphas goes to store + t*K and, for the logB form, the
 * shifted emission likelihoods to eb + t*K; else w (2K doubles) holds the
 * current and next rows.  buf: K doubles.  always_inline: the callers pass
 * a constant K for few states, so the loops unroll into registers. */
static inline __attribute__((always_inline)) double fwd_run(const hmm_in *h, int64_t bi,
                                                            const int64_t K, double *store,
                                                            double *eb, double *w, double *buf) {
    int64_t L = h->L[bi];
    double c, ll;
    double *a = store ? store : w, *n = store ? store + K : w + K;
    const double *e = emission(h, bi, 0, eb ? eb : buf, &c);
    if (!isfinite(c)) return c;
    double tot = 0;
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) tot += a[k] = h->pexp[k] * e[k];
    if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
    ll = c + h->mpi;
    if (!(tot >= HMM_LO && tot <= HMM_HI)) {
        row_scale(K, a, 1.0 / tot);
        ll += log(tot);
    }
    for (int64_t t = 1; t < L; t++) {
        e = emission(h, bi, t, eb ? eb + t * K : buf, &c);
        if (!isfinite(c)) return c;
        const double *At = h->A + (h->tv ? t * K * K : 0);
        tot = fstep(K, a, At, e, n, t & 1);
        HMM_RESCALE_STEP(K, a, n, tot, ll, fstep(K, a, At, e, n, t & 1), row_sum, row_scale);
        ll += c;
        if (store) {
            a = n;
            n += K;
        } else {
            /* a copy, not a pointer swap: with a constant K the rows stay
             * in registers */
            #pragma GCC unroll 4
            for (int64_t k = 0; k < K; k++) a[k] = n[k];
        }
    }
    return ll + log(row_sum(K, a));
}

/* fwd_run without stored rows for K <= 4 known at compile time: the rows
 * live in registers (local arrays), not in memory that the next step
 * reloads. */
static inline __attribute__((always_inline)) double fwd_reg(const hmm_in *h, int64_t bi,
                                                            const int64_t K, double *buf) {
    double w[8];
    return fwd_run(h, bi, K, NULL, NULL, w, buf);
}

/* fwd_run with the row count known at compile time for few states. */
static double fwd_any(const hmm_in *h, int64_t bi, double *store, double *eb, double *w,
                      double *buf) {
    if (!store) {
        switch (h->K) {
        case 1: return fwd_reg(h, bi, 1, buf);
        case 2: return fwd_reg(h, bi, 2, buf);
        case 3: return fwd_reg(h, bi, 3, buf);
        case 4: return fwd_reg(h, bi, 4, buf);
        default: return fwd_run(h, bi, h->K, NULL, NULL, w, buf);
        }
    }
    switch (h->K) {
    case 1: return fwd_run(h, bi, 1, store, eb, w, buf);
    case 2: return fwd_run(h, bi, 2, store, eb, w, buf);
    case 3: return fwd_run(h, bi, 3, store, eb, w, buf);
    case 4: return fwd_run(h, bi, 4, store, eb, w, buf);
    default: return fwd_run(h, bi, h->K, store, eb, w, buf);
    }
}

/* ------------------------------------- Categorical kernels for K <= 4 --- */

/* For K <= 4 states and a Categorical emission over few symbols (on CPUs
 * with AVX2 and FMA), a row of alphas or betas is one 4-lane vector held
 * in a register, and a step is the product with the per-symbol matrix
 * M_v = A diag(e_v) (e_v: the shifted table row of symbol v): two in-lane
 * duplications and a lane swap of the row, and K fused multiply-adds.
 * With lanes j = 0..3 and src(m, j) = m ^ (j & 2), the forward product
 * n = a M_v is n[j] = sum_m a[src(m, j)] P_m[j] with the table
 * P_m[j] = M_v[src(m, j), j] (a[src(m, .)] is a lane duplication of a:
 * [a0 a0 a2 a2], [a1 a1 a3 a3] and the same of the halves swapped), and the
 * backward product w = M_v b is the same with Q_m[i] = M_v[i, src(m, i)].
 * The backward sweep, after the stored forward, needs no per-step emission
 * gradient: it sums
 *   H_v[i, j] = sum_{t >= 1, y_t = v} alpha_{t-1}(i) beta_t(j) / Z_t
 * (the gradient w.r.t. M_v; Z_t = alpha_{t-1} . M_v beta_t normalizes, as
 * in bwd_run), held in the layout of Q (the products of the same lane
 * duplications of beta with alpha / Z), and from it, once per call,
 *   d/dA[i, j]    = sum_v H_v[i, j] e_v(j),
 *   d/dlogE[k, v] = e_v(k) sum_i H_v[i, k] A[i, k]  (+ gamma_0(k) if y_0 = v):
 * the pair-marginal and posterior-marginal sums of bwd_run grouped by
 * symbol.  A row is rescaled (the step redone from the row scaled to sum
 * 1, as in fwd_run) when no entry reaches HMM_LO or one exceeds
 * HMM_HI / 4.  The tables cost V K^2 per call, so this path is taken when
 * V is small next to the number of steps (small_cat_ok). */
#ifdef HMM_AVX2
/* row_sum and row_scale, always inlined: with a constant K the rows of the
 * kernels below then stay in registers (a call would take their address
 * and keep them in memory, adding a store-to-load delay to every step). */
static inline __attribute__((always_inline)) double sk_sum(const int64_t K, const double *r) {
    double s = 0;
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) s += r[k];
    return s;
}

static inline __attribute__((always_inline)) void sk_scale(const int64_t K, double *r, double f) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) r[k] *= f;
}

#define SK_TAB 32   /* doubles per symbol: P then Q, 4 x 4 each */

static bool small_cat_ok(const hmm_in *h) {
    if (!h->V || h->K > 4 || h->tv) return false;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
    int64_t n = 0;
    for (int64_t b = 0; b < h->B; b++) n += h->L[b];
    return h->V <= n / 2 + 64;
}

/* tab [V*SK_TAB]: P and Q of every symbol (zero outside K x K). */
static void small_tables(const hmm_in *h, double *tab) {
    int64_t K = h->K;
    for (int64_t v = 0; v < h->V; v++) {
        double X[4][4], *P = tab + v * SK_TAB, *Q = P + 16;
        for (int64_t i = 0; i < 4; i++)
            for (int64_t j = 0; j < 4; j++)
                X[i][j] = i < K && j < K ? h->A[i * K + j] * h->etab[v * K + j] : 0.0;
        for (int m = 0; m < 4; m++)
            for (int j = 0; j < 4; j++) {
                P[m * 4 + j] = X[m][j];
                Q[m * 4 + j] = X[j][m ^ (j & 2)];
            }
    }
}

#define SK_ATTR __attribute__((target("avx2,fma"), always_inline)) static inline

/* sum_m x[src(m, .)] .* T_m: x M_v with T = P, M_v x with T = Q. */
SK_ATTR __m256d sk_prod(__m256d x, const double *T, const int64_t K) {
    /* K = 3 needs all four terms too: lane 2 takes x[0] and x[1] from the
     * swapped halves */
    __m256d n = _mm256_fmadd_pd(_mm256_permute_pd(x, 0x0), _mm256_loadu_pd(T),
                                _mm256_mul_pd(_mm256_permute_pd(x, 0xF), _mm256_loadu_pd(T + 4)));
    if (K <= 2) return n;
    __m256d s = _mm256_permute2f128_pd(x, x, 1);
    __m256d m = _mm256_fmadd_pd(_mm256_permute_pd(s, 0x0), _mm256_loadu_pd(T + 8),
                                _mm256_mul_pd(_mm256_permute_pd(s, 0xF), _mm256_loadu_pd(T + 12)));
    return _mm256_add_pd(n, m);
}

SK_ATTR double sk_hsum(__m256d x) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* the row needs no rescaling: some entry >= HMM_LO, none above HMM_HI/4
 * (nor NaN) */
SK_ATTR bool sk_inrange(__m256d x) {
    int lo = _mm256_movemask_pd(_mm256_cmp_pd(x, _mm256_set1_pd(HMM_LO), _CMP_GE_OQ));
    int hi = _mm256_movemask_pd(_mm256_cmp_pd(x, _mm256_set1_pd(HMM_HI / 4), _CMP_NLE_UQ));
    return lo != 0 && hi == 0;
}

/* n = a M_v (M_v row-major in P, row stride 4); returns sum(n). */
SK_ATTR double sk_fstep(const int64_t K, const double *restrict a, const double *restrict P,
                        double *restrict n) {
    double tot = 0;
#pragma GCC unroll 4
    for (int64_t j = 0; j < K; j++) {
        double s = a[0] * P[j];
#pragma GCC unroll 4
        for (int64_t i = 1; i < K; i++) s += a[i] * P[i * 4 + j];
        tot += n[j] = s;
    }
    return tot;
}

/* The forward pass of sequence bi (L >= 1), as fwd_run (lazy rescaling,
 * the same redo of a step that leaves the range), in scalar registers: the
 * chain from step to step is K multiply-adds, without the lane shuffles of
 * sk_prod.  Rows stored to store + 4t (zero-padded to 4) when store is not
 * NULL.  Returns log p(y_bi). */
SK_ATTR double sk_fwd(const hmm_in *h, int64_t bi, const int64_t K, const double *tab,
                      double *store) {
    const double *y = h->codes + bi * h->T;
    int64_t L = h->L[bi], v = (int64_t)y[0];
    double a[4] = {0, 0, 0, 0}, n[4] = {0, 0, 0, 0}, c = h->cmax[v], tot = 0;
    if (!isfinite(c)) return c;
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) tot += a[k] = h->pexp[k] * h->etab[v * K + k];
    if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
    double ll = c + h->mpi;
    if (!(tot >= HMM_LO && tot <= HMM_HI)) {
        sk_scale(K, a, 1.0 / tot);
        ll += log(tot);
    }
    for (int64_t t = 1; t < L; t++) {
        v = (int64_t)y[t];
        c = h->cmax[v];
        if (!isfinite(c)) return c;
        const double *P = tab + v * SK_TAB;
        tot = sk_fstep(K, a, P, n);
        HMM_RESCALE_STEP(K, a, n, tot, ll, sk_fstep(K, a, P, n), sk_sum, sk_scale);
        ll += c;
        if (store) {
            /* row t-1 as this step used it (the redo may have rescaled it) */
#pragma GCC unroll 4
            for (int64_t k = 0; k < 4; k++) store[4 * (t - 1) + k] = k < K ? a[k] : 0.0;
        }
#pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) a[k] = n[k];
    }
    if (store)
#pragma GCC unroll 4
        for (int64_t k = 0; k < 4; k++) store[4 * (L - 1) + k] = k < K ? a[k] : 0.0;
    return ll + log(sk_sum(K, a));
}

/* g * gamma_0 (4 lanes) into gpi and, for symbol y_0, into gem. */
static void sk_gamma0(const hmm_in *h, int64_t bi, const double *gam, double *gpi,
                      double *gem) {
    int64_t v = (int64_t)h->codes[bi * h->T];
    for (int64_t k = 0; k < h->K; k++) {
        if (gpi) gpi[k] += gam[k];
        if (gem) gem[k * h->V + v] += gam[k];
    }
}

/* The forward pass (rows into alpha, 4 per step) and the backward sweep of
 * sequence bi with weight g (K_ = h->K, a constant):
 * HQ [V*16] += g * H_v (Q layout), g * gamma_0
 * into gpi and gem.  Returns log p(y_bi). */
SK_ATTR double sk_bwd(const hmm_in *h, int64_t bi, const int64_t K_, double g,
                      const double *tab, double *alpha, double *HQ, double *gpi, double *gem) {
    const int64_t W = K_ <= 2 ? 2 : 4;
    int64_t K = K_, L = h->L[bi];
    if (L == 0) return 0;
    double ll = sk_fwd(h, bi, K_, tab, alpha);
    if (!isfinite(ll) || g == 0) return ll;
    const double *y = h->codes + bi * h->T;
    double gam[4];
    if (L == 1) {
        __m256d a = _mm256_loadu_pd(alpha);
        _mm256_storeu_pd(gam, _mm256_mul_pd(a, _mm256_set1_pd(g / sk_hsum(a))));
        sk_gamma0(h, bi, gam, gpi, gem);
        return ll;
    }
    const double one[4] = {1, K >= 2, K >= 3, K >= 4};
    __m256d b = _mm256_loadu_pd(one);
    for (int64_t t = L - 1; t >= 1; t--) {
        int64_t v = (int64_t)y[t];
        const double *Q = tab + v * SK_TAB + 16;
        double *ap = alpha + 4 * (t - 1), f = 1;
        __m256d w = sk_prod(b, Q, W);
        if (!sk_inrange(w)) {
            /* redo from beta scaled to sum 1 (its scale is free) */
            b = _mm256_mul_pd(b, _mm256_set1_pd(1.0 / sk_hsum(b)));
            w = sk_prod(b, Q, W);
            double sw = sk_hsum(w);
            if (!(sw > 0)) return ll;
            if (!sk_inrange(w)) f = 1.0 / sw;
        }
        __m256d av = _mm256_loadu_pd(ap);
        double Z = sk_hsum(_mm256_mul_pd(av, w));
        if (!(Z > 1e-290 && Z < 1e290)) {
            /* extreme scales: both factors to sum 1 (as in bwd_run) */
            __m256d is = _mm256_set1_pd(1.0 / sk_hsum(w));
            av = _mm256_mul_pd(av, _mm256_set1_pd(1.0 / sk_hsum(av)));
            b = _mm256_mul_pd(b, is);
            w = _mm256_mul_pd(w, is);
            f = 1;
            Z = sk_hsum(_mm256_mul_pd(av, w));
            if (!(Z > 0)) return ll;
        }
        __m256d r = _mm256_mul_pd(av, _mm256_set1_pd(g / Z));
        /* H_v += r beta^T in the Q layout */
        double *Hv = HQ + v * 16;
        __m256d s = _mm256_permute2f128_pd(b, b, 1);
        _mm256_storeu_pd(Hv, _mm256_fmadd_pd(_mm256_permute_pd(b, 0x0), r, _mm256_loadu_pd(Hv)));
        _mm256_storeu_pd(Hv + 4, _mm256_fmadd_pd(_mm256_permute_pd(b, 0xF), r,
                                                 _mm256_loadu_pd(Hv + 4)));
        if (W >= 3) {
            _mm256_storeu_pd(Hv + 8, _mm256_fmadd_pd(_mm256_permute_pd(s, 0x0), r,
                                                     _mm256_loadu_pd(Hv + 8)));
            _mm256_storeu_pd(Hv + 12, _mm256_fmadd_pd(_mm256_permute_pd(s, 0xF), r,
                                                      _mm256_loadu_pd(Hv + 12)));
        }
        if (t == 1) {
            /* gamma_0 = alpha_0 .* beta_0 / Z_1 */
            _mm256_storeu_pd(gam, _mm256_mul_pd(r, w));
            sk_gamma0(h, bi, gam, gpi, gem);
        }
        b = f == 1 ? w : _mm256_mul_pd(w, _mm256_set1_pd(f));
    }
    return ll;
}

/* The forward (bwd false: log p into o[b]) or the gradient sweep of every
 * sequence (weights g[b], or 1 when g is NULL; log p into o when not
 * NULL), with a constant K. */
#define SK_ALL(K_)                                                                            \
    for (int64_t b = 0; b < h->B; b++) {                                                      \
        double l = !bwd ? (h->L[b] ? sk_fwd(h, b, K_, tab, NULL) : 0.0)                      \
                        : sk_bwd(h, b, K_, g ? bk_get(g, b) : 1.0, tab, alpha, HQ, gpi, gem); \
        if (o) o[b] = l;                                                                      \
    }

__attribute__((target("avx2,fma"))) static void small_cat(const hmm_in *h, bool bwd,
                                                          const bk_tensor *g, const double *tab,
                                                          double *alpha, double *HQ, double *o,
                                                          double *gpi, double *gem) {
    switch (h->K) {
    case 1: SK_ALL(1) break;
    case 2: SK_ALL(2) break;
    case 3: SK_ALL(3) break;
    default: SK_ALL(4) break;
    }
}
#undef SK_ALL
#undef SK_ATTR

/* The forward of every sequence through the tables: o[b] = log p(y_b).
 * 0, or -1 when out of memory. */
static int small_cat_forward(bk_ctx *ctx, const hmm_in *h, double *o) {
    double *tab = bk_malloc(ctx, (size_t)(h->V * SK_TAB) * sizeof(double));
    if (!tab) return -1;
    small_tables(h, tab);
    small_cat(h, false, NULL, tab, NULL, NULL, o, NULL, NULL);
    bk_free(ctx, tab);
    return 0;
}

/* grad_all for small_cat_ok inputs: the sweep of every sequence, then
 * the A and logE gradients from the sums H_v.  alpha: 4T doubles. */
static int small_cat_grad(bk_ctx *ctx, const hmm_in *h, const bk_tensor *g, double *ll,
                          double *gpi, double *gA, double *gem, double *alpha) {
    int64_t K = h->K, V = h->V;
    double *tab = bk_malloc(ctx, (size_t)(V * (SK_TAB + 16)) * sizeof(double));
    if (!tab) return -1;
    double *HQ = tab + V * SK_TAB;
    small_tables(h, tab);
    memset(HQ, 0, (size_t)(V * 16) * sizeof *HQ);
    small_cat(h, true, g, tab, alpha, HQ, ll, gpi, gem);
    for (int64_t v = 0; v < V; v++) {
        const double *Hv = HQ + v * 16, *ev = h->etab + v * K;
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++) {
                double hij = Hv[(j ^ (i & 2)) * 4 + i];   /* H_v[i, j] */
                if (gA) gA[i * K + j] += hij * ev[j];
                if (gem) gem[j * V + v] += hij * h->A[i * K + j] * ev[j];
            }
    }
    bk_free(ctx, tab);
    return 0;
}
#undef SK_TAB
#else
static bool small_cat_ok(const hmm_in *h) {
    (void)h;
    return false;
}
static int small_cat_forward(bk_ctx *ctx, const hmm_in *h, double *o) {
    (void)ctx, (void)h, (void)o;
    return -1;
}
static int small_cat_grad(bk_ctx *ctx, const hmm_in *h, const bk_tensor *g, double *ll,
                          double *gpi, double *gA, double *gem, double *alpha) {
    (void)ctx, (void)h, (void)g, (void)ll, (void)gpi, (void)gA, (void)gem, (void)alpha;
    return -1;
}
#endif

/* The forward pass of a batch of homogeneous sequences for large K: at step
 * t the rows of every sequence still running (a prefix, the sequences being
 * sorted by decreasing length) are multiplied by A in one GEMM.  o[b]
 * receives log p(y_b).  0, or -1 when out of memory. */
static int fwd_batch(bk_ctx *ctx, const hmm_in *h, double *o) {
    int64_t K = h->K, B = h->B;
    int64_t *ord = bk_malloc(ctx, (size_t)B * sizeof *ord);
    double *R = bk_malloc(ctx, (size_t)(2 * B * K + K) * sizeof(double));
    bool *dead = bk_malloc(ctx, (size_t)B * sizeof *dead);
    if (!ord || !R || !dead) {
        bk_free(ctx, ord);
        bk_free(ctx, R);
        bk_free(ctx, dead);
        return -1;
    }
    double *P = R + B * K, *buf = P + B * K;
    /* insertion sort by decreasing length (stable; B is small next to T K^2) */
    for (int64_t b = 0; b < B; b++) {
        int64_t j = b;
        for (; j > 0 && h->L[ord[j - 1]] < h->L[b]; j--) ord[j] = ord[j - 1];
        ord[j] = b;
    }
    int64_t nact = 0;
    for (int64_t r = 0; r < B; r++) {
        int64_t b = ord[r];
        double *a = R + r * K, c, tot = 0;
        dead[r] = false;
        o[b] = 0;
        if (h->L[b] == 0) continue;
        nact = r + 1;
        const double *e = emission(h, b, 0, buf, &c);
        for (int64_t k = 0; isfinite(c) && k < K; k++) tot += a[k] = h->pexp[k] * e[k];
        if (!isfinite(c) || !(tot > 0) || !(tot < INFINITY)) {
            o[b] = !isfinite(c) ? c : tot > 0 ? tot : -INFINITY;
            dead[r] = true;
            memset(a, 0, (size_t)K * sizeof *a);
            continue;
        }
        row_scale(K, a, 1.0 / tot);
        o[b] = c + h->mpi + log(tot);
    }
    for (int64_t t = 1; nact > 0; t++) {
        while (nact > 0 && h->L[ord[nact - 1]] <= t) nact--;
        if (nact == 0) break;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nact, (int)K, (int)K, 1.0, R,
                    (int)K, h->A, (int)K, 0.0, P, (int)K);
        for (int64_t r = 0; r < nact; r++) {
            if (dead[r]) continue;
            int64_t b = ord[r];
            double c, tot = 0, *a = R + r * K, *p = P + r * K;
            const double *e = emission(h, b, t, buf, &c);
            if (isfinite(c))
                for (int64_t k = 0; k < K; k++) tot += p[k] *= e[k];
            if (!isfinite(c) || !(tot >= HMM_LO && tot <= HMM_HI)) {
                /* redo this row's step from its row scaled to sum 1 */
                double sp = row_sum(K, a);
                row_scale(K, a, 1.0 / sp);
                o[b] += log(sp);
                tot = isfinite(c) ? fstep(K, a, h->A, e, p, false) : 0;
                if (!isfinite(c) || !(tot > 0) || !(tot < INFINITY)) {
                    o[b] = !isfinite(c) ? c : tot > 0 ? tot : -INFINITY;
                    dead[r] = true;
                    memset(a, 0, (size_t)K * sizeof *a);
                    continue;
                }
                if (!(tot >= HMM_LO && tot <= HMM_HI)) {
                    row_scale(K, p, 1.0 / tot);
                    o[b] += log(tot);
                }
            }
            memcpy(a, p, (size_t)K * sizeof *a);
            o[b] += c;
            if (t == h->L[b] - 1) o[b] += log(row_sum(K, a));
        }
    }
    /* a sequence of one step has its log p already */
    bk_free(ctx, ord);
    bk_free(ctx, R);
    bk_free(ctx, dead);
    return 0;
}

static bool sweep512_ok(const hmm_in *h);
static double fwd512(const hmm_in *h, int64_t bi, double *w, double *buf);

static bk_tensor *forward_op(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args, bool cat) {
    hmm_in h;
    if (in_load(ctx, in, cat, codes_checked(args, cat), &h)) return NULL;
    int batched = (cat ? in[3]->ndim : in[2]->ndim) == (cat ? 2 : 3);
    bk_tensor *out = bk_empty(ctx, BK_F64, batched, (int64_t[]){h.B});
    double *work = out ? bk_malloc(ctx, (size_t)(3 * h.K) * sizeof(double)) : NULL;
    if (work) {
        double *o = bk_data(out);
        if (small_cat_ok(&h)) {
            if (small_cat_forward(ctx, &h, o)) {
                bk_release(out);
                out = NULL;
            }
        } else if (h.B >= 4 && h.K >= BK_HMM_BLAS_K && !h.tv) {
            if (fwd_batch(ctx, &h, o)) {
                bk_release(out);
                out = NULL;
            }
        } else {
            bool v512 = sweep512_ok(&h);
            for (int64_t b = 0; b < h.B; b++)
                o[b] = !h.L[b] ? 0.0
                       : v512  ? fwd512(&h, b, work, work + 2 * h.K)
                               : fwd_any(&h, b, NULL, NULL, work, work + 2 * h.K);
        }
    } else {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, work);
    in_free(ctx, &h);
    return out;
}

bk_tensor *bk_fw_HMM_FORWARD(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    return forward_op(ctx, in, args, false);
}

bk_tensor *bk_fw_HMM_FORWARD_CAT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    return forward_op(ctx, in, args, true);
}

/* Whether the backward sweep keeps the pair sums for one GEMM per block of
 * steps (else one rank-1 update per step). */
static inline bool pair_blocked(int64_t K) {
#ifdef HMM_AVX2
    if (K >= HMM_PAIR512_K && __builtin_cpu_supports("avx512f")) return true;
#endif
    return K >= BK_HMM_BLAS_K;
}

/* Rows of u_t kept for one GEMM of pair-marginal sums (large K). */
#define HMM_PAIR_BLOCK 128

/* Work arrays of the backward pass. */
typedef struct hmm_bwork {
    double *alpha, *eb;    /* [T*K] each (eb: the logB form only) */
    double *ublk;          /* [HMM_PAIR_BLOCK*K] */
    double *At;            /* [K*K] A transposed (homogeneous A, large K) */
    double *row;           /* 4K: beta, v, w, buf */
    double *gemT;          /* NULL, or [V*K]: Categorical emission counts by symbol
                            * (bwd_sweep512), added into gem [K*V] at the end */
} hmm_bwork;

/* Adds g * gamma (one step's posterior marginals) to the emission and
 * init gradients. */
static inline __attribute__((always_inline)) void add_gamma(const hmm_in *h, int64_t bi,
                                                          int64_t t, const int64_t K, double g,
                                                          const double *gam, double *gpi,
                                                          double *gem) {
    if (gem && h->V) {
        int64_t y = (int64_t)h->codes[bi * h->T + t];
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) gem[k * h->V + y] += g * gam[k];
    } else if (gem) {
        double *gr = gem + (bi * h->T + t) * K;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) gr[k] += g * gam[k];
    }
    for (int64_t k = 0; gpi && t == 0 && k < K; k++) gpi[k] += g * gam[k];
}

/* Gradients of sequence bi (weight g = its output gradient) added into
 * gpi [K], gA [K*K or T*K*K] and gem (logB [B*T*K], or logE [K*V] in the
 * Categorical form); any may be NULL; returns log p(y_bi).  After the
 * forward pass (unnormalized alphas kept), one backward sweep: with
 * v = e_t .* beta_t and w = A_t v (the next beta, any scale),
 * Z = alpha_{t-1} . w normalizes both the posterior marginal
 * gamma_{t-1} = alpha_{t-1} .* w / Z and the pair-marginal factor
 * u_t = v / Z (xi_t = alpha_{t-1} u_t^T .* A_t), so neither the alphas' nor
 * the betas' scales need to be tracked.  The pair sums
 * sum_t alpha_{t-1} u_t^T (the A gradient) are one GEMM per block of
 * HMM_PAIR_BLOCK steps for a large homogeneous A. */
static inline __attribute__((always_inline)) double bwd_run(const hmm_in *h, int64_t bi,
                                                            const int64_t K, double g,
                                                            hmm_bwork *wk, double *gpi,
                                                            double *gA, double *gem) {
    int64_t L = h->L[bi];
    if (L == 0) return 0;
    /* for K <= 4 (a constant here) the rows and a homogeneous A's
     * gradient are local arrays, held in registers across the steps */
    double loc[4 * 4], Gl[4 * 4] = {0};
    bool small = K <= 4;
    double *beta = small ? loc : wk->row, *v = beta + K, *w = v + K, *buf = w + K;
    double *alpha = wk->alpha;
    /* (fwd_run itself for K > 4: inlined with the caller's constant K and
     * target) */
    double ll = K <= 4 ? fwd_any(h, bi, alpha, h->V ? NULL : wk->eb, NULL, buf)
                       : fwd_run(h, bi, K, alpha, h->V ? NULL : wk->eb, NULL, buf);
    if (!isfinite(ll) || g == 0) return ll;
    bool blk = gA && !h->tv && pair_blocked(K), wide = !h->tv && K >= BK_HMM_VEC_K;
    /* gamma_{L-1} = alpha_{L-1} / its sum */
    const double *aL = alpha + (L - 1) * K;
    double iz = 1.0 / row_sum(K, aL);
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) w[k] = aL[k] * iz;
    add_gamma(h, bi, L - 1, K, g, w, gpi, gem);
    #pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) beta[k] = 1.0;
    int64_t te = L, tb = L - HMM_PAIR_BLOCK > 1 ? L - HMM_PAIR_BLOCK : 1;
    for (int64_t t = L - 1; t >= 1; t--) {
        double c;
        const double *e = h->V ? emission(h, bi, t, buf, &c) : wk->eb + t * K;
        const double *At = h->A + (h->tv ? t * K * K : 0);
        double *ap = alpha + (t - 1) * K;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) v[k] = e[k] * beta[k];
        if (wide) bk_hmm_vecmat_dir(K, v, wk->At, w, t & 1);
        else bk_hmm_matvec(K, At, v, w);
        double sw = row_sum(K, w);
        if (!(sw >= HMM_LO && sw <= HMM_HI)) {
            /* redo from beta scaled to sum 1 (its scale is free) */
            double ib = 1.0 / row_sum(K, beta);
            row_scale(K, v, ib);
            if (wide) bk_hmm_vecmat_dir(K, v, wk->At, w, t & 1);
            else bk_hmm_matvec(K, At, v, w);
            sw = row_sum(K, w);
            if (!(sw > 0)) return ll;
        }
        double Z = 0;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) Z += ap[k] * w[k];
        if (!(Z > 1e-290 && Z < 1e290)) {
            /* extreme scales: bring both factors to sum 1 (alpha's row is
             * used only here and its scale is free) */
            row_scale(K, ap, 1.0 / row_sum(K, ap));
            row_scale(K, v, 1.0 / sw);
            row_scale(K, w, 1.0 / sw);
            sw = 1;
            Z = 0;
            #pragma GCC unroll 4
            for (int64_t k = 0; k < K; k++) Z += ap[k] * w[k];
            if (!(Z > 0)) return ll;
        }
        iz = 1.0 / Z;
        /* beta_{t-1} = w: gamma_{t-1} = ap .* w / Z goes into beta's old row */
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) beta[k] = ap[k] * w[k] * iz;
        add_gamma(h, bi, t - 1, K, g, beta, gpi, gem);
        if (blk) {
            double *u = wk->ublk + (t - tb) * K;
            #pragma GCC unroll 4
            for (int64_t k = 0; k < K; k++) u[k] = v[k] * iz;
            if (t == tb) {
                bk_hmm_pair_sums(K, te - tb, g, alpha + (tb - 1) * K, wk->ublk, gA);
                te = tb;
                tb = te - HMM_PAIR_BLOCK > 1 ? te - HMM_PAIR_BLOCK : 1;
            }
        } else if (gA) {
            double *G = small && !h->tv ? Gl : gA + (h->tv ? t * K * K : 0);
            #pragma GCC unroll 4
            for (int64_t i = 0; i < K; i++) {
                double ai = g * ap[i] * iz;
                #pragma GCC unroll 4
                for (int64_t j = 0; j < K; j++) G[i * K + j] += ai * v[j];
            }
        }
        /* beta_{t-1} = w (a copy, not a pointer swap: registers for K <= 4) */
        #pragma GCC unroll 4
        for (int64_t k = 0; k < K; k++) beta[k] = w[k];
        if (!(sw >= HMM_LO && sw <= HMM_HI)) row_scale(K, beta, 1.0 / sw);
    }
    if (small && gA && !h->tv)
        #pragma GCC unroll 16
        for (int64_t i = 0; i < K * K; i++) gA[i] += Gl[i];
    return ll;
}

#ifdef HMM_AVX2
/* bwd_run compiled for AVX-512 (CPUs that have it, a homogeneous A, K >= 8
 * not a multiple of 8 or above 64; those take bwd_sweep512): the same
 * operations in the same order as bwd_run's other instances. */
__attribute__((target("avx512f"))) static double bwd512_any(const hmm_in *h, int64_t bi,
                                                            double g, hmm_bwork *wk,
                                                            double *gpi, double *gA,
                                                            double *gem) {
    return bwd_run(h, bi, h->K, g, wk, gpi, gA, gem);
}

/* The backward sweep of bwd_run for a homogeneous A and K a multiple of 8
 * (8 <= K <= 64) on AVX-512 CPUs, the rows as 8-wide vectors: the same
 * steps, rescalings and redo paths as bwd_run, with the row sums and Z
 * summed 8 lanes at a time (so equal to bwd_run's up to rounding), the
 * pair sums always in blocks (pair_sums_avx512). */
#define SW_ATTR __attribute__((target("avx512f"), always_inline)) static inline
SW_ATTR double sw_sum(int64_t K, const double *r) {
    __m512d s = _mm512_loadu_pd(r);
    for (int64_t k = 8; k < K; k += 8) s = _mm512_add_pd(s, _mm512_loadu_pd(r + k));
    return _mm512_reduce_add_pd(s);
}
SW_ATTR double sw_dot(int64_t K, const double *a, const double *b) {
    __m512d s = _mm512_mul_pd(_mm512_loadu_pd(a), _mm512_loadu_pd(b));
    for (int64_t k = 8; k < K; k += 8)
        s = _mm512_fmadd_pd(_mm512_loadu_pd(a + k), _mm512_loadu_pd(b + k), s);
    return _mm512_reduce_add_pd(s);
}
/* out = a .* b * f */
SW_ATTR void sw_mul(int64_t K, double *out, const double *a, const double *b, double f) {
    __m512d ff = _mm512_set1_pd(f);
    for (int64_t k = 0; k < K; k += 8)
        _mm512_storeu_pd(out + k, _mm512_mul_pd(_mm512_mul_pd(_mm512_loadu_pd(a + k),
                                                              _mm512_loadu_pd(b + k)), ff));
}
SW_ATTR void sw_scale(int64_t K, double *r, double f) {
    __m512d ff = _mm512_set1_pd(f);
    for (int64_t k = 0; k < K; k += 8) _mm512_storeu_pd(r + k, _mm512_mul_pd(_mm512_loadu_pd(r + k), ff));
}
/* fstep on 8-wide rows: out = (a A) .* e; returns sum(out) */
SW_ATTR double sw_fstep(int64_t K, const double *a, const double *A, const double *e, double *out, bool rev) {
    bk_hmm_vecmat_dir(K, a, A, out, rev);
    sw_mul(K, out, out, e, 1.0);
    return sw_sum(K, out);
}
/* out += f * a */
SW_ATTR void sw_axpy(int64_t K, double *out, const double *a, double f) {
    __m512d ff = _mm512_set1_pd(f);
    for (int64_t k = 0; k < K; k += 8)
        _mm512_storeu_pd(out + k, _mm512_fmadd_pd(ff, _mm512_loadu_pd(a + k), _mm512_loadu_pd(out + k)));
}

SW_ATTR void sw_gamma(const hmm_in *h, int64_t bi, int64_t t, int64_t K, double g,
                      const double *gam, double *gpi, double *gem, double *gemT) {
    if (gemT) {
        sw_axpy(K, gemT + (int64_t)h->codes[bi * h->T + t] * K, gam, g);
    } else if (gem && h->V) {
        int64_t y = (int64_t)h->codes[bi * h->T + t];
        for (int64_t k = 0; k < K; k++) gem[k * h->V + y] += g * gam[k];
    } else if (gem) {
        sw_axpy(K, gem + (bi * h->T + t) * K, gam, g);
    }
    if (gpi && t == 0) sw_axpy(K, gpi, gam, g);
}

/* Rows ahead of the current step fetched into the cache by the stored
 * forward and the backward sweep (bwd_sweep512). */
#define HMM_PREFETCH 8

/* fwd_run for bwd_sweep512's K (a homogeneous A): the row sums 8 lanes at
 * a time; without store the two rows in w (2K) swap. */
__attribute__((target("avx512f"), always_inline)) static inline double
fwd_store512(const hmm_in *h, int64_t bi, const int64_t K, double *store, double *eb,
             double *w, double *buf) {
    int64_t L = h->L[bi];
    double c, ll;
    double *a = store ? store : w, *n = store ? store + K : w + K;
    const double *e = emission(h, bi, 0, eb ? eb : buf, &c);
    if (!isfinite(c)) return c;
    sw_mul(K, a, h->pexp, e, 1.0);
    double tot = sw_sum(K, a);
    if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
    ll = c + h->mpi;
    if (!(tot >= HMM_LO && tot <= HMM_HI)) {
        sw_scale(K, a, 1.0 / tot);
        ll += log(tot);
    }
    for (int64_t t = 1; t < L; t++) {
        e = emission(h, bi, t, eb ? eb + t * K : buf, &c);
        if (!isfinite(c)) return c;
        /* the stored rows of a long sequence go to memory: their lines are
         * fetched for writing some steps ahead */
        if (store && t + HMM_PREFETCH < L)
            for (int64_t k = 0; k < K; k += 8) __builtin_prefetch(n + HMM_PREFETCH * K + k, 1, 3);
        tot = sw_fstep(K, a, h->A, e, n, t & 1);
        HMM_RESCALE_STEP(K, a, n, tot, ll, sw_fstep(K, a, h->A, e, n, t & 1), sw_sum, sw_scale);
        ll += c;
        if (store) {
            a = n;
            n += K;
        } else {
            double *tmp = a;
            a = n;
            n = tmp;
        }
    }
    return ll + log(sw_sum(K, a));
}

__attribute__((target("avx512f"), always_inline)) static inline double bwd_sweep512(const hmm_in *h, int64_t bi,
                                                              const int64_t K, double g,
                                                              hmm_bwork *wk, double *gpi,
                                                              double *gA, double *gem) {
    int64_t L = h->L[bi];
    if (L == 0) return 0;
    double *beta = wk->row, *v = beta + K, *w = v + K, *gam = w + K, *alpha = wk->alpha;
    double ll = fwd_store512(h, bi, K, alpha, h->V ? NULL : wk->eb, NULL, gam);
    if (!isfinite(ll) || g == 0) return ll;
    const double *aL = alpha + (L - 1) * K;
    for (int64_t k = 0; k < K; k += 8) _mm512_storeu_pd(gam + k, _mm512_loadu_pd(aL + k));
    sw_scale(K, gam, 1.0 / sw_sum(K, aL));
    sw_gamma(h, bi, L - 1, K, g, gam, gpi, gem, wk->gemT);
    for (int64_t k = 0; k < K; k += 8) _mm512_storeu_pd(beta + k, _mm512_set1_pd(1.0));
    int64_t te = L, tb = L - HMM_PAIR_BLOCK > 1 ? L - HMM_PAIR_BLOCK : 1;
    for (int64_t t = L - 1; t >= 1; t--) {
        double c;
        const double *e = h->V ? emission(h, bi, t, gam, &c) : wk->eb + t * K;
        double *ap = alpha + (t - 1) * K;
        /* a long sequence's alphas come from memory, in decreasing order:
         * fetched some steps ahead */
        if (t > HMM_PREFETCH)
            for (int64_t k = 0; k < K; k += 8)
                _mm_prefetch((const char *)(ap - HMM_PREFETCH * K + k), _MM_HINT_T0);
        sw_mul(K, v, e, beta, 1.0);
        bk_hmm_vecmat_dir(K, v, wk->At, w, t & 1);
        double sw = sw_sum(K, w);
        if (!(sw >= HMM_LO && sw <= HMM_HI)) {
            sw_scale(K, v, 1.0 / sw_sum(K, beta));
            bk_hmm_vecmat_dir(K, v, wk->At, w, t & 1);
            sw = sw_sum(K, w);
            if (!(sw > 0)) return ll;
        }
        double Z = sw_dot(K, ap, w);
        if (!(Z > 1e-290 && Z < 1e290)) {
            sw_scale(K, ap, 1.0 / sw_sum(K, ap));
            sw_scale(K, v, 1.0 / sw);
            sw_scale(K, w, 1.0 / sw);
            sw = 1;
            Z = sw_dot(K, ap, w);
            if (!(Z > 0)) return ll;
        }
        double iz = 1.0 / Z;
        sw_mul(K, gam, ap, w, iz);
        sw_gamma(h, bi, t - 1, K, g, gam, gpi, gem, wk->gemT);
        if (gA) {
            for (int64_t k = 0; k < K; k += 8)
                _mm512_storeu_pd(wk->ublk + (t - tb) * K + k,
                                 _mm512_mul_pd(_mm512_loadu_pd(v + k), _mm512_set1_pd(iz)));
            if (t == tb) {
                bk_hmm_pair_sums(K, te - tb, g, alpha + (tb - 1) * K, wk->ublk, gA);
                te = tb;
                tb = te - HMM_PAIR_BLOCK > 1 ? te - HMM_PAIR_BLOCK : 1;
            }
        }
        /* beta_{t-1} = w */
        double *tmp = beta;
        beta = w;
        w = tmp;
        if (!(sw >= HMM_LO && sw <= HMM_HI)) sw_scale(K, beta, 1.0 / sw);
    }
    return ll;
}
#undef SW_ATTR
#define HMM_SWEEP512(KK)                                                                      \
    __attribute__((target("avx512f"))) static double sweep512_##KK(                           \
        const hmm_in *h, int64_t bi, double g, hmm_bwork *wk, double *gpi, double *gA,         \
        double *gem) {                                                                        \
        return bwd_sweep512(h, bi, KK, g, wk, gpi, gA, gem);                                  \
    }                                                                                         \
    __attribute__((target("avx512f"))) static double fwd512_##KK(const hmm_in *h, int64_t bi, \
                                                                 double *w, double *buf) {    \
        return fwd_store512(h, bi, KK, NULL, NULL, w, buf);                                   \
    }
HMM_SWEEP512(8)
HMM_SWEEP512(16)
HMM_SWEEP512(24)
HMM_SWEEP512(32)
HMM_SWEEP512(40)
HMM_SWEEP512(48)
HMM_SWEEP512(56)
HMM_SWEEP512(64)
#undef HMM_SWEEP512

/* The op's forward of one sequence for sweep512_ok inputs (w: 2K, buf: K). */
static double fwd512(const hmm_in *h, int64_t bi, double *w, double *buf) {
    switch (h->K) {
    case 8: return fwd512_8(h, bi, w, buf);
    case 16: return fwd512_16(h, bi, w, buf);
    case 24: return fwd512_24(h, bi, w, buf);
    case 32: return fwd512_32(h, bi, w, buf);
    case 40: return fwd512_40(h, bi, w, buf);
    case 48: return fwd512_48(h, bi, w, buf);
    case 56: return fwd512_56(h, bi, w, buf);
    default: return fwd512_64(h, bi, w, buf);
    }
}
#else
static double fwd512(const hmm_in *h, int64_t bi, double *w, double *buf) {
    return fwd_any(h, bi, NULL, NULL, w, buf);
}
#endif

/* Whether bwd_seq takes bwd_sweep512. */
static bool sweep512_ok(const hmm_in *h) {
#ifdef HMM_AVX2
    return h->K >= 8 && h->K <= 64 && h->K % 8 == 0 && !h->tv && __builtin_cpu_supports("avx512f");
#else
    (void)h;
    return false;
#endif
}

/* bwd_run with a constant K for few states (and the AVX-512 instances). */
static double bwd_seq(const hmm_in *h, int64_t bi, double g, hmm_bwork *wk, double *gpi,
                      double *gA, double *gem) {
#ifdef HMM_AVX2
    if (sweep512_ok(h) || (h->K >= 8 && !h->tv && __builtin_cpu_supports("avx512f"))) {
        switch (h->K) {
        case 8: return sweep512_8(h, bi, g, wk, gpi, gA, gem);
        case 16: return sweep512_16(h, bi, g, wk, gpi, gA, gem);
        case 24: return sweep512_24(h, bi, g, wk, gpi, gA, gem);
        case 32: return sweep512_32(h, bi, g, wk, gpi, gA, gem);
        case 40: return sweep512_40(h, bi, g, wk, gpi, gA, gem);
        case 48: return sweep512_48(h, bi, g, wk, gpi, gA, gem);
        case 56: return sweep512_56(h, bi, g, wk, gpi, gA, gem);
        case 64: return sweep512_64(h, bi, g, wk, gpi, gA, gem);
        default: return bwd512_any(h, bi, g, wk, gpi, gA, gem);
        }
    }
#endif
    switch (h->K) {
    case 2: return bwd_run(h, bi, 2, g, wk, gpi, gA, gem);
    case 3: return bwd_run(h, bi, 3, g, wk, gpi, gA, gem);
    case 4: return bwd_run(h, bi, 4, g, wk, gpi, gA, gem);
    default: return bwd_run(h, bi, h->K, g, wk, gpi, gA, gem);
    }
}

/* The gradients of every sequence (weights g[b], or 1 when g is NULL)
 * added into gpi, gA, gem (any may be NULL); ll[b] receives log p(y_b)
 * when ll is not NULL.  0, or -1 when out of memory. */
static size_t grad_worksize(int64_t K, int64_t T, bool cat) {
    /* the alphas ([T, max(K, 4)]: the kernels for K <= 4 store 4 lanes) and,
     * for the logB form, the emission likelihoods ([T, K]) */
    size_t n = (size_t)((T ? T : 1) * (K < 4 ? 4 : K));
    return (cat ? n : 2 * n) + (size_t)(HMM_PAIR_BLOCK * K + K * K + 4 * K);
}

/* Batches at large K: the forward and the backward sweep of all sequences
 * in lock step (B >= 4, K >= HMM_BATCH_K, a homogeneous A), so that each step is one GEMM over the sequences still
 * running (sorted by decreasing length, they are a prefix) instead of one
 * vector-matrix product per sequence, and the pair sums of all steps are
 * register-blocked GEMMs over blocks of rows.  Rows are laid out
 * [T][B][K] (step-major).  Per row the steps, rescalings and the
 * normalization by Z are those of fwd_run and bwd_run.  Used while the
 * arrays stay below HMM_BATCH_MAX doubles each (else sequence by
 * sequence). */
#define HMM_BATCH_MAX ((int64_t)1 << 23)

/* From this K the GEMM over the running sequences beats one AVX-512
 * vector-matrix product per sequence (measured: at K = 32 and 64 with 50
 * sequences they are on par, at K = 256 the lock step halves the sweep). */
#define HMM_BATCH_K 128

static bool batch_ok(const hmm_in *h) {
    return h->B >= 4 && h->K >= HMM_BATCH_K && !h->tv && h->T * h->B * h->K <= HMM_BATCH_MAX;
}

typedef struct hmm_batch {
    int64_t *ord;          /* [B] sequence of each rank (decreasing length) */
    double *alpha, *u;     /* [T*B*K] each: the alphas, u_t = g v_t / Z_t */
    double *eb;            /* [T*B*K] shifted emission likelihoods (logB form) */
    double *beta, *v, *w;  /* [B*K] each */
    double *lp, *gw;       /* [B] log p and weight by rank */
    bool *dead;            /* [B] no (more) gradient for this rank */
} hmm_batch;

/* The number of ranks whose sequence is longer than t. */
static int64_t batch_active(const hmm_in *h, const hmm_batch *s, int64_t t) {
    int64_t n = h->B;
    while (n > 0 && h->L[s->ord[n - 1]] <= t) n--;
    return n;
}

/* The stored forward pass of the batch in lock step: lp[r] and the rows of
 * alpha; dead[r] for impossible sequences. */
static void batch_forward(const hmm_in *h, hmm_batch *s, double *buf) {
    int64_t K = h->K, B = h->B;
    for (int64_t r = 0; r < B; r++) {
        int64_t b = s->ord[r];
        double *a = s->alpha + r * K, c, tot = 0;
        s->lp[r] = 0;
        s->dead[r] = h->L[b] == 0;
        if (s->dead[r]) continue;
        const double *e = emission(h, b, 0, s->eb ? s->eb + r * K : buf, &c);
        for (int64_t k = 0; isfinite(c) && k < K; k++) tot += a[k] = h->pexp[k] * e[k];
        if (!isfinite(c) || !(tot > 0) || !(tot < INFINITY)) {
            s->lp[r] = !isfinite(c) ? c : tot > 0 ? tot : -INFINITY;
            s->dead[r] = true;
            memset(a, 0, (size_t)K * sizeof *a);
            continue;
        }
        s->lp[r] = c + h->mpi;
        if (!(tot >= HMM_LO && tot <= HMM_HI)) {
            row_scale(K, a, 1.0 / tot);
            s->lp[r] += log(tot);
        }
    }
    for (int64_t t = 1;; t++) {
        int64_t nact = batch_active(h, s, t);
        if (nact == 0) break;
        double *R = s->alpha + (t - 1) * B * K, *P = R + B * K;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nact, (int)K, (int)K, 1.0, R,
                    (int)K, h->A, (int)K, 0.0, P, (int)K);
        for (int64_t r = 0; r < nact; r++) {
            double *a = R + r * K, *p = P + r * K, c, tot = 0;
            if (s->dead[r]) {
                memset(p, 0, (size_t)K * sizeof *p);
                continue;
            }
            int64_t b = s->ord[r];
            const double *e = emission(h, b, t, s->eb ? s->eb + (t * B + r) * K : buf, &c);
            if (isfinite(c))
                for (int64_t k = 0; k < K; k++) tot += p[k] *= e[k];
            if (isfinite(c) && !(tot >= HMM_LO && tot <= HMM_HI)) {
                /* redo this row's step from its row scaled to sum 1 */
                double sp = row_sum(K, a);
                row_scale(K, a, 1.0 / sp);
                s->lp[r] += log(sp);
                tot = fstep(K, a, h->A, e, p, false);
                if (tot > 0 && tot < INFINITY && !(tot >= HMM_LO && tot <= HMM_HI)) {
                    row_scale(K, p, 1.0 / tot);
                    s->lp[r] += log(tot);
                }
            }
            if (!isfinite(c) || !(tot > 0) || !(tot < INFINITY)) {
                s->lp[r] = !isfinite(c) ? c : tot > 0 ? tot : -INFINITY;
                s->dead[r] = true;
                memset(p, 0, (size_t)K * sizeof *p);
                continue;
            }
            s->lp[r] += c;
        }
    }
    for (int64_t r = 0; r < B; r++)
        if (!s->dead[r]) s->lp[r] += log(row_sum(K, s->alpha + ((h->L[s->ord[r]] - 1) * B + r) * K));
}

/* The backward sweep of the batch in lock step after batch_forward: the
 * posterior marginals into gpi and gem (add_gamma), the rows u_t into s->u. */
static void batch_backward(const hmm_in *h, hmm_batch *s, double *gpi, double *gem,
                           double *buf) {
    int64_t K = h->K, B = h->B, maxL = h->L[s->ord[0]];
    for (int64_t r = 0; r < B; r++) {
        s->dead[r] = s->dead[r] || !isfinite(s->lp[r]) || s->gw[r] == 0;
        int64_t b = s->ord[r], L = h->L[b];
        if (s->dead[r] || L != 1) continue;
        const double *a = s->alpha + r * K;
        double iz = 1.0 / row_sum(K, a);
        for (int64_t k = 0; k < K; k++) buf[k] = a[k] * iz;
        add_gamma(h, b, 0, K, s->gw[r], buf, gpi, gem);
    }
    for (int64_t t = maxL - 1; t >= 1; t--) {
        int64_t nact = batch_active(h, s, t);
        for (int64_t r = 0; r < nact; r++) {
            int64_t b = s->ord[r];
            double *beta = s->beta + r * K, *v = s->v + r * K, c;
            if (s->dead[r]) {
                memset(v, 0, (size_t)K * sizeof *v);
                continue;
            }
            if (h->L[b] - 1 == t) {
                /* the sequence's last step: gamma = alpha / its sum, beta = 1 */
                const double *a = s->alpha + (t * B + r) * K;
                double iz = 1.0 / row_sum(K, a);
                for (int64_t k = 0; k < K; k++) buf[k] = a[k] * iz;
                add_gamma(h, b, t, K, s->gw[r], buf, gpi, gem);
                for (int64_t k = 0; k < K; k++) beta[k] = 1.0;
            }
            const double *e = s->eb ? s->eb + (t * B + r) * K : emission(h, b, t, buf, &c);
            for (int64_t k = 0; k < K; k++) v[k] = e[k] * beta[k];
        }
        /* w_r = A v_r for every running row */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nact, (int)K, (int)K, 1.0, s->v,
                    (int)K, h->A, (int)K, 0.0, s->w, (int)K);
        for (int64_t r = 0; r < nact; r++) {
            if (s->dead[r]) continue;
            int64_t b = s->ord[r];
            double *beta = s->beta + r * K, *v = s->v + r * K, *w = s->w + r * K;
            double *ap = s->alpha + ((t - 1) * B + r) * K, sw = row_sum(K, w);
            if (!(sw >= HMM_LO && sw <= HMM_HI)) {
                /* redo from beta scaled to sum 1 (its scale is free) */
                row_scale(K, v, 1.0 / row_sum(K, beta));
                bk_hmm_matvec(K, h->A, v, w);
                sw = row_sum(K, w);
                if (!(sw > 0)) {
                    s->dead[r] = true;
                    continue;
                }
            }
            double Z = 0;
            for (int64_t k = 0; k < K; k++) Z += ap[k] * w[k];
            if (!(Z > 1e-290 && Z < 1e290)) {
                row_scale(K, ap, 1.0 / row_sum(K, ap));
                row_scale(K, v, 1.0 / sw);
                row_scale(K, w, 1.0 / sw);
                sw = 1;
                Z = 0;
                for (int64_t k = 0; k < K; k++) Z += ap[k] * w[k];
                if (!(Z > 0)) {
                    s->dead[r] = true;
                    continue;
                }
            }
            double iz = 1.0 / Z, gz = s->gw[r] * iz, *u = s->u + (t * B + r) * K;
            for (int64_t k = 0; k < K; k++) {
                buf[k] = ap[k] * w[k] * iz;
                u[k] = gz * v[k];
            }
            add_gamma(h, b, t - 1, K, s->gw[r], buf, gpi, gem);
            double f = sw >= HMM_LO && sw <= HMM_HI ? 1.0 : 1.0 / sw;
            for (int64_t k = 0; k < K; k++) beta[k] = w[k] * f;
        }
    }
}

/* grad_all for batch_ok inputs.  0, or -1 when out of memory. */
static int grad_batch(bk_ctx *ctx, const hmm_in *h, const bk_tensor *g, double *ll, double *gpi,
                      double *gA, double *gem) {
    int64_t K = h->K, B = h->B, T = h->T;
    size_t n = (size_t)(T * B * K), nb = (size_t)(B * K);
    hmm_batch s = {0};
    s.ord = bk_malloc(ctx, (size_t)B * sizeof *s.ord);
    s.dead = bk_malloc(ctx, (size_t)B * sizeof *s.dead);
    double *mem = bk_malloc(ctx, ((h->V ? 2 : 3) * n + 3 * nb + 2 * (size_t)B + (size_t)K) *
                                     sizeof(double));
    if (!s.ord || !s.dead || !mem) {
        bk_free(ctx, s.ord);
        bk_free(ctx, s.dead);
        bk_free(ctx, mem);
        return -1;
    }
    /* rows past a sequence's end stay 0 (the pair-sum GEMMs run over them) */
    memset(mem, 0, 2 * n * sizeof *mem);
    s.alpha = mem, s.u = mem + n;
    double *p = mem + 2 * n;
    if (!h->V) s.eb = p, p += n;
    s.beta = p, s.v = p + nb, s.w = p + 2 * nb, s.lp = p + 3 * nb, s.gw = s.lp + B;
    double *buf = s.gw + B;
    /* insertion sort by decreasing length (stable) */
    for (int64_t b = 0; b < B; b++) {
        int64_t j = b;
        for (; j > 0 && h->L[s.ord[j - 1]] < h->L[b]; j--) s.ord[j] = s.ord[j - 1];
        s.ord[j] = b;
    }
    for (int64_t r = 0; r < B; r++) s.gw[r] = g ? bk_get(g, s.ord[r]) : 1.0;
    batch_forward(h, &s, buf);
    int64_t maxL = h->L[s.ord[0]];
    if (maxL > 0) batch_backward(h, &s, gpi, gem, buf);
    /* sum over t >= 1 and r of alpha_{t-1, r} u_{t, r}^T: rows r of step t-1
     * of alpha against the rows of step t of u, in blocks of rows */
    int64_t rows = (maxL > 1 ? maxL - 1 : 0) * B, blk = HMM_PAIR_BLOCK;
    for (int64_t r0 = 0; gA && r0 < rows; r0 += blk)
        bk_hmm_pair_sums(K, rows - r0 < blk ? rows - r0 : blk, 1.0, s.alpha + r0 * K,
                         s.u + (r0 + B) * K, gA);
    for (int64_t r = 0; ll && r < B; r++) ll[s.ord[r]] = s.lp[r];
    bk_free(ctx, s.ord);
    bk_free(ctx, s.dead);
    bk_free(ctx, mem);
    return 0;
}

/* work: grad_worksize doubles, or NULL to allocate them here. */
static int grad_all(bk_ctx *ctx, const hmm_in *h, const bk_tensor *g, double *ll, double *gpi,
                    double *gA, double *gem, double *work) {
    int64_t K = h->K, T = h->T;
    size_t n = (size_t)((T ? T : 1) * K);
    int ne = h->V ? 1 : 2;
    if (batch_ok(h)) return grad_batch(ctx, h, g, ll, gpi, gA, gem);
    double *own = work ? NULL : bk_malloc(ctx, grad_worksize(K, T, h->V) * sizeof(double));
    if (!work && !own) return -1;
    if (!work) work = own;
    if (small_cat_ok(h)) {
        int rc = small_cat_grad(ctx, h, g, ll, gpi, gA, gem, work);
        bk_free(ctx, own);
        return rc;
    }
    hmm_bwork wk = {.alpha = work};
    wk.eb = h->V ? NULL : work + n;
    wk.ublk = work + ne * n;
    wk.At = wk.ublk + HMM_PAIR_BLOCK * K;
    wk.row = wk.At + K * K;
    if (!h->tv)
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++) wk.At[j * K + i] = h->A[i * K + j];
    /* the AVX-512 sweep sums the Categorical emission counts into rows by
     * symbol (contiguous, 8-wide) instead of columns of gem */
    if (sweep512_ok(h) && gem && h->V) {
        if (!(wk.gemT = bk_malloc(ctx, (size_t)(h->V * K) * sizeof(double)))) {
            bk_free(ctx, own);
            return -1;
        }
        memset(wk.gemT, 0, (size_t)(h->V * K) * sizeof(double));
    }
    for (int64_t bi = 0; bi < h->B; bi++) {
        double l = bwd_seq(h, bi, g ? bk_get(g, bi) : 1.0, &wk, gpi, gA, gem);
        if (ll) ll[bi] = l;
    }
    for (int64_t v = 0; wk.gemT && v < h->V; v++)
        for (int64_t k = 0; k < K; k++) gem[k * h->V + v] += wk.gemT[v * K + k];
    bk_free(ctx, wk.gemT);
    bk_free(ctx, own);
    return 0;
}

static int backward_op(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin,
                       bool cat) {
    bk_tensor **in = e->in;
    bool need[3] = {in[0]->requires_grad, in[1]->requires_grad, in[2]->requires_grad};
    if (!need[0] && !need[1] && !need[2]) return 0;
    hmm_in h;
    if (in_load(ctx, in, cat, codes_checked(&e->args, cat), &h)) return -1;
    for (int i = 0; i < 3; i++)
        if (need[i] && !(gin[i] = bk_zeros(ctx, BK_F64, in[i]->ndim, in[i]->shape))) goto fail;
    double *gpi = need[0] ? bk_data(gin[0]) : NULL, *gA = need[1] ? bk_data(gin[1]) : NULL;
    double *gem = need[2] ? bk_data(gin[2]) : NULL;
    if (grad_all(ctx, &h, gout, NULL, gpi, gA, gem, NULL)) goto fail;
    in_free(ctx, &h);
    return 0;
fail:
    for (int i = 0; i < 3; i++) {
        bk_release(gin[i]);
        gin[i] = NULL;
    }
    in_free(ctx, &h);
    return -1;
}

size_t bk_hmm_counts_worksize(int64_t K, int64_t T, bool cat) { return grad_worksize(K, T, cat); }

int bk_hmm_expected_counts(bk_ctx *ctx, bk_tensor **in, bool cat, double *ll, double *gpi,
                           double *gA, double *gem, double *work) {
    hmm_in h;
    if (in_load(ctx, in, cat, false, &h)) return -1;
    int rc = grad_all(ctx, &h, NULL, ll, gpi, gA, gem, work);
    if (rc) bk_seterr(ctx, "out of memory");
    in_free(ctx, &h);
    return rc;
}

int bk_bw_HMM_FORWARD(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    return backward_op(ctx, e, gout, gin, false);
}

int bk_bw_HMM_FORWARD_CAT(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    return backward_op(ctx, e, gout, gin, true);
}


/* --------------------------------------------- wide vector-matrix kernel --- */

#ifdef HMM_AVX2

/* p = a^T M with 16 destination states per pass held in 8 accumulators
 * (two source rows in flight hide the FMA latency); 4-wide and scalar tails. */
__attribute__((target("avx2,fma"))) static void vecmat_tail(int64_t K, int64_t j,
                                                            const double *restrict a,
                                                            const double *restrict M,
                                                            double *restrict p);

__attribute__((target("avx2,fma"))) static void vecmat_avx2(int64_t K, const double *restrict a,
                                                            const double *restrict M,
                                                            double *restrict p) {
    int64_t j = 0;
    for (; j + 16 <= K; j += 16) {
        __m256d c0 = _mm256_setzero_pd(), c1 = c0, c2 = c0, c3 = c0;
        __m256d d0 = c0, d1 = c0, d2 = c0, d3 = c0;
        int64_t i = 0;
        for (; i + 2 <= K; i += 2) {
            const double *r = M + i * K + j, *q = r + K;
            __m256d x = _mm256_broadcast_sd(a + i), y = _mm256_broadcast_sd(a + i + 1);
            c0 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r), c0);
            c1 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 4), c1);
            c2 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 8), c2);
            c3 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 12), c3);
            d0 = _mm256_fmadd_pd(y, _mm256_loadu_pd(q), d0);
            d1 = _mm256_fmadd_pd(y, _mm256_loadu_pd(q + 4), d1);
            d2 = _mm256_fmadd_pd(y, _mm256_loadu_pd(q + 8), d2);
            d3 = _mm256_fmadd_pd(y, _mm256_loadu_pd(q + 12), d3);
        }
        if (i < K) {
            const double *r = M + i * K + j;
            __m256d x = _mm256_broadcast_sd(a + i);
            c0 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r), c0);
            c1 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 4), c1);
            c2 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 8), c2);
            c3 = _mm256_fmadd_pd(x, _mm256_loadu_pd(r + 12), c3);
        }
        _mm256_storeu_pd(p + j, _mm256_add_pd(c0, d0));
        _mm256_storeu_pd(p + j + 4, _mm256_add_pd(c1, d1));
        _mm256_storeu_pd(p + j + 8, _mm256_add_pd(c2, d2));
        _mm256_storeu_pd(p + j + 12, _mm256_add_pd(c3, d3));
    }
    vecmat_tail(K, j, a, M, p);
}

/* Destination states j .. K-1 of vecmat_avx2: 4 at a time, then scalars. */
__attribute__((target("avx2,fma"))) static void vecmat_tail(int64_t K, int64_t j,
                                                            const double *restrict a,
                                                            const double *restrict M,
                                                            double *restrict p) {
    for (; j + 4 <= K; j += 4) {
        __m256d c0 = _mm256_setzero_pd(), d0 = c0;
        int64_t i = 0;
        for (; i + 2 <= K; i += 2) {
            c0 = _mm256_fmadd_pd(_mm256_broadcast_sd(a + i), _mm256_loadu_pd(M + i * K + j), c0);
            d0 = _mm256_fmadd_pd(_mm256_broadcast_sd(a + i + 1),
                                 _mm256_loadu_pd(M + (i + 1) * K + j), d0);
        }
        if (i < K)
            c0 = _mm256_fmadd_pd(_mm256_broadcast_sd(a + i), _mm256_loadu_pd(M + i * K + j), c0);
        _mm256_storeu_pd(p + j, _mm256_add_pd(c0, d0));
    }
    for (; j < K; j++) {
        double s = 0;
        for (int64_t i = 0; i < K; i++) s += a[i] * M[i * K + j];
        p[j] = s;
    }
}


/* vecmat_avx2 with 512-bit vectors: 32 destination states per pass. */
__attribute__((target("avx512f"))) static void vecmat_avx512(int64_t K, const double *restrict a,
                                                             const double *restrict M,
                                                             double *restrict p) {
    int64_t j = 0;
    for (; j + 32 <= K; j += 32) {
        __m512d c0 = _mm512_setzero_pd(), c1 = c0, c2 = c0, c3 = c0;
        __m512d d0 = c0, d1 = c0, d2 = c0, d3 = c0;
        int64_t i = 0;
        for (; i + 2 <= K; i += 2) {
            const double *r = M + i * K + j, *q = r + K;
            __m512d x = _mm512_set1_pd(a[i]), y = _mm512_set1_pd(a[i + 1]);
            c0 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r), c0);
            c1 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 8), c1);
            c2 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 16), c2);
            c3 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 24), c3);
            d0 = _mm512_fmadd_pd(y, _mm512_loadu_pd(q), d0);
            d1 = _mm512_fmadd_pd(y, _mm512_loadu_pd(q + 8), d1);
            d2 = _mm512_fmadd_pd(y, _mm512_loadu_pd(q + 16), d2);
            d3 = _mm512_fmadd_pd(y, _mm512_loadu_pd(q + 24), d3);
        }
        if (i < K) {
            const double *r = M + i * K + j;
            __m512d x = _mm512_set1_pd(a[i]);
            c0 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r), c0);
            c1 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 8), c1);
            c2 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 16), c2);
            c3 = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 24), c3);
        }
        _mm512_storeu_pd(p + j, _mm512_add_pd(c0, d0));
        _mm512_storeu_pd(p + j + 8, _mm512_add_pd(c1, d1));
        _mm512_storeu_pd(p + j + 16, _mm512_add_pd(c2, d2));
        _mm512_storeu_pd(p + j + 24, _mm512_add_pd(c3, d3));
    }
    if (j < K) vecmat_tail(K, j, a, M, p);
}

/* p = a^T M for 32 <= K <= 64 with all destination states in NB = K/8
 * (rounded up) accumulators, two rows in flight, the rows visited in
 * increasing order or, when rev, in decreasing order.  Alternating the
 * direction from one step to the next makes the rows read last in a step
 * the first ones of the next: at K = 64 the matrix (32 KB) just fills the
 * L1 cache, and reading it in the same order every step evicts each line
 * shortly before it is needed again (every row then comes from L2). */
__attribute__((target("avx512f"), always_inline)) static inline void
vecmat_rows(const int NB, int64_t K, const double *restrict a, const double *restrict M,
            double *restrict p, bool rev) {
    __m512d c[8], d[8];
    const __mmask8 last = K % 8 ? (__mmask8)((1u << (K % 8)) - 1) : (__mmask8)0xFF;
#pragma GCC unroll 8
    for (int b = 0; b < NB; b++) c[b] = d[b] = _mm512_setzero_pd();
    int64_t i0 = rev ? K - 1 : 0, step = rev ? -1 : 1, n2 = K / 2;
    for (int64_t q = 0; q < n2; q++) {
        int64_t i = i0 + 2 * q * step;
        const double *r = M + i * K, *s = M + (i + step) * K;
        __m512d x = _mm512_set1_pd(a[i]), y = _mm512_set1_pd(a[i + step]);
#pragma GCC unroll 8
        for (int b = 0; b < NB - 1; b++) {
            c[b] = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 8 * b), c[b]);
            d[b] = _mm512_fmadd_pd(y, _mm512_loadu_pd(s + 8 * b), d[b]);
        }
        c[NB - 1] = _mm512_fmadd_pd(x, _mm512_maskz_loadu_pd(last, r + 8 * (NB - 1)), c[NB - 1]);
        d[NB - 1] = _mm512_fmadd_pd(y, _mm512_maskz_loadu_pd(last, s + 8 * (NB - 1)), d[NB - 1]);
    }
    if (K % 2) {
        int64_t i = rev ? 0 : K - 1;
        const double *r = M + i * K;
        __m512d x = _mm512_set1_pd(a[i]);
#pragma GCC unroll 8
        for (int b = 0; b < NB - 1; b++) c[b] = _mm512_fmadd_pd(x, _mm512_loadu_pd(r + 8 * b), c[b]);
        c[NB - 1] = _mm512_fmadd_pd(x, _mm512_maskz_loadu_pd(last, r + 8 * (NB - 1)), c[NB - 1]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < NB - 1; b++) _mm512_storeu_pd(p + 8 * b, _mm512_add_pd(c[b], d[b]));
    _mm512_mask_storeu_pd(p + 8 * (NB - 1), last, _mm512_add_pd(c[NB - 1], d[NB - 1]));
}

__attribute__((target("avx512f"))) static void vecmat_avx512_dir(int64_t K,
                                                                 const double *restrict a,
                                                                 const double *restrict M,
                                                                 double *restrict p, bool rev) {
    switch ((K + 7) / 8) {
    case 4: vecmat_rows(4, K, a, M, p, rev); break;
    case 5: vecmat_rows(5, K, a, M, p, rev); break;
    case 6: vecmat_rows(6, K, a, M, p, rev); break;
    case 7: vecmat_rows(7, K, a, M, p, rev); break;
    default: vecmat_rows(8, K, a, M, p, rev); break;
    }
}

/* out[j] = max_i (prev[i] + M[i, j]), blocks of 16 and 4 destination
 * states; max_pd(v, m) is exactly `v > m ? v : m`, so the values equal the
 * scalar loop's (max is exact and order-free). */
__attribute__((target("avx2"))) static void maxplus_avx2(int64_t K, const double *restrict prev,
                                                         const double *restrict M,
                                                         double *restrict out) {
    int64_t j = 0;
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    for (; j + 16 <= K; j += 16) {
        __m256d c0 = ninf, c1 = ninf, c2 = ninf, c3 = ninf;
        for (int64_t i = 0; i < K; i++) {
            const double *r = M + i * K + j;
            __m256d x = _mm256_broadcast_sd(prev + i);
            c0 = _mm256_max_pd(_mm256_add_pd(x, _mm256_loadu_pd(r)), c0);
            c1 = _mm256_max_pd(_mm256_add_pd(x, _mm256_loadu_pd(r + 4)), c1);
            c2 = _mm256_max_pd(_mm256_add_pd(x, _mm256_loadu_pd(r + 8)), c2);
            c3 = _mm256_max_pd(_mm256_add_pd(x, _mm256_loadu_pd(r + 12)), c3);
        }
        _mm256_storeu_pd(out + j, c0);
        _mm256_storeu_pd(out + j + 4, c1);
        _mm256_storeu_pd(out + j + 8, c2);
        _mm256_storeu_pd(out + j + 12, c3);
    }
    for (; j + 4 <= K; j += 4) {
        __m256d c0 = ninf;
        for (int64_t i = 0; i < K; i++)
            c0 = _mm256_max_pd(
                _mm256_add_pd(_mm256_broadcast_sd(prev + i), _mm256_loadu_pd(M + i * K + j)), c0);
        _mm256_storeu_pd(out + j, c0);
    }
    for (; j < K; j++) {
        double m = -INFINITY;
        for (int64_t i = 0; i < K; i++) {
            double v = prev[i] + M[i * K + j];
            m = v > m ? v : m;
        }
        out[j] = m;
    }
}
#endif

void bk_hmm_maxplus(int64_t K, const double *restrict prev, const double *restrict M,
                    double *restrict out) {
#ifdef HMM_AVX2
    if (K >= 4 && __builtin_cpu_supports("avx2")) {
        maxplus_avx2(K, prev, M, out);
        return;
    }
#endif
    for (int64_t j = 0; j < K; j++) out[j] = -INFINITY;
    for (int64_t i = 0; i < K; i++) {
        double pi = prev[i];
        const double *r = M + i * K;
        for (int64_t j = 0; j < K; j++) {
            double v = pi + r[j];
            out[j] = v > out[j] ? v : out[j];
        }
    }
}

void bk_hmm_vecmat_wide_dir(int64_t K, const double *restrict a, const double *restrict M,
                            double *restrict p, bool rev) {
#ifdef HMM_AVX2
    if (K >= 32 && K <= 64 && __builtin_cpu_supports("avx512f")) {
        vecmat_avx512_dir(K, a, M, p, rev);
        return;
    }
#endif
    (void)rev;
    bk_hmm_vecmat_wide(K, a, M, p);
}

void bk_hmm_vecmat_wide(int64_t K, const double *restrict a, const double *restrict M,
                        double *restrict p) {
#ifdef HMM_AVX2
    /* two bit tests of the CPU model the runtime filled at start-up */
    if (K >= 32 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) {
        vecmat_avx512(K, a, M, p);
        return;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        vecmat_avx2(K, a, M, p);
        return;
    }
#endif
    if (K >= BK_HMM_BLAS_K) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)K, (int)K, 1.0, M, (int)K, a, 1, 0.0, p, 1);
        return;
    }
    for (int64_t j = 0; j < K; j++) p[j] = 0;
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < K; j++) p[j] += a[i] * M[i * K + j];
}

/* ------------------------------------------------ parallel-scan forward --- */

/* The forward pass as a product of per-chunk transfer matrices: steps
 * [t0, t1) map alpha_{t0-1} to alpha_{t1-1} by the matrix
 * M = prod_t A_t diag(e_t), computed by one thread per chunk (renormalized
 * by its largest entry at every step, the logs of the factors and of the
 * emission shifts summed in lsum); the chunks are then combined in order.
 * Each chunk costs K times the sequential recursion, so this pays only with
 * more threads than states. */
typedef struct scan_chunk {
    const hmm_in *h;
    int64_t bi, t0, t1;
    double *M, *tmp, lsum;
    int ok;                     /* 0: a step no state can emit */
} scan_chunk;

static void *scan_run(void *arg) {
    scan_chunk *c = arg;
    const hmm_in *h = c->h;
    int64_t K = h->K;
    double *M = c->M, *N = c->tmp, *buf = c->tmp + K * K, e_c;
    for (int64_t i = 0; i < K * K; i++) M[i] = i % (K + 1) == 0;
    c->lsum = 0;
    c->ok = 1;
    for (int64_t t = c->t0; t < c->t1; t++) {
        const double *e = emission(h, c->bi, t, buf, &e_c);
        if (!isfinite(e_c)) {
            c->ok = 0;
            return NULL;
        }
        const double *At = h->A + (h->tv ? t * K * K : 0);
        if (K >= BK_HMM_BLAS_K) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)K, (int)K, 1.0, M,
                        (int)K, At, (int)K, 0.0, N, (int)K);
        } else {
            for (int64_t r = 0; r < K; r++) bk_hmm_vecmat(K, M + r * K, At, N + r * K);
        }
        double mx = 0;
        for (int64_t r = 0; r < K; r++)
            for (int64_t j = 0; j < K; j++) mx = fmax(mx, N[r * K + j] *= e[j]);
        if (!(mx > 0) || !(mx < INFINITY)) {
            c->ok = 0;
            return NULL;
        }
        double inv = 1.0 / mx;
        for (int64_t i = 0; i < K * K; i++) M[i] = N[i] * inv;
        c->lsum += log(mx) + e_c;
    }
    return NULL;
}

int bk_hmm_forward_scan(bk_ctx *ctx, bk_tensor **in, bool cat, int nthreads, double *out) {
    hmm_in h;
    if (nthreads < 1) nthreads = 1;
    if (in_load(ctx, in, cat, false, &h)) return -1;
    int64_t K = h.K, P = nthreads;
    scan_chunk *ch = bk_malloc(ctx, (size_t)P * sizeof *ch);
    pthread_t *th = ch ? bk_malloc(ctx, (size_t)P * sizeof *th) : NULL;
    double *mem = th ? bk_malloc(ctx, (size_t)P * (size_t)(2 * K * K + K) * sizeof(double)) : NULL;
    double *a = mem ? bk_malloc(ctx, (size_t)(2 * K) * sizeof(double)) : NULL;
    int rc = a ? 0 : -1;
    for (int64_t b = 0; rc == 0 && b < h.B; b++) {
        int64_t L = h.L[b];
        if (L == 0) {
            out[b] = 0;
            continue;
        }
        /* chunks of steps 1 .. L-1; p = 0 runs on this thread */
        int64_t n = L - 1, started = 0;
        for (int64_t p = 0; p < P; p++) {
            ch[p] = (scan_chunk){.h = &h, .bi = b, .t0 = 1 + n * p / P, .t1 = 1 + n * (p + 1) / P,
                                 .M = mem + p * (2 * K * K + K), .ok = 1};
            ch[p].tmp = ch[p].M + K * K;
        }
        for (int64_t p = 1; p < P; p++) {
            if (pthread_create(&th[p], NULL, scan_run, &ch[p]) != 0) break;
            started = p;
        }
        scan_run(&ch[0]);
        for (int64_t p = started + 1; p < P; p++) scan_run(&ch[p]);   /* not started */
        for (int64_t p = 1; p <= started; p++) pthread_join(th[p], NULL);
        /* alpha_0, then one vector-matrix product per chunk */
        double c, tot = 0;
        const double *e = emission(&h, b, 0, a + K, &c);
        double ll = -INFINITY;
        if (isfinite(c)) {
            for (int64_t k = 0; k < K; k++) tot += a[k] = h.pexp[k] * e[k];
            ll = tot > 0 ? log(tot) + c + h.mpi : -INFINITY;
            for (int64_t k = 0; tot > 0 && k < K; k++) a[k] /= tot;
        }
        for (int64_t p = 0; p < P && isfinite(ll); p++) {
            if (!ch[p].ok) {
                ll = -INFINITY;
                break;
            }
            if (ch[p].t0 == ch[p].t1) continue;
            bk_hmm_vecmat(K, a, ch[p].M, a + K);
            tot = 0;
            for (int64_t k = 0; k < K; k++) tot += a[k] = a[K + k];
            if (!(tot > 0)) {
                ll = -INFINITY;
                break;
            }
            for (int64_t k = 0; k < K; k++) a[k] /= tot;
            ll += log(tot) + ch[p].lsum;
        }
        out[b] = ll;
    }
    bk_free(ctx, a);
    bk_free(ctx, mem);
    bk_free(ctx, th);
    bk_free(ctx, ch);
    in_free(ctx, &h);
    return rc;
}
