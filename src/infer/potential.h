/* potential.h - a model's log density over one unconstrained vector (with
 * its gradient), the bridge from the runtime to the MCMC kernels. */
#ifndef PPL_INFER_POTENTIAL_H
#define PPL_INFER_POTENTIAL_H

#include <stdatomic.h>
#include "infer.h"

typedef struct inf_potential {
    rt_vm *vm;
    rt_func *model;          /* borrowed */
    const rt_record *data;   /* borrowed */
    rt_loc loc;
    inf_latent *lat;         /* latent sites, in model order */
    int nlat;
    int64_t dim;             /* total unconstrained size */
    atomic_int *stop;        /* parallel chains: raised to stop them (or NULL) */
    /* The fast path (program.h, docs/INFERENCE.md): the ops of one
     * gradient evaluation recorded once and replayed for the evaluations
     * that need no trace; the first replays are checked against
     * interpretation.  A copy of the struct for another VM must start
     * again with inf_potential_fast_reset. */
    bool fast;               /* allowed (inf_potential_init: true) */
    int fast_state;          /* 0: not recorded yet, 1: replaying, 2: off */
    int fast_verify;         /* replays still to check */
    struct bk_prog *prog;
    long fast_replays;       /* evaluations the program answered */
    long fast_misses;        /* replays a guard stopped (interpreted instead) */
    char fast_why[160];      /* why the recording was refused (state 2) */
    /* The same for the values of a draw (inf_potential_values): the ops
     * from the point to the latent and deterministic sites' values,
     * recorded without a gradient. */
    int vals_state;          /* 0: not recorded yet, 1: replaying, 2: off */
    int vals_verify;         /* replays still to check */
    struct bk_prog *vprog;
        struct inf_enum *en;     /* discrete latents summed out (enumerate.c), or NULL */
} inf_potential;

/* Discover the latent sites by one prototype run: the continuous ones go
 * into the unconstrained vector, discrete ones with a finite support are
 * summed out (enumerate.c); -1 with an error for other discrete latents or
 * a model without latents. */
int inf_potential_init(rt_vm *vm, rt_func *model, const rt_record *data, rt_loc loc, inf_potential **out);
void inf_potential_free(inf_potential *p);
/* Drop the recorded program (for a copy of p on another VM: the program
 * belongs to the VM that recorded it; call it before that VM goes too). */
void inf_potential_fast_reset(inf_potential *p);
/* log p(x(q)) + log|det J(q)| and (when grad != NULL) its gradient w.r.t.
 * q.  When keep != NULL it receives the run's trace (constrained values,
 * deterministic sites); the caller clears it.  0, or -1 with an error. */
int inf_potential_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep);
/* The values of the latent (constrained) and deterministic sites of a run
 * at q, in the order of the trace, as v[0 .. n) (the values inf_potential_eval's
 * trace holds, bit for bit), by replaying the recorded ops of one such
 * run when the model allows it.  0: done; 1: not done (n is not the
 * number of values, or the model needs interpretation here: use the
 * trace); -1 with an error. */
int inf_potential_values(inf_potential *p, const double *q, double *v, int64_t n);
/* One run of the model at q under trace (into *tr, initialized here) and
 * unconstrain, with `inner` (or NULL) as the innermost handler; leaf[]
 * (nlat entries, NULL on the first run) receives the sites' leaves, which
 * later runs on the same tape reuse; *logdet the log|det J| of this run.
 * The caller releases logdet and the leaves and clears tr.  0 or -1. */
int inf_potential_run(inf_potential *p, const double *q, bool grad, rt_handler *inner, bk_tensor **leaf,
                      rt_trace *tr, bk_tensor **logdet);

#endif
