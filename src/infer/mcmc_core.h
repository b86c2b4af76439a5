/* mcmc_core.h - the numerical core of MCMC: static HMC and NUTS over a
 * log-density callback, Stan-style warmup adaptation (windowed metric
 * estimation and dual averaging of the step size) and the convergence
 * diagnostics (rank-normalized split R-hat, bulk/tail ESS, MCSE, E-BFMI).
 * Nothing here knows about models; the caller supplies log p and its
 * gradient on the unconstrained space. */
#ifndef PPL_INFER_MCMC_CORE_H
#define PPL_INFER_MCMC_CORE_H

#include <stddef.h>
#include "rng.h"
#include "strbuf.h"

/* log density and its gradient at q (dimension d); returns 0, or -1 when
 * the density cannot be evaluated (treated as -inf, a divergence).  grad
 * is NULL when the kernel needs no gradient (random-walk Metropolis). */
typedef int (*mc_logp_fn)(void *ud, const double *q, double *logp, double *grad);

typedef struct mc_opts {
    int warmup, samples, max_depth;  /* max_depth <= 0 means 10 */
    double target_accept;            /* <= 0 or >= 1 means 0.8 */
    int dense;                       /* 1 = dense metric, 0 = diagonal */
    int hmc_steps;                   /* 0 = NUTS, > 0 fixed leapfrog steps,
                                        MC_RWM random-walk Metropolis,
                                        MC_HMC_TRAJ static HMC of a fixed
                                        trajectory_length */
    double init_step;                /* <= 0 means 1 */
    double trajectory_length;        /* MC_HMC_TRAJ: each transition takes
                                        mc_hmc_traj_steps(L, eps) leapfrog
                                        steps of the current step size eps
                                        (adapting in warmup), no jitter */
} mc_opts;

/* Random-walk Metropolis: proposals q + eps L z, z ~ N(0, I), L L' the
 * metric's inverse, so the same windowed warmup adapts the proposal's
 * shape (Welford) and dual averaging its scale eps towards target_accept
 * (give 0.234); no gradients.  n_leapfrog__ counts density evaluations. */
#define MC_RWM (-1)

/* Static HMC whose integration time, not step count, is fixed (Pyro and
 * NumPyro's HMC(trajectory_length=L)); L must be finite and > 0. */
#define MC_HMC_TRAJ (-2)
/* The leapfrog steps of one MC_HMC_TRAJ transition: max(1, ceil(L / eps)),
 * at most MC_HMC_MAX_STEPS (so that a collapsing warmup step size cannot
 * overflow or hang), computed with a 1e-9 relative slack so that L an exact
 * multiple of eps is not rounded up by a last-bit error.  NumPyro and Pyro
 * truncate (int(L / eps)); rounding up keeps eps * steps >= L. */
#define MC_HMC_MAX_STEPS (1 << 20)
int mc_hmc_traj_steps(double trajectory_length, double eps);

mc_opts mc_opts_default(void);       /* 1000/1000, depth 10, 0.8, diag, NUTS */

typedef struct mc_chain_out {
    double *draws;                   /* samples x d, row-major */
    /* per draw: the Stan CSV sampler columns */
    double *lp, *accept_stat, *stepsize, *treedepth, *n_leapfrog, *divergent, *energy;
    double final_step;
    double *inv_metric;              /* d (diagonal) or d*d (dense, row-major) */
    int d, samples, dense;
} mc_chain_out;

/* Runs warmup (adapting step size and metric) then sampling from q0.
 * Returns 0, or -1 with a message in err (out is then left empty). */
int mc_run_chain(mc_logp_fn f, void *ud, int d, const double *q0, const mc_opts *o,
                 bk_rng *rng, mc_chain_out *out, char *err, size_t errlen);
void mc_chain_out_free(mc_chain_out *o);

/* ---- a chain one iteration at a time, saved and restored exactly ------- */

