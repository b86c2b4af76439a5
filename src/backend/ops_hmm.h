/* ops_hmm.h - the parallel-scan forward of the HMM ops (ops_hmm.c), for
 * very long sequences and few states; not an op (no gradient).  Also the
 * kernels of the scaled recursions that the ops and the tape-free exact
 * inference (src/infer/hmm.c) share. */
#ifndef PPL_BACKEND_OPS_HMM_H
#define PPL_BACKEND_OPS_HMM_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <cblas.h>
#include "tensor.h"

/* K from which the vector-matrix products go to BLAS. */
#define BK_HMM_BLAS_K 24

/* K from which the vector-matrix products use the vector kernels. */
#define BK_HMM_VEC_K 8

/* p[j] = sum_i a[i] M[i, j] for K >= BK_HMM_VEC_K: an AVX-512 (K >= 32) or
 * AVX2/FMA kernel (blocks of destination states held in registers, two
 * source rows per step; chosen at run time from the CPU), else BLAS dgemv
 * (K >= BK_HMM_BLAS_K) or scalar loops. */
void bk_hmm_vecmat_wide(int64_t K, const double *restrict a, const double *restrict M,
                        double *restrict p);

/* out[j] = max_i (prev[i] + M[i, j]): the Viterbi step in log space
 * (vectorized over j with AVX2 when the CPU has it). */
void bk_hmm_maxplus(int64_t K, const double *restrict prev, const double *restrict M,
                    double *restrict out);

/* p[j] = sum_i a[i] M[i, j], M [K, K] row-major (inline: it is the inner
 * step of every recursion). */
static inline void bk_hmm_vecmat(int64_t K, const double *restrict a, const double *restrict M,
                                 double *restrict p) {
    if (K >= BK_HMM_VEC_K) {
        bk_hmm_vecmat_wide(K, a, M, p);
        return;
    }
    /* unrolled: with a constant K of 2-4 (the callers' specializations)
     * the rows stay in registers */
#pragma GCC unroll 4
    for (int64_t j = 0; j < K; j++) p[j] = 0;
#pragma GCC unroll 4
    for (int64_t i = 0; i < K; i++) {
        double ai = a[i];
        const double *Mi = M + i * K;
#pragma GCC unroll 4
        for (int64_t j = 0; j < K; j++) p[j] += ai * Mi[j];
    }
}

/* bk_hmm_vecmat, the rows of M summed in decreasing order when rev (the
 * same sum up to rounding).  A recursion that alternates rev from step to
 * step reads the rows last used first: for 32 <= K <= 64 (AVX-512) that
 * keeps a matrix of about the L1 cache's size in it. */
void bk_hmm_vecmat_wide_dir(int64_t K, const double *restrict a, const double *restrict M,
                            double *restrict p, bool rev);

static inline void bk_hmm_vecmat_dir(int64_t K, const double *restrict a,
                                     const double *restrict M, double *restrict p, bool rev) {
    if (K >= 32 && K <= 64) bk_hmm_vecmat_wide_dir(K, a, M, p, rev);
    else bk_hmm_vecmat(K, a, M, p);
}

/* q[i] = sum_j M[i, j] v[j] */
static inline void bk_hmm_matvec(int64_t K, const double *restrict M, const double *restrict v,
                                 double *restrict q) {
    if (K >= BK_HMM_BLAS_K) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)K, (int)K, 1.0, M, (int)K, v, 1, 0.0, q, 1);
        return;
    }
#pragma GCC unroll 4
    for (int64_t i = 0; i < K; i++) {
        const double *Mi = M + i * K;
        double s = 0;
#pragma GCC unroll 4
        for (int64_t j = 0; j < K; j++) s += Mi[j] * v[j];
        q[i] = s;
    }
}

/* Adds the log of the scale tot to the log-likelihood held as
 * *ll + log(*prod): the scales are multiplied up and their log taken only
 * when the product would leave [1e-280, 1e280] (one log per 1e-280 of the
 * product, not one per step). */
static inline void bk_hmm_add_scale(double *ll, double *prod, double tot) {
    double np = *prod * tot;
    if (np > 1e-280 && np < 1e280) {
        *prod = np;
    } else {
        *ll += log(*prod) + log(tot);
        *prod = 1;
    }
}

/* bk_opargs.scalar of an hmm_forward_cat call whose codes in[3] were made
 * and checked by the caller just before the call, in a tensor no one else
 * writes (DiscreteHMM.log_prob's, which then lives only on the tape and in
 * a recorded program): every entry an integer in [0, V) up to its
 * sequence's length and -1 after it.  The op then finds each length by
 * bisection instead of checking every symbol at every forward and backward
 * call (a replayed gradient reuses the same constant codes).  Any other
 * value of scalar (no arguments: 0): the op checks the codes. */
#define BK_HMM_CODES_CHECKED 1.0

/* The Categorical emission table from logE [K, V] (row-major): cmax[v] =
 * max_k logE[k, v] and etab[v*K + k] = exp(logE[k, v] - cmax[v]) (0 where
 * cmax[v] is not finite). */
void bk_hmm_emission_table(int64_t K, int64_t V, const double *logE, double *etab, double *cmax);

/* G [K, K] += g * sum_{t < n} alpha[t]^T v[t]: the pair-marginal sums of
 * n consecutive rows of alpha and v ([n, K] each); one GEMM for large K. */
void bk_hmm_pair_sums(int64_t K, int64_t n, double g, const double *alpha, const double *v,
                      double *G);

/* The E-step of Baum-Welch through the backward rule of hmm_forward
 * (cat false) / hmm_forward_cat (cat true) on the same four inputs, with
 * weight 1 for every sequence: ll[b] = log p(y_b) (may be NULL), and added
 * into gpi [K], gA (shaped like in[1]) and gem (shaped like in[2]), any of
 * them NULL: d log p / d logpi = gamma_0 (summed over sequences),
 * d log p / d A[i, j] = sum_t alpha_{t-1}(i) u_t(j) (the expected
 * transition counts divided by A[i, j]), d log p / d logB[t, k] =
 * gamma_t(k), or for the table sum_{t: y_t = v} gamma_t(k).  One forward
 * and one backward sweep per sequence.  work: bk_hmm_counts_worksize(K,
 * T, cat) doubles that the caller keeps across calls (an EM loop: no fresh
 * pages per iteration), or NULL.  0, or -1 + bk error. */
int bk_hmm_expected_counts(bk_ctx *ctx, bk_tensor **in, bool cat, double *ll, double *gpi,
                           double *gA, double *gem, double *work);
size_t bk_hmm_counts_worksize(int64_t K, int64_t T, bool cat);

/* log p(y) of each sequence, as the op hmm_forward (cat false) or
 * hmm_forward_cat (cat true) on the same four inputs would compute it,
 * into out (one double per sequence), using nthreads threads: the steps
 * are cut into nthreads chunks whose transfer matrices are computed in
 * parallel (K^3 work per step instead of K^2) and then combined in order.
 * 0, or -1 + bk error. */
int bk_hmm_forward_scan(bk_ctx *ctx, bk_tensor **in, bool cat, int nthreads, double *out);

#endif
