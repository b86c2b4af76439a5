// bench/eight_schools.stan - the eight schools model, non-centered, as
// examples/eight_schools.ppl: mu ~ Normal(0, 5), tau ~ HalfCauchy(5),
// theta_raw ~ Normal(0, 1), theta = mu + tau * theta_raw, y ~ Normal(theta, sigma).
data {
  int<lower=0> J;
  vector[J] y;
  vector<lower=0>[J] sigma;
}
parameters {
  real mu;
  real<lower=0> tau;
  vector[J] theta_raw;
}
transformed parameters {
  vector[J] theta = mu + tau * theta_raw;
}
model {
  mu ~ normal(0, 5);
  tau ~ cauchy(0, 5);
  theta_raw ~ std_normal();
  y ~ normal(theta, sigma);
}
