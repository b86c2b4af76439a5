/* ppl.h - the embedding API of the ppl probabilistic programming language.
 *
 * One opaque ppl_state per interpreter.  There is no global mutable state:
 * states on different threads share nothing.  Every call returns a status
 * code (PPL_OK = 0); after a failure ppl_errmsg(S) holds the message, with
 * the file:line:col, source line and caret of the error when it has one.
 * The library never exits, aborts, or prints on its own: output produced
 * by a script (print, summary tables) goes to the output callback.
 * Values cross the boundary by copy.
 */
#ifndef PPL_H
#define PPL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PPL_VERSION_STRING "0.1.0"

typedef enum ppl_status {
    PPL_OK = 0,
    PPL_ERR_SYNTAX = 1,     /* the text does not parse */
    PPL_ERR_NAME = 2,       /* unknown name, bad arity, bad constraint ... */
    PPL_ERR_RUNTIME = 3,    /* shape, index, type, parameter, data errors */
    PPL_ERR_IO = 4,         /* a file could not be read or written */
    PPL_ERR_NOMEM = 5,      /* out of memory */
    PPL_ERR_MISUSE = 6,     /* NULL state, closed state, bad argument */
    PPL_ERR_INTERRUPTED = 7,/* ppl_interrupt was called */
    PPL_ERR_LIMIT = 8       /* recursion / loop / size limit reached */
} ppl_status;

typedef struct ppl_state ppl_state;

/* Where script output (print, summary) goes.  Default: discarded. */
typedef void (*ppl_write_fn)(void *ud, const char *text, size_t len);

/* Progress within MCMC chains (ppl_options.mcmc_progress): the whole run,
 * and per chain its iterations (warmup first) and current step size.  The
 * arrays are valid during the call only. */
typedef struct ppl_mcmc_progress {
    int chains;
    long warmup, samples;          /* per chain */
    long done, total;              /* iterations, all chains: total = chains * (warmup + samples) */
    const long *chain_done;        /* [chains] iterations done per chain */
    const double *chain_step;      /* [chains] current step size (0: not started) */
    long divergences;              /* divergent transitions while sampling, so far */
} ppl_mcmc_progress;

typedef struct ppl_options {
    /* Allocator hook; all library memory goes through it. NULL: libc. */
    void *(*malloc_fn)(void *ud, size_t n);
    void *(*realloc_fn)(void *ud, void *p, size_t n);
    void (*free_fn)(void *ud, void *p);
    void *alloc_ud;
    ppl_write_fn out;          /* script output */
    void *out_ud;
    uint64_t seed;             /* default seed for runs that give none */
    long max_recursion;        /* 0: default (200) */
    long max_loop_iterations;  /* 0: default (100,000,000) */
    /* Progress of long runs (NULL: none): phase "svi" (done/total steps,
     * value = running ELBO) or "sample" (chains done/total, value = the
     * divergences so far).  Called from the running thread. */
    void (*progress)(void *ud, const char *phase, long done, long total, double value);
    void *progress_ud;
    /* Progress of SVI by epochs (NULL: none; then `progress` gets phase
     * "epoch" once per epoch, value = its train ELBO): 1-based epoch of
     * epochs, steps done of the epoch's steps, the epoch's running train
     * ELBO and its validation ELBO (NaN while it runs or without
     * validation).  The call with step == steps ends the epoch.  Called
     * with progress_ud. */
    void (*progress_epoch)(void *ud, long epoch, long epochs, long step, long steps, double elbo,
                           double val_elbo);
    /* Progress within MCMC chains (NULL: none), with progress_ud: about every
     * 1% of the iterations of all chains (and at the end), from the thread
     * that called ppl_mcmc (also with parallel chains); the draws do not
     * depend on it. */
    void (*mcmc_progress)(void *ud, const ppl_mcmc_progress *p);
} ppl_options;

ppl_options ppl_default_options(void);
const char *ppl_version(void);
/* 0 when this build and machine can place tensors on the named device
 * ("cpu", "cuda"); else -1 with the reason in why (n bytes), e.g. "ppl was
 * built without CUDA support; rebuild with -DPPL_CUDA=ON" or "no CUDA
 * device found: ...". */
int ppl_device_available(const char *name, char *why, size_t n);
/* Runs the state's models on the named device from now on: the tensors a
 * run makes (parameters, data, draws, constants that are not 0-d) are made
 * there and every op on them runs there (docs/CUDA.md).  PPL_ERR_MISUSE,
 * with the reason, for a device this build or machine does not have. */
ppl_status ppl_set_device(ppl_state *S, const char *name);
/* One line per op that had no kernel on the device and ran on the CPU
 * (host copies) so far, "" when none: for the caller to show once. */
const char *ppl_device_warnings(const ppl_state *S);

/* Open a state (NULL: default options).  Returns NULL only when memory for
 * the state itself cannot be had. */
ppl_state *ppl_open(const ppl_options *opts);
void ppl_close(ppl_state *S);               /* NULL-safe */

