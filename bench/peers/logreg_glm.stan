// bench/peers/logreg_glm.stan - bench/peers/logreg.stan with Stan's fused GLM density
// (bernoulli_logit_glm: one pass over X, analytic gradient), the fast way to write it in Stan:
// alpha ~ Normal(0, 5), beta[d] ~ Normal(0, 5), y[i] ~ Bernoulli(logit = alpha + X[i] . beta).
// Data from bench/peers/data.ppl (N = 10,000, D = 25).
data {
  int<lower=0> N;
  int<lower=1> D;
  matrix[N, D] X;
  int<lower=0, upper=1> y[N];
}
parameters {
  real alpha;
  vector[D] beta;
}
model {
  alpha ~ normal(0, 5);
  beta ~ normal(0, 5);
  y ~ bernoulli_logit_glm(X, alpha, beta);
}
