// bench/hmm_cat_stan.stan - the model of bench/hmm_cat_model.ppl in Stan: the
// forward algorithm in log space as the Stan User's Guide writes it (rstan
// 2.21 has no hmm_marginal): one log_sum_exp per state and step.
data {
  int<lower=1> T;
  int<lower=1> K;
  int<lower=1> V;
  int<lower=1, upper=V> y[T];
  vector<lower=0>[K] init_prior;
  vector<lower=0>[K] trans_prior[K];
  vector<lower=0>[V] emit_prior[K];
}
parameters {
  simplex[K] init;
  simplex[K] trans[K];
  simplex[V] emit[K];
}
model {
  matrix[K, K] lA;
  matrix[K, V] lE;
  vector[K] a;
  vector[K] b;
  init ~ dirichlet(init_prior);
  for (k in 1:K) {
    trans[k] ~ dirichlet(trans_prior[k]);
    emit[k] ~ dirichlet(emit_prior[k]);
    lA[k] = log(trans[k])';
    lE[k] = log(emit[k])';
  }
  a = log(init) + col(lE, y[1]);
  for (t in 2:T) {
    for (j in 1:K) b[j] = log_sum_exp(a + col(lA, j)) + lE[j, y[t]];
    a = b;
  }
  target += log_sum_exp(a);
}
