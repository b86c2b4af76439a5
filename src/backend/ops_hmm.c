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
#include <string.h>
#include <cblas.h>
#include "ops_impl.h"

/* K from which the vector-matrix products go to BLAS. */
#define HMM_BLAS_K 24

typedef struct hmm_in {
    int64_t K, T, B;
    bool tv;                 /* A is [T, K, K] */
    const double *logpi, *A, *logB, *len;
    double *own[4];          /* contiguous copies made here (else NULL) */
} hmm_in;

static void in_free(bk_ctx *ctx, hmm_in *h) {
    for (int i = 0; i < 4; i++) bk_free(ctx, h->own[i]);
}

static const double *in_data(bk_ctx *ctx, hmm_in *h, int i, const bk_tensor *t) {
    if (bk_is_contiguous(t) && t->numel > 0) return bk_data(t);
    h->own[i] = bk_malloc(ctx, (size_t)(t->numel ? t->numel : 1) * sizeof(double));
    if (h->own[i]) bk_copy_out(t, h->own[i]);
    return h->own[i];
}

/* Shapes and data of the inputs; -1 + error when they do not fit. */
static int in_load(bk_ctx *ctx, bk_tensor **in, hmm_in *h) {
    memset(h, 0, sizeof *h);
    const bk_tensor *pi = in[0], *A = in[1], *lb = in[2], *len = in[3];
    if (pi->ndim != 1 || pi->shape[0] < 1) {
        bk_seterr(ctx, "hmm_forward: logpi must be [K] with K >= 1");
        return -1;
    }
    int64_t K = h->K = pi->shape[0];
    if (lb->ndim != 2 && lb->ndim != 3) {
        bk_seterr(ctx, "hmm_forward: logB must be [T, K] or [B, T, K]");
        return -1;
    }
    h->B = lb->ndim == 3 ? lb->shape[0] : 1;
    h->T = lb->shape[lb->ndim - 2];
    if (lb->shape[lb->ndim - 1] != K) {
        bk_seterr(ctx, "hmm_forward: logB has %lld states, logpi %lld",
                  (long long)lb->shape[lb->ndim - 1], (long long)K);
        return -1;
    }
    h->tv = A->ndim == 3;
    if ((A->ndim != 2 && A->ndim != 3) || A->shape[A->ndim - 1] != K ||
        A->shape[A->ndim - 2] != K || (h->tv && A->shape[0] != h->T)) {
        bk_seterr(ctx, "hmm_forward: A must be [K, K] or [T, K, K] with K = %lld, T = %lld",
                  (long long)K, (long long)h->T);
        return -1;
    }
    if (len->numel != h->B) {
        bk_seterr(ctx, "hmm_forward: %lld lengths for %lld sequences", (long long)len->numel,
                  (long long)h->B);
        return -1;
    }
    h->logpi = in_data(ctx, h, 0, pi);
    h->A = h->logpi ? in_data(ctx, h, 1, A) : NULL;
    h->logB = h->A && lb->numel ? in_data(ctx, h, 2, lb) : NULL;
    h->len = h->A ? in_data(ctx, h, 3, len) : NULL;
    if (!h->len || (lb->numel && !h->logB)) {
        in_free(ctx, h);
        return -1;
    }
    for (int64_t b = 0; b < h->B; b++) {
        double L = h->len[b];
        if (!(L >= 0 && L <= (double)h->T && L == floor(L))) {
            bk_seterr(ctx, "hmm_forward: length %g of sequence %lld is not an integer in "
                           "[0, %lld]", L, (long long)b, (long long)h->T);
            in_free(ctx, h);
            return -1;
        }
    }
    return 0;
}

/* p[j] = sum_i a[i] M[i, j] */
static void vecmat(int64_t K, const double *a, const double *M, double *p) {
    if (K >= HMM_BLAS_K) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)K, (int)K, 1.0, M, (int)K, a, 1, 0.0, p, 1);
        return;
    }
    for (int64_t j = 0; j < K; j++) p[j] = 0;
    for (int64_t i = 0; i < K; i++) {
        double ai = a[i];
        const double *Mi = M + i * K;
        for (int64_t j = 0; j < K; j++) p[j] += ai * Mi[j];
    }
}

