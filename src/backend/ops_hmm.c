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

/* Shapes and data of the inputs; -1 + error when they do not fit. */
static int in_load(bk_ctx *ctx, bk_tensor **in, bool cat, hmm_in *h) {
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
            int64_t t = 0;
            for (; t < h->T; t++) {
                double v = h->codes[b * h->T + t];
                if (v < 0) break;
                if (!(v < (double)h->V && v == floor(v))) {
                    bk_seterr(ctx, "%s: symbol %g is not an integer in [0, %lld)", op, v,
                              (long long)h->V);
                    goto fail;
                }
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

void bk_hmm_pair_sums(int64_t K, int64_t n, double g, const double *alpha, const double *v,
                      double *G) {
    if (n < 1) return;
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

/* Scaled forward pass over sequence b.  alpha receives the normalized
 * alphas (L*K, or K when keep is false: only the current row is kept), b
 * the shifted emission likelihoods (L*K, or K), s the scales (L; may be
 * NULL when keep is false); tmp is K doubles.  Returns log p(y); -inf when
 * impossible (the arrays are then filled only up to the failing step). */
static double fwd_seq(const hmm_in *h, int64_t bi, bool keep, double *alpha, double *b,
                      double *s, double *tmp) {
    int64_t K = h->K, L = h->L[bi];
    /* the scales are multiplied up and their log taken only when the
     * product would leave [1e-280, 1e280] (with a row-stochastic A each
     * scale is at most 1: normalized alphas, shifted emissions), which
     * keeps one log per step out of the loop */
    double ll = 0, prod = 1;
    for (int64_t t = 0; t < L; t++) {
        double *a = alpha + (keep ? t * K : 0), c, tot = 0;
        const double *bt = emission(h, bi, t, b + (keep ? t * K : 0), &c);
        if (!isfinite(c)) return c;
        if (keep && bt != b + t * K) memcpy(b + t * K, bt, (size_t)K * sizeof *bt);
        if (t == 0) {
            for (int64_t k = 0; k < K; k++) tot += a[k] = h->pexp[k] * bt[k];
            c += h->mpi;
        } else {
            const double *At = h->A + (h->tv ? t * K * K : 0);
            bk_hmm_vecmat(K, keep ? a - K : a, At, tmp);
            for (int64_t k = 0; k < K; k++) tot += a[k] = tmp[k] * bt[k];
        }
        if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
        double inv = 1.0 / tot;
        for (int64_t k = 0; k < K; k++) a[k] *= inv;
        if (s) s[t] = tot;
        ll += c;
        bk_hmm_add_scale(&ll, &prod, tot);
    }
    return ll + log(prod);
}

/* fwd_seq without the stored rows (the forward op's pass): the same
 * arithmetic in a loop free of the bookkeeping branches. */
static double fwd_fast(const hmm_in *h, int64_t bi, double *restrict a, double *restrict p,
                       double *restrict buf) {
    int64_t K = h->K, L = h->L[bi];
    double c, tot = 0;
    const double *e = emission(h, bi, 0, buf, &c);
    if (!isfinite(c)) return c;
    for (int64_t k = 0; k < K; k++) tot += a[k] = h->pexp[k] * e[k];
    if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
    double ll = c + h->mpi, prod = tot, inv = 1.0 / tot;
    for (int64_t k = 0; k < K; k++) a[k] *= inv;
    for (int64_t t = 1; t < L; t++) {
        e = emission(h, bi, t, buf, &c);
        if (!isfinite(c)) return c;
        const double *At = h->A + (h->tv ? t * K * K : 0);
        bk_hmm_vecmat(K, a, At, p);
        tot = 0;
        for (int64_t k = 0; k < K; k++) {
            double x = p[k] * e[k];
            a[k] = x;
            tot += x;
        }
        if (!(tot > 0) || !(tot < INFINITY)) return tot > 0 ? tot : -INFINITY;
        inv = 1.0 / tot;
        for (int64_t k = 0; k < K; k++) a[k] *= inv;
        ll += c;
        bk_hmm_add_scale(&ll, &prod, tot);
    }
    return ll + log(prod);
}

static bk_tensor *forward_op(bk_ctx *ctx, bk_tensor **in, bool cat) {
    hmm_in h;
    if (in_load(ctx, in, cat, &h)) return NULL;
    int batched = (cat ? in[3]->ndim : in[2]->ndim) == (cat ? 2 : 3);
    bk_tensor *out = bk_empty(ctx, BK_F64, batched, (int64_t[]){h.B});
    double *work = out ? bk_malloc(ctx, (size_t)(3 * h.K) * sizeof(double)) : NULL;
    if (work) {
        double *o = bk_data(out);
        for (int64_t b = 0; b < h.B; b++)
            o[b] = h.L[b] ? fwd_fast(&h, b, work, work + h.K, work + 2 * h.K) : 0.0;
    } else {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, work);
    in_free(ctx, &h);
    return out;
}

bk_tensor *bk_fw_HMM_FORWARD(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    (void)args;
    return forward_op(ctx, in, false);
}

bk_tensor *bk_fw_HMM_FORWARD_CAT(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    (void)args;
    return forward_op(ctx, in, true);
}

/* Gradients of sequence bi (weight g = its output gradient) added into
 * gpi [K], gA [K*K or T*K*K] and gem (logB [B*T*K], or logE [K*V] in the
 * Categorical form); any may be NULL.  The backward pass overwrites each
 * row of b with v_t = b_t * beta_t / s_t, which gives both beta_{t-1} =
 * A_t v_t and the pair-marginal sums sum_t alpha_{t-1} v_t^T (one GEMM for
 * a homogeneous A: the A gradient). */
static void bwd_seq(const hmm_in *h, int64_t bi, double g, double *alpha, double *b, double *s,
                    double *beta, double *tmp, double *gpi, double *gA, double *gem) {
    int64_t K = h->K, L = h->L[bi];
    if (L == 0 || g == 0) return;
    double ll = fwd_seq(h, bi, true, alpha, b, s, tmp);
    if (!isfinite(ll)) return;
    for (int64_t k = 0; k < K; k++) beta[(L - 1) * K + k] = 1.0;
    for (int64_t t = L - 1; t >= 0; t--) {
        const double *bt = beta + t * K, *at = alpha + t * K;
        if (gem && h->V) {
            int64_t y = (int64_t)h->codes[bi * h->T + t];
            for (int64_t k = 0; k < K; k++) gem[k * h->V + y] += g * at[k] * bt[k];
        } else if (gem) {
            double *gr = gem + (bi * h->T + t) * K;
            for (int64_t k = 0; k < K; k++) gr[k] += g * at[k] * bt[k];
        }
        if (t == 0) {
            for (int64_t k = 0; gpi && k < K; k++) gpi[k] += g * at[k] * bt[k];
            break;
        }
        double *v = b + t * K, w = 1.0 / s[t];
        for (int64_t k = 0; k < K; k++) v[k] *= bt[k] * w;
        bk_hmm_matvec(K, h->A + (h->tv ? t * K * K : 0), v, beta + (t - 1) * K);
        if (gA && h->tv) {
            double *G = gA + t * K * K;
            const double *ap = alpha + (t - 1) * K;
            for (int64_t i = 0; i < K; i++)
                for (int64_t j = 0; j < K; j++) G[i * K + j] += g * ap[i] * v[j];
        }
    }
    /* gA += g * alpha[0 .. L-2]^T V[1 .. L-1] */
    if (gA && !h->tv) bk_hmm_pair_sums(K, L - 1, g, alpha, b + K, gA);
}

static int backward_op(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin,
                       bool cat) {
    bk_tensor **in = e->in;
    bool need[3] = {in[0]->requires_grad, in[1]->requires_grad, in[2]->requires_grad};
    if (!need[0] && !need[1] && !need[2]) return 0;
    hmm_in h;
    if (in_load(ctx, in, cat, &h)) return -1;
    int64_t K = h.K, T = h.T;
    double *work = NULL;
    for (int i = 0; i < 3; i++)
        if (need[i] && !(gin[i] = bk_zeros(ctx, BK_F64, in[i]->ndim, in[i]->shape))) goto fail;
    size_t n = (size_t)((T ? T : 1) * K);
    work = bk_malloc(ctx, (3 * n + (size_t)(T ? T : 1) + (size_t)K) * sizeof(double));
    if (!work) goto fail;
    double *alpha = work, *b = alpha + n, *beta = b + n, *s = beta + n, *tmp = s + (T ? T : 1);
    double *gpi = need[0] ? bk_data(gin[0]) : NULL, *gA = need[1] ? bk_data(gin[1]) : NULL;
    double *gem = need[2] ? bk_data(gin[2]) : NULL;
    for (int64_t bi = 0; bi < h.B; bi++)
        bwd_seq(&h, bi, bk_get(gout, bi), alpha, b, s, beta, tmp, gpi, gA, gem);
    bk_free(ctx, work);
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

int bk_bw_HMM_FORWARD(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    return backward_op(ctx, e, gout, gin, false);
}

int bk_bw_HMM_FORWARD_CAT(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    return backward_op(ctx, e, gout, gin, true);
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
    if (in_load(ctx, in, cat, &h)) return -1;
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
