"""Reference posterior of examples/mixture_enum.ppl: the same two-component
Gaussian mixture with every point's assignment marginalized by hand
(logsumexp of the two components' log densities), sampled by NumPyro's NUTS,
4 chains x 50,000 draws after 2,000 warmup, float64, one thread.  Prints the
posterior means and sds of w, mu[0], mu[1], sigma with their MCSEs.
usage: /opt/bench-venv/bin/python bench/mixture_reference.py [DRAWS]"""
import json, os, sys
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer import MCMC, NUTS
import arviz as az

y = jnp.array(json.load(open("examples/mixture.json"))["y"])


def model(y):
    w = numpyro.sample("w", dist.Beta(2.0, 2.0))
    # ppl's `sample mu: ordered ~ Normal(zeros(2), 5.0).to_event(1)`
    mu = numpyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    numpyro.factor("mu_prior", dist.Normal(0.0, 5.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    lp = jnp.stack([jnp.log1p(-w) + dist.Normal(mu[0], sigma).log_prob(y),
                    jnp.log(w) + dist.Normal(mu[1], sigma).log_prob(y)])
    numpyro.factor("y", jax.scipy.special.logsumexp(lp, axis=0).sum())


draws = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
mcmc = MCMC(NUTS(model), num_warmup=2000, num_samples=draws, num_chains=4, chain_method="sequential",
            progress_bar=False)
mcmc.run(jax.random.PRNGKey(2026), y)
s = mcmc.get_samples(group_by_chain=True)
post = {"w": s["w"], "mu[0]": s["mu"][..., 0], "mu[1]": s["mu"][..., 1], "sigma": s["sigma"]}
for k, v in post.items():
    d = az.convert_to_dataset({k: v})
    print(f"{k:6s} mean {float(v.mean()):.4f} sd {float(v.std()):.4f} "
          f"mcse {float(az.mcse(d)[k]):.5f} ess {float(az.ess(d)[k]):.0f}")
