"""Reference posterior for the logistic-regression acceptance test
(tests/unit/test_mcmc.c, logistic_regression_reference): data simulated
with known coefficients (intercept -0.5, weights 1.5 and -2.0, N = 80), then
a long NumPyro NUTS run (4 chains x 25,000 draws, Monte Carlo error < 0.5%
of each sd) of the same model: b ~ N(0, 5), w ~ N(0, 5), y ~ Bernoulli(logits).
Writes tests/fixtures/logreg.json (data and the reference moments).
usage: /opt/bench-venv/bin/python tests/gen_logreg_reference.py"""
import json
import numpy as np
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

numpyro.set_host_device_count(1)
numpyro.enable_x64()
rng = np.random.default_rng(20261202)
N = 80
X = np.round(rng.normal(size=(N, 2)), 3)
logits = -0.5 + X @ np.array([1.5, -2.0])
y = (rng.uniform(size=N) < 1 / (1 + np.exp(-logits))).astype(float)


def model(X, y):
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(jnp.zeros(2), 5.0).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=b + X @ w), obs=y)


mcmc = MCMC(NUTS(model), num_warmup=2000, num_samples=25000, num_chains=4,
            chain_method="sequential", progress_bar=False)
mcmc.run(jax.random.PRNGKey(0), jnp.array(X), jnp.array(y))
s = mcmc.get_samples()
ref = {"b": [float(s["b"].mean()), float(s["b"].std(ddof=1))],
       "w[0]": [float(s["w"][:, 0].mean()), float(s["w"][:, 0].std(ddof=1))],
       "w[1]": [float(s["w"][:, 1].mean()), float(s["w"][:, 1].std(ddof=1))]}
json.dump({"X": X.tolist(), "y": y.tolist(), "reference": ref},
          open("tests/fixtures/logreg.json", "w"))
print(ref)
