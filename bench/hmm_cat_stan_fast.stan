// bench/hmm_cat_stan_fast.stan - bench/hmm_cat_stan.stan written for speed:
// the scaled forward recursion in probability space (Rabiner), one
// row-vector-matrix product and one renormalization per step, the log of
// each step's scale summed.  Same posterior.
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
  matrix[K, K] A;
  matrix[V, K] Et;
  row_vector[K] a;
  real ll = 0;
  init ~ dirichlet(init_prior);
  for (k in 1:K) {
    trans[k] ~ dirichlet(trans_prior[k]);
    emit[k] ~ dirichlet(emit_prior[k]);
    A[k] = trans[k]';
    Et[:, k] = emit[k];
  }
  a = init' .* Et[y[1]];
  for (t in 2:T) {
    real s = sum(a);
    ll += log(s);
    a = ((a / s) * A) .* Et[y[t]];
  }
  target += ll + log(sum(a));
}