/* Reads the text of a checkpoint (mcmc_ckpt.c); errors go to err. */
typedef struct mc_ck_reader {
    const char *p;
    char *err;
    size_t errlen;
} mc_ck_reader;
void mc_ck_put_doubles(rt_sb *sb, const char *key, const double *v, size_t n);
void mc_ck_put_ints(rt_sb *sb, const char *key, const long long *v, size_t n);
/* Each reads "key n v1 ... vn" (key NULL: just the values) and checks n;
 * 0, or -1 with a message. */
int mc_ck_get_doubles(mc_ck_reader *r, const char *key, double *v, size_t n);
int mc_ck_get_ints(mc_ck_reader *r, const char *key, long long *v, size_t n);
int mc_ck_word(mc_ck_reader *r, const char *word);     /* the next word must be `word` */
int mc_ck_next_word(mc_ck_reader *r, char *buf, size_t n);
int mc_ck_fail(mc_ck_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct mc_chain mc_chain;
/* A chain at q0, its own copy of *rng, the initial step size found (when
 * there is a warmup).  0, or -1 with a message in err. */
int mc_chain_new(mc_logp_fn f, void *ud, int d, const double *q0, const mc_opts *o,
                 const bk_rng *rng, mc_chain **out, char *err, size_t errlen);
/* One iteration (warmup with adaptation, or a recorded draw).  stop (may be
 * NULL) is polled after the transition: when it says stop, the iteration
 * is undone and 1 returned (the chain is exactly as before the call).  2:
 * stop was requested while the adaptation evaluated the density, and the
 * chain's state must not be saved.  0: done (also when the chain is
 * complete); -1: error in err. */
int mc_chain_step(mc_chain *c, int (*stop)(void *), void *stop_ud, char *err, size_t errlen);
/* Points the chain at another evaluator of the same density (a restored
 * chain moving to the thread that runs it). */
void mc_chain_bind(mc_chain *c, mc_logp_fn f, void *ud);
int mc_chain_done(const mc_chain *c);    /* iterations done */
double mc_chain_step_size(const mc_chain *c);   /* the current step size */
/* Whether the last iteration was a sampling one with a divergence. */
int mc_chain_last_divergent(const mc_chain *c);
int mc_chain_divergences(const mc_chain *c);   /* divergent draws so far */
int mc_chain_total(const mc_chain *c);   /* warmup + samples */
/* A complete chain's output (the chain is freed); -1 when not complete. */
int mc_chain_finish(mc_chain *c, mc_chain_out *out);
void mc_chain_free(mc_chain *c);
/* The whole state as text: position, step size, dual averaging, windows,
 * Welford sums, metric, the random stream and the draws so far. */
void mc_chain_save(const mc_chain *c, rt_sb *sb);
/* Restores a chain saved with the same d and options (a mismatch is an
 * error naming it).  0, or -1 with the reader's message. */
int mc_chain_load(mc_logp_fn f, void *ud, int d, const mc_opts *o, mc_ck_reader *rd,
                  mc_chain **out);

/* ---- diagnostics over chains: x[c * n + i] for chain c, draw i ---------- */
double mc_rhat(const double *x, int chains, int n);      /* max of bulk and folded rank R-hat */
double mc_ess_bulk(const double *x, int chains, int n);
double mc_ess_tail(const double *x, int chains, int n);  /* min over the 5% / 95% quantiles */
double mc_mcse_mean(const double *x, int chains, int n);
double mc_ebfmi(const double *energy, int n);
/* mc_rhat, mc_ess_bulk and mc_ess_tail of one column at once (fewer sorts),
 * and x sorted ascending into `sorted` when it is not NULL.  0 or -1 (OOM). */
int mc_column_diag(const double *x, int chains, int n, double *sorted, double *rhat, double *ess_bulk,
                   double *ess_tail);
/* The same over many columns of chains x n draws, with scratch made once
 * (buffers, and the normal scores of the ranks that the columns share);
 * mc_diag_ws_new returns NULL on OOM or chains * n outside 1..2^32-1. */
typedef struct mc_diag_ws mc_diag_ws;
mc_diag_ws *mc_diag_ws_new(int chains, int n);
void mc_diag_ws_free(mc_diag_ws *w);
int mc_column_diag_ws(mc_diag_ws *w, const double *x, double *sorted, double *rhat, double *ess_bulk,
                      double *ess_tail);
/* Sorts a ascending (NaNs last) by a radix sort: no comparison callbacks. */
int mc_sort_doubles(double *a, size_t n);
/* ESS of x as it is (split chains, no ranking): the ESS of the mean. */
double mc_ess_mean(const double *x, int chains, int n);

/* ---- building blocks (exported for the tests and the adaptation) ------- */

/* The Euclidean Hamiltonian H(q, p) = -log p(q) + p' M^-1 p / 2. */
typedef struct mc_ham {
    mc_logp_fn f;
    void *ud;
    int d, dense;
    double *inv_metric;   /* d or d*d */
    double *chol;         /* dense: lower Cholesky factor L of M^-1 = L L' */
} mc_ham;

/* `steps` leapfrog steps of size eps; grad and logp must hold the values at
 * q on entry and hold those at the final q on return.  inv_metric is a
 * diagonal (dense = 0) or a d*d matrix; NULL means the identity.  Returns
 * 0, or -1 when the density could not be evaluated (q, p then partial). */
int mc_leapfrog(mc_logp_fn f, void *ud, int d, const double *inv_metric, int dense,
                double eps, int steps, double *q, double *p, double *grad, double *logp);

double mc_kinetic(const mc_ham *h, const double *p);            /* p' M^-1 p / 2 */
void mc_dtau_dp(const mc_ham *h, const double *p, double *out); /* M^-1 p */
void mc_sample_momentum(const mc_ham *h, bk_rng *rng, double *p);
/* Sets h->chol from h->inv_metric (dense only); -1 if not positive definite. */
int mc_ham_factor(mc_ham *h);

/* Dual averaging of log step size (Hoffman & Gelman 2014, Stan's constants). */
typedef struct mc_dual_avg {
    double mu, s_bar, x_bar, delta, gamma, kappa, t0;
    double counter;
} mc_dual_avg;
void mc_dual_avg_init(mc_dual_avg *da, double eps0, double delta);  /* mu = log(10 eps0) */
void mc_dual_avg_restart(mc_dual_avg *da, double eps0);
double mc_dual_avg_learn(mc_dual_avg *da, double accept_stat);      /* next step size */
double mc_dual_avg_final(const mc_dual_avg *da);                    /* exp(x_bar) */

/* Stan's warmup windows: fast init buffer, doubling slow windows, fast
 * terminal buffer. */
typedef struct mc_windows {
    int num_warmup, init_buffer, term_buffer, base_window;
    int counter, window_size, next_window;
    int enabled;          /* 0 when num_warmup < 20: no metric adaptation */
} mc_windows;
void mc_windows_init(mc_windows *w, int num_warmup);
int mc_windows_in_slow(const mc_windows *w);    /* this iteration feeds the estimator */
int mc_windows_end_slow(const mc_windows *w);   /* this iteration closes a slow window */
void mc_windows_next(mc_windows *w);            /* advances past a closed window */

/* Welford running mean and (co)variance. */
typedef struct mc_welford {
    int d, dense;
    long n;
    double *mean, *m2;    /* m2: d or d*d */
    double *delta;        /* scratch */
} mc_welford;
int mc_welford_init(mc_welford *w, int d, int dense);
void mc_welford_add(mc_welford *w, const double *q);
void mc_welford_restart(mc_welford *w);
/* Stan's regularized estimate: (n/(n+5)) var + 1e-3 (5/(n+5)) (I). */
void mc_welford_metric(const mc_welford *w, double *inv_metric);
void mc_welford_free(mc_welford *w);

/* Stan's heuristic: doubles or halves eps from *eps until the acceptance
 * of one leapfrog step crosses 0.8.  q, logp, grad: the current point.
 * Returns 0, or -1 when no usable step size exists. */
int mc_find_step_size(const mc_ham *h, bk_rng *rng, const double *q, double logp,
                      const double *grad, double *eps, char *err, size_t errlen);

#endif