/* The message of the last failed call ("" after success).  The string is
 * owned by the state and valid until the next call on it. */
const char *ppl_errmsg(const ppl_state *S);
ppl_status ppl_errcode(const ppl_state *S);

/* Parse, check and run a program's top-level statements (definitions of
 * models, guides and functions, and any script statements). */
ppl_status ppl_load_file(ppl_state *S, const char *path);
ppl_status ppl_load_string(ppl_state *S, const char *name, const char *text);
/* Load a file for an inference command: run its definitions (def, model,
 * guide) and its data assignments, but not its script actions (svi, trace,
 * summary, print, write_json calls). */
ppl_status ppl_load_definitions(ppl_state *S, const char *path);
/* Parse and check only (names, arity, constraints); runs nothing. */
ppl_status ppl_check_file(ppl_state *S, const char *path);
ppl_status ppl_check_string(ppl_state *S, const char *name, const char *text);

/* REPL entry: run one chunk of input; when it is a single expression its
 * value's printed form is returned in *echo (owned by the state, "" when
 * none). */
ppl_status ppl_eval(ppl_state *S, const char *name, const char *text, const char **echo);
/* 1 when `text` is an unfinished statement (open bracket or block). */
int ppl_incomplete(const char *text);

/* Interrupt a running computation from another thread or a signal handler
 * (async-signal-safe): the running call returns PPL_ERR_INTERRUPTED. */
void ppl_interrupt(ppl_state *S);

/* Global data: bind a float64 array of the given shape (ndim 0 = scalar)
 * to a global name; models take their arguments by name from these. */
ppl_status ppl_set_data_f64(ppl_state *S, const char *name, const double *data,
                            int ndim, const int64_t *shape);
ppl_status ppl_set_data_json(ppl_state *S, const char *path);  /* every field */
/* Read a global numeric value back: copies up to cap elements into buf and
 * sets *n to the element count. */
ppl_status ppl_get_f64(ppl_state *S, const char *name, double *buf, size_t cap,
                       size_t *n);

/* Call a global function by name with float64 scalar arguments; the result
 * (when numeric) is copied into *result (first element). */
ppl_status ppl_call(ppl_state *S, const char *fn, int nargs, const double *args,
                    double *result);

/* Seeds the state's default random stream. */
ppl_status ppl_seed(ppl_state *S, uint64_t seed);

/* ---- inference ---- */

typedef struct ppl_result ppl_result;

typedef struct ppl_svi_opts {
    const char *guide;       /* guide function name, or "auto_normal",
                                "auto_mvn", "auto_delta", "auto_diag",
                                "auto_lowrank", "auto_laplace" */
    long steps;              /* default 1000 */
    double lr;               /* Adam learning rate, default 0.01 */
    int particles;           /* default 1 */
    uint64_t seed;           /* default 1 */
    const char *data_json;   /* optional data file binding the model args */
    int summary_samples;     /* guide draws for the summary, default 1000 */
    const char *resume;      /* a file from ppl_save_params: continue that run
                                (parameters, optimizer state, random stream) */
    /* Epochs instead of steps (docs/INFERENCE.md, "Epochs"): epochs > 0
     * runs that many passes over the subsampled plate in shuffled
     * minibatches of batch_size (0: the plate's subsample size) and ignores
     * steps; validation_json (optional) binds the model's arguments for the
     * validation ELBO; patience >= 1 stops early when the monitored loss has
     * not improved by min_delta for that many epochs (0: never), restoring
     * the best epoch's parameters. */
    long epochs;
    long batch_size;
    const char *validation_json;
    long patience;
    double min_delta;
    int no_fast_path;        /* 1: interpret every step; 0 (default): replay
                                the ops one step recorded when the model
                                allows it (docs/INFERENCE.md), same results */
} ppl_svi_opts;
ppl_svi_opts ppl_svi_defaults(void);
ppl_status ppl_svi(ppl_state *S, const char *model, const ppl_svi_opts *o,
                   ppl_result **out);
/* Write the parameter store and the last SVI run's optimizer state and
 * random-stream position as JSON, atomically (as save_params(path)). */
ppl_status ppl_save_params(ppl_state *S, const char *path);

