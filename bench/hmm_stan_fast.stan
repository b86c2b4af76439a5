// bench/hmm_stan_fast.stan - the model of bench/hmm_stan.stan written for speed
// (rstan 2.21 has no hmm_marginal): log emission densities as whole-vector
// operations, the K = 2 forward recursion on scalars with the two-argument
// log_sum_exp, the additive constant -T/2 log(2 pi) dropped. Same posterior.
data {
  int<lower=1> T;
  vector[T] y;
  simplex[2] init;
}
parameters {
  simplex[2] p0;
  simplex[2] p1;
  ordered[2] mu;
  real<lower=0> sigma;
}
model {
  vector[T] le1 = -0.5 * square((y - mu[1]) / sigma);
  vector[T] le2 = -0.5 * square((y - mu[2]) / sigma);
  real l00 = log(p0[1]);
  real l01 = log(p0[2]);
  real l10 = log(p1[1]);
  real l11 = log(p1[2]);
  real a1 = log(init[1]) + le1[1];
  real a2 = log(init[2]) + le2[1];
  p0 ~ dirichlet(rep_vector(1.0, 2));
  p1 ~ dirichlet(rep_vector(1.0, 2));
  mu ~ normal(0, 5);
  sigma ~ normal(0, 2);
  for (t in 2:T) {
    real b1 = log_sum_exp(a1 + l00, a2 + l10) + le1[t];
    real b2 = log_sum_exp(a1 + l01, a2 + l11) + le2[t];
    a1 = b1;
    a2 = b2;
  }
  target += log_sum_exp(a1, a2) - T * log(sigma);
}