/* q[i] = sum_j M[i, j] v[j] */
static void matvec(int64_t K, const double *M, const double *v, double *q) {
    if (K >= HMM_BLAS_K) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)K, (int)K, 1.0, M, (int)K, v, 1, 0.0, q, 1);
        return;
    }
    for (int64_t i = 0; i < K; i++) {
        const double *Mi = M + i * K;
        double s = 0;
        for (int64_t j = 0; j < K; j++) s += Mi[j] * v[j];
        q[i] = s;
    }
}

/* Scaled forward pass over the first L steps of one sequence.  alpha
 * receives the normalized alphas (L*K, or K when keep is false: only the
 * current row is kept), b the shifted emission likelihoods exp(logB - c_t)
 * (L*K, or K), s the scales (L, may be NULL when keep is false); tmp is K
 * doubles.  Returns log p(y_0..y_{L-1}); -inf when impossible (the arrays
 * are then filled only up to the failing step). */
static double fwd_seq(const hmm_in *h, const double *logB, int64_t L, bool keep, double *alpha,
                      double *b, double *s, double *tmp) {
    int64_t K = h->K;
    double ll = 0;
    for (int64_t t = 0; t < L; t++) {
        const double *lb = logB + t * K;
        double *a = alpha + (keep ? t * K : 0), *bt = b + (keep ? t * K : 0);
        double c = -INFINITY;
        if (t == 0)
            for (int64_t k = 0; k < K; k++) c = fmax(c, lb[k] + h->logpi[k]);
        else
            for (int64_t k = 0; k < K; k++) c = fmax(c, lb[k]);
        if (!isfinite(c)) return c == INFINITY ? INFINITY : -INFINITY;
        double tot = 0;
        if (t == 0) {
            /* b_0 is never used by the backward pass: the alphas directly */
            for (int64_t k = 0; k < K; k++) tot += a[k] = exp(lb[k] + h->logpi[k] - c);
        } else {
            const double *At = h->A + (h->tv ? t * K * K : 0);
            const double *prev = keep ? a - K : a;
            vecmat(K, prev, At, tmp);
            for (int64_t k = 0; k < K; k++) bt[k] = exp(lb[k] - c);
            for (int64_t k = 0; k < K; k++) tot += a[k] = tmp[k] * bt[k];
        }
        if (!(tot > 0) || !isfinite(tot)) return tot > 0 ? tot : -INFINITY;
        double inv = 1.0 / tot;
        for (int64_t k = 0; k < K; k++) a[k] *= inv;
        if (s) s[t] = tot;
        ll += log(tot) + c;
    }
    return ll;
}

bk_tensor *bk_fw_HMM_FORWARD(bk_ctx *ctx, bk_tensor **in, const bk_opargs *args) {
    (void)args;
    hmm_in h;
    if (in_load(ctx, in, &h)) return NULL;
    bk_tensor *out = bk_empty(ctx, BK_F64, in[2]->ndim == 3 ? 1 : 0, (int64_t[]){h.B});
    double *work = out ? bk_malloc(ctx, (size_t)(3 * h.K) * sizeof(double)) : NULL;
    if (work) {
        double *o = bk_data(out);
        for (int64_t b = 0; b < h.B; b++) {
            int64_t L = (int64_t)h.len[b];
            o[b] = L ? fwd_seq(&h, h.logB + b * h.T * h.K, L, false, work, work + h.K, NULL,
                               work + 2 * h.K)
                     : 0.0;
        }
    } else {
        bk_release(out);
        out = NULL;
    }
    bk_free(ctx, work);
    in_free(ctx, &h);
    return out;
}

