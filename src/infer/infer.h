/* infer.h - inference algorithms on top of the runtime: SVI (Trace_ELBO,
 * optimizers, autoguides) and the result/summary structures the public API
 * hands out.  The runtime knows none of this; inf_register_builtins adds
 * svi(...), the optimizers, the ELBOs and the autoguides to a VM. */
#ifndef PPL_INFER_H
#define PPL_INFER_H

#include "vm.h"

int inf_register_builtins(rt_vm *vm);
/* Runs built-in fn (svi, mcmc, predictive) for call c, honouring its
 * device="cpu"|"cuda" keyword: the run's tensors and a copy of its data
 * record (positional data_pos or data=) go on that device
 * (device_option.c); without the keyword, fn(vm, c, out). */
int inf_with_device(rt_vm *vm, const rt_call *c, rt_value *out, rt_builtin_fn fn, int data_pos);
/* The summary of a posterior value returned by mcmc(...), or NULL. */
struct inf_result;
const struct inf_result *inf_posterior_result(rt_value v);

/* ---- optimizers (optim.c) ---- */

typedef enum { INF_OPT_ADAM, INF_OPT_SGD, INF_OPT_RMSPROP, INF_OPT_ADAGRAD,
               INF_OPT_CLIPPED_ADAM } inf_opt_kind;

typedef struct inf_optim_spec {
    int kind;
    double lr, beta1, beta2, eps, momentum, alpha, weight_decay, clip_norm, lrd;
    /* for every optimizer: clip the global gradient norm (0: off), and the
     * learning-rate schedule lr * lr_decay^t * lr_gamma^floor(t / lr_step) */
    double max_grad_norm, lr_decay, lr_gamma;
    long lr_step;
    bool nesterov;
} inf_optim_spec;

/* Per-parameter optimizer state, keyed by parameter name.  Adam's and
 * ClippedAdam's moments of a float32 weight are float32 (m32, v32; m and v
 * NULL), as PyTorch keeps them in the parameter's dtype; every other slot
 * holds double moments (m, v; m32 and v32 NULL). */
typedef struct inf_optim_slot {
    char *name;
    int64_t n;
    double *m, *v;
    float *m32, *v32;
    long t;
} inf_optim_slot;

typedef struct inf_optim {
    inf_optim_spec spec;
    long t;                  /* steps taken (for the schedule) */
    inf_optim_slot *slots;
    int nslots, cap;
} inf_optim;

inf_optim_spec inf_adam_defaults(void);
void inf_optim_init(inf_optim *o, const inf_optim_spec *spec);
void inf_optim_free(inf_optim *o);
/* One update of every parameter with a gradient (p->u->grad).  0 or -1. */
int inf_optim_step(inf_optim *o, rt_vm *vm);
/* Deep copy of src's state (slots, step counter) into dst with spec; 0 or -1 (OOM). */
int inf_optim_copy(inf_optim *dst, const inf_optim *src, const inf_optim_spec *spec);
/* A slot for a parameter of n elements (created zeroed when new); NULL on
 * OOM or when the name exists with another size. */
inf_optim_slot *inf_optim_slot_for(inf_optim *o, const char *name, int64_t n);
/* The same, a new slot created with float32 moments when f32. */
inf_optim_slot *inf_optim_slot_get(inf_optim *o, const char *name, int64_t n, bool f32);
const char *inf_optim_kind_name(int kind);
int inf_optim_kind_lookup(const char *name);

/* What svi(...) leaves in the VM (vm->svi_state) for save_params and for a
 * resumed run: the optimizer state, the random stream's position after the
 * last step, the score-function baseline and the steps taken in total. */
typedef struct inf_svi_state {
    inf_optim opt;
    bk_rng rng;
    double baseline;
    long steps;
} inf_svi_state;
inf_svi_state *inf_svi_state_get(rt_vm *vm);
/* Replace the VM's state (takes ownership; NULL clears). */
void inf_svi_state_set(rt_vm *vm, inf_svi_state *st);
/* save_params / load_params as C functions (params_io.c). */
int inf_params_save(rt_vm *vm, const char *path, rt_loc loc);
int inf_params_load(rt_vm *vm, const char *path, rt_loc loc);

/* ---- guides (autoguide.c) ---- */

