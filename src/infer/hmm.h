/* hmm.h - hidden Markov models: the helpers of the DiscreteHMM family
 * (defined in stdlib/dist_hmm.c) and the exact-inference built-ins
 * (src/infer/hmm.c): Viterbi, forward-backward marginals, forward-filter
 * backward-sample, filtering and Baum-Welch EM.
 *
 * A DiscreteHMM keeps init (p[0], [K]), trans (p[1], [K, K] or time-varying
 * [T, K, K] where trans[t] moves z_{t-1} to z_t and trans[0] is unused), an
 * optional duration (p[2], scalar), optional lengths (p[3], [B]: a batch of
 * B sequences padded to a common length) and the emission distribution in
 * sub[0] (batch shape [K]).  variant bit 0: init given as logits; bit 1: trans as
 * logits. */
#ifndef PPL_INFER_HMM_H
#define PPL_INFER_HMM_H

#include "dist.h"

enum { SL_HMM_INIT_LOGITS = 1, SL_HMM_TRANS_LOGITS = 2 };

extern const sl_family sl_family_discretehmm;

/* A DiscreteHMM from tensors (no VM: tests, inference code).  variant as
 * above; duration < 0: none.  The emission is retained.  NULL + bk error
 * (the same messages as the constructor) on bad parameters. */
sl_dist *sl_hmm_make(bk_ctx *ctx, bk_tensor *init, bk_tensor *trans, sl_dist *emission,
                     int variant, int64_t duration);
/* The same with lengths [B] (NULL: not batched): log_prob takes y of shape
 * [B, T] + the emission event and returns [B]. */
sl_dist *sl_hmm_make_batch(bk_ctx *ctx, bk_tensor *init, bk_tensor *trans, sl_dist *emission,
                           int variant, int64_t duration, bk_tensor *lengths);
/* Number of sequences B of a batched HMM, -1 when not batched; the length
 * of sequence b. */
int64_t sl_hmm_nseq(const sl_dist *d);
int64_t sl_hmm_length(const sl_dist *d, int64_t b);
/* Sequence b of a batch ys [B, T] + event cut to its length (a new
 * reference), NULL + bk error when ys does not fit. */
bk_tensor *sl_hmm_seq(bk_ctx *ctx, const sl_dist *d, bk_tensor *ys, int64_t b);
/* Number of hidden states K. */
int64_t sl_hmm_nstates(const sl_dist *d);
/* Normalized log p(z_0) [K] and log trans, [K, K] or [T, K, K]; on the tape
 * when the parameters require grad. */
bk_tensor *sl_hmm_log_init(bk_ctx *ctx, const sl_dist *d);
bk_tensor *sl_hmm_log_trans(bk_ctx *ctx, const sl_dist *d);
/* Emission log-likelihoods log p(y[t] | z_t = k), shape [T, K], for a
 * sequence y of shape [T] + the emission's event shape.  Checks y against a
 * time-varying trans (a sequence of a batched HMM may be shorter).  NULL + bk error on a bad y. */
bk_tensor *sl_hmm_emission_logp(bk_ctx *ctx, const sl_dist *d, bk_tensor *y);

/* The built-ins hmm_viterbi, hmm_marginals, hmm_sample_states, hmm_filter
 * and baum_welch ({NULL, NULL}-terminated). */
extern const rt_builtin_def inf_hmm_builtins[];

#endif
