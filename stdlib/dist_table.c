/* dist_table.c - the registration table of distribution families: each
 * family file exports one sl_family_<name>; the constructors registered in
 * the language are the names here. */
#include "dist.h"

extern const sl_family sl_family_normal, sl_family_halfnormal, sl_family_bernoulli,
    sl_family_categorical, sl_family_gamma, sl_family_beta, sl_family_lognormal,
    sl_family_exponential, sl_family_uniform, sl_family_cauchy, sl_family_halfcauchy,
    sl_family_laplace, sl_family_studentt, sl_family_poisson, sl_family_binomial,
    sl_family_inversegamma, sl_family_dirichlet, sl_family_delta, sl_family_geometric,
    sl_family_negativebinomial, sl_family_mvnormal, sl_family_improperuniform,
    sl_family_discretehmm, sl_family_mixture;
extern const sl_family sl_family_lowrank_mvnormal, sl_family_onehot_categorical,
    sl_family_transformed;

const sl_family *const sl_families[] = {
    &sl_family_normal,      &sl_family_halfnormal,       &sl_family_bernoulli,
    &sl_family_categorical, &sl_family_gamma,            &sl_family_beta,
    &sl_family_lognormal,   &sl_family_exponential,      &sl_family_uniform,
    &sl_family_cauchy,      &sl_family_halfcauchy,       &sl_family_laplace,
    &sl_family_studentt,    &sl_family_poisson,          &sl_family_binomial,
    &sl_family_inversegamma, &sl_family_dirichlet,       &sl_family_delta,
    &sl_family_geometric,   &sl_family_negativebinomial, &sl_family_mvnormal,
    &sl_family_improperuniform, &sl_family_discretehmm, &sl_family_mixture,
    &sl_family_lowrank_mvnormal, &sl_family_onehot_categorical, &sl_family_transformed, NULL,
};