/* Autoguide initialization, as Pyro's init strategies. */
typedef enum { INF_INIT_FEASIBLE, INF_INIT_MEDIAN, INF_INIT_SAMPLE, INF_INIT_VALUE } inf_init_kind;

typedef enum { INF_GUIDE_USER, INF_GUIDE_NORMAL, INF_GUIDE_DIAG, INF_GUIDE_MVN,
               INF_GUIDE_DELTA, INF_GUIDE_LOWRANK, INF_GUIDE_LAPLACE } inf_guide_kind;

typedef struct inf_latent {
    char *name;
    sl_constraint support;
    int ndim;
    int64_t shape[BK_MAXDIM];
    int undim;
    int64_t ushape[BK_MAXDIM];
    int64_t unumel;
    int64_t offset;          /* in the flattened vector (MVN / diag) */
    bk_tensor *proto;        /* the prototype run's value (retained) */
    sl_dist *dist;           /* the prototype run's distribution (retained) */
    bk_tensor *init_u;       /* initial unconstrained value (autoguides) */
} inf_latent;

typedef struct inf_guide {
    int kind;                /* inf_guide_kind */
    rt_func *fn;             /* user guide, or the model of an autoguide */
    const char *prefix;      /* "AutoNormal", ... */
    double init_scale;
    int init;                /* inf_init_kind */
    rt_record *init_values;  /* init_to_value(values=...) (retained) */
    bool ready;              /* latents discovered */
    inf_latent *lat;
    int nlat;
    int64_t dim;             /* total unconstrained size */
    int rank;                /* AutoLowRankMultivariateNormal (0: ceil(sqrt(dim))) */
    bool gaussian;           /* AutoLaplaceApproximation: false while svi trains
                                the point mass, true once the Hessian is in */
} inf_guide;

/* The latent sites of `model` from one seeded prototype run (latents.c);
 * discrete ones are an error ending with `discrete_hint`, or left out when
 * it is NULL (the MCMC potential sums them out). */
int inf_latents_discover(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, const char *discrete_hint,
                         inf_latent **lat, int *nlat, int64_t *dim);
void inf_latents_free(inf_latent *lat, int n);
/* The prototype run behind inf_latents_discover (seed 0x5eed, no
 * gradients, ImproperUniform sites at the middle of their support). */
int inf_latents_prototype(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, rt_trace *tr);

/* A new automatic guide for `model` (retained); NULL on OOM. */
inf_guide *inf_guide_new(int kind, rt_func *model, double init_scale);
void inf_guide_free(inf_guide *g);
/* Discover an autoguide's latent sites now (no-op for user guides or when
 * done); draws (init_to_median) come from the VM's current stream. */
int inf_guide_prepare(rt_vm *vm, inf_guide *g, const rt_record *data, rt_loc loc);
/* Run the guide once, recording its sites into tr (values and log q). */
int inf_guide_run(rt_vm *vm, inf_guide *g, const rt_record *data, rt_loc loc, rt_trace *tr);

/* ---- SVI (svi.c) ---- */

/* svi(epochs=E, ...): the epoch driver's options (svi_epochs.c). */
typedef struct inf_epoch_opts {
    long epochs;
    int64_t batch_size;        /* 0: the plate's own subsample size */
    bool shuffle;              /* a fresh permutation per epoch (else 0..N-1) */
    const char *plate;         /* the plate the epochs run over; NULL: the
                                  one plate declared with subsample= */
    const rt_record *validation; /* the data of the validation ELBO, or NULL */
    int64_t val_batch_size;    /* 0: the whole validation plate at once */
    int val_particles;
    long patience;             /* < 0: no early stopping */
    double min_delta;
    bool restore_best;
    rt_loc batch_loc, plate_loc; /* of the keywords, for diagnostics */
    const rt_source *src;      /* ... in this source (NULL: no location) */
} inf_epoch_opts;

/* What an epoch run reports (fit.epoch_losses, ...). */
typedef struct inf_epoch_log {
    long nepochs;
    double *train;             /* per epoch: the mean -ELBO of its steps,
                                  each weighted by its batch's share */
    double *val;               /* per epoch: the validation -ELBO (NaN: none) */
    bool has_val;
    long best_epoch;           /* 0-based: the epoch of the best monitored loss */
    bool stopped_early;
    bool restored;             /* the best epoch's parameters were put back */
} inf_epoch_log;
void inf_epoch_log_free(inf_epoch_log *l);