typedef struct ppl_mcmc_opts {
    int chains;              /* default 4 (each seeded from (seed, chain)) */
    int warmup, samples;     /* default 1000 each */
    int max_depth;           /* NUTS tree depth, default 10 */
    double target_accept;    /* default 0.8 */
    uint64_t seed;           /* default 1 */
    int dense_metric;        /* 0: diagonal (default), 1: dense */
    const char *data_json;   /* optional data file binding the model args */
    /* Checkpoints (NULL: none): the sampler's whole state (positions,
     * adaptation, random streams, draws so far) goes to `checkpoint` every
     * `checkpoint_every` iterations of a chain (0: 100), at the end of each
     * chain and on ppl_interrupt, atomically; `resume` continues a run from
     * such a file (same model, data and options), bit for bit as if it had
     * not stopped, and keeps checkpointing to it unless `checkpoint` is set. */
    const char *checkpoint, *resume;
    int checkpoint_every;
    /* Chains in parallel threads (0: min(chains, cores)); each thread runs
     * on a private copy of the model and data, and the draws are the same
     * for any value.  A model that reaches a distribution or other opaque
     * value held in a global, or has `param` sites, runs its chains in
     * turn.  With several threads the allocator hook and `out` are called
     * from them (progress still comes from the calling thread). */
    int threads;
    /* 1: every density evaluation runs the model; 0 (default): gradient
     * evaluations replay the ops one run recorded when the model allows it
     * (docs/INFERENCE.md, "Fast path"), with the same results. */
    int no_fast_path;
} ppl_mcmc_opts;
ppl_mcmc_opts ppl_mcmc_defaults(void);
/* NUTS with Stan's warmup adaptation on a model. */
ppl_status ppl_mcmc(ppl_state *S, const char *model, const ppl_mcmc_opts *o, ppl_result **out);
/* Stan CSV draws of an MCMC result: PATH for one chain, PATH_1.csv ... */
ppl_status ppl_result_write_stan_csv(const ppl_result *R, const char *path, char *err, size_t errlen);

/* An SVG picture of a result (atomically written): the loss curve of an SVI
 * fit, or the trace and density of an MCMC result's first latent scalar. */
ppl_status ppl_result_write_plot(const ppl_result *R, const char *path, char *err, size_t errlen);

/* Results: summaries, draws, parameters, and the standard text/JSON forms. */
ppl_status ppl_result_summary(const ppl_result *R, const char *name, double *mean,
                              double *sd);
/* Copies the draws of a scalar site (all chains, in order) or of an
 * SVI parameter's elements; *n receives the count. */
ppl_status ppl_result_draws_f64(const ppl_result *R, const char *name, double *buf,
                                size_t cap, size_t *n);
/* The summary table (DESIGN 1.8) and the summary JSON, malloc'd (free()). */
char *ppl_result_table(const ppl_result *R);
char *ppl_result_json(const ppl_result *R);
/* The learned parameters alone, as a JSON object (malloc'd). */
char *ppl_result_params_json(const ppl_result *R);
void ppl_result_free(ppl_result *R);


/* ---- host-defined distribution families --------------------------------
 * A family with scalar values (event shape []) whose parameters broadcast
 * elementwise, like Normal(loc, scale).  ppl broadcasts the value and the
 * parameters to one shape of n elements and calls the callbacks on float64
 * arrays of length n: p[i] is parameter i's array.  After registration
 * `observe y ~ Name(a, b)`, `sample z ~ Name(a, b)`, `Name(a, b).log_prob(x)`
 * and `.sample(shape)` work in .ppl code of this state. */
typedef struct ppl_dist_def {
    const char *name;                /* constructor name, an identifier ("Skellam") */
    int nparams;                     /* 1 .. 6 */
    const char *const *param_names;  /* positional order; also keyword names */
    /* out[k] = log density (or mass) of x[k]; -INFINITY outside the support
     * (a NaN result is read as -INFINITY).  Required. */
    void (*log_prob)(void *ud, size_t n, const double *x, const double *const *p, double *out);
    /* Optional: dx[k] = d log_prob / d x[k] and dp[i][k] = d log_prob / d p[i][k];
     * any of dx, dp[i] may be NULL (not needed).  Without it the family is
     * usable only where no gradient flows through it: observed values with
     * constant parameters (data, or predictive / prior sampling).  Using it
     * under NUTS or SVI with a latent parameter or value is an error
     * naming the family. */
    void (*grad)(void *ud, size_t n, const double *x, const double *const *p, double *dx,
                 double *const *dp);
    /* Optional: out[k] = a draw given p[i][k]; uniform(rng) returns uniform
     * (0, 1) numbers from the state's seeded generator.  Without it the
     * family cannot be sampled (prior predictive, latent initialization). */
    void (*sample)(void *ud, size_t n, const double *const *p, double *out,
                   double (*uniform)(void *rng), void *rng);
    /* Optional: NULL when parameter i may take value v, else the reason,
     * e.g. "must be > 0" (reported as "Name: b must be > 0, got -1" at the
     * argument). */
    const char *(*check)(void *ud, int i, double v);
    /* Support, by constraint name: NULL or "real", "positive",
     * "unit_interval", "nonnegative_integer", "boolean" ... (parameter-free
     * constraints).  Integer supports make the family discrete. */
    const char *support;
    void *ud;                        /* handed to every callback */
} ppl_dist_def;

/* Registers (or replaces) a host family in S.  The definition is copied,
 * except ud.  Errors: a bad name, a clash with a built-in family, a
 * missing log_prob, an unknown support. */
ppl_status ppl_register_distribution(ppl_state *S, const ppl_dist_def *def);

#ifdef __cplusplus
}
#endif
#endif
