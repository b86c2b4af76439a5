/* svi_fast.h - the recorded-op fast path for Trace_ELBO steps (program.h,
 * docs/INFERENCE.md "Fast path"): one step's ops are recorded with the
 * parameters (unconstrained) as inputs and the guide's standard normal
 * draws as noise inputs; later steps replay them, drawing the noise afresh
 * from the same stream, so the losses, gradients and parameters are
 * bit-identical to interpreted steps. */
#ifndef PPL_INFER_SVI_FAST_H
#define PPL_INFER_SVI_FAST_H

#include "infer.h"
#include "program.h"
#include "rng.h"

typedef struct inf_svi_fast {
    bool on;                 /* allowed for this run */
    int state;               /* 0: not recorded yet, 1: replaying, 2: off */
    int verify;              /* replays still checked against interpretation */
    bool recording;
    bk_prog *prog;
    int nparams;
    int64_t dim;             /* total unconstrained parameter size */
    int64_t *off;            /* per parameter: its place in x and g */
    double *x, *g, *vg;      /* parameters, gradients, a checked replay's gradients */
    unsigned char *has, *vhas;
    double vloss;            /* a checked replay's ELBO */
    bool pending;            /* a replay waits for its check */
    bk_rng rng0, vrng;       /* the stream before a recording / after a checked replay */
    long replays;
    char why[160];           /* why there is no program (state 2) */
} inf_svi_fast;

/* Off unless the step is a one-particle Trace_ELBO (o->no_fast turns it off). */
void inf_svi_fast_init(inf_svi_fast *f, const inf_svi_opts *o);
void inf_svi_fast_free(inf_svi_fast *f);
/* A replayed step: true with *elbo set and every parameter's ->grad holding
 * its gradient (NULL where the loss does not depend on it), or false: run
 * the step by interpretation (then call inf_svi_fast_begin / _end / _check
 * around it). */
bool inf_svi_fast_step(inf_svi_fast *f, rt_vm *vm, double *elbo);
/* Before an interpreted step: start recording it when no program exists. */
void inf_svi_fast_begin(inf_svi_fast *f, rt_vm *vm);
/* After the loss l is formed (before the backward pass); scored: the step
 * had score-function terms (no program: their signal is a host value). */
void inf_svi_fast_end(inf_svi_fast *f, rt_vm *vm, bk_tensor *l, bool scored);
/* After the interpreted step's gradients: compare a pending replay. */
void inf_svi_fast_check(inf_svi_fast *f, rt_vm *vm, double elbo);

#endif
