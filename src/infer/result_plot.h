/* result_plot.h - pictures of inference results (`--plot FILE.svg`). */
#ifndef PPL_INFER_RESULT_PLOT_H
#define PPL_INFER_RESULT_PLOT_H

#include <stddef.h>
#include "infer.h"
#include "mcmc.h"

/* Write an SVG picture of a result to path (atomically): for SVI (m NULL)
 * the loss curve (negative ELBO per step, raw and smoothed); for MCMC the
 * trace and the density of the first latent scalar, one curve per chain.
 * 0, or -1 with a message in err. */
int inf_result_plot(const inf_result *r, const inf_mcmc *m, const char *path, char *err, size_t errlen);

#endif
