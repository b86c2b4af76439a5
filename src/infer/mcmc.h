/* mcmc.h - MCMC on models: chains, constrained draws, summaries, Stan CSV. */
#ifndef PPL_INFER_MCMC_H
#define PPL_INFER_MCMC_H

#include "infer.h"
#include "mcmc_core.h"

typedef struct inf_mcmc_opts {
    int chains, warmup, samples, max_depth;
    double target_accept;
    int dense;          /* 1: dense metric */
    int hmc_steps;      /* 0: NUTS; MC_RWM; MC_HMC_TRAJ: HMC with
                           trajectory_length; else HMC with this many
                           leapfrog steps */
    double trajectory_length;   /* MC_HMC_TRAJ: the integration time */
    uint64_t seed;
    /* checkpoints: write `checkpoint` every `checkpoint_every` iterations of
     * a chain (<= 0: 100), at the end of each chain and when interrupted;
     * `resume` continues from such a file (and keeps writing to it when
     * `checkpoint` is NULL).  Both NULL: none. */
    const char *checkpoint, *resume;
    int checkpoint_every;
    /* chains in parallel threads, each on a private copy of the model
     * (mcmc_clone.c); <= 0: min(chains, cores).  The draws do not depend on
     * it. */
    int threads;
    /* 1: no recorded-op fast path (potential.h), every evaluation runs the
     * model; the draws are the same either way */
    int no_fast;
} inf_mcmc_opts;

typedef struct inf_mcmc {
    int chains, samples, dim;
    int nnames;
    char **names;        /* one per scalar of every latent and deterministic site */
    double *draws;       /* (chains * samples) x nnames, chain-major */
    mc_chain_out *out;   /* per chain: unconstrained draws and sampler columns */
    int divergences;
    int rwm;             /* random-walk Metropolis: no energies (E-BFMI) */
    int max_depth;       /* NUTS: the tree-depth limit; 0 for HMC and RWM */
    int treedepth_hits;  /* NUTS draws whose tree reached max_depth */
    /* per chain c: secs[2c] warm-up and secs[2c + 1] sampling seconds, the
     * CPU time of the chain's thread (run_chain in mcmc.c; Stan's CSV
     * "Elapsed Time"); output, progress reports and diagnostics are not in them */
    double *secs;
} inf_mcmc;

int inf_mcmc_run(rt_vm *vm, rt_func *model, const rt_record *data, const inf_mcmc_opts *o, rt_loc loc,
                 inf_mcmc **out);
void inf_mcmc_free(inf_mcmc *m);
/* Summary rows with R-hat and bulk/tail ESS (kind 1 result). */
inf_result *inf_mcmc_result(const inf_mcmc *m);
/* Stan CSV: PATH for one chain, PATH_1.csv ... for several. */
int inf_mcmc_write_csv(const inf_mcmc *m, const char *path, char *err, size_t errlen);
/* The draws behind a script `posterior` value (mcmc(...)), else NULL. */
const inf_mcmc *inf_posterior_mcmc(rt_value v);

#endif