typedef struct inf_svi_opts {
    long steps;
    int particles;
    bool mean_field;     /* TraceMeanField_ELBO: closed-form KL where known */
    bool renyi;          /* RenyiELBO(alpha): the Renyi bound over the particles */
    double alpha;
    double baseline_beta;/* score-function baseline: decaying average of the
                            ELBO with this factor (0: no baseline) */
    uint64_t seed;
    inf_optim_spec optim;
    int summary_samples;
    bool resume;         /* continue from vm->svi_state (optimizer, stream) */
    bool whole_signal;   /* score function: the whole ELBO as every site's
                            signal (no plate-wise Rao-Blackwellization) */
    const inf_epoch_opts *ep; /* epochs instead of steps (NULL: steps) */
    bool no_fast;        /* no recorded-op replay of the steps (svi_fast.h) */
} inf_svi_opts;

/* One scalar row of a summary table. */
typedef struct inf_row {
    char *name;              /* "theta[0]" */
    double mean, sd, q5, q50, q95;
    double ess_bulk, ess_tail, r_hat; /* MCMC only (NaN for SVI) */
} inf_row;

typedef struct inf_result {
    int kind;                /* 0 SVI */
    inf_row *rows;
    int nrows;
    double **draws;          /* per row: ndraws values */
    int ndraws;
    rt_record *params;       /* constrained learned parameters */
    double *losses;
    long nlosses;
    double elbo;
    int divergences;         /* MCMC */
    double min_ebfmi;        /* MCMC: lowest E-BFMI over the chains */
    int max_depth;           /* MCMC (NUTS): the tree-depth limit, else 0 */
    int treedepth_hits;      /* MCMC (NUTS): draws whose tree reached it */
    double *chain_secs;      /* MCMC: per chain, warm-up and sampling seconds
                                (inf_mcmc.secs), else NULL */
    int nchains;             /* MCMC: the chains of chain_secs */
    inf_epoch_log *epochs;   /* SVI by epochs, else NULL */
    long fast_replays;       /* SVI: steps replayed from a recording (svi_fast.h) */
    rt_value model, guide;   /* SVI from a script: kept for predictive (retained) */
} inf_result;

void inf_result_free(inf_result *r);
/* Wrap a result as the script value `fit` (takes ownership). */
rt_value inf_fit_value(inf_result *r);
/* Run SVI; on success *out holds the result. */
int inf_svi_run(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data,
                const inf_svi_opts *o, rt_loc loc, inf_result **out);
/* One step's loss (-ELBO estimate) and the gradient of the surrogate loss
 * in every unconstrained parameter (a record name -> tensor), without an
 * update; seeded with o->seed. */
int inf_elbo_grad(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                  rt_loc loc, double *loss, rt_record **grads);
/* Hooks of the epoch driver into svi.c: one optimization step (loss in
 * *loss), and one loss evaluation with gradients off (no update, the
 * baseline left alone). */
int inf_svi_step(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                 inf_optim *opt, rt_loc loc, double *baseline, double *loss);
int inf_svi_eval_loss(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                      rt_loc loc, double *loss);
/* The epoch loop of inf_svi_run (svi_epochs.c): o->ep->epochs epochs of
 * minibatch steps, the validation loss and early stopping; appends the step
 * losses to r and sets r->epochs. */
int inf_svi_epochs(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, const inf_svi_opts *o,
                   inf_svi_state *st, double *baseline, rt_loc loc, inf_result *r);
/* Parse svi(...)'s epoch keywords into *eo; *any = some were given. */
int inf_epoch_opts_parse(rt_vm *vm, const rt_call *c, inf_epoch_opts *eo, bool *any);
/* Prior (guide NULL) or posterior predictive draws: a record of site name
 * -> tensor [samples, ...]; return_sites (strings) filters, NULL = all. */
int inf_predictive(rt_vm *vm, rt_func *model, inf_guide *guide, const rt_record *data, int samples, uint64_t seed,
                   const rt_list *return_sites, rt_loc loc, rt_value *out);
/* The summary table and summary JSON of DESIGN 1.8 (malloc'd). */
char *inf_result_table(const inf_result *r);
char *inf_result_json(bk_ctx *ctx, const inf_result *r);
/* Quantile of sorted data (linear interpolation, as NumPy's default). */
double inf_quantile_sorted(const double *x, int n, double q);

#endif
