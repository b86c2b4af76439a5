// bench/peers/mvn100.stan - a 100-dimensional correlated Gaussian as bench/peers/mvn100.ppl:
// x ~ MultivariateNormal(0, Sigma), Sigma the AR(1) correlation matrix 0.9^|i-j| given as
// data (bench/peers/data.ppl). Its Cholesky factor is computed once, in transformed data.
data {
  int<lower=1> n;
  cov_matrix[n] Sigma;
}
transformed data {
  matrix[n, n] L = cholesky_decompose(Sigma);
  vector[n] mu = rep_vector(0, n);
}
parameters {
  vector[n] x;
}
model {
  x ~ multi_normal_cholesky(mu, L);
}
