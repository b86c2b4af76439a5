/* enumerate.h - discrete latent sites with a finite support summed out of
 * the MCMC potential exactly (enumeration), and their posterior given a
 * continuous draw (as Pyro's TraceEnum / NumPyro's infer_discrete). */
#ifndef PPL_INFER_ENUMERATE_H
#define PPL_INFER_ENUMERATE_H

#include "potential.h"

/* The most runs of the model one density evaluation may take: the product
 * of the joint support sizes of the enumerated sites outside plates and of
 * the runs along the plate tree, 1 + sum over nodes of (R - 1) times the
 * product of the ancestors' R (a site inside plates counts once, whatever
 * the plates' sizes). */
#define INF_ENUM_MAX_RUNS 65536

typedef struct inf_enum inf_enum;

/* Finds the discrete latent sites of p's model (a prototype run); *out is
 * NULL when there are none.  -1 with an error (located at the site) for a
 * discrete site without a finite support, a layout enumeration cannot sum
 * (a term that depends on a discrete site whose plates it is not in, a
 * discrete site in a subsampled plate, ...) or more runs than
 * INF_ENUM_MAX_RUNS. */
int inf_enum_init(inf_potential *p, inf_enum **out);
void inf_enum_free(inf_enum *e);
/* Whether the site is enumerated along a batch dimension in one run. */
bool inf_enum_parallel(const inf_enum *e);
/* The stream (seed, stream 9) the posterior draws of the discrete sites
 * use; each kept trace advances it. */
void inf_enum_seed(inf_enum *e, uint64_t seed);
/* inf_potential_eval with p->en set: log sum_z p(x(q), z) + log|det J|
 * and its gradient (the posterior-weighted mean of the per-assignment
 * gradients).  With keep, the trace is the model's run at a draw of z from
 * p(z | x(q), data): the enumerated sites as sample sites with the drawn
 * values, deterministic sites computed from them, and per enumerated site
 * a deterministic site NAME_probs (its batch shape + [K]) holding
 * p(NAME = k | x(q), data). */
int inf_enum_eval(inf_potential *p, const double *q, double *logp, double *grad, rt_trace *keep);

#endif