/* Gradients of one sequence (weight g = its output gradient) added into
 * gpi [K], gA [K*K or T*K*K], glogB [T*K] (any may be NULL). */
static void bwd_seq(const hmm_in *h, const double *logB, int64_t L, double g, double *alpha,
                    double *b, double *s, double *beta, double *tmp, double *gpi, double *gA,
                    double *glogB) {
    int64_t K = h->K;
    if (L == 0 || g == 0) return;
    double ll = fwd_seq(h, logB, L, true, alpha, b, s, tmp);
    if (!isfinite(ll)) return;
    /* at t = 0 the scaled alphas already include pi: b_0 stays as is, the
     * pair marginals start at t = 1 */
    for (int64_t k = 0; k < K; k++) beta[(L - 1) * K + k] = 1.0;
    for (int64_t t = L - 1; t >= 0; t--) {
        double *bt = beta + t * K;
        if (t < L - 1) {
            /* beta_t = A_{t+1} (b_{t+1} * beta_{t+1}) / s_{t+1} */
            const double *A1 = h->A + (h->tv ? (t + 1) * K * K : 0);
            double *v = tmp, inv = 1.0 / s[t + 1];
            for (int64_t k = 0; k < K; k++) v[k] = b[(t + 1) * K + k] * beta[(t + 1) * K + k] * inv;
            matvec(K, A1, v, bt);
        }
        const double *at = alpha + t * K;
        if (glogB)
            for (int64_t k = 0; k < K; k++) glogB[t * K + k] += g * at[k] * bt[k];
        if (t == 0 && gpi)
            for (int64_t k = 0; k < K; k++) gpi[k] += g * at[k] * bt[k];
        if (t > 0 && gA) {
            double *G = gA + (h->tv ? t * K * K : 0), *v = tmp, w = g / s[t];
            const double *ap = alpha + (t - 1) * K;
            for (int64_t k = 0; k < K; k++) v[k] = b[t * K + k] * bt[k] * w;
            if (K >= HMM_BLAS_K) {
                cblas_dger(CblasRowMajor, (int)K, (int)K, 1.0, ap, 1, v, 1, G, (int)K);
            } else {
                for (int64_t i = 0; i < K; i++) {
                    double ai = ap[i];
                    double *Gi = G + i * K;
                    for (int64_t j = 0; j < K; j++) Gi[j] += ai * v[j];
                }
            }
        }
    }
}

int bk_bw_HMM_FORWARD(bk_ctx *ctx, const bk_tape_entry *e, bk_tensor *gout, bk_tensor **gin) {
    bk_tensor **in = e->in;
    bool need[3] = {in[0]->requires_grad, in[1]->requires_grad, in[2]->requires_grad};
    if (!need[0] && !need[1] && !need[2]) return 0;
    hmm_in h;
    if (in_load(ctx, in, &h)) return -1;
    int64_t K = h.K, T = h.T;
    for (int i = 0; i < 3; i++)
        if (need[i] && !(gin[i] = bk_zeros(ctx, BK_F64, in[i]->ndim, in[i]->shape))) goto fail;
    size_t n = (size_t)((T ? T : 1) * K);
    double *work = bk_malloc(ctx, (3 * n + (size_t)(T ? T : 1) + (size_t)K) * sizeof(double));
    if (!work) goto fail;
    double *alpha = work, *b = alpha + n, *beta = b + n, *s = beta + n, *tmp = s + (T ? T : 1);
    double *gpi = need[0] ? bk_data(gin[0]) : NULL, *gA = need[1] ? bk_data(gin[1]) : NULL;
    double *gB = need[2] ? bk_data(gin[2]) : NULL;
    for (int64_t bi = 0; bi < h.B; bi++) {
        int64_t L = (int64_t)h.len[bi];
        if (L)
            bwd_seq(&h, h.logB + bi * T * K, L, bk_get(gout, bi), alpha, b, s, beta, tmp, gpi,
                    gA, gB ? gB + bi * T * K : NULL);
    }
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
