/* special.h - special functions, written here so the library stays under a
 * permissive license (no GSL).  All take and return double; domain errors
 * return NaN, poles return +-inf. */
#ifndef PPL_BACKEND_SPECIAL_H
#define PPL_BACKEND_SPECIAL_H

double bk_digamma(double x);
double bk_trigamma(double x);
double bk_lbeta(double a, double b);
double bk_gammainc_lower(double a, double x);   /* regularized P(a, x) */
double bk_gammainc_upper(double a, double x);   /* regularized Q(a, x) */
double bk_betainc(double a, double b, double x);/* regularized I_x(a, b) */
double bk_erfinv(double x);
double bk_ndtri(double p);                      /* inverse standard normal cdf */
double bk_log1mexp(double x);                   /* log(1 - exp(x)), x <= 0 */
double bk_logaddexp(double a, double b);
double bk_softplus(double x);                   /* log(1 + exp(x)), stable */
double bk_log_sigmoid(double x);
double bk_sigmoid(double x);
/* d/da of the regularized lower incomplete gamma P(a, x) (for the implicit
 * reparameterization gradient of Gamma samples). */
double bk_gammainc_lower_da(double a, double x);
/* dz/da of z ~ Gamma(a, 1) at a fixed quantile: -(dP(a, z)/da) / p(z; a),
 * computed without forming the density (finite where it underflows). */
double bk_gamma_reparam_da(double a, double z);

#endif
