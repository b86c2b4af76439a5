// bench/hmm_stan.stan - the two-state Gaussian HMM of examples/hmm_regimes.ppl:
// transition rows p0, p1 ~ Dirichlet([1, 1]), ordered means mu ~ Normal(0, 5),
// shared sd sigma ~ HalfNormal(2); the first state's distribution is init
// (DESIGN 1.6: init is p(z_1), not a state before the first step), and
// trans[i, j] = p(z_t = j | z_{t-1} = i). The hidden states are summed out by
// the forward algorithm in log space (our own loop; not Stan's hmm_marginal).
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
  matrix[2, 2] log_trans;
  vector[2] alpha;
  vector[2] next;
  log_trans[1] = log(p0)';
  log_trans[2] = log(p1)';
  p0 ~ dirichlet(rep_vector(1.0, 2));
  p1 ~ dirichlet(rep_vector(1.0, 2));
  mu ~ normal(0, 5);
  sigma ~ normal(0, 2);
  for (k in 1:2)
    alpha[k] = log(init[k]) + normal_lpdf(y[1] | mu[k], sigma);
  for (t in 2:T) {
    for (j in 1:2)
      next[j] = log_sum_exp(alpha + log_trans[:, j])
                + normal_lpdf(y[t] | mu[j], sigma);
    alpha = next;
  }
  target += log_sum_exp(alpha);
}
